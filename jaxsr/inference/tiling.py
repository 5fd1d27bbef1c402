"""Tiled super-resolution of images too large for one forward pass.

The image is cut into overlapping tiles of one fixed shape (so a jitted
network compiles once per image), each tile is upscaled, and the outputs are
blended with separable weights that fall to zero towards every cut. A cut
changes a convolutional network's output only within its receptive field of
the cut. The weights are zero over a margin next to each cut and rise by a
raised cosine after it; when the margin is the network's receptive radius
(`exact_overlap`, what `plan` uses) the tiled result equals the untiled one up
to float rounding, with no seams. Without a radius the margin is a quarter of
the overlap. Image borders are never cut, so pixels there see exactly the
padding the untiled network sees.

`plan` picks the tiles from a memory budget: an image whose forward pass fits
goes through whole (no border is computed twice), a larger one through the
fewest square tiles that fit, evened out so that none is larger than needed.

Tiles are never padded: they lie inside the image (the last tile of a row or
column is spread back so it ends at the border), and an image smaller than
the tile along an axis gets a tile of its own size along that axis. Only the
last batch is filled up, by repeating a tile, which changes nothing.

Because the tiles form a grid and the weights are separable, the summed
weight at a pixel is the product of two 1-D sums: each tile's weight is
normalised by those sums up front, so the output needs no weight canvas.
"""
import dataclasses
import math
import os
import re
from typing import Callable, Iterator, Optional

import numpy as np

from jaxsr import errors

Predict = Callable[[np.ndarray], np.ndarray]

# Input pixels over which blending weights rise from 0 to 1 past the margin.
RISE = 2
# The share of free memory a forward pass may use when no budget is given:
# the host also holds the input, the output canvas and the writer's copy.
DEFAULT_MEMORY_SHARE = 0.5
_UNITS = {"": 1, "k": 2 ** 10, "m": 2 ** 20, "g": 2 ** 30, "t": 2 ** 40}


def exact_overlap(radius: int, align: int = 1) -> int:
  """The smallest overlap whose tiles, with margin ``radius``, give the untiled output.

  Each tile's weights are zero within ``radius`` of its cut and rise over
  `RISE` pixels, so two neighbours share at least that rise.
  """
  overlap = 2 * int(radius) + RISE
  return -(-overlap // align) * align


@dataclasses.dataclass(frozen=True)
class Plan:
  """How one image goes through the network: ``tile`` 0 means whole."""
  tile: int
  overlap: int
  margin: Optional[int]   # Zero-weight input pixels next to a cut; None: overlap // 4.
  tiles: int              # Tiles per image (1 when whole).

  def describe(self) -> str:
    if self.tile <= 0:
      return "whole image"
    return f"{self.tiles} tiles of {self.tile} px, overlap {self.overlap}"


def plan(height: int, width: int, *, bytes_per_pixel: float, max_memory: int, radius: int,
         batch: int = 1, align: int = 1, tile: Optional[int] = None,
         overlap: Optional[int] = None) -> Plan:
  """Tiles for an (H, W) input (already padded to ``align``) under ``max_memory``.

  ``bytes_per_pixel`` is the forward pass's memory per input pixel of one
  tile (``batch`` tiles run at once). A given ``tile`` (0: whole) or
  ``overlap`` is kept; otherwise the tile is the largest square that fits,
  then shrunk to the least that covers the image in as many tiles, and the
  overlap is `exact_overlap` of ``radius``. A user overlap too small for the
  radius blends over a quarter of itself, as before.
  """
  exact = exact_overlap(radius, align)
  overlap = exact if overlap is None else int(overlap)
  margin = radius if overlap >= 2 * radius + 1 else None
  if tile is None:
    budget = max_memory / (max(bytes_per_pixel, 1.0) * max(batch, 1))
    if height * width <= budget:
      tile = 0
    else:
      side = int(math.isqrt(int(budget))) // align * align
      if side <= overlap:
        need = (overlap + align) ** 2 * bytes_per_pixel * max(batch, 1)
        raise errors.UserError(
            f"--max_memory={format_bytes(max_memory)} holds tiles of at most {side} px, no "
            f"wider than their overlap of {overlap} px (this network's receptive field); "
            f"give at least {format_bytes(need)} or a smaller --tile_overlap")
      side = max(_even_side(height, side, overlap, align), _even_side(width, side, overlap, align))
      tile = side
  if tile > 0:
    tile = max(tile // align * align, align)
    if tile >= height and tile >= width:
      tile = 0
  if tile > 0 and overlap >= tile:
    raise errors.UserError(f"tile overlap {overlap} px must be smaller than the tile ({tile} px)")
  return Plan(tile=tile, overlap=overlap, margin=margin,
              tiles=tile_count((height, width), tile, overlap, align))


def _even_side(size: int, side: int, overlap: int, align: int) -> int:
  """The least aligned tile side covering ``size`` in as many tiles as ``side`` needs."""
  if size <= side:
    return min(size, side)
  count = len(tile_starts(size, side, overlap, align))
  even = -(-(size + (count - 1) * overlap) // count)
  return min(side, -(-even // align) * align)


def parse_memory(text: str) -> Optional[int]:
  """'auto' -> None; '8G', '512M', '2.5g', '1000000' -> bytes (powers of 1024)."""
  text = str(text).strip().lower()
  if text in ("", "auto"):
    return None
  match = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*([kmgt]?)i?b?", text)
  if not match or float(match.group(1)) <= 0:
    raise ValueError(f"'{text}' is not a memory size (e.g. 8G, 512M or auto)")
  return int(float(match.group(1)) * _UNITS[match.group(2)])


def format_bytes(count: float) -> str:
  for unit, size in (("G", 2 ** 30), ("M", 2 ** 20), ("K", 2 ** 10)):
    if count >= size:
      return f"{count / size:.1f}{unit}"
  return f"{int(count)}B"


def free_memory(device) -> int:
  """Bytes a forward pass on ``device`` can use now: the accelerator's free
  memory, or the host's available memory for a CPU device."""
  stats = None
  try:
    stats = device.memory_stats()
  except (AttributeError, NotImplementedError, RuntimeError):
    pass
  if stats and stats.get("bytes_limit"):
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
  try:
    with open("/proc/meminfo", encoding="ascii") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def default_max_memory(device) -> int:
  """The budget when none is given: `DEFAULT_MEMORY_SHARE` of `free_memory`."""
  return int(free_memory(device) * DEFAULT_MEMORY_SHARE)


def tile_starts(size: int, tile: int, overlap: int, align: int = 1) -> list[int]:
  """Evenly spread starts of tiles of side `tile` covering [0, size).

  Neighbouring tiles overlap by about `overlap` pixels or more; one tile when
  the axis fits in a tile. Starts are multiples of `align` (`size` and `tile`
  must be too), for networks that pixel-unshuffle their input.
  """
  if tile >= size:
    return [0]
  if not 0 <= overlap < tile:
    raise ValueError(f"overlap must be in [0, tile={tile}), got {overlap}")
  count = int(np.ceil((size - overlap) / (tile - overlap)))
  starts = np.rint(np.linspace(0, size - tile, count) / align) * align
  return sorted(set(int(s) for s in starts))


def edge_ramp(length: int, overlap: int, margin: Optional[int] = None) -> np.ndarray:
  """float64 weights rising from the cut: 0 for ``margin`` (overlap // 4), then a cosine.

  `length` is the tile side, `overlap` the overlap and `margin` the
  zero-weight band, all in the units of the output (upscaled pixels).
  """
  margin = overlap // 4 if margin is None else margin
  rise = max(overlap - 2 * margin, 1)
  distance = np.arange(length, dtype=np.float64) - margin
  ramp = 0.5 - 0.5 * np.cos(np.pi * np.clip((distance + 0.5) / rise, 0.0, 1.0))
  return np.where(distance < 0, 0.0, ramp)


def axis_weights(size: int, tile: int, overlap: int, scale: int,
                 align: int = 1, margin: Optional[int] = None) -> list[np.ndarray]:
  """Normalised 1-D output weights of each tile along one axis (sum to 1)."""
  starts = tile_starts(size, tile, overlap, align)
  tile = min(tile, size)
  out_tile = tile * scale
  ramp = edge_ramp(out_tile, overlap * scale, None if margin is None else margin * scale)
  weights = []
  for start in starts:
    w = np.ones(out_tile)
    if start > 0:
      w *= ramp
    if start + tile < size:
      w *= ramp[::-1]
    weights.append(w)
  total = np.zeros(size * scale)
  for start, w in zip(starts, weights):
    total[start * scale:start * scale + out_tile] += w
  if np.any(total <= 0):
    raise ValueError(f"tiles of {tile} with overlap {overlap} leave pixels of a "
                     f"{size}-pixel axis without weight; increase the overlap")
  return [w / total[s * scale:s * scale + out_tile] for s, w in zip(starts, weights)]


def tile_count(shape: tuple[int, int], tile: int, overlap: int, align: int = 1) -> int:
  if tile <= 0:
    return 1
  tile = max(tile // align * align, align)
  return (len(tile_starts(shape[0], tile, overlap, align))
          * len(tile_starts(shape[1], tile, overlap, align)))


def upscale_tiled(predict: Predict, image: np.ndarray, scale: int, *, tile: int = 512,
                  overlap: int = 32, batch: int = 1, align: int = 1,
                  margin: Optional[int] = None,
                  progress: Optional[Callable[[int], None]] = None) -> np.ndarray:
  """float32 (H*scale, W*scale) output of `predict` over tiles of `image`.

  Args:
    predict: maps float32 (B, h, w) to (B, h*scale, w*scale); called with one
      tile shape per image and B == batch.
    image: float32 (H, W), or (H, W, C) for a `predict` that maps (B, h, w, C) tiles.
    scale: the network's upscaling factor.
    tile: tile side in input pixels; 0 runs the whole image at once.
    overlap: minimum overlap of neighbouring tiles, in input pixels.
    batch: tiles per call of `predict`.
    align: tile sides and starts are multiples of it (H and W must be too).
    margin: input pixels of zero weight next to each cut (the network's
      receptive radius for an exact result); None: a quarter of the overlap.
    progress: called with the number of tiles finished after each call.
  """
  image = np.asarray(image, np.float32)
  height, width = image.shape[:2]
  if tile <= 0:
    out = np.asarray(predict(image[None]), np.float32)[0]
    if progress:
      progress(1)
    return out
  tile = max(tile // align * align, align)
  rows = list(zip(tile_starts(height, tile, overlap, align),
                  axis_weights(height, tile, overlap, scale, align, margin)))
  cols = list(zip(tile_starts(width, tile, overlap, align),
                  axis_weights(width, tile, overlap, scale, align, margin)))
  th, tw = min(tile, height), min(tile, width)
  canvas = np.zeros((height * scale, width * scale) + image.shape[2:], np.float32)
  grid = [(r, c) for r in rows for c in cols]
  batch = min(max(int(batch), 1), len(grid))  # Never fill a batch beyond the tiles there are.
  for chunk in _chunks(grid, batch):
    tiles = np.stack([image[r[0]:r[0] + th, c[0]:c[0] + tw] for r, c in chunk])
    if len(chunk) < batch:  # Keep one batch shape: no recompilation.
      tiles = np.concatenate([tiles, np.repeat(tiles[-1:], batch - len(chunk), axis=0)])
    outs = np.asarray(predict(tiles), np.float32)
    for ((top, wy), (left, wx)), out in zip(chunk, outs):
      weight = np.outer(wy, wx).astype(np.float32).reshape(out.shape[:2] + (1,) * (out.ndim - 2))
      view = canvas[top * scale:top * scale + th * scale, left * scale:left * scale + tw * scale]
      view += out * weight
    if progress:
      progress(len(chunk))
  return canvas


def padding(height: int, width: int, pre_pad: int = 0, multiple: int = 1) -> tuple[int, int]:
  """Rows and columns :func:`upscale` adds at the bottom/right: ``pre_pad``, then up to
  a multiple of ``multiple``."""
  return (pre_pad + (-(height + pre_pad)) % multiple, pre_pad + (-(width + pre_pad)) % multiple)


def upscale(predict: Predict, image: np.ndarray, scale: int, *, tile: int = 512,
            overlap: int = 32, batch: int = 1, pre_pad: int = 0, multiple: int = 1,
            margin: Optional[int] = None,
            progress: Optional[Callable[[int], None]] = None) -> np.ndarray:
  """`upscale_tiled` after reflect-padding bottom/right, cropped back.

  `pre_pad` is Real-ESRGAN's pre_pad (extra context at the bottom/right
  border); then the sides are padded up to a multiple of `multiple`, which
  networks that pixel-unshuffle need (Real-ESRGAN's mod_pad). With neither,
  nothing is padded and an untiled run is exactly the network's forward pass.
  """
  image = np.asarray(image, np.float32)
  height, width = image.shape[:2]
  pad_h, pad_w = padding(height, width, pre_pad, multiple)
  if pad_h or pad_w:
    image = np.pad(image, ((0, pad_h), (0, pad_w)) + ((0, 0),) * (image.ndim - 2),
                   mode="reflect")
  out = upscale_tiled(predict, image, scale, tile=tile, overlap=overlap, batch=batch,
                      align=multiple, margin=margin, progress=progress)
  if pad_h or pad_w:
    out = np.ascontiguousarray(out[:height * scale, :width * scale])
  return out


def _chunks(items: list, size: int) -> Iterator[list]:
  size = max(int(size), 1)
  for i in range(0, len(items), size):
    yield items[i:i + size]
