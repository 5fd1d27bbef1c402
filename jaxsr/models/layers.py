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


def use_winograd(conv_algorithm: str | None, shape: tuple) -> bool:
  """Whether a network runs its 3x3 trunk convs as Winograd F(4x4, 3x3).

  ``None`` picks it on one CPU device, where direct convolutions already run
  near the chip's peak and only fewer multiplications make them faster; GPUs
  and TPUs keep their own convolution kernels. The map's sides must be
  multiples of 4 and the batch concrete (``jax.export`` keeps direct convs).
  """
  if conv_algorithm not in (None, "direct", "winograd"):
    raise ValueError(f"conv_algorithm must be 'direct', 'winograd' or None, not {conv_algorithm!r}")
  n, h, w = shape[:3]
  sides_known = isinstance(h, int) and isinstance(w, int)
  if sides_known and not winograd.fits(h, w):
    if conv_algorithm == "winograd":
      raise ValueError(f"Winograd convolutions need map sides divisible by "
                       f"{winograd.TILE}, got {h}x{w}")
    return False
  if not (sides_known and isinstance(n, int)):
    return False
  if conv_algorithm is None:
    return jax.default_backend() == "cpu" and jax.device_count() == 1
  return conv_algorithm == "winograd"


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


def should_pack(pack_batch: bool | None, batch: int) -> bool:
  """Whether a network packs its batch: ``None`` means on one CPU device only.

  Packing only pays off where convolutions prefer wide images (XLA:CPU);
  accelerators' convolutions handle batches well, so they skip the copies.
  With several devices the batch is sharded over them, and folding it into
  one image would take that parallelism away.
  """
  if not isinstance(batch, int) or batch < 2:
    return False  # Also a symbolic batch (jax.export): one graph for all sizes.
  if pack_batch is None:
    return jax.default_backend() == "cpu" and jax.device_count() == 1
  return bool(pack_batch)


def maybe_pack(x: jax.Array, pack_batch: bool | None) -> tuple[jax.Array, jax.Array | None]:
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
