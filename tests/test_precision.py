"""Inference in bfloat16: close to float32, really in bfloat16, on the command line."""
import numpy as np
from PIL import Image
import pytest

import jaxsr
from jaxsr import upscale
from jaxsr.degradations import bicubic
from jaxsr.inference import model as model_lib


def _psnr(a, b):
  mse = np.mean((np.round(a * 255) - np.round(b * 255)) ** 2)
  return 10 * np.log10(255 ** 2 / mse)


def test_bfloat16_upscale_is_close_to_float32_but_not_the_same(xray_dir):
  with Image.open(xray_dir / "png" / "nih_00018999_000.png") as image:
    hr = np.asarray(image.convert("L"), np.float32)[256:512, 256:512] / 255.0
  lr = bicubic.make_lr(hr, 4, 8)
  full = jaxsr.load_model("xray_x4")
  half = jaxsr.load_model("xray_x4", dtype="bfloat16")
  assert (full.dtype, half.dtype) == ("float32", "bfloat16")
  a, b = full.upscale(lr), half.upscale(lr)
  assert a.dtype == b.dtype == np.float32
  assert np.abs(a - b).max() > 1e-4  # The network really ran in bfloat16.
  assert _psnr(a, b) > 45.0           # Measured about 55 dB on this crop.
  assert full.with_dtype("float32") is full
  with pytest.raises(ValueError, match="use one of float32, bfloat16"):
    full.with_dtype("float16")


def test_upscale_command_takes_dtype(tmp_path, capsys):
  (tmp_path / "in").mkdir()
  pixels = (np.random.default_rng(0).random((24, 20)) * 255).astype(np.uint8)
  Image.fromarray(pixels).save(tmp_path / "in" / "a.png")
  for dtype in model_lib.DTYPES:
    assert upscale.main([f"--input={tmp_path / 'in'}", f"--output={tmp_path / dtype}",
                         f"--dtype={dtype}", "--compilation_cache=none"]) == 0
  capsys.readouterr()
  outs = [np.asarray(Image.open(tmp_path / d / "a.png"), np.float64) for d in model_lib.DTYPES]
  assert outs[0].shape == (96, 80) and np.abs(outs[0] - outs[1]).max() <= 8
