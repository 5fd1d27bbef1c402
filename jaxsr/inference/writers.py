"""Writes upscaled images in the form they came in: file, multi-frame, series or NIfTI.

The output keeps the input's format and stored representation, and its
stored values mean what the input's meant: a 16-bit PNG gives a 16-bit PNG
over the same range, a CT slice keeps its signedness, BitsStored and
rescale (so HU survive), a MONOCHROME1 DICOM stays MONOCHROME1. Pixels go
back through the image's own :class:`~jaxsr.io.image.Encoding`, the exact
inverse of the reading, clipped to what the representation can hold.

Geometry follows the resampling: each input pixel becomes ``s``×``s`` output
pixels with centres at ``(i + 0.5) / s - 0.5`` input pixels (the half-pixel
convention bilinear and bicubic resizing use), so the pixel spacing is
divided by ``s`` and the first pixel centre moves by ``-(s - 1) / (2s)`` of
the old spacing along the row and column directions; orientation, slice
thickness, spacing between slices and slice location do not change.

A series is written slice by slice as frames arrive (memory stays bounded
on long series), all slices sharing one new SeriesInstanceUID; a
multi-frame file or a NIfTI volume is assembled in its stored type and
written once. Every file goes to a temporary name beside its target and is
renamed, so a failure never leaves half a file.
"""
import dataclasses
import datetime
import pathlib
from typing import Optional, Sequence

import numpy as np
from PIL import Image as PILImage
import pydicom
from pydicom import uid as dicom_uid
import tifffile

from jaxsr.inference import derived
from jaxsr.inference.derived import Naming
from jaxsr.io import compression, files, image as image_lib, levels, nifti

# Attributes that describe the source's pixel encoding or its values and are
# wrong once the pixels are replaced and stored uncompressed.
_STALE_PIXEL_ATTRIBUTES = (
    "ExtendedOffsetTable", "ExtendedOffsetTableLengths", "PixelDataProviderURL",
    "SmallestImagePixelValue", "LargestImagePixelValue", "IconImageSequence",
    "SmallestPixelValueInSeries", "LargestPixelValueInSeries", "PlanarConfiguration")
# Gone once a palette image is stored as RGB.
_PALETTE_ATTRIBUTES = (
    "RedPaletteColorLookupTableDescriptor", "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor", "RedPaletteColorLookupTableData",
    "GreenPaletteColorLookupTableData", "BluePaletteColorLookupTableData",
    "SegmentedRedPaletteColorLookupTableData", "SegmentedGreenPaletteColorLookupTableData",
    "SegmentedBluePaletteColorLookupTableData", "PaletteColorLookupTableUID")
# Colour models written as they came; the rest (palette, subsampled or compressed YBR) as RGB.
_KEPT_COLOUR = ("RGB", "YBR_FULL")


PNG_COMPRESSION_LEVELS = range(10)


def open_output(source: image_lib.Image, targets: Sequence[pathlib.Path], *, scale: int,
                model: str = "", transfer_syntax: str = "auto",
                png_compression: int = 1) -> "Output":
  """An :class:`Output` for ``source``: one target per source file (a series: per slice).

  ``transfer_syntax``: how DICOM outputs store their pixels
  (:data:`jaxsr.io.compression.CHOICES`; default: the best lossless one installed);
  ``png_compression``: zlib level 0-9 of PNG outputs.
  """
  targets = [pathlib.Path(t) for t in targets]
  compression.check_choice(transfer_syntax)
  if png_compression not in PNG_COMPRESSION_LEVELS:
    raise ValueError(f"png_compression must be 0..9, not {png_compression!r}")
  naming = Naming(scale, model, transfer_syntax, png_compression)
  if source.file_format == "nifti":
    return _NiftiOutput(source, targets, naming)
  if source.file_format == "dicom":
    if len(source.sources) > 1:
      return _SeriesOutput(source, targets, naming)
    return _DicomFileOutput(source, targets, naming)
  if source.file_format in ("png", "jpeg", "tiff"):
    return _FileOutput(source, targets, naming)
  raise ValueError(f"{source.path}: cannot write format {source.file_format!r}")


class Output:
  """Takes the upscaled frames of one image (``put``) and writes its file(s) (``close``)."""

  def __init__(self, source: image_lib.Image, targets: list[pathlib.Path], naming: Naming):
    self.source, self.targets, self.naming = source, targets, naming
    self.scale = naming.scale

  def put(self, index: int, frame: np.ndarray) -> None:
    """Frame ``index``: float32 (H*s, W*s) grey or (H*s, W*s, 3) RGB in [0, 1]."""
    raise NotImplementedError

  def close(self) -> list[pathlib.Path]:
    """Writes what is not written yet; returns every file written."""
    raise NotImplementedError


def write(pixels: np.ndarray, source: image_lib.Image, path, *, scale: int,
          model: str = "", transfer_syntax: str = "auto") -> pathlib.Path:
  """Writes one upscaled frame (grey (H, W) or RGB (H, W, 3)) like ``source``'s file."""
  output = open_output(source, [pathlib.Path(path)], scale=scale, model=model,
                       transfer_syntax=transfer_syntax)
  output.put(0, pixels)
  return output.close()[0]


class _Frames(Output):
  """Outputs that hold the whole result in its stored type until ``close``."""

  def __init__(self, source, targets, naming):
    super().__init__(source, targets, naming)
    self.stored: Optional[np.ndarray] = None

  def put(self, index, frame):
    values = self.to_stored(index, frame)
    if self.stored is None:
      self.stored = np.empty((self.source.num_frames,) + values.shape, values.dtype)
    self.stored[index] = values

  def to_stored(self, index, frame):
    return self.source.encoding_of(index).to_stored(frame)


class _FileOutput(_Frames):
  """PNG, JPEG and TIFF: one frame, grey or RGB, at the input's depth."""

  def to_stored(self, index, frame):
    kind, bits = self.source.file_format, self.source.bits
    invert = self.source.inverted and frame.ndim == 2
    if kind == "tiff":
      return levels.to_integers(frame, bits, invert=invert,
                                dtype=np.uint8 if bits <= 8 else np.uint16)
    if kind == "png" and bits > 8 and frame.ndim == 2:
      return levels.to_integers(frame, 16)  # PIL writes uint16 as mode I;16.
    return levels.to_integers(frame, 8, dtype=np.uint8)

  def close(self):
    target, stored, kind = self.targets[0], self.stored[0], self.source.file_format
    if kind == "tiff":
      photometric = "rgb" if stored.ndim == 3 else (
          "miniswhite" if self.source.inverted else "minisblack")
      files.write_atomically(target, lambda tmp: tifffile.imwrite(tmp, stored,
                                                                  photometric=photometric))
    else:
      image = PILImage.fromarray(stored)
      options = (dict(format="PNG", compress_level=self.naming.png_compression) if kind == "png"
                 else dict(format="JPEG", quality=95))
      files.write_atomically(target, lambda tmp: image.save(tmp, **options))
    return [target]


class _NiftiOutput(_Frames):

  def close(self):
    target = self.targets[0]
    nifti.write(self.stored, self.source, target, scale=self.scale)
    return [target]


class _DicomFileOutput(_Frames):
  """One DICOM file, single- or multi-frame (functional groups updated too)."""

  def to_stored(self, index, frame):
    return _dicom_stored(self.source, index, frame)

  def close(self):
    target = self.targets[0]
    ds = read_source(self.source.sources[0] if self.source.sources else self.source.path)
    _rewrite(ds, self.source, self.stored, self.naming, series_uid=dicom_uid.generate_uid())
    files.write_atomically(target, lambda tmp: ds.save_as(tmp, enforce_file_format=True))
    return [target]


class _SeriesOutput(Output):
  """A series: each slice written as it arrives, beside the others, one new series."""

  def __init__(self, source, targets, naming):
    super().__init__(source, targets, naming)
    if len(targets) != source.num_frames:
      raise ValueError(f"{source.path}: {len(targets)} targets for {source.num_frames} slices")
    self.series_uid = dicom_uid.generate_uid()
    self.written: list[pathlib.Path] = []

  def put(self, index, frame):
    stored = _dicom_stored(self.source, index, frame)[None]
    ds = read_source(self.source.sources[index])
    _rewrite(ds, self.source.frame(index), stored, self.naming, series_uid=self.series_uid)
    target = self.targets[index]
    target.parent.mkdir(parents=True, exist_ok=True)
    files.write_atomically(target, lambda tmp: ds.save_as(tmp, enforce_file_format=True))
    self.written.append(target)

  def close(self):
    return list(self.written)


# DICOM.


def read_source(path) -> pydicom.Dataset:
  """The source dataset to rewrite, its private elements of unknown VR kept as UN with
  their bytes as stored (pydicom would give some a VR from its private dictionary,
  which then no longer matches what their creator wrote)."""
  previous = pydicom.config.replace_un_with_known_vr
  pydicom.config.replace_un_with_known_vr = False
  try:
    header = pydicom.dcmread(path, force=True, stop_before_pixels=True)
    # Elements are decoded when first touched: while the setting holds.
    unknown = [e for e in header if e.tag.is_private and e.VR == "UN"]
  finally:
    pydicom.config.replace_un_with_known_vr = previous
  ds = pydicom.dcmread(path, force=True)
  for element in unknown:
    ds[element.tag] = pydicom.DataElement(element.tag, "UN", element.value)
  return ds


def _dicom_stored(source: image_lib.Image, index: int, frame: np.ndarray) -> np.ndarray:
  """Stored samples of one output frame: grey through the encoding, colour as 8/16-bit RGB
  (or YBR_FULL where the input was)."""
  if frame.ndim == 2:
    return source.encoding_of(index).to_stored(frame)
  bits = source.bits
  dtype = np.uint8 if bits <= 8 else np.uint16
  if _colour_out(source) == "YBR_FULL":
    frame = image_lib.rgb_to_ycbcr(np.clip(frame, 0.0, 1.0))
  return levels.to_integers(frame, bits, dtype=dtype)


def _colour_out(source: image_lib.Image) -> str:
  photometric = (source.photometric or "").upper()
  return photometric if photometric in _KEPT_COLOUR else "RGB"


def _rewrite(ds: pydicom.Dataset, source: image_lib.Image, stored: np.ndarray, naming: Naming,
             series_uid: str) -> None:
  """Turns the source dataset ``ds`` into the upscaled one holding ``stored`` (F, H, W[, 3])."""
  scale = naming.scale
  origin = derived.Origin.of(ds)
  had_frames = "NumberOfFrames" in ds
  for keyword in _STALE_PIXEL_ATTRIBUTES:
    if keyword in ds:
      delattr(ds, keyword)
  # Overlay planes (60xx) lie on the old pixel grid; they no longer match it.
  for tag in [t for t in ds.keys() if 0x6000 <= t.group <= 0x601E and t.group % 2 == 0]:
    del ds[tag]
  if getattr(ds, "file_meta", None) is None:
    ds.file_meta = pydicom.dataset.FileMetaDataset()
  ds.file_meta.TransferSyntaxUID = dicom_uid.ExplicitVRLittleEndian
  if stored.ndim == 4:
    photometric, bits = _colour_out(source), (8 if stored.dtype == np.uint8 else 16)
    if source.palette:
      for keyword in _PALETTE_ATTRIBUTES:
        if keyword in ds:
          delattr(ds, keyword)
  else:
    photometric = source.photometric if source.photometric in (
        "MONOCHROME1", "MONOCHROME2") else "MONOCHROME2"
    bits = source.encoding_of(0).bits if source.encoding is not None else source.bits
  # One frame without NumberOfFrames stays a plain single-frame image.
  data = stored if (stored.shape[0] > 1 or had_frames) else stored[0]
  ds.set_pixel_data(np.ascontiguousarray(data), photometric, bits, generate_instance_uid=True)
  if had_frames:
    ds.NumberOfFrames = stored.shape[0]  # pydicom drops it for a single frame.
  ds.SeriesInstanceUID = series_uid
  ds.SeriesNumber = int(ds.get("SeriesNumber") or 0) + 1000
  description = str(ds.get("SeriesDescription") or "").strip()
  # LO holds 64 characters: the original description gives way, never the SR mark.
  suffix = naming.series_suffix()
  room = 64 - len(suffix) - 1
  ds.SeriesDescription = (f"{description[:room]} {suffix}" if description and room > 0
                          else suffix)
  ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
  if "SOPClassUID" in ds:
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
  _move_positions(ds, scale)
  _scale_spacings(ds, scale)
  now = datetime.datetime.now()
  # Frame numbers only for a multi-frame source (a single-frame IOD may carry
  # NumberOfFrames 1, but its instances have no frames to reference).
  multi_frame = had_frames and (stored.shape[0] > 1 or derived.is_enhanced(ds))
  derived.describe(ds, origin, naming, now=now,
                   frames=list(range(1, stored.shape[0] + 1)) if multi_frame else None)
  ds.InstanceCreationDate, ds.InstanceCreationTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
  compression.compress(ds, naming.transfer_syntax, stored if had_frames else stored[0])


def _move_positions(ds: pydicom.Dataset, scale: int) -> None:
  """Moves every ImagePositionPatient (top level and per frame) to the new first pixel
  centre: by -(s-1)/(2s) of the old spacing along the row and the column direction."""
  shift = image_lib.shift_first_centre(scale)

  def moved(position, orientation, spacing):
    row_dir, col_dir = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    # PixelSpacing is (between rows, between columns); columns advance along the row direction.
    offset = shift * (float(spacing[1]) * row_dir + float(spacing[0]) * col_dir)
    return [_ds_string(v) for v in np.asarray(position, float) + offset]

  def group_value(item, sequence, keyword):
    inner = item.get(sequence) if item is not None else None
    return inner[0].get(keyword) if inner else None

  shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]
  top_orientation = ds.get("ImageOrientationPatient") or group_value(
      shared, "PlaneOrientationSequence", "ImageOrientationPatient")
  top_spacing = ds.get("PixelSpacing") or group_value(shared, "PixelMeasuresSequence",
                                                      "PixelSpacing")
  if "ImagePositionPatient" in ds and top_orientation and top_spacing:
    ds.ImagePositionPatient = moved(ds.ImagePositionPatient, top_orientation, top_spacing)
  for item in ds.get("PerFrameFunctionalGroupsSequence") or []:
    positions = item.get("PlanePositionSequence")
    if not positions or "ImagePositionPatient" not in positions[0]:
      continue
    orientation = group_value(item, "PlaneOrientationSequence",
                              "ImageOrientationPatient") or top_orientation
    spacing = group_value(item, "PixelMeasuresSequence", "PixelSpacing") or top_spacing
    if orientation and spacing:
      positions[0].ImagePositionPatient = moved(positions[0].ImagePositionPatient, orientation,
                                                spacing)


def _scale_spacings(ds: pydicom.Dataset, scale: int):
  """Divides every numeric '...PixelSpacing' attribute, nested ones too, and
  SpatialResolution (the smallest resolvable distance, a pixel's at best) by scale.
  A zero spacing (a source error dciodvfy reports) stays zero."""

  def visit(dataset, element):
    keyword = element.keyword or ""
    if ((keyword.endswith("PixelSpacing") or keyword == "SpatialResolution")
        and element.VR == "DS" and element.value is not None and element.value != ""):
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
