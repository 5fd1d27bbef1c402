"""Figures for an evaluation: a metrics bar chart and side-by-side crops.

Numbers live in metrics.csv; these PNGs are for looking. Radiographs are
drawn grey with nearest-neighbour display and one display window shared by
every panel of a figure, so no panel is contrast-stretched or smoothed
differently from the others. The window follows the image's own range: a
10- to 15-bit radiograph in a 16-bit container fills only the bottom of
[0, 1] and would look black on a fixed [0, 1] window.
"""
import math
from typing import Sequence

import numpy as np

from jaxsr.evaluation import report
from jaxsr.io import files

METRICS = (("psnr", "PSNR (dB)", "higher is better"),
           ("ssim", "SSIM", "higher is better"),
           ("mse", "MSE (grey levels²)", "lower is better"))


def _pyplot():
  """matplotlib's pyplot on the headless Agg backend, imported when a figure is drawn.

  Commands that import this module without drawing (upscale, evaluate with
  ``--figure_crop=0``) then do not pay for matplotlib at start-up.
  """
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")  # Headless: evaluations run on servers.
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  return plt


def save_figure(fig, path) -> None:
  """Saves a figure via a temporary file so a crash never leaves half a PNG."""
  try:
    files.write_atomically(path, lambda tmp: fig.savefig(tmp, format="png"), suffix=".png")
  finally:
    _pyplot().close(fig)


def model_order(rows: Sequence[report.MetricRow]) -> list[str]:
  """Models in first-appearance order with bicubic first, as in summary.md."""
  models = list(dict.fromkeys(row.model for row in rows))
  return sorted(models, key=lambda m: 0 if m == report.BASELINE_MODEL else 1)


def bar_extents(values) -> tuple[float, float, float]:
  """(mean, lower, upper) of a bar and its error bar over the finite values.

  The bar is mean +- the per-image standard deviation, but MSE and SSIM
  cannot be negative, so the lower arm stops at zero: lower = min(std, mean).
  No finite value gives (nan, 0, 0): no bar, no error bar.
  """
  values = np.asarray(values, np.float64).ravel()
  finite = values[np.isfinite(values)]
  if not finite.size:
    return math.nan, 0.0, 0.0
  mean = float(finite.mean())
  std = float(finite.std())
  return mean, max(0.0, min(std, mean)), std


def metrics_chart(rows: Sequence[report.MetricRow], path, title: str = "") -> None:
  """One bar subplot per metric: per-model mean, error bar = per-image std.

  The error bar's lower arm is cut at zero (see `bar_extents`).

  An image reproduced exactly has PSNR inf; it cannot be drawn, so PSNR bars
  use the finite values only and the model's label says how many were left out.
  MSE is in each image's own grey levels (0..255 and 0..4095 differ by a
  factor of 258 for the same relative error), so where the images have
  several data ranges the MSE bars are over the range most of them share
  (`mse_rows`) and the panel's title says which.
  """
  models = model_order(rows)
  mse_source, mse_note = mse_rows(rows)
  if not models:
    raise ValueError("no metric rows to plot")
  plt = _pyplot()
  fig, axes = plt.subplots(1, len(METRICS), figsize=(4.2 * len(METRICS), 4.2),
                           layout="constrained")
  colours = plt.get_cmap("tab10")(np.arange(len(models)) % 10)
  for ax, (key, label, hint) in zip(axes, METRICS):
    means, lowers, uppers, ticks = [], [], [], []
    for model in models:
      source = mse_source if key == "mse" else rows
      values = np.array([getattr(r, key) for r in source if r.model == model], np.float64)
      mean, lower, upper = bar_extents(values)
      means.append(mean)
      lowers.append(lower)
      uppers.append(upper)
      left_out = int(np.sum(~np.isfinite(values)))
      ticks.append(model + (f"\n({left_out} inf left out)" if left_out else ""))
    x = np.arange(len(models))
    ax.bar(x, means, yerr=[lowers, uppers], capsize=4, color=colours, edgecolor="black",
           linewidth=0.5)
    ax.set_xticks(x, ticks, rotation=30 if len(models) > 3 else 0, ha="right" if len(models) > 3 else "center")
    note = mse_note if key == "mse" else ""
    ax.set_title(f"{label}{note}\n({hint})", fontsize=10)
    finite_means = [m for m in means if np.isfinite(m)]
    if key == "psnr" and finite_means:
      # PSNR differences are a few dB on a ~30 dB base: start the axis near them.
      low = min(m - lo for m, lo in zip(means, lowers) if np.isfinite(m))
      high = max(m + up for m, up in zip(means, uppers) if np.isfinite(m))
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
               "error bars: per-image standard deviation (cut at zero)", fontsize=11)
  save_figure(fig, path)


def mse_rows(rows: Sequence[report.MetricRow]) -> tuple[list, str]:
  """The rows whose MSE can be averaged together, and a note for the panel's title.

  Rows of one data range are all returned, with no note; otherwise those of
  the range most images share (ties: the smaller range), e.g. the 8-bit
  images of a set that also holds one 12-bit image.
  """
  images = {}
  for row in rows:
    images.setdefault(row.data_range, set()).add(row.image)
  if len(images) <= 1:
    return list(rows), ""
  data_range = max(images, key=lambda r: (len(images[r]), -r))
  n = len(images[data_range])
  return ([row for row in rows if row.data_range == data_range],
          f", 0..{data_range:g} only ({n} of {len({row.image for row in rows})} images)")


def center_box(height: int, width: int, size: int, align: int = 1) -> tuple[int, int, int]:
  """(top, left, side) of a central square of at most `size`, on an `align` grid.

  Aligning to the scale makes the HR box map onto whole LR pixels.
  """
  side = min(size, height, width) // align * align
  top = (height - side) // 2 // align * align
  left = (width - side) // 2 // align * align
  return top, left, side


def display_window(pixels01, window=None) -> tuple[float, float]:
  """(low, high) of the grey window to draw `pixels01` on, in its [0, 1] units.

  `window`, when given (e.g. a DICOM WindowCenter/Width the caller converted
  to [0, 1] pixel units), is used as is. Otherwise the window is the image's
  effective range, its 0.5th to 99.5th percentile, so a few hot or dead pixels
  do not flatten the rest; if that range is empty it is (min, max), and a
  constant image gets (0, 1).
  """
  if window is not None:
    low, high = (float(v) for v in window)
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
      raise ValueError(f"display window must be a (low, high) pair with low < high, "
                       f"got {window!r}")
    return low, high
  pixels = np.asarray(pixels01, np.float64).ravel()
  pixels = pixels[np.isfinite(pixels)]
  if not pixels.size:
    return 0.0, 1.0
  low, high = (float(v) for v in np.percentile(pixels, [0.5, 99.5]))
  if low < high:
    return low, high
  low, high = float(pixels.min()), float(pixels.max())
  if low < high:
    return low, high
  return 0.0, 1.0


def window_text(window: tuple[float, float]) -> str:
  """The window in the picture, so a reader knows the contrast was set."""
  low, high = window
  return f"grey window {low:.4g} to {high:.4g} of full scale"


def crop_panels(panels: Sequence[tuple[str, np.ndarray]], path, title: str = "",
                window=None, window_label: str = "") -> None:
  """A row of same-size grey panels, each with its own title, on one window.

  Every panel is drawn on the same window so they stay comparable: `window`
  if given, else `display_window` of the last panel (by convention the HR).
  `window_label` names a given window in the title (e.g. a CT window in HU).
  """
  if not panels:
    raise ValueError("no panels to draw")
  low, high = display_window(panels[-1][1], window)
  count = len(panels)
  fig, axes = _pyplot().subplots(1, count, figsize=(2.6 * count, 3.1), layout="constrained",
                           squeeze=False)
  for ax, (label, image) in zip(axes[0], panels):
    ax.imshow(np.asarray(image, np.float64), cmap="gray", vmin=low, vmax=high,
              interpolation="nearest")
    ax.set_title(label, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
  fig.suptitle((title + "\n" if title else "") + (window_label or window_text((low, high))),
               fontsize=10)
  save_figure(fig, path)
