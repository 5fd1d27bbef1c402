"""Writes a labelled grid PNG of HR crops and their degraded LR versions, to eyeball the pipeline.

  python -m jaxsr.degradations.preview --input=DIR --output=grid.png [--seed=0]

Each row is one radiograph from DIR, named in the picture: the HR crop
(gt_size), its USM target, and the LR (nearest-upscaled to the same size so
pixels stay visible). Each row is drawn on the grey window of its own HR crop
(`figures.display_window`), so 10- to 15-bit images in 16-bit containers are
visible, and the three panels of a row stay comparable. The draws are those of
training step `--step` with `--seed`, so a grid can be regenerated exactly.
"""
import argparse

import jax
import numpy as np

from jaxsr import cli, compile_cache
from jaxsr.degradations import pipeline, sampling
from jaxsr.evaluation import figures  # Before pyplot: it selects the headless backend.
from jaxsr.io import images
import matplotlib.pyplot as plt  # pylint: disable=g-bad-import-order,wrong-import-order


def column_labels(scale: int) -> tuple[str, str, str]:
  return ("HR", "HR (USM)", f"LR ×{scale} nearest")


def degrade_rows(paths, cfg, seed: int = 0, step: int = 0) -> np.ndarray:
  """float32 (rows, gt, 3 * gt) in the images' [0, 1] units: HR | HR USM | LR."""
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
  return rows[..., 0].astype(np.float32)


def row_windows(rows: np.ndarray) -> list[tuple[float, float]]:
  """Each row's window: that of its HR crop (the first third of the row)."""
  width = rows.shape[2] // 3
  return [figures.display_window(row[:, :width]) for row in rows]


def make_grid(paths, cfg, seed: int = 0, step: int = 0) -> np.ndarray:
  """uint8 (rows * gt, 3 * gt) grid: HR | HR USM | LR, each row on its HR window."""
  rows = degrade_rows(paths, cfg, seed, step)
  windowed = [(row - low) / (high - low) for row, (low, high) in zip(rows, row_windows(rows))]
  grid = np.concatenate(windowed, axis=0)
  return np.round(np.clip(grid, 0, 1) * 255).astype(np.uint8)


def write_figure(rows: np.ndarray, names, path, scale: int, title: str = "") -> None:
  """The rows as a labelled figure: column labels on top, file names at the left."""
  width = rows.shape[2] // 3
  count = len(rows)
  fig, axes = plt.subplots(count, 3, figsize=(7.8, 2.7 * count + 0.4),
                           layout="constrained", squeeze=False)
  for axes_row, row, name, (low, high) in zip(axes, rows, names, row_windows(rows)):
    for column, ax in enumerate(axes_row):
      ax.imshow(row[:, column * width:(column + 1) * width], cmap="gray", vmin=low,
                vmax=high, interpolation="nearest")
      ax.set_xticks([])
      ax.set_yticks([])
    axes_row[0].set_ylabel(f"{name}\n{figures.window_text((low, high))}", fontsize=8)
  for ax, label in zip(axes[0], column_labels(scale)):
    ax.set_title(label, fontsize=10)
  if title:
    fig.suptitle(title, fontsize=10)
  figures.save_figure(fig, path)


def main(argv=None):
  p = argparse.ArgumentParser(
      prog="jaxsr preview",
      description="Writes a labelled PNG grid of HR crops from a folder of radiographs "
      "next to their USM targets and their degraded LR versions, as the training "
      "pipeline makes them, to check the degradations by eye.",
      formatter_class=cli.HelpFormatter)
  # SUPPRESS: a required flag has no default for the help to show.
  p.add_argument("--input", required=True, default=argparse.SUPPRESS,
                 help="folder of radiographs (searched recursively)")
  p.add_argument("--output", required=True, default=argparse.SUPPRESS, help="PNG to write")
  p.add_argument("--seed", type=int, default=0, help="seed of the degradation draws")
  p.add_argument("--step", type=int, default=0,
                 help="training step whose degradation draws to show")
  p.add_argument("--max_images", type=int, default=6, help="at most this many rows")
  compile_cache.add_argument(p)
  args = p.parse_args(argv)
  compile_cache.enable(args.compilation_cache)
  try:
    paths = images.list_images(args.input)[:args.max_images]
  except images.ImageReadError as error:
    raise SystemExit(str(error)) from None
  cfg = pipeline.default_params()
  rows = degrade_rows(paths, cfg, args.seed, args.step)
  write_figure(rows, [path.name for path in paths], args.output, cfg.scale,
               title=f"degradations of training step {args.step}, seed {args.seed}")
  print(f"wrote {args.output}: {len(paths)} rows (HR | HR USM | LR x{cfg.scale})")


if __name__ == "__main__":
  main()
