"""Full-reference image quality metrics: MSE, PSNR and SSIM.

All metrics work on grey levels (0..2**bits - 1), not on [0, 1] floats, so
that a 12-bit radiograph is judged against its own data range and the numbers
are comparable with published 8-bit results. Computation is float64 numpy.

SSIM follows Wang et al. (2004), "Image quality assessment: from error
visibility to structural similarity": an 11x11 Gaussian window with
sigma = 1.5, K1 = 0.01, K2 = 0.03 and population (not sample) covariance. The
SSIM map is averaged after dropping the window radius from every edge, which
reproduces ``skimage.metrics.structural_similarity(..., gaussian_weights=True,
sigma=1.5, use_sample_covariance=False)`` and BasicSR's ``calculate_ssim``.
"""
import math

import numpy as np
from scipy import ndimage

from jaxsr.io import levels
from jaxsr.io.levels import to_levels

SSIM_SIGMA = 1.5
# Truncating the Gaussian at 3.5 sigma gives the 11-tap window of the paper.
SSIM_TRUNCATE = 3.5
SSIM_RADIUS = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
SSIM_WINDOW = 2 * SSIM_RADIUS + 1
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def data_range(bits: int) -> float:
  """Peak grey level of a `bits`-deep image: the R in PSNR and SSIM."""
  bits = int(bits)
  if bits < 1:
    raise ValueError(f"bits must be a positive integer, got {bits}")
  return float(levels.max_level(bits))


def _prepare_pair(a, b, crop_border: int) -> tuple[np.ndarray, np.ndarray]:
  """Checks shapes, converts to float64 and removes `crop_border` per edge."""
  a = np.asarray(a, dtype=np.float64)
  b = np.asarray(b, dtype=np.float64)
  if a.shape != b.shape:
    raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
  if a.ndim not in (2, 3):
    raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {a.shape}")
  crop_border = int(crop_border)
  if crop_border < 0:
    raise ValueError(f"crop_border must be >= 0, got {crop_border}")
  if crop_border:
    height, width = a.shape[:2]
    if 2 * crop_border >= min(height, width):
      raise ValueError(
          f"crop_border={crop_border} leaves nothing of a {height}x{width} image")
    a = a[crop_border:-crop_border, crop_border:-crop_border]
    b = b[crop_border:-crop_border, crop_border:-crop_border]
  if a.size == 0:
    raise ValueError(f"empty image of shape {a.shape}")
  return a, b


def _mse_of(a: np.ndarray, b: np.ndarray) -> float:
  diff = a - b
  return float(np.mean(diff * diff))


def psnr_from_mse(mse_value: float, peak: float) -> float:
  """PSNR in dB of an MSE against ``peak``; inf for an MSE of 0."""
  return _psnr_from_mse(mse_value, peak)


def _psnr_from_mse(mse_value: float, peak: float) -> float:
  if mse_value == 0.0:
    return math.inf
  return float(10.0 * np.log10(float(peak)**2 / mse_value))


def mse(a, b, crop_border: int = 0) -> float:
  """Mean squared error in squared grey levels over the cropped image."""
  a, b = _prepare_pair(a, b, crop_border)
  return _mse_of(a, b)


def psnr(a, b, data_range: float, crop_border: int = 0) -> float:
  """Peak signal-to-noise ratio in dB; inf for identical images."""
  a, b = _prepare_pair(a, b, crop_border)
  return _psnr_from_mse(_mse_of(a, b), data_range)


def _gaussian_blur(image: np.ndarray) -> np.ndarray:
  """Separable Gaussian window with the same edge handling as skimage."""
  return ndimage.gaussian_filter(
      image, sigma=SSIM_SIGMA, truncate=SSIM_TRUNCATE, mode="reflect")


def _ssim_single_channel(a: np.ndarray, b: np.ndarray, peak: float) -> float:
  c1 = (SSIM_K1 * peak)**2
  c2 = (SSIM_K2 * peak)**2
  mean_a = _gaussian_blur(a)
  mean_b = _gaussian_blur(b)
  var_a = _gaussian_blur(a * a) - mean_a * mean_a
  var_b = _gaussian_blur(b * b) - mean_b * mean_b
  cov_ab = _gaussian_blur(a * b) - mean_a * mean_b
  ssim_map = ((2 * mean_a * mean_b + c1) * (2 * cov_ab + c2) /
              ((mean_a * mean_a + mean_b * mean_b + c1) * (var_a + var_b + c2)))
  # Pixels within the window radius of an edge see padded, made-up data; the
  # mean is taken only where the whole window lies on real pixels.
  r = SSIM_RADIUS
  return float(ssim_map[r:-r, r:-r].mean(dtype=np.float64))


def ssim(a, b, data_range: float, crop_border: int = 0) -> float:
  """Mean structural similarity; channels are scored separately and averaged."""
  a, b = _prepare_pair(a, b, crop_border)
  height, width = a.shape[:2]
  if min(height, width) < SSIM_WINDOW:
    raise ValueError(
        f"image of {height}x{width} (after crop_border={crop_border}) is smaller "
        f"than the {SSIM_WINDOW}x{SSIM_WINDOW} SSIM window")
  peak = float(data_range)
  if a.ndim == 2:
    return _ssim_single_channel(a, b, peak)
  per_channel = [
      _ssim_single_channel(a[..., c], b[..., c], peak)
      for c in range(a.shape[-1])
  ]
  return float(np.mean(per_channel))


def image_metrics(sr01, hr01, bits: int, crop_border: int = 0,
                  value_range: tuple[float, float] | None = None,
                  window: tuple[float, float] | None = None) -> dict:
  """PSNR, SSIM and MSE of a super-resolved image against its ground truth.

  Both inputs are [0, 1] images; they are quantised to `bits`-deep levels
  first, and PSNR is derived from the very MSE reported, so the three numbers
  always agree with each other.

  With ``value_range`` (CT: the HU range pixels 0 and 1 stand for) they are
  scored in those units instead, rounded to whole units (HU are stored as
  integers), against the range's width. ``window`` then clips both to a
  display window (the soft-tissue −160…240 HU) and scores against its width.
  """
  if value_range is None:
    peak = data_range(bits)
    sr, hr = _prepare_pair(to_levels(sr01, bits), to_levels(hr01, bits), crop_border)
  else:
    low, high = (float(v) for v in value_range)
    to_values = lambda x: np.rint(low + np.clip(np.asarray(x, np.float64), 0.0, 1.0)  # pylint: disable=unnecessary-lambda-assignment
                                  * (high - low))
    sr, hr = _prepare_pair(to_values(sr01), to_values(hr01), crop_border)
    peak = high - low
    if window is not None:
      sr, hr = np.clip(sr, *window), np.clip(hr, *window)
      peak = float(window[1]) - float(window[0])
  mse_value = _mse_of(sr, hr)
  return dict(
      psnr=_psnr_from_mse(mse_value, peak),
      ssim=ssim(sr, hr, peak),
      mse=mse_value,
  )
