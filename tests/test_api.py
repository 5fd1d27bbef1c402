"""The Python API: jaxsr.load_model(...).upscale(pixels, bits=...), as the README shows it."""
import re

import numpy as np
from PIL import Image
import pytest

import jaxsr
from jaxsr import errors, weights
from jaxsr.degradations import bicubic
from jaxsr.evaluation import metrics
from jaxsr.io import read_image

README = (__import__("pathlib").Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_python_example_runs_on_a_shared_radiograph(xray_dir, tmp_path, monkeypatch):
  """The README's Python block, run as written on one of the shared files."""
  block = re.search(r"```python\n(import jaxsr\n.*?)```", README, re.S)
  assert block, "README has no Python API example starting with 'import jaxsr'"
  monkeypatch.chdir(tmp_path)
  source = xray_dir / "png" / "nih_00000075_000.png"
  with Image.open(source) as image:
    image.crop((0, 0, 160, 128)).save(tmp_path / "radiograph.png")
  namespace = {}
  exec(compile(block.group(1), "README.md", "exec"), namespace)  # pylint: disable=exec-used
  sr = namespace["sr"]
  assert sr.shape == (4 * 128, 4 * 160) and sr.dtype == np.float32
  assert 0.0 <= sr.min() and sr.max() <= 1.0


def test_load_model_describes_itself_and_beats_bicubic_on_a_held_out_patient(xray_dir):
  model = jaxsr.load_model("xray_x4")
  assert (model.scale, model.num_channels, model.input_multiple) == (4, 1, 1)
  image = read_image(xray_dir / "png" / "nih_00018999_000.png")  # Held out in training.
  hr = image.pixels[256:512, 256:512]
  lr = bicubic.make_lr(hr, 4, image.bits)
  sr = model.upscale(lr, bits=image.bits, tile=32, overlap=16)
  whole = model.upscale(lr, bits=image.bits, tile=0)
  np.testing.assert_allclose(sr, whole, atol=1e-3)  # Tiling inside, without seams.
  gain = (metrics.image_metrics(sr, hr, 8, crop_border=4)["psnr"]
          - metrics.image_metrics(bicubic.upscale(lr, hr.shape), hr, 8, crop_border=4)["psnr"])
  assert gain > 0.5


def test_low_bit_data_in_a_deep_container_is_stretched_inside_and_kept_in_range():
  model = jaxsr.load_model("xray_x2")
  rng = np.random.default_rng(0)
  levels = np.round(rng.random((40, 48)) ** 2 * 4095)       # 12-bit data...
  sr = model.upscale((levels / 65535).astype(np.float32), bits=16)   # ...in a 16-bit container.
  assert sr.shape == (80, 96)
  assert sr.max() <= 4095 / 65535 + 1e-7                     # Within the data's own 12 bits.
  # The same image stated as 12-bit gives the same levels.
  direct = model.upscale((levels / 4095).astype(np.float32), bits=12)
  np.testing.assert_allclose(sr * 65535, direct * 4095, atol=0.5)


def test_load_model_errors_are_one_line_and_suggest_shipped_names(tmp_path):
  with pytest.raises(errors.UserError, match="xray_x4gan: .* did you mean xray_x4_gan"):
    jaxsr.load_model("xray_x4gan")
  with pytest.raises(weights.WeightsError, match="no such file or training workdir"):
    jaxsr.load_model(tmp_path / "missing.safetensors")
  with pytest.raises(ValueError, match="one grey"):
    jaxsr.load_model("xray_x2").upscale(np.zeros((4, 4, 3), np.float32))
