"""Two processes x 2 CPU devices train like one process x 4 devices.

The processes meet through ``jax.distributed`` on 127.0.0.1; each reads its
own slice of the data and the global batch is assembled across them.
"""
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from run_helpers import smooth_pngs
from run_helpers import env as _env, final_state as _state, flat_leaves as _flat
from run_helpers import free_port as _free_port

pytestmark = pytest.mark.slow  # Several local processes joined by jax.distributed.

REPO = pathlib.Path(__file__).resolve().parents[1]
STEPS = 6


def _args(workdir, data):
  return [sys.executable, "-m", "jaxsr.main", f"--config={REPO / 'configs' / 'srresnet.py'}:tiny",
          f"--workdir={workdir}", f"--config.data.train_dir={data}",
          "--config.model.name=msrresnet", "--config.data.patch_size=32",
          "--config.data.batch_size=4",
          f"--config.train.num_steps={STEPS}", "--config.train.checkpoint_every=3",
          "--config.train.log_every=1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  return smooth_pngs(tmp_path_factory.mktemp("imgs"), 8)


def test_two_processes_match_one_process_with_the_same_devices(data, tmp_path):
  single = subprocess.run(_args(tmp_path / "single", data) + ["--config.train.num_devices=4"],
                          cwd=REPO, env=_env(4), capture_output=True, text=True, timeout=600)
  assert single.returncode == 0, single.stderr[-3000:]

  port = _free_port()
  # The multi-process run also evaluates (every 3 steps and at the end): all
  # processes gather the weights, process 0 scores and writes.
  procs = [subprocess.Popen(_args(tmp_path / "multi", data) + [
      f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", f"--process_id={i}",
      f"--config.data.eval_dir={data}", "--config.eval.max_images=1",
      "--config.train.eval_every=3"],
                            cwd=REPO, env=_env(2), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True) for i in range(2)]
  errors = []
  try:
    for p in procs:
      _, err = p.communicate(timeout=600)
      errors.append(err)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  for p, err in zip(procs, errors):
    assert p.returncode == 0, err[-3000:]
  assert "process 0 of 2, 2 local / 4 global devices" in errors[0]
  for step in (3, STEPS):
    assert (tmp_path / "multi" / "eval" / f"step_{step:07d}" / "metrics.csv").is_file()
  assert f"eval at step {STEPS}" in errors[0] and "eval at step" not in errors[1]

  step_1, state_1 = _state(tmp_path / "single")
  step_2, state_2 = _state(tmp_path / "multi")
  assert step_1 == step_2 == STEPS
  flat_1, flat_2 = dict(_flat(state_1)), dict(_flat(state_2))
  assert flat_1.keys() == flat_2.keys()
  for name in flat_1:
    if "g_params" in name or "g_stats" in name or "ema" in name:
      np.testing.assert_allclose(flat_1[name], flat_2[name], atol=1e-5, rtol=1e-5, err_msg=name)
  # The per-step losses printed by both runs agree too.
  losses_1 = [l for l in single.stderr.splitlines() if "l_pix" in l]
  losses_2 = [l for l in errors[0].splitlines() if "l_pix" in l]
  assert len(losses_1) == len(losses_2) == STEPS
  for a, b in zip(losses_1, losses_2):
    va = float(a.split("l_pix ")[1].split()[0])
    vb = float(b.split("l_pix ")[1].split()[0])
    assert abs(va - vb) <= 1e-5 * max(1.0, abs(va))
