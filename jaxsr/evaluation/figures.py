"""Figures for an evaluation: a metrics bar chart and side-by-side crops.

Numbers live in metrics.csv; these PNGs are for looking. Radiographs are
drawn grey on a fixed [0, 1] window with nearest-neighbour display, so no
panel is contrast-stretched or smoothed differently from the others.
"""
import math
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # Headless: evaluations run on servers.
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from jaxsr.evaluation import report  # pylint: disable=g-import-not-at-top,wrong-import-position
from jaxsr.io import files  # pylint: disable=g-import-not-at-top,wrong-import-position

METRICS = (("psnr", "PSNR (dB)", "higher is better"),
           ("ssim", "SSIM", "higher is better"),
           ("mse", "MSE (grey levels²)", "lower is better"))


def _save_atomically(fig, path) -> None:
  """Saves a figure via a temporary file so a crash never leaves half a PNG."""
  try:
    files.write_atomically(path, lambda tmp: fig.savefig(tmp, format="png"), suffix=".png")
  finally:
    plt.close(fig)


def model_order(rows: Sequence[report.MetricRow]) -> list[str]:
  """Models in first-appearance order with bicubic first, as in summary.md."""
  models = list(dict.fromkeys(row.model for row in rows))
  return sorted(models, key=lambda m: 0 if m == report.BASELINE_MODEL else 1)


def metrics_chart(rows: Sequence[report.MetricRow], path, title: str = "") -> None:
  """One bar subplot per metric: per-model mean, error bar = per-image std.

  An image reproduced exactly has PSNR inf; it cannot be drawn, so PSNR bars
  use the finite values only and the model's label says how many were left out.
  """
  models = model_order(rows)
  if not models:
    raise ValueError("no metric rows to plot")
  fig, axes = plt.subplots(1, len(METRICS), figsize=(4.2 * len(METRICS), 4.2),
                           layout="constrained")
  colours = plt.get_cmap("tab10")(np.arange(len(models)) % 10)
  for ax, (key, label, hint) in zip(axes, METRICS):
    means, spreads, ticks = [], [], []
    for model in models:
      values = np.array([getattr(r, key) for r in rows if r.model == model], np.float64)
      finite = values[np.isfinite(values)]
      means.append(float(finite.mean()) if finite.size else math.nan)
      spreads.append(float(finite.std()) if finite.size else 0.0)
      left_out = values.size - finite.size
      ticks.append(model + (f"\n({left_out} inf left out)" if left_out else ""))
    x = np.arange(len(models))
    ax.bar(x, means, yerr=spreads, capsize=4, color=colours, edgecolor="black", linewidth=0.5)
    ax.set_xticks(x, ticks, rotation=30 if len(models) > 3 else 0, ha="right" if len(models) > 3 else "center")
    ax.set_title(f"{label}\n({hint})", fontsize=10)
    finite_means = [m for m in means if np.isfinite(m)]
    if key == "psnr" and finite_means:
      # PSNR differences are a few dB on a ~30 dB base: start the axis near them.
      low = min(m - s for m, s in zip(means, spreads) if np.isfinite(m))
      high = max(m + s for m, s in zip(means, spreads) if np.isfinite(m))
      pad = max(0.5, 0.15 * (high - low))
      ax.set_ylim(max(0.0, low - pad), high + pad)
    for xi, mean in zip(x, means):
      if np.isfinite(mean):
        text = f"{mean:.4f}" if key == "ssim" else f"{mean:.4g}" if key == "mse" else f"{mean:.2f}"
        ax.annotate(text, (xi, mean), textcoords="offset points", xytext=(0, 3),
                    ha="center", va="bottom", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
  images = len({r.image for r in rows})
  fig.suptitle((title + "\n" if title else "") +
               f"mean over {images} image{'s' if images != 1 else ''}; "
               "error bars: per-image standard deviation", fontsize=11)
  _save_atomically(fig, path)


def center_box(height: int, width: int, size: int, align: int = 1) -> tuple[int, int, int]:
  """(top, left, side) of a central square of at most `size`, on an `align` grid.

  Aligning to the scale makes the HR box map onto whole LR pixels.
  """
  side = min(size, height, width) // align * align
  top = (height - side) // 2 // align * align
  left = (width - side) // 2 // align * align
  return top, left, side


def crop_panels(panels: Sequence[tuple[str, np.ndarray]], path, title: str = "") -> None:
  """A row of same-size grey [0, 1] panels, each with its own title."""
  count = len(panels)
  fig, axes = plt.subplots(1, count, figsize=(2.6 * count, 3.1), layout="constrained",
                           squeeze=False)
  for ax, (label, image) in zip(axes[0], panels):
    ax.imshow(np.clip(image, 0.0, 1.0), cmap="gray", vmin=0.0, vmax=1.0,
              interpolation="nearest")
    ax.set_title(label, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
  if title:
    fig.suptitle(title, fontsize=10)
  _save_atomically(fig, path)
