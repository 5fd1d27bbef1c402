"""Writes a grid PNG of HR patches and their degraded LR versions, to eyeball the pipeline.

  python -m jaxsr.degradations.preview --input=DIR --output=grid.png [--seed=0]

Each row is one radiograph from DIR: the HR crop (gt_size), its USM target,
and the LR (nearest-upscaled to the same size so pixels stay visible). The
draws are those of training step `--step` with `--seed`, so a grid can be
regenerated exactly.
"""
import argparse
import pathlib

import jax
import numpy as np
from PIL import Image

from jaxsr.degradations import pipeline, sampling
from jaxsr.io import images


def make_grid(paths, cfg, seed: int = 0, step: int = 0) -> np.ndarray:
  """uint8 (rows * gt, 3 * gt) grid: HR | HR USM | LR for each image."""
  t = sampling.RealESRGANSample.from_config(cfg, num_channels=1)
  recs = [t.random_map({"image": images.read_image(str(p)).pixels},
                       np.random.default_rng([seed, i])) for i, p in enumerate(paths)]
  batch = {k: np.stack([r[k] for r in recs]) for k in recs[0]}
  cfg.queue_size = len(recs)
  pool = pipeline.init_pool_state(cfg, len(recs), 1)  # empty: the batch passes through
  key = jax.random.fold_in(jax.random.key(seed), step)
  out, _ = jax.jit(pipeline.make_degrade_fn(cfg))(batch, key, pool)
  lr = np.repeat(np.repeat(np.asarray(out["lr"]), cfg.scale, 1), cfg.scale, 2)
  rows = np.concatenate([np.asarray(out["hr"]), np.asarray(out["hr_usm"]), lr], axis=2)
  grid = np.concatenate(list(rows[..., 0]), axis=0)
  return np.round(np.clip(grid, 0, 1) * 255).astype(np.uint8)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--input", required=True, help="folder of radiographs (searched recursively)")
  p.add_argument("--output", required=True, help="PNG to write")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--step", type=int, default=0)
  p.add_argument("--max_images", type=int, default=6)
  args = p.parse_args(argv)
  paths = sorted(q for q in pathlib.Path(args.input).rglob("*")
                 if q.suffix.lower() in images.IMAGE_EXTENSIONS)[:args.max_images]
  if not paths:
    raise SystemExit(f"{args.input}: no images found")
  grid = make_grid(paths, pipeline.default_config(), args.seed, args.step)
  Image.fromarray(grid).save(args.output)
  print(f"wrote {args.output}: {len(paths)} rows (HR | HR USM | LR x{pipeline.default_config().scale})")


if __name__ == "__main__":
  main()
