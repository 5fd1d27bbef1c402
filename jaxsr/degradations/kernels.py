"""Blur kernels for Real-ESRGAN's degradations, in numpy on the data workers.

Kernels are cheap (a 21x21 array) and every sample needs its own, so they are
drawn where the rest of the per-record randomness is: in the grain transform.
Builders take explicit parameters so that a kernel is reproducible from its
draws alone (the parity tests compare them with BasicSR's for the same
parameters); `sample_blur_kernel` / `sample_final_sinc` make the draws.
"""
import math

import numpy as np
from scipy import special

KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso",
                "plateau_iso", "plateau_aniso")
SINC = "sinc"


def mesh_grid(size: int) -> np.ndarray:
  """(size, size, 2) pixel offsets from the centre, x (columns) first."""
  ax = np.arange(-size // 2 + 1.0, size // 2 + 1.0)
  xx, yy = np.meshgrid(ax, ax)
  return np.stack((xx, yy), axis=-1)


def covariance(sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
  """Covariance of a Gaussian with axis sigmas rotated by theta (radians)."""
  c, s = math.cos(theta), math.sin(theta)
  rot = np.array([[c, -s], [s, c]])
  return rot @ np.diag([sigma_x ** 2, sigma_y ** 2]) @ rot.T


def _quadratic_form(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
  grid = mesh_grid(size)
  inverse = np.linalg.inv(covariance(sigma_x, sigma_y, theta))
  return np.sum((grid @ inverse) * grid, axis=-1)


def gaussian_kernel(size, sigma_x, sigma_y, theta):
  """Normalised anisotropic Gaussian (isotropic when sigma_y == sigma_x, theta 0)."""
  k = np.exp(-0.5 * _quadratic_form(size, sigma_x, sigma_y, theta))
  return k / k.sum()


def generalized_gaussian_kernel(size, sigma_x, sigma_y, theta, beta):
  """exp(-0.5 q^beta): beta < 1 gives heavy tails, beta > 1 a flatter top."""
  k = np.exp(-0.5 * np.power(_quadratic_form(size, sigma_x, sigma_y, theta), beta))
  return k / k.sum()


def plateau_kernel(size, sigma_x, sigma_y, theta, beta):
  """1 / (q^beta + 1): a flat top with slowly decaying shoulders."""
  k = 1.0 / (np.power(_quadratic_form(size, sigma_x, sigma_y, theta), beta) + 1.0)
  return k / k.sum()


def sinc_kernel(cutoff: float, size: int) -> np.ndarray:
  """Circular low-pass (2-D sinc, jinc) kernel with cutoff frequency in radians/pixel."""
  c = (size - 1) / 2.0
  y, x = np.mgrid[0:size, 0:size].astype(np.float64)
  r = np.sqrt((x - c) ** 2 + (y - c) ** 2)
  with np.errstate(divide="ignore", invalid="ignore"):
    k = cutoff * special.j1(cutoff * r) / (2 * np.pi * r)
  k[size // 2, size // 2] = cutoff ** 2 / (4 * np.pi)  # limit at r = 0
  return k / k.sum()


def pad_to(kernel: np.ndarray, size: int) -> np.ndarray:
  """Zero-pad an odd kernel to size x size so kernels of any size stack."""
  p = (size - kernel.shape[0]) // 2
  return np.pad(kernel, ((p, p), (p, p))).astype(np.float32)


def build_kernel(kind: str, size: int, sigma_x=1.0, sigma_y=1.0, theta=0.0, beta=1.0,
                 cutoff=np.pi) -> np.ndarray:
  """The kernel of `kind` (one of KERNEL_TYPES or 'sinc') for explicit parameters."""
  if kind == SINC:
    return sinc_kernel(cutoff, size)
  if kind.endswith("iso") and not kind.endswith("aniso"):
    sigma_y, theta = sigma_x, 0.0
  if kind in ("iso", "aniso"):
    return gaussian_kernel(size, sigma_x, sigma_y, theta)
  if kind.startswith("generalized"):
    return generalized_gaussian_kernel(size, sigma_x, sigma_y, theta, beta)
  return plateau_kernel(size, sigma_x, sigma_y, theta, beta)


def _beta(rng: np.random.Generator, lo: float, hi: float) -> float:
  # Half the draws below 1 and half above, as BasicSR does, so heavy and light
  # tails are equally likely whatever the range's asymmetry.
  return float(rng.uniform(lo, 1.0) if rng.uniform() < 0.5 else rng.uniform(1.0, hi))


def draw_blur_params(rng: np.random.Generator, kernel_list, kernel_prob, sigma_range,
                     betag_range, betap_range, sinc_prob, size_range=(7, 21),
                     rotation_range=(-np.pi, np.pi), sinc_cutoff_small=(np.pi / 3, np.pi),
                     sinc_cutoff_large=(np.pi / 5, np.pi)) -> dict:
  """One blur kernel's parameters, with Real-ESRGAN's probabilities and ranges."""
  size = int(rng.choice(np.arange(size_range[0], size_range[1] + 1, 2)))
  if rng.uniform() < sinc_prob:
    # Small sinc kernels cannot represent low cutoffs, hence the size-dependent range.
    lo, hi = sinc_cutoff_small if size < 13 else sinc_cutoff_large
    return {"kind": SINC, "size": size, "cutoff": float(rng.uniform(lo, hi))}
  kind = str(rng.choice(np.asarray(kernel_list), p=np.asarray(kernel_prob) / np.sum(kernel_prob)))
  params = {"kind": kind, "size": size, "sigma_x": float(rng.uniform(*sigma_range))}
  if "aniso" in kind:
    params["sigma_y"] = float(rng.uniform(*sigma_range))
    params["theta"] = float(rng.uniform(*rotation_range))
  if kind.startswith("generalized"):
    params["beta"] = _beta(rng, *betag_range)
  elif kind.startswith("plateau"):
    params["beta"] = _beta(rng, *betap_range)
  return params


def draw_final_sinc_params(rng: np.random.Generator, prob: float, size_range=(7, 21),
                           cutoff_range=(np.pi / 3, np.pi)):
  """Final sinc parameters, or None (a delta kernel) with probability 1 - prob."""
  if rng.uniform() >= prob:
    return None
  size = int(rng.choice(np.arange(size_range[0], size_range[1] + 1, 2)))
  return {"kind": SINC, "size": size, "cutoff": float(rng.uniform(*cutoff_range))}


def kernel_from_params(params, pad: int = 21) -> np.ndarray:
  """float32 (pad, pad) kernel; None gives the identity (a centred delta)."""
  if params is None:
    k = np.zeros((pad, pad), np.float32)
    k[pad // 2, pad // 2] = 1.0
    return k
  p = dict(params)
  return pad_to(build_kernel(p.pop("kind"), p.pop("size"), **p), pad)
