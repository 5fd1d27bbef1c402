"""``degradation.name='realesrgan'``: Real-ESRGAN's second-order degradation.

One object owns the degradation end to end: its config checks, the grain
transform that draws each record's crop, kernels and noise levels on the
host (`sampling`), the jitted function that degrades a batch on the device
and its training-pair pool (`pipeline`), and the reproducible LR of a whole
image for evaluation.

Evaluation needs the LR of a whole radiograph, the same every run, while
the pipeline works on square canvases. The HR is reflect-padded at the
bottom and right to a square (its side rounded up to a multiple of
16 * scale, so similar image sizes share one compilation), degraded as one
record, and the LR is cut back to the image's own extent. Every step is
pointwise or a global resize/blur, so the cut LR is the degradation of the
image itself, with reflected context at the two padded edges. The draws are
a pure function of (seed, index): the per-record ones from numpy seeded with
``[seed, index]`` as grain seeds its workers, the per-batch ones from
``fold_in(key(seed), index)``.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxsr import errors
from jaxsr.degradations import config as degradation_config
from jaxsr.degradations import pipeline, sampling


def params(config):
  """The degradation's parameters for a training config (scale and patch derived)."""
  return degradation_config.params(config.degradation, config.scale, config.data.patch_size)


class RealESRGAN:
  """Host-side draws, device-side degradation and the training-pair pool."""
  name = "realesrgan"
  makes_usm_target = True
  random = True

  def check(self, config) -> None:
    cfg = params(config)
    if cfg.crop_size % cfg.scale:
      raise errors.ConfigError(f"degradation.crop_size={cfg.crop_size} must be a multiple of "
                               f"scale={cfg.scale}")
    if cfg.gt_size > cfg.crop_size:
      raise errors.ConfigError(f"data.patch_size={cfg.gt_size} (the HR training patch) must not "
                               f"exceed degradation.crop_size={cfg.crop_size}")
    batch = config.data.batch_size
    if cfg.queue_size % batch:
      raise errors.ConfigError(f"degradation.queue_size={cfg.queue_size} must be a multiple of "
                               f"data.batch_size={batch}")
    if not 1 <= cfg.lr_bits <= 16:
      raise errors.ConfigError(f"degradation.lr_bits={cfg.lr_bits}: use 1 to 16")

  def transform(self, config):
    return sampling.RealESRGANSample.from_config(params(config), config.num_channels,
                                                 use_flip=config.data.use_flip,
                                                 use_rot=config.data.use_rot)

  def device_fn(self, config):
    """``degrade(batch, rng, pool) -> ({'lr', 'hr', 'hr_usm'}, pool)``, jittable."""
    return pipeline.make_degrade_fn(params(config))

  def init_state(self, config, batch_size: int) -> dict:
    return pipeline.init_pool_state(params(config), batch_size, config.num_channels)

  def make_lr(self, hr: np.ndarray, scale: int, bits: int, *, seed: int = 0,
              index: int = 0) -> np.ndarray:
    return whole_image_lr(hr, scale, bits, seed=seed, index=index)

  def describe(self, seed: int = 0) -> str:
    return f"realesrgan (second-order degradation, seed {seed})"

  def make_tiny(self, config) -> None:
    """Smaller crops and pool: the same pipeline, a fraction of the work."""
    config.degradation.crop_size = 128
    config.degradation.queue_size = 16
    config.data.patch_size = 128


def eval_params(side: int, scale: int, bits: int):
  """Default settings for one ``side``-square record at ``bits`` depth."""
  cfg = degradation_config.params(None, scale, side)  # No training crop: offsets unused.
  cfg.crop_size = int(side)
  cfg.lr_bits = int(bits)
  return cfg


@functools.lru_cache(maxsize=8)
def _synthesize_fn(side: int, scale: int, bits: int):
  """One compiled degradation per canvas size (cached across images)."""
  cfg = eval_params(side, scale, bits)

  @jax.jit
  def run(hr, sample, key):
    k_draw, k_syn = jax.random.split(key)
    draws = pipeline.draw_batch(k_draw, cfg, 1)
    lr, _ = pipeline.synthesize(cfg, hr, sample, draws, k_syn)
    return lr

  return cfg, run


def padded_side(height: int, width: int, scale: int) -> int:
  step = 16 * int(scale)
  return -(-max(height, width) // step) * step


def whole_image_lr(hr: np.ndarray, scale: int, bits: int, *, seed: int = 0,
                   index: int = 0) -> np.ndarray:
  """(H/scale, W/scale) float32 LR of the whole (H, W) HR; H, W multiples of scale."""
  height, width = hr.shape
  if height % scale or width % scale:
    raise ValueError(f"HR of {width}x{height} is not a multiple of the scale {scale}")
  side = padded_side(height, width, scale)
  cfg, run = _synthesize_fn(side, int(scale), int(bits))
  # numpy's reflect pads repeatedly where the pad exceeds the image.
  canvas = np.pad(np.asarray(hr, np.float32), ((0, side - height), (0, side - width)),
                  mode="reflect")
  sample = sampling.draw_sample(cfg, np.random.default_rng([int(seed), int(index)]))
  sample = {k: jnp.asarray(v)[None] for k, v in sample.items()}
  key = jax.random.fold_in(jax.random.key(int(seed)), int(index))
  lr = np.asarray(run(jnp.asarray(canvas)[None, None], sample, key))[0, 0]
  return np.ascontiguousarray(lr[:height // scale, :width // scale], dtype=np.float32)
