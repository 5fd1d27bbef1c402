"""The jit-compiled training and inference steps.

``make_train_step`` builds one pure function ``(state, batch, rng) ->
(state, metrics)`` for every GAN of the family: the config decides which
losses are on. Per call it does what BasicSR's SRGAN/ESRGAN models do per
iteration: one generator update (pixel + perceptual + adversarial), then one
discriminator update on the detached output of the same forward pass, then
the EMA update.
"""
import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxsr import losses
from jaxsr.training.state import TrainState, ema_update


@dataclasses.dataclass(frozen=True)
class StepModules:
  """The static pieces a step closes over (modules and optimizers, no arrays)."""
  generator: nn.Module
  discriminator: nn.Module | None
  vgg: nn.Module | None
  g_tx: optax.GradientTransformation
  d_tx: optax.GradientTransformation | None
  g_schedule: Callable | None = None   # step -> learning rate, for the logs.
  d_schedule: Callable | None = None


def _apply(module, params, stats, x, train: bool):
  """Applies a module, returning (output, new batch statistics)."""
  variables = {"params": params}
  if stats:
    variables["batch_stats"] = stats
    if train:
      out, updates = module.apply(variables, x, train=True, mutable=["batch_stats"])
      return out, updates["batch_stats"]
  return module.apply(variables, x, train=train), stats


def ema_decay_at(step, decay: float, warmup: bool):
  """The EMA decay for this step; with ``warmup``, min(decay, (1 + t) / (10 + t)).

  BasicSR starts the EMA at the initial weights with a fixed decay, so
  0.999**t of the random init is still in it after t steps (13% at 2k): fine
  for its 10^5-step runs, not for short ones. The warm-up (as TensorFlow's
  ExponentialMovingAverage with num_updates) lets the EMA forget the init.
  """
  if not warmup:
    return decay
  t = step.astype("float32")
  return jnp.minimum(decay, (1.0 + t) / (10.0 + t))


def make_train_step(mods: StepModules, loss_cfg: ml_collections.ConfigDict,
                    ema_decay: float, degrade: Callable | None = None,
                    ema_warmup: bool = False) -> Callable[..., tuple[TrainState, dict]]:
  """Returns ``step(state, batch, rng, vgg_params) -> (state, metrics)``.

  ``degrade(batch, rng, pool) -> ({'lr', 'hr', 'hr_usm'}, pool)`` makes the
  training pair on the device first (Real-ESRGAN); without it the batch
  already holds bicubic ``lr``/``hr`` pairs.
  """
  pixel_fn = losses.pixel_loss(loss_cfg.pixel_type)
  layer_weights = dict(loss_cfg.perceptual_layers)
  use_percep = loss_cfg.perceptual_weight > 0
  use_gan = loss_cfg.gan_weight > 0 and mods.discriminator is not None
  gan_type = loss_cfg.gan_type

  def features(vgg_params, x):
    return mods.vgg.apply({"params": vgg_params}, x)

  def step(state: TrainState, batch: dict, rng: jax.Array, vgg_params: Any):
    pool = state.pool
    if degrade is not None:
      batch, pool = degrade(batch, rng, pool)
    lr, hr = batch["lr"], batch["hr"]
    hr_usm = batch.get("hr_usm", hr)
    pix_target = hr_usm if loss_cfg.pixel_on_usm else hr
    percep_target = hr_usm if loss_cfg.perceptual_on_usm else hr
    gan_target = hr_usm if loss_cfg.gan_on_usm else hr
    hr_feats = features(vgg_params, percep_target) if use_percep else None

    def g_loss_fn(g_params):
      sr, g_stats = _apply(mods.generator, g_params, state.g_stats, lr, train=True)
      metrics = {}
      total = 0.0
      if loss_cfg.pixel_weight > 0:
        metrics["l_pix"] = loss_cfg.pixel_weight * pixel_fn(sr, pix_target)
        total = total + metrics["l_pix"]
      if loss_cfg.gradient_weight > 0:
        metrics["l_grad"] = loss_cfg.gradient_weight * losses.gradient_l1(sr, pix_target)
        total = total + metrics["l_grad"]
      if use_percep:
        metrics["l_percep"] = loss_cfg.perceptual_weight * losses.perceptual_loss(
            features(vgg_params, sr), hr_feats, layer_weights, loss_cfg.perceptual_criterion,
            loss_cfg.perceptual_feature_scale)
        total = total + metrics["l_percep"]
      d_stats = state.d_stats
      if use_gan:
        # D runs in training mode here too, as in BasicSR: its BatchNorm
        # statistics and spectral-norm vectors advance with every call.
        real_logits = None
        if gan_type == "ragan":
          real_logits, d_stats = _apply(mods.discriminator, state.d_params, d_stats, gan_target,
                                        True)
        fake_logits, d_stats = _apply(mods.discriminator, state.d_params, d_stats, sr, True)
        metrics["l_g_gan"] = loss_cfg.gan_weight * losses.generator_adversarial_loss(
            gan_type, fake_logits, real_logits)
        total = total + metrics["l_g_gan"]
      metrics["l_g_total"] = total
      return total, (sr, g_stats, jax.lax.stop_gradient(d_stats), metrics)

    (_, (sr, g_stats, d_stats, metrics)), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(
        state.g_params)
    updates, g_opt = mods.g_tx.update(g_grads, state.g_opt, state.g_params)
    g_params = optax.apply_updates(state.g_params, updates)

    d_params, d_opt = state.d_params, state.d_opt
    if use_gan:
      fake = jax.lax.stop_gradient(sr)

      def d_loss_fn(d_params):
        # Real and fake go through D separately, as in BasicSR (separate
        # BatchNorm statistics for each).
        real_logits, stats = _apply(mods.discriminator, d_params, d_stats, gan_target, True)
        fake_logits, stats = _apply(mods.discriminator, d_params, stats, fake, True)
        loss, (l_real, l_fake) = losses.discriminator_loss(gan_type, real_logits, fake_logits)
        aux = {"l_d_real": l_real, "l_d_fake": l_fake,
               "out_d_real": jnp.mean(real_logits), "out_d_fake": jnp.mean(fake_logits)}
        return loss, (stats, aux)

      (_, (d_stats, d_metrics)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(d_params)
      d_updates, d_opt = mods.d_tx.update(d_grads, d_opt, d_params)
      d_params = optax.apply_updates(d_params, d_updates)
      metrics.update(d_metrics)

    ema_params = state.ema_params
    if ema_decay > 0:
      ema_params = ema_update(ema_params, g_params,
                              ema_decay_at(state.step, ema_decay, ema_warmup))
    updated = state.replace(g_params=g_params, g_stats=g_stats, g_opt=g_opt, d_params=d_params,
                            d_stats=d_stats, d_opt=d_opt, ema_params=ema_params)
    # A non-finite loss skips the update (the data and pool still move on);
    # the loop stops the run after too many in a row.
    checks = [jnp.all(jnp.isfinite(v)) for v in metrics.values()]
    checks += [jnp.isfinite(jnp.sum(p)) for p in jax.tree.leaves((g_params, d_params))]
    finite = jnp.all(jnp.asarray(checks))
    kept = jax.tree.map(lambda new, old: jnp.where(finite, new, old), updated, state)
    new_state = kept.replace(step=state.step + 1, pool=pool,
                             bad_steps=jnp.where(finite, 0, state.bad_steps + 1))
    metrics["skipped"] = 1.0 - finite.astype(jnp.float32)
    return new_state, metrics

  return step


def make_predict_fn(generator: nn.Module) -> Callable:
  """``predict(variables, lr) -> sr`` in inference mode (running BN statistics)."""

  def predict(variables, lr):
    return generator.apply(variables, lr, train=False)

  return jax.jit(predict)
