"""How high PSNR can go on noisy HR images: a ceiling from each image's noise level.

A super-resolution model cannot predict the quantum noise of the HR image it is
scored against: the noise is independent of the LR. If the noise is white with
standard deviation sigma (grey levels), even a perfect, noise-free upscale
scores PSNR = 20 log10(peak / sigma) against the noisy HR. This estimates sigma
per image (Donoho's estimator: the median absolute deviation of the finest
diagonal Haar wavelet band over 0.6745, robust to edges) and prints that ceiling per
source group, beside which a model's gain over bicubic can be read as a share
of the headroom (ceiling - bicubic) it closes.

  python tools/noise_ceiling.py --hr=../shared/data/xray_train --validation \
      [--metrics=eval/xray_x4_val/metrics.csv] [--groups=nih=nih/*,mhh=mhh/*]

With --metrics (a jaxsr evaluate metrics.csv of the same images) it adds, for
each model, its mean PSNR and the share of the headroom it closes per group.
"""
import argparse
import collections
import math
import pathlib
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from jaxsr import evaluate as evaluate_cli  # pylint: disable=wrong-import-position
from jaxsr.evaluation import evaluate, report  # pylint: disable=wrong-import-position
from jaxsr.io import images, levels  # pylint: disable=wrong-import-position


def noise_sigma(pixels01: np.ndarray, bits: int, crop_border: int = 4) -> float:
  """Estimated white-noise sigma of one image, in grey levels of its depth."""
  top = levels.max_level(bits)
  image = np.asarray(pixels01, np.float64)[crop_border:-crop_border or None,
                                           crop_border:-crop_border or None] * top
  h, w = (image.shape[0] // 2) * 2, (image.shape[1] // 2) * 2
  a, b = image[0:h:2, 0:w:2], image[0:h:2, 1:w:2]
  c, d = image[1:h:2, 0:w:2], image[1:h:2, 1:w:2]
  diagonal = (a - b - c + d) / 2.0  # Orthonormal Haar HH band.
  return float(np.median(np.abs(diagonal)) / 0.6745)


def ceiling_psnr(sigma: float, bits: int) -> float:
  return math.inf if sigma <= 0 else 20 * math.log10(levels.max_level(bits) / sigma)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
  p.add_argument("--hr", required=True, help="folder of HR images (searched recursively)")
  p.add_argument("--include", default="", help="comma-separated glob patterns to keep")
  p.add_argument("--validation", action="store_true", help="keep only XRAY_VALIDATION")
  p.add_argument("--heldout", action="store_true", help="keep only XRAY_HELDOUT")
  p.add_argument("--groups", default="", help="NAME=GLOB,... (default: top folders)")
  p.add_argument("--metrics", default="", help="metrics.csv of jaxsr evaluate on these images")
  args = p.parse_args(argv)
  root = pathlib.Path(args.hr)
  groups = evaluate.parse_groups(args.groups)
  per_group = collections.defaultdict(list)
  ceilings = {}
  for path in evaluate_cli.select_images(images.list_images(root), root, args.include, "",
                                         args.heldout, args.validation):
    relative = path.relative_to(root).as_posix()
    image = images.read_image(path).at_data_depth()
    sigma = noise_sigma(image.pixels, image.bits)
    group = evaluate.group_of(relative, groups)
    ceilings[relative] = ceiling_psnr(sigma, image.bits)
    per_group[group].append((sigma, ceilings[relative]))
  if not per_group:
    print(f"error: {root}: no images selected", file=sys.stderr)
    return 2
  rows = report.read_metrics_csv(args.metrics) if args.metrics else []
  rows = [r for r in rows if r.slice is None and r.image in ceilings]
  models = list(dict.fromkeys(r.model for r in rows))
  head = ["Group", "Images", "noise sigma (levels)", "ceiling PSNR"]
  head += [f"{m} PSNR" for m in models] + [f"{m} headroom closed" for m in models
                                           if m != report.BASELINE_MODEL]
  print("| " + " | ".join(head) + " |")
  print("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
  for group, values in per_group.items():
    names = [n for n in ceilings if evaluate.group_of(n, groups) == group]
    cells = [group or "—", str(len(values)), f"{np.mean([s for s, _ in values]):.2f}",
             f"{np.mean([c for _, c in values]):.2f}"]
    means = {m: np.mean([r.psnr for r in rows if r.model == m and r.image in names])
             for m in models}
    cells += [f"{means[m]:.2f}" for m in models]
    base_psnr = means.get(report.BASELINE_MODEL)
    ceiling = np.mean([c for _, c in values])
    for m in models:
      if m != report.BASELINE_MODEL:
        closed = (means[m] - base_psnr) / (ceiling - base_psnr) if base_psnr is not None else math.nan
        cells.append(f"{100 * closed:.0f} %")
    print("| " + " | ".join(cells) + " |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
