"""Random crops, flips and rotations of training images, shared by every degradation.

Each function draws from the numpy generator grain hands the record, in a
fixed order, so a sample is a pure function of (seed, record index) and a
resumed run sees the same patches.
"""
import numpy as np


def random_crop(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
  """A random ``size`` x ``size`` crop; the image must be at least that large."""
  h, w = image.shape[:2]
  top = int(rng.integers(0, h - size + 1))
  left = int(rng.integers(0, w - size + 1))
  return image[top:top + size, left:left + size]


def pad_and_crop(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
  """Reflect-pad (bottom/right, no edge repeat) up to ``size``, then a random crop.

  Real-ESRGAN's dataset does this, so images smaller than its 400-pixel
  crop still give full crops.
  """
  h, w = image.shape[:2]
  ph, pw = max(0, size - h), max(0, size - w)
  if ph or pw:
    image = np.pad(image, ((0, ph), (0, pw)) + ((0, 0),) * (image.ndim - 2), mode="reflect")
  return random_crop(image, size, rng)


def flip_rotate(patch: np.ndarray, rng: np.random.Generator, use_flip: bool,
                use_rot: bool) -> np.ndarray:
  """BasicSR's ``augment``: horizontal flip (``use_flip``), then vertical flip and
  transpose (``use_rot``), each with probability 0.5: the eight dihedral views."""
  if use_flip and rng.random() < 0.5:
    patch = patch[:, ::-1]
  if use_rot and rng.random() < 0.5:
    patch = patch[::-1]
  if use_rot and rng.random() < 0.5:
    patch = np.swapaxes(patch, 0, 1)
  return np.ascontiguousarray(patch)


def as_channels(image: np.ndarray, num_channels: int) -> np.ndarray:
  """(H, W) grey -> (H, W, C) by repeating the channel."""
  return np.repeat(image[..., None], num_channels, axis=-1)
