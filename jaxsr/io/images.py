"""Reads radiographs (PNG, TIFF, JPEG, DICOM) as grey float32 in [0, 1].

Every reader returns the same thing, a `Radiograph` whose `pixels` are the
stored grey levels divided by ``2**bits - 1``. Keeping `bits` beside the
pixels lets evaluation recover the integer levels exactly (`to_levels`), so
metrics such as PSNR are computed on the data range the image really has.

The file format is recognised from the file's content, not its extension: a
JPEG named ``.png`` is read as a JPEG, and a text file named ``.png`` is
reported as not an image. Every failure is an `ImageReadError` whose message
is one line starting with the path, so a data pipeline can log it and move on.
"""
import dataclasses
import io
import os
import pathlib
from typing import NamedTuple

import numpy as np
from PIL import Image
import pydicom
from pydicom import uid as dicom_uid
from pydicom.dataset import FileMetaDataset
from pydicom.pixels import apply_modality_lut
import tifffile

from jaxsr import errors
from jaxsr.io import levels

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".png", ".tif", ".tiff", ".jpg", ".jpeg", ".dcm", ".dicom")

# Deeper data would not survive the uint16 storage used by the data pipeline.
MAX_BITS = 16

_DICOM_EXTENSIONS = (".dcm", ".dicom")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


class ImageReadError(errors.UserError):
  """An image that cannot be read; str(err) is one line: '<path>: <problem>'."""

  def __init__(self, message: str):
    # Decoder messages often span lines; logs need one line per bad file.
    super().__init__(" ".join(str(message).split()))


class ImageNotFoundError(ImageReadError, FileNotFoundError):
  """A missing file or folder; also a FileNotFoundError for `except` clauses."""


@dataclasses.dataclass(frozen=True, eq=False)
class Radiograph:
  """One grey radiograph.

  Attributes:
    pixels: float32 (H, W) in [0, 1]: stored level / (2**bits - 1), with bright
      meaning dense (MONOCHROME1 and min-is-white data are inverted).
    bits: bit depth of the stored data: 8 for 8-bit PNG/JPEG, 16 for 16-bit
      PNG/TIFF, the BitsPerSample of a TIFF, BitsStored for DICOM.
    path: the path as given to `read_image`.
    file_format: 'png', 'jpeg', 'tiff' or 'dicom' (from the content).
    photometric: colour model as the file states it, in that format's terms
      (DICOM PhotometricInterpretation, PIL mode, TIFF photometric name).
    inverted: whether the stored levels were flipped (MONOCHROME1, MINISWHITE).
  """
  pixels: np.ndarray
  bits: int
  path: str
  file_format: str = ""
  photometric: str | None = None
  inverted: bool = False

  @property
  def colour(self) -> bool:
    """Whether the file held colour (RGB, YBR, palette, ...), read here as grey (luma)."""
    photometric = (self.photometric or "").upper()
    if self.file_format == "dicom":
      return photometric not in ("MONOCHROME1", "MONOCHROME2")
    if self.file_format == "tiff":
      return photometric not in ("MINISBLACK", "MINISWHITE", "1", "L", "I;16", "I;16B", "I")
    return photometric not in ("1", "L", "LA", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N")

  @property
  def depth_stated(self) -> bool:
    """Whether ``bits`` is the data's depth as the file states it.

    DICOM states BitsStored, and 8-bit files and TIFFs with fewer than 16
    bits per sample say what they hold. A 16-bit PNG or TIFF is a container:
    10-15-bit detector data are often stored in one with nothing saying so.
    """
    return self.file_format == "dicom" or self.bits < 16

  @property
  def data_bits(self) -> int:
    """The depth the image's data really has: ``bits`` where the file states it,
    else the effective depth (:func:`jaxsr.io.levels.effective_bits`)."""
    return self.bits if self.depth_stated else levels.effective_bits(self.pixels, self.bits)

  def at_data_depth(self) -> "Radiograph":
    """The same levels expressed at :attr:`data_bits` (pixels = level / (2**data_bits - 1)).

    Metrics on the result are on the data's own range: a 10-bit image in a
    16-bit PNG is scored against 1023, not 65535.
    """
    bits = self.data_bits
    if bits == self.bits:
      return self
    pixels = levels.quantize(self.pixels * np.float32(levels.max_level(self.bits) /
                                                      levels.max_level(bits)), bits)
    return dataclasses.replace(self, pixels=pixels, bits=bits)


def read_image(path: str | os.PathLike) -> Radiograph:
  """Reads one radiograph; raises ImageReadError (one line) for any bad input.

  Colour images become grey by ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B,
  rounded to the nearest level, alpha dropped); palette images go through
  their palette. Floating-point TIFFs are rejected: they carry no bit depth, so
  their levels could not be recovered; store integer levels instead. Data
  deeper than 16 bits, multi-page TIFFs and 16-bit colour PNGs (which PIL
  would silently reduce to 8 bits) are rejected as well.

  DICOM: MONOCHROME1 is inverted; signed data are shifted by
  ``2**(BitsStored-1)``; without a modality transform the result is
  ``level / (2**BitsStored - 1)``. With a non-identity modality LUT or
  rescale, the LUT's output over the whole stored range
  ``[min_stored, max_stored]`` is mapped linearly onto [0, 1], so pixels stay
  comparable between files with the same stored depth. For a linear rescale
  with a positive slope this gives the same pixels as no rescale; a negative
  slope flips them; a Modality LUT Sequence reshapes them. `bits` stays
  BitsStored. The file is only ever read.
  """
  name = os.fsdecode(path)
  data = _read_bytes(name)
  try:
    decoded = _decode(data, pathlib.Path(name).suffix.lower())
  except _Problem as problem:
    raise ImageReadError(f"{name}: {problem}") from problem.__cause__
  except MemoryError:
    raise
  except Exception as error:  # pylint: disable=broad-except
    # Decoders raise many exception types; the caller needs only one.
    raise ImageReadError(
        f"{name}: cannot decode image ({type(error).__name__}: {error})"
    ) from error
  return Radiograph(pixels=decoded.pixels, bits=decoded.bits, path=name,
                    file_format=decoded.file_format,
                    photometric=decoded.photometric,
                    inverted=decoded.inverted)


def list_images(folder: str | os.PathLike,
                recursive: bool = True) -> list[pathlib.Path]:
  """Sorted image files under `folder`, by extension or a DICOM preamble.

  A file counts when its extension (any case) is in IMAGE_EXTENSIONS, or when
  it has another extension or none and carries the 'DICM' marker at byte 128
  (DICOM files are often saved without an extension). Hidden files and
  folders (names starting with '.', e.g. macOS '._x.png' resource forks) and
  DICOMDIR index files are skipped. Symbolic links to folders are followed,
  each real folder once. Paths are `folder` joined with the relative path.
  """
  name = os.fsdecode(folder)
  root = pathlib.Path(name)
  if not root.exists():
    raise ImageNotFoundError(f"{name}: no such folder")
  if not root.is_dir():
    raise ImageReadError(f"{name}: not a folder")
  found = sorted(path for path in _walk_files(root, recursive)
                 if _is_image_file(path))
  if not found:
    where = "in it or its subfolders" if recursive else "directly in it"
    raise ImageReadError(
        f"{name}: no images found (no {'/'.join(IMAGE_EXTENSIONS)} files or "
        f"DICOM files {where})")
  return found


class _Problem(Exception):
  """What is wrong with a file's content; read_image prefixes the path."""


class _Decoded(NamedTuple):
  pixels: np.ndarray
  bits: int
  file_format: str
  photometric: str | None
  inverted: bool = False


def _read_bytes(name: str) -> bytes:
  try:
    data = pathlib.Path(name).read_bytes()
  except FileNotFoundError:
    if os.path.islink(name):
      raise ImageNotFoundError(
          f"{name}: broken symbolic link (to {os.readlink(name)})") from None
    raise ImageNotFoundError(f"{name}: no such file") from None
  except IsADirectoryError:
    raise ImageReadError(f"{name}: is a folder, not an image file") from None
  except OSError as error:
    raise ImageReadError(
        f"{name}: cannot read file ({error.strerror or error})") from None
  if not data:
    raise ImageReadError(f"{name}: empty file (0 bytes)")
  return data


def _decode(data: bytes, suffix: str) -> _Decoded:
  """Dispatches on the file's magic bytes; the extension only breaks ties."""
  if data.startswith(_PNG_SIGNATURE):
    return _read_png(data)
  if data.startswith(b"\xff\xd8\xff"):
    return _read_jpeg(data)
  if data[128:132] == b"DICM":
    # Before TIFF: a DICOM preamble may itself be a TIFF header (dual files).
    return _read_dicom(data, has_preamble=True)
  if data[:4] in _TIFF_SIGNATURES:
    return _read_tiff(data)
  if suffix in _DICOM_EXTENSIONS or not suffix:
    # Old ACR-NEMA style files are a bare dataset with no preamble.
    return _read_dicom(data, has_preamble=False)
  raise _Problem(
      f"not a PNG, TIFF, JPEG or DICOM file (starts with {data[:8]!r})")


def _unit_interval(levels: np.ndarray, bits: int, *, offset: int = 0,
                   invert: bool = False) -> np.ndarray:
  """float32 (levels + offset) / (2**bits - 1), flipped if asked, in [0, 1].

  One float32 copy, then in-place exact integer arithmetic (levels < 2**24)
  and one correctly rounded division, so equal levels give equal pixels
  whatever the file format.
  """
  max_level = 2**bits - 1
  pixels = np.asarray(levels).astype(np.float32)
  if offset:
    pixels += offset
  if invert:
    np.subtract(max_level, pixels, out=pixels)
  pixels /= max_level
  return np.clip(pixels, 0.0, 1.0, out=pixels)


def _bt601_luma(rgb: np.ndarray) -> np.ndarray:
  """Integer luma 0.299 R + 0.587 G + 0.114 B, rounded half up, exactly."""
  red, green, blue = (rgb[..., i].astype(np.uint32) for i in range(3))
  return (299 * red + 587 * green + 114 * blue + 500) // 1000


def _check_bits(bits: int) -> int:
  if not 1 <= bits <= MAX_BITS:
    raise _Problem(f"{bits} bits per sample is not supported (1 to {MAX_BITS})")
  return bits


# PIL-decoded formats (PNG, JPEG, and TIFFs that tifffile cannot decompress).


def _open_with_pil(data: bytes, pil_format: str) -> Image.Image:
  try:
    image = Image.open(io.BytesIO(data), formats=[pil_format])
    image.load()
  except Exception as error:  # pylint: disable=broad-except
    raise _Problem(
        f"truncated or corrupt {pil_format} file (cannot decode: {error})"
    ) from error
  return image


def _pil_levels(image: Image.Image) -> tuple[np.ndarray, int]:
  """(grey integer levels, bits) of a decoded PIL image of any common mode."""
  mode = image.mode
  if mode == "1":
    return np.asarray(image, dtype=np.uint8), 1
  if mode in ("L", "LA", "La"):
    levels = np.asarray(image)
    return (levels if levels.ndim == 2 else levels[..., 0]), 8
  if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
    return np.asarray(image), 16
  if mode == "I":
    levels = np.asarray(image)
    if levels.size and (levels.min() < 0 or levels.max() > 65535):
      raise _Problem("32-bit integer image with values outside 0..65535")
    return levels, 16
  if mode in ("P", "PA"):
    indices = np.asarray(image)
    indices = indices if indices.ndim == 2 else indices[..., 0]
    palette = np.zeros((256, 3), np.uint8)
    entries = np.asarray(image.getpalette("RGB") or [], np.uint8).reshape(-1, 3)
    palette[:len(entries)] = entries[:256]
    return _bt601_luma(palette[indices]), 8
  if mode in ("RGB", "RGBA", "RGBX"):
    return _bt601_luma(np.asarray(image)), 8
  if mode in ("RGBa", "CMYK", "YCbCr", "LAB", "HSV"):
    return _bt601_luma(np.asarray(image.convert("RGB"))), 8
  raise _Problem(f"image mode {mode!r} is not supported (floating point?)")


def _read_png(data: bytes) -> _Decoded:
  if len(data) < 33 or data[12:16] != b"IHDR":
    raise _Problem("truncated or corrupt PNG file (no IHDR header)")
  bit_depth, colour_type = data[24], data[25]
  if bit_depth == 16 and colour_type in (2, 4, 6):
    raise _Problem("16-bit colour/alpha PNG is not supported (PIL reduces it "
                   "to 8 bits); save it as 16-bit greyscale")
  if data.rfind(b"IEND") < 0:
    # Also catches truncation when PIL is set to load truncated images.
    raise _Problem("truncated PNG file (no IEND chunk, cannot decode)")
  with _open_with_pil(data, "PNG") as image:
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
      raise _Problem(f"animated PNG with {frames} frames is not supported")
    levels, bits = _pil_levels(image)
    mode = image.mode
  pixels = _unit_interval(levels, bits)
  if colour_type == 0 and bit_depth < 8:
    # PIL scales 2- and 4-bit grey to 0..255: same [0, 1] values, fewer levels.
    bits = bit_depth
  return _Decoded(pixels, bits, "png", mode)


def _read_jpeg(data: bytes) -> _Decoded:
  with _open_with_pil(data, "JPEG") as image:
    levels, bits = _pil_levels(image)
    mode = image.mode
  return _Decoded(_unit_interval(levels, bits), bits, "jpeg", mode)


# TIFF.


def _read_tiff(data: bytes) -> _Decoded:
  try:
    tiff = tifffile.TiffFile(io.BytesIO(data))
  except Exception as error:  # pylint: disable=broad-except
    raise _Problem(f"corrupt TIFF file ({error})") from error
  with tiff:
    if not tiff.series:
      raise _Problem("TIFF file has no images")
    series = tiff.series[0]
    if len(series.pages) > 1:
      raise _Problem(
          f"multi-page TIFF ({len(series.pages)} pages) is not supported")
    page = series.keyframe
    photometric = tifffile.PHOTOMETRIC(page.photometric)
    if page.sampleformat == tifffile.SAMPLEFORMAT.IEEEFP:
      raise _Problem("floating-point TIFF is not supported (its bit depth is "
                     "unknown); store integer levels, e.g. 16-bit")
    if page.sampleformat not in (tifffile.SAMPLEFORMAT.UINT,
                                 tifffile.SAMPLEFORMAT.INT):
      raise _Problem(
          f"TIFF sample format {page.sampleformat!r} is not supported")
    bits = _check_bits(int(page.bitspersample))
    try:
      stored = page.asarray()
    except Exception as error:  # pylint: disable=broad-except
      # Without the optional imagecodecs package tifffile cannot undo LZW,
      # PackBits or JPEG compression; PIL's libtiff can.
      return _read_tiff_with_pil(data, photometric, page.compression, error)
    colormap = page.colormap
    axes = page.axes
    signed = page.sampleformat == tifffile.SAMPLEFORMAT.INT
  if "S" in axes:
    stored = np.moveaxis(stored, axes.index("S"), -1)
  spatial_ndim = stored.ndim - ("S" in axes)
  while spatial_ndim > 2 and stored.shape[0] == 1:
    stored, spatial_ndim = stored[0], spatial_ndim - 1
  if spatial_ndim != 2:
    raise _Problem(f"TIFF image with axes {axes} is not a single 2-D image")
  name = photometric.name.lower()
  offset = 2**(bits - 1) if signed else 0
  if photometric in (tifffile.PHOTOMETRIC.MINISBLACK,
                     tifffile.PHOTOMETRIC.MINISWHITE):
    grey = stored[..., 0] if stored.ndim == 3 else stored
    invert = photometric == tifffile.PHOTOMETRIC.MINISWHITE
    return _Decoded(_unit_interval(grey, bits, offset=offset, invert=invert),
                    bits, "tiff", name, invert)
  if signed:
    raise _Problem(f"signed {name} TIFF is not supported")
  if photometric == tifffile.PHOTOMETRIC.RGB and stored.ndim == 3:
    return _Decoded(_unit_interval(_bt601_luma(stored), bits), bits, "tiff",
                    name)
  if photometric == tifffile.PHOTOMETRIC.PALETTE and colormap is not None:
    grey_index = stored[..., 0] if stored.ndim == 3 else stored
    rgb = np.moveaxis(colormap, 0, -1)[grey_index]
    # TIFF colour maps are 16-bit whatever the index depth.
    return _Decoded(_unit_interval(_bt601_luma(rgb), 16), 16, "tiff", name)
  raise _Problem(f"TIFF photometric {name} is not supported")


def _read_tiff_with_pil(data: bytes, photometric, compression,
                        tifffile_error: Exception) -> _Decoded:
  what = f"TIFF with {getattr(compression, 'name', compression)} compression"
  if photometric == tifffile.PHOTOMETRIC.MINISWHITE:
    # PIL inverts some min-is-white depths and not others: do not guess.
    raise _Problem(f"cannot decode min-is-white {what} ({tifffile_error})")
  try:
    image = _open_with_pil(data, "TIFF")
  except _Problem as problem:
    raise _Problem(
        f"cannot decode {what} ({tifffile_error}; {problem})") from None
  with image:
    levels, bits = _pil_levels(image)
    mode = image.mode
  return _Decoded(_unit_interval(levels, bits), bits, "tiff", mode)


# DICOM.


def _read_dicom(data: bytes, has_preamble: bool) -> _Decoded:
  try:
    ds = pydicom.dcmread(io.BytesIO(data), force=not has_preamble)
  except Exception as error:  # pylint: disable=broad-except
    raise _Problem(f"not a readable DICOM file ({error})") from error
  if not has_preamble:
    if "Rows" not in ds and "PixelData" not in ds:
      raise _Problem("not a DICOM file (no 'DICM' marker at byte 128 and no "
                     "image attributes) nor a PNG, TIFF or JPEG file")
    _set_transfer_syntax_from_encoding(ds)
  if "PixelData" not in ds:
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
      raise _Problem("DICOM float pixel data is not supported")
    raise _Problem("DICOM file has no PixelData (not an image)")
  frames = int(ds.get("NumberOfFrames") or 1)
  if frames > 1:
    raise _Problem(f"multi-frame DICOM ({frames} frames) is not supported")
  photometric = str(ds.get("PhotometricInterpretation") or "MONOCHROME2")
  photometric = photometric.strip().upper()
  samples = int(ds.get("SamplesPerPixel") or 1)
  is_grey = samples == 1 and photometric in ("MONOCHROME1", "MONOCHROME2")
  is_colour = samples == 3 and (photometric == "RGB"
                                or photometric.startswith("YBR"))
  if not (is_grey or is_colour):
    raise _Problem(f"DICOM {photometric} with {samples} samples per pixel is "
                   "not supported (only MONOCHROME1/2, RGB and YBR)")
  if "BitsStored" not in ds:
    raise _Problem("DICOM file has no BitsStored")
  bits = _check_bits(int(ds.BitsStored))
  stored = _dicom_pixel_array(ds)
  if stored.ndim != (2 if is_grey else 3):
    raise _Problem(f"DICOM pixel data decodes to shape {stored.shape}, "
                   f"expected one {'grey' if is_grey else 'colour'} frame")
  if is_colour:
    # pydicom has already converted YBR to RGB.
    return _Decoded(_unit_interval(_bt601_luma(stored), bits), bits, "dicom",
                    photometric)
  invert = photometric == "MONOCHROME1"
  signed = int(ds.get("PixelRepresentation") or 0) == 1
  offset = 2**(bits - 1) if signed else 0
  table = _modality_table(ds, bits, signed, invert)
  if table is None:
    pixels = _unit_interval(stored, bits, offset=offset, invert=invert)
  else:
    # One float32 lookup per level instead of float64 copies of the image.
    index = stored.astype(np.int32) + offset if signed else stored
    pixels = np.take(table, index, mode="clip")
  return _Decoded(pixels, bits, "dicom", photometric, invert)


def _set_transfer_syntax_from_encoding(ds: pydicom.Dataset):
  """Bare datasets have no file meta; pydicom needs a syntax to decode them."""
  if getattr(ds, "file_meta", None) is None:
    ds.file_meta = FileMetaDataset()
  if "TransferSyntaxUID" in ds.file_meta:
    return
  implicit_vr, little_endian = ds.original_encoding
  if implicit_vr:
    syntax = dicom_uid.ImplicitVRLittleEndian
  elif little_endian:
    syntax = dicom_uid.ExplicitVRLittleEndian
  else:
    syntax = dicom_uid.ExplicitVRBigEndian
  ds.file_meta.TransferSyntaxUID = syntax


def _dicom_pixel_array(ds: pydicom.Dataset) -> np.ndarray:
  syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
  described = f"{syntax.name} ({syntax})" if syntax else "unknown"
  try:
    return ds.pixel_array
  except NotImplementedError as error:
    raise _Problem(f"no decoder available for DICOM transfer syntax "
                   f"{described}: {error}") from error
  except Exception as error:  # pylint: disable=broad-except
    raise _Problem(f"cannot decode DICOM pixel data, transfer syntax "
                   f"{described}: {error}") from error


def _modality_table(ds: pydicom.Dataset, bits: int, signed: bool,
                    invert: bool) -> np.ndarray | None:
  """float32 pixel value for each stored level, or None for an identity LUT.

  The modality LUT (pydicom's, so rescale needs both slope and intercept) is
  evaluated on every level of the stored range and its output range becomes
  [0, 1]; MONOCHROME1 is flipped afterwards, as the standard orders them.
  """
  has_lut = bool(ds.get("ModalityLUTSequence"))
  has_rescale = "RescaleSlope" in ds and "RescaleIntercept" in ds
  if not (has_lut or has_rescale):
    return None
  lowest = -2**(bits - 1) if signed else 0
  levels = np.arange(lowest, lowest + 2**bits, dtype=np.int32)
  try:
    outputs = np.asarray(apply_modality_lut(levels, ds), dtype=np.float64)
  except Exception as error:  # pylint: disable=broad-except
    raise _Problem(f"invalid DICOM modality LUT/rescale ({error})") from error
  if np.array_equal(outputs, levels):
    return None
  low, high = float(outputs.min()), float(outputs.max())
  if not (np.isfinite(low) and np.isfinite(high)) or high <= low:
    raise _Problem("DICOM modality LUT/rescale maps every stored level to "
                   f"{low}: no image contrast left")
  unit = (high - outputs) if invert else (outputs - low)
  return (unit / (high - low)).astype(np.float32)


# Folder listing.


def _walk_files(root: pathlib.Path, recursive: bool):
  if not recursive:
    yield from (path for path in root.iterdir()
                if not path.name.startswith(".") and path.is_file())
    return
  seen_folders = set()
  for folder, subfolders, files in os.walk(root, followlinks=True):
    real = os.path.realpath(folder)
    if real in seen_folders:
      subfolders[:] = []
      continue
    seen_folders.add(real)
    subfolders[:] = [name for name in subfolders if not name.startswith(".")]
    for file_name in files:
      path = pathlib.Path(folder, file_name)
      # A broken symbolic link is listed too, so the caller reports it.
      if not file_name.startswith(".") and (path.is_file() or path.is_symlink()):
        yield path


def _is_image_file(path: pathlib.Path) -> bool:
  if path.name.upper() == "DICOMDIR":
    return False
  if path.suffix.lower() in IMAGE_EXTENSIONS:
    return True
  try:
    with open(path, "rb") as file:
      return file.read(132)[128:132] == b"DICM"
  except OSError:
    return False
