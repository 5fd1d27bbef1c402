"""A generator ready for inference: ``jaxsr.load_model(...).upscale(pixels, bits=...)``.

Radiographs are grey; a network may have one channel or three (an official
RGB checkpoint). A three-channel network gets the grey image in all three
channels, and its output goes back to grey as Real-ESRGAN's ``RealESRGANer``
does it: each channel clamped to [0, 1] first, then the luma weights of
OpenCV's BGR2GRAY (0.299 R + 0.587 G + 0.114 B).

The forward pass is jit-compiled once per :class:`Model` family: copies made
with :meth:`Model.with_variables` (the trainer's evaluation, with new
weights every time) share the compiled function, so a tile shape compiles
once per process.
"""
import dataclasses
import pathlib
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxsr import models, weights
from jaxsr.inference import tiling
from jaxsr.io import levels

# RealESRGANer's grey output: cv2.COLOR_BGR2GRAY on the RGB network output.
LUMA = (0.299, 0.587, 0.114)


def to_grey(out: jax.Array) -> jax.Array:
  """(B, H, W, C) network output -> (B, H, W) grey: clamp per channel, then luma."""
  if out.shape[-1] == 1:
    return out[..., 0]
  if out.shape[-1] != 3:
    raise ValueError(f"cannot reduce {out.shape[-1]} output channels to grey")
  clamped = jnp.clip(out, 0.0, 1.0)
  return sum(w * clamped[..., i] for i, w in enumerate(LUMA))


def _grey_forward(module):
  """Jitted ``(variables, tiles (B, h, w)) -> (B, h*s, w*s)`` for one module."""
  channels = module.num_in_ch

  @jax.jit
  def run(variables, tiles):
    x = jnp.repeat(tiles[..., None], channels, axis=-1)
    return to_grey(module.apply(variables, x, train=False))

  return run


@dataclasses.dataclass(frozen=True)
class Model:
  """A generator with its weights and what it is (``info``: arch, scale, source, ...)."""
  module: Any
  variables: dict
  info: dict
  forward: Callable = dataclasses.field(default=None, repr=False, compare=False)

  def __post_init__(self):
    if self.forward is None:
      object.__setattr__(self, "forward", _grey_forward(self.module))

  @property
  def scale(self) -> int:
    return int(self.module.scale)

  @property
  def num_channels(self) -> int:
    return int(self.module.num_in_ch)

  @property
  def input_multiple(self) -> int:
    """Input sides are padded to a multiple of this (pixel-unshuffling networks)."""
    return int(self.module.input_multiple)

  @property
  def description(self) -> str:
    source = pathlib.Path(str(self.info.get("source", ""))).name
    return f"{self.info.get('arch', 'generator')} x{self.scale}" + (f" ({source})" if source else "")

  def with_variables(self, variables: dict) -> "Model":
    """The same network with other weights, sharing the compiled forward pass."""
    return dataclasses.replace(self, variables=variables)

  def predict(self, tiles: np.ndarray) -> np.ndarray:
    """float32 (B, h, w) grey in [0, 1] -> (B, h*scale, w*scale), not clipped."""
    return np.asarray(self.forward(self.variables, jnp.asarray(tiles, jnp.float32)))

  def upscale(self, pixels: np.ndarray, bits: int = 8, *, tile: int = 512, overlap: int = 32,
              batch: int = 1, pre_pad: int = 0,
              progress: Optional[Callable[[int], None]] = None) -> np.ndarray:
    """Upscales one grey image: float32 (H, W) in [0, 1] -> (H*scale, W*scale) in [0, 1].

    ``bits`` is the depth the pixels are stored at (``pixels = level /
    (2**bits - 1)``). An image that uses only the low bits of its container
    (12-bit data in a 16-bit PNG) is stretched to full range for the network
    and shrunk back (:func:`jaxsr.io.levels.stretch_gain`), so the output
    stays within the data's own range. The image goes through tiles of
    ``tile`` input pixels overlapping by ``overlap`` (0: whole image), so
    memory stays bounded on large radiographs.
    """
    pixels = np.asarray(pixels, np.float32)
    if pixels.ndim != 2:
      raise ValueError(f"expected one grey (H, W) image, got shape {pixels.shape}")
    gain = levels.stretch_gain(pixels, bits)
    predict = self.predict
    if gain != 1.0:
      predict = lambda tiles: self.predict(tiles * np.float32(gain))  # pylint: disable=unnecessary-lambda-assignment
    out = tiling.upscale(predict, pixels, self.scale, tile=tile, overlap=overlap, batch=batch,
                         pre_pad=pre_pad, multiple=self.input_multiple, progress=progress)
    out = np.clip(out, 0.0, 1.0)
    return out / np.float32(gain) if gain != 1.0 else out


def inference_device():
  return jax.local_devices()[0]


def from_module(module, variables: dict, info: dict | None = None, devices=None) -> Model:
  """A Model of ``module`` with the CPU speed-ups :func:`models.execution_kwargs` picks
  for ``devices`` (default: the device inference runs on)."""
  devices = [inference_device()] if devices is None else list(devices)
  options = models.execution_kwargs(type(module), devices)
  return Model(module.clone(**options) if options else module, variables, dict(info or {}))


def load(source, use_ema: bool = True) -> Model:
  """A generator from a shipped model's name (``xray_x4``), a training workdir
  (latest checkpoint, EMA weights where kept), a jaxsr .safetensors export or
  an official .pth; raises weights.WeightsError (one line) otherwise."""
  module, variables, info = weights.load_generator(source, use_ema=use_ema)
  return from_module(module, variables, info)
