"""Grey levels: how [0, 1] pixels relate to the integers a file stores.

Every image in jaxsr is float32 in [0, 1] with its bit depth beside it
(``pixels = level / (2**bits - 1)``). The functions here are the only place
that turns pixels back into levels, so training (LR rounded to the stored
levels), metrics (scored on levels) and writers (levels stored) agree.
"""
import jax.numpy as jnp
import numpy as np

# Rows converted at once by `to_integers`: bounds float64 temporaries.
_CHUNK_ROWS = 256


def max_level(bits: int) -> int:
  bits = int(bits)
  if not 1 <= bits <= 32:
    raise ValueError(f"bits must be in 1..32, got {bits}")
  return 2 ** bits - 1


def to_levels(pixels01, bits: int) -> np.ndarray:
  """Integer levels (float64 in [0, 2**bits - 1]) of [0, 1] pixels, clipped.

  Exact for pixels read from a file; a model's output is clipped first, so
  the result is always a level the file could store.
  """
  top = float(max_level(bits))
  levels = np.rint(np.asarray(pixels01, dtype=np.float64) * top)
  return np.clip(levels, 0.0, top, out=levels)


def quantize(pixels01, bits: int):
  """Pixels rounded to the nearest of the 2**bits levels, still in [0, 1].

  What saving at that depth and reading back gives. Works on numpy arrays
  (float32 out) and inside jitted jax code alike.
  """
  top = float(max_level(bits))
  if isinstance(pixels01, np.ndarray) or np.isscalar(pixels01):
    return (np.round(np.clip(pixels01, 0.0, 1.0) * top) / top).astype(np.float32)
  return jnp.clip(jnp.round(pixels01 * top), 0, top) / top


def to_integers(pixels01: np.ndarray, bits: int, *, invert: bool = False,
                dtype=np.uint16) -> np.ndarray:
  """Stored integers ``round(p * (2**bits - 1))`` (flipped if asked), in row chunks."""
  top = max_level(bits)
  out = np.empty(np.shape(pixels01), dtype)
  for row in range(0, out.shape[0], _CHUNK_ROWS):
    levels = to_levels(pixels01[row:row + _CHUNK_ROWS], bits)
    out[row:row + _CHUNK_ROWS] = (top - levels) if invert else levels
  return out


def effective_bits(pixels01, bits: int, floor: int = 8) -> int:
  """The depth an image really uses: the bit length of its brightest level.

  A 16-bit PNG or TIFF often holds 10-15-bit detector data with nothing in
  the file saying so. The result is at least ``floor`` (so an 8-bit-range
  image is never called 5-bit) and at most ``bits``.
  """
  brightest = int(round(float(np.max(pixels01)) * max_level(bits))) if np.size(pixels01) else 0
  return min(int(bits), max(int(floor), brightest.bit_length()))


def stretch_gain(pixels01, bits: int) -> float:
  """How much to stretch pixels that use only the low bits of their container.

  (2**bits - 1) / (2**used - 1) for the used depth of :func:`effective_bits`:
  the image at its effective depth, full range, as the networks saw in
  training. 1 for images that use their depth.
  """
  used = effective_bits(pixels01, bits)
  return 1.0 if used >= bits else max_level(bits) / max_level(used)


def stretched(pixels01, bits: int):
  """(pixels, bits) of an image at its used depth, full range: what a network sees.

  12-bit data in a 16-bit container (levels 0..4095 of 65535) becomes 12-bit
  data at full range (levels 0..4095 of 4095), the same pixels as
  :func:`stretch_gain` gives at inference, stored at the used depth so that a
  training LR is rounded to the levels the data really has.
  """
  used = effective_bits(pixels01, bits)
  if used >= bits:
    return pixels01, int(bits)
  out = np.asarray(pixels01, np.float32) * np.float32(max_level(bits) / max_level(used))
  return np.minimum(out, np.float32(1.0)), used
