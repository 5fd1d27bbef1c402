"""Whole-process upscaling of full radiographs: `jaxsr upscale` vs a `RealESRGANer` loop.

The user's question: how long does it take, from the shell prompt back to the
prompt, to upscale a folder of radiographs ×4 with the same weights? Both sides
are separate processes run on the same folder of 8-bit grey PNGs (default:
three whole 1024² NIH chest radiographs from ../shared/data/xray/png) and write
PNGs; the wall time counts start-up, decoding, the network and encoding.

  * reference: a loop as Real-ESRGAN's inference_realesrgan.py runs it:
    cv2.imread(IMREAD_UNCHANGED), RealESRGANer(scale=4, model=..., tile=--tile,
    tile_pad=10, pre_pad=0, half=False, device=cpu).enhance(img, outscale=4),
    cv2.imwrite, torch.set_num_threads(--threads), in the reference venv
    (benchmarks/setup_reference.sh). It turns grey into RGB itself, so its
    network has 3 channels.
  * jaxsr: `python -m jaxsr.upscale --weights=THE.pth --input=DIR --output=DIR2`
    with each --variant's flags (default: none, the planned tiles), on the same
    3-channel .pth (grey repeated into 3 channels, as the reference does). The
    first jaxsr run of each variant starts with an empty compilation cache
    ("cold"), later ones reuse it ("warm"); both are reported.

Weights: random, the same on both sides (written once by jaxsr as a
{'params_ema': ...} .pth that RealESRGANer loads): --arch srvgg is
SRVGGNetCompact 64 features, 16 convs, PReLU (realesr-general-x4v3's shape);
--arch rrdbnet is RRDBNet 23 blocks, 64 features, growth 32 (RealESRGAN_x4plus).
Speed does not depend on the weights' values.

Sides run alternately, the order swapped every repetition, so that the
host's drift falls on both alike. Printed: wall seconds per run, the median per
side, the ratio reference / jaxsr (> 1: jaxsr faster), and for jaxsr the
breakdown of its best warm run: bare import time (`import jaxsr.upscale` in a
process of its own), and compilation (cold minus warm).

  python benchmarks/bench_upscale_process.py [--arch srvgg|rrdbnet] [--images 3] \\
      [--size 0] [--reps 2] [--tile 0] [--variant NAME=FLAGS ...] [--ref_python PATH] \\
      [--no_ref] [--json FILE]

e.g. --variant planned= --variant 'tiles512=--tile=512 --tile_overlap=32'.
"""
import argparse
import json
import os
import pathlib
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DIR = REPO.parent / "shared" / "data" / "xray" / "png"
DEFAULT_REF_VENV = pathlib.Path.home() / ".cache" / "jaxsr" / "ref-venv"
SCALE = 4
NETS = {"srvgg": dict(num_feat=64, num_conv=16, act_type="prelu"),
        "rrdbnet": dict(num_feat=64, num_block=23, num_grow_ch=32)}


def make_inputs(source: pathlib.Path, folder: pathlib.Path, count: int, size: int) -> list:
  """The first ``count`` NIH PNGs of ``source``, centre-cropped to ``size`` (0: whole)."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from PIL import Image  # pylint: disable=import-outside-toplevel
  folder.mkdir(parents=True)
  names = sorted(p for p in source.glob("nih_*.png"))[:count]
  if len(names) < count:
    sys.exit(f"{source}: found {len(names)} nih_*.png, need {count}")
  shapes = []
  for path in names:
    img = np.asarray(Image.open(path).convert("L"))
    if size:
      top, left = max((img.shape[0] - size) // 2, 0), max((img.shape[1] - size) // 2, 0)
      img = img[top:top + size, left:left + size]
    Image.fromarray(np.ascontiguousarray(img)).save(folder / path.name)
    shapes.append(img.shape)
  return shapes


def write_weights(arch: str, path: pathlib.Path) -> None:
  """Random 3-channel weights as a {'params_ema': ...} .pth both sides load."""
  sys.path.insert(0, str(REPO))
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from jaxsr import weights  # pylint: disable=import-outside-toplevel
  from jaxsr.io import torch_checkpoint  # pylint: disable=import-outside-toplevel
  from jaxsr.models import RRDBNet, SRVGGNetCompact  # pylint: disable=import-outside-toplevel
  cls = SRVGGNetCompact if arch == "srvgg" else RRDBNet
  module = cls(3, 3, upscale=SCALE, **NETS[arch])
  variables = module.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
  torch_checkpoint.save_state_dict(weights.to_state_dict(variables), str(path),
                                   wrap_key="params_ema")


def reference_worker(cfg: dict) -> None:
  """The RealESRGANer loop over a folder (run by the reference venv's python)."""
  import warnings  # pylint: disable=import-outside-toplevel
  warnings.filterwarnings("ignore")
  import cv2  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  from realesrgan import RealESRGANer  # pylint: disable=import-outside-toplevel
  torch.set_num_threads(cfg["threads"])
  if cfg["arch"] == "srvgg":
    from realesrgan.archs.srvgg_arch import SRVGGNetCompact  # pylint: disable=import-outside-toplevel
    net = SRVGGNetCompact(num_in_ch=3, num_out_ch=3, upscale=SCALE, **NETS["srvgg"])
  else:
    from basicsr.archs.rrdbnet_arch import RRDBNet  # pylint: disable=import-outside-toplevel
    net = RRDBNet(num_in_ch=3, num_out_ch=3, scale=SCALE, **NETS["rrdbnet"])
  upsampler = RealESRGANer(scale=SCALE, model_path=cfg["weights"], model=net, tile=cfg["tile"],
                           tile_pad=10, pre_pad=0, half=False, device=torch.device("cpu"))
  out = pathlib.Path(cfg["output"])
  out.mkdir(parents=True, exist_ok=True)
  for path in sorted(pathlib.Path(cfg["input"]).glob("*.png")):
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    sr, _ = upsampler.enhance(img, outscale=SCALE)
    cv2.imwrite(str(out / path.name), sr)


def timed(command: list, env: dict | None = None) -> float:
  start = time.perf_counter()
  proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
  seconds = time.perf_counter() - start
  if proc.returncode:
    sys.exit(f"failed (exit {proc.returncode}): {shlex.join(command)}\n{proc.stderr[-3000:]}")
  return seconds


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
  p.add_argument("--arch", choices=tuple(NETS), default="srvgg")
  p.add_argument("--input_dir", default=str(DEFAULT_DIR), help="folder with nih_*.png")
  p.add_argument("--images", type=int, default=3)
  p.add_argument("--size", type=int, default=0, help="centre crop side; 0: whole images")
  p.add_argument("--reps", type=int, default=2, help="runs per side")
  p.add_argument("--tile", type=int, default=0, help="RealESRGANer tile (0: whole, its default)")
  p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
  p.add_argument("--variant", action="append", default=None,
                 help="NAME=FLAGS: a jaxsr side with these extra upscale flags (repeatable)")
  p.add_argument("--ref_python", default=None)
  p.add_argument("--no_ref", action="store_true")
  p.add_argument("--json", default=None)
  p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  p.add_argument("--config", help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.worker:
    reference_worker(json.loads(args.config))
    return
  variants = dict(v.split("=", 1) for v in (args.variant or ["planned="]))
  ref_python = pathlib.Path(args.ref_python or pathlib.Path(
      os.environ.get("JAXSR_REF_VENV", DEFAULT_REF_VENV)) / "bin" / "python")
  use_ref = not args.no_ref and ref_python.exists()
  if not args.no_ref and not use_ref:
    print(f"reference python not found at {ref_python}; run benchmarks/setup_reference.sh")
  print(f"host: {platform.node()}, {os.cpu_count()} cpus; load average {os.getloadavg()[0]:.2f}")
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    shapes = make_inputs(pathlib.Path(args.input_dir), tmp / "in", args.images, args.size)
    weights = tmp / f"{args.arch}_x4.pth"
    write_weights(args.arch, weights)
    out_mpix = sum(h * w for h, w in shapes) * SCALE * SCALE / 1e6
    print(f"{args.images} images {shapes[0][1]}x{shapes[0][0]} -> x{SCALE} ({out_mpix:.1f} MP out); "
          f"{args.arch} {NETS[args.arch]}; reference tile {args.tile}", flush=True)
    sides = {}
    for name, flags in variants.items():
      cache = tmp / f"cache_{name}"
      sides[f"jaxsr {name}".strip()] = [
          sys.executable, "-m", "jaxsr.upscale", f"--weights={weights}", f"--input={tmp / 'in'}",
          f"--output={tmp / 'out'}", "--overwrite", f"--compilation_cache={cache}",
          *shlex.split(flags)]
    if use_ref:
      cfg = dict(arch=args.arch, weights=str(weights), input=str(tmp / "in"),
                 output=str(tmp / "out_ref"), tile=args.tile, threads=args.threads)
      sides["RealESRGANer"] = [str(ref_python), os.path.abspath(__file__), "--worker",
                               "--config", json.dumps(cfg)]
    times = {side: [] for side in sides}
    for rep in range(args.reps):
      order = list(sides) if rep % 2 == 0 else list(reversed(sides))
      for side in order:
        seconds = timed(sides[side])
        times[side].append(seconds)
        print(f"rep {rep + 1} {side}: {seconds:.1f} s (load {os.getloadavg()[0]:.1f})",
              flush=True)
    imports = [timed([sys.executable, "-c", "import jaxsr.upscale"]) for _ in range(3)]
  print()
  ref = statistics.median(times["RealESRGANer"]) if use_ref else None
  print("| side | runs (s) | median s | output MP/s | reference / side |")
  print("|---|---|---:|---:|---:|")
  for side, runs in times.items():
    med = statistics.median(runs)
    ratio = f"{ref / med:.2f}x" if ref else "-"
    print(f"| {side} | {' / '.join(f'{t:.1f}' for t in runs)} | {med:.1f} | "
          f"{out_mpix / med:.3f} | {ratio} |")
  print()
  import_s = min(imports)
  for side, runs in times.items():
    if not side.startswith("jaxsr") or len(runs) < 2:
      continue
    cold, warm = runs[0], min(runs[1:])
    print(f"{side} breakdown: cold {cold:.1f} s, warm {warm:.1f} s -> compilation about "
          f"{max(cold - warm, 0):.1f} s; import {import_s:.1f} s; the rest (reading, network, "
          f"writing) {warm - import_s:.1f} s")
  if args.json:
    with open(args.json, "w", encoding="utf-8") as f:
      json.dump(dict(times=times, imports=imports, out_mpix=out_mpix, arch=args.arch,
                     variants=variants, images=args.images, size=args.size), f, indent=1)


if __name__ == "__main__":
  main()
