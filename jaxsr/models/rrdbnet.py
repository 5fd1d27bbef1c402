"""ESRGAN's RRDBNet (Wang et al. 2018), as BasicSR defines it.

Residual-in-residual dense blocks without BatchNorm, residual scaling 0.2,
two nearest-neighbour x2 upsamplers with a conv after each, and no global
input skip. For x2 and x1 the input is pixel-unshuffled by 2 or 4 first, so
one trunk serves every scale (Real-ESRGAN's x2plus). Parameter names follow
BasicSR's state dict with ``body.N`` written ``body_N``.
"""
import flax.linen as nn
import jax.numpy as jnp

from jaxsr.models import layers

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


class RRDBNet(nn.Module):
  """BasicSR ``RRDBNet``; ``upscale`` is its ``scale`` (4, 2 or 1)."""
  num_in_ch: int = 3
  num_out_ch: int = 3
  upscale: int = 4
  num_feat: int = 64
  num_block: int = 23
  num_grow_ch: int = 32
  # Lay a batch side by side as one wide image (see layers.pack_along_width);
  # the same numbers, faster on CPU. None: when running on one CPU device.
  pack_batch: bool | None = None

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
    x, mask = layers.maybe_pack(x, self.pack_batch)
    masked = lambda t: layers.apply_width_mask(t, mask)

    def plain_conv(name, features=nf, in_features=nf):
      # BasicSR leaves these at PyTorch's default init.
      return layers.conv(features, 3, in_features=in_features, name=name)

    feat = masked(plain_conv("conv_first", in_features=x.shape[-1])(x))
    body = feat
    for i in range(self.num_block):
      body = RRDB(nf, self.num_grow_ch, name=f"body_{i}")(body, mask)
    feat = feat + masked(plain_conv("conv_body")(body))
    feat = masked(lrelu(plain_conv("conv_up1")(layers.upsample_nearest(feat, 2))))
    feat = masked(lrelu(plain_conv("conv_up2")(layers.upsample_nearest(feat, 2))))
    feat = masked(lrelu(plain_conv("conv_hr")(feat)))
    out = plain_conv("conv_last", self.num_out_ch)(feat)
    return layers.maybe_unpack(out, mask, batch, 4)
