"""Figures: error bars stop at zero, and dim high-bit images are windowed."""
import numpy as np
import pytest
from PIL import Image

from jaxsr.degradations import preview
from jaxsr.evaluation import figures
from jaxsr.evaluation.report import MetricRow


def twelve_bit_in_16(height=64, width=64, seed=0):
  """A 12-bit radiograph as read from a 16-bit container: levels / 65535."""
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:height, 0:width]
  levels = 2048 + 1500 * np.sin(x / 7.0) * np.cos(y / 11.0)
  levels += rng.normal(0, 60, levels.shape)
  return np.clip(np.round(levels), 0, 4095).astype(np.uint16)


def png_pixels(path):
  """The figure as grey [0, 1] pixels (RGBA dropped to luminance)."""
  return np.asarray(Image.open(path).convert("L"), np.float64) / 255.0


def mid_grey_fraction(pixels):
  """Share of the picture that is neither near black, nor near white."""
  return float(np.mean((pixels > 0.2) & (pixels < 0.8)))


def test_bar_extents_stop_at_zero():
  mean, lower, upper = figures.bar_extents([0.0, 0.0, 0.0, 10.0])
  assert mean == pytest.approx(2.5)
  std = np.std([0.0, 0.0, 0.0, 10.0])
  assert std > mean
  assert (lower, upper) == (pytest.approx(mean), pytest.approx(std))


def test_bar_extents_are_symmetric_away_from_zero():
  values = [30.0, 31.0, 33.0]
  mean, lower, upper = figures.bar_extents(values)
  assert mean == pytest.approx(np.mean(values))
  assert lower == upper == pytest.approx(np.std(values))


def test_bar_extents_use_finite_values_only():
  assert figures.bar_extents([np.inf, 30.0, 32.0]) == (31.0, 1.0, 1.0)
  mean, lower, upper = figures.bar_extents([np.inf])
  assert np.isnan(mean) and lower == upper == 0.0


def test_metrics_chart_error_bars_never_go_below_zero(tmp_path, monkeypatch):
  rows = [MetricRow(f"{i}.png", model, 4, 8, psnr=30.0 + i, ssim=0.5,
                    mse=mse)
          for model in ("bicubic", "esrgan")
          for i, mse in enumerate((0.0, 0.0, 0.0, 100.0))]
  drawn = []
  original_bar = figures._pyplot().Axes.bar

  def spy(self, x, height, *args, **kwargs):
    drawn.append((np.asarray(height, float), np.asarray(kwargs["yerr"], float)))
    return original_bar(self, x, height, *args, **kwargs)

  monkeypatch.setattr(figures._pyplot().Axes, "bar", spy)
  figures.metrics_chart(rows, tmp_path / "metrics.png")
  assert (tmp_path / "metrics.png").stat().st_size > 0
  assert len(drawn) == len(figures.METRICS)
  for heights, yerr in drawn:
    assert yerr.shape == (2, len(heights))
    assert np.all(heights - yerr[0] >= 0)
  mse_heights, mse_yerr = drawn[[key for key, _, _ in figures.METRICS].index("mse")]
  assert np.allclose(mse_yerr[0], mse_heights)  # Cut at zero...
  assert np.all(mse_yerr[1] > mse_heights)  # ...while the upper arm is the std.


def test_metrics_chart_averages_mse_over_one_data_range(tmp_path, monkeypatch):
  # Six 8-bit images and one 12-bit one: the 12-bit MSE (0..4095 levels) is
  # not averaged with the 8-bit ones; PSNR and SSIM keep all seven images.
  rows = [MetricRow(f"{i}.png", model, 4, 8, psnr=30.0, ssim=0.9, mse=10.0 + i)
          for model in ("bicubic", "esrgan") for i in range(6)]
  rows += [MetricRow("dx.png", model, 4, 12, psnr=37.0, ssim=0.8, mse=2000.0)
           for model in ("bicubic", "esrgan")]
  assert figures.mse_rows(rows) == (
      [r for r in rows if r.bits == 8], ", 0..255 only (6 of 7 images)")
  assert figures.mse_rows(rows[:12]) == (rows[:12], "")
  drawn, titles = [], []
  original_bar, original_title = figures._pyplot().Axes.bar, figures._pyplot().Axes.set_title

  def spy_bar(self, x, height, *args, **kwargs):
    drawn.append(np.asarray(height, float))
    return original_bar(self, x, height, *args, **kwargs)

  def spy_title(self, text, *args, **kwargs):
    titles.append(text)
    return original_title(self, text, *args, **kwargs)

  monkeypatch.setattr(figures._pyplot().Axes, "bar", spy_bar)
  monkeypatch.setattr(figures._pyplot().Axes, "set_title", spy_title)
  figures.metrics_chart(rows, tmp_path / "metrics.png")
  keys = [key for key, _, _ in figures.METRICS]
  assert np.allclose(drawn[keys.index("mse")], 12.5)
  assert np.allclose(drawn[keys.index("psnr")], (6 * 30.0 + 37.0) / 7)
  assert "0..255 only (6 of 7 images)" in titles[keys.index("mse")]


def test_display_window_of_a_12_bit_image_in_a_16_bit_container():
  pixels = twelve_bit_in_16() / 65535.0
  low, high = figures.display_window(pixels)
  assert 0.0 <= low < high <= 4095 / 65535
  assert high - low > 0.5 * (pixels.max() - pixels.min())
  assert (low, high) == tuple(np.percentile(pixels, [0.5, 99.5]))


def test_display_window_of_a_full_range_8_bit_image_stays_near_0_1():
  rng = np.random.default_rng(1)
  pixels = rng.integers(0, 256, (128, 128)) / 255.0
  low, high = figures.display_window(pixels)
  assert low == pytest.approx(0.0, abs=0.02)
  assert high == pytest.approx(1.0, abs=0.02)


def test_display_window_fallbacks_and_given_window():
  sparse = np.zeros((100, 100))
  sparse[0, 0] = 0.5  # One bright pixel: the percentiles are both 0.
  assert figures.display_window(sparse) == (0.0, 0.5)
  assert figures.display_window(np.full((8, 8), 0.3)) == (0.0, 1.0)
  assert figures.display_window(sparse, window=(0.1, 0.2)) == (0.1, 0.2)
  with pytest.raises(ValueError):
    figures.display_window(sparse, window=(0.2, 0.2))


def test_crop_panels_give_a_dim_12_bit_image_real_contrast(tmp_path):
  hr = twelve_bit_in_16() / 65535.0
  panels = [("LR", hr[::4, ::4].repeat(4, 0).repeat(4, 1)), ("HR (12-bit)", hr)]
  windowed, fixed = tmp_path / "windowed.png", tmp_path / "fixed.png"
  figures.crop_panels(panels, windowed, title="test")
  figures.crop_panels(panels, fixed, window=(0.0, 1.0))
  # The panels fill most of the figure. On [0, 1] they are near black; on
  # the image's own window a large part of the picture is mid grey.
  assert mid_grey_fraction(png_pixels(fixed)) < 0.05
  assert mid_grey_fraction(png_pixels(windowed)) > 0.25


def test_crop_panels_use_the_last_panels_window_for_every_panel(tmp_path, monkeypatch):
  hr = twelve_bit_in_16() / 65535.0
  limits = []
  original_imshow = figures._pyplot().Axes.imshow

  def spy(self, image, *args, **kwargs):
    limits.append((kwargs["vmin"], kwargs["vmax"]))
    return original_imshow(self, image, *args, **kwargs)

  monkeypatch.setattr(figures._pyplot().Axes, "imshow", spy)
  figures.crop_panels([("bright", np.ones_like(hr)), ("HR", hr)], tmp_path / "c.png")
  assert limits == [figures.display_window(hr)] * 2


@pytest.mark.slow
def test_preview_writes_a_labelled_non_flat_grid(tmp_path):
  source = tmp_path / "images"
  (source / "sub").mkdir(parents=True)
  y, x = np.mgrid[0:400, 0:400]
  eight = np.round(128 + 100 * np.sin(x / 20.0) * np.cos(y / 30.0)).astype(np.uint8)
  Image.fromarray(eight).save(source / "a_8bit.png")
  Image.fromarray(twelve_bit_in_16(400, 400)).save(source / "sub" / "b_12bit.png")
  (source / "notes.txt").write_text("not an image")
  output = tmp_path / "grid.png"
  preview.main([f"--input={source}", f"--output={output}", "--seed=1"])
  grid = png_pixels(output)
  assert grid.shape[0] > 400 and grid.shape[1] > 600
  # Rows are sorted by path: the 12-bit image is the lower one. Windowed, its
  # half of the figure is largely mid grey, not black.
  for half in (grid[:grid.shape[0] // 2], grid[grid.shape[0] // 2:]):
    assert half.std() > 0.2
    assert mid_grey_fraction(half) > 0.25


@pytest.mark.slow
def test_preview_make_grid_windows_each_row(tmp_path):
  path = tmp_path / "b_12bit.png"
  Image.fromarray(twelve_bit_in_16(64, 64)).save(path)
  cfg = preview.pipeline.default_params()
  grid = preview.make_grid([path], cfg)
  assert grid.dtype == np.uint8
  assert grid.shape == (cfg.gt_size, 3 * cfg.gt_size)
  hr = grid[:, :cfg.gt_size]
  assert hr.min() <= 5 and hr.max() >= 250


def test_preview_without_images_exits(tmp_path):
  with pytest.raises(SystemExit, match="no images"):
    preview.main([f"--input={tmp_path}", f"--output={tmp_path / 'grid.png'}"])
