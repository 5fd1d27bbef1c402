"""Training killed at random moments (SIGKILL, SIGINT) resumes to the same state.

A tiny MSRResNet run is killed with SIGKILL several times, once while orbax
is writing a checkpoint, and restarted each time; its final parameters must
equal, bit for bit, those of a run that was never stopped. After every kill
the latest complete checkpoint must restore. SIGINT must save the step reached
and exit 0.
"""
import os
import pathlib
import random
import signal
import subprocess
import threading
import time

import numpy as np
import pytest

from run_helpers import smooth_pngs
from run_helpers import REPO, env as _env, final_state as _latest, flat_leaves as _flat
from run_helpers import manager as _manager, tiny_msrresnet_cmd

pytestmark = pytest.mark.slow  # Subprocess runs of the trainer, killed and resumed.

STEPS = 12
TMP_SUFFIX = ".orbax-checkpoint-tmp"


def _assert_same(state_a, state_b):
  flat_a, flat_b = dict(_flat(state_a)), dict(_flat(state_b))
  assert flat_a.keys() == flat_b.keys()
  for name, a in flat_a.items():
    np.testing.assert_array_equal(a, flat_b[name], err_msg=name)


def _steps_logged(lines):
  done = [int(l.split("step ")[1].split("/")[0]) for l in lines if f"/{STEPS} |" in l]
  return max(done, default=0)


def _tmp_dirs(workdir):
  folder = pathlib.Path(workdir) / "checkpoints"
  try:
    return [name for name in os.listdir(folder) if TMP_SUFFIX in name]
  except FileNotFoundError:
    return []


def _run_until(workdir, data, should_stop, sig, timeout=120):
  """Runs training; sends ``sig`` as soon as ``should_stop(lines, workdir)``.

  Returns (return code, stderr lines, whether the signal was sent).
  """
  proc = subprocess.Popen(tiny_msrresnet_cmd(workdir, data, STEPS), cwd=REPO, env=_env(),
                          stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
  lines = []
  reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
  reader.start()
  sent = False
  deadline = time.time() + timeout
  try:
    while proc.poll() is None and time.time() < deadline:
      if should_stop(lines, workdir):
        proc.send_signal(sig)
        sent = True
        break
      time.sleep(0.0005)
    proc.wait(timeout=max(1.0, deadline - time.time()))
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
  reader.join(timeout=10)
  return proc.returncode, lines, sent


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  return smooth_pngs(tmp_path_factory.mktemp("imgs"), 6)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("reference")
  result = subprocess.run(tiny_msrresnet_cmd(workdir, data, STEPS), cwd=REPO, env=_env(),
                          capture_output=True,
                          text=True, timeout=120, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  step, state = _latest(workdir)
  assert step == STEPS
  return state


def test_killed_and_interrupted_run_resumes_bitwise(data, reference, tmp_path):
  """SIGKILL at two random steps and once mid-save, SIGINT once, then finish."""
  workdir = tmp_path / "killed"
  rng = random.Random(1234)
  at_step = lambda k: (lambda lines, _: _steps_logged(lines) >= k)
  plan = [(signal.SIGKILL, "step", rng.randint(2, 4)), (signal.SIGKILL, "mid-save", None),
          (signal.SIGINT, "step", rng.choice([7, 9])),  # Odd: not a periodic save.
          (signal.SIGKILL, "step", 11)]
  caught_tmp = False
  previous = 0
  for sig, kind, k in plan:
    old_tmp = set(_tmp_dirs(workdir))

    def mid_save(lines, wd, old_tmp=old_tmp):  # Resumed, and orbax is writing a new step.
      return any("resumed from" in l for l in lines) and bool(set(_tmp_dirs(wd)) - old_tmp)

    code, lines, sent = _run_until(workdir, data, at_step(k) if kind == "step" else mid_save, sig)
    text = "".join(lines)
    what = f"{sig.name} at {kind} {k}"
    assert "Traceback" not in text, text[-3000:]
    assert sent, f"{what}: the run ended (rc {code}) before the signal; {text[-2000:]}"
    reached = _steps_logged(lines)
    if previous:
      assert f"at step {previous}" in text, f"{what}: did not resume from {previous}"
    if sig == signal.SIGKILL:
      assert code == -signal.SIGKILL, f"{what}: rc {code}"
    else:  # SIGINT saves the step reached and exits 130: unfinished, no crash.
      assert code == 128 + signal.SIGINT, f"{what}: rc {code}; {text[-2000:]}"
      assert "stopped by signal" in text
    if kind == "mid-save":
      caught_tmp = bool(set(_tmp_dirs(workdir)) - old_tmp)
    # The latest complete checkpoint restores; an unfinished one is never picked.
    step, state = _latest(workdir)
    assert step is not None and int(state["step"]) == step, what
    assert previous <= step <= reached, (what, previous, step, reached)
    if sig == signal.SIGINT:
      assert step == reached, (what, step, reached)
    assert all(isinstance(s, int) for s in _manager(workdir).all_steps())
    previous = step
  assert caught_tmp, "no kill landed while a checkpoint was being written"

  result = subprocess.run(tiny_msrresnet_cmd(workdir, data, STEPS), cwd=REPO, env=_env(),
                          capture_output=True,
                          text=True, timeout=120, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"at step {previous}" in result.stderr
  step, state = _latest(workdir)
  assert step == STEPS
  _assert_same(reference, state)
  # A leftover temporary folder of the killed save is at most ignored, never used.
  assert all(TMP_SUFFIX not in str(s) for s in _manager(workdir).all_steps())
