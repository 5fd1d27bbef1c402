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

The scale and the HR patch side are not keys here: they are the config's
``scale`` and ``data.patch_size`` (:func:`params` adds them), and the crop's
flips and rotations are the config's ``data.use_flip``/``data.use_rot``, the
same keys every degradation honours.
"""
import math

import ml_collections

KERNEL_LIST = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso",
               "plateau_aniso")
KERNEL_PROB = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)


def default_config() -> ml_collections.ConfigDict:
  """The ``degradation`` section of a config that uses Real-ESRGAN's degradation."""
  c = ml_collections.ConfigDict()
  c.name = "realesrgan"
  # Data side (grain transform).
  c.crop_size = 400             # reflect-pad / crop of the HR before degradation
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
  c.queue_size = 180             # training-pair pool (pairs); divisible by the batch
  c.clean_prob = 0.0             # jaxsr: share of samples with the clean bicubic LR
  return c


# What each key of default_config() means, for ``jaxsr train --show_config``
# (jaxsr.config.key_help adds the ``degradation.`` prefix). "First"/"second"
# are the two rounds of Real-ESRGAN's degradation; keys ending in 2 belong to
# the second. Ranges are (low, high) of a uniform draw per sample.
KEY_HELP = {
    "name": "degradation making the training LR: 'realesrgan' (this section) or 'bicubic'",
    "crop_size": "side of the HR crop (reflect-padded if the image is smaller) that is "
                 "degraded; data.patch_size pairs are cut from it",
    "kernel_size_range": "(min, max) odd side of the blur kernels, drawn per sample",
    "kernel_pad_to": "blur kernels are zero-padded to this side (fixed shapes for jit)",
    "rotation_range": "(min, max) rotation in radians of anisotropic blur kernels",
    "sinc_cutoff_small": "(min, max) cutoff frequency in radians of sinc kernels smaller "
                         "than 13 pixels",
    "sinc_cutoff_large": "(min, max) cutoff frequency in radians of sinc kernels of 13 "
                         "pixels or more",
    "kernel_list": "first blur: kernel families to draw from (generalized: generalized "
                   "Gaussian; plateau: plateau-shaped; iso/aniso: round/elliptic)",
    "kernel_prob": "first blur: probability of each family of kernel_list",
    "blur_sigma": "first blur: (min, max) Gaussian sigma in pixels",
    "betag_range": "first blur: (min, max) shape exponent of generalized Gaussian kernels",
    "betap_range": "first blur: (min, max) shape exponent of plateau kernels",
    "sinc_prob": "first blur: probability of a sinc (ringing) kernel instead of kernel_list",
    "kernel_list2": "second blur: kernel families to draw from",
    "kernel_prob2": "second blur: probability of each family of kernel_list2",
    "blur_sigma2": "second blur: (min, max) Gaussian sigma in pixels",
    "betag_range2": "second blur: (min, max) shape exponent of generalized Gaussian kernels",
    "betap_range2": "second blur: (min, max) shape exponent of plateau kernels",
    "sinc_prob2": "second blur: probability of a sinc kernel instead of kernel_list2",
    "final_sinc_prob": "probability of the final sinc filter (ringing and overshoot "
                       "artefacts); else no final filter",
    "final_sinc_cutoff": "(min, max) cutoff frequency in radians of the final sinc filter",
    "resize_prob": "first resize: probabilities of (up, down, keep)",
    "resize_range": "first resize: (min, max) scale factor",
    "resize_mode_prob": "probabilities of (area, bilinear, bicubic) interpolation for "
                        "every resize",
    "gaussian_noise_prob": "first noise: probability of Gaussian noise; else Poisson noise",
    "noise_range": "first noise: (min, max) Gaussian sigma in 8-bit grey levels (of 255)",
    "poisson_scale_range": "first noise: (min, max) scale of Poisson (shot) noise",
    "gray_noise_prob": "first noise: probability of one noise field for all channels "
                       "(no effect on one-channel radiographs)",
    "jpeg_range": "first JPEG: (min, max) quality",
    "second_blur_prob": "probability that the second round blurs at all",
    "resize_prob2": "second resize: probabilities of (up, down, keep)",
    "resize_range2": "second resize: (min, max) scale factor",
    "gaussian_noise_prob2": "second noise: probability of Gaussian noise; else Poisson noise",
    "noise_range2": "second noise: (min, max) Gaussian sigma in 8-bit grey levels (of 255)",
    "poisson_scale_range2": "second noise: (min, max) scale of Poisson (shot) noise",
    "gray_noise_prob2": "second noise: probability of one noise field for all channels "
                        "(no effect on one-channel radiographs)",
    "jpeg_range2": "final JPEG: (min, max) quality",
    "resize_sinc_first_prob": "probability of [resize to LR + final sinc] then JPEG; "
                              "else JPEG then [resize + sinc]",
    "usm_radius": "unsharp-mask target: side of its Gaussian blur in pixels (made odd)",
    "usm_weight": "unsharp-mask target: sharpening strength",
    "usm_threshold": "unsharp-mask target: sharpen only where the detail exceeds this "
                     "many 8-bit grey levels",
    "lr_bits": "bit depth the LR is rounded to (8 as Real-ESRGAN; 12 or 16 for "
               "DICOM-grade inputs)",
    "queue_size": "pairs in the pool that mixes training pairs across batches (a "
                  "multiple of data.batch_size)",
    "clean_prob": "share of samples whose LR is the clean antialiased bicubic downscale "
                  "of the HR (no blur, noise or JPEG), so a restoration model stays sharp "
                  "on clean inputs; 0: Real-ESRGAN's degradation only",
}


def params(section=None, scale: int = 4, gt_size: int = 256) -> ml_collections.ConfigDict:
  """Everything the degradation functions read: ``section``'s keys (default:
  :func:`default_config`) plus the scale and the HR patch side ``gt_size``."""
  section = default_config() if section is None else section
  values = section.to_dict() if hasattr(section, "to_dict") else dict(section)
  values.update(scale=int(scale), gt_size=int(gt_size))
  return ml_collections.ConfigDict(values)
