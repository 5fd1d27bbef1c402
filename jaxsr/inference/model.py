"""A generator ready for inference: ``jaxsr.load_model(...).upscale(pixels, bits=...)``.

Radiographs are grey; a network may have one channel or three (an official
RGB checkpoint). A three-channel network gets the grey image in all three
channels, and its output goes back to grey as Real-ESRGAN's ``RealESRGANer``
does it: each channel clamped to [0, 1] first, then the luma weights of
OpenCV's BGR2GRAY (0.299 R + 0.587 G + 0.114 B).

Colour frames (ultrasound, secondary captures; :meth:`Model.upscale_frame`)
go through a three-channel network whole. A grey network upscales their
luminance (full-range BT.601 Y) and the chroma is resized bicubically, the
usual practice in super-resolution: the eye and most detail live in Y.

The forward pass is jit-compiled once per :class:`Model` family: copies made
with :meth:`Model.with_variables` (the trainer's evaluation, with new
weights every time) share the compiled function, so a tile shape compiles
once per process.
"""
import base64
import dataclasses
import pathlib
from typing import Any, Callable, Iterator, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxsr import compile_cache, models, pretrained, weights
from jaxsr.degradations import bicubic
from jaxsr.inference import tiling
from jaxsr.io import image as image_lib
from jaxsr.io import levels

# Side of the probe tile whose compiled memory gives Model.bytes_per_pixel.
PROBE_SIDE = 64
# Bytes per input pixel assumed where the backend gives no memory analysis.
FALLBACK_BYTES_PER_PIXEL = 4096.0
# Overlap for a network that does not state its receptive radius.
LEGACY_OVERLAP = 32

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


DTYPES = ("float32", "bfloat16")


def _apply(module, variables, x, dtype: str):
  """The network in ``dtype`` (weights and input cast inside the compiled
  function), its output back in float32."""
  if dtype == "float32":
    return module.apply(variables, x, train=False)
  cast = lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a  # pylint: disable=unnecessary-lambda-assignment
  out = module.apply(jax.tree.map(cast, variables), x.astype(dtype), train=False)
  return out.astype(jnp.float32)


def _grey_forward(module, dtype: str = "float32"):
  """Jitted ``(variables, tiles (B, h, w)) -> (B, h*s, w*s)`` for one module."""
  channels = module.num_in_ch

  @jax.jit
  def run(variables, tiles):
    x = jnp.repeat(tiles[..., None], channels, axis=-1)
    return to_grey(_apply(module, variables, x, dtype))

  return run


def _rgb_forward(module, dtype: str = "float32"):
  """Jitted ``(variables, tiles (B, h, w, 3)) -> (B, h*s, w*s, 3)`` for a 3-channel module."""

  @jax.jit
  def run(variables, tiles):
    return _apply(module, variables, tiles, dtype)

  return run


@dataclasses.dataclass(frozen=True)
class Model:
  """A generator with its weights and what it is (``info``: arch, scale, source, ...)."""
  module: Any
  variables: dict
  info: dict
  forward: Callable = dataclasses.field(default=None, repr=False, compare=False)

  rgb_forward: Callable = dataclasses.field(default=None, repr=False, compare=False)
  # Measured once per network: the forward pass's bytes per input pixel.
  memo: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)
  # The precision the network runs in (DTYPES); weights are kept in float32.
  dtype: str = "float32"

  def __post_init__(self):
    if self.dtype not in DTYPES:
      raise ValueError(f"dtype '{self.dtype}': use one of {', '.join(DTYPES)}")
    if self.forward is None:
      object.__setattr__(self, "forward", _grey_forward(self.module, self.dtype))
    if self.rgb_forward is None and self.num_channels == 3:
      object.__setattr__(self, "rgb_forward", _rgb_forward(self.module, self.dtype))

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
  def receptive_radius(self) -> Optional[int]:
    """The network's receptive radius in input pixels (None: it does not say)."""
    try:
      return int(self.module.receptive_radius)
    except (AttributeError, NotImplementedError):
      return None

  def bytes_per_pixel(self) -> float:
    """Device memory of one forward pass per input pixel (batch 1).

    Read from XLA's buffer assignment for a small probe tile (activations,
    input and output grow with the pixels; the weights do not), so it holds
    for the backend and the convolution path in use. The figure is kept in
    the compilation cache's folder (:func:`jaxsr.compile_cache.stored`), so
    a second run neither traces nor compiles the probe.
    """
    if "bytes_per_pixel" not in self.memo:
      side = PROBE_SIDE // self.input_multiple * self.input_multiple

      def measure():
        probe = jax.ShapeDtypeStruct((1, side, side), jnp.float32)
        try:
          stats = self.forward.lower(self.variables, probe).compile().memory_analysis()
          return (stats.temp_size_in_bytes + stats.output_size_in_bytes) / side ** 2 + 4
        except (AttributeError, NotImplementedError, RuntimeError, TypeError):
          return FALLBACK_BYTES_PER_PIXEL  # A backend without a memory analysis.

      self.memo["bytes_per_pixel"] = float(
          compile_cache.stored("bytes_per_pixel", self._fact_key(side), measure))
    return self.memo["bytes_per_pixel"]

  def plan(self, shape: tuple[int, int], *, tile: Optional[int] = None,
           overlap: Optional[int] = None, max_memory: Optional[int] = None, batch: int = 1,
           pre_pad: int = 0, frames: int = 1) -> tiling.Plan:
    """How an (H, W) input of ``frames`` frames goes through this network (:func:`tiling.plan`).

    ``tile``/``overlap`` None: chosen from ``max_memory`` (None: half of the
    device's free memory) and the receptive radius, so the result equals the
    untiled one; given values are kept. Whole frames go ``batch`` at a time
    (never more than there are); tiles ``batch`` at a time.
    """
    whole = self._plan(shape, tile, overlap, max_memory, min(batch, max(frames, 1)), pre_pad)
    if whole.tile <= 0 or batch <= frames:
      return whole
    return self._plan(shape, tile, overlap, max_memory, batch, pre_pad)

  def _plan(self, shape, tile, overlap, max_memory, batch, pre_pad) -> tiling.Plan:
    pad_h, pad_w = tiling.padding(shape[0], shape[1], pre_pad, self.input_multiple)
    radius = self.receptive_radius
    if radius is None and overlap is None:
      overlap = LEGACY_OVERLAP
    if tile is None:
      budget = (tiling.default_max_memory(inference_device()) if max_memory is None
                else int(max_memory))
      bytes_per_pixel = self.bytes_per_pixel()
    else:
      budget, bytes_per_pixel = 0, 0.0
    return tiling.plan(shape[0] + pad_h, shape[1] + pad_w, bytes_per_pixel=bytes_per_pixel,
                       max_memory=budget, radius=radius or 0, batch=batch,
                       align=self.input_multiple, tile=tile, overlap=overlap)

  @property
  def description(self) -> str:
    source = pathlib.Path(str(self.info.get("source", ""))).name
    return f"{self.info.get('arch', 'generator')} x{self.scale}" + (f" ({source})" if source else "")

  def with_variables(self, variables: dict) -> "Model":
    """The same network with other weights, sharing the compiled forward pass."""
    return dataclasses.replace(self, variables=variables)

  def with_dtype(self, dtype: str) -> "Model":
    """The same network and weights run in ``dtype`` (its own compiled forward pass).

    bfloat16 halves activation memory and runs on the matrix units of GPUs
    and TPUs; its error against float32 is in benchmarks/README.md.
    """
    if dtype == self.dtype:
      return self
    return dataclasses.replace(self, dtype=dtype, forward=None, rgb_forward=None, memo={})

  def predict(self, tiles: np.ndarray) -> np.ndarray:
    """float32 (B, h, w) grey in [0, 1] -> (B, h*scale, w*scale), not clipped."""
    tiles = jnp.asarray(tiles, jnp.float32)
    return np.asarray(self._forward_for(tiles.shape)(self.variables, tiles))

  def _fact_key(self, *extra) -> list:
    """What a fact kept for this network depends on: the network, its
    precision and the device it runs on, and ``extra`` (shapes)."""
    device = inference_device()
    return [repr(self.module), self.dtype, *extra, device.platform, device.device_kind]

  def _forward_for(self, shape: tuple) -> Callable:
    """The grey forward pass for tiles of ``shape``, untraced where a run kept it.

    Tracing a deep network in Python (flax checks every parameter's shape
    against its initialiser) is most of a warm start-up once XLA's cache has
    the executable. With the compilation cache on, the traced graph of each
    tile shape is kept as a ``jax.export`` artefact in the cache's folder
    (:func:`jaxsr.compile_cache.stored`, keyed by the network, precision,
    shape and device), and the next run calls it without tracing. The same
    StableHLO compiles to the same executable, so results do not change.
    """
    memo_key = ("forward", tuple(shape))
    if memo_key not in self.memo:
      forward = self.forward
      if compile_cache.active_dir() is not None:

        def export():
          specs = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), self.variables)
          exported = jax.export.export(self.forward)(
              specs, jax.ShapeDtypeStruct(tuple(shape), jnp.float32))
          return base64.b64encode(exported.serialize()).decode("ascii")

        serialized = compile_cache.stored("forward", self._fact_key(list(shape)), export)
        forward = jax.jit(jax.export.deserialize(bytearray(base64.b64decode(serialized))).call)
      self.memo[memo_key] = forward
    return self.memo[memo_key]

  def upscale(self, pixels: np.ndarray, bits: int = 8, *, tile: Optional[int] = None,
              overlap: Optional[int] = None, max_memory: Optional[int] = None,
              batch: int = 1, pre_pad: int = 0,
              progress: Optional[Callable[[int], None]] = None,
              stretch: bool = True) -> np.ndarray:
    """Upscales one grey image: float32 (H, W) in [0, 1] -> (H*scale, W*scale) in [0, 1].

    ``bits`` is the depth the pixels are stored at (``pixels = level /
    (2**bits - 1)``). An image that uses only the low bits of its container
    (12-bit data in a 16-bit PNG) is stretched to full range for the network
    and shrunk back (:func:`jaxsr.io.levels.stretch_gain`), so the output
    stays within the data's own range; ``stretch=False`` (CT in HU, slices of
    a volume: see :attr:`jaxsr.io.image.Image.stretchable`) leaves pixels as
    they are. The image goes through whole or in tiles as :meth:`plan`
    chooses from ``max_memory`` (or through tiles of ``tile`` input pixels
    overlapping by ``overlap``; tile 0: whole image), so memory stays bounded
    on large radiographs.
    """
    pixels = np.asarray(pixels, np.float32)
    if pixels.ndim != 2:
      raise ValueError(f"expected one grey (H, W) image, got shape {pixels.shape}")
    gain = levels.stretch_gain(pixels, bits) if stretch else 1.0
    predict = self.predict
    if gain != 1.0:
      predict = lambda tiles: self.predict(tiles * np.float32(gain))  # pylint: disable=unnecessary-lambda-assignment
    out = self._planned(predict, pixels, tile=tile, overlap=overlap, max_memory=max_memory,
                        batch=batch, pre_pad=pre_pad, progress=progress)
    out = np.clip(out, 0.0, 1.0)
    return out / np.float32(gain) if gain != 1.0 else out


  def _planned(self, predict, image: np.ndarray, *, tile=None, overlap=None, max_memory=None,
               batch: int = 1, pre_pad: int = 0, progress=None) -> np.ndarray:
    """``predict`` over ``image`` (H, W[, C]), whole or in the tiles :meth:`plan` picks."""
    plan = self.plan(image.shape[:2], tile=tile, overlap=overlap, max_memory=max_memory,
                     batch=batch, pre_pad=pre_pad)
    return tiling.upscale(predict, image, self.scale, tile=plan.tile, overlap=plan.overlap,
                          batch=batch, pre_pad=pre_pad, multiple=self.input_multiple,
                          margin=plan.margin, progress=progress)

  def upscale_frames(self, frames: np.ndarray, bits: int = 8, *, tile: Optional[int] = None,
                     overlap: Optional[int] = None, max_memory: Optional[int] = None,
                     batch: int = 1, pre_pad: int = 0,
                     progress: Optional[Callable[[int], None]] = None,
                     stretch: bool = True) -> Iterator[np.ndarray]:
    """Yields the upscaled frames of (F, H, W) grey or (F, H, W, 3) RGB, in order.

    Grey frames that go through whole (:meth:`plan` with ``batch`` frames at
    once) go through the network ``batch`` at a time (a CT slice is usually
    small); the result is the same as frame by frame. Otherwise each frame
    is tiled on its own, ``batch`` tiles at a time.
    """
    frames = np.asarray(frames)
    count, height, width = frames.shape[:3]
    plan = self.plan((height, width), tile=tile, overlap=overlap, max_memory=max_memory,
                     batch=batch, pre_pad=pre_pad, frames=count)
    options = dict(tile=plan.tile, overlap=plan.overlap, batch=batch, pre_pad=pre_pad,
                   stretch=stretch)
    pad_h, pad_w = tiling.padding(height, width, pre_pad, self.input_multiple)
    whole = plan.tile <= 0
    batch = min(batch, count)  # A batch is never filled beyond the frames there are.
    if frames.ndim != 3 or batch < 2 or not whole:
      for frame in frames:
        yield self.upscale_frame(frame, bits, progress=progress, **options)
      return
    pad = ((0, 0), (0, pad_h), (0, pad_w))
    for start in range(0, count, batch):
      chunk = np.asarray(frames[start:start + batch], np.float32)
      gains = np.ones(len(chunk), np.float32)
      if stretch:
        gains = np.asarray([levels.stretch_gain(f, bits) for f in chunk], np.float32)
      tiles = chunk * gains[:, None, None]
      if pad[1][1] or pad[2][1]:
        tiles = np.pad(tiles, pad, mode="reflect")
      if len(tiles) < batch:  # One batch shape: no recompilation for the last chunk.
        tiles = np.concatenate([tiles, np.repeat(tiles[-1:], batch - len(tiles), axis=0)])
      out = self.predict(tiles)[:len(chunk), :height * self.scale, :width * self.scale]
      out = np.clip(out, 0.0, 1.0) / gains[:, None, None]
      for frame in out:
        if progress:
          progress(1)
        yield np.ascontiguousarray(frame)

  def upscale_frame(self, frame: np.ndarray, bits: int = 8, **options) -> np.ndarray:
    """One frame, grey (H, W) or RGB (H, W, 3) in [0, 1] -> upscaled, same channels.

    ``options`` are those of :meth:`upscale`. RGB through a grey network: its
    luminance by the network, chroma bicubic (see the module docstring).
    """
    frame = np.asarray(frame, np.float32)
    if frame.ndim == 2:
      return self.upscale(frame, bits, **options)
    if frame.ndim != 3 or frame.shape[-1] != 3:
      raise ValueError(f"expected (H, W) or (H, W, 3), got shape {frame.shape}")
    options.pop("stretch", None)  # Colour is 8/16-bit RGB at its full range.
    if self.num_channels == 3:
      predict = lambda tiles: np.asarray(  # pylint: disable=unnecessary-lambda-assignment
          self.rgb_forward(self.variables, jnp.asarray(tiles, jnp.float32)))
      return np.clip(self._planned(predict, frame, **options), 0.0, 1.0)
    ycc = image_lib.rgb_to_ycbcr(frame)
    height, width = frame.shape[0] * self.scale, frame.shape[1] * self.scale
    out = np.empty((height, width, 3), np.float32)
    out[..., 0] = self.upscale(ycc[..., 0], bits, **options)
    for channel in (1, 2):
      out[..., channel] = bicubic.upscale(ycc[..., channel], (height, width))
    return image_lib.ycbcr_to_rgb(out)


def inference_device():
  return jax.local_devices()[0]


def from_module(module, variables: dict, info: dict | None = None, devices=None) -> Model:
  """A Model of ``module`` with the CPU speed-ups :func:`models.execution_kwargs` picks
  for ``devices`` (default: the device inference runs on)."""
  devices = [inference_device()] if devices is None else list(devices)
  options = models.execution_kwargs(type(module), devices)
  return Model(module.clone(**options) if options else module, variables, dict(info or {}))


def load(source, use_ema: bool = True, dtype: str = "float32") -> Model:
  """A generator from a shipped model's name (``xray_x4``), a training workdir
  (latest checkpoint, EMA weights where kept), a jaxsr .safetensors export or
  an official .pth, run in ``dtype``; raises weights.WeightsError (one line)
  otherwise."""
  module, variables, info = weights.load_generator(source, use_ema=use_ema)
  return from_module(module, variables, info).with_dtype(dtype)


class Shipped:
  """The shipped models for each input, chosen by its Modality when no weights are given.

  ``pick(modality)`` gives (names, notice) (:func:`jaxsr.pretrained.default_for`
  or :func:`~jaxsr.pretrained.evaluate_for` at a scale). Each model is loaded
  once and named once through ``say``; a notice (no model of that modality) is
  said once per modality.
  """

  def __init__(self, pick: Callable[[str], tuple[tuple[str, ...], str]],
               say: Callable[[str], None], dtype: str = "float32"):
    self.pick, self.say, self.dtype = pick, say, dtype
    self.loaded: dict[str, Model] = {}
    self.noted: set[str] = set()

  def for_image(self, image: image_lib.Image) -> list[tuple[str, Model]]:
    names, notice = self.pick(image.modality)
    if notice and image.modality not in self.noted:
      self.noted.add(image.modality)
      self.say(f"jaxsr: note: {notice}")
    chosen = []
    for name in names:
      if name not in self.loaded:
        self.say(f"jaxsr: using the shipped {pretrained.family(name)} model {name} "
                 f"({pretrained.MODELS[name]})")
        self.loaded[name] = load(name, dtype=self.dtype)
      chosen.append((name, self.loaded[name]))
    return chosen
