"""End-to-end runs of ``python -m jaxsr.main``: train, stop, resume, evaluate, errors."""
import csv
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from run_helpers import final_state as _final_state, flat_leaves as _leaves
from run_helpers import tensorboard_events

pytestmark = pytest.mark.slow  # Subprocess runs of the trainer.

REPO = pathlib.Path(__file__).resolve().parents[1]


def _cmd(config, workdir, *overrides, mode="train"):
  return [sys.executable, "-m", "jaxsr.main", f"--config={REPO / 'configs' / config}",
          f"--workdir={workdir}", f"--mode={mode}", *overrides]


def _env():
  env = dict(os.environ)
  env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=1"
  env["PYTHONUNBUFFERED"] = "1"
  return env


def _run(cmd, timeout=600):
  return subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True,
                        timeout=timeout, check=False)


@pytest.fixture(scope="module")
def data_dirs(xray_dir, tmp_path_factory):
  """The shared PNGs (8-bit NIH and 16-bit), split into train and eval by link."""
  root = tmp_path_factory.mktemp("xray")
  train, evaluation = root / "train", root / "eval"
  train.mkdir()
  evaluation.mkdir()
  pngs = sorted((xray_dir / "png").glob("*.png"))
  held_out = {p.name for p in pngs if p.name.startswith("nih_")}
  held_out = set(sorted(held_out)[-2:]) | {"dcm16_wg04_RG3_leg_CR_UNC.png"}
  for p in pngs:
    (evaluation if p.name in held_out else train).joinpath(p.name).symlink_to(p)
  return train, evaluation


SRGAN_STEPS = 30


def _srgan_cmd(workdir, data_dirs, *extra):
  train, evaluation = data_dirs
  return _cmd("srgan.py:tiny", workdir, f"--config.data.train_dir={train}",
              f"--config.data.eval_dir={evaluation}", f"--config.train.num_steps={SRGAN_STEPS}",
              "--config.train.checkpoint_every=5", "--config.train.log_every=5",
              "--config.eval.max_images=3", *extra)


@pytest.fixture(scope="module")
def uninterrupted(data_dirs, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("uninterrupted")
  result = _run(_srgan_cmd(workdir, data_dirs))
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir, result


def test_training_logs_progress_and_writes_checkpoints_and_events(uninterrupted):
  workdir, result = uninterrupted
  assert "steps/s" in result.stderr and "images/s" in result.stderr and "ETA" in result.stderr
  step, state = _final_state(workdir)
  assert step == SRGAN_STEPS
  assert set(state) >= {"g_params", "d_params", "g_opt", "d_opt", "ema_params", "rng", "step"}
  assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
  assert (workdir / "config.json").is_file()


def test_a_run_with_an_eval_folder_evaluates_at_the_end_and_logs_it(uninterrupted, data_dirs):
  """train.eval_every=0 (the tiny configs) means: evaluate once, at the end."""
  workdir, result = uninterrupted
  _, evaluation = data_dirs
  out = workdir / "eval" / f"step_{SRGAN_STEPS:07d}"
  with open(out / "metrics.csv") as f:
    rows = list(csv.DictReader(f))
  assert {r["model"] for r in rows} == {"bicubic", "srgan"}
  assert (out / "summary.md").is_file() and (out / "metrics.png").is_file()
  assert len(list((out / "crops").glob("*.png"))) == len({r["image"] for r in rows})
  assert f"eval at step {SRGAN_STEPS}" in result.stderr
  scalars, images = tensorboard_events(workdir / "tensorboard")
  for tag in ("eval/psnr", "eval/ssim", "eval/mse", "eval/bicubic_psnr",
              "eval/psnr_gain_over_bicubic"):
    assert [step for step, _ in scalars[tag]] == [SRGAN_STEPS], tag
  assert scalars["lr/generator"] and scalars["lr/discriminator"]
  assert scalars["lr/generator"][-1][1] == pytest.approx(1e-4)
  assert "l_g_total" in scalars and "perf/steps_per_sec" in scalars
  strips = [tag for tag in images if tag.startswith("eval/") and tag.endswith("_lr_sr_hr")]
  assert len(strips) == 3  # eval.num_samples LR | SR | HR strips.


def test_stopped_run_resumes_to_the_same_state(uninterrupted, data_dirs, tmp_path):
  reference_dir, _ = uninterrupted
  workdir = tmp_path / "interrupted"
  proc = subprocess.Popen(_srgan_cmd(workdir, data_dirs), cwd=REPO, env=_env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  try:
    deadline = time.time() + 300
    while not (workdir / "checkpoints" / "10").is_dir():
      assert proc.poll() is None, proc.stderr.read()[-3000:]
      assert time.time() < deadline, "no checkpoint within 300 s"
      time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
  finally:
    if proc.poll() is None:
      proc.kill()
  # Unfinished: a non-zero status (128 + SIGTERM) tells a script or scheduler to rerun it.
  assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
  stopped_at, _ = _final_state(workdir)
  assert stopped_at < SRGAN_STEPS, "the run ended before the signal: nothing was resumed"
  assert f"stopped by signal {int(signal.SIGTERM)} at step {stopped_at} of {SRGAN_STEPS}" in err
  assert "run the same command to resume" in err

  result = _run(_srgan_cmd(workdir, data_dirs))
  assert result.returncode == 0, result.stderr[-3000:]
  assert "resumed from" in result.stderr
  step_a, state_a = _final_state(reference_dir)
  step_b, state_b = _final_state(workdir)
  assert step_a == step_b == SRGAN_STEPS
  leaves_a, leaves_b = dict(_leaves(state_a)), dict(_leaves(state_b))
  assert leaves_a.keys() == leaves_b.keys()
  for name, a in leaves_a.items():
    np.testing.assert_array_equal(a, leaves_b[name], err_msg=name)


def test_eval_mode_writes_metrics_csv_and_summary(uninterrupted, data_dirs):
  workdir, _ = uninterrupted
  train, evaluation = data_dirs
  result = _run(_cmd("srgan.py:tiny", workdir, f"--config.data.train_dir={train}",
                     f"--config.data.eval_dir={evaluation}", mode="eval"))
  assert result.returncode == 0, result.stderr[-3000:]
  with open(workdir / "eval" / "metrics.csv") as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0]) == ["image", "model", "scale", "bits", "psnr", "ssim", "mse", "modality",
                           "data_range", "slice", "psnr_soft_tissue", "ssim_soft_tissue",
                           "group"]
  images = sorted(p.name for p in evaluation.iterdir())
  assert sorted({r["image"] for r in rows}) == images
  assert {r["model"] for r in rows} == {"bicubic", "srgan"}
  assert len(rows) == 2 * len(images)
  for r in rows:
    assert r["scale"] == "4"
    psnr, mse, bits = float(r["psnr"]), float(r["mse"]), int(r["bits"])
    # 8-bit PNGs at 8 bits; the 10-bit CR leg in its 16-bit PNG at its own 10 bits.
    assert bits == (10 if r["image"].startswith("dcm16") else 8)
    np.testing.assert_allclose(psnr, 10 * np.log10((2 ** bits - 1) ** 2 / mse), rtol=1e-9)
    assert 0 < float(r["ssim"]) <= 1
  summary = (workdir / "eval" / "summary.md").read_text()
  assert "| Image | PSNR | MSE | SSIM |" in summary
  assert "**Mean**" in summary and images[0] in summary


def test_eval_mode_reads_the_network_from_the_workdir(uninterrupted, data_dirs):
  """The README's full-size command on a :tiny workdir evaluates the tiny network."""
  workdir, _ = uninterrupted
  train, evaluation = data_dirs
  result = _run(_cmd("srgan.py", workdir, f"--config.data.eval_dir={evaluation}",
                     "--config.eval.max_images=1", "--config.eval.center_crop=128",
                     mode="eval"))
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  assert "evaluating the network" in result.stderr and "model.num_feat" in result.stderr
  result = _run(_cmd("srgan.py:tiny", workdir, f"--config.data.train_dir={train}", mode="eval"))
  _assert_one_line_error(result, "no evaluation data", "data.eval_dir")


def test_resuming_with_another_network_is_one_line_naming_the_keys(uninterrupted, data_dirs,
                                                                  tmp_path):
  workdir, _ = uninterrupted
  train, _ = data_dirs
  result = _run(_cmd("srgan.py:tiny", workdir, f"--config.data.train_dir={train}",
                     "--config.model.num_feat=32", f"--config.train.num_steps={SRGAN_STEPS + 5}"))
  _assert_one_line_error(result, "model.num_feat 16 (saved) vs 32", "init_from")
  result = _run(_cmd("srgan.py:tiny", tmp_path / "other", f"--config.data.train_dir={train}",
                     "--config.model.num_block=3", f"--config.init_from={workdir}"))
  _assert_one_line_error(result, "init_from=", "model.num_block 2 (saved) vs 3")


def test_ctrl_c_during_compilation_ends_cleanly(data_dirs, tmp_path):
  """Ctrl-C while XLA compiles: exit 130 with one line, no traceback, no crash."""
  train, _ = data_dirs
  proc = subprocess.Popen(_cmd("realesrgan.py:tiny", tmp_path / "w",
                               f"--config.data.train_dir={train}"),
                          cwd=REPO, env=_env(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
  try:
    err = ""
    deadline = time.time() + 240
    while "train data:" not in err:  # Set-up done; compilation of the state and step next.
      line = proc.stderr.readline()
      assert line or proc.poll() is None, err[-3000:]
      err += line
      assert time.time() < deadline
    time.sleep(3)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=120)
    err += rest
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == 130, err[-3000:]
  assert "jaxsr: interrupted" in err
  for crash in ("Traceback", "Fatal Python error", "Segmentation fault"):
    assert crash not in err, err[-3000:]


def test_srgan_starts_from_srresnet_with_init_from(uninterrupted, data_dirs, tmp_path):
  train, evaluation = data_dirs
  src, _ = uninterrupted  # Any workdir with a generator of the same shape.
  result = _run(_cmd("srgan.py:tiny", tmp_path / "next", f"--config.data.train_dir={train}",
                     f"--config.init_from={src}", "--config.train.num_steps=1"))
  assert result.returncode == 0, result.stderr[-3000:]
  assert "generator initialised from" in result.stderr
  result = _run(_cmd("srgan.py:tiny", tmp_path / "bad", f"--config.data.train_dir={train}",
                     f"--config.init_from={tmp_path / 'nowhere'}"))
  assert result.returncode == 2
  assert "nowhere" in result.stderr.strip().splitlines()[-1]


def _assert_one_line_error(result, *fragments):
  assert result.returncode == 2, result.stderr[-3000:]
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("jaxsr: error:"), result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  for fragment in fragments:
    assert fragment in last, last


def test_mistyped_config_key_is_refused(tmp_path):
  result = _run(_cmd("srresnet.py:tiny", tmp_path / "w", "--config.data.trian_dir=x"))
  _assert_one_line_error(result, "trian_dir", "train_dir")
  result = _run(_cmd("srresnet.py:tyni", tmp_path / "w"))
  _assert_one_line_error(result, "tyni")
  assert not (tmp_path / "w").exists()


def test_bad_data_folders_are_one_line_errors(tmp_path):
  result = _run(_cmd("srresnet.py:tiny", tmp_path / "w", f"--config.data.train_dir={tmp_path}/no"))
  _assert_one_line_error(result, f"{tmp_path}/no")
  empty = tmp_path / "empty"
  empty.mkdir()
  result = _run(_cmd("srresnet.py:tiny", tmp_path / "w", f"--config.data.train_dir={empty}"))
  _assert_one_line_error(result, str(empty), "no images")
  small = tmp_path / "small"
  small.mkdir()
  Image.fromarray(np.zeros((64, 64), np.uint8)).save(small / "little.png")
  (small / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
  result = _run(_cmd("srresnet.py:tiny", tmp_path / "w", f"--config.data.train_dir={small}"))
  _assert_one_line_error(result, str(small), "no usable images")
  assert "little.png" in result.stderr and "broken.png" in result.stderr
  result = _run(_cmd("srresnet.py:tiny", tmp_path / "w", f"--config.data.train_dir={small}",
                     "--config.data.strict=True"))
  _assert_one_line_error(result, "broken.png")


def test_missing_vgg_weights_is_a_one_line_error(tmp_path, data_dirs):
  train, _ = data_dirs
  result = _run(_cmd("srgan.py", tmp_path / "w", f"--config.data.train_dir={train}",
                     f"--config.loss.vgg_weights={tmp_path}/vgg19.pth"))
  _assert_one_line_error(result, f"{tmp_path}/vgg19.pth", "vgg19-dcbb9e9d.pth")


@pytest.mark.parametrize("config", ["realesrnet.py:tiny", "realesrgan.py:tiny"])
def test_realesr_configs_train_on_degradations_and_resume(config, data_dirs, tmp_path):
  """Real-ESRNet/GAN degrade on the device and carry the pair pool in the checkpoint."""
  train, evaluation = data_dirs
  args = [f"--config.data.train_dir={train}", "--config.train.checkpoint_every=3",
          "--config.train.log_every=3"]
  result = _run(_cmd(config, tmp_path / "w", *args, "--config.train.num_steps=3"))
  assert result.returncode == 0, result.stderr[-3000:]
  result = _run(_cmd(config, tmp_path / "w", *args, "--config.train.num_steps=6"))
  assert result.returncode == 0, result.stderr[-3000:]
  assert "resumed from" in result.stderr
  step, state = _final_state(tmp_path / "w")
  assert step == 6
  # The pool (queue 16, batch 4) has been filled by the six batches.
  assert int(state["pool"]["count"]) == 16
  assert state["pool"]["lr"].shape == (16, 32, 32, 1)
  if config.startswith("realesrgan"):
    assert "l_percep" in result.stderr and "l_g_gan" in result.stderr
    assert any("weight_u" in k for k in str(state["d_stats"]).split("'"))
  result = _run(_cmd(config, tmp_path / "w", *args, f"--config.data.eval_dir={evaluation}",
                     "--config.eval.max_images=1", mode="eval"))
  assert result.returncode == 0, result.stderr[-3000:]
  assert (tmp_path / "w" / "eval" / "metrics.csv").is_file()


def test_non_finite_losses_are_skipped_then_stop_the_run(data_dirs, tmp_path):
  train, _ = data_dirs
  workdir = tmp_path / "w"
  common = [f"--config.data.train_dir={train}", "--config.model.name=msrresnet",
            "--config.data.patch_size=32", "--config.train.checkpoint_every=2",
            "--config.train.log_every=1"]
  result = _run(_cmd("srresnet.py:tiny", workdir, *common, "--config.train.num_steps=2"))
  assert result.returncode == 0, result.stderr[-3000:]
  good_step, good = _final_state(workdir)
  # An infinite learning rate turns every update into NaN: each is skipped.
  result = _run(_cmd("srresnet.py:tiny", workdir, *common, "--config.train.num_steps=20",
                     "--config.optim_g.lr=inf", "--config.train.max_bad_steps=3"))
  _assert_one_line_error(result, "3 consecutive non-finite losses", "checkpoint is step")
  assert "skipped" in result.stderr
  step, state = _final_state(workdir)
  for (name, a), (_, b) in zip(_leaves(good["g_params"]), _leaves(state["g_params"])):
    np.testing.assert_array_equal(a, b, err_msg=name)
  assert all(np.isfinite(a).all() for _, a in _leaves(state["g_params"]))
