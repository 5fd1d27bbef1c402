"""Frames per second of the ×4 networks on 640×480 RGB frames, against published figures.

Real-ESRGAN's own speed figures are frames per second of a 640×480 RGB input
upscaled ×4 on an RTX 4090: RRDBNet (RealESRGAN_x4plus) 4.66 fps and
SRVGGNetCompact 64×16 (realesr-animevideov3's shape) 210 fps. This script
times jaxsr's forward pass on the same frames and networks, on whatever
device jax runs on, in float32 and bfloat16, so that a GPU run answers "how
far past those figures are we?" in one table. Weights are random (speed does
not depend on their values).

Each row is one network, precision and batch: the RGB forward pass that
``jaxsr upscale`` runs on colour frames (:class:`jaxsr.inference.model.Model`,
the network built for the device as jaxsr builds it), compiled ahead of
time, then ``--reps`` timed calls from host arrays to host arrays (uploads and
downloads included, as a video pipeline pays them). Printed: frames/s, output
megapixels/s (2560×1920 per frame), and the ratio to the published figure
(> 1: faster). On a CPU the figures are far below and the run is slow; use
``--size 64x48 --blocks 1`` for a dry run.

  python benchmarks/bench_fps.py [--nets rrdbnet,srvgg] [--dtypes float32,bfloat16] \\
      [--batches 1,8] [--size 640x480] [--reps 10] [--blocks 23] [--json FILE]
"""
import argparse
import json
import pathlib
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Published RTX 4090 frames/s at 640×480 ×4 (the figures the speed issue quotes).
PUBLISHED_FPS = {"rrdbnet": 4.66, "srvgg": 210.0}
SCALE = 4


def build(net: str, blocks: int, dtype: str):
  """A jaxsr Model of the network with random weights, run in ``dtype``."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from jaxsr.inference import model as model_lib  # pylint: disable=import-outside-toplevel
  from jaxsr.models import RRDBNet, SRVGGNetCompact  # pylint: disable=import-outside-toplevel
  if net == "rrdbnet":
    module = RRDBNet(3, 3, upscale=SCALE, num_feat=64, num_block=blocks, num_grow_ch=32)
  else:
    module = SRVGGNetCompact(3, 3, upscale=SCALE, num_feat=64, num_conv=16, act_type="prelu")
  variables = module.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
  return model_lib.from_module(module, variables, {"arch": net}).with_dtype(dtype)


def time_row(net: str, blocks: int, dtype: str, batch: int, height: int, width: int,
             reps: int) -> dict:
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  model = build(net, blocks, dtype)
  frames = np.random.default_rng(0).random((batch, height, width, 3), np.float32)
  spec = jax.ShapeDtypeStruct(frames.shape, jnp.float32)
  start = time.perf_counter()
  compiled = model.rgb_forward.lower(model.variables, spec).compile()
  compile_s = time.perf_counter() - start
  run = lambda: np.asarray(compiled(model.variables, jnp.asarray(frames)))  # pylint: disable=unnecessary-lambda-assignment
  out = run()  # Warm-up: first transfers, allocator.
  assert out.shape == (batch, height * SCALE, width * SCALE, 3), out.shape
  times = []
  for _ in range(reps):
    start = time.perf_counter()
    run()
    times.append(time.perf_counter() - start)
  median = float(np.median(times))
  fps = batch / median
  row = dict(net=net, blocks=blocks, dtype=dtype, batch=batch, size=f"{width}x{height}",
             compile_s=round(compile_s, 2), median_s=median, fps=fps,
             output_mp_per_s=fps * height * width * SCALE * SCALE / 1e6)
  if (height, width) == (480, 640) and (net != "rrdbnet" or blocks == 23):
    row["vs_published"] = fps / PUBLISHED_FPS[net]
  return row


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--nets", default="rrdbnet,srvgg")
  p.add_argument("--dtypes", default="float32,bfloat16")
  p.add_argument("--batches", default="1,8")
  p.add_argument("--size", default="640x480", help="WIDTHxHEIGHT of the input frames")
  p.add_argument("--reps", type=int, default=10)
  p.add_argument("--blocks", type=int, default=23, help="RRDBNet blocks (23: x4plus)")
  p.add_argument("--json", default=None)
  args = p.parse_args(argv)
  width, height = (int(v) for v in args.size.lower().split("x"))
  import jax  # pylint: disable=import-outside-toplevel
  device = jax.devices()[0]
  print(f"device: {device.platform} {device.device_kind}; jax {jax.__version__}")
  rows = []
  print("| net | dtype | batch | compile s | median s | frames/s | output MP/s | / published |")
  print("|---|---|---:|---:|---:|---:|---:|---:|")
  for net in args.nets.split(","):
    if net not in PUBLISHED_FPS:
      p.error(f"--nets: unknown '{net}'; choose from {', '.join(PUBLISHED_FPS)}")
    for dtype in args.dtypes.split(","):
      for batch in (int(b) for b in args.batches.split(",")):
        row = time_row(net, args.blocks, dtype, batch, height, width, args.reps)
        rows.append(row)
        ratio = f"{row['vs_published']:.3g}x" if "vs_published" in row else "-"
        print(f"| {net} | {dtype} | {batch} | {row['compile_s']:.1f} | {row['median_s']:.4f} "
              f"| {row['fps']:.2f} | {row['output_mp_per_s']:.1f} | {ratio} |", flush=True)
  print(f"published (RTX 4090, 640x480 x4): {PUBLISHED_FPS}")
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(dict(
        device=f"{device.platform} {device.device_kind}", jax=jax.__version__,
        published_fps=PUBLISHED_FPS, rows=rows), indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
