"""bfloat16 against float32 inference: error in PSNR and speed, on real radiographs.

For each image (default: the held-out radiographs of ../shared/data/xray/png),
the shipped model (--weights, default xray_x4) upscales its antialiased
bicubic LR in float32 and in bfloat16, both compiled ahead and timed
alternately (--reps each, best kept). Printed per image and on average: PSNR of
the bfloat16 output against the float32 one (both rounded to the image's
levels), their max |difference| in levels, and the speed ratio
float32 / bfloat16 (> 1: bfloat16 faster). Runs on whatever device jax
picks (CPU here, the GPU on a lent machine: benchmarks/gpu.sh).

  python benchmarks/bench_dtype.py [--hr ../shared/data/xray/png] [--weights xray_x4] \\
      [--reps 3] [--max_images 0]
"""
import argparse
import pathlib
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import jax  # pylint: disable=wrong-import-position
import jax.numpy as jnp  # pylint: disable=wrong-import-position

import jaxsr  # pylint: disable=wrong-import-position
from jaxsr import config as base  # pylint: disable=wrong-import-position
from jaxsr.degradations import bicubic  # pylint: disable=wrong-import-position
from jaxsr.io import images, levels  # pylint: disable=wrong-import-position


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
  p.add_argument("--hr", default=str(REPO.parent / "shared" / "data" / "xray" / "png"))
  p.add_argument("--weights", default="xray_x4")
  p.add_argument("--include", default=",".join(base.XRAY_HELDOUT))
  p.add_argument("--reps", type=int, default=3)
  p.add_argument("--max_images", type=int, default=0)
  args = p.parse_args()
  patterns = [s for s in args.include.split(",") if s]
  paths = [q for q in sorted(pathlib.Path(args.hr).rglob("*.png"))
           if any(q.match(pat) for pat in patterns)]
  if args.max_images:
    paths = paths[:args.max_images]
  if not paths:
    sys.exit(f"{args.hr}: no PNG matches {args.include}")
  models = {d: jaxsr.load_model(args.weights, dtype=d) for d in ("float32", "bfloat16")}
  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}; "
        f"{args.weights}, {len(paths)} images")
  print("| image | bits | LR | f32 s | bf16 s | f32 / bf16 | PSNR bf16 vs f32 (dB) | max diff (levels) |")
  print("|---|---:|---|---:|---:|---:|---:|---:|")
  psnrs, ratios = [], []
  for path in paths:
    image = images.read_image(path)
    scale = models["float32"].scale
    h, w = image.pixels.shape[0] // scale * scale, image.pixels.shape[1] // scale * scale
    lr = bicubic.make_lr(image.pixels[:h, :w], scale, image.bits)
    outs, best = {}, {}
    for dtype, model in models.items():
      compiled = model.forward.lower(model.variables,
                                     jax.ShapeDtypeStruct((1,) + lr.shape, jnp.float32)).compile()
      model.memo["compiled"] = compiled
    for _ in range(args.reps):
      for dtype, model in models.items():
        start = time.perf_counter()
        out = np.asarray(model.memo["compiled"](model.variables, jnp.asarray(lr[None])))[0]
        best[dtype] = min(best.get(dtype, np.inf), time.perf_counter() - start)
        outs[dtype] = np.clip(out, 0.0, 1.0)
    # Levels of the container; the peak of the data's own depth (12-bit data in a
    # 16-bit PNG is scored on 0-4095, as jaxsr evaluate does).
    a, b = (np.round(outs[d] * (2 ** image.bits - 1)) for d in ("float32", "bfloat16"))
    bits = levels.effective_bits(image.pixels, image.bits)
    peak = 2 ** bits - 1
    mse = float(np.mean((a - b) ** 2))
    psnr = 10 * np.log10(peak ** 2 / mse) if mse else float("inf")
    ratio = best["float32"] / best["bfloat16"]
    psnrs.append(psnr)
    ratios.append(ratio)
    print(f"| {path.name} | {bits} | {lr.shape[1]}x{lr.shape[0]} | {best['float32']:.2f} | "
          f"{best['bfloat16']:.2f} | {ratio:.2f}x | {psnr:.2f} | {int(np.abs(a - b).max())} |")
  print(f"\nmean PSNR of bfloat16 against float32: {np.mean(psnrs):.2f} dB; "
        f"median speed ratio float32 / bfloat16: {np.median(ratios):.2f}x")


if __name__ == "__main__":
  main()
