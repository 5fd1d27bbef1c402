"""The radiograph models shipped in jaxsr/pretrained: files, cards, README example, tables.

These use the real shipped weights and the development radiographs
(../shared/data/xray or JAXSR_XRAY_DIR).
"""
import csv
import re
import shlex

import numpy as np
from PIL import Image
import pydicom
import pytest
from safetensors import safe_open

from jaxsr import evaluate, pretrained, upscale, weights
from jaxsr import config as base
from jaxsr.degradations import bicubic
from jaxsr.evaluation import metrics

pytestmark = pytest.mark.slow  # The shipped models on whole shared radiographs (the cards' tables).

SHIPPED_DATA = "../shared/data/xray"  # How the model cards spell the data folder.


@pytest.mark.parametrize("name", sorted(pretrained.MODELS))
def test_shipped_weights_are_small_self_describing_grey_models_with_a_card(name):
  path = pretrained.weights_path(name)
  assert path.stat().st_size < 20 * 2 ** 20
  with safe_open(str(path), "numpy") as f:
    meta = f.metadata()
  scale = 2 if name == "xray_x2" else 4
  assert (meta["arch"], meta["scale"], meta["num_channels"]) == ("srvgg", str(scale), "1")
  _, variables, info = weights.load_generator(name)
  assert info["scale"] == scale and info["num_channels"] == 1
  card = pretrained.card_path(name).read_text()
  # Data attribution as NIH ChestX-ray14 asks, the split, recipe and time.
  for needed in ("NIH Clinical Center", "Wang et al.", "ChestX-ray8", "CVPR 2017",
                 f"configs/{name}.py", "Training time", "Held-out"):
    assert needed in card, f"{name}.md lacks {needed!r}"
  for pattern in base.XRAY_HELDOUT:
    assert pattern.strip("*") in card


def test_readme_upscale_example_on_a_shared_dicom_without_weights(xray_dir, tmp_path, capsys):
  source = xray_dir / "dicom" / "siim_chest_CR_8bit_jpegbaseline.dcm"
  assert upscale.main([f"--input={source}", f"--output={tmp_path}"]) == 0
  assert "shipped radiograph model xray_x4" in capsys.readouterr().err
  before, after = pydicom.dcmread(source), pydicom.dcmread(tmp_path / source.name)
  assert (after.Rows, after.Columns) == (before.Rows * 4, before.Columns * 4)
  sr = after.pixel_array.astype(np.float64)
  # The x4 output shrunk back by area averaging is close to the input.
  back = sr.reshape(before.Rows, 4, before.Columns, 4).mean(axis=(1, 3))
  assert np.abs(back - before.pixel_array).mean() < 2.0


def test_upscale_keeps_12_bit_data_deep_and_beats_bicubic(xray_dir, tmp_path, capsys):
  """A held-out 12-bit DX chest: no posterising or clipping, better than bicubic."""
  with Image.open(xray_dir / "png" / "dcm16_pydicom966_chest_DX_J2KR_mono1.png") as image:
    full = np.asarray(image, np.uint16)
  hr = full[:full.shape[0] // 4 * 4, :full.shape[1] // 4 * 4]
  assert hr.max() < 4096  # 12-bit content in a 16-bit PNG.
  lr = np.round(bicubic.make_lr(hr / 65535.0, 4, 16) * 65535).astype(np.uint16)
  (tmp_path / "in").mkdir()
  Image.fromarray(lr).save(tmp_path / "in" / "lr.png")
  assert upscale.main([f"--input={tmp_path / 'in'}", f"--output={tmp_path / 'out'}"]) == 0
  capsys.readouterr()
  with Image.open(tmp_path / "out" / "lr.png") as image:
    sr = np.asarray(image, np.uint16)
  assert sr.shape == hr.shape
  assert len(np.unique(sr)) > len(np.unique(lr))  # Finer levels than the input, not fewer.
  assert sr.max() <= 4095  # Kept within the data's 12 bits.
  baseline = bicubic.upscale(lr / 65535.0, hr.shape)
  model_psnr = metrics.image_metrics(sr / 65535.0, hr / 65535.0, 16, crop_border=4)["psnr"]
  bicubic_psnr = metrics.image_metrics(np.clip(baseline, 0, 1), hr / 65535.0, 16,
                                       crop_border=4)["psnr"]
  assert model_psnr > bicubic_psnr + 0.3  # Measured: +0.6 dB.


def _card_runs(card: str):
  """(evaluate arguments, {model: (psnr, mse, ssim)}) for each documented run."""
  runs = []
  for block, table in re.findall(r"```\w*\n(python -m jaxsr\.evaluate[^`]*)```\n+((?:\|.*\n)+)",
                                 card):
    args = shlex.split(block.replace("\\\n", " "))[3:]
    values = {}
    for line in table.splitlines()[2:]:
      cells = [c.strip().strip("*") for c in line.strip("|").split("|")]
      values[cells[0]] = tuple(float(c) for c in cells[1:4])
    runs.append((args, values))
  return runs


@pytest.mark.parametrize("name", sorted(pretrained.MODELS))
def test_model_card_tables_are_reproduced_by_their_commands(name, xray_dir, tmp_path, capsys):
  runs = _card_runs(pretrained.card_path(name).read_text())
  assert runs, f"{name}.md documents no evaluation command with its table"
  for i, (args, expected) in enumerate(runs):
    out = tmp_path / f"run{i}"
    args = [a.replace(SHIPPED_DATA, str(xray_dir)) for a in args if not a.startswith("--output")]
    assert evaluate.main(args + [f"--output={out}"]) == 0
    capsys.readouterr()
    with open(out / "metrics.csv", newline="") as f:
      rows = list(csv.DictReader(f))
    for model, (psnr, mse, ssim) in expected.items():
      mine = [r for r in rows if r["model"] == model]
      assert mine, f"{name}.md: no {model} rows"
      mean = lambda key: float(np.mean([float(r[key]) for r in mine]))  # pylint: disable=cell-var-from-loop
      assert abs(mean("psnr") - psnr) <= 0.011, (name, model)
      assert abs(mean("ssim") - ssim) <= 1.1e-4, (name, model)
      assert abs(mean("mse") - mse) <= 0.01 * mse + 0.011, (name, model)
