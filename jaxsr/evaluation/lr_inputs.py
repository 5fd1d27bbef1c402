"""LR inputs for evaluation: bicubic or a reproducible Real-ESRGAN degradation.

Training degrades random square crops; evaluation needs the LR of a whole
radiograph, the same every run. The Real-ESRGAN pipeline works on square
canvases of ``cfg.crop_size``, so the HR is reflect-padded at the bottom and
right to a square (its side rounded up to a multiple of 16 * scale, so
similar image sizes share one compilation), degraded as one record, and the
LR is cut back to the image's own extent. Every degradation step is either
pointwise or a global resize/blur, so the cut LR is the degradation of the
image itself, with reflected context at the two padded edges.

The draws are a pure function of (seed, index): the per-record ones
(kernels, noise levels, JPEG qualities) from numpy seeded with
``[seed, index]`` as the grain workers seed them, the per-batch ones
(resize scales and modes, noise type, step order) from
``fold_in(key(seed), index)``.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxsr.data import pipeline as data_pipeline
from jaxsr.degradations import config as degradation_config
from jaxsr.degradations import pipeline as degradation_pipeline
from jaxsr.degradations import sampling


def prepare_hr(image: np.ndarray, scale: int, center_crop: int = 0) -> np.ndarray:
  """The central `center_crop` square (0: all), cut to a multiple of `scale`.

  The cut drops the last rows/columns, as BasicSR's ``mod_crop`` does.
  """
  height, width = image.shape
  if center_crop:
    side = min(center_crop, height, width)
    top, left = (height - side) // 2, (width - side) // 2
    image = image[top:top + side, left:left + side]
    height, width = image.shape
  if height < scale or width < scale:
    raise ValueError(f"image of {width}x{height} is smaller than the scale {scale}")
  return np.ascontiguousarray(image[:height - height % scale, :width - width % scale],
                              dtype=np.float32)


def bicubic_lr(hr: np.ndarray, scale: int, bits: int) -> np.ndarray:
  """Antialiased bicubic downscaling, stored at the image's bit depth."""
  return data_pipeline.make_lr(hr, scale, bits)


def bicubic_upscale(lr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
  """The bicubic baseline: LR resized back to the HR shape, clipped to [0, 1]."""
  return np.clip(data_pipeline.bicubic_resize(lr, *shape), 0.0, 1.0)


def degradation_cfg(side: int, scale: int, bits: int):
  """Default Real-ESRGAN settings for one `side`-square record at `bits` depth."""
  cfg = degradation_config.default_config()
  cfg.scale = int(scale)
  cfg.crop_size = int(side)
  cfg.gt_size = int(side)  # No training crop: the draws' offsets are unused.
  cfg.lr_bits = int(bits)
  return cfg


@functools.lru_cache(maxsize=8)
def _synthesize_fn(side: int, scale: int, bits: int):
  """One compiled degradation per canvas size (cached across images)."""
  cfg = degradation_cfg(side, scale, bits)

  @jax.jit
  def run(hr, sample, key):
    k_draw, k_syn = jax.random.split(key)
    draws = degradation_pipeline.draw_batch(k_draw, cfg, 1)
    lr, _ = degradation_pipeline.synthesize(cfg, hr, sample, draws, k_syn)
    return lr

  return cfg, run


def padded_side(height: int, width: int, scale: int) -> int:
  step = 16 * int(scale)
  return -(-max(height, width) // step) * step


def realesrgan_lr(hr: np.ndarray, scale: int, bits: int, *, seed: int = 0,
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
