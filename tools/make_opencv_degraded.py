"""A degraded LR test set made with plain OpenCV, independent of jaxsr's degradation code.

A model trained on jaxsr's own Real-ESRGAN draws should also help on
degradations it never saw. This writes, for every HR image, one LR made by a
different, simple pipeline (one fixed draw per image, seeded by --seed and the
image's name, so the set is the same on every machine):

  1. Gaussian blur, sigma uniform in [0.8, 1.6] (cv2.GaussianBlur, kernel 2*ceil(3 sigma)+1)
  2. bicubic downscaling by --scale (cv2.resize, INTER_CUBIC, no antialiasing)
  3. additive Gaussian noise, sigma uniform in [2, 6] grey levels of 255
  4. rounding to 8 bits, then JPEG at a quality uniform in [50, 85] (cv2.imencode)

HR images are cut to a multiple of the scale first (rows/columns dropped at
the bottom/right, as ``jaxsr evaluate`` does) and 16-bit images are reduced to
8 bits (the JPEG step has no deeper form), so each pair is written as
``OUT/hr/NAME.png`` (8-bit) and ``OUT/lr/NAME.png``, with ``OUT/draws.csv``
listing every draw. ``jaxsr evaluate --lr`` reads such pairs.

  python tools/make_opencv_degraded.py --hr=../shared/data/xray_train --output=DIR \
      [--include=nih_*,...] [--validation] [--scale=4] [--seed=0]

Needs opencv-python-headless (in the dev extras).
"""
import argparse
import csv
import hashlib
import math
import pathlib
import sys

import cv2
import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from jaxsr import errors  # pylint: disable=wrong-import-position
from jaxsr import evaluate as evaluate_cli  # pylint: disable=wrong-import-position
from jaxsr.io import images  # pylint: disable=wrong-import-position

BLUR_SIGMA = (0.8, 1.6)
NOISE_SIGMA = (2.0, 6.0)     # grey levels of 255
JPEG_QUALITY = (50, 85)


def draw(seed: int, name: str) -> dict:
  """The fixed draw of one image: a function of (seed, name) only."""
  digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
  rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
  return dict(blur_sigma=float(rng.uniform(*BLUR_SIGMA)),
              noise_sigma=float(rng.uniform(*NOISE_SIGMA)),
              jpeg_quality=int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)),
              noise_seed=int(rng.integers(2**31)))


def degrade(hr8: np.ndarray, scale: int, d: dict) -> np.ndarray:
  """uint8 (H, W) HR -> uint8 (H/scale, W/scale) LR: blur, resize, noise, JPEG."""
  sigma = d["blur_sigma"]
  size = 2 * math.ceil(3 * sigma) + 1
  blurred = cv2.GaussianBlur(hr8.astype(np.float32), (size, size), sigma,
                             borderType=cv2.BORDER_REFLECT_101)
  h, w = hr8.shape
  small = cv2.resize(blurred, (w // scale, h // scale), interpolation=cv2.INTER_CUBIC)
  noise = np.random.default_rng(d["noise_seed"]).normal(0.0, d["noise_sigma"], small.shape)
  lr8 = np.clip(np.rint(small + noise), 0, 255).astype(np.uint8)
  ok, encoded = cv2.imencode(".jpg", lr8, [int(cv2.IMWRITE_JPEG_QUALITY), d["jpeg_quality"]])
  if not ok:
    raise RuntimeError("JPEG encoding failed")
  return cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)


def to_8bit(image) -> np.ndarray:
  """An image's pixels at its data depth, rounded to 8 bits."""
  pixels = image.at_data_depth().pixels
  return np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
  p.add_argument("--hr", required=True, help="folder of HR radiographs (searched recursively)")
  p.add_argument("--output", required=True, help="new folder for hr/, lr/ and draws.csv")
  p.add_argument("--include", default="", help="comma-separated glob patterns to keep")
  p.add_argument("--validation", action="store_true",
                 help="keep only the radiograph models' validation patients (XRAY_VALIDATION)")
  p.add_argument("--scale", type=int, default=4)
  p.add_argument("--seed", type=int, default=0)
  args = p.parse_args(argv)
  root, out = pathlib.Path(args.hr), pathlib.Path(args.output)
  if out.exists() and any(out.iterdir()):
    print(f"error: {out}: exists and is not empty; choose a new folder", file=sys.stderr)
    return 2
  try:
    files = evaluate_cli.select_images(images.list_images(root), root, args.include, "",
                                       False, args.validation)
  except (images.ImageReadError, errors.UsageError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  rows, failed = [], 0
  for path in files:
    relative = path.relative_to(root).as_posix()
    try:
      hr8 = to_8bit(images.read_image(path))
    except images.ImageReadError as e:
      print(f"error: {e}", file=sys.stderr)
      failed += 1
      continue
    h, w = hr8.shape
    hr8 = hr8[:h - h % args.scale, :w - w % args.scale]
    d = draw(args.seed, relative)
    lr8 = degrade(hr8, args.scale, d)
    name = str(pathlib.PurePosixPath(relative).with_suffix(".png"))
    for sub, pixels in (("hr", hr8), ("lr", lr8)):
      target = out / sub / name
      target.parent.mkdir(parents=True, exist_ok=True)
      cv2.imwrite(str(target), pixels)
    rows.append(dict(image=name, **{k: v for k, v in d.items() if k != "noise_seed"}))
  if not rows:
    print(f"error: {root}: no images selected", file=sys.stderr)
    return 2
  with open(out / "draws.csv", "w", newline="", encoding="utf-8") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
  print(f"wrote {len(rows)} HR/LR pairs (x{args.scale}) to {out}")
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
