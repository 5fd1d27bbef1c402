"""Real-ESRGAN's second-order degradation as one jittable function.

Split of the randomness (so a run is a pure function of (seed, step, record)
and resumes exactly):
- per record, on the grain workers (`sampling.RealESRGANSample`): the HR crop,
  the three kernels, noise levels, gray-noise flags and JPEG qualities;
- per batch, inside the jitted function from the rng the caller passes
  (``jax.random.fold_in(key, step)``): resize directions/scales/modes, the
  Gaussian-or-Poisson choice, the second-blur skip, the order of the final
  steps, the noise fields, the crop offsets and the pool shuffle. Drawing them
  on the device keeps the host side per-record and the batch size free.

The resize scales are per batch as in the reference (images in a batch must
share a shape); the training-pair pool then mixes pairs from different
batches. Differences from the reference, all on purpose: gray Gaussian noise
draws one field per sample (the reference shares one field across the batch),
and the final paired crop takes one offset per sample (the reference one per
batch). Shapes are fixed by the config (see `ops` for the canvas layout), so
a single compilation serves every draw.
"""
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxsr.degradations import ops
from jaxsr.io import levels
from jaxsr.degradations.config import params as default_params  # re-exported

__all__ = ["default_params", "make_degrade_fn", "init_pool_state", "draw_batch",
           "synthesize", "pool_update", "canvas_sizes"]


def _ceil16(n: int) -> int:
  return -(-n // 16) * 16


def canvas_sizes(cfg) -> tuple[int, int, int]:
  """Static canvases of stage 1, stage 2 and the final LR (see ops)."""
  crop, sf = cfg.crop_size, cfg.scale
  if crop % sf:
    raise ValueError(f"crop_size {crop} must divide by scale {sf}")
  s1 = _ceil16(max(crop, math.floor(crop * cfg.resize_range[1])))
  s2 = _ceil16(max(crop // sf, math.floor(crop / sf * cfg.resize_range2[1])))
  return s1, s2, crop // sf


def _choice(key, probs):
  p = jnp.asarray(probs, jnp.float32)
  return jax.random.choice(key, len(probs), p=p / p.sum())


def _scale(key, updown, lo, hi):
  ku, kd = jax.random.split(key)
  up = jax.random.uniform(ku, (), minval=1.0, maxval=hi)
  down = jax.random.uniform(kd, (), minval=lo, maxval=1.0)
  return jnp.where(updown == 0, up, jnp.where(updown == 1, down, 1.0))


def draw_batch(rng, cfg, batch_size: int) -> dict:
  """The batch-level draws; a pure function of rng."""
  k = jax.random.split(rng, 12)
  lr_patch = cfg.gt_size // cfg.scale
  top_max = cfg.crop_size // cfg.scale - lr_patch
  return {
      "scale1": _scale(k[0], _choice(k[1], cfg.resize_prob), *cfg.resize_range),
      "mode1": _choice(k[2], cfg.resize_mode_prob),
      "gaussian1": jax.random.uniform(k[3]) < cfg.gaussian_noise_prob,
      "blur2": jax.random.uniform(k[4]) < cfg.second_blur_prob,
      "scale2": _scale(k[5], _choice(k[6], cfg.resize_prob2), *cfg.resize_range2),
      "mode2": _choice(k[7], cfg.resize_mode_prob),
      "gaussian2": jax.random.uniform(k[8]) < cfg.gaussian_noise_prob2,
      "resize_first": jax.random.uniform(k[9]) < cfg.resize_sinc_first_prob,
      "mode3": _choice(k[10], cfg.resize_mode_prob),
      "top": jax.random.randint(k[11], (batch_size,), 0, top_max + 1),
      "left": jax.random.randint(jax.random.fold_in(k[11], 1), (batch_size,), 0, top_max + 1),
      # Its own stream, so that Real-ESRGAN's draws above stay as they were.
      "clean": jax.random.uniform(jax.random.fold_in(rng, 1), (batch_size,))
               < cfg.get("clean_prob", 0.0),
  }


def clean_lr_matrix(size: int, scale: int) -> np.ndarray:
  """(size/scale, size) matrix of the antialiased bicubic downscale, applied as M X M^T.

  The same resampling as :func:`jaxsr.degradations.bicubic.resize` (PIL's
  widened a=-0.5 kernel, MATLAB's imresize): the LR ``jaxsr evaluate``
  makes for clean inputs, taken from PIL itself by resizing unit columns.
  """
  from jaxsr.degradations import bicubic  # pylint: disable=import-outside-toplevel
  return np.ascontiguousarray(bicubic.resize(np.eye(size, dtype=np.float32), size // scale,
                                             size), dtype=np.float32)


def with_clean_samples(cfg, lr, hr, clean):
  """LR (N, C, s, s) with the samples where ``clean`` holds replaced by the clean
  bicubic LR of the HR (N, C, S, S), rounded to cfg.lr_bits."""
  m = jnp.asarray(clean_lr_matrix(hr.shape[-1], cfg.scale))
  small = levels.quantize(jnp.clip(jnp.einsum("ij,ncjk,lk->ncil", m, hr, m), 0.0, 1.0),
                          cfg.lr_bits)
  small = jnp.pad(small, [(0, 0)] * 2 + [(0, lr.shape[-2] - small.shape[-2]),
                                         (0, lr.shape[-1] - small.shape[-1])])
  return jnp.where(clean[:, None, None, None], small, lr)


def _noise(x, n, gaussian, sigma, pscale, gray, key, fields):
  """Gaussian (with fixed fields if given) or Poisson noise, then clip."""
  def gauss(_):
    if fields is None:
      kc, kg = jax.random.split(key)
      color = jax.random.normal(kc, x.shape)
      grayf = jax.random.normal(kg, (x.shape[0], 1) + x.shape[2:])
    else:
      color, grayf = fields
    return ops.gaussian_noise(x.shape, sigma, gray, color, grayf)
  def poisson(_):
    return ops.poisson_noise(key, x, pscale, gray, n)
  return jnp.clip(x + jax.lax.cond(gaussian, gauss, poisson, None), 0.0, 1.0)


def synthesize(cfg, hr, sample: dict, draws: dict, key, fields=None):
  """HR (N, C, S, S) -> (LR (N, C, S/sf, S/sf), USM-sharpened HR).

  sample: per-record draws (kernels, noise levels, qualities); draws: the
  batch-level ones (`draw_batch`); fields: optional fixed Gaussian noise
  fields ((color1, gray1), (color2, gray2)) on the stage canvases, for
  parity tests.
  """
  s1, s2, fin = canvas_sizes(cfg)
  crop = hr.shape[-1]
  f32 = lambda v: jnp.asarray(v, jnp.float32)
  usm_m = jnp.asarray(ops.reflect_blur_matrix(crop, ops.gaussian_taps(cfg.usm_radius | 1)))
  hr_usm = ops.usm_sharp(hr, usm_m, cfg.usm_weight, cfg.usm_threshold)
  k1, k2 = jax.random.split(key)
  f1, f2 = (None, None) if fields is None else fields

  # First degradation.
  x = ops.blur(hr_usm, f32(sample["kernel1"]))
  scale1 = f32(draws["scale1"])
  n1 = jnp.floor(crop * scale1).astype(jnp.int32)
  x = ops.resize(x, s1, crop, n1, 1.0 / scale1, draws["mode1"])
  x = _noise(x, n1, draws["gaussian1"], f32(sample["noise_sigma1"]),
             f32(sample["poisson_scale1"]), f32(sample["gray_noise1"]), k1, f1)
  x = ops.jpeg(x, f32(sample["jpeg_quality1"]), n1)

  # Second degradation.
  x = jax.lax.cond(draws["blur2"], lambda v: ops.blur(v, f32(sample["kernel2"]), n1),
                   lambda v: v, x)
  n2 = jnp.floor(crop / cfg.scale * f32(draws["scale2"])).astype(jnp.int32)
  x = ops.resize(x, s2, n1, n2, n1.astype(jnp.float32) / n2.astype(jnp.float32), draws["mode2"])
  x = _noise(x, n2, draws["gaussian2"], f32(sample["noise_sigma2"]),
             f32(sample["poisson_scale2"]), f32(sample["gray_noise2"]), k2, f2)

  # Final [resize back + sinc] and JPEG, in either order.
  q2 = f32(sample["jpeg_quality2"])
  sinc = f32(sample["sinc_kernel"])
  def back(v, n):
    v = ops.resize(v, fin, n, fin, n.astype(jnp.float32) / fin, draws["mode3"])
    return ops.blur(v, sinc)
  def resize_first(v):
    return ops.jpeg(jnp.clip(back(v, n2), 0.0, 1.0), q2)
  def jpeg_first(v):
    return back(ops.jpeg(jnp.clip(v, 0.0, 1.0), q2, n2), n2)
  x = jax.lax.cond(draws["resize_first"], resize_first, jpeg_first, x)
  return levels.quantize(x, cfg.lr_bits), hr_usm


def _crop(x, top, left, size):
  """Per-sample square crops of (N, C, H, W) by a gather (works on sharded batches)."""
  span = jnp.arange(size, dtype=jnp.int32)
  rows, cols = top[:, None] + span, left[:, None] + span
  out = x[jnp.arange(x.shape[0])[:, None, None], :, rows[:, :, None], cols[:, None, :]]
  return jnp.transpose(out, (0, 3, 1, 2))


def init_pool_state(cfg, batch_size: int, num_channels: int) -> dict:
  """An empty training-pair pool of cfg.queue_size pairs (NHWC)."""
  q = cfg.queue_size
  if q % batch_size:
    raise ValueError(f"queue_size {q} must divide by the batch size {batch_size}")
  lr = cfg.gt_size // cfg.scale
  return {"lr": jnp.zeros((q, lr, lr, num_channels), jnp.float32),
          "hr": jnp.zeros((q, cfg.gt_size, cfg.gt_size, num_channels), jnp.float32),
          "count": jnp.zeros((), jnp.int32)}


def pool_update(pool: dict, lr, hr, key):
  """Real-ESRGAN's training-pair pool: fill first, then swap with random old pairs.

  While filling, the batch passes through; once full, the pool is shuffled,
  its first b pairs are emitted and replaced by the batch. Batches then mix
  pairs degraded with different batch-level scales.
  """
  b, q = lr.shape[0], pool["lr"].shape[0]
  def fill(p):
    at = (p["count"], 0, 0, 0)
    new = {"lr": jax.lax.dynamic_update_slice(p["lr"], lr, at),
           "hr": jax.lax.dynamic_update_slice(p["hr"], hr, at), "count": p["count"] + b}
    return new, lr, hr
  def swap(p):
    perm = jax.random.permutation(key, q)
    plr, phr = p["lr"][perm], p["hr"][perm]
    new = {"lr": plr.at[:b].set(lr), "hr": phr.at[:b].set(hr), "count": p["count"]}
    return new, plr[:b], phr[:b]
  return jax.lax.cond(pool["count"] >= q, swap, fill, pool)


def degrade_with_draws(cfg, batch: dict, draws: dict, key, pool: dict, fields=None):
  """`degrade` with the batch-level draws given (tests pin them to the reference's)."""
  nhwc = lambda v: jnp.transpose(v, (0, 2, 3, 1))
  hr = jnp.transpose(jnp.asarray(batch["hr"], jnp.float32), (0, 3, 1, 2))
  k_syn, k_pool = jax.random.split(key)
  lr, _ = synthesize(cfg, hr, batch, draws, k_syn, fields)
  if cfg.get("clean_prob", 0.0) > 0:
    lr = with_clean_samples(cfg, lr, hr, draws["clean"])
  size, sf = cfg.gt_size, cfg.scale
  lr = _crop(lr, draws["top"], draws["left"], size // sf)
  hr = _crop(hr, draws["top"] * sf, draws["left"] * sf, size)
  pool, lr, hr = pool_update(pool, nhwc(lr), nhwc(hr), k_pool)
  m = jnp.asarray(ops.reflect_blur_matrix(size, ops.gaussian_taps(cfg.usm_radius | 1)))
  hr_usm = ops.usm_sharp(jnp.transpose(hr, (0, 3, 1, 2)), m, cfg.usm_weight, cfg.usm_threshold)
  return {"lr": lr, "hr": hr, "hr_usm": nhwc(hr_usm)}, pool


def make_degrade_fn(cfg: ml_collections.ConfigDict | None = None):
  """degrade(batch, rng, pool_state) -> ({'lr', 'hr', 'hr_usm'} NHWC, pool_state).

  batch: the `sampling.RealESRGANSample` fields, batched. rng should be
  ``fold_in(key, step)`` so that the draws are a pure function of the step.
  Pure and jittable; the caller jits it (alone or inside its train step).
  """
  cfg = default_params() if cfg is None else cfg
  canvas_sizes(cfg)  # validate early

  def degrade(batch, rng, pool_state):
    k_draw, k_rest = jax.random.split(rng)
    draws = draw_batch(k_draw, cfg, batch["hr"].shape[0])
    return degrade_with_draws(cfg, batch, draws, k_rest, pool_state)
  return degrade
