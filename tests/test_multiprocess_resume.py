"""Resuming a checkpoint with a different process count.

The state (parameters, optimizer, step) is stored process-independently and
reads back anywhere; the grain iterator is stored once per process
(``data/process_I-of-N.json``) and only restores with the same N. So a run
resumes only with the process count that wrote it; another count is refused.
"""
import shutil
import subprocess

import pytest

from jaxsr import workdir as checkpoint
from run_helpers import smooth_pngs
from run_helpers import REPO, env as _env, free_port as _free_port, manager as _manager
from run_helpers import tiny_msrresnet_cmd as _args

pytestmark = pytest.mark.slow  # Several local processes joined by jax.distributed.

FIRST, MORE = 4, 6


def _train(workdir, data, steps, processes):
  """Runs 1 process x 4 devices or 2 processes x 2; returns [(rc, stderr)]."""
  if processes == 1:
    r = subprocess.run(["timeout", "120", *_args(workdir, data, steps),
                        "--config.train.num_devices=4"], cwd=REPO, env=_env(4),
                       capture_output=True, text=True, check=False)
    return [(r.returncode, r.stderr)]
  port = _free_port()
  procs = [subprocess.Popen(["timeout", "120", *_args(workdir, data, steps),
                             f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
                             f"--process_id={i}"], cwd=REPO, env=_env(2),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
           for i in range(2)]
  out = []
  try:
    for p in procs:
      _, err = p.communicate(timeout=150)
      out.append((p.returncode, err))
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  return smooth_pngs(tmp_path_factory.mktemp("imgs"), 8)


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
  """Workdirs trained to FIRST steps by 2 processes and by 1 process."""
  root = tmp_path_factory.mktemp("runs")
  made = {}
  for n in (2, 1):
    for rc, err in _train(root / f"by{n}", data, FIRST, n):
      assert rc == 0, err[-3000:]
    made[n] = root / f"by{n}"
  return made


def test_state_reads_back_whatever_process_count_wrote_it(runs):
  """Parameters of the 2-process run read in this (single-device) process."""
  for n, workdir in runs.items():
    mngr = _manager(workdir)
    assert mngr.latest_step() == FIRST
    state = checkpoint.read_state(mngr, FIRST)
    assert int(state["step"]) == FIRST, n
    files = sorted(p.name for p in (workdir / "checkpoints" / str(FIRST) / "data").iterdir()
                   if p.suffix == ".json")
    assert files == [f"process_{i}-of-{n}.json" for i in range(n)], files


@pytest.mark.parametrize("written_by,resumed_by", [(2, 1), (1, 2)])
def test_resume_with_another_process_count_is_refused(runs, data, tmp_path, written_by,
                                                      resumed_by):
  workdir = tmp_path / "w"
  shutil.copytree(runs[written_by], workdir)
  results = _train(workdir, data, MORE, resumed_by)
  for rc, err in results:
    assert rc not in (0, 124), err[-3000:]  # Neither trains on nor hangs.
  expected = f"written by {written_by} process(es), resumed with {resumed_by}"
  assert any(expected in err for _, err in results), results[0][1][-3000:]
  assert _manager(workdir).latest_step() == FIRST  # Nothing was overwritten.


def test_resume_with_another_process_count_is_a_one_line_error(runs, data, tmp_path):
  workdir = tmp_path / "w"
  shutil.copytree(runs[2], workdir)
  [(rc, err)] = _train(workdir, data, MORE, 1)
  assert rc == 2 and "Traceback" not in err, err[-3000:]
