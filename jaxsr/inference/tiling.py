"""Tiled super-resolution of images too large for one forward pass.

The image is cut into overlapping tiles of one fixed shape (so a jitted
network compiles once per image), each tile is upscaled, and the outputs are
blended with separable weights that fall to zero towards every cut. A cut
changes a convolutional network's output only within its receptive field of
the cut; the weights are zero over the first quarter of the overlap and rise
by a raised cosine over the middle half, so once a quarter of the overlap
covers the receptive field the tiled result equals the untiled one up to
float rounding, with no seams. Image borders are never cut, so pixels there
see exactly the padding the untiled network sees.

Tiles are never padded: they lie inside the image (the last tile of a row or
column is spread back so it ends at the border), and an image smaller than
the tile along an axis gets a tile of its own size along that axis. Only the
last batch is filled up, by repeating a tile, which changes nothing.

Because the tiles form a grid and the weights are separable, the summed
weight at a pixel is the product of two 1-D sums: each tile's weight is
normalised by those sums up front, so the output needs no weight canvas.
"""
from typing import Callable, Iterator, Optional

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]


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


def edge_ramp(length: int, overlap: int) -> np.ndarray:
  """float64 weights rising from the cut: 0 for overlap // 4, then a cosine.

  `length` is the tile side and `overlap` the overlap, both in the units of the
  output (pixels of the upscaled image).
  """
  margin = overlap // 4
  rise = max(overlap - 2 * margin, 1)
  distance = np.arange(length, dtype=np.float64) - margin
  ramp = 0.5 - 0.5 * np.cos(np.pi * np.clip((distance + 0.5) / rise, 0.0, 1.0))
  return np.where(distance < 0, 0.0, ramp)


def axis_weights(size: int, tile: int, overlap: int, scale: int,
                 align: int = 1) -> list[np.ndarray]:
  """Normalised 1-D output weights of each tile along one axis (sum to 1)."""
  starts = tile_starts(size, tile, overlap, align)
  tile = min(tile, size)
  out_tile = tile * scale
  ramp = edge_ramp(out_tile, overlap * scale)
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
                  axis_weights(height, tile, overlap, scale, align)))
  cols = list(zip(tile_starts(width, tile, overlap, align),
                  axis_weights(width, tile, overlap, scale, align)))
  th, tw = min(tile, height), min(tile, width)
  canvas = np.zeros((height * scale, width * scale) + image.shape[2:], np.float32)
  grid = [(r, c) for r in rows for c in cols]
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
                      align=multiple, progress=progress)
  if pad_h or pad_w:
    out = np.ascontiguousarray(out[:height * scale, :width * scale])
  return out


def _chunks(items: list, size: int) -> Iterator[list]:
  size = max(int(size), 1)
  for i in range(0, len(items), size):
    yield items[i:i + size]
