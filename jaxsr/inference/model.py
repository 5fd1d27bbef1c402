"""Loads a generator for inference and wraps it as a grey-image predict fn.

Radiographs are grey. A three-channel network (e.g. an official RGB
checkpoint) gets the grey image repeated into its channels and its output
channels averaged back, which is exact for a network that keeps grey grey and
the least-squares grey otherwise.
"""
import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np


@dataclasses.dataclass(frozen=True)
class Generator:
  module: Any
  variables: dict
  info: dict  # 'arch', 'scale', 'num_channels' (and whatever the loader adds).

  @property
  def scale(self) -> int:
    return int(self.info["scale"])

  @property
  def num_channels(self) -> int:
    return int(self.info["num_channels"])

  @property
  def description(self) -> str:
    return f"{self.info.get('arch', type(self.module).__name__)} x{self.scale}"


def load(path) -> Generator:
  """A generator from a training workdir, a .safetensors export or a .pth.

  `jaxsr.weights.load_generator` handles every kind when it is present; this
  module falls back to reading training workdirs itself.
  """
  try:
    from jaxsr import weights  # pylint: disable=g-import-not-at-top
  except ImportError:
    return _load_workdir(path)
  module, variables, info = weights.load_generator(path)
  return Generator(module, variables, dict(info))


def _load_workdir(workdir) -> Generator:
  """The latest checkpoint's generator (EMA weights where present)."""
  from jaxsr import models  # pylint: disable=g-import-not-at-top
  from jaxsr.training import checkpoint  # pylint: disable=g-import-not-at-top
  params, batch_stats, step = checkpoint.read_generator(workdir)
  config = checkpoint.read_config(workdir)
  if config is None:
    raise FileNotFoundError(f"{workdir}: checkpoint has no config")
  scale, channels = int(config["scale"]), int(config["num_channels"])
  model_cfg = ml_collections.ConfigDict(config["model"])
  module = models.build_generator(model_cfg, channels, scale)
  variables = {"params": params}
  if batch_stats:
    variables["batch_stats"] = batch_stats
  info = {"arch": model_cfg.name, "scale": scale, "num_channels": channels, "step": step,
          "source": "workdir"}
  return Generator(module, variables, info)


def grey_predict(generator: Generator) -> Callable[[np.ndarray], np.ndarray]:
  """Jitted float32 (B, h, w) -> (B, h*scale, w*scale) on grey images."""
  channels = generator.num_channels
  variables = jax.device_put(generator.variables)

  @jax.jit
  def run(tiles):
    x = jnp.repeat(tiles[..., None], channels, axis=-1)
    return generator.module.apply(variables, x, train=False).mean(axis=-1)

  return lambda tiles: np.asarray(run(jnp.asarray(tiles, jnp.float32)))
