"""tools/make_opencv_degraded.py and tools/noise_ceiling.py: the independent degraded
test set and the noise ceiling of PSNR."""
import csv
import importlib.util
import math
import pathlib

import numpy as np
from PIL import Image
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def _tool(name):
  spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


degraded = _tool("make_opencv_degraded")
ceiling = _tool("noise_ceiling")


def _smooth(height, width, seed=0, noise=0.01):
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:height, 0:width] / max(height, width)
  image = 0.5 + 0.3 * np.sin(9 * x + 4 * y) * np.cos(7 * y) + noise * rng.standard_normal(x.shape)
  return np.clip(image, 0, 1)


@pytest.fixture()
def hr_folder(tmp_path):
  hr = tmp_path / "hr"
  (hr / "nih").mkdir(parents=True)
  Image.fromarray(np.round(_smooth(130, 122) * 255).astype(np.uint8)).save(hr / "nih" / "a.png")
  Image.fromarray(np.round(_smooth(96, 96, 1) * 4095).astype(np.uint16)).save(hr / "b16.png")
  return hr


def test_degraded_set_is_a_fixed_draw_per_image_within_the_stated_ranges(hr_folder, tmp_path):
  assert degraded.main(["--hr", str(hr_folder), "--output", str(tmp_path / "one")]) == 0
  assert degraded.main(["--hr", str(hr_folder), "--output", str(tmp_path / "two")]) == 0
  for name in ("nih/a.png", "b16.png"):
    one = np.asarray(Image.open(tmp_path / "one" / "lr" / name))
    np.testing.assert_array_equal(one, np.asarray(Image.open(tmp_path / "two" / "lr" / name)))
    hr = np.asarray(Image.open(tmp_path / "one" / "hr" / name))
    assert hr.dtype == np.uint8 and hr.shape[0] % 4 == 0 and hr.shape[1] % 4 == 0
    assert one.shape == (hr.shape[0] // 4, hr.shape[1] // 4)
  with open(tmp_path / "one" / "draws.csv", newline="") as f:
    draws = list(csv.DictReader(f))
  assert [d["image"] for d in draws] == ["b16.png", "nih/a.png"]
  for d in draws:
    assert 0.8 <= float(d["blur_sigma"]) <= 1.6 and 2 <= float(d["noise_sigma"]) <= 6
    assert 50 <= int(d["jpeg_quality"]) <= 85
  assert degraded.draw(0, "x.png") == degraded.draw(0, "x.png") != degraded.draw(1, "x.png")


def test_degradation_blurs_adds_noise_and_compresses():
  """Each step leaves its mark: the LR differs from the plain bicubic downscale of the HR
  by about the drawn noise and blur, and its 8x8 blocks show JPEG's grid."""
  import cv2  # pylint: disable=import-outside-toplevel
  hr = np.round(_smooth(256, 256) * 255).astype(np.uint8)
  plain = cv2.resize(hr.astype(np.float32), (64, 64), interpolation=cv2.INTER_CUBIC)
  quiet = dict(blur_sigma=0.8, noise_sigma=2.0, jpeg_quality=85, noise_seed=0)
  loud = dict(blur_sigma=1.6, noise_sigma=6.0, jpeg_quality=50, noise_seed=0)
  err = lambda d: float(np.std(degraded.degrade(hr, 4, d).astype(np.float32) - plain))  # pylint: disable=unnecessary-lambda-assignment
  assert 1.0 < err(quiet) < err(loud) < 10.0


def test_an_existing_output_is_never_overwritten(hr_folder, tmp_path, capsys):
  out = tmp_path / "taken"
  out.mkdir()
  (out / "mine.txt").write_text("keep")
  assert degraded.main(["--hr", str(hr_folder), "--output", str(out)]) == 2
  assert "not empty" in capsys.readouterr().err and (out / "mine.txt").read_text() == "keep"


def test_noise_sigma_recovers_white_noise_and_gives_its_psnr_ceiling():
  rng = np.random.default_rng(0)
  clean = _smooth(512, 512, noise=0.0)
  for sigma in (2.0, 5.0):
    noisy = np.clip(clean + rng.normal(0, sigma / 255, clean.shape), 0, 1)
    assert ceiling.noise_sigma(noisy, 8) == pytest.approx(sigma, rel=0.08)
  assert ceiling.ceiling_psnr(5.0, 8) == pytest.approx(20 * math.log10(255 / 5))
  assert ceiling.ceiling_psnr(0.0, 8) == math.inf


def test_noise_ceiling_reports_groups_and_headroom_closed(tmp_path, capsys):
  from jaxsr.evaluation import report  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(1)
  hr = tmp_path / "hr"
  (hr / "g").mkdir(parents=True)
  noisy = np.clip(_smooth(256, 256) + rng.normal(0, 4 / 255, (256, 256)), 0, 1)
  Image.fromarray(np.round(noisy * 255).astype(np.uint8)).save(hr / "g" / "x.png")
  top = ceiling.ceiling_psnr(ceiling.noise_sigma(np.round(noisy * 255) / 255, 8), 8)
  rows = [report.MetricRow("g/x.png", "bicubic", 4, 8, top - 4.0, 0.8, 1.0, group="g"),
          report.MetricRow("g/x.png", "net", 4, 8, top - 1.0, 0.9, 1.0, group="g")]
  report.write_metrics_csv(rows, tmp_path / "metrics.csv")
  assert ceiling.main(["--hr", str(hr), "--metrics", str(tmp_path / "metrics.csv")]) == 0
  line = [l for l in capsys.readouterr().out.splitlines() if l.startswith("| g ")][0]
  assert line.endswith("| 75 % |")
