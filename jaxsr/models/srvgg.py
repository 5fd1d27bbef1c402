"""Real-ESRGAN's SRVGGNetCompact (realesr-general-x4v3, realesr-animevideov3).

A plain stack of 3x3 convs with activations at LR resolution, one conv to
``out * s * s`` channels, a pixel shuffle, and the nearest-upsampled input
added: cheap enough for video and large radiographs. Layers are numbered as
the reference's ``body`` list (convs even, activations odd), written
``body_N``, so state dicts map one to one.
"""
import flax.linen as nn

from jaxsr.models import layers, winograd

ACTIVATIONS = ("prelu", "relu", "leakyrelu")


class SRVGGNetCompact(layers.Generator, nn.Module):
  TORCH_CLASS = ("realesrgan.archs.srvgg_arch.SRVGGNetCompact", "upscale")
  num_in_ch: int = 3
  num_out_ch: int = 3
  upscale: int = 4
  num_feat: int = 64
  num_conv: int = 16
  act_type: str = "prelu"
  # Training from scratch only (weights and outputs are unaffected). None:
  # PyTorch's default init, as the reference. A float: He-normal init times
  # it, since PyTorch's default shrinks the signal ~3x per layer in this plain
  # stack. ``out_init_scale`` (default: init_scale) scales the last conv: a
  # small value starts the network at the nearest-neighbour upscale, so the
  # small residuals of smooth radiographs are learnt from there.
  init_scale: float | None = None
  out_init_scale: float | None = None
  pack_batch: bool = False  # As RRDBNet's.
  conv_algorithm: str = "direct"  # As RRDBNet's: the 64->64 trunk convs.

  @property
  def WINOGRAD_AUTO_MAX_PIXELS(self) -> int:  # pylint: disable=invalid-name
    # Training patches: yes; whole images: no. Narrower trunks spend more of
    # their time in the transforms, so their crossover comes at smaller maps
    # (bench_conv_algorithm.py's srvgg48 rows against srvgg16's).
    return 256 * 256 if self.num_feat >= 64 else 128 * 128

  @property
  def receptive_radius(self) -> int:
    # num_conv + 2 3x3 convs at LR; pixel shuffle and the nearest base add none.
    return self.num_conv + 2

  def _activation(self, index):
    if self.act_type == "prelu":
      return layers.PReLU(name=f"body_{index}")  # Per-channel, slope 0.25.
    if self.act_type == "relu":
      return nn.relu
    if self.act_type == "leakyrelu":
      return layers.leaky_relu(0.1)
    raise ValueError(f"unknown act_type '{self.act_type}'; choose one of {ACTIVATIONS}")

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train  # No batch statistics in this network.
    nf = self.num_feat
    base = layers.upsample_nearest(x, self.upscale)
    batch = x.shape[0]
    tiled = self.use_winograd(x)
    x, mask = layers.maybe_pack(x, False if tiled else self.pack_batch)
    out = layers.conv(nf, 3, in_features=self.num_in_ch, init_scale=self.init_scale,
                      name="body_0")(x)
    out = layers.apply_width_mask(self._activation(1)(out), mask)
    if tiled:
      # The trunk stays in Winograd's tile layout from its first conv to its
      # last: activations are elementwise, so they apply there unchanged.
      t = winograd.to_tiles(out)
      for i in range(self.num_conv):
        kernel, bias = layers.ConvWeights(nf, self.init_scale, nf, name=f"body_{2 * i + 2}")(nf)
        t = self._activation(2 * i + 3)(winograd.conv_tiles(t, kernel, bias))
      out = winograd.from_tiles(t)
    else:
      for i in range(self.num_conv):
        out = layers.conv(nf, 3, in_features=nf, init_scale=self.init_scale,
                          name=f"body_{2 * i + 2}")(out)
        out = layers.apply_width_mask(self._activation(2 * i + 3)(out), mask)
    last = 2 * self.num_conv + 2
    out = layers.conv(self.num_out_ch * self.upscale ** 2, 3, in_features=nf,
                      init_scale=(self.init_scale if self.out_init_scale is None
                                  else self.out_init_scale),
                      name=f"body_{last}")(out)
    out = layers.pixel_shuffle(out, self.upscale)
    out = layers.maybe_unpack(out, mask, batch, self.upscale)
    return out + base
