"""Helpers for tests that drive ``python -m jaxsr.main`` in subprocesses."""
import os
import pathlib
import socket
import sys

import numpy as np
import orbax.checkpoint as ocp

from jaxsr import workdir as checkpoint

REPO = pathlib.Path(__file__).resolve().parents[1]


def tiny_msrresnet_cmd(workdir, data, steps: int, checkpoint_every: int = 2) -> list[str]:
  """A small, fast training run: tiny MSRResNet on 32x32 patches, batch 4."""
  return [sys.executable, "-m", "jaxsr.main", f"--config={REPO / 'configs' / 'srresnet.py'}:tiny",
          f"--workdir={workdir}", f"--config.data.train_dir={data}",
          "--config.model.name=msrresnet", "--config.data.patch_size=32",
          "--config.data.batch_size=4", f"--config.train.num_steps={steps}",
          f"--config.train.checkpoint_every={checkpoint_every}", "--config.train.log_every=1"]


def env(devices: int = 1) -> dict:
  return dict(os.environ, PYTHONUNBUFFERED="1",
              XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def manager(workdir) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(pathlib.Path(workdir) / "checkpoints",
                               options=ocp.CheckpointManagerOptions(read_only=True),
                               item_names=("state", "data", "config"))


def final_state(workdir):
  """(latest step, its state as nested dicts), read as a fresh process would."""
  mngr = manager(workdir)
  step = mngr.latest_step()
  return step, (None if step is None else checkpoint.read_state(mngr, step))


def flat_leaves(tree, prefix=""):
  """(path, array) for every leaf of nested dicts/lists, in a stable order."""
  if isinstance(tree, dict):
    for k in sorted(tree):
      yield from flat_leaves(tree[k], f"{prefix}/{k}")
  elif isinstance(tree, (list, tuple)):
    for i, v in enumerate(tree):
      yield from flat_leaves(v, f"{prefix}/{i}")
  else:
    yield prefix, np.asarray(tree)


def smooth_pngs(folder, count: int, side: int = 48):
  """``count`` smooth random 8-bit PNGs (learnable, unlike noise) in ``folder``."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  for i in range(count):
    coarse = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    Image.fromarray(coarse).resize((side, side), Image.Resampling.BICUBIC).save(
        pathlib.Path(folder) / f"{i}.png")
  return folder


def tensorboard_events(folder):
  """({scalar tag: [(step, value)]}, {image tag: [step]}) from tensorboardX event files."""
  import struct  # pylint: disable=import-outside-toplevel
  from tensorboardX.proto import event_pb2  # pylint: disable=import-outside-toplevel
  scalars, images = {}, {}
  for path in sorted(pathlib.Path(folder).glob("events.out.tfevents.*")):
    data = path.read_bytes()
    at = 0
    while at + 12 <= len(data):
      (length,) = struct.unpack("<Q", data[at:at + 8])
      event = event_pb2.Event.FromString(data[at + 12:at + 12 + length])
      at += 12 + length + 4  # length, its crc, the record, its crc
      for value in event.summary.value:
        if value.HasField("image"):
          images.setdefault(value.tag, []).append(event.step)
        elif value.HasField("simple_value"):
          scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
  return scalars, images
