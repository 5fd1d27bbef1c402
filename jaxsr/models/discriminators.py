"""Discriminators.

:class:`VGGStyleDiscriminator` follows BasicSR's ``VGGStyleDiscriminator``:
a 3x3 conv, then stride-2 4x4 convs with BatchNorm and LeakyReLU(0.2) that halve
the resolution five times (six for 256 inputs), and two linear layers giving one
logit per image. Parameter names follow BasicSR's state dict.
"""
import flax.linen as nn
import jax.numpy as jnp

from jaxsr.models import layers


class VGGStyleDiscriminator(nn.Module):
  num_in_ch: int = 3
  num_feat: int = 64
  input_size: int = 128

  @nn.compact
  def __call__(self, x, train: bool = False):
    if x.shape[1] != self.input_size or x.shape[2] != self.input_size:
      raise ValueError(
          f"VGGStyleDiscriminator expects {self.input_size}x{self.input_size} patches, "
          f"got {x.shape[1]}x{x.shape[2]}; set data.patch_size accordingly")
    lrelu = layers.leaky_relu(0.2)
    nf = self.num_feat

    def norm(name):
      return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name=name)

    x = lrelu(layers.conv(nf, 3, in_features=self.num_in_ch, name="conv0_0")(x))
    x = lrelu(norm("bn0_1")(layers.conv(nf, 4, 2, 1, use_bias=False, name="conv0_1")(x)))
    widths = [nf * 2, nf * 4, nf * 8, nf * 8] + ([nf * 8] if self.input_size == 256 else [])
    in_ch = nf
    for stage, width in enumerate(widths, start=1):
      x = layers.conv(width, 3, use_bias=False, in_features=in_ch, name=f"conv{stage}_0")(x)
      x = lrelu(norm(f"bn{stage}_0")(x))
      x = layers.conv(width, 4, 2, 1, use_bias=False, name=f"conv{stage}_1")(x)
      x = lrelu(norm(f"bn{stage}_1")(x))
      in_ch = width
    # Flatten in PyTorch's (C, H, W) order so linear1 matches BasicSR weights.
    x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)
    fan_in = x.shape[-1]
    x = nn.Dense(100, kernel_init=layers.torch_default_kernel_init(),
                 bias_init=layers.torch_default_bias_init(fan_in), name="linear1")(x)
    x = nn.Dense(1, kernel_init=layers.torch_default_kernel_init(),
                 bias_init=layers.torch_default_bias_init(100), name="linear2")(lrelu(x))
    return x
