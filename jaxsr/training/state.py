"""The training state: every array a run needs to continue, in one pytree."""
from typing import Any

import flax
import jax
import optax


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  rng: jax.Array                 # Base key; step keys are fold_in(rng, step).
  g_params: Any
  g_stats: Any                   # BatchNorm statistics ({} when none).
  g_opt: optax.OptState
  d_params: Any                  # {} when training without a discriminator.
  d_stats: Any
  d_opt: optax.OptState
  ema_params: Any                # {} when EMA is off.
  pool: Any                      # Real-ESRGAN's training-pair pool ({} when unused).
  bad_steps: jax.Array           # Consecutive steps skipped for a non-finite loss.


def split_variables(variables: dict) -> tuple[dict, dict]:
  variables = dict(variables)
  params = variables.pop("params")
  return params, variables.get("batch_stats", {})


def generator_variables(state: TrainState, use_ema: bool = True) -> dict:
  """Variables for inference: EMA weights when the run keeps them."""
  params = state.ema_params if (use_ema and state.ema_params) else state.g_params
  variables = {"params": params}
  if state.g_stats:
    variables["batch_stats"] = state.g_stats
  return variables


def ema_update(ema, params, decay: float):
  return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)


