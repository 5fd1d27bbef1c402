"""Writes upscaled radiographs in the kind of file they came from.

The output keeps the input's format and bit depth, and its stored levels
mean what the input's meant: a 16-bit PNG gives a 16-bit PNG over the same
range, a MONOCHROME1 DICOM stays MONOCHROME1 with its modality transform
undone exactly as `read_image` applied it. Files are written to a temporary
name beside the target and renamed, so a failure never leaves half a file.
"""
import datetime
import pathlib

import numpy as np
from PIL import Image
import pydicom
from pydicom import uid as dicom_uid
from pydicom.sequence import Sequence
import tifffile

from jaxsr.io import files, images, levels

# Rows of the output converted to integers at once: bounds float64 temporaries.
_CHUNK_ROWS = 256
# Attributes that describe the source's pixel encoding or its values and are
# wrong once the pixels are replaced and stored uncompressed.
_STALE_PIXEL_ATTRIBUTES = (
    "ExtendedOffsetTable", "ExtendedOffsetTableLengths", "PixelDataProviderURL",
    "SmallestImagePixelValue", "LargestImagePixelValue", "IconImageSequence",
    "SmallestPixelValueInSeries", "LargestPixelValueInSeries", "NumberOfFrames",
    "FrameIncrementPointer", "PlanarConfiguration")


def write(pixels: np.ndarray, source: images.Radiograph, path, *, scale: int,
          model: str = "") -> pathlib.Path:
  """Writes [0, 1] `pixels` (H, W) like `source`'s file; returns the path."""
  path = pathlib.Path(path)
  kind = source.file_format
  if kind == "dicom":
    return files.write_atomically(path, lambda tmp: _write_dicom(pixels, source, tmp, scale, model))
  if kind in ("png", "jpeg"):
    return files.write_atomically(path, lambda tmp: _write_pil(pixels, source, tmp, kind))
  if kind == "tiff":
    return files.write_atomically(path, lambda tmp: _write_tiff(pixels, source, tmp))
  raise ValueError(f"{source.path}: cannot write format {kind!r}")


def _write_pil(pixels, source, tmp, kind):
  if kind == "png" and source.bits > 8:
    image = Image.fromarray(levels.to_integers(pixels, 16))  # uint16 -> mode I;16.
  else:
    image = Image.fromarray(levels.to_integers(pixels, 8, dtype=np.uint8))
  if kind == "png":
    image.save(tmp, format="PNG")
  else:
    image.save(tmp, format="JPEG", quality=95)


def _write_tiff(pixels, source, tmp):
  bits = source.bits
  dtype = np.uint8 if bits <= 8 else np.uint16
  stored = levels.to_integers(pixels, bits, invert=source.inverted, dtype=dtype)
  photometric = "miniswhite" if source.inverted else "minisblack"
  tifffile.imwrite(tmp, stored, photometric=photometric)


# DICOM.


def _write_dicom(pixels, source, tmp, scale, model):
  ds = pydicom.dcmread(source.path, force=True)
  stored = dicom_levels(pixels, ds, source.bits)
  rows, cols = stored.shape
  original_sop = (ds.get("SOPClassUID"), ds.get("SOPInstanceUID"))
  for keyword in _STALE_PIXEL_ATTRIBUTES:
    if keyword in ds:
      delattr(ds, keyword)
  if getattr(ds, "file_meta", None) is None:
    ds.file_meta = pydicom.dataset.FileMetaDataset()
  ds.file_meta.TransferSyntaxUID = dicom_uid.ExplicitVRLittleEndian
  photometric = source.photometric if source.photometric in (
      "MONOCHROME1", "MONOCHROME2") else "MONOCHROME2"
  # Colour sources were read as grey (luma): they come back MONOCHROME2.
  ds.set_pixel_data(stored, photometric, source.bits, generate_instance_uid=True)
  ds.SeriesInstanceUID = dicom_uid.generate_uid()
  ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
  if "SOPClassUID" in ds:
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
  image_type = list(ds.get("ImageType") or [])
  ds.ImageType = ["DERIVED", "SECONDARY"] + image_type[2:]
  _scale_spacings(ds, scale)
  ds.DerivationDescription = (f"jaxsr super-resolution x{scale}" +
                              (f", model {model}" if model else ""))[:1024]
  if all(original_sop):
    source_item = pydicom.Dataset()
    source_item.ReferencedSOPClassUID, source_item.ReferencedSOPInstanceUID = original_sop
    ds.SourceImageSequence = Sequence([source_item])
  now = datetime.datetime.now()
  ds.InstanceCreationDate, ds.InstanceCreationTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
  assert (ds.Rows, ds.Columns) == (rows, cols)
  ds.save_as(tmp, enforce_file_format=True)


def dicom_levels(pixels: np.ndarray, ds: pydicom.Dataset, bits: int) -> np.ndarray:
  """Stored values that `read_image` would map to `pixels` (the inverse map).

  Mirrors `images._read_dicom`: MONOCHROME1 flip, signed offset, and with a
  non-identity modality LUT/rescale the nearest level of the same table.
  """
  photometric = str(ds.get("PhotometricInterpretation") or "MONOCHROME2").strip().upper()
  invert = photometric == "MONOCHROME1"
  signed = int(ds.get("PixelRepresentation") or 0) == 1
  offset = 2**(bits - 1) if signed else 0
  dtype = (np.int8 if signed else np.uint8) if int(ds.get("BitsAllocated") or 16) <= 8 and \
      bits <= 8 else (np.int16 if signed else np.uint16)
  grey = int(ds.get("SamplesPerPixel") or 1) == 1
  table = images._modality_table(ds, bits, signed, invert) if grey else None  # pylint: disable=protected-access
  out = np.empty(pixels.shape, dtype)
  if table is None:
    for top in range(0, pixels.shape[0], _CHUNK_ROWS):
      stored = levels.to_levels(pixels[top:top + _CHUNK_ROWS], bits)
      if invert:
        stored = (2**bits - 1) - stored
      out[top:top + _CHUNK_ROWS] = stored - offset
    return out
  order = np.argsort(table, kind="stable")
  ordered = table[order].astype(np.float64)
  for top in range(0, pixels.shape[0], _CHUNK_ROWS):
    values = np.clip(pixels[top:top + _CHUNK_ROWS], 0.0, 1.0).astype(np.float64)
    right = np.clip(np.searchsorted(ordered, values), 1, len(ordered) - 1)
    nearer_left = values - ordered[right - 1] <= ordered[right] - values
    index = order[np.where(nearer_left, right - 1, right)]
    out[top:top + _CHUNK_ROWS] = index - offset
  return out


def _scale_spacings(ds: pydicom.Dataset, scale: int):
  """Divides every numeric '...PixelSpacing' attribute, nested ones too, by scale."""

  def visit(dataset, element):
    keyword = element.keyword or ""
    if keyword.endswith("PixelSpacing") and element.VR == "DS" and element.value is not None:
      values = element.value if element.VM > 1 else [element.value]
      scaled = [_ds_string(float(v) / scale) for v in values]
      element.value = scaled if element.VM > 1 else scaled[0]
    del dataset

  ds.walk(visit)


def _ds_string(value: float) -> str:
  """A decimal string of at most 16 characters, as DS allows."""
  for digits in range(15, 0, -1):
    text = f"{value:.{digits}g}"
    if len(text) <= 16:
      return text
  return f"{value:.1e}"
