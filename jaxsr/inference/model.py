"""Loads a generator for inference and wraps it as a grey-image predict fn.

Radiographs are grey. A three-channel network (e.g. an official RGB
checkpoint) gets the grey image repeated into its channels and its output
channels averaged back, which is exact for a network that keeps grey grey and
the least-squares grey otherwise.
"""
import dataclasses
import pathlib
from typing import Any, Callable

import jax
import jax.numpy as jnp
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
    arch = self.info.get("arch") or type(self.module).__name__
    source = pathlib.Path(str(self.info.get("source", ""))).name
    return f"{arch} x{self.scale}" + (f" ({source})" if source else "")


def load(path) -> Generator:
  """A generator from a training workdir (EMA weights where kept), a jaxsr
  .safetensors export or an official .pth; raises weights.WeightsError."""
  from jaxsr import weights  # pylint: disable=g-import-not-at-top
  module, variables, info = weights.load_generator(path)
  return Generator(module, variables, dict(info))


def grey_predict(generator: Generator) -> Callable[[np.ndarray], np.ndarray]:
  """Jitted float32 (B, h, w) -> (B, h*scale, w*scale) on grey images."""
  channels = generator.num_channels
  variables = jax.device_put(generator.variables)

  @jax.jit
  def run(tiles):
    x = jnp.repeat(tiles[..., None], channels, axis=-1)
    return generator.module.apply(variables, x, train=False).mean(axis=-1)

  return lambda tiles: np.asarray(run(jnp.asarray(tiles, jnp.float32)))


def input_gain(pixels01: np.ndarray, bits: int) -> float:
  """How much to stretch an image that uses only the low bits of its container.

  A 16-bit PNG or TIFF often holds 10-15-bit detector data with nothing in
  the file saying so; read as a fraction of 65535 it is nearly black, unlike
  anything the network saw as a full-range image. The used depth is the bit
  length of the brightest level (at least 8); the image is stretched by
  (2**bits - 1) / (2**used - 1) before the network and shrunk back after.
  8-bit images and DICOMs that use their BitsStored get 1.
  """
  max_level = float(np.max(pixels01)) * (2 ** bits - 1)
  used = max(8, int(round(max_level)).bit_length())
  return 1.0 if used >= bits else (2 ** bits - 1) / (2 ** used - 1)


def stretched(predict: Callable[[np.ndarray], np.ndarray], gain: float):
  """``predict`` run on inputs stretched by ``gain`` (see input_gain), output shrunk back.

  The output is clipped to the stretched range, so 12-bit data stays within
  12 bits (overshoot at hard edges, e.g. burned-in text, would leave it).
  """
  if gain == 1.0:
    return predict
  return lambda tiles: np.clip(predict(np.asarray(tiles, np.float32) * gain), 0.0, 1.0) / gain
