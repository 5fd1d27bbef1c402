"""Optimizers and learning-rate schedules of the reference recipes."""
import ml_collections
import optax

from jaxsr import errors


def cosine_annealing_restart(lr: float, periods, eta_min: float, restart_weights=None):
  """BasicSR's CosineAnnealingRestartLR: cosine decay over each period, restarting."""
  restart_weights = list(restart_weights or [1.0] * len(periods))
  schedules, boundaries, start = [], [], 0
  for period, weight in zip(periods, restart_weights):
    peak = lr * weight
    schedules.append(optax.cosine_decay_schedule(peak, period, alpha=eta_min / peak))
    start += period
    boundaries.append(start)
  return optax.join_schedules(schedules, boundaries[:-1])


def multistep(lr: float, milestones, gamma: float):
  """PyTorch's MultiStepLR: multiply by ``gamma`` at each milestone."""
  return optax.piecewise_constant_schedule(lr, {int(m): gamma for m in milestones})


def make_schedule(lr: float, cfg: ml_collections.ConfigDict):
  if cfg.schedule == "constant":
    return optax.constant_schedule(lr)
  if cfg.schedule == "multistep":
    return multistep(lr, cfg.milestones, cfg.gamma)
  if cfg.schedule == "cosine_restart":
    return cosine_annealing_restart(lr, cfg.periods, cfg.eta_min)
  raise errors.ConfigError(f"schedule '{cfg.schedule}': choose 'constant', 'multistep' or "
                           "'cosine_restart'")


def make_optimizer(schedule, cfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Adam with the recipe's betas (BasicSR uses (0.9, 0.99)) on ``schedule``
  (a float or an optax schedule, see :func:`make_schedule`)."""
  return optax.adam(schedule, b1=cfg.b1, b2=cfg.b2, eps=1e-8)
