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

  python benchmarks/bench_upscale_process.py [--arch srvgg|srvgg48|rrdbnet] [--images 3] \\
      [--size 0] [--reps 2] [--tile 0] [--variant NAME=FLAGS ...] [--ref_python PATH] \\
      [--no_ref] [--json FILE]
  python benchmarks/bench_upscale_process.py --ct ../shared/data/ct/invesalius_head_ct \\
      --arch srvgg48 --scale 2

With --ct the inputs are the slices of a DICOM series, as 16-bit PNGs of
their stored values (the reference venv has no DICOM reader) for both sides,
and one more jaxsr side upscales the series itself (DICOM in and out) with
the shipped model jaxsr picks for it; slices/s and each side's peak RSS
(the child's ru_maxrss) are printed.

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
NETS = {"srvgg": dict(num_feat=64, num_conv=16, act_type="prelu"),
        "srvgg48": dict(num_feat=48, num_conv=10, act_type="prelu"),  # ct_x2's shape.
        "rrdbnet": dict(num_feat=64, num_block=23, num_grow_ch=32)}


def make_slices(series: pathlib.Path, folder: pathlib.Path) -> list:
  """The slices of a DICOM series as 16-bit PNGs of their stored values, in order
  (what the reference loop reads: its venv has no DICOM reader)."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  import pydicom  # pylint: disable=import-outside-toplevel
  from PIL import Image  # pylint: disable=import-outside-toplevel
  folder.mkdir(parents=True)
  shapes = []
  for i, path in enumerate(sorted(series.glob("*.dcm"))):
    stored = pydicom.dcmread(path).pixel_array
    stored = (stored.astype(np.int32) - min(int(stored.min()), 0)).astype(np.uint16)
    Image.fromarray(stored).save(folder / f"slice{i:04d}.png")
    shapes.append(stored.shape)
  return shapes


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


def write_weights(arch: str, scale: int, path: pathlib.Path) -> None:
  """Random 3-channel weights as a {'params_ema': ...} .pth both sides load."""
  sys.path.insert(0, str(REPO))
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from jaxsr import weights  # pylint: disable=import-outside-toplevel
  from jaxsr.io import torch_checkpoint  # pylint: disable=import-outside-toplevel
  from jaxsr.models import RRDBNet, SRVGGNetCompact  # pylint: disable=import-outside-toplevel
  cls = RRDBNet if arch == "rrdbnet" else SRVGGNetCompact
  module = cls(3, 3, upscale=scale, **NETS[arch])
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
  scale = cfg["scale"]
  if cfg["arch"] != "rrdbnet":
    from realesrgan.archs.srvgg_arch import SRVGGNetCompact  # pylint: disable=import-outside-toplevel
    net = SRVGGNetCompact(num_in_ch=3, num_out_ch=3, upscale=scale, **NETS[cfg["arch"]])
  else:
    from basicsr.archs.rrdbnet_arch import RRDBNet  # pylint: disable=import-outside-toplevel
    net = RRDBNet(num_in_ch=3, num_out_ch=3, scale=scale, **NETS["rrdbnet"])
  upsampler = RealESRGANer(scale=scale, model_path=cfg["weights"], model=net, tile=cfg["tile"],
                           tile_pad=10, pre_pad=0, half=False, device=torch.device("cpu"))
  out = pathlib.Path(cfg["output"])
  out.mkdir(parents=True, exist_ok=True)
  for path in sorted(pathlib.Path(cfg["input"]).glob("*.png")):
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    sr, _ = upsampler.enhance(img, outscale=scale)
    cv2.imwrite(str(out / path.name), sr)


def timed(command: list, env: dict | None = None) -> tuple[float, float]:
  """(wall seconds, peak RSS in GiB) of one child process."""
  with tempfile.TemporaryFile("w+") as err:
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
      err.seek(0)
      sys.exit(f"failed (exit {proc.returncode}): {shlex.join(command)}\n{err.read()[-3000:]}")
  return seconds, usage.ru_maxrss / 2 ** 20


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
  p.add_argument("--arch", choices=tuple(NETS), default="srvgg")
  p.add_argument("--scale", type=int, default=4)
  p.add_argument("--ct", default="",
                 help="a DICOM series folder: upscale its slices instead of radiographs, "
                 "and also the series itself with the shipped model (jaxsr upscale's default)")
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
    scale, unit = args.scale, "slice" if args.ct else "image"
    if args.ct:
      shapes = make_slices(pathlib.Path(args.ct), tmp / "in")
    else:
      shapes = make_inputs(pathlib.Path(args.input_dir), tmp / "in", args.images, args.size)
    weights = tmp / f"{args.arch}_x{scale}.pth"
    write_weights(args.arch, scale, weights)
    out_mpix = sum(h * w for h, w in shapes) * scale * scale / 1e6
    print(f"{len(shapes)} {unit}s {shapes[0][1]}x{shapes[0][0]} -> x{scale} "
          f"({out_mpix:.1f} MP out); {args.arch} {NETS[args.arch]}, 3 channels, random; "
          f"reference tile {args.tile}", flush=True)
    sides = {}
    for name, flags in variants.items():
      cache = tmp / f"cache_{name}"
      sides[f"jaxsr {name}".strip()] = [
          sys.executable, "-m", "jaxsr.upscale", f"--weights={weights}", f"--input={tmp / 'in'}",
          f"--output={tmp / 'out'}", "--overwrite", f"--compilation_cache={cache}",
          *shlex.split(flags)]
    if args.ct:  # What a user runs: the series itself, the shipped CT model (1 channel).
      sides["jaxsr series, shipped model"] = [
          sys.executable, "-m", "jaxsr.upscale", f"--input={args.ct}", f"--scale={scale}",
          f"--output={tmp / 'out_series'}", "--overwrite",
          f"--compilation_cache={tmp / 'cache_series'}"]
    if use_ref:
      cfg = dict(arch=args.arch, scale=scale, weights=str(weights), input=str(tmp / "in"),
                 output=str(tmp / "out_ref"), tile=args.tile, threads=args.threads)
      sides["RealESRGANer"] = [str(ref_python), os.path.abspath(__file__), "--worker",
                               "--config", json.dumps(cfg)]
    times = {side: [] for side in sides}
    peaks = {side: 0.0 for side in sides}
    for rep in range(args.reps):
      order = list(sides) if rep % 2 == 0 else list(reversed(sides))
      for side in order:
        seconds, peak = timed(sides[side])
        times[side].append(seconds)
        peaks[side] = max(peaks[side], peak)
        print(f"rep {rep + 1} {side}: {seconds:.1f} s, peak RSS {peak:.2f} GiB "
              f"(load {os.getloadavg()[0]:.1f})", flush=True)
    imports = [timed([sys.executable, "-c", "import jaxsr.upscale"])[0] for _ in range(3)]
  print()
  ref = statistics.median(times["RealESRGANer"]) if use_ref else None
  unit = "slice" if args.ct else "image"
  print(f"| side | runs (s) | median s | output MP/s | {unit}s/s | peak RSS GiB | reference / side |")
  print("|---|---|---:|---:|---:|---:|---:|")
  for side, runs in times.items():
    med = statistics.median(runs)
    ratio = f"{ref / med:.2f}x" if ref else "-"
    print(f"| {side} | {' / '.join(f'{t:.1f}' for t in runs)} | {med:.1f} | "
          f"{out_mpix / med:.3f} | {len(shapes) / med:.2f} | {peaks[side]:.2f} | {ratio} |")
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
      json.dump(dict(times=times, peaks=peaks, imports=imports, out_mpix=out_mpix, arch=args.arch,
                     variants=variants, images=args.images, size=args.size), f, indent=1)


if __name__ == "__main__":
  main()
