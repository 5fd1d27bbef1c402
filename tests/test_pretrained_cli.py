"""Shipped-model names and defaults in jaxsr.upscale / jaxsr.evaluate.

The shipped folder is replaced by small random stand-ins here, so these tests
check the lookup logic; tests/test_pretrained.py checks the real weights.
"""
import csv

import dicom_helpers
import jax
import jax.numpy as jnp
import nibabel as nib
import numpy as np
from PIL import Image
import pytest

from jaxsr import evaluate, pretrained, upscale, weights
from jaxsr.models import SRVGGNetCompact


def _save(folder, name, scale, seed):
  kwargs = dict(num_feat=4, num_conv=1)
  module = SRVGGNetCompact(1, 1, upscale=scale, **kwargs)
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  params = jax.tree.map(lambda s: rng.standard_normal(s.shape, np.float32) * 0.05,
                        shapes)["params"]
  weights.save_safetensors(folder / f"{name}.safetensors", params, None, "srvgg", scale, 1, kwargs)
  (folder / f"{name}.md").write_text(f"# {name}\n")


@pytest.fixture()
def shipped(tmp_path, monkeypatch):
  folder = tmp_path / "shipped"
  folder.mkdir()
  for seed, name in enumerate(sorted(pretrained.MODELS)):
    _save(folder, name, 2 if name.endswith("_x2") else 4, seed)
  monkeypatch.setattr(pretrained, "FOLDER", folder)
  return folder


@pytest.fixture()
def images_dir(tmp_path):
  folder = tmp_path / "in"
  folder.mkdir()
  rng = np.random.default_rng(0)
  for name in ("nih_00018999_000.png", "nih_00000075_000.png"):
    Image.fromarray(rng.integers(0, 256, (40, 48), dtype=np.uint8)).save(folder / name)
  return folder


def test_names_resolve_to_the_shipped_files_and_paths_win(shipped, tmp_path, monkeypatch):
  assert pretrained.resolve("xray_x2") == shipped / "xray_x2.safetensors"
  assert pretrained.card_path("xray_x4") == shipped / "xray_x4.md"
  _, _, info = weights.load_generator("xray_x2")
  assert (info["arch"], info["scale"], info["num_channels"]) == ("srvgg", 2, 1)
  # A file or folder of that name in the current folder means that path.
  monkeypatch.chdir(tmp_path)
  (tmp_path / "xray_x2").mkdir()
  assert pretrained.resolve("xray_x2").resolve() == tmp_path / "xray_x2"
  assert str(pretrained.resolve("other.pth")) == "other.pth"


def test_missing_shipped_file_and_unknown_scale_are_one_line_errors(shipped):
  (shipped / "xray_x2.safetensors").unlink()
  with pytest.raises(weights.WeightsError, match="'xray_x2' is missing from this installation"):
    weights.load_generator("xray_x2")
  with pytest.raises(pretrained.PretrainedError, match="no shipped model upscales x3"):
    pretrained.default_name(3)


def test_upscale_without_weights_uses_the_shipped_model_for_the_scale(shipped, images_dir,
                                                                       tmp_path, capsys):
  out = tmp_path / "out"
  assert upscale.main([f"--input={images_dir}", f"--output={out}"]) == 0
  assert "shipped radiograph model xray_x4" in capsys.readouterr().err
  with Image.open(out / "nih_00000075_000.png") as image:
    assert image.size == (48 * 4, 40 * 4)
  assert upscale.main([f"--input={images_dir}", f"--output={tmp_path / 'x2'}", "--scale=2"]) == 0
  assert "shipped radiograph model xray_x2" in capsys.readouterr().err
  with Image.open(tmp_path / "x2" / "nih_00000075_000.png") as image:
    assert image.size == (48 * 2, 40 * 2)
  # By name, and a name whose scale contradicts --scale.
  assert upscale.main([f"--input={images_dir}", f"--output={tmp_path / 'gan'}",
                       "--weights=xray_x4_gan"]) == 0
  capsys.readouterr()
  assert upscale.main([f"--input={images_dir}", f"--output={tmp_path / 'bad'}",
                       "--weights=xray_x4_gan", "--scale=2"]) == 2
  err = capsys.readouterr().err.strip()
  assert err == "jaxsr: error: xray_x4_gan: model upscales x4, not --scale=2"
  assert upscale.main([f"--input={images_dir}", f"--output={tmp_path / 'x3'}", "--scale=3"]) == 2
  assert "no shipped model upscales x3" in capsys.readouterr().err


def _rows(path):
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


@pytest.mark.slow
def test_evaluate_without_weights_compares_the_shipped_models(shipped, images_dir, tmp_path,
                                                              capsys):
  out = tmp_path / "eval4"
  assert evaluate.main([f"--hr={images_dir}", f"--output={out}"]) == 0
  err = capsys.readouterr().err
  for name in ("xray_x4", "xray_x4_gan"):
    assert f"using the shipped radiograph model {name}" in err
  assert "note:" not in err  # PNGs have no Modality: radiographs, no notice.
  rows = _rows(out / "metrics.csv")
  assert {r["model"] for r in rows} == {"bicubic", "xray_x4", "xray_x4_gan"}
  assert {r["image"] for r in rows} == {"nih_00018999_000.png", "nih_00000075_000.png"}
  # --heldout keeps only the shipped models' held-out patients; --scale=2 picks xray_x2.
  out = tmp_path / "eval2"
  assert evaluate.main([f"--hr={images_dir}", f"--output={out}", "--scale=2", "--heldout"]) == 0
  rows = _rows(out / "metrics.csv")
  assert {(r["image"], r["model"]) for r in rows} == {
      ("nih_00018999_000.png", "bicubic"), ("nih_00018999_000.png", "xray_x2")}
  assert {r["scale"] for r in rows} == {"2"}


@pytest.fixture()
def ct_and_png_dir(images_dir):
  """The PNG radiographs beside a 3-slice CT series (a head of water in air)."""
  hu = np.full((3, 40, 48), -1000, np.int32)
  hu[:, 8:32, 8:40] = np.random.default_rng(1).integers(-50, 80, (3, 24, 32))
  dicom_helpers.write_ct_series(images_dir / "head_ct", hu)
  return images_dir


@pytest.mark.slow
def test_evaluate_without_weights_picks_the_models_by_modality(shipped, ct_and_png_dir, tmp_path,
                                                               capsys):
  out = tmp_path / "auto"
  assert evaluate.main([f"--hr={ct_and_png_dir}", f"--output={out}"]) == 0
  err = capsys.readouterr().err
  assert "using the shipped CT model ct_x2" in err and "note:" not in err
  rows = _rows(out / "metrics.csv")
  assert {r["scale"] for r in rows} == {"2"}  # CT has a x2 model: the run is x2.
  models = lambda image: {r["model"] for r in rows if r["image"] == image}
  assert models("head_ct") == {"bicubic", "ct_x2"}
  assert models("nih_00000075_000.png") == {"bicubic", "xray_x2"}
  # At x4 CT has no model of its own: the radiograph models, with one notice.
  out = tmp_path / "x4"
  assert evaluate.main([f"--hr={ct_and_png_dir}", f"--output={out}", "--scale=4"]) == 0
  err = capsys.readouterr().err
  assert err.count("note: no shipped CT model at x4; upscaled by the radiograph model") == 1
  assert {r["model"] for r in _rows(out / "metrics.csv") if r["image"] == "head_ct"} == {
      "bicubic", "xray_x4", "xray_x4_gan"}
  assert evaluate.main([f"--hr={ct_and_png_dir}", f"--output={tmp_path / 'x3'}",
                        "--scale=3"]) == 2
  assert "no shipped model upscales x3; pass --weights" in capsys.readouterr().err


def test_upscale_logs_the_nifti_ct_guess_and_picks_ct_x2(shipped, tmp_path, capsys):
  hu = np.full((24, 20, 3), -1024, np.int16)
  hu[4:20, 4:16] = 40
  (tmp_path / "in").mkdir()
  nib.save(nib.Nifti1Image(hu, np.eye(4)), tmp_path / "in" / "head.nii.gz")
  assert upscale.main([f"--input={tmp_path / 'in'}", f"--output={tmp_path / 'out'}"]) == 0
  err = capsys.readouterr().err
  assert "CT guessed from its lowest value, -1024 (air in HU)" in err
  assert "using the shipped CT model ct_x2" in err
  assert nib.load(tmp_path / "out" / "head.nii.gz").shape == (48, 40, 3)
  # Said to be MR: no guess, and no MR model yet means the radiograph model.
  assert upscale.main([f"--input={tmp_path / 'in'}", f"--output={tmp_path / 'mr'}",
                       "--modality=mr"]) == 0
  assert "guessed" not in capsys.readouterr().err


def test_evaluate_include_exclude(shipped, images_dir, tmp_path, capsys):
  out = tmp_path / "inc"
  assert evaluate.main([f"--hr={images_dir}", f"--output={out}", "--weights=xray_x4",
                        "--include=nih_0000*", "--exclude=*18999*"]) == 0
  assert {r["image"] for r in _rows(out / "metrics.csv")} == {"nih_00000075_000.png"}
  capsys.readouterr()
  assert evaluate.main([f"--hr={images_dir}", f"--output={tmp_path / 'none'}",
                        "--include=nothing*"]) == 2
  assert "no images left after --include/--exclude/--heldout" in capsys.readouterr().err
