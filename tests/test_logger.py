"""Training progress lines: rates and ETA leave out compilation and evaluations."""
import logging

import numpy as np

from jaxsr.training import logger


class _Clock:
  def __init__(self):
    self.now = 0.0

  def __call__(self):
    return self.now


def test_first_eta_does_not_count_compilation(tmp_path, monkeypatch, caplog):
  clock = _Clock()
  monkeypatch.setattr(logger.time, "perf_counter", clock)
  log = logger.TrainLogger(tmp_path, num_steps=10, batch_size=2, log_every=5,
                           schedules={"lr/generator": lambda step: 1e-4 * 0.5 ** (step // 5)})
  caplog.set_level(logging.INFO)
  clock.now = 100.0  # The first step compiled for 100 s.
  log.record(1, {"l_pix": np.float32(0.5)})
  for step in range(2, 6):  # Then one step per second.
    clock.now += 1.0
    log.record(step, {"l_pix": np.float32(0.5)})
  line = caplog.records[-1].getMessage()
  assert "1.00 steps/s, 2.0 images/s" in line and "ETA 0m05s" in line, line
  assert "g_lr 5e-05" in line  # The schedule's rate at step 5.
  # An evaluation of 50 s between two intervals is left out too.
  clock.now += 50.0
  log.resume_clock(5)
  for step in range(6, 11):
    clock.now += 0.5
    log.record(step, {"l_pix": np.float32(0.25)})
  line = caplog.records[-1].getMessage()
  assert "2.00 steps/s" in line and "ETA 0m00s" in line and "l_pix 0.25" in line, line
  log.close()


def test_a_log_interval_of_the_first_step_alone_says_compiling(tmp_path, monkeypatch, caplog):
  monkeypatch.setattr(logger.time, "perf_counter", _Clock())
  log = logger.TrainLogger(tmp_path, num_steps=3, batch_size=1, log_every=1)
  caplog.set_level(logging.INFO)
  log.record(1, {"l_pix": np.float32(1.0)})
  assert "compiling" in caplog.records[-1].getMessage()
  log.close()
