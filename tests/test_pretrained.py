"""The models shipped in jaxsr/pretrained: files, cards, README examples, tables.

These use the real shipped weights, the development radiographs
(../shared/data/xray or JAXSR_XRAY_DIR) and the shared CT/MR data
(../shared/data or JAXSR_SHARED_DATA_DIR).
"""
import csv
import pathlib
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

pytestmark = pytest.mark.slow  # The shipped models on whole shared images (the cards' tables).

# How the model cards spell the data folders (the longest first: each is replaced once).
SHIPPED_XRAY_TRAIN = "../shared/data/xray_train"
SHIPPED_XRAY, SHIPPED_DATA = "../shared/data/xray", "../shared/data"
RADIOGRAPH_MODELS = sorted(n for n in pretrained.MODELS if pretrained.family(n) == "radiograph")
VOLUME_MODELS = sorted(n for n in pretrained.MODELS if pretrained.family(n) != "radiograph")


@pytest.mark.parametrize("name", RADIOGRAPH_MODELS)
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


# What each volume model's card must say: its data, attribution and the template caveat.
VOLUME_CARD_NEEDS = {
    "ct_x2": ("InVesalius", "GPL-2", "one patient", "slices 28–107", "slices 0–19"),
    "mr_x2": ("ICBM152", "average", "MR-SIEMENS-DICOM-WithOverlays", "slices 118–188"),
}


@pytest.mark.parametrize("name", VOLUME_MODELS)
def test_volume_models_are_x2_grey_models_chosen_by_modality_with_a_card(name):
  with safe_open(str(pretrained.weights_path(name)), "numpy") as f:
    meta = f.metadata()
  assert (meta["arch"], meta["scale"], meta["num_channels"]) == ("srvgg", "2", "1")
  modality = pretrained.family(name)
  assert pretrained.default_for(modality, None) == (name, "")
  assert pretrained.default_for(modality, 2) == (name, "")
  assert pretrained.evaluate_for(modality, 2) == ((name,), "")
  card = pretrained.card_path(name).read_text()
  for needed in (f"configs/{name}.py", "Training time", "Held-out", "Limitations",
                 f"--config.init_from={name}") + VOLUME_CARD_NEEDS[name]:
    assert needed in card, f"{name}.md lacks {needed!r}"


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


# The card tables' metric columns, as `jaxsr evaluate` heads them, and their metrics.csv keys.
CARD_COLUMNS = {"PSNR": "psnr", "MSE": "mse", "SSIM": "ssim",
                "PSNR soft tissue": "psnr_soft_tissue", "SSIM soft tissue": "ssim_soft_tissue",
                "ΔPSNR vs bicubic": "psnr", "ΔSSIM vs bicubic": "ssim"}


def _card_runs(card: str):
  """(evaluate arguments, {(group, model): {column: value}}) for each documented run.

  A table is read by its header: the metric columns of CARD_COLUMNS, and a Group
  column where the table has one (as in the summary's "Means by source group"),
  else the group is None (every image of the run)."""
  runs = []
  for block, table in re.findall(r"```\w*\n(python -m jaxsr\.evaluate[^`]*)```\n+((?:\|.*\n)+)",
                                 card):
    args = shlex.split(block.replace("\\\n", " "))[3:]
    lines = [[c.strip().strip("*") for c in line.strip().strip("|").split("|")]
             for line in table.splitlines()]
    header, values = lines[0], {}
    grouped = header[0] == "Group"
    for cells in lines[2:]:
      named = dict(zip(header, cells))
      key = (cells[0], cells[1]) if grouped else (None, cells[0])
      values[key] = {h: float(v) for h, v in named.items() if h in CARD_COLUMNS and v}
    runs.append((args, values))
  return runs


def _card_args(args, folders: dict, made=None):
  """The card's arguments with the data folders as found here (``folders``: the card's
  spelling -> the folder); ``made`` maps the folders the card's tool commands write
  (e.g. eval/opencv_x4) to where the test wrote them."""
  def spell(a):
    for shipped, here in folders.items():
      if shipped in a:
        return a.replace(shipped, str(here))
    for folder, here in (made or {}).items():
      a = a.replace(f"={folder}/", f"={here}/")
    return a
  return [spell(a) for a in args if not a.startswith("--output")]


@pytest.fixture()
def card_folders(xray_dir, shared_data_dir, xray_train_dir):
  return {SHIPPED_XRAY_TRAIN: xray_train_dir, SHIPPED_XRAY: xray_dir,
          SHIPPED_DATA: shared_data_dir}


def _card_tools(card: str, folders: dict, tmp_path) -> dict:
  """Runs the card's tool commands (the independent degraded set) into tmp_path;
  returns {the card's output folder: where it was written}."""
  made = {}
  for block in re.findall(r"```\w*\n(python tools/make_opencv_degraded\.py[^`]*)```", card):
    args = shlex.split(block.replace("\\\n", " "))[2:]
    folder = next(a.split("=", 1)[1] for a in args if a.startswith("--output="))
    here = tmp_path / folder.replace("/", "_")
    tool = _card_args(args, folders) + [f"--output={here}"]
    assert _OPENCV_TOOL.main(tool) == 0
    made[folder] = here
  return made


def _load_tool(name):
  import importlib.util  # pylint: disable=import-outside-toplevel
  path = pathlib.Path(__file__).resolve().parents[1] / "tools" / f"{name}.py"
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


_OPENCV_TOOL = _load_tool("make_opencv_degraded")


def _tolerance(key: str, value: float) -> float:
  return {"mse": 0.01 * abs(value) + 0.011}.get(key, 1.1e-4 if "ssim" in key else 0.011)


def _read_rows(path) -> list[dict]:
  with open(path, newline="") as f:
    return [r for r in csv.DictReader(f) if not r["slice"]]  # Images and whole volumes.


def _archive(name: str, args) -> pathlib.Path:
  """Where the card keeps a run's per-image metrics.csv: metrics/OUTPUT.csv beside
  it, OUTPUT the last part of the command's --output."""
  output = next(a.split("=", 1)[1] for a in args if a.startswith("--output="))
  return pretrained.card_path(name).parent / "metrics" / f"{output.rstrip('/').split('/')[-1]}.csv"


def _check_table(name, expected, rows):
  """Each table cell is the mean (or mean gain over bicubic) of its rows."""
  for (group, model), columns in expected.items():
    mine = [r for r in rows if r["model"] == model and group in (None, r["group"])]
    assert mine, f"{name}.md: no {model} rows" + (f" in group {group}" if group else "")
    for column, value in columns.items():
      key = CARD_COLUMNS[column]
      mean = float(np.mean([float(r[key]) for r in mine]))
      if column.startswith("Δ"):
        images = {r["image"] for r in mine}
        mean -= float(np.mean([float(r[key]) for r in rows
                               if r["model"] == "bicubic" and r["image"] in images]))
      assert abs(mean - value) <= _tolerance(key, value), (name, group, model, column, mean, value)


# Images re-scored from a card run whose per-image metrics the card keeps (the first
# ones, so that a seeded degradation draws the same LR for them as in the whole run).
SAMPLED_IMAGES = 2


@pytest.mark.parametrize("name", sorted(pretrained.MODELS))
def test_model_card_tables_are_reproduced_by_their_commands(name, card_folders, tmp_path,
                                                            capsys):
  """A card's table is either re-made by its command in full, or, where the card keeps
  the run's per-image metrics (metrics/*.csv), is the mean of those, and the command
  re-run on the first images reproduces their rows (whole validation runs take minutes)."""
  card = pretrained.card_path(name).read_text()
  runs = _card_runs(card)
  assert runs, f"{name}.md documents no evaluation command with its table"
  made = _card_tools(card, card_folders, tmp_path)
  for i, (args, expected) in enumerate(runs):
    out = tmp_path / f"run{i}"
    archive = _archive(name, args)
    sample = [f"--max_images={SAMPLED_IMAGES}"] if archive.exists() else []
    assert evaluate.main(_card_args(args, card_folders, made) + sample + [f"--output={out}"]) == 0
    capsys.readouterr()
    rows = _read_rows(out / "metrics.csv")
    if not archive.exists():
      _check_table(name, expected, rows)
      continue
    kept = _read_rows(archive)
    _check_table(name, expected, kept)
    kept = {(r["model"], r["image"]): r for r in kept}
    assert {r["image"] for r in rows} == set(sorted({image for _, image in kept})[:SAMPLED_IMAGES])
    for row in rows:
      old = kept[(row["model"], row["image"])]
      for key in ("psnr", "mse", "ssim"):
        value = float(old[key])
        assert abs(float(row[key]) - value) <= _tolerance(key, value), (name, row["image"], key)


def test_upscale_of_the_shared_ct_series_without_weights_uses_ct_x2(shared_data_dir, tmp_path,
                                                                     capsys):
  """The CT README example: a derived series, upscaled by ct_x2 and close to its input."""
  source = shared_data_dir / "ct" / "invesalius_head_ct"
  out = tmp_path / "out"
  assert upscale.main([f"--input={source}", f"--output={out}"]) == 0
  assert "using the shipped CT model ct_x2" in capsys.readouterr().err
  written = sorted(out.glob("*.dcm"))
  assert len(written) == len(list(source.glob("*.dcm"))) == 108
  before, after = pydicom.dcmread(source / "IM0040.dcm"), pydicom.dcmread(out / "IM0040.dcm")
  assert (after.Rows, after.Columns) == (2 * before.Rows, 2 * before.Columns)
  assert "SR x2" in after.SeriesDescription and "ct_x2" in after.SeriesDescription
  assert after.SeriesInstanceUID != before.SeriesInstanceUID
  assert after.StudyInstanceUID == before.StudyInstanceUID
  hu = lambda ds: ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
  back = hu(after).reshape(before.Rows, 2, before.Columns, 2).mean(axis=(1, 3))
  assert np.abs(back - hu(before)).mean() < 10.0  # HU: shrunk back, close to the input.
