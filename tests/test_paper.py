"""tools/reproduce_paper.sh end to end on :tiny configs: six trainings, two scorings, tables."""
import csv
import importlib.util
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from jaxsr import config as base
import run_helpers

REPO = run_helpers.REPO
SCRIPT = REPO / "tools" / "reproduce_paper.sh"
STAGES = ("srresnet", "srgan", "rrdb_psnr", "esrgan", "realesrnet", "realesrgan")
NAMES = ("SRResNet", "SRGAN", "RRDB-PSNR", "ESRGAN", "Real-ESRNet", "Real-ESRGAN")
HELDOUT = ("nih_00018999_000.png", "nih_00021038_000.png", "case_pydicom966_chest_DX.png")


def _config(stage: str, arg: str = ""):
  spec = importlib.util.spec_from_file_location(stage, REPO / "configs" / "paper" / f"{stage}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def _radiograph(seed: int, side: int = 160, bits: int = 8) -> np.ndarray:
  rng = np.random.default_rng(seed)
  coarse = Image.fromarray(rng.random((10, 10)).astype(np.float32))
  smooth = np.asarray(coarse.resize((side, side), Image.Resampling.BICUBIC), np.float64)
  levels = 2 ** bits - 1
  return np.clip(smooth * levels, 0, levels).astype(np.uint8 if bits == 8 else np.uint16)


def _data(root: pathlib.Path) -> pathlib.Path:
  png, train = root / "xray" / "png", root / "xray_train" / "nih"
  png.mkdir(parents=True)
  train.mkdir(parents=True)
  for i, name in enumerate(HELDOUT):
    Image.fromarray(_radiograph(i, bits=12 if "DX" in name else 8)).save(png / name)
  for i in range(3):
    Image.fromarray(_radiograph(10 + i)).save(png / f"nih_9000000{i}_000.png")
    Image.fromarray(_radiograph(20 + i)).save(train / f"nih_9100000{i}_000.png")
  return root


def _run(data, out, *option):
  # The compilation cache on, as a user's runs have it (in a folder of the
  # test's own): the stages and scorings that share a network reuse its
  # executables and traced graphs.
  env = dict(run_helpers.env(1), PYTHON=sys.executable, JAX_ENABLE_COMPILATION_CACHE="true",
             JAX_COMPILATION_CACHE_DIR=str(pathlib.Path(out).parent / "xla"))
  return subprocess.run(["bash", str(SCRIPT), str(data), str(out), *option], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=1500, check=False)


def test_paper_stages_share_the_setup_and_start_from_their_psnr_stage():
  configs = {stage: _config(stage) for stage in STAGES}
  for c in configs.values():
    assert (c.scale, c.data.patch_size, c.data.batch_size) == (4, 128, base.PAPER_BATCH)
    assert c.train.num_steps == base.PAPER_STEPS
    assert c.train.checkpoint_every < c.train.num_steps  # a stopped stage resumes
    assert set(base.XRAY_HELDOUT + base.XRAY_VALIDATION) <= set(c.data.train_exclude)
  assert configs["srresnet"].model.name == configs["srgan"].model.name == "srresnet"
  for stage in ("rrdb_psnr", "esrgan", "realesrnet", "realesrgan"):
    assert (configs[stage].model.name, configs[stage].model.num_block) == ("rrdbnet", 6)
    assert _config(stage, "full").model.num_block == 23
  for stage in ("srgan", "esrgan", "realesrgan"):
    assert configs[stage].discriminator.num_feat == base.PAPER_DISC_FEAT
    full = _config(stage, "full")
    assert (full.discriminator.num_feat, full.data.batch_size) == (64, 16)
  # Reference schedules scaled to the steps; VGG terms only with :vgg.
  assert configs["srgan"].optim_g.milestones == (base.PAPER_STEPS // 2,)
  assert configs["esrgan"].optim_g.milestones[-1] == 3 * base.PAPER_STEPS // 4
  assert configs["esrgan"].loss.perceptual_weight == 0
  assert configs["esrgan"].loss.pixel_weight == pytest.approx(1.01)
  vgg = _config("esrgan", "vgg")
  assert (vgg.loss.perceptual_weight, vgg.loss.pixel_weight) == (1.0, 1e-2)
  assert _config("srgan", "vgg").loss.perceptual_feature_scale == pytest.approx(1 / 12.75)
  assert configs["realesrgan"].degradation.name == "realesrgan"
  with pytest.raises(ValueError, match="unknown config argument"):
    _config("srgan", "huge")


def test_reproduce_paper_refuses_a_data_folder_without_its_parts(tmp_path):
  result = _run(tmp_path, tmp_path / "out")
  assert result.returncode == 2
  assert result.stderr.strip().splitlines() == [
      f"reproduce_paper: {tmp_path}/xray/png: no such folder (DATA_DIR must hold xray/png "
      "and xray_train)"]


@pytest.mark.slow
def test_reproduce_paper_tiny_end_to_end_and_resumes(tmp_path):
  data, out = _data(tmp_path / "data"), tmp_path / "out"
  result = _run(data, out, "tiny")
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  for stage in STAGES:
    assert (out / stage / "FINISHED").exists()
    assert int((out / stage / "seconds").read_text().split()[0]) > 0
  for kind in ("clean", "realesrgan"):
    with (out / f"eval_{kind}" / "metrics.csv").open() as f:
      rows = list(csv.DictReader(f))
    # The held-out patients only: none of the training images is scored.
    assert {pathlib.Path(r["image"]).name for r in rows} == set(HELDOUT)
    assert {r["model"] for r in rows} == {"bicubic", *NAMES}
    assert (out / f"eval_{kind}" / "metrics.png").exists()
  tables = (out / "tables.md").read_text()
  for name in NAMES:
    assert f"**{name}**" in tables and f"| {name} | " in tables
  assert "| Image | PSNR | MSE | SSIM |" in tables
  assert "(0..4095)" in tables  # the 12-bit DX image's MSE on its own levels
  assert "## Held-out patients, x4, Real-ESRGAN-degraded LR (seed 0)" in tables
  for stage, init in (("srgan", "srresnet"), ("esrgan", "rrdb_psnr"), ("realesrnet", "rrdb_psnr"),
                      ("realesrgan", "realesrnet")):
    steps = _config(stage, "tiny").train.num_steps
    assert f"| {stage} | " in tables and f"| {init} | {steps} |" in tables.split(f"| {stage} | ")[1]

  # Rerun: finished stages and scorings are skipped; a stage that lost its
  # marker (stopped after its last checkpoint) resumes rather than restarts.
  (out / "realesrgan" / "FINISHED").unlink()
  again = _run(data, out, "tiny")
  assert again.returncode == 0, again.stderr[-3000:]
  for stage in STAGES[:-1]:
    assert f"[reproduce_paper] {stage}: finished earlier, skipped" in again.stdout
  assert "resumed from" in again.stdout
  assert "eval_clean: scored earlier, skipped" in again.stdout
  assert len((out / "realesrgan" / "seconds").read_text().split()) == 2


def _paper_tables():
  spec = importlib.util.spec_from_file_location("paper_tables", REPO / "tools" / "paper_tables.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_training_table_reports_wall_time_and_the_logged_rate(tmp_path):
  # The wall time counts compilation and pauses; the logged rate is the
  # steps alone, the median of what train.log reported.
  stage = tmp_path / "srgan"
  stage.mkdir()
  (stage / "config.json").write_text(json.dumps(
      {"name": "SRGAN", "init_from": str(tmp_path / "srresnet"),
       "train": {"num_steps": 160}, "data": {"batch_size": 4}}))
  (stage / "seconds").write_text("300\n180\n")
  (stage / "train.log").write_text(
      "step 10/160 | l_g 0.1 | 0.40 steps/s, 1.6 images/s | ETA 6m\n"
      "step 20/160 | l_g 0.1 | 0.50 steps/s, 2.0 images/s | ETA 5m\n"
      "step 30/160 | l_g 0.1 | 0.60 steps/s, 2.4 images/s | ETA 4m\n")
  lines = _paper_tables().training_table(tmp_path)
  assert lines[0].endswith("| wall time | s/step | logged steps/s |")
  assert lines[2:] == ["| srgan | SRGAN | srresnet | 160 | 4 | 8.0 min | 3.00 | 0.50 |"]
