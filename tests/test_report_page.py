"""report.html in a real browser: headless Chromium driven by Playwright.

The page is made by ``jaxsr evaluate`` from shared radiographs with a small
random model, then loaded from disk (file://, no server). Chromium is the
Debian package (.ci/run installs it); JAXSR_CHROMIUM overrides its path.
"""
import io
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest
from playwright.sync_api import sync_playwright

from jaxsr import evaluate, upscale, weights
from jaxsr.models import SRVGGNetCompact

pytestmark = pytest.mark.slow  # A browser and an evaluation of whole radiographs.


def chromium_path() -> str:
  path = os.environ.get("JAXSR_CHROMIUM") or shutil.which("chromium") or shutil.which(
      "chromium-browser")
  if not path:
    raise FileNotFoundError("Chromium not found: apt-get install chromium (see .ci/run) or "
                            "set JAXSR_CHROMIUM")
  return path


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory, xray_dir):
  root = tmp_path_factory.mktemp("page")
  module = SRVGGNetCompact(1, 1, upscale=4, num_feat=8, num_conv=2)
  rng = np.random.default_rng(0)
  shapes = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  variables = jax.tree.map(lambda s: jnp.asarray(rng.standard_normal(s.shape, np.float32) * 0.2),
                           shapes)
  weights.save_safetensors(root / "noisy.safetensors", variables["params"], None, "srvgg", 4, 1,
                           dict(num_feat=8, num_conv=2))
  hr = root / "hr"
  hr.mkdir()
  for name in ("nih_00000075_000.png", "nih_00000284_000.png", "nih_00000493_000.png"):
    shutil.copy(xray_dir / "png" / name, hr / name)
  out = root / "out"
  assert evaluate.main(["--weights", str(root / "noisy.safetensors"), "--hr", str(hr),
                        "--output", str(out), "--figure_crop=16"]) == 0
  return out


@pytest.fixture(scope="module")
def browser():
  with sync_playwright() as p:
    instance = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
    yield instance
    instance.close()


def _open(browser, path, width=1000, height=900):
  page = browser.new_page(viewport={"width": width, "height": height})
  problems = []
  page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
  page.on("pageerror", lambda e: problems.append(str(e)))
  page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
  page.goto(path.as_uri())
  page.wait_for_load_state("load")
  page.wait_for_function("document.getElementById('imgB').complete && "
                         "document.getElementById('imgA').complete")
  return page, problems


def _viewer_shot(page) -> np.ndarray:
  page.wait_for_function("document.getElementById('imgB').complete && "
                         "document.getElementById('imgA').complete")
  shot = page.locator("#viewer").screenshot()
  return np.asarray(Image.open(io.BytesIO(shot)).convert("L"), np.int16)


def test_page_loads_offline_without_errors_and_lists_every_image(browser, report_dir):
  page, problems = _open(browser, report_dir / "report.html")
  assert problems == []
  names = page.locator("#images tbody tr td:first-child").all_inner_texts()
  assert sorted(names) == ["nih_00000075_000.png", "nih_00000284_000.png",
                           "nih_00000493_000.png"]
  assert "noisy" in page.inner_text("#run") and "bicubic" in page.inner_text("#run")
  assert page.locator("#means tbody tr").count() == 2  # bicubic and the model.
  html = (report_dir / "report.html").read_text()
  assert "http://" not in html and "https://" not in html  # Nothing fetched from elsewhere.
  page.close()


def test_dragging_the_slider_changes_which_image_shows_on_each_side(browser, report_dir):
  page, problems = _open(browser, report_dir / "report.html")
  viewer = page.locator("#viewer")
  box = viewer.bounding_box()
  page.focus("#viewer")
  for _ in range(30):
    page.keyboard.press("ArrowRight")  # All the left image (bicubic).
  only_left = _viewer_shot(page)
  for _ in range(60):
    page.keyboard.press("ArrowLeft")   # All the right image (the model).
  only_right = _viewer_shot(page)
  column = int(box["width"] * 0.35)
  assert np.abs(only_left[:, column] - only_right[:, column]).mean() > 2  # They differ.
  for _ in range(25):
    page.keyboard.press("ArrowRight")  # Back to the middle.
  at_middle = _viewer_shot(page)
  np.testing.assert_array_equal(at_middle[:, column], only_left[:, column])
  # Drag the handle from the middle to 20 %: column 35 % now shows the right image.
  box = viewer.bounding_box()  # Where the screenshots scrolled it.
  y = box["y"] + box["height"] / 2
  handle = page.locator("#handle").bounding_box()
  page.mouse.move(handle["x"] + handle["width"] / 2, y)
  page.mouse.down()
  page.mouse.move(box["x"] + box["width"] * 0.2, y, steps=5)
  page.mouse.up()
  dragged = _viewer_shot(page)
  np.testing.assert_array_equal(dragged[:, column], only_right[:, column])
  np.testing.assert_array_equal(dragged[:, int(box["width"] * 0.1)],
                                only_left[:, int(box["width"] * 0.1)])
  assert problems == []
  page.close()


def test_a_drop_down_swaps_the_image(browser, report_dir):
  page, problems = _open(browser, report_dir / "report.html")
  before = page.get_attribute("#imgB", "src")
  shot = _viewer_shot(page)
  labels = page.locator("#right option").all_inner_texts()
  assert labels[0].startswith("LR") and labels[1:3] == ["bicubic", "noisy"]
  assert labels[3].startswith("HR")
  page.select_option("#right", label=labels[3])
  assert page.get_attribute("#imgB", "src") != before
  assert page.inner_text("#tagB") == labels[3]
  after = _viewer_shot(page)
  width = shot.shape[1]
  assert np.abs(after[:, int(width * 0.75)] - shot[:, int(width * 0.75)]).mean() > 2
  assert problems == []
  page.close()


def test_sorting_the_table_reorders_its_rows_and_a_row_opens_its_image(browser, report_dir):
  page, problems = _open(browser, report_dir / "report.html")
  header = page.locator("#images th", has_text="noisy PSNR")
  header.click()
  column = page.locator("#images th").all_inner_texts().index(header.inner_text())
  values = lambda: [float(row.locator("td").nth(column).inner_text())  # pylint: disable=unnecessary-lambda-assignment
                    for row in page.locator("#images tbody tr").all()]
  ascending = values()
  assert ascending == sorted(ascending)
  header = page.locator("#images th", has_text="noisy PSNR")
  header.click()
  assert values() == sorted(ascending, reverse=True)
  last = page.locator("#images tbody tr").nth(2)
  name = last.locator("td").first.inner_text()
  last.click()
  assert page.inner_text("#current").startswith(name)
  assert problems == []
  page.close()


def test_zooming_in_shows_full_resolution_pixels(browser, report_dir):
  """A small window shows the preview; zooming in loads the full-resolution PNG."""
  page, problems = _open(browser, report_dir / "report.html", width=600, height=500)
  natural = lambda: page.evaluate("document.getElementById('imgA').naturalWidth")  # pylint: disable=unnecessary-lambda-assignment
  assert natural() == 512  # A 1024-px preview at first: half the HR's side.
  assert page.get_attribute("#imgA", "src").endswith("_preview.png")
  page.locator("#viewer").scroll_into_view_if_needed()
  box = page.locator("#viewer").bounding_box()
  page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
  for _ in range(6):
    page.mouse.wheel(0, -200)
  page.wait_for_function("document.getElementById('imgA').complete && "
                         "document.getElementById('imgA').naturalWidth === 1024")
  assert page.get_attribute("#imgA", "src").endswith("_w0.png")
  with Image.open(report_dir / "report" / "i0000" / "p3_w0.png") as full:
    assert full.size == (1024, 1024)  # The HR at full resolution, 8-bit for display.
  assert problems == []
  page.close()


def test_upscale_report_shows_input_bicubic_and_model_without_metrics(browser, xray_dir,
                                                                     tmp_path, capsys):
  source = tmp_path / "in"
  source.mkdir()
  image = Image.open(xray_dir / "png" / "nih_00000075_000.png").convert("L").resize((128, 128))
  image.save(source / "small.png")
  assert upscale.main([f"--input={source}", f"--output={tmp_path / 'out'}", "--report"]) == 0
  capsys.readouterr()
  page, problems = _open(browser, tmp_path / "out" / "report.html")
  labels = page.locator("#left option").all_inner_texts()
  assert labels[0].startswith("input") and labels[1] == "bicubic" and "xray_x4" in labels[2]
  assert page.locator("#means tbody tr").count() == 0
  assert page.is_hidden("#summary")
  assert problems == []
  page.close()


def test_ct_images_offer_the_ct_windows(tmp_path):
  """Windows for CT in HU: the four CT windows first, then the effective range."""
  from jaxsr.evaluation import html_report  # pylint: disable=import-outside-toplevel
  from jaxsr.io import image as image_lib  # pylint: disable=import-outside-toplevel
  encoding = image_lib.Encoding.for_values(12, True, intercept=-1024.0,
                                           value_range=(-1024.0, 3071.0), rescale_type="HU")
  ct = image_lib.Image(frames=np.zeros((1, 8, 8), np.float32), bits=12, path="ct",
                       modality="CT", encoding=encoding)
  windows = html_report.windows_for(ct, np.linspace(0, 1, 64).reshape(8, 8))
  assert list(windows)[:4] == ["soft tissue", "brain", "bone", "lung"]
  low, high = windows["soft tissue"]
  assert (low * 4095 - 1024, high * 4095 - 1024) == pytest.approx((-160, 240))
  assert list(windows)[-1] == "effective range"


def test_the_dicom_window_is_read_and_offered_first_for_radiographs(xray_dir):
  from jaxsr.evaluation import html_report  # pylint: disable=import-outside-toplevel
  from jaxsr.io import images  # pylint: disable=import-outside-toplevel
  image = images.read_image(xray_dir / "dicom" / "wg04_RG3_leg_CR_JLSL.dcm")
  assert image.voi_window == (550.0, 1024.0)  # WindowCenter, WindowWidth of the file.
  low, high = image.voi_window_unit()
  # MONOCHROME1: values 38..1062 of the window are flipped onto pixels, 1023 - value.
  assert image.inverted and (low, high * 1023) == pytest.approx((0.0, 1023 - 38), abs=1e-4)
  windows = html_report.windows_for(image, image.pixels)
  assert list(windows) == ["file (DICOM)", "effective range"]
  assert images.read_image(xray_dir / "dicom" / "siim_chest_CR_8bit_jpegbaseline.dcm"
                           ).voi_window is None
