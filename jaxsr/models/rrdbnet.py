"""ESRGAN's RRDBNet (Wang et al. 2018), as BasicSR defines it.

Residual-in-residual dense blocks without BatchNorm, residual scaling 0.2,
two nearest-neighbour x2 upsamplers with a conv after each, and no global
input skip. For x2 and x1 the input is pixel-unshuffled by 2 or 4 first, so
one trunk serves every scale (Real-ESRGAN's x2plus). Parameter names follow
BasicSR's state dict with ``body.N`` written ``body_N``.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax
from jax.ad_checkpoint import checkpoint_name

from jaxsr.models import layers, winograd

_UNSHUFFLE = {4: 1, 2: 2, 1: 4}


class ResidualDenseBlock(nn.Module):
  """Five densely connected convs; 0.1-scaled init keeps early residuals small."""
  num_feat: int = 64
  num_grow_ch: int = 32

  @nn.compact
  def __call__(self, x, mask=None):
    lrelu = layers.leaky_relu(0.2)
    masked = lambda t: layers.apply_width_mask(t, mask)
    feats = [x]
    for i in range(1, 5):
      out = layers.conv(self.num_grow_ch, 3, init_scale=0.1, name=f"conv{i}")(
          jnp.concatenate(feats, axis=-1))
      feats.append(masked(lrelu(out)))
    out = layers.conv(self.num_feat, 3, init_scale=0.1, name="conv5")(
        jnp.concatenate(feats, axis=-1))
    return masked(out) * 0.2 + x


class RRDB(nn.Module):
  """Three dense blocks inside one more 0.2-scaled residual."""
  num_feat: int = 64
  num_grow_ch: int = 32

  @nn.compact
  def __call__(self, x, mask=None):
    out = x
    for i in range(1, 4):
      out = ResidualDenseBlock(self.num_feat, self.num_grow_ch, name=f"rdb{i}")(out, mask)
    return out * 0.2 + x


def _stack(trees):
  """Same-shaped weight trees -> one tree with a new leading axis (for scan)."""
  return jax.tree.map(lambda *w: jnp.stack(w), *trees)


class _DenseBlockWeights(nn.Module):
  """A dense block's five (kernel, bias) pairs, named as ResidualDenseBlock's."""
  num_feat: int
  num_grow_ch: int

  @nn.compact
  def __call__(self):
    widths = [self.num_grow_ch] * 4 + [self.num_feat]
    return tuple(
        layers.ConvWeights(width, init_scale=0.1, name=f"conv{i}")(
            self.num_feat + (i - 1) * self.num_grow_ch)
        for i, width in enumerate(widths, start=1))


class _RRDBWeights(nn.Module):
  """An RRDB's weights, named as RRDB's (``rdb{1,2,3}/conv{1..5}``), stacked
  over its three dense blocks."""
  num_feat: int
  num_grow_ch: int

  @nn.compact
  def __call__(self):
    blocks = [_DenseBlockWeights(self.num_feat, self.num_grow_ch, name=f"rdb{i}")()
              for i in range(1, 4)]
    return _stack(blocks)


def _tiled_dense_block(x, convs):
  """ResidualDenseBlock on Winograd tiles: each new feature is transformed
  once, and the concatenation happens on the transformed pieces."""
  grid = x.shape[2:5]
  pieces = [winograd.input_transform(x)]
  for i, (kernel, bias) in enumerate(convs):
    out = winograd.output_transform(winograd.dense_conv(tuple(pieces), kernel), grid) + bias
    if i < len(convs) - 1:
      out = checkpoint_name(out, "dense_features")
      pieces.append(winograd.input_transform(nn.leaky_relu(out, 0.2)))
  return out * 0.2 + x


# For the gradient keep each dense block's features in tile layout and redo
# their transforms (2.25x larger) in the backward pass: under scan every kept
# array is copied into a per-iteration stack, which costs more than the redo.
_remat_dense_block = jax.checkpoint(
    _tiled_dense_block,
    policy=jax.checkpoint_policies.save_only_these_names("dense_features"))


def _tiled_trunk(x, weights):
  """The RRDB chain on tiles, as two nested scans over stacked weights
  ([block, dense block, ...]): XLA compiles one dense block, not 69."""
  def rrdb(h, dense_blocks):
    out, _ = lax.scan(lambda t, convs: (_remat_dense_block(t, convs), None), h, dense_blocks)
    return out * 0.2 + h, None
  return lax.scan(rrdb, x, weights)[0]


class RRDBNet(layers.Generator, nn.Module):
  """BasicSR ``RRDBNet``; ``upscale`` is its ``scale`` (4, 2 or 1)."""
  TORCH_CLASS = ("basicsr.archs.rrdbnet_arch.RRDBNet", "scale")  # (class, its scale kwarg)
  num_in_ch: int = 3
  num_out_ch: int = 3
  upscale: int = 4
  num_feat: int = 64
  num_block: int = 23
  num_grow_ch: int = 32
  # CPU speed-ups, the same numbers either way (off by default, as BasicSR):
  # lay a batch side by side as one wide image (layers.pack_along_width),
  # and run the trunk's convs as Winograd F(4x4, 3x3) where the map allows
  # (layers.use_winograd; float32 rounding apart). A config's "auto" turns
  # them on for steps on one CPU device (jaxsr.models.execution_kwargs).
  pack_batch: bool = False
  conv_algorithm: str = "direct"

  @property
  def input_multiple(self) -> int:
    """Input sides must be multiples of this (x2 and x1 pixel-unshuffle by 2 and 4)."""
    return _UNSHUFFLE[self.upscale]

  @property
  def receptive_radius(self) -> int:
    # In feature pixels (input / unshuffle): conv_first, 3 dense blocks of 5
    # convs per RRDB, conv_body, conv_up1, conv_up2, conv_hr, conv_last; the
    # pixel unshuffle adds up to unshuffle - 1 input pixels.
    unshuffle = _UNSHUFFLE[self.upscale]
    return unshuffle * (1 + 15 * self.num_block + 5) + unshuffle - 1

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train  # No batch statistics in this network.
    if self.upscale not in _UNSHUFFLE:
      raise ValueError(f"RRDBNet supports scale 4, 2 or 1, not {self.upscale}")
    lrelu = layers.leaky_relu(0.2)
    unshuffle = _UNSHUFFLE[self.upscale]
    if unshuffle > 1:
      x = layers.pixel_unshuffle(x, unshuffle)
    nf = self.num_feat
    batch = x.shape[0]
    tiled = self.use_winograd(x)
    # Winograd tiles already take the whole batch; packing is for direct convs.
    x, mask = layers.maybe_pack(x, False if tiled else self.pack_batch)
    masked = lambda t: layers.apply_width_mask(t, mask)

    def plain_conv(name, features=nf, in_features=nf):
      # BasicSR leaves these at PyTorch's default init.
      return layers.conv(features, 3, in_features=in_features, name=name)

    feat = masked(plain_conv("conv_first", in_features=x.shape[-1])(x))
    if tiled:
      blocks = [_RRDBWeights(nf, self.num_grow_ch, name=f"body_{i}")()
                for i in range(self.num_block)]
      body = winograd.to_tiles(feat)
      if blocks:  # num_block=0 leaves conv_body alone, as in BasicSR.
        body = _tiled_trunk(body, _stack(blocks))
      kernel, bias = layers.ConvWeights(nf, init_in_features=nf, name="conv_body")(nf)
      feat = feat + winograd.from_tiles(winograd.conv_tiles(body, kernel, bias))
    else:
      body = feat
      for i in range(self.num_block):
        body = RRDB(nf, self.num_grow_ch, name=f"body_{i}")(body, mask)
      feat = feat + masked(plain_conv("conv_body")(body))
    feat = masked(lrelu(plain_conv("conv_up1")(layers.upsample_nearest(feat, 2))))
    feat = masked(lrelu(plain_conv("conv_up2")(layers.upsample_nearest(feat, 2))))
    feat = masked(lrelu(plain_conv("conv_hr")(feat)))
    out = plain_conv("conv_last", self.num_out_ch)(feat)
    return layers.maybe_unpack(out, mask, batch, 4)
