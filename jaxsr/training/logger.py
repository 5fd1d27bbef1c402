"""Training logs: a progress line with rates and ETA, TensorBoard event files.

Losses are averaged over each logging interval with ``clu.metrics``. Event
files are written with tensorboardX, which needs no TensorFlow (clu's own
writers import TensorFlow); only process 0 writes.
"""
import logging
import time

import jax
import numpy as np
from clu import metrics as clu_metrics


def _format_duration(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  h, rest = divmod(seconds, 3600)
  m, s = divmod(rest, 60)
  return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def _average_collection(names):
  return clu_metrics.Collection.create(**{n: clu_metrics.Average.from_output(n) for n in names})


class TrainLogger:
  """Accumulates step metrics and reports them every ``log_every`` steps."""

  def __init__(self, workdir, num_steps: int, batch_size: int, start_step: int = 0,
               log_every: int | None = None):
    self.num_steps, self.batch_size = num_steps, batch_size
    self.log_every = log_every
    self._collection_cls = None
    self._acc = None
    self._last_time, self._last_step = time.perf_counter(), start_step
    self._writer = None
    if jax.process_index() == 0:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self._writer = SummaryWriter(str(workdir / "tensorboard"))

  def record(self, step: int, metrics: dict):
    if self._collection_cls is None:
      self._collection_cls = _average_collection(sorted(metrics))
    update = self._collection_cls.single_from_model_output(**metrics)
    self._acc = update if self._acc is None else self._acc.merge(update)
    if self.log_every and (step % self.log_every == 0 or step == self.num_steps):
      self.flush(step)

  def flush(self, step: int):
    if self._acc is None:
      return
    values = {k: float(v) for k, v in self._acc.compute().items()}
    self._acc = None
    now = time.perf_counter()
    steps_per_s = (step - self._last_step) / max(now - self._last_time, 1e-9)
    self._last_time, self._last_step = now, step
    eta = (self.num_steps - step) / steps_per_s if steps_per_s > 0 else float("inf")
    losses = " ".join(f"{k} {v:.4g}" for k, v in values.items())
    logging.info("step %d/%d | %s | %.2f steps/s, %.1f images/s | ETA %s", step, self.num_steps,
                 losses, steps_per_s, steps_per_s * self.batch_size, _format_duration(eta))
    values.update({"perf/steps_per_sec": steps_per_s,
                   "perf/images_per_sec": steps_per_s * self.batch_size})
    self.scalars(step, values)

  def scalars(self, step: int, values: dict):
    if self._writer is None:
      return
    for k, v in values.items():
      if np.isfinite(v):
        self._writer.add_scalar(k, v, step)
    self._writer.flush()

  def close(self):
    if self._writer is not None:
      self._writer.close()
