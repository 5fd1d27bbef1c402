"""Tiled x4 upscaling of a radiograph with RRDBNet: jaxsr vs Real-ESRGAN's RealESRGANer.

The product question: how fast does each stack turn a grey 8-bit radiograph
into its x4 upscale, tile by tile, on CPU? Both sides get the same uint8 image
and return a uint8 image (clip, x255, round), with the same random RRDBNet
weights (23 blocks, 64 features, growth 32), written once by the jax side as a
{'params_ema': ...} .pth and loaded by RealESRGANer with strict=True.

  * reference: realesrgan.RealESRGANer(scale=4, model=basicsr RRDBNet(3, 3),
    tile=T, tile_pad=P, pre_pad=0, half=False, device=cpu).enhance(img),
    torch.set_num_threads(2). It turns the grey image into RGB itself, so its
    network has 3 channels.
  * jaxsr, 3 channels: the same weights, jaxsr.inference.tiling.upscale with
    the forward pass of jaxsr.inference.model.Model (grey repeated into 3
    channels, each output channel clamped, then luma, as RealESRGANer; the
    network built for one device as jaxsr builds it), tiles of T + 2P
    overlapping by 2P: the same number of tiles as the reference, each as
    large as its largest.
  * jaxsr, 1 channel (extra row): a 1-channel RRDBNet, which is what a
    radiograph model trained with jaxsr is.

The jitted network is compiled ahead of time for the tile shape and the
compile time is reported apart (torch's first call on a small input warms it
up). Throughput is output megapixels per second; ratio = jaxsr / reference.

Runtime: one RRDBNet-23 pass over 512 x 512 takes a few minutes on 2 cores,
so the default is the 512 x 512 centre crop (~8-10 min for all three rows);
--size 1024 runs the whole radiograph (4x longer).

  python benchmarks/bench_upscale.py \
      [--input ../shared/data/xray/png/nih_00000075_000.png] [--size 512] \
      [--tile 256 --tile_pad 10 --reps 1 --ref_python PATH --no_ref --json FILE]
"""
import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_INPUT = REPO.parent / "shared" / "data" / "xray" / "png" / "nih_00000075_000.png"
DEFAULT_REF_VENV = pathlib.Path.home() / ".cache" / "jaxsr" / "ref-venv"
MARK = "BENCH_JSON "
SCALE = 4
NET = dict(num_feat=64, num_block=23, num_grow_ch=32)


def load_crop(path, size):
  """Centre crop of side `size` (0: whole image) of a grey 8-bit image."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from PIL import Image  # pylint: disable=import-outside-toplevel
  img = np.asarray(Image.open(path).convert("L"))
  if size:
    top, left = max((img.shape[0] - size) // 2, 0), max((img.shape[1] - size) // 2, 0)
    img = img[top:top + size, left:left + size]
  return np.ascontiguousarray(img)


def _emit(records, meta):
  print(MARK + json.dumps(dict(records=records, meta=meta)), flush=True)


# --------------------------------------------------------------------------
# jax worker

def jax_worker(cfg):
  sys.path.insert(0, str(REPO))
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from jaxsr import weights  # pylint: disable=import-outside-toplevel
  from jaxsr.inference import model as model_lib  # pylint: disable=import-outside-toplevel
  from jaxsr.inference import tiling  # pylint: disable=import-outside-toplevel
  from jaxsr.io import torch_checkpoint  # pylint: disable=import-outside-toplevel
  from jaxsr.models import RRDBNet  # pylint: disable=import-outside-toplevel

  img = load_crop(cfg["input"], cfg["size"])
  tile, overlap = cfg["tile"] + 2 * cfg["tile_pad"], 2 * cfg["tile_pad"]
  th, tw = min(tile, img.shape[0]), min(tile, img.shape[1])
  records = []
  for channels in cfg["channels"]:
    module = RRDBNet(channels, channels, upscale=SCALE, **NET)
    variables = module.init(jax.random.key(channels), jnp.zeros((1, 16, 16, channels)))
    if channels == 3:  # The reference loads exactly these weights.
      torch_checkpoint.save_state_dict(weights.to_state_dict(variables), cfg["weights"],
                                       wrap_key="params_ema")
      patch = np.repeat(img[None, :32, :32, None] / np.float32(255.0), 3, axis=-1)
      np.save(cfg["jax_patch"], np.asarray(module.apply(variables, patch)))
    model = model_lib.from_module(module, jax.device_put(variables))
    t0 = time.perf_counter()
    compiled = model.forward.lower(model.variables,
                                   jax.ShapeDtypeStruct((1, th, tw), jnp.float32)).compile()
    compile_s = time.perf_counter() - t0
    predict = lambda t, f=compiled, m=model: np.asarray(f(m.variables, jnp.asarray(t, jnp.float32)))

    def enhance():
      sr = tiling.upscale(predict, img.astype(np.float32) / 255.0, SCALE, tile=tile,
                          overlap=overlap)
      return np.round(np.clip(sr, 0.0, 1.0) * 255.0).astype(np.uint8)

    times, load = [], []
    for _ in range(cfg["reps"]):
      load.append(os.getloadavg()[0])
      t0 = time.perf_counter()
      out = enhance()
      times.append(time.perf_counter() - t0)
    if channels == 3:
      np.save(cfg["jax_out"], out)
    records.append(dict(side=f"jaxsr, RRDBNet {channels}-ch", channels=channels, times=times,
                        compile_s=compile_s, out_shape=list(out.shape), load=load,
                        tiles=tiling.tile_count(img.shape, tile, overlap), tile=f"{th}x{tw}"))
  _emit(records, dict(jax=jax.__version__, backend=jax.default_backend()))


# --------------------------------------------------------------------------
# torch worker

def torch_worker(cfg):
  import math  # pylint: disable=import-outside-toplevel
  import warnings  # pylint: disable=import-outside-toplevel
  warnings.filterwarnings("ignore")
  import numpy as np  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  from basicsr.archs.rrdbnet_arch import RRDBNet  # pylint: disable=import-outside-toplevel
  from realesrgan import RealESRGANer  # pylint: disable=import-outside-toplevel

  torch.set_num_threads(cfg["threads"])
  img = load_crop(cfg["input"], cfg["size"])
  net = RRDBNet(num_in_ch=3, num_out_ch=3, scale=SCALE, **NET)
  upsampler = RealESRGANer(scale=SCALE, model_path=cfg["weights"], model=net, tile=cfg["tile"],
                           tile_pad=cfg["tile_pad"], pre_pad=0, half=False,
                           device=torch.device("cpu"))
  patch = torch.from_numpy(np.repeat(img[None, None, :32, :32] / np.float32(255.0), 3, axis=1))
  t0 = time.perf_counter()
  with torch.no_grad():  # Warm-up (torch's first call allocates), and the weights check.
    raw = upsampler.model(patch).numpy()
  warm_s = time.perf_counter() - t0
  np.save(cfg["ref_patch"], np.transpose(raw, (0, 2, 3, 1)))
  times, load = [], []
  for _ in range(cfg["reps"]):
    load.append(os.getloadavg()[0])
    t0 = time.perf_counter()
    out, _ = upsampler.enhance(img, outscale=SCALE)
    times.append(time.perf_counter() - t0)
  np.save(cfg["ref_out"], out)
  tiles = math.ceil(img.shape[0] / cfg["tile"]) * math.ceil(img.shape[1] / cfg["tile"])
  side = min(cfg["tile"] + 2 * cfg["tile_pad"], img.shape[0])
  records = [dict(side="RealESRGANer, RRDBNet 3-ch", channels=3, times=times, compile_s=warm_s,
                  out_shape=list(out.shape), load=load, tiles=tiles,
                  tile=f"<={side}x{min(cfg['tile'] + 2 * cfg['tile_pad'], img.shape[1])}")]
  _emit(records, dict(torch=torch.__version__, threads=torch.get_num_threads()))


# --------------------------------------------------------------------------
# driver

def run_worker(python, kind, cfg):
  cmd = [str(python), os.path.abspath(__file__), "--worker", kind, "--config", json.dumps(cfg)]
  proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                        cwd=REPO, check=False)
  for line in reversed(proc.stdout.splitlines()):
    if line.startswith(MARK):
      return json.loads(line[len(MARK):])
  sys.stderr.write(f"{kind} worker failed (exit {proc.returncode}):\n"
                   f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}\n")
  return None


def print_table(records, out_mpix):
  ref = next((r for r in records if r["side"].startswith("RealESRGANer")), None)
  best = lambda r: min(r["times"])
  head = ("side", "tiles", "tile (LR px)", "compile/warm-up s", "wall s (best of reps)",
          "output MP/s", "ratio vs reference", "load avg")
  rows = []
  for r in records:
    ratio = f"{best(ref) / best(r):.2f}x" if ref else "-"
    rows.append((r["side"], str(r["tiles"]), r["tile"], f"{r['compile_s']:.1f}",
                 " / ".join(f"{t:.1f}" for t in r["times"]), f"{out_mpix / best(r):.4f}", ratio,
                 " / ".join(f"{x:.1f}" for x in r["load"])))
  widths = [max(len(x) for x in col) for col in zip(head, *rows)]
  line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
  print(line(head))
  print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
  for row in rows:
    print(line(row))


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
  p.add_argument("--input", default=str(DEFAULT_INPUT), help="grey 8-bit image (PNG)")
  p.add_argument("--size", type=int, default=512,
                 help="centre crop side in pixels; 0: the whole image (1024 for the default)")
  p.add_argument("--tile", type=int, default=256, help="RealESRGANer tile (input px)")
  p.add_argument("--tile_pad", type=int, default=10, help="RealESRGANer tile_pad (input px)")
  p.add_argument("--reps", type=int, default=1, help="timed runs per side")
  p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
  p.add_argument("--channels", default="3,1", help="jaxsr RRDBNet channel counts to time")
  p.add_argument("--ref_python", default=None,
                 help="python of the reference venv (default $JAXSR_REF_VENV/bin/python "
                 "or ~/.cache/jaxsr/ref-venv/bin/python)")
  p.add_argument("--no_ref", action="store_true", help="skip the reference")
  p.add_argument("--json", default=None, help="also write the results here")
  p.add_argument("--worker", choices=("jax", "torch"), help=argparse.SUPPRESS)
  p.add_argument("--config", help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.worker:
    cfg = json.loads(args.config)
    (jax_worker if args.worker == "jax" else torch_worker)(cfg)
    return

  import numpy as np  # pylint: disable=import-outside-toplevel
  channels = [int(c) for c in args.channels.split(",")]
  if not args.no_ref and 3 not in channels:
    channels = [3] + channels  # The reference needs the 3-channel weights written.
  ref_python = pathlib.Path(args.ref_python or pathlib.Path(
      os.environ.get("JAXSR_REF_VENV", DEFAULT_REF_VENV)) / "bin" / "python")
  use_ref = not args.no_ref
  if use_ref and not ref_python.exists():
    print(f"reference python not found at {ref_python}; run benchmarks/setup_reference.sh")
    use_ref = False
  img = load_crop(args.input, args.size)
  out_mpix = img.shape[0] * img.shape[1] * SCALE * SCALE / 1e6
  print(f"host: {platform.node()} {platform.machine()}, {os.cpu_count()} cpus; "
        f"load average {os.getloadavg()[0]:.2f}")
  print(f"input: {args.input} crop {img.shape[1]}x{img.shape[0]} -> x{SCALE} "
        f"({out_mpix:.2f} MP out); RRDBNet {NET}; RealESRGANer tile {args.tile} "
        f"tile_pad {args.tile_pad} pre_pad 0; jaxsr tile {args.tile + 2 * args.tile_pad} "
        f"overlap {2 * args.tile_pad}", flush=True)
  with tempfile.TemporaryDirectory() as tmp:
    cfg = dict(input=str(args.input), size=args.size, tile=args.tile, tile_pad=args.tile_pad,
               reps=args.reps, threads=args.threads, channels=channels,
               weights=os.path.join(tmp, "rrdbnet_x4_c3.pth"),
               jax_out=os.path.join(tmp, "jax.npy"), ref_out=os.path.join(tmp, "ref.npy"),
               jax_patch=os.path.join(tmp, "jax_patch.npy"),
               ref_patch=os.path.join(tmp, "ref_patch.npy"))
    records, metas = [], {}
    for kind, python, on in (("jax", sys.executable, True), ("torch", ref_python, use_ref)):
      if not on:
        continue
      t0 = time.perf_counter()
      out = run_worker(python, kind, cfg)
      if out is None:
        sys.exit(1)
      records += out["records"]
      metas[kind] = out["meta"]
      print(f"{kind} worker: {out['meta']}, {time.perf_counter() - t0:.0f} s; "
            f"load average {os.getloadavg()[0]:.2f}", flush=True)
    agreement = None
    if use_ref and 3 in channels:
      a = np.load(cfg["jax_out"]).astype(np.int16)
      b = np.load(cfg["ref_out"]).astype(np.int16)
      diff = np.abs(a - b)
      agreement = dict(max=int(diff.max()), mean=float(diff.mean()),
                       frac_equal=float((diff == 0).mean()),
                       net_max=float(np.abs(np.load(cfg["jax_patch"])
                                            - np.load(cfg["ref_patch"])).max()))
  print()
  print_table(records, out_mpix)
  print("\noutput MP/s uses the best rep; ratio > 1: jaxsr is faster than RealESRGANer.")
  if agreement:
    print(f"same network: max |jaxsr - torch| of the raw 3-ch output on a 32x32 patch "
          f"{agreement['net_max']:.2e}")
    print(f"3-ch uint8 outputs, jaxsr vs reference: max |diff| {agreement['max']}, mean "
          f"{agreement['mean']:.4f}, {100 * agreement['frac_equal']:.2f}% equal (tile seams "
          "are blended by jaxsr and cut by RealESRGANer; grey out is the channel mean in jaxsr, "
          "cv2's BGR2GRAY luma in RealESRGANer, which differ for random weights)")
  if args.json:
    with open(args.json, "w", encoding="utf-8") as f:
      json.dump(dict(config=cfg, meta=metas, records=records, agreement=agreement,
                     out_mpix=out_mpix), f, indent=1)


if __name__ == "__main__":
  main()
