"""grain transform: whole radiograph -> HR crop plus Real-ESRGAN's per-sample draws.

Runs on the data workers, seeded by grain from (seed, record index), so the
draws resume exactly with the iterator. Everything it emits has a fixed
shape, so batches stack and one compiled `pipeline.make_degrade_fn` serves
them all.
"""
import dataclasses

import numpy as np

from jaxsr.data import augment
from jaxsr.degradations import kernels
from jaxsr.degradations.config import default_config


def draw_kernels(cfg, rng: np.random.Generator) -> tuple[dict, dict, dict | None]:
  """Parameters of kernel1, kernel2 and the final sinc (None: no final sinc)."""
  common = dict(size_range=tuple(cfg.kernel_size_range), rotation_range=tuple(cfg.rotation_range),
                sinc_cutoff_small=tuple(cfg.sinc_cutoff_small),
                sinc_cutoff_large=tuple(cfg.sinc_cutoff_large))
  p1 = kernels.draw_blur_params(rng, cfg.kernel_list, cfg.kernel_prob, cfg.blur_sigma,
                                cfg.betag_range, cfg.betap_range, cfg.sinc_prob, **common)
  p2 = kernels.draw_blur_params(rng, cfg.kernel_list2, cfg.kernel_prob2, cfg.blur_sigma2,
                                cfg.betag_range2, cfg.betap_range2, cfg.sinc_prob2, **common)
  p3 = kernels.draw_final_sinc_params(rng, cfg.final_sinc_prob, tuple(cfg.kernel_size_range),
                                      tuple(cfg.final_sinc_cutoff))
  return p1, p2, p3


def draw_sample(cfg, rng: np.random.Generator) -> dict:
  """Per-sample draws: kernels and the scalars of both noise/JPEG stages."""
  p1, p2, p3 = draw_kernels(cfg, rng)
  pad = cfg.kernel_pad_to
  f = np.float32
  out = {"kernel1": kernels.kernel_from_params(p1, pad),
         "kernel2": kernels.kernel_from_params(p2, pad),
         "sinc_kernel": kernels.kernel_from_params(p3, pad)}
  for stage, suffix in ((1, ""), (2, "2")):
    out[f"noise_sigma{stage}"] = f(rng.uniform(*cfg[f"noise_range{suffix}"]))
    out[f"poisson_scale{stage}"] = f(rng.uniform(*cfg[f"poisson_scale_range{suffix}"]))
    out[f"gray_noise{stage}"] = f(rng.uniform() < cfg[f"gray_noise_prob{suffix}"])
    out[f"jpeg_quality{stage}"] = f(rng.uniform(*cfg[f"jpeg_range{suffix}"]))
  return out


@dataclasses.dataclass(frozen=True)
class RealESRGANSample:
  """{'image': (H, W) float32, ...} -> {'hr': (crop, crop, C), kernels, scalars}.

  A plain callable ``(record, rng) -> sample`` for grain's ``random_map``; it
  needs no grain import of its own.

  Output keys: hr; kernel1, kernel2, sinc_kernel (pad, pad) float32;
  noise_sigma1/2 (8-bit units), poisson_scale1/2, gray_noise1/2 (0 or 1),
  jpeg_quality1/2, all float32 scalars.
  """
  config: dict = dataclasses.field(default_factory=lambda: default_config().to_dict())
  num_channels: int = 1
  use_flip: bool = True   # Real-ESRGAN's defaults: horizontal flips, no rotations.
  use_rot: bool = False

  @classmethod
  def from_config(cls, cfg, num_channels: int = 1, use_flip: bool = True,
                  use_rot: bool = False) -> "RealESRGANSample":
    return cls(config=cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg),
               num_channels=num_channels, use_flip=use_flip, use_rot=use_rot)

  def random_map(self, record: dict, rng: np.random.Generator) -> dict:
    cfg = _Cfg(self.config)
    image = np.asarray(record["image"], np.float32)
    hr = augment.flip_rotate(augment.pad_and_crop(image, cfg.crop_size, rng), rng,
                             self.use_flip, self.use_rot)
    out = draw_sample(cfg, rng)
    out["hr"] = augment.as_channels(hr, self.num_channels)
    return out

  __call__ = random_map


class _Cfg(dict):
  """Attribute access on a plain dict (what a pickled transform carries)."""
  __getattr__ = dict.__getitem__
