"""Losses of the SRGAN family, as pure functions of arrays.

GAN losses work on discriminator logits with the numerically stable
binary cross-entropy (PyTorch's ``BCEWithLogitsLoss``), which is what
BasicSR's ``GANLoss(gan_type='vanilla')`` computes.
"""
import jax
import jax.numpy as jnp
import optax


def l1(pred, target):
  return jnp.mean(jnp.abs(pred - target))


def mse(pred, target):
  return jnp.mean(jnp.square(pred - target))


def charbonnier(pred, target, eps=1e-12):
  return jnp.mean(jnp.sqrt(jnp.square(pred - target) + eps))


PIXEL_LOSSES = {"l1": l1, "mse": mse, "l2": mse, "charbonnier": charbonnier}


def pixel_loss(kind: str):
  if kind not in PIXEL_LOSSES:
    raise ValueError(f"unknown pixel loss '{kind}'; choose one of {sorted(PIXEL_LOSSES)}")
  return PIXEL_LOSSES[kind]


def gradient_l1(pred, target):
  """L1 distance of the horizontal and vertical finite differences of NHWC images.

  A jaxsr addition, not in BasicSR: it weighs edges and fine texture, which a
  plain L1 on pixels averages away, without the ImageNet VGG weights a
  perceptual loss needs.
  """
  dx = lambda x: x[:, :, 1:, :] - x[:, :, :-1, :]  # pylint: disable=unnecessary-lambda-assignment
  dy = lambda x: x[:, 1:, :, :] - x[:, :-1, :, :]  # pylint: disable=unnecessary-lambda-assignment
  return 0.5 * (l1(dx(pred), dx(target)) + l1(dy(pred), dy(target)))


def fro(pred, target):
  """BasicSR's 'fro' criterion: Frobenius norm of the difference."""
  return jnp.sqrt(jnp.sum(jnp.square(pred - target)))


FEATURE_CRITERIA = {"l1": l1, "l2": mse, "mse": mse, "fro": fro}


def perceptual_loss(sr_feats: dict, hr_feats: dict, layer_weights: dict, criterion: str = "l1",
                    feature_scale: float = 1.0):
  """Weighted sum over layers of ``criterion(sr_feat, hr_feat)``.

  ``feature_scale`` multiplies the features first: the SRGAN paper rescales
  VGG feature maps by 1/12.75.
  """
  crit = FEATURE_CRITERIA[criterion]
  total = 0.0
  for name, weight in layer_weights.items():
    total = total + weight * crit(sr_feats[name] * feature_scale,
                                  jax.lax.stop_gradient(hr_feats[name]) * feature_scale)
  return total


def bce_with_logits(logits, target_is_real: bool):
  labels = jnp.ones_like(logits) if target_is_real else jnp.zeros_like(logits)
  return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, labels))


def generator_adversarial_loss(kind: str, fake_logits, real_logits=None):
  """The generator's GAN loss.

  * ``vanilla``: -log D(G(x)) (the SRGAN paper's l_Gen; BasicSR's GANLoss).
  * ``ragan``: ESRGAN's relativistic average loss, as BasicSR's ESRGANModel.
  """
  if kind == "vanilla":
    return bce_with_logits(fake_logits, True)
  if kind == "ragan":
    real_logits = jax.lax.stop_gradient(real_logits)
    loss_real = bce_with_logits(real_logits - jnp.mean(fake_logits), False)
    loss_fake = bce_with_logits(fake_logits - jnp.mean(real_logits), True)
    return (loss_real + loss_fake) / 2
  raise ValueError(f"unknown gan loss '{kind}'; choose 'vanilla' or 'ragan'")


def discriminator_loss(kind: str, real_logits, fake_logits):
  """The discriminator's loss; ``fake_logits`` must come from a detached G output.

  Returns (loss, (loss_real, loss_fake)); BasicSR backpropagates the two parts
  separately, which sums their gradients just as the total does.
  """
  if kind == "vanilla":
    loss_real = bce_with_logits(real_logits, True)
    loss_fake = bce_with_logits(fake_logits, False)
  elif kind == "ragan":
    loss_real = 0.5 * bce_with_logits(
        real_logits - jnp.mean(jax.lax.stop_gradient(fake_logits)), True)
    loss_fake = 0.5 * bce_with_logits(
        fake_logits - jnp.mean(jax.lax.stop_gradient(real_logits)), False)
  else:
    raise ValueError(f"unknown gan loss '{kind}'; choose 'vanilla' or 'ragan'")
  return loss_real + loss_fake, (loss_real, loss_fake)
