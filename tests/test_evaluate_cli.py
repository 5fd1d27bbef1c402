"""python -m jaxsr.evaluate: outputs, bit depths, degradations and errors.

Two tiny random generators (numpy-filled: flax's eager init is slow on CPU)
score a few synthetic 8- and 16-bit radiographs plus one real one.
"""
import csv
import math
import shutil

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from jaxsr import evaluate, weights
from jaxsr.degradations import realesrgan
from jaxsr.evaluation import figures
from jaxsr.models import MSRResNet, SRVGGNetCompact
from dicom_helpers import write_ct_series


def _random_variables(module, seed):
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  return jax.tree.map(lambda s: jnp.asarray(rng.standard_normal(s.shape, np.float32) * 0.05),
                      shapes)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
  root = tmp_path_factory.mktemp("weights")
  resnet = dict(num_feat=8, num_block=1)
  variables = _random_variables(MSRResNet(1, 1, upscale=4, **resnet), 1)
  weights.save_safetensors(root / "resnet.safetensors", variables["params"], None, "msrresnet",
                           4, 1, resnet)
  vgg = dict(num_feat=8, num_conv=2)
  variables = _random_variables(SRVGGNetCompact(1, 1, upscale=4, **vgg), 2)
  weights.save_pth(root / "vgg.pth", variables["params"])  # Official-style: no metadata.
  weights.save_safetensors(root / "vgg_x4.safetensors", variables["params"], None, "srvgg", 4,
                           1, vgg)
  variables = _random_variables(SRVGGNetCompact(1, 1, upscale=2, **vgg), 3)
  weights.save_safetensors(root / "vgg_x2.safetensors", variables["params"], None, "srvgg", 2,
                           1, vgg)
  return root


def _smooth(rng, height, width):
  y, x = np.mgrid[0:height, 0:width] / max(height, width)
  image = 0.5 + 0.3 * np.sin(6 * x + 3 * y) * np.cos(5 * y)
  return np.clip(image + 0.02 * rng.standard_normal((height, width)), 0, 1)


@pytest.fixture(scope="module")
def hr_dir(tmp_path_factory, xray_dir):
  folder = tmp_path_factory.mktemp("hr")
  rng = np.random.default_rng(0)
  Image.fromarray(np.round(_smooth(rng, 70, 90) * 255).astype(np.uint8)).save(folder / "a8.png")
  Image.fromarray(np.round(_smooth(rng, 90, 66) * 65535).astype(np.uint16)).save(
      folder / "b16.png")
  shutil.copy(xray_dir / "png" / "nih_00000075_000.png", folder / "c_nih.png")
  return folder


def _run(capsys, *args):
  code = evaluate.main([str(a) for a in args])
  return code, capsys.readouterr().err


def _rows(path):
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


def _png_size(path):
  with Image.open(path) as image:
    image.verify()
  with Image.open(path) as image:
    return image.size


@pytest.mark.slow
def test_bicubic_outputs(tmp_path, capsys, models, hr_dir):
  out = tmp_path / "out"
  code, err = _run(capsys, f"--weights={models / 'resnet.safetensors'}",
                   f"--weights={models / 'vgg.pth'}", f"--hr={hr_dir}", f"--output={out}",
                   "--scale=4", "--center_crop=256", "--tile=32", "--tile_overlap=8")
  assert code == 0, err
  rows = _rows(out / "metrics.csv")
  assert list(rows[0]) == ["image", "model", "scale", "bits", "psnr", "ssim", "mse", "modality",
                           "data_range", "slice", "psnr_soft_tissue", "ssim_soft_tissue",
                           "group"]
  assert len(rows) == 3 * 3
  assert {r["model"] for r in rows} == {"bicubic", "resnet", "vgg"}
  assert {r["image"] for r in rows} == {"a8.png", "b16.png", "c_nih.png"}
  bits = {"a8.png": 8, "b16.png": 16, "c_nih.png": 8}
  for row in rows:
    assert row["scale"] == "4" and int(row["bits"]) == bits[row["image"]]
    peak = 2**bits[row["image"]] - 1
    mse, psnr = float(row["mse"]), float(row["psnr"])
    assert psnr == pytest.approx(10 * math.log10(peak**2 / mse), rel=1e-9)
    assert -1 <= float(row["ssim"]) <= 1
  bicubic = {r["image"]: float(r["psnr"]) for r in rows if r["model"] == "bicubic"}
  assert bicubic["b16.png"] > 25 and bicubic["c_nih.png"] > 25  # A sane baseline.
  # MSE is in the image's own levels: 16-bit errors are ~256**2 times 8-bit ones.
  mse16 = [float(r["mse"]) for r in rows if r["image"] == "b16.png"]
  assert min(mse16) > 1000

  summary = (out / "summary.md").read_text()
  for heading in ("### bicubic (×4)", "### resnet (×4)", "### vgg (×4)", "### Comparison"):
    assert heading in summary
  assert summary.count("| Image | PSNR | MSE | SSIM |") == 3
  assert "realesrgan" not in summary and "bicubic LR" in summary

  width, height = _png_size(out / "metrics.png")
  assert width > 600 and height > 200
  for stem in ("a8", "b16", "c_nih"):
    width, height = _png_size(out / "crops" / f"{stem}.png")
    assert width > 5 * 100 and height > 100  # LR, bicubic, 2 models, HR.
  assert sorted(p.name for p in hr_dir.iterdir()) == ["a8.png", "b16.png", "c_nih.png"]


def test_low_bit_data_in_a_16_bit_png_is_scored_at_its_own_depth(tmp_path, capsys, models,
                                                                    hr_dir):
  """10-bit levels in a 16-bit PNG: scored on 0..1023 (not 65535), means kept
  apart from the 8-bit images, and the crops windowed to the data."""
  folder = tmp_path / "hr"
  folder.mkdir()
  shutil.copy(hr_dir / "a8.png", folder / "a8.png")
  rng = np.random.default_rng(5)
  ten = np.round(_smooth(rng, 80, 96) * 1023).astype(np.uint16)
  Image.fromarray(ten).save(folder / "ten.png")
  out = tmp_path / "out"
  code, err = _run(capsys, f"--weights={models / 'vgg_x4.safetensors'}", f"--hr={folder}",
                   f"--output={out}", "--crop_border=2")
  assert code == 0, err
  rows = {(r["image"], r["model"]): r for r in _rows(out / "metrics.csv")}
  bicubic = rows[("ten.png", "bicubic")]
  assert int(bicubic["bits"]) == 10
  assert float(bicubic["psnr"]) == pytest.approx(
      10 * math.log10(1023 ** 2 / float(bicubic["mse"])), rel=1e-9)
  assert 25 < float(bicubic["psnr"]) < 60  # Not the 80+ dB of a 65535 peak.
  summary = (out / "summary.md").read_text()
  assert "- Border: 2 px cropped at each edge before scoring" in summary
  assert "- Images: 2" in summary and "- LR: bicubic" in summary
  assert "### Means by bit depth" in summary
  with Image.open(out / "crops" / "ten.png") as figure:
    grey = np.asarray(figure.convert("L"), np.float64)
  assert grey.std() > 30  # Windowed to the 10-bit data, not black on a 16-bit scale.


@pytest.mark.slow
def test_realesrgan_is_deterministic_and_differs(tmp_path, capsys, models, hr_dir):
  small = tmp_path / "hr"
  small.mkdir()
  # Both 8-bit and of similar size: one compiled degradation serves every run.
  shutil.copy(hr_dir / "a8.png", small / "a8.png")
  with Image.open(hr_dir / "a8.png") as image:
    image.transpose(Image.Transpose.ROTATE_90).save(small / "r8.png")
  common = [f"--weights={models / 'vgg_x4.safetensors'}", f"--hr={small}", "--names=tiny"]
  results = []
  for run, degradation in enumerate(("realesrgan", "realesrgan", "bicubic")):
    out = tmp_path / f"out{run}"
    code, err = _run(capsys, *common, f"--output={out}", f"--degradation={degradation}",
                     "--seed=3")
    assert code == 0, err
    results.append((out / "metrics.csv").read_text())
  assert results[0] == results[1]
  assert results[0] != results[2]
  assert {r["model"] for r in _rows(tmp_path / "out0" / "metrics.csv")} == {"bicubic", "tiny"}
  assert "realesrgan LR (seed 3)" in (tmp_path / "out0" / "summary.md").read_text()


def test_realesrgan_lr_of_whole_image():
  hr = np.random.default_rng(0).uniform(size=(40, 72)).astype(np.float32)
  lr = realesrgan.whole_image_lr(hr, 4, 8, seed=1, index=2)
  assert lr.shape == (10, 18) and lr.dtype == np.float32
  np.testing.assert_array_equal(lr, realesrgan.whole_image_lr(hr, 4, 8, seed=1, index=2))
  assert not np.array_equal(lr, realesrgan.whole_image_lr(hr, 4, 8, seed=1, index=3))
  np.testing.assert_allclose(np.round(lr * 255), lr * 255, atol=1e-3)  # Stored at 8 bits.


def test_errors(tmp_path, capsys, models, hr_dir):
  out = tmp_path / "out"
  ok = f"--weights={models / 'resnet.safetensors'}"
  cases = [
      ([f"--weights={tmp_path / 'missing.safetensors'}", f"--hr={hr_dir}"], "no such weights"),
      ([ok, f"--hr={tmp_path / 'empty'}"], "no such folder"),
      ([ok, f"--weights={models / 'vgg_x2.safetensors'}", f"--hr={hr_dir}"], "different scales"),
      ([ok, f"--hr={hr_dir}", "--scale=2"], "not --scale=2"),
      ([ok, f"--hr={hr_dir}", "--names=a,b"], "2 names for 1"),
      ([ok, f"--hr={hr_dir}", "--names=bicubic"], "taken by the baseline"),
  ]
  for args, message in cases:
    code, err = _run(capsys, *args, f"--output={out}")
    assert code == 2 and message in err, (args, err)
    assert len(err.strip().splitlines()) == 1
  (tmp_path / "empty").mkdir()
  code, err = _run(capsys, ok, f"--hr={tmp_path / 'empty'}", f"--output={out}")
  assert code == 2 and "no images found" in err
  code, err = _run(capsys, ok, f"--hr={hr_dir}", f"--output={hr_dir / 'results'}")
  assert code == 2 and "inside) the --hr folder" in err
  assert not out.exists() and not (hr_dir / "results").exists()


def test_workdir_weights(tmp_path, capsys, hr_dir):
  from jaxsr.models import RRDBNet  # pylint: disable=import-outside-toplevel
  from jaxsr import workdir as checkpoint  # pylint: disable=import-outside-toplevel
  kwargs = dict(num_feat=8, num_block=1, num_grow_ch=4)
  params = _random_variables(RRDBNet(1, 1, upscale=4, **kwargs), 4)["params"]
  workdir = tmp_path / "run_rrdb"
  mngr = checkpoint.manager(workdir)
  checkpoint.save(mngr, 5, dict(g_params=params, ema_params=params), None,
                  dict(model=dict(name="rrdbnet", **kwargs), scale=4, num_channels=1), force=True)
  mngr.wait_until_finished()
  small = tmp_path / "hr"
  small.mkdir()
  shutil.copy(hr_dir / "b16.png", small / "b16.png")
  out = tmp_path / "out"
  code, err = _run(capsys, f"--weights={workdir}", f"--hr={small}", f"--output={out}")
  assert code == 0, err
  assert [r["model"] for r in _rows(out / "metrics.csv")] == ["bicubic", "run_rrdb"]
  assert _png_size(out / "crops" / "b16.png")[0] > 300


def test_unreadable_image_is_skipped(tmp_path, capsys, models, hr_dir):
  folder = tmp_path / "hr"
  folder.mkdir()
  shutil.copy(hr_dir / "a8.png", folder / "a8.png")
  (folder / "bad.png").write_text("not an image")
  out = tmp_path / "out"
  code, err = _run(capsys, f"--weights={models / 'vgg_x4.safetensors'}", f"--hr={folder}",
                   f"--output={out}")
  assert code == 1 and "bad.png" in err and "1 of 2 images failed" in err
  assert {r["image"] for r in _rows(out / "metrics.csv")} == {"a8.png"}


def test_ct_volume_scored_per_slice_and_whole_in_hu_with_soft_tissue(tmp_path):
  rng = np.random.default_rng(5)
  tissue = np.rint(40 + 300 * (_smooth(rng, 48, 48) - 0.5)).astype(np.int32)
  air = np.full((48, 48), -1024, np.int32)  # Reproduced exactly: PSNR inf on its own.
  write_ct_series(tmp_path / "ct", [tissue, air, tissue + 200])
  assert evaluate.main([f"--hr={tmp_path / 'ct'}", f"--output={tmp_path / 'out'}",
                        f"--weights={tmp_path / 'x.safetensors'}"]) == 2  # Missing weights.
  module = MSRResNet(1, 1, upscale=2, num_feat=8, num_block=1)
  variables = _random_variables(module, 4)
  weights.save_safetensors(tmp_path / "m.safetensors", variables["params"], None, "msrresnet",
                           2, 1, dict(num_feat=8, num_block=1))
  assert evaluate.main([f"--hr={tmp_path / 'ct'}", f"--output={tmp_path / 'out'}",
                        f"--weights={tmp_path / 'm.safetensors'}", "--crop_border=2"]) == 0
  with open(tmp_path / "out" / "metrics.csv", encoding="utf-8") as file:
    rows = list(csv.DictReader(file))
  bicubic = [r for r in rows if r["model"] == "bicubic"]
  assert [r["slice"] for r in bicubic] == ["", "0", "1", "2"]
  assert {r["modality"] for r in rows} == {"CT"} and {r["data_range"] for r in rows} == {"4095.0"}
  whole, slices = bicubic[0], bicubic[1:]
  assert float(slices[1]["psnr"]) == math.inf  # The air slice.
  mse = np.mean([float(r["mse"]) for r in slices])
  assert float(whole["mse"]) == pytest.approx(mse)
  assert float(whole["psnr"]) == pytest.approx(10 * math.log10(4095**2 / mse))
  assert math.isfinite(float(whole["psnr_soft_tissue"]))
  # Soft tissue is scored in a 400 HU window: the same error is a larger share of it.
  assert float(slices[0]["psnr_soft_tissue"]) < float(slices[0]["psnr"])
  assert float(whole["ssim"]) == pytest.approx(np.mean([float(r["ssim"]) for r in slices]))
  summary = (tmp_path / "out" / "summary.md").read_text()
  assert "### Means by modality" in summary and "| CT | bicubic | 1 | 4095 |" in summary


def test_slices_and_min_foreground_pick_a_volumes_slices_numbered_as_in_the_volume(
    tmp_path, monkeypatch, capsys):
  """--slices/--min_foreground as data.eval_slices/min_foreground; CT figures in the
  soft-tissue window."""
  rng = np.random.default_rng(6)
  tissue = np.rint(40 + 300 * (_smooth(rng, 48, 48) - 0.5)).astype(np.int32)
  air = np.full((48, 48), -1024, np.int32)
  write_ct_series(tmp_path / "ct", [tissue, tissue + 10, air, tissue + 20, tissue + 30])
  module = MSRResNet(1, 1, upscale=2, num_feat=8, num_block=1)
  weights.save_safetensors(tmp_path / "m.safetensors", _random_variables(module, 4)["params"],
                           None, "msrresnet", 2, 1, dict(num_feat=8, num_block=1))
  drawn = []
  real_panels = figures.crop_panels
  monkeypatch.setattr(figures, "crop_panels", lambda *a, **k: (
      drawn.append(k), real_panels(*a, **k)))
  base = [f"--hr={tmp_path / 'ct'}", f"--weights={tmp_path / 'm.safetensors'}"]
  assert evaluate.main(base + [f"--output={tmp_path / 'a'}", "--slices=1:4",
                               "--min_foreground=0.5"]) == 0
  capsys.readouterr()
  slices = [r["slice"] for r in _rows(tmp_path / "a" / "metrics.csv") if r["model"] == "bicubic"]
  assert slices == ["", "1", "3"]  # 2 is air; numbers are the volume's own.
  assert drawn[-1]["window_label"] == "soft-tissue window W 400 / L 40 HU"
  low, high = drawn[-1]["window"]
  assert (low * 4095 - 1024, high * 4095 - 1024) == (pytest.approx(-160), pytest.approx(240))
  # Nothing left: the volume fails by name; a bad range is a usage error.
  assert evaluate.main(base + [f"--output={tmp_path / 'b'}", "--slices=2:3",
                               "--min_foreground=0.5"]) == 1
  assert "ct: none of its 5 slices is in --slices=2:3 with --min_foreground=0.5" in (
      capsys.readouterr().err)
  with pytest.raises(SystemExit) as exit_info:
    evaluate.main(base + [f"--output={tmp_path / 'c'}", "--slices=3"])
  assert exit_info.value.code == 2
  assert "give START:STOP" in capsys.readouterr().err


def test_source_groups_from_folders_or_patterns_with_gains_over_bicubic(tmp_path, capsys, models):
  """Means per source group, each gain taken against bicubic on the group's own images;
  --validation keeps only XRAY_VALIDATION, --groups overrides the folder layout."""
  from jaxsr import config as base  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(5)
  hr = tmp_path / "hr"
  names = [f"nih/{base.XRAY_VALIDATION_NIH[0]}", f"nih/{base.XRAY_VALIDATION_NIH[1]}",
           f"mhh/{base.XRAY_VALIDATION[-1]}", "mhh/mhh_notvalidation.png"]
  for name in names:
    (hr / name).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(_smooth(rng, 64, 64) * 255).astype(np.uint8)).save(hr / name)
  _run(capsys, "--weights", str(models / "vgg_x4.safetensors"), "--hr", str(hr), "--output",
       str(tmp_path / "by_folder"), "--validation", "--figure_crop=16")
  rows = _rows(tmp_path / "by_folder" / "metrics.csv")
  assert {r["image"] for r in rows} == set(names[:3])
  assert {r["image"]: r["group"] for r in rows} == {names[0]: "nih", names[1]: "nih",
                                                   names[2]: "mhh"}
  text = (tmp_path / "by_folder" / "summary.md").read_text()
  table = text[text.index("### Means by source group"):]
  gain = np.mean([float(m["psnr"]) - float(b["psnr"])
                  for m in rows if m["model"] != "bicubic" and m["group"] == "nih"
                  for b in rows if b["model"] == "bicubic" and b["image"] == m["image"]])
  assert f"| nih | vgg_x4 | 2 | 8 |" in table and f"{gain:+.2f}" in table
  _run(capsys, "--weights", str(models / "vgg_x4.safetensors"), "--hr", str(hr), "--output",
       str(tmp_path / "by_pattern"), "--groups=first=*00000846*,rest=*.png", "--figure_crop=16")
  groups = {r["image"]: r["group"] for r in _rows(tmp_path / "by_pattern" / "metrics.csv")}
  assert groups[f"nih/{base.XRAY_VALIDATION_NIH[0]}"] == "first"
  assert set(groups.values()) == {"first", "rest"} and len(groups) == 4


def test_malformed_groups_are_a_one_line_error(tmp_path, capsys, models, hr_dir):
  code = evaluate.main(["--weights", str(models / "vgg_x4.safetensors"), "--hr", str(hr_dir),
                        "--output", str(tmp_path / "out"), "--groups=nih"])
  assert code == 2
  assert "'nih' is not NAME=GLOB" in capsys.readouterr().err


def test_given_lr_pairs_are_scored_as_read(tmp_path, capsys, models):
  """--lr reads each HR image's LR at the same relative path (any extension); a missing
  or wrongly sized LR is reported by name and skipped, exit 1."""
  rng = np.random.default_rng(6)
  hr, lr = tmp_path / "hr", tmp_path / "lr"
  (hr / "sub").mkdir(parents=True)
  (lr / "sub").mkdir(parents=True)
  given = {}
  for name, size in (("a.png", (64, 64)), ("sub/b.png", (72, 64)), ("wrong.png", (64, 64)),
                     ("alone.png", (64, 64))):
    Image.fromarray(np.round(_smooth(rng, *size) * 255).astype(np.uint8)).save(hr / name)
    side = (16, 16) if name != "wrong.png" else (17, 16)
    given[name] = rng.integers(0, 256, side, dtype=np.uint8)
    if name != "alone.png":
      Image.fromarray(given[name]).save(lr / name.replace(".png", ".tif"))
  Image.fromarray(given["a.png"]).save(lr / "orphan.png")
  code, err = _run(capsys, "--weights", str(models / "vgg_x4.safetensors"), "--hr", str(hr),
                   "--lr", str(lr), "--output", str(tmp_path / "out"), "--figure_crop=16")
  assert code == 1
  assert "wrong.png: LR is 16x17: x4 needs an HR of at least 64x68, the HR is 64x64" in err
  assert "alone.png: no LR file alone.* in" in err
  assert "orphan.png: LR file without an HR image" in err
  assert "sub/b.png: HR 64x72 cut to 64x64, x4 the LR's 16x16" in err
  rows = _rows(tmp_path / "out" / "metrics.csv")
  assert {r["image"] for r in rows} == {"a.png", "sub/b.png"}
  from jaxsr.degradations import bicubic  # pylint: disable=import-outside-toplevel
  from jaxsr.evaluation import metrics  # pylint: disable=import-outside-toplevel
  hr_a = np.asarray(Image.open(hr / "a.png"), np.float32) / 255
  expected = metrics.image_metrics(bicubic.upscale(given["a.png"] / np.float32(255), (64, 64)),
                                   hr_a, 8, crop_border=4)["psnr"]
  (row,) = [r for r in rows if r["image"] == "a.png" and r["model"] == "bicubic"]
  assert float(row["psnr"]) == pytest.approx(expected, abs=1e-9)
  assert "given LR files" in (tmp_path / "out" / "summary.md").read_text()
  with pytest.raises(SystemExit):
    evaluate.main(["--hr", str(hr), "--lr", str(lr), "--output", str(tmp_path / "o2"),
                   "--center_crop=32"])
