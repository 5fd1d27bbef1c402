"""Reads medical images (PNG, TIFF, JPEG, DICOM, NIfTI) as :class:`jaxsr.io.image.Image`.

Every reader returns the same thing: frames in [0, 1] with the encoding
that maps them back to the stored values and the geometry the file gave.
For 8/16-bit files and DICOM without a rescale, pixels are the stored
levels divided by ``2**bits - 1``; keeping `bits` beside the pixels lets
evaluation recover the integer levels exactly (`to_levels`), so metrics
such as PSNR are computed on the data range the image really has. CT with
a rescale to HU is mapped from a configured HU range instead (see
:mod:`jaxsr.io.image`).

The file format is recognised from the file's content, not its extension: a
JPEG named ``.png`` is read as a JPEG, and a text file named ``.png`` is
reported as not an image. Every failure is an `ImageReadError` whose message
is one line starting with the path, so a data pipeline can log it and move on.
"""
import argparse
import io
import os
import pathlib

import numpy as np
from PIL import Image as PILImage
import pydicom
from pydicom import uid as dicom_uid
from pydicom.dataset import FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut
import tifffile

from jaxsr.io import compression
from jaxsr.io import image as image_lib
from jaxsr.io import levels
from jaxsr.io import nifti

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".png", ".tif", ".tiff", ".jpg", ".jpeg", ".dcm", ".dicom") + nifti.EXTENSIONS

# Deeper data would not survive the uint16 storage used by the data pipeline.
MAX_BITS = 16

_DICOM_EXTENSIONS = (".dcm", ".dicom")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


ImageReadError = image_lib.ImageReadError
ImageNotFoundError = image_lib.ImageNotFoundError
Image = image_lib.Image
Radiograph = image_lib.Radiograph


def read_image(path: str | os.PathLike, *,
               hu_range: tuple[float, float] = image_lib.DEFAULT_HU_RANGE,
               modality: str | None = None, slice_axis: int | None = None) -> Image:
  """Reads one image file; raises ImageReadError (one line) for any bad input.

  Colour images keep their colour (RGB frames; palette images go through
  their palette, YBR is converted to RGB, alpha is dropped); ``.pixels``
  gives their BT.601 luma (0.299 R + 0.587 G + 0.114 B, rounded to the
  nearest level), what grey training and evaluation see. Floating-point
  TIFFs are rejected: they carry no bit depth, so their levels could not be
  recovered; store integer levels instead. Data deeper than 16 bits,
  multi-page TIFFs and 16-bit colour PNGs (which PIL would silently reduce
  to 8 bits) are rejected as well.

  DICOM: single- and multi-frame, including the Enhanced CT/MR functional
  groups (pixel measures, plane position and orientation, pixel value
  transformation). MONOCHROME1 is inverted; signed data are shifted by
  ``2**(BitsStored-1)``; without a modality transform the result is
  ``level / (2**BitsStored - 1)``. CT with a rescale to HU is mapped from
  ``hu_range`` onto [0, 1]. Otherwise, with a non-identity modality LUT or
  rescale, the LUT's output over the whole stored range is mapped linearly
  onto [0, 1], so pixels stay comparable between files with the same stored
  depth (a positive linear rescale gives the same pixels as none). `bits`
  stays BitsStored.

  NIfTI (``.nii``, ``.nii.gz``): see :func:`jaxsr.io.nifti.read`; ``modality``
  and ``slice_axis`` apply to NIfTI only. The file is only ever read.
  """
  name = os.fsdecode(path)
  if nifti.is_nifti(name):
    return nifti.read(name, hu_range=hu_range, modality=modality, slice_axis=slice_axis)
  data = _read_bytes(name)
  try:
    fields = _decode(data, pathlib.Path(name).suffix.lower(), tuple(hu_range))
  except _Problem as problem:
    raise ImageReadError(f"{name}: {problem}") from problem.__cause__
  except MemoryError:
    raise
  except Exception as error:  # pylint: disable=broad-except
    # Decoders raise many exception types; the caller needs only one.
    raise ImageReadError(
        f"{name}: cannot decode image ({type(error).__name__}: {error})"
    ) from error
  return Image(path=name, sources=(name,), **fields)


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


def add_image_arguments(parser: argparse.ArgumentParser) -> None:
  """The command-line flags for :func:`read_image`'s options (``jaxsr upscale``, ``evaluate``)."""
  low, high = image_lib.DEFAULT_HU_RANGE
  parser.add_argument("--hu_range", default=f"{low:g},{high:g}",
                      help="CT: the HU range the network sees as [0, 1], LOW,HIGH")
  parser.add_argument("--modality", default=None, choices=("ct", "mr"),
                      help="NIfTI only (it has no modality tag): ct maps --hu_range; default: "
                      "CT when the minimum is near -1024 HU")
  parser.add_argument("--slice_axis", type=int, default=None, choices=(0, 1, 2),
                      help="NIfTI: the axis slices are taken along (in-plane: the other two); "
                      "default: the axis with the largest voxel spacing, ties to the last")


def check_image_arguments(parser: argparse.ArgumentParser, args) -> None:
  """Parses --hu_range into a (low, high) pair of floats."""
  try:
    low, high = (float(v) for v in str(args.hu_range).split(","))
  except ValueError:
    parser.error(f"--hu_range={args.hu_range}: expected LOW,HIGH in HU, e.g. -1024,3071")
  if not high > low:
    parser.error(f"--hu_range={args.hu_range}: HIGH must be above LOW")
  args.hu_range = (low, high)


class _Problem(Exception):
  """What is wrong with a file's content; read_image prefixes the path."""


def _fields(stored: np.ndarray, bits: int, file_format: str, photometric: str | None, *,
            signed: bool = False, invert: bool = False, dtype=None, **extra) -> dict:
  """Image fields for integer levels ``stored`` ((F, H, W) grey or (F, H, W, 3) RGB) at
  ``bits``, mapped by their stored range."""
  encoding = image_lib.Encoding.for_values(
      bits, signed, invert=invert, dtype=str(np.dtype(dtype or stored.dtype)))
  return dict(frames=encoding.to_unit(stored), bits=bits, file_format=file_format,
              photometric=photometric, inverted=invert, encoding=encoding, **extra)


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


def _decode(data: bytes, suffix: str, hu_range) -> dict:
  """Dispatches on the file's magic bytes; the extension only breaks ties."""
  if data.startswith(_PNG_SIGNATURE):
    return _read_png(data)
  if data.startswith(b"\xff\xd8\xff"):
    return _read_jpeg(data)
  if data[128:132] == b"DICM":
    # Before TIFF: a DICOM preamble may itself be a TIFF header (dual files).
    return _read_dicom(data, has_preamble=True, hu_range=hu_range)
  if data[:4] in _TIFF_SIGNATURES:
    return _read_tiff(data)
  if suffix in _DICOM_EXTENSIONS or not suffix:
    # Old ACR-NEMA style files are a bare dataset with no preamble.
    return _read_dicom(data, has_preamble=False, hu_range=hu_range)
  raise _Problem(
      f"not a PNG, TIFF, JPEG or DICOM file (starts with {data[:8]!r})")


def _check_bits(bits: int) -> int:
  if not 1 <= bits <= MAX_BITS:
    raise _Problem(f"{bits} bits per sample is not supported (1 to {MAX_BITS})")
  return bits


# PIL-decoded formats (PNG, JPEG, and TIFFs that tifffile cannot decompress).


def _open_with_pil(data: bytes, pil_format: str) -> PILImage.Image:
  try:
    image = PILImage.open(io.BytesIO(data), formats=[pil_format])
    image.load()
  except Exception as error:  # pylint: disable=broad-except
    raise _Problem(
        f"truncated or corrupt {pil_format} file (cannot decode: {error})"
    ) from error
  return image


def _pil_levels(image: PILImage.Image) -> tuple[np.ndarray, int]:
  """(integer levels, bits) of a decoded PIL image: (H, W) grey or (H, W, 3) RGB."""
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
    return palette[indices], 8
  if mode in ("RGB", "RGBA", "RGBX"):
    return np.ascontiguousarray(np.asarray(image)[..., :3]), 8
  if mode in ("RGBa", "CMYK", "YCbCr", "LAB", "HSV"):
    return np.asarray(image.convert("RGB")), 8
  raise _Problem(f"image mode {mode!r} is not supported (floating point?)")


def _read_png(data: bytes) -> dict:
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
  fields = _fields(levels[None], bits, "png", mode)
  if colour_type == 0 and bit_depth < 8:
    # PIL scales 2- and 4-bit grey to 0..255: same [0, 1] values, fewer levels.
    fields["bits"] = bit_depth
  return fields


def _read_jpeg(data: bytes) -> dict:
  with _open_with_pil(data, "JPEG") as image:
    levels, bits = _pil_levels(image)
    mode = image.mode
  return _fields(levels[None], bits, "jpeg", mode)


# TIFF.


def _read_tiff(data: bytes) -> dict:
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
  if photometric in (tifffile.PHOTOMETRIC.MINISBLACK,
                     tifffile.PHOTOMETRIC.MINISWHITE):
    grey = stored[..., 0] if stored.ndim == 3 else stored
    invert = photometric == tifffile.PHOTOMETRIC.MINISWHITE
    return _fields(grey[None], bits, "tiff", name, signed=signed, invert=invert)
  if signed:
    raise _Problem(f"signed {name} TIFF is not supported")
  if photometric == tifffile.PHOTOMETRIC.RGB and stored.ndim == 3:
    return _fields(np.ascontiguousarray(stored[None, ..., :3]), bits, "tiff", name)
  if photometric == tifffile.PHOTOMETRIC.PALETTE and colormap is not None:
    grey_index = stored[..., 0] if stored.ndim == 3 else stored
    rgb = np.moveaxis(colormap, 0, -1)[grey_index]
    # TIFF colour maps are 16-bit whatever the index depth.
    return _fields(rgb[None], 16, "tiff", name, dtype=np.uint16)
  raise _Problem(f"TIFF photometric {name} is not supported")


def _read_tiff_with_pil(data: bytes, photometric, compression,
                        tifffile_error: Exception) -> dict:
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
  return _fields(levels[None], bits, "tiff", mode)


# DICOM.

_GREY = ("MONOCHROME1", "MONOCHROME2")
# Modalities whose multi-frame images are frames in time rather than slices.
_CINE_MODALITIES = ("US", "XA", "RF", "ES", "IVUS", "XC", "GM", "SM")


def _read_dicom(data: bytes, has_preamble: bool, hu_range) -> dict:
  try:
    ds = pydicom.dcmread(io.BytesIO(data), force=not has_preamble)
  except Exception as error:  # pylint: disable=broad-except
    raise _Problem(f"not a readable DICOM file ({error})") from error
  if not has_preamble:
    if "Rows" not in ds and "PixelData" not in ds:
      raise _Problem("not a DICOM file (no 'DICM' marker at byte 128 and no "
                     "image attributes) nor a PNG, TIFF or JPEG file")
    _set_transfer_syntax_from_encoding(ds)
  return dicom_fields(ds, hu_range)


def dicom_fields(ds: pydicom.Dataset, hu_range=image_lib.DEFAULT_HU_RANGE) -> dict:
  """Image fields (all but path) of a decoded-or-not DICOM dataset; raises _Problem."""
  if "PixelData" not in ds:
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
      raise _Problem("DICOM float pixel data is not supported")
    raise _Problem("DICOM file has no PixelData (not an image)")
  count = int(ds.get("NumberOfFrames") or 1)
  photometric = str(ds.get("PhotometricInterpretation") or "MONOCHROME2").strip().upper()
  samples = int(ds.get("SamplesPerPixel") or 1)
  is_grey = samples == 1 and photometric in _GREY
  is_palette = samples == 1 and photometric == "PALETTE COLOR"
  is_colour = samples == 3 and (photometric == "RGB" or photometric.startswith("YBR"))
  if not (is_grey or is_palette or is_colour):
    raise _Problem(f"DICOM {photometric} with {samples} samples per pixel is "
                   "not supported (only MONOCHROME1/2, PALETTE COLOR, RGB and YBR)")
  if "BitsStored" not in ds:
    raise _Problem("DICOM file has no BitsStored")
  bits = _check_bits(int(ds.BitsStored))
  stored = _dicom_pixel_array(ds)
  expected = (2 if samples == 1 else 3) + (count > 1)
  if stored.ndim != expected:
    raise _Problem(f"DICOM pixel data decodes to shape {stored.shape}, expected "
                   f"{count} {'grey' if samples == 1 else 'colour'} frame(s)")
  if count == 1:
    stored = stored[None]
  modality = str(ds.get("Modality") or "").strip().upper()
  geometry = _dicom_geometry(ds, count)
  kind = "image" if count == 1 else (
      "cine" if modality in _CINE_MODALITIES or geometry.positions is None else "volume")
  common = dict(modality=modality, geometry=geometry, kind=kind)
  if is_palette:
    try:
      rgb = apply_color_lut(stored, ds)
    except Exception as error:  # pylint: disable=broad-except
      raise _Problem("PALETTE COLOR image without a usable palette (Red/Green/Blue Palette "
                     f"Color Lookup Table): {error}") from error
    palette_bits = 8 if rgb.dtype == np.uint8 else 16
    if palette_bits == 16 and not np.any(rgb & 0xFF):
      # 8-bit colours in 16-bit palette entries (shifted to the high byte).
      rgb, palette_bits = (rgb >> 8).astype(np.uint8), 8
    return _fields(rgb, palette_bits, "dicom", photometric, palette=True, **common)
  if is_colour:
    # pydicom has already converted YBR to RGB.
    return _fields(stored, bits, "dicom", photometric, **common)
  invert = photometric == "MONOCHROME1"
  signed = int(ds.get("PixelRepresentation") or 0) == 1
  encoding = _grey_encoding(ds, bits, signed, invert, modality, hu_range, stored.dtype)
  # CT pixels span the HU range: their grid is the HU steps, not 2**BitsStored.
  hu = encoding.linear and image_lib.means_hu(modality, encoding.rescale_type)
  grid = encoding.grid_bits if hu else bits
  return dict(frames=encoding.to_unit(stored), bits=grid, file_format="dicom",
              photometric=photometric, inverted=invert, encoding=encoding,
              voi_window=_voi_window(ds), **common)


def _voi_window(ds) -> tuple[float, float] | None:
  """The first (WindowCenter, WindowWidth) of a DICOM file, or None if absent or unusable."""
  def first(name):
    value = ds.get(name)
    if value is None:
      return None
    value = value[0] if isinstance(value, (list, tuple, MultiValue)) else value
    try:
      return float(value)
    except (TypeError, ValueError):
      return None
  centre, width = first("WindowCenter"), first("WindowWidth")
  if centre is None or width is None or not width > 0:
    return None
  return centre, width


def _grey_encoding(ds, bits, signed, invert, modality, hu_range, dtype) -> image_lib.Encoding:
  """The stored -> [0, 1] map: HU range for CT, else the LUT's output over the stored range."""
  rescale = _rescale(ds)
  dtype = str(np.dtype(dtype))
  if ds.get("ModalityLUTSequence"):
    lowest = -2**(bits - 1) if signed else 0
    levels = np.arange(lowest, lowest + 2**bits, dtype=np.int32)
    try:
      table = np.asarray(apply_modality_lut(levels, ds), dtype=np.float64)
    except Exception as error:  # pylint: disable=broad-except
      raise _Problem(f"invalid DICOM modality LUT ({error})") from error
    try:
      return image_lib.Encoding.for_values(bits, signed, table=table, invert=invert, dtype=dtype)
    except ValueError:
      raise _Problem("DICOM modality LUT maps every stored level to one value: no image "
                     "contrast left") from None
  slope, intercept, rescale_type = rescale or (1.0, 0.0, "")
  if image_lib.means_hu(modality, rescale_type):
    return image_lib.Encoding.for_values(bits, signed, slope=slope, intercept=intercept,
                                         invert=invert, value_range=hu_range, dtype=dtype,
                                         rescale_type=rescale_type)
  try:
    return image_lib.Encoding.for_values(bits, signed, slope=slope, intercept=intercept,
                                         invert=invert, dtype=dtype, rescale_type=rescale_type)
  except ValueError:
    raise _Problem(f"DICOM rescale (slope {slope}, intercept {intercept}) maps every stored "
                   "level to one value: no image contrast left") from None


def _rescale(ds) -> tuple[float, float, str] | None:
  """(slope, intercept, type) from the dataset or its functional groups, None if absent.

  Enhanced IODs put it in the Pixel Value Transformation Sequence, shared or per
  frame; frames with different rescales are refused rather than guessed.
  """
  def of(item):
    if item is None or "RescaleSlope" not in item or "RescaleIntercept" not in item:
      return None
    try:
      return (float(item.RescaleSlope), float(item.RescaleIntercept),
              str(item.get("RescaleType") or "").strip().upper())
    except (TypeError, ValueError) as error:
      raise _Problem(f"invalid DICOM rescale slope/intercept ({error})") from None

  found = of(ds)
  if found is not None:
    return found
  shared = of(_group_item(ds, "SharedFunctionalGroupsSequence", 0,
                          "PixelValueTransformationSequence"))
  if shared is not None:
    return shared
  per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
  values = [of(_first(item, "PixelValueTransformationSequence")) for item in per_frame]
  values = [v for v in values if v is not None]
  if not values:
    return None
  if any(v != values[0] for v in values):
    raise _Problem("frames have different rescale slopes/intercepts "
                   f"({values[0]} and {next(v for v in values if v != values[0])}): "
                   "not supported")
  return values[0]


def _first(item, keyword):
  sequence = item.get(keyword) if item is not None else None
  return sequence[0] if sequence else None


def _group_item(ds, group: str, frame: int, keyword: str):
  groups = ds.get(group) or []
  if not groups:
    return None
  return _first(groups[frame if group.startswith("PerFrame") and frame < len(groups) else 0],
                keyword)


def _functional(ds, keyword: str, attribute: str, frame: int = 0):
  """``attribute`` for ``frame``: per-frame group, then shared group, then top level."""
  for group in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
    item = _group_item(ds, group, frame, keyword)
    if item is not None and attribute in item:
      return item.get(attribute)
  return ds.get(attribute)


def _floats(value, count: int):
  """``count`` numbers from a DICOM value (one number or a multi-value), else None."""
  if value is None:
    return None
  values = list(value) if isinstance(value, (list, tuple, MultiValue)) \
      else [value]
  try:
    numbers = tuple(float(v) for v in values)
  except (TypeError, ValueError):
    return None
  return numbers if len(numbers) == count else None


def _dicom_geometry(ds, count: int) -> image_lib.Geometry:
  """Spacing, orientation and per-frame positions, wherever the IOD keeps them."""
  spacing = _floats(_functional(ds, "PixelMeasuresSequence", "PixelSpacing"), 2)
  orientation = _floats(_functional(ds, "PlaneOrientationSequence", "ImageOrientationPatient"),
                        6)
  per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
  positions = None
  if count > 1 and len(per_frame) == count:
    found = []
    for frame in range(count):
      plane = _group_item(ds, "PerFrameFunctionalGroupsSequence", frame, "PlanePositionSequence")
      found.append(None if plane is None else _floats(plane.get("ImagePositionPatient"), 3))
    if all(p is not None for p in found):
      positions = np.asarray(found, np.float64)
  elif count == 1:
    position = _floats(_functional(ds, "PlanePositionSequence", "ImagePositionPatient"), 3)
    positions = None if position is None else np.asarray([position], np.float64)
  thickness = _floats(_functional(ds, "PixelMeasuresSequence", "SliceThickness"), 1)
  between = _floats(_functional(ds, "PixelMeasuresSequence", "SpacingBetweenSlices"), 1)
  return image_lib.Geometry(pixel_spacing=spacing, orientation=orientation, positions=positions,
                            slice_thickness=thickness[0] if thickness else None,
                            spacing_between_slices=between[0] if between else None)



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
  plugin = compression.decoding_plugin(syntax)
  try:
    if plugin:
      try:
        ds.pixel_array_options(decoding_plugin=plugin)
        return ds.pixel_array
      except Exception:  # pylint: disable=broad-except
        # A file the fast decoder refuses may still decode with pydicom's others.
        ds.pixel_array_options(decoding_plugin="")
    return ds.pixel_array
  except NotImplementedError as error:
    raise _Problem(f"no decoder available for DICOM transfer syntax "
                   f"{described}: {error}") from error
  except Exception as error:  # pylint: disable=broad-except
    raise _Problem(f"cannot decode DICOM pixel data, transfer syntax "
                   f"{described}: {error}") from error


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
  if nifti.is_nifti(path):
    return True
  if path.suffix.lower() in IMAGE_EXTENSIONS:
    return True
  return is_dicom_file(path)


def is_dicom_file(path: pathlib.Path) -> bool:
  """Whether ``path`` is a DICOM file with its preamble (the 'DICM' marker at byte 128)."""
  try:
    with open(path, "rb") as file:
      return file.read(132)[128:132] == b"DICM"
  except OSError:
    return False
