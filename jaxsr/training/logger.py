"""Training logs: a progress line with rates and ETA, TensorBoard event files.

Losses are averaged over each logging interval with ``clu.metrics``. Event
files are written with tensorboardX, which needs no TensorFlow (clu's own
writers import TensorFlow); only process 0 writes. Besides the losses they
hold the learning rates, the step rates, the evaluation means and a few
LR / SR / HR crops of the evaluation images.

Rates and the ETA leave out the first step (compilation) and time spent
evaluating, so the first ETA is the training's, not the compiler's.
"""
import logging
import time

import jax
import numpy as np
from clu import metrics as clu_metrics
from tensorboardX import SummaryWriter


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
               log_every: int | None = None, schedules: dict | None = None):
    self.num_steps, self.batch_size = num_steps, batch_size
    self.log_every = log_every
    self._schedules = {k: v for k, v in (schedules or {}).items() if v is not None}
    self._collection_cls = None
    self._acc = None
    self._start_step = start_step
    self._last_time, self._last_step = None, start_step  # The clock starts after step one.
    self._writer = None
    if jax.process_index() == 0:
      self._writer = SummaryWriter(str(workdir / "tensorboard"))

  def record(self, step: int, metrics: dict):
    if self._collection_cls is None:
      self._collection_cls = _average_collection(sorted(metrics))
    update = self._collection_cls.single_from_model_output(**metrics)
    self._acc = update if self._acc is None else self._acc.merge(update)
    if self._last_time is None:
      # The first step compiles; time the run from its end.
      jax.block_until_ready(metrics)
      self.resume_clock(step)
    if self.log_every and (step % self.log_every == 0 or step == self.num_steps):
      self.flush(step)

  def resume_clock(self, step: int):
    """Restarts the rate clock at ``step`` (after compilation or an evaluation)."""
    self._last_time, self._last_step = time.perf_counter(), step

  def flush(self, step: int):
    if self._acc is None:
      return
    values = {k: float(v) for k, v in self._acc.compute().items()}
    self._acc = None
    now = time.perf_counter()
    timed = step - self._last_step
    if timed > 0:
      steps_per_s = timed / max(now - self._last_time, 1e-9)
      eta = (self.num_steps - step) / steps_per_s
      rate = (f"{steps_per_s:.2f} steps/s, {steps_per_s * self.batch_size:.1f} images/s | "
              f"ETA {_format_duration(eta)}")
      values.update({"perf/steps_per_sec": steps_per_s,
                     "perf/images_per_sec": steps_per_s * self.batch_size})
    else:
      rate = "compiling"  # Only the first step so far: no rate yet.
    self._last_time, self._last_step = now, step
    for name, schedule in self._schedules.items():
      values[name] = float(schedule(step))
    losses = " ".join(f"{k} {v:.4g}" for k, v in values.items()
                      if not k.startswith(("perf/", "lr/")))
    lr = " ".join(f"{k.split('/')[-1][0]}_lr {v:.3g}" for k, v in values.items()
                  if k.startswith("lr/"))
    logging.info("step %d/%d | %s | %s | %s", step, self.num_steps, losses, lr, rate)
    self.scalars(step, values)

  def scalars(self, step: int, values: dict):
    if self._writer is None:
      return
    for k, v in values.items():
      if np.isfinite(v):
        self._writer.add_scalar(k, v, step)
    self._writer.flush()

  def images(self, step: int, samples):
    """``[(name, {'lr', 'sr', 'hr'})]`` of [0, 1] crops, one LR | SR | HR strip each."""
    if self._writer is None:
      return
    for index, (name, crops) in enumerate(samples):
      strip = np.concatenate([crops["lr"], crops["sr"], crops["hr"]], axis=1)
      self._writer.add_image(f"eval/{index}_lr_sr_hr", np.clip(strip, 0, 1)[None], step,
                             dataformats="CHW")
      self._writer.add_text(f"eval/{index}_name", name, step)
    self._writer.flush()

  def close(self):
    if self._writer is not None:
      self._writer.close()
