"""Defaults of the second-order degradation: Real-ESRGAN's, with radiograph options.

Every value is Real-ESRGAN's (options/train_realesrgan_x4plus.yml plus the
constants hard-coded in its dataset and model) unless its comment says
otherwise. Radiograph adaptation, beside those defaults:
- images stay single-channel end to end (``num_channels`` comes from the
  data; gray noise is then the same as colour noise, JPEG works on luminance
  only, with no colour round trip);
- ``lr_bits`` sets the depth the LR is quantised to (8 as in the reference;
  12 or 16 to mimic DICOM-grade detectors);
- every range and probability below can be overridden from the config.
"""
import math

import ml_collections

KERNEL_LIST = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso",
               "plateau_aniso")
KERNEL_PROB = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)


def default_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.scale = 4
  # Data side (grain transform).
  c.crop_size = 400             # reflect-pad / crop of the HR before degradation
  c.use_hflip = True
  c.use_rot = False
  c.kernel_size_range = (7, 21)  # odd sizes, zero-padded to kernel_pad_to
  c.kernel_pad_to = 21
  c.rotation_range = (-math.pi, math.pi)
  c.sinc_cutoff_small = (math.pi / 3, math.pi)  # sinc kernels smaller than 13
  c.sinc_cutoff_large = (math.pi / 5, math.pi)
  c.kernel_list = KERNEL_LIST
  c.kernel_prob = KERNEL_PROB
  c.blur_sigma = (0.2, 3.0)
  c.betag_range = (0.5, 4.0)
  c.betap_range = (1.0, 2.0)
  c.sinc_prob = 0.1
  c.kernel_list2 = KERNEL_LIST
  c.kernel_prob2 = KERNEL_PROB
  c.blur_sigma2 = (0.2, 1.5)
  c.betag_range2 = (0.5, 4.0)
  c.betap_range2 = (1.0, 2.0)
  c.sinc_prob2 = 0.1
  c.final_sinc_prob = 0.8
  c.final_sinc_cutoff = (math.pi / 3, math.pi)
  # First degradation (device side).
  c.resize_prob = (0.2, 0.7, 0.1)  # up, down, keep
  c.resize_range = (0.15, 1.5)
  c.resize_mode_prob = (1 / 3, 1 / 3, 1 / 3)  # area, bilinear, bicubic
  c.gaussian_noise_prob = 0.5
  c.noise_range = (1.0, 30.0)    # sigma in 8-bit units
  c.poisson_scale_range = (0.05, 3.0)
  c.gray_noise_prob = 0.4
  c.jpeg_range = (30.0, 95.0)
  # Second degradation.
  c.second_blur_prob = 0.8
  c.resize_prob2 = (0.3, 0.4, 0.3)
  c.resize_range2 = (0.3, 1.2)
  c.gaussian_noise_prob2 = 0.5
  c.noise_range2 = (1.0, 25.0)
  c.poisson_scale_range2 = (0.05, 2.5)
  c.gray_noise_prob2 = 0.4
  c.jpeg_range2 = (30.0, 95.0)
  c.resize_sinc_first_prob = 0.5  # [resize back + sinc] then JPEG, else the reverse
  # Targets and output.
  c.usm_radius = 50
  c.usm_weight = 0.5
  c.usm_threshold = 10.0
  c.lr_bits = 8                  # radiographs: 12 or 16 for DICOM-grade LR
  c.gt_size = 256
  c.queue_size = 180
  return c
