"""Size and x4 upscaling time of the radiograph architecture candidates (configs/xray_arch.py).

What decides which network ships as xray_x4: besides quality (its training
runs), a shipped model must stay under 20 MB and upscale a 2048x2048
radiograph x4 on a 2-core CPU in under a minute. For each candidate this
times the whole-image path of ``jaxsr upscale`` (``Model.upscale``, tiles of
512 LR pixels overlapping by 32, one grey channel, random weights: the
arithmetic does not depend on their values), compile included, and beside
it the reference: Real-ESRGAN's ``RealESRGANer`` with the same architecture
from ``realesrgan``/``basicsr`` (3 channels, as it turns a grey image into
RGB itself; tile 512, tile_pad 16), torch on 2 threads.

  python benchmarks/bench_xray_candidates.py [--candidates srvgg_64x10,rrdb_6x32] \
      [--size 2048] [--input PNG] [--no_ref] [--ref_python PATH] [--json FILE]

Prints one row per (candidate, side): parameters, float32 MB, wall seconds
(first call, compile included) and ratio = reference / jaxsr.
"""
import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_INPUT = REPO.parent / "shared" / "data" / "xray" / "png" / "nih_00000075_000.png"
DEFAULT_REF_VENV = pathlib.Path.home() / ".cache" / "jaxsr" / "ref-venv"
MARK = "BENCH_JSON "
SCALE, TILE, OVERLAP = 4, 512, 32


def candidates():
  sys.path.insert(0, str(REPO))
  from configs import xray_arch  # pylint: disable=import-outside-toplevel
  return xray_arch.CANDIDATES


def load_image(path, size):
  """A grey 8-bit radiograph resized (bicubic) to size x size."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from PIL import Image  # pylint: disable=import-outside-toplevel
  img = Image.open(path).convert("L").resize((size, size), Image.Resampling.BICUBIC)
  return np.asarray(img)


def jax_worker(cfg):
  sys.path.insert(0, str(REPO))
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from jaxsr import models  # pylint: disable=import-outside-toplevel
  from jaxsr.inference import model as model_lib  # pylint: disable=import-outside-toplevel

  img = load_image(cfg["input"], cfg["size"]).astype(np.float32) / 255.0
  spec = dict(candidates()[cfg["candidate"]])
  cls = models.generator_class(spec.pop("name"))
  module = cls(num_in_ch=1, num_out_ch=1, upscale=SCALE, **spec)
  variables = module.init(jax.random.key(0), jnp.zeros((1, 32, 32, 1)))
  params = sum(int(np.size(x)) for x in jax.tree_util.tree_leaves(variables))
  model = model_lib.from_module(module, jax.device_put(variables))
  load = os.getloadavg()[0]
  t0 = time.perf_counter()
  out = model.upscale(img, 8, tile=TILE, overlap=OVERLAP)
  wall = time.perf_counter() - t0
  print(MARK + json.dumps(dict(side="jaxsr (1-ch)", params=params, mb=params * 4 / 1e6,
                               wall=wall, load=load, out=list(out.shape),
                               jax=jax.__version__)), flush=True)


def torch_worker(cfg):
  import warnings  # pylint: disable=import-outside-toplevel
  warnings.filterwarnings("ignore")
  import numpy as np  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  from basicsr.archs.rrdbnet_arch import RRDBNet  # pylint: disable=import-outside-toplevel
  from realesrgan import RealESRGANer  # pylint: disable=import-outside-toplevel
  from realesrgan.archs.srvgg_arch import SRVGGNetCompact  # pylint: disable=import-outside-toplevel

  torch.set_num_threads(cfg["threads"])
  img = load_image(cfg["input"], cfg["size"])
  spec = dict(cfg["spec"])
  if spec.pop("name") == "srvgg":
    net = SRVGGNetCompact(num_in_ch=3, num_out_ch=3, num_feat=spec["num_feat"],
                          num_conv=spec["num_conv"], upscale=SCALE, act_type="prelu")
  else:
    net = RRDBNet(num_in_ch=3, num_out_ch=3, scale=SCALE, **spec)
  path = cfg["weights"]
  torch.save({"params": net.state_dict()}, path)
  upsampler = RealESRGANer(scale=SCALE, model_path=path, model=net, tile=TILE,
                           tile_pad=OVERLAP // 2, pre_pad=0, half=False,
                           device=torch.device("cpu"))
  params = sum(p.numel() for p in net.parameters())
  load = os.getloadavg()[0]
  t0 = time.perf_counter()
  out, _ = upsampler.enhance(img, outscale=SCALE)
  wall = time.perf_counter() - t0
  print(MARK + json.dumps(dict(side="RealESRGANer (3-ch)", params=params, mb=params * 4 / 1e6,
                               wall=wall, load=load, out=list(out.shape),
                               torch=torch.__version__)), flush=True)


def run_worker(python, kind, cfg):
  cmd = [str(python), os.path.abspath(__file__), "--worker", kind, "--config", json.dumps(cfg)]
  proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                        cwd=REPO, check=False)
  for line in reversed(proc.stdout.splitlines()):
    if line.startswith(MARK):
      return json.loads(line[len(MARK):])
  sys.stderr.write(f"{kind} worker failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}\n")
  return None


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
  p.add_argument("--candidates", default="", help="comma-separated names; default: all")
  p.add_argument("--input", default=str(DEFAULT_INPUT), help="grey radiograph (PNG)")
  p.add_argument("--size", type=int, default=2048, help="side of the input, resized")
  p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
  p.add_argument("--ref_python", default=None, help="python of the reference venv")
  p.add_argument("--no_ref", action="store_true", help="skip the reference")
  p.add_argument("--json", default=None, help="also write the rows here")
  p.add_argument("--worker", choices=("jax", "torch"), help=argparse.SUPPRESS)
  p.add_argument("--config", help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.worker:
    cfg = json.loads(args.config)
    (jax_worker if args.worker == "jax" else torch_worker)(cfg)
    return
  table = candidates()
  names = [n for n in args.candidates.split(",") if n] or list(table)
  unknown = sorted(set(names) - set(table))
  if unknown:
    sys.exit(f"unknown candidates {unknown}; choose from {sorted(table)}")
  ref_python = pathlib.Path(args.ref_python or pathlib.Path(
      os.environ.get("JAXSR_REF_VENV", DEFAULT_REF_VENV)) / "bin" / "python")
  use_ref = not args.no_ref and ref_python.exists()
  if not args.no_ref and not use_ref:
    print(f"reference python not found at {ref_python}; run benchmarks/setup_reference.sh")
  print(f"host: {platform.node()}, {os.cpu_count()} cpus; input {args.size}x{args.size} grey "
        f"8-bit -> x{SCALE}; tiles {TILE} LR px, overlap {OVERLAP}", flush=True)
  rows = []
  import tempfile  # pylint: disable=import-outside-toplevel
  with tempfile.TemporaryDirectory() as tmp:
    for name in names:
      cfg = dict(candidate=name, spec=table[name], input=args.input, size=args.size,
                 threads=args.threads, weights=os.path.join(tmp, f"{name}.pth"))
      sides = [("jax", sys.executable)] + ([("torch", ref_python)] if use_ref else [])
      for kind, python in sides:
        row = run_worker(python, kind, cfg)
        if row is None:
          sys.exit(1)
        row["candidate"] = name
        rows.append(row)
        print(f"  {name} {row['side']}: {row['wall']:.1f} s (load {row['load']:.1f})", flush=True)
  print(f"| candidate | side | parameters | float32 MB | x4 of {args.size}² s (compile "
        "included) | ratio ref/jaxsr | load avg |")
  print("|---|---|---:|---:|---:|---:|---:|")
  for row in rows:
    ours = next(r for r in rows if r["candidate"] == row["candidate"] and r["side"].startswith("jaxsr"))
    ref = next((r for r in rows if r["candidate"] == row["candidate"]
                and r["side"].startswith("Real")), None)
    ratio = f"{ref['wall'] / ours['wall']:.2f}" if ref and row is ours else ""
    print(f"| {row['candidate']} | {row['side']} | {row['params']:,} | {row['mb']:.2f} | "
          f"{row['wall']:.1f} | {ratio} | {row['load']:.1f} |")
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
  main()
