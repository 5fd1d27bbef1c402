"""Real-ESRGAN's U-Net discriminator with spectral normalisation.

It gives a realness logit per pixel rather than per image, which suits the
mixed, spatially varying degradations of blind SR. Spectral normalisation
(Miyato et al. 2018) bounds each conv's Lipschitz constant to stabilise the
stronger D; it follows ``torch.nn.utils.spectral_norm`` exactly, so
checkpoints move both ways and training behaves the same.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxsr.models import layers

_HIGHEST = jax.lax.Precision.HIGHEST


def _normalize(x, eps):
  """``torch.nn.functional.normalize`` of a vector."""
  return x / jnp.maximum(jnp.linalg.norm(x), eps)


class SpectralNormConv(nn.Module):
  """A bias-free conv whose kernel is divided by its largest singular value.

  The singular vectors ``weight_u`` (out,) and ``weight_v`` (in*kh*kw,) live
  in the 'batch_stats' collection, as torch keeps them as buffers: each call
  with ``train=True`` runs one power iteration and stores them; eval calls
  reuse them. The kernel is the reference's ``weight_orig`` in HWIO layout;
  the matrix is formed in PyTorch's OIHW order so ``weight_v`` matches.
  """
  features: int
  kernel_size: int = 3
  stride: int = 1
  padding: int = 1
  eps: float = 1e-12

  @nn.compact
  def __call__(self, x, train: bool = False):
    k = self.kernel_size
    kernel = self.param("kernel", layers.torch_default_kernel_init(),
                        (k, k, x.shape[-1], self.features))
    matrix = jnp.transpose(kernel, (3, 2, 0, 1)).reshape(self.features, -1)
    rng = lambda: self.make_rng("params")
    u_var = self.variable("batch_stats", "weight_u", lambda: _normalize(
        jax.random.normal(rng(), (matrix.shape[0],)), self.eps))
    v_var = self.variable("batch_stats", "weight_v", lambda: _normalize(
        jax.random.normal(rng(), (matrix.shape[1],)), self.eps))
    u, v = u_var.value, v_var.value
    if train and not self.is_initializing():
      w = jax.lax.stop_gradient(matrix)  # Torch iterates under no_grad.
      v = _normalize(jnp.dot(w.T, u, precision=_HIGHEST), self.eps)
      u = _normalize(jnp.dot(w, v, precision=_HIGHEST), self.eps)
      u_var.value, v_var.value = u, v
    sigma = jnp.dot(u, jnp.dot(matrix, v, precision=_HIGHEST), precision=_HIGHEST)
    p = self.padding
    return jax.lax.conv_general_dilated(
        x, kernel / sigma, (self.stride, self.stride), ((p, p), (p, p)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"))


class UNetDiscriminatorSN(nn.Module):
  """Three stride-2 downsamplings, three bilinear upsamplings with skip adds.

  Spectral norm sits on conv1..conv8, not on the first and last conv, as in
  the reference. Inputs need sides divisible by 8.
  """
  num_in_ch: int = 3
  num_feat: int = 64
  skip_connection: bool = True

  @nn.compact
  def __call__(self, x, train: bool = False):
    if x.shape[1] % 8 or x.shape[2] % 8:
      raise ValueError(f"UNetDiscriminatorSN needs sides divisible by 8, got "
                       f"{x.shape[1]}x{x.shape[2]}")
    lrelu = layers.leaky_relu(0.2)
    nf = self.num_feat

    def sn(name, features, kernel=3, stride=1):
      return lambda y: SpectralNormConv(features, kernel, stride, 1, name=name)(y, train)

    x0 = lrelu(layers.conv(nf, 3, in_features=self.num_in_ch, name="conv0")(x))
    x1 = lrelu(sn("conv1", nf * 2, 4, 2)(x0))
    x2 = lrelu(sn("conv2", nf * 4, 4, 2)(x1))
    x3 = lrelu(sn("conv3", nf * 8, 4, 2)(x2))

    up = lambda y: layers.upsample_bilinear(y, 2)
    x4 = lrelu(sn("conv4", nf * 4)(up(x3)))
    if self.skip_connection:
      x4 = x4 + x2
    x5 = lrelu(sn("conv5", nf * 2)(up(x4)))
    if self.skip_connection:
      x5 = x5 + x1
    x6 = lrelu(sn("conv6", nf)(up(x5)))
    if self.skip_connection:
      x6 = x6 + x0

    out = lrelu(sn("conv7", nf)(x6))
    out = lrelu(sn("conv8", nf)(out))
    return layers.conv(1, 3, in_features=nf, name="conv9")(out)
