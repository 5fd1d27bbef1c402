"""The classic degradation: antialiased bicubic downscaling, rounded to the stored levels.

The LR of the SRGAN/ESRGAN benchmarks (MATLAB's ``imresize``) and the
baseline every model is compared against (bicubic upscaling of that LR).
"""
import dataclasses

import numpy as np
from PIL import Image

from jaxsr.data import augment
from jaxsr.io import levels


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
  """Bicubic resize of a (H, W) float image, antialiased when shrinking.

  PIL's float ('F') bicubic uses the a=-0.5 kernel widened by the scale
  factor when downscaling, as MATLAB's ``imresize`` does.
  """
  out = Image.fromarray(np.asarray(image, np.float32), mode="F").resize(
      (width, height), Image.Resampling.BICUBIC)
  return np.asarray(out, np.float32)


def make_lr(hr: np.ndarray, scale: int, bits: int) -> np.ndarray:
  """(H/scale, W/scale) LR of a (H, W) HR, stored at ``bits`` as a file would be."""
  h, w = hr.shape[:2]
  return levels.quantize(resize(hr, h // scale, w // scale), bits)


def upscale(lr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
  """The bicubic baseline: LR resized to ``shape``, clipped to [0, 1]."""
  return np.clip(resize(lr, *shape), 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class RandomPatch:
  """Whole image -> random HR crop (flipped/rotated) and its bicubic LR.

  A plain callable ``(record, rng) -> pair``, the form grain's ``random_map``
  takes, so that reading this module (as inference does for its baseline)
  does not import grain.
  """
  patch_size: int
  scale: int
  num_channels: int = 1
  use_flip: bool = True
  use_rot: bool = True

  def random_map(self, record: dict, rng: np.random.Generator) -> dict:
    patch = augment.random_crop(record["image"], self.patch_size, rng)
    hr = augment.flip_rotate(patch, rng, self.use_flip, self.use_rot)
    lr = make_lr(hr, self.scale, record["bits"])
    return {"hr": augment.as_channels(hr, self.num_channels),
            "lr": augment.as_channels(lr, self.num_channels)}

  __call__ = random_map


class Bicubic:
  """``degradation.name='bicubic'``: pairs made on the host, nothing on the device."""
  name = "bicubic"
  makes_usm_target = False  # No sharpened target for the loss.
  random = False            # The same LR for every seed.

  def check(self, config) -> None:
    del config  # Nothing beyond the generic checks.

  def transform(self, config) -> RandomPatch:
    return RandomPatch(patch_size=config.data.patch_size, scale=config.scale,
                       num_channels=config.num_channels, use_flip=config.data.use_flip,
                       use_rot=config.data.use_rot)

  def device_fn(self, config):
    del config
    return None

  def init_state(self, config, batch_size: int) -> dict:
    del config, batch_size
    return {}

  def make_lr(self, hr: np.ndarray, scale: int, bits: int, *, seed: int = 0,
              index: int = 0) -> np.ndarray:
    del seed, index  # Deterministic.
    return make_lr(hr, scale, bits)

  def describe(self, seed: int = 0) -> str:
    del seed
    return "bicubic (antialiased, rounded to the image's depth)"

  def make_tiny(self, config) -> None:
    del config
