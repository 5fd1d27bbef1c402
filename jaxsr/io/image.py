"""One image type for every reader and writer: radiographs, slices, volumes, cines, colour.

An :class:`Image` holds its frames as float32 in [0, 1], the scale the
networks work on, together with what is needed to go back to the file's own
numbers: the :class:`Encoding` (stored integers, rescale or modality LUT,
MONOCHROME1 flip, and which physical values the ends of [0, 1] stand for) and
the :class:`Geometry` (spacing, per-frame positions and orientation, the
NIfTI affine). A radiograph is the one-frame grey case, and
:attr:`Image.pixels` gives that frame as the (H, W) array the radiograph
code has always used.

Why the [0, 1] scale is chosen per modality (:func:`Encoding.for_values`):

* CT values mean Hounsfield units, the same on every scanner whatever the
  stored integers are, so a configured HU range (default −1024…3071) maps
  onto [0, 1]. A model trained on one CT then sees the same numbers for the
  same tissue on another.
* Everything else is mapped by its stored range (0…2**BitsStored − 1, the
  modality LUT's output over that range where there is one), as radiographs
  always were: the same stored depth gives comparable pixels.

Colour frames are RGB in [0, 1] (palette and YBR data are converted when
read); :func:`rgb_to_ycbcr` / :func:`ycbcr_to_rgb` (full-range BT.601, the
JPEG convention) split them into the luminance a grey model upscales and
the chroma that is resampled.
"""
import dataclasses
import functools
from typing import Optional, Sequence

import numpy as np

from jaxsr import errors
from jaxsr.io import levels

# The HU range CT is mapped from onto [0, 1] unless a config or flag says otherwise:
# air (-1024 HU) to the top of 12-bit CT data (3071 HU).
DEFAULT_HU_RANGE = (-1024.0, 3071.0)
# The soft-tissue display window (width 400, level 40) used for extra CT metrics.
SOFT_TISSUE_WINDOW = (-160.0, 240.0)
# The usual CT display windows as (low, high) HU, for pages people look at:
# soft tissue W400/L40, brain W80/L40, bone W1800/L400, lung W1500/L-600.
CT_WINDOWS = {
    "soft tissue": SOFT_TISSUE_WINDOW,
    "brain": (0.0, 80.0),
    "bone": (-500.0, 1300.0),
    "lung": (-1350.0, 150.0),
}


class ImageReadError(errors.UserError):
  """An image that cannot be read; str(err) is one line: '<path>: <problem>'."""

  def __init__(self, message: str):
    # Decoder messages often span lines; logs need one line per bad file.
    super().__init__(" ".join(str(message).split()))


class ImageNotFoundError(ImageReadError, FileNotFoundError):
  """A missing file or folder; also a FileNotFoundError for `except` clauses."""


@dataclasses.dataclass(frozen=True, eq=False)
class Encoding:
  """How stored samples become [0, 1] pixels, and back, exactly.

  ``value = stored * slope + intercept`` (or ``table[stored - lowest]`` for a
  modality LUT); ``unit = (value - low) / (high - low)``, flipped for
  MONOCHROME1/min-is-white, clipped to [0, 1]. Stored samples lie in
  ``lowest .. lowest + 2**bits - 1``.
  """
  bits: int
  signed: bool = False
  slope: float = 1.0
  intercept: float = 0.0
  low: float = 0.0
  high: float = 1.0
  invert: bool = False
  table: Optional[np.ndarray] = dataclasses.field(default=None, repr=False)
  dtype: str = "uint16"
  rescale_type: str = ""
  floating: bool = False   # Float samples (NIfTI float32/64): no integer rounding on output.

  @property
  def lowest(self) -> int:
    return -2**(self.bits - 1) if self.signed else 0

  @property
  def highest(self) -> int:
    return self.lowest + 2**self.bits - 1

  @property
  def linear(self) -> bool:
    return self.table is None

  @classmethod
  def for_values(cls, bits: int, signed: bool = False, *, slope: float = 1.0,
                 intercept: float = 0.0, table=None, invert: bool = False,
                 value_range: Optional[Sequence[float]] = None, dtype: str = "uint16",
                 rescale_type: str = "") -> "Encoding":
    """An encoding whose [0, 1] spans ``value_range`` (CT: an HU range), or
    by default the values of the whole stored range."""
    lowest = -2**(bits - 1) if signed else 0
    if value_range is None:
      if table is not None:
        values = np.asarray(table, np.float64)
      else:
        values = np.array([lowest, lowest + 2**bits - 1], np.float64) * slope + intercept
      low, high = float(values.min()), float(values.max())
    else:
      low, high = (float(v) for v in value_range)
    if not (np.isfinite(low) and np.isfinite(high)) or high <= low:
      raise ValueError(f"value range {low}..{high} leaves no contrast")
    return cls(bits=int(bits), signed=bool(signed), slope=float(slope), intercept=float(intercept),
               low=low, high=high, invert=bool(invert),
               table=None if table is None else np.asarray(table, np.float64),
               dtype=dtype, rescale_type=rescale_type)

  @property
  def identity(self) -> bool:
    """Whether unit = (stored - lowest) / (2**bits - 1): no rescale, LUT or range."""
    return (self.linear and self.slope == 1.0 and self.low == self.lowest + self.intercept
            and self.high == self.highest + self.intercept)

  def values(self, stored: np.ndarray) -> np.ndarray:
    """Physical values (float64) of stored samples (HU for CT)."""
    stored = np.asarray(stored)
    if self.table is not None:
      return np.take(self.table, stored.astype(np.int64) - self.lowest, mode="clip")
    return stored.astype(np.float64) * self.slope + self.intercept

  def to_unit(self, stored: np.ndarray) -> np.ndarray:
    """float32 [0, 1] pixels of stored samples.

    Without a rescale the arithmetic is exact float32 integer arithmetic and one
    correctly rounded division, so equal levels give bit-equal pixels whatever
    the file format.
    """
    stored = np.asarray(stored)
    if self.identity and not self.floating:
      pixels = stored.astype(np.float32)
      if self.lowest:
        pixels -= np.float32(self.lowest)
      if self.invert:
        np.subtract(np.float32(self.highest - self.lowest), pixels, out=pixels)
      pixels /= np.float32(self.highest - self.lowest)
      return np.clip(pixels, 0.0, 1.0, out=pixels)
    return self.values_to_unit(self.values(stored))

  def values_to_unit(self, values: np.ndarray) -> np.ndarray:
    span = self.high - self.low
    unit = (self.high - values) / span if self.invert else (values - self.low) / span
    return np.clip(unit, 0.0, 1.0).astype(np.float32)

  def unit_to_values(self, unit: np.ndarray) -> np.ndarray:
    unit = np.clip(np.asarray(unit, np.float64), 0.0, 1.0)
    span = self.high - self.low
    return self.high - unit * span if self.invert else self.low + unit * span

  def to_stored(self, unit: np.ndarray) -> np.ndarray:
    """Stored samples (``dtype``) whose pixels are nearest to ``unit``, clipped to what
    the encoding can hold: the exact inverse of :meth:`to_unit` on its own output."""
    if self.identity and not self.floating:
      top = self.highest - self.lowest
      stored = levels.to_levels(unit, self.bits)
      if self.invert:
        stored = top - stored
      return (stored + self.lowest).astype(self.dtype)
    values = self.unit_to_values(unit)
    if self.table is not None:
      return (_nearest_entry(self.table, values) + self.lowest).astype(self.dtype)
    stored = (values - self.intercept) / self.slope
    if self.floating:
      return stored.astype(self.dtype)
    return np.clip(np.rint(stored), self.lowest, self.highest).astype(self.dtype)

  @property
  def peak(self) -> float:
    """Width of the [0, 1] range in stored steps: the data range metrics use."""
    return (self.high - self.low) / abs(self.slope) if self.linear else float(2**self.bits - 1)

  @property
  def grid_bits(self) -> int:
    """The bit depth whose levels (``level / (2**b - 1)``) are a grid at least as fine as
    the stored steps on [0, 1]: where LR inputs are rounded to."""
    return max(1, min(32, int(np.ceil(np.log2(max(self.peak, 1.0) + 1.0)))))


def _nearest_entry(table: np.ndarray, values: np.ndarray) -> np.ndarray:
  order = np.argsort(table, kind="stable")
  ordered = table[order]
  right = np.clip(np.searchsorted(ordered, values), 1, len(ordered) - 1)
  nearer_left = values - ordered[right - 1] <= ordered[right] - values
  return order[np.where(nearer_left, right - 1, right)]


@dataclasses.dataclass(frozen=True, eq=False)
class Geometry:
  """Where the pixels are, in the file's own terms (all optional).

  DICOM: ``pixel_spacing`` is (between rows, between columns) in mm,
  ``orientation`` the six direction cosines (row direction, then column
  direction), ``positions`` the patient position of each frame's first pixel
  centre. NIfTI: ``affine`` maps voxel indices to world coordinates and
  ``slice_axis`` is the data axis frames were taken along.
  """
  pixel_spacing: Optional[tuple[float, float]] = None
  orientation: Optional[tuple[float, ...]] = None
  positions: Optional[np.ndarray] = None          # (F, 3)
  slice_thickness: Optional[float] = None
  spacing_between_slices: Optional[float] = None
  affine: Optional[np.ndarray] = None             # (4, 4), NIfTI
  slice_axis: Optional[int] = None                # NIfTI
  shape: Optional[tuple[int, ...]] = None         # NIfTI data shape

  @property
  def normal(self) -> Optional[np.ndarray]:
    if self.orientation is None:
      return None
    row, col = np.asarray(self.orientation[:3], float), np.asarray(self.orientation[3:], float)
    return np.cross(row, col)

  def voxel_spacing(self) -> Optional[tuple[float, float, float]]:
    """(between slices, between rows, between columns) in mm, where the geometry
    says all three (NIfTI: the affine; a series or Enhanced: the positions along
    the normal, else SpacingBetweenSlices); else None."""
    if self.pixel_spacing is None:
      return None
    step = None
    if self.affine is not None and self.slice_axis is not None:
      step = float(np.linalg.norm(np.asarray(self.affine)[:3, self.slice_axis]))
    elif self.positions is not None and len(self.positions) > 1:
      positions = np.asarray(self.positions, float)
      along = positions @ self.normal if self.normal is not None else positions[:, 2]
      step = float(np.median(np.abs(np.diff(along))))
    elif self.spacing_between_slices:
      step = float(self.spacing_between_slices)
    if not step or not all(v > 0 for v in self.pixel_spacing):
      return None
    return (step, float(self.pixel_spacing[0]), float(self.pixel_spacing[1]))


def means_hu(modality: str, rescale_type: str) -> bool:
  """Whether a rescale gives Hounsfield units: CT with RescaleType HU or none stated."""
  return modality == "CT" and rescale_type in ("", "HU")


def shift_first_centre(scale: int) -> float:
  """How far, in old pixels, the first output pixel centre lies before the first input
  centre when each pixel becomes ``scale``×``scale``: −(s − 1) / (2s)."""
  return -(scale - 1) / (2.0 * scale)


@dataclasses.dataclass(frozen=True, eq=False)
class Image:
  """Frames in [0, 1] with their encoding and geometry.

  Attributes:
    frames: float32 (F, H, W) grey or (F, H, W, 3) RGB in [0, 1], bright
      meaning dense/high values (MONOCHROME1 and min-is-white are flipped).
    bits: the depth of the stored data (BitsStored for DICOM, bits per sample
      otherwise; for CT the grid of the HU range, see :attr:`Encoding.grid_bits`).
    path: the path as given to the reader (a series: its folder).
    file_format: 'png', 'jpeg', 'tiff', 'dicom' or 'nifti' (from the content).
    photometric: colour model as the file states it, in that format's terms.
    inverted: whether stored levels were flipped (MONOCHROME1, MINISWHITE).
    modality: DICOM Modality ('CT', 'MR', 'US', 'DX', ...), '' when unknown.
    encoding: how frames map to stored values and back; None for 8/16-bit
      files whose levels are ``frames * (2**bits - 1)``.
    geometry: spacing, positions, orientation or affine, as the file had them.
    sources: files the frames came from, in frame order (a series: one per slice).
    kind: 'image' (one frame), 'volume' (slices) or 'cine' (frames in time).
    palette: whether the colours came through a palette (PALETTE COLOR).
    frame_encodings: per-frame encodings where a series' slices differ, else None.
  """
  frames: np.ndarray
  bits: int
  path: str
  file_format: str = ""
  photometric: Optional[str] = None
  inverted: bool = False
  modality: str = ""
  encoding: Optional[Encoding] = None
  geometry: Geometry = dataclasses.field(default_factory=Geometry)
  sources: tuple[str, ...] = ()
  kind: str = "image"
  palette: bool = False
  frame_encodings: Optional[tuple[Encoding, ...]] = None  # Series whose slices differ.
  # Why the modality was guessed (NIfTI has no tag); '' when the file or the user said.
  modality_guess: str = ""
  # Each frame's index in the volume it was selected from (select_frames); None: 0, 1, ...
  frame_numbers: Optional[tuple[int, ...]] = None
  # The file's display window (DICOM WindowCenter, WindowWidth: its first), in values.
  voi_window: Optional[tuple[float, float]] = None

  def voi_window_unit(self) -> Optional[tuple[float, float]]:
    """The file's display window as (low, high) in [0, 1] pixel units, or None when the
    file gives none (or one that leaves no contrast within the pixels' range)."""
    if self.voi_window is None:
      return None
    centre, width = self.voi_window
    ends = np.array([centre - width / 2.0, centre + width / 2.0])
    if self.encoding is not None:
      low, high = sorted(float(v) for v in self.encoding.values_to_unit(ends))
    else:
      top = float(levels.max_level(self.bits))
      low, high = sorted(float(np.clip(v / top, 0.0, 1.0)) for v in ends)
      if self.inverted:
        low, high = 1.0 - high, 1.0 - low
    return (low, high) if high - low > 1e-6 else None

  def encoding_of(self, index: int) -> Optional[Encoding]:
    """The encoding of frame ``index`` (slices of a series may rescale differently)."""
    return self.encoding if self.frame_encodings is None else self.frame_encodings[index]

  @classmethod
  def from_pixels(cls, pixels: np.ndarray, bits: int, path: str = "", **fields) -> "Image":
    """One grey (H, W) frame: the radiograph case."""
    pixels = np.asarray(pixels, np.float32)
    return cls(frames=pixels[None], bits=int(bits), path=path, **fields)

  @property
  def num_frames(self) -> int:
    return int(self.frames.shape[0])

  @property
  def height(self) -> int:
    return int(self.frames.shape[1])

  @property
  def width(self) -> int:
    return int(self.frames.shape[2])

  @property
  def is_colour(self) -> bool:
    """Whether the frames are RGB (the file held RGB, YBR or palette colour)."""
    return self.frames.ndim == 4

  @property
  def colour(self) -> bool:
    return self.is_colour

  @property
  def value_range(self) -> tuple[float, float]:
    """Physical values at pixel 0 and 1 (HU for CT); stored levels otherwise."""
    if self.encoding is None:
      return (0.0, float(levels.max_level(self.bits)))
    return (self.encoding.low, self.encoding.high)

  @property
  def is_ct_hu(self) -> bool:
    """CT with a rescale to HU: pixels span an HU range rather than the stored range."""
    return (self.encoding is not None and self.encoding.linear
            and means_hu(self.modality, self.encoding.rescale_type))

  @property
  def stretchable(self) -> bool:
    """Whether a model may stretch the pixels to full range when few levels are used.

    Right for a radiograph in a deeper container (12-bit data in a 16-bit PNG).
    Not for CT, whose [0, 1] is a fixed HU range, nor for the frames of a
    volume or cine: a gain picked per frame would show each slice's tissue to
    the network at a different contrast.
    """
    return self.num_frames == 1 and not self.is_ct_hu

  @functools.cached_property
  def grey_frames(self) -> np.ndarray:
    """float32 (F, H, W): the frames, colour ones as BT.601 luma rounded to a level."""
    if not self.is_colour:
      return self.frames
    return np.stack([luma(frame, self.bits) for frame in self.frames])

  @property
  def pixels(self) -> np.ndarray:
    """The one grey (H, W) frame (colour: its luma); raises for several frames."""
    if self.num_frames != 1:
      # Raised as a read error so a 2-D pipeline skips the file by name.
      raise ImageReadError(f"{self.path}: {self.kind} of {self.num_frames} frames, not one 2-D "
                           "image (use .frames)")
    return self.grey_frames[0]

  @property
  def depth_stated(self) -> bool:
    """Whether ``bits`` is the data's depth as the file states it.

    DICOM states BitsStored, and 8-bit files and TIFFs with fewer than 16
    bits per sample say what they hold. A 16-bit PNG or TIFF is a container:
    10-15-bit detector data are often stored in one with nothing saying so.
    """
    return self.file_format in ("dicom", "nifti") or self.bits < 16

  @property
  def data_bits(self) -> int:
    """The depth the image's data really has: ``bits`` where the file states it,
    else the effective depth (:func:`jaxsr.io.levels.effective_bits`)."""
    return self.bits if self.depth_stated else levels.effective_bits(self.frames, self.bits)

  def at_data_depth(self) -> "Image":
    """The same levels expressed at :attr:`data_bits` (pixels = level / (2**data_bits - 1)).

    Metrics on the result are on the data's own range: a 10-bit image in a
    16-bit PNG is scored against 1023, not 65535.
    """
    bits = self.data_bits
    if bits == self.bits:
      return self
    frames = levels.quantize(self.frames * np.float32(levels.max_level(self.bits) /
                                                      levels.max_level(bits)), bits)
    return dataclasses.replace(self, frames=frames, bits=bits)

  def frame(self, index: int) -> "Image":
    """Frame ``index`` as a one-frame image (its own position, source and encoding kept)."""
    return self.select_frames([index])

  def select_frames(self, indices: Sequence[int]) -> "Image":
    """The frames ``indices`` (in that order) as an image of their own, positions,
    sources and per-frame encodings cut alike."""
    indices = list(indices)
    geometry = self.geometry
    if geometry.positions is not None:
      geometry = dataclasses.replace(geometry, positions=geometry.positions[indices])
    sources = (tuple(self.sources[i] for i in indices)
               if len(self.sources) == self.num_frames else self.sources)
    encodings = (None if self.frame_encodings is None
                 else tuple(self.frame_encodings[i] for i in indices))
    encoding = self.encoding if encodings is None else encodings[0]
    numbers = tuple(self.frame_number(i) for i in indices)
    return dataclasses.replace(self, frames=self.frames[indices], geometry=geometry,
                               sources=sources, frame_encodings=encodings, encoding=encoding,
                               kind=self.kind if len(indices) > 1 else "image",
                               frame_numbers=numbers)

  def frame_number(self, index: int) -> int:
    """Frame ``index``'s number in the volume it came from (slice numbers in reports)."""
    return index if self.frame_numbers is None else self.frame_numbers[index]

  def describe(self) -> str:
    """'256x256x108 CT volume, 12-bit' and the like, for logs."""
    frames = f"x{self.num_frames}" if self.num_frames > 1 else ""
    what = {"volume": "volume", "cine": "cine"}.get(self.kind, "image")
    colour = " colour" if self.is_colour else ""
    modality = f" {self.modality}" if self.modality else ""
    guess = f" ({self.modality_guess})" if self.modality_guess else ""
    return (f"{self.width}x{self.height}{frames}{modality}{colour} {what}, "
            f"{self.bits}-bit{guess}")


def Radiograph(pixels: np.ndarray, bits: int, path: str = "", **fields) -> Image:  # pylint: disable=invalid-name
  """A one-frame grey :class:`Image` (the name radiograph code has always used)."""
  return Image.from_pixels(pixels, bits, path, **fields)


def luma(rgb: np.ndarray, bits: int) -> np.ndarray:
  """BT.601 luma of [0, 1] RGB levels (0.299 R + 0.587 G + 0.114 B), rounded half up
  to a level exactly as integer data would be."""
  top = levels.max_level(bits)
  ints = np.rint(np.asarray(rgb, np.float64) * top).astype(np.int64)
  grey = (299 * ints[..., 0] + 587 * ints[..., 1] + 114 * ints[..., 2] + 500) // 1000
  return (grey / top).astype(np.float32)


# Full-range BT.601 (JPEG/JFIF, DICOM YBR_FULL): Y in [0, 1], chroma centred on 0.5.
_YCC = np.array([[0.299, 0.587, 0.114],
                 [-0.168736, -0.331264, 0.5],
                 [0.5, -0.418688, -0.081312]])
_YCC_INVERSE = np.linalg.inv(_YCC)


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
  """(..., 3) RGB in [0, 1] -> (..., 3) Y, Cb, Cr in [0, 1] (chroma centred on 0.5)."""
  ycc = np.asarray(rgb, np.float32) @ _YCC.T.astype(np.float32)
  ycc[..., 1:] += np.float32(0.5)
  return ycc


def ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
  """The inverse of :func:`rgb_to_ycbcr`, clipped to [0, 1]."""
  ycc = np.array(ycc, np.float32)
  ycc[..., 1:] -= np.float32(0.5)
  return np.clip(ycc @ _YCC_INVERSE.T.astype(np.float32), 0.0, 1.0)
