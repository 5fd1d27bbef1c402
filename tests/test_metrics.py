"""Metrics are checked against scikit-image, the reference implementation."""
import math

import numpy as np
import pytest
from PIL import Image
from skimage import metrics as skm

from jaxsr.evaluation import metrics
from jaxsr.io import levels as levels_lib

TOLERANCE = 1e-8


def reference_ssim(a, b, peak):
  channel_axis = 2 if a.ndim == 3 else None
  return skm.structural_similarity(
      a.astype(np.float64), b.astype(np.float64), data_range=peak,
      gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
      channel_axis=channel_axis)


def reference_psnr(a, b, peak):
  return skm.peak_signal_noise_ratio(
      a.astype(np.float64), b.astype(np.float64), data_range=peak)


def crop(image, border):
  return image[border:-border, border:-border] if border else image


def degrade(image, peak, rng, noise_fraction=0.03):
  """A plausible SR output: the image plus noise, kept on integral levels."""
  noisy = image + rng.normal(0.0, noise_fraction * peak, image.shape)
  return np.clip(np.round(noisy), 0, peak)


def random_pair(shape, bits, rng):
  peak = 2**bits - 1
  hr = rng.integers(0, peak + 1, size=shape).astype(np.float64)
  return hr, degrade(hr, peak, rng, noise_fraction=0.2)


def gradient_pair(shape, bits, rng):
  peak = 2**bits - 1
  height, width = shape[:2]
  yy, xx = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width),
                       indexing="ij")
  ramp = 0.5 * (xx + yy)
  if len(shape) == 3:
    ramp = np.stack([np.roll(ramp, 7 * c, axis=1) for c in range(shape[2])],
                    axis=-1)
  hr = np.round(ramp * peak)
  return hr, degrade(hr, peak, rng)


@pytest.fixture(scope="module")
def chest_8bit(xray_dir):
  pixels = np.asarray(Image.open(xray_dir / "png" / "nih_00000075_000.png"))
  assert pixels.dtype == np.uint8 and pixels.ndim == 2
  return pixels[300:556, 400:656].astype(np.float64)


@pytest.fixture(scope="module")
def hip_16bit(xray_dir):
  pixels = np.asarray(
      Image.open(xray_dir / "png" / "dcm16_wg04_RG2_hip_CR_UNC.png"))
  assert pixels.dtype == np.uint16 and pixels.ndim == 2
  return pixels[900:1156, 700:956].astype(np.float64)


def test_data_range_and_levels():
  assert metrics.data_range(8) == 255.0
  assert metrics.data_range(12) == 4095.0
  assert metrics.data_range(16) == 65535.0
  levels = levels_lib.to_levels(np.array([-0.5, 0.0, 0.5, 1.0, 1.5]), 8)
  assert levels.dtype == np.float64
  np.testing.assert_array_equal(levels, [0.0, 0.0, 128.0, 255.0, 255.0])
  np.testing.assert_array_equal(
      levels_lib.to_levels(np.array([1 / 4095, 1.0]), 12), [1.0, 4095.0])
  with pytest.raises(ValueError):
    metrics.data_range(0)


@pytest.mark.parametrize("bits", [8, 12, 16])
@pytest.mark.parametrize("shape", [(48, 64), (40, 52, 3)])
@pytest.mark.parametrize("make_pair", [random_pair, gradient_pair])
@pytest.mark.parametrize("crop_border", [0, 4])
def test_matches_skimage_on_generated_pairs(bits, shape, make_pair,
                                             crop_border):
  rng = np.random.default_rng(bits * 1000 + len(shape) * 10 + crop_border)
  hr, sr = make_pair(shape, bits, rng)
  peak = metrics.data_range(bits)
  expected_ssim = reference_ssim(crop(sr, crop_border), crop(hr, crop_border),
                                 peak)
  expected_psnr = reference_psnr(crop(hr, crop_border), crop(sr, crop_border),
                                 peak)
  assert 0.0 < expected_ssim < 1.0
  assert abs(metrics.ssim(sr, hr, peak, crop_border) -
             expected_ssim) < TOLERANCE
  assert abs(metrics.psnr(sr, hr, peak, crop_border) -
             expected_psnr) < TOLERANCE
  expected_mse = np.mean((crop(sr, crop_border) - crop(hr, crop_border))**2)
  assert metrics.mse(sr, hr, crop_border) == pytest.approx(expected_mse,
                                                           rel=1e-12)


@pytest.mark.parametrize("crop_border", [0, 4])
def test_matches_skimage_on_8bit_radiograph(chest_8bit, crop_border):
  rng = np.random.default_rng(1)
  sr = degrade(chest_8bit, 255, rng)
  assert abs(
      metrics.ssim(sr, chest_8bit, 255, crop_border) - reference_ssim(
          crop(sr, crop_border), crop(chest_8bit, crop_border), 255)
  ) < TOLERANCE
  assert abs(
      metrics.psnr(sr, chest_8bit, 255, crop_border) - reference_psnr(
          crop(chest_8bit, crop_border), crop(sr, crop_border), 255)
  ) < TOLERANCE


@pytest.mark.parametrize("bits", [10, 16])
def test_matches_skimage_on_16bit_radiograph(hip_16bit, bits):
  # The PNG is a 16-bit container holding 10-bit data; both ranges are valid.
  peak = metrics.data_range(bits)
  assert hip_16bit.max() <= 1023
  rng = np.random.default_rng(bits)
  sr = np.clip(np.round(hip_16bit + rng.normal(0, 8, hip_16bit.shape)), 0, peak)
  assert abs(metrics.ssim(sr, hip_16bit, peak, 4) - reference_ssim(
      crop(sr, 4), crop(hip_16bit, 4), peak)) < TOLERANCE
  assert abs(metrics.psnr(sr, hip_16bit, peak) -
             reference_psnr(hip_16bit, sr, peak)) < TOLERANCE


def test_crop_border_removes_every_edge():
  hr = np.zeros((32, 32))
  sr = hr.copy()
  sr[:3, :] = 255
  sr[-3:, :] = 255
  sr[:, :3] = 255
  sr[:, -3:] = 255
  assert metrics.mse(sr, hr) > 0
  assert metrics.mse(sr, hr, crop_border=3) == 0.0
  assert metrics.psnr(sr, hr, 255, crop_border=3) == math.inf
  assert metrics.ssim(sr, hr, 255, crop_border=3) == pytest.approx(1.0)
  assert metrics.psnr(sr, hr, 255, crop_border=2) < math.inf


def test_identical_images_are_perfect():
  image = np.random.default_rng(0).integers(0, 4096, (24, 24)).astype(float)
  assert metrics.mse(image, image) == 0.0
  assert metrics.psnr(image, image, 4095) == math.inf
  assert metrics.ssim(image, image, 4095) == pytest.approx(1.0, abs=1e-12)


def test_psnr_is_consistent_with_mse():
  rng = np.random.default_rng(3)
  for bits in (8, 12, 16):
    sr01 = rng.random((40, 40, 3))
    hr01 = np.clip(sr01 + rng.normal(0, 0.02, sr01.shape), 0, 1)
    result = metrics.image_metrics(sr01, hr01, bits, crop_border=2)
    peak = metrics.data_range(bits)
    assert result["psnr"] == 10 * math.log10(peak**2 / result["mse"])
    sr = levels_lib.to_levels(sr01, bits)
    hr = levels_lib.to_levels(hr01, bits)
    assert result["mse"] == metrics.mse(sr, hr, 2)
    assert result["psnr"] == metrics.psnr(sr, hr, peak, 2)
    assert result["ssim"] == metrics.ssim(sr, hr, peak, 2)
    assert result["ssim"] == pytest.approx(
        reference_ssim(crop(sr, 2), crop(hr, 2), peak), abs=TOLERANCE)


def test_image_metrics_works_on_quantised_grey_levels():
  hr01 = np.full((16, 16), 0.5)
  # 0.5 -> level 2048 and 0.51 -> level 2088 of 4095: a 40-level offset.
  result = metrics.image_metrics(hr01 + 0.01, hr01, 12)
  assert result["mse"] == 40.0**2
  assert result["psnr"] == pytest.approx(20 * math.log10(4095 / 40), abs=1e-12)
  # An offset under half an 8-bit level vanishes once the output is stored as
  # 8 bits, but is a real error at 16 bits.
  assert metrics.image_metrics(hr01 + 0.001, hr01, 8)["psnr"] == math.inf
  assert metrics.image_metrics(hr01 + 0.001, hr01, 16)["psnr"] < 70.0


def test_rejects_shape_mismatch():
  with pytest.raises(ValueError, match="shapes differ"):
    metrics.psnr(np.zeros((16, 16)), np.zeros((16, 17)), 255)
  with pytest.raises(ValueError, match="shapes differ"):
    metrics.ssim(np.zeros((16, 16, 3)), np.zeros((16, 16)), 255)
  with pytest.raises(ValueError, match="shapes differ"):
    metrics.image_metrics(np.zeros((16, 16)), np.zeros((17, 16)), 8)


def test_rejects_images_too_small_for_the_window():
  with pytest.raises(ValueError, match="11x11"):
    metrics.ssim(np.zeros((10, 40)), np.zeros((10, 40)), 255)
  # 20 pixels minus 5 from each side leaves 10: too small after the crop.
  with pytest.raises(ValueError, match="crop_border=5"):
    metrics.ssim(np.zeros((20, 20)), np.zeros((20, 20)), 255, crop_border=5)
  assert metrics.ssim(np.zeros((11, 11)), np.zeros((11, 11)), 255) == 1.0
  with pytest.raises(ValueError):
    metrics.mse(np.zeros((8, 8)), np.zeros((8, 8)), crop_border=4)


def test_rejects_unsupported_rank():
  with pytest.raises(ValueError, match="H, W"):
    metrics.ssim(np.zeros(64), np.zeros(64), 255)
