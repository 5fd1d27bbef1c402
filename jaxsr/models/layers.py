"""Small building blocks shared by the super-resolution networks.

Tensors are NHWC. Channel orders follow PyTorch's ``PixelShuffle`` and
BasicSR's ``pixel_unshuffle`` so that weights move between the two frameworks
unchanged (apart from the kernel layout).
"""
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxsr.models import winograd


class Generator:
  """What every generator says about itself, so callers need no class names.

  Mixed into the generators' flax modules, which all take ``num_in_ch``,
  ``num_out_ch`` and ``upscale``. ``TORCH_CLASS`` names the reference's
  PyTorch class that loads the same state dict, and its scale argument.
  """
  TORCH_CLASS: tuple[str, str] | None = None
  # conv_algorithm="auto" runs the trunk as Winograd on maps of at most this
  # many pixels (batch x height x width; None: any size). Above it the
  # transformed maps outgrow the caches and XLA's direct convolution is
  # faster; benchmarks/bench_conv_algorithm.py measures where.
  WINOGRAD_AUTO_MAX_PIXELS: int | None = None

  def use_winograd(self, x: jax.Array) -> bool:
    """Whether this network's trunk runs as Winograd on the input ``x``."""
    return use_winograd(self.conv_algorithm, x.shape, self.WINOGRAD_AUTO_MAX_PIXELS, x.dtype)

  @property
  def scale(self) -> int:
    """Output side / input side."""
    return self.upscale

  @property
  def input_multiple(self) -> int:
    """Input sides must be multiples of this (pixel-unshuffling networks say more)."""
    return 1

  @property
  def receptive_radius(self) -> int:
    """Input pixels on each side of an output pixel's own that it can depend on.

    An upper bound from the layer stack (a conv at k-times resolution counts
    as a whole input pixel): tiles whose blending weights are zero within
    this distance of every cut give exactly the untiled output
    (:mod:`jaxsr.inference.tiling`).
    """
    raise NotImplementedError(f"{type(self).__name__} does not state its receptive radius")


def pixel_shuffle(x: jax.Array, scale: int) -> jax.Array:
  """Depth-to-space: (N, H, W, C*s*s) -> (N, H*s, W*s, C), PyTorch order."""
  n, h, w, c = x.shape
  out_c = c // (scale * scale)
  x = x.reshape(n, h, w, out_c, scale, scale)
  x = x.transpose(0, 1, 4, 2, 5, 3)
  return x.reshape(n, h * scale, w * scale, out_c)


def pixel_unshuffle(x: jax.Array, scale: int) -> jax.Array:
  """Space-to-depth, the inverse of :func:`pixel_shuffle`."""
  n, h, w, c = x.shape
  x = x.reshape(n, h // scale, scale, w // scale, scale, c)
  x = x.transpose(0, 1, 3, 5, 2, 4)
  return x.reshape(n, h // scale, w // scale, c * scale * scale)


def kaiming_normal(scale: float = 1.0) -> Callable:
  """He-normal init (fan-in, gain sqrt(2)) times ``scale``.

  BasicSR's ``default_init_weights`` scales this by 0.1 in residual networks,
  which keeps the early residual branches small and eases training.
  """
  return nn.initializers.variance_scaling(2.0 * scale * scale, "fan_in", "normal")


def torch_default_kernel_init() -> Callable:
  """PyTorch's default Conv2d/Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  return nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_default_bias_init(fan_in: int) -> Callable:
  bound = 1.0 / jnp.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def conv_initializers(features: int, kernel: int = 3, init_scale: float | None = None,
                      in_features: int | None = None) -> tuple[Callable, Callable]:
  """Kernel and bias init: BasicSR's scaled Kaiming, or PyTorch's default for ``None``."""
  if init_scale is not None:
    return kaiming_normal(init_scale), nn.initializers.zeros
  fan_in = (in_features or features) * kernel * kernel
  return torch_default_kernel_init(), torch_default_bias_init(fan_in)


def conv(features: int, kernel: int = 3, stride: int = 1, padding: int | None = None,
         use_bias: bool = True, init_scale: float | None = None,
         in_features: int | None = None, name: str | None = None) -> nn.Conv:
  """A 2-D convolution with PyTorch's explicit symmetric padding.

  ``init_scale`` selects BasicSR's scaled Kaiming init; ``None`` gives
  PyTorch's default init (which needs ``in_features`` for the bias bound).
  """
  pad = kernel // 2 if padding is None else padding
  kernel_init, bias_init = conv_initializers(features, kernel, init_scale, in_features)
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                 padding=((pad, pad), (pad, pad)), use_bias=use_bias,
                 kernel_init=kernel_init, bias_init=bias_init, name=name)


class ConvWeights(nn.Module):
  """A 3x3 conv's ``kernel`` (HWIO) and ``bias``, declared exactly as ``nn.Conv``
  declares them (names, shapes, init), for code that applies them itself.

  Calling it with the input's channel count returns ``(kernel, bias)``.
  """
  features: int
  init_scale: float | None = None
  init_in_features: int | None = None  # for PyTorch's default bias bound

  @nn.compact
  def __call__(self, in_features: int) -> tuple[jax.Array, jax.Array]:
    kernel_init, bias_init = conv_initializers(
        self.features, 3, self.init_scale, self.init_in_features)
    kernel = self.param("kernel", kernel_init, (3, 3, in_features, self.features), jnp.float32)
    bias = self.param("bias", bias_init, (self.features,), jnp.float32)
    return kernel, bias


CONV_ALGORITHMS = ("direct", "winograd", "auto")


def use_winograd(conv_algorithm: str, shape: tuple, auto_max_pixels: int | None = None,
                 dtype=jnp.float32) -> bool:
  """Whether a network runs its 3x3 trunk convs as Winograd F(4x4, 3x3) here.

  ``"winograd"`` takes it wherever the map allows: sides multiples of 4 and
  a concrete shape (``jax.export`` graphs keep direct convs, portable to any
  size); elsewhere the same layer runs as a direct convolution, with the
  same parameters. ``"auto"`` does the same on float32 maps of at most
  ``auto_max_pixels`` (batch x height x width), where Winograd pays on a CPU
  and keeps float32's accuracy: its transforms' coefficients (up to 5, down
  to 1/24) cost bfloat16 several grey levels.
  Whether to pass ``"direct"`` or one of the others is decided once, from the
  devices the network runs on (``jaxsr.models.execution_kwargs``), not here.
  """
  if conv_algorithm not in CONV_ALGORITHMS:
    raise ValueError(f"conv_algorithm must be one of {CONV_ALGORITHMS}, not {conv_algorithm!r}")
  if conv_algorithm == "direct":
    return False
  n, h, w = shape[:3]
  if not all(isinstance(d, int) for d in (n, h, w)):
    return False
  if conv_algorithm == "auto" and (jnp.dtype(dtype) != jnp.float32 or (
      auto_max_pixels is not None and n * h * w > auto_max_pixels)):
    return False
  return winograd.fits(h, w)


class PReLU(nn.Module):
  """Per-channel PReLU as ``torch.nn.PReLU(num_parameters=C)`` (slope init 0.25)."""
  init_slope: float = 0.25

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    slope = self.param("weight", nn.initializers.constant(self.init_slope), (x.shape[-1],))
    return jnp.where(x >= 0, x, slope * x)


def upsample_bilinear(x: jax.Array, scale: int) -> jax.Array:
  """Bilinear upsampling, half-pixel centres (PyTorch ``align_corners=False``)."""
  n, h, w, c = x.shape
  return jax.image.resize(x, (n, h * scale, w * scale, c), "linear", antialias=False)


def upsample_nearest(x: jax.Array, scale: int) -> jax.Array:
  """Nearest-neighbour upsampling by an integer factor (exact repeat)."""
  return jnp.repeat(jnp.repeat(x, scale, axis=1), scale, axis=2)


def pack_along_width(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Lays a batch side by side as one wide image, one zero column apart.

  (N, H, W, C) -> (1, H, N*(W+1)-1, C), plus a (1, 1, N*(W+1)-1, 1) mask that
  is 1 on image columns. A 3x3 "same" convolution of the packed image equals
  the per-image convolutions on image columns, provided the separator
  columns are zero on input: multiply every conv output by the mask (and
  upsample the mask with the features). XLA's CPU convolutions run 1.6-1.9x
  faster per pixel on images 100+ pixels wide than on 32-wide ones.
  """
  n, h, w, c = x.shape
  x = jnp.pad(x, ((0, 0), (0, 0), (0, 1), (0, 0)))
  x = x.transpose(1, 0, 2, 3).reshape(1, h, n * (w + 1), c)[:, :, :-1]
  mask = jnp.pad(jnp.ones((n, w), x.dtype), ((0, 0), (0, 1))).reshape(-1)[:-1]
  return x, mask.reshape(1, 1, -1, 1)


def apply_width_mask(x: jax.Array, mask: jax.Array | None) -> jax.Array:
  """Zeroes the separator columns of a packed batch (no-op for ``None``).

  The mask is repeated to match ``x``'s width, so it also serves after the
  packed image has been upsampled.
  """
  if mask is None:
    return x
  scale = x.shape[2] // mask.shape[2]
  return x * (mask if scale == 1 else jnp.repeat(mask, scale, axis=2))


def should_pack(pack_batch: bool, batch) -> bool:
  """Whether a network packs this batch: asked for, and two images or more.

  Packing pays off where convolutions prefer wide images (XLA:CPU) and the
  batch is not sharded over devices; ``jaxsr.models.execution_kwargs``
  decides ``pack_batch`` from the devices a step runs on.
  """
  if not isinstance(batch, int) or batch < 2:
    return False  # Also a symbolic batch (jax.export): one graph for all sizes.
  return bool(pack_batch)


def maybe_pack(x: jax.Array, pack_batch: bool) -> tuple[jax.Array, jax.Array | None]:
  """Packs ``x`` where :func:`should_pack` says so; the mask is None otherwise."""
  if should_pack(pack_batch, x.shape[0]):
    return pack_along_width(x)
  return x, None


def maybe_unpack(x: jax.Array, mask: jax.Array | None, batch: int, scale: int) -> jax.Array:
  """Undoes :func:`maybe_pack` on an output upsampled by ``scale``."""
  return x if mask is None else unpack_along_width(x, batch, scale)


def unpack_along_width(x: jax.Array, batch: int, scale: int = 1) -> jax.Array:
  """Inverse of :func:`pack_along_width`, after upsampling by ``scale``."""
  _, h, packed_w, c = x.shape
  sep = scale  # the separator column, upsampled with the images
  stride = (packed_w + sep) // batch
  x = jnp.pad(x, ((0, 0), (0, 0), (0, sep), (0, 0)))
  x = x.reshape(h, batch, stride, c).transpose(1, 0, 2, 3)
  return x[:, :, :stride - sep]


def leaky_relu(slope: float) -> Callable[[jax.Array], jax.Array]:
  return lambda x: nn.leaky_relu(x, negative_slope=slope)
