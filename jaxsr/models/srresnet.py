"""SRResNet generators.

* :class:`SRResNet` is the generator of the SRGAN paper (Ledig et al. 2017):
  a 9x9 head, 16 residual blocks of conv-BN-PReLU-conv-BN, a long skip, two
  sub-pixel x2 upsamplers and a 9x9 tail.
* :class:`MSRResNet` is BasicSR's "modified SRResNet": no BatchNorm, LeakyReLU,
  3x3 head and tail, and the bilinearly upsampled input added to the output.

Departures from the paper, on purpose: images are in [0, 1] in and out (the
paper maps HR to [-1, 1]); the channel count is a parameter so radiographs can
be processed as one grey channel.
"""
import flax.linen as nn

from jaxsr.models import layers, winograd


def _upsample_stages(scale: int) -> list[int]:
  if scale in (2, 3):
    return [scale]
  if scale == 4:
    return [2, 2]
  raise ValueError(f"unsupported upscale factor {scale}; use 2, 3 or 4")


class ResidualBlockNoBN(nn.Module):
  """conv3x3 - ReLU - conv3x3 plus identity (BasicSR, init scaled by 0.1).

  ``tiled``: ``x`` is in Winograd's tile layout and both convs run there
  (same parameters).
  """
  num_feat: int = 64
  res_scale: float = 1.0
  tiled: bool = False

  @nn.compact
  def __call__(self, x, mask=None):
    if self.tiled:
      weights = lambda name: layers.ConvWeights(self.num_feat, 0.1, name=name)(x.shape[-1])
      out = nn.relu(winograd.conv_tiles(x, *weights("conv1")))
      return x + winograd.conv_tiles(out, *weights("conv2")) * self.res_scale
    out = layers.conv(self.num_feat, 3, init_scale=0.1, name="conv1")(x)
    out = layers.apply_width_mask(nn.relu(out), mask)
    out = layers.conv(self.num_feat, 3, init_scale=0.1, name="conv2")(out)
    return x + layers.apply_width_mask(out, mask) * self.res_scale


class MSRResNet(layers.Generator, nn.Module):
  """BasicSR ``MSRResNet``; parameter names follow its state dict."""
  TORCH_CLASS = ("basicsr.archs.srresnet_arch.MSRResNet", "upscale")
  WINOGRAD_AUTO_MAX_PIXELS = 256 * 256  # as SRVGGNetCompact's
  num_in_ch: int = 3
  num_out_ch: int = 3
  num_feat: int = 64
  num_block: int = 16
  upscale: int = 4
  pack_batch: bool = False  # As RRDBNet's.
  conv_algorithm: str = "direct"  # As RRDBNet's: the residual blocks' convs.

  @property
  def receptive_radius(self) -> int:
    # conv_first, two convs per block, one per upsampling stage, conv_hr and
    # conv_last; the bilinear base reaches one pixel, well inside that.
    return 1 + 2 * self.num_block + len(_upsample_stages(self.upscale)) + 2

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train  # No batch statistics in this network.
    lrelu = layers.leaky_relu(0.1)
    base = layers.upsample_bilinear(x, self.upscale)
    batch = x.shape[0]
    tiled = self.use_winograd(x)
    x, mask = layers.maybe_pack(x, False if tiled else self.pack_batch)
    masked = lambda t: layers.apply_width_mask(t, mask)
    feat = masked(lrelu(layers.conv(self.num_feat, 3, init_scale=0.1, name="conv_first")(x)))
    out = winograd.to_tiles(feat) if tiled else feat
    for i in range(self.num_block):
      out = ResidualBlockNoBN(self.num_feat, tiled=tiled, name=f"body_{i}")(out, mask)
    out = winograd.from_tiles(out) if tiled else out
    for i, s in enumerate(_upsample_stages(self.upscale)):
      out = layers.conv(self.num_feat * s * s, 3, init_scale=0.1, name=f"upconv{i + 1}")(out)
      out = masked(lrelu(layers.pixel_shuffle(out, s)))
    out = masked(lrelu(layers.conv(self.num_feat, 3, init_scale=0.1, name="conv_hr")(out)))
    out = layers.conv(self.num_out_ch, 3, init_scale=0.1, name="conv_last")(out)
    out = layers.maybe_unpack(out, mask, batch, self.upscale)
    return out + base


def _conv3x3(features: int, tiled: bool, name: str):
  """A 3x3 conv with PyTorch's default init, direct or on Winograd tiles (same parameters)."""
  if not tiled:
    return layers.conv(features, 3, in_features=features, name=name)
  return lambda t: winograd.conv_tiles(
      t, *layers.ConvWeights(features, init_in_features=features, name=name)(t.shape[-1]))


class ResidualBlockBN(nn.Module):
  """SRGAN residual block: conv-BN-PReLU-conv-BN plus identity.

  ``tiled``: ``x`` is in Winograd's tile layout. BatchNorm and PReLU act on
  the channel axis, last in both layouts, so they apply there unchanged.
  """
  num_feat: int = 64
  tiled: bool = False

  @nn.compact
  def __call__(self, x, train: bool):
    norm = lambda name: nn.BatchNorm(use_running_average=not train, momentum=0.9,
                                     epsilon=1e-5, name=name)
    out = _conv3x3(self.num_feat, self.tiled, "conv1")(x)
    out = layers.PReLU(name="prelu")(norm("bn1")(out))
    out = _conv3x3(self.num_feat, self.tiled, "conv2")(out)
    return x + norm("bn2")(out)


class SRResNet(layers.Generator, nn.Module):
  """The SRGAN paper's generator (BatchNorm + PReLU, sub-pixel upsampling)."""
  WINOGRAD_AUTO_MAX_PIXELS = 256 * 256  # as SRVGGNetCompact's
  num_in_ch: int = 3
  num_out_ch: int = 3
  num_feat: int = 64
  num_block: int = 16
  upscale: int = 4
  conv_algorithm: str = "direct"  # As RRDBNet's: the residual blocks' and conv_body.

  @property
  def receptive_radius(self) -> int:
    # 9x9 head (4), two convs per block, conv_body, one conv per upsampling
    # stage and the 9x9 tail (4 HR pixels, at most 4 input pixels).
    return 4 + 2 * self.num_block + 1 + len(_upsample_stages(self.upscale)) + 4

  @nn.compact
  def __call__(self, x, train: bool = False):
    feat = layers.conv(self.num_feat, 9, in_features=self.num_in_ch, name="conv_first")(x)
    feat = layers.PReLU(name="prelu_first")(feat)
    tiled = self.use_winograd(x)
    out = winograd.to_tiles(feat) if tiled else feat
    for i in range(self.num_block):
      out = ResidualBlockBN(self.num_feat, tiled, name=f"body_{i}")(out, train)
    out = _conv3x3(self.num_feat, tiled, "conv_body")(out)
    out = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                       name="bn_body")(out)
    out = (winograd.from_tiles(out) if tiled else out) + feat
    for i, s in enumerate(_upsample_stages(self.upscale)):
      out = layers.conv(self.num_feat * s * s, 3, in_features=self.num_feat,
                        name=f"upconv{i + 1}")(out)
      out = layers.PReLU(name=f"prelu_up{i + 1}")(layers.pixel_shuffle(out, s))
    return layers.conv(self.num_out_ch, 9, in_features=self.num_feat, name="conv_last")(out)
