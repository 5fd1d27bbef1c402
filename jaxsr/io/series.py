"""What a folder holds: single images, DICOM series (one volume each) and NIfTI volumes.

A CT or MR series is stored as one file per slice, and file names and
InstanceNumber say nothing reliable about the order. Slices are grouped by
(folder, SeriesInstanceUID) and sorted by their position along the slice
normal (ImagePositionPatient projected on the cross product of the
ImageOrientationPatient directions), as DICOM viewers do. Only cross-sectional
slices (single-frame, with a position and an orientation) are grouped:
radiographs that share a series (the same view in several transfer syntaxes,
PA and lateral) stay separate images.

A series that cannot be one volume (slices of different sizes or
orientations, two slices at one position, a gap where slices are missing) is
still listed, with the reason as its :attr:`Item.problem`, so the caller can
report it by name and go on with the rest.
"""
import dataclasses
import os
import pathlib
from typing import Optional, Sequence

import numpy as np
import pydicom

from jaxsr.io import image as image_lib
from jaxsr.io import images, nifti

# A step between neighbouring slices longer than this many times the usual one is a gap.
GAP_FACTOR = 1.5
_HEADER_TAGS = ("SeriesInstanceUID", "SeriesNumber", "ImagePositionPatient",
                "ImageOrientationPatient", "NumberOfFrames", "Rows", "Columns", "Modality")


@dataclasses.dataclass(frozen=True)
class Item:
  """One thing to process: an image file, a NIfTI file or a DICOM series.

  ``name`` is the path relative to the root searched (a series: its folder,
  with the series number when the folder holds several). ``paths`` are the
  files, a series' in slice order.
  """
  name: str
  paths: tuple[pathlib.Path, ...]
  series_uid: str = ""
  problem: str = ""

  @property
  def is_series(self) -> bool:
    return bool(self.series_uid)

  def load(self, hu_range=image_lib.DEFAULT_HU_RANGE, modality: Optional[str] = None,
           slice_axis: Optional[int] = None) -> image_lib.Image:
    """The item's image; raises ImageReadError (one line naming the file or series)."""
    if self.problem:
      raise image_lib.ImageReadError(self.problem)
    if not self.is_series:
      return images.read_image(self.paths[0], hu_range=hu_range, modality=modality,
                               slice_axis=slice_axis)
    return _load_series(self, hu_range)

  def modality(self, given: Optional[str] = None) -> str:
    """The item's Modality ('' when it has none), read without decoding pixels.

    NIfTI has no tag: ``given`` (--modality), else the reader's CT guess, which
    reads the data. A file that cannot be read gives '' (its problem is
    reported when it is loaded).
    """
    path = self.paths[0]
    if nifti.is_nifti(path):
      if given:
        return str(given).upper()
      try:
        return nifti.read(path).modality
      except (image_lib.ImageReadError, OSError):
        return ""
    try:
      header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality"])
    except Exception:  # pylint: disable=broad-except
      return ""  # Not DICOM (PNG, TIFF, JPEG), or reported when loaded.
    return str(header.get("Modality") or "").strip().upper()


def find(root: pathlib.Path, files: Sequence[pathlib.Path]) -> list[Item]:
  """Items for ``files`` found under ``root`` (as :func:`images.list_images` lists them)."""
  root = pathlib.Path(root)
  groups: dict[tuple[str, str], list[tuple[pathlib.Path, pydicom.Dataset]]] = {}
  singles = []
  for path in files:
    header = None if nifti.is_nifti(path) else _slice_header(path)
    if header is None:
      singles.append(path)
    else:
      groups.setdefault((str(path.parent), str(header.SeriesInstanceUID)), []).append(
          (path, header))
  items = [Item(_relative(p, root), (p,)) for p in singles]
  per_folder: dict[str, int] = {}
  for folder, _ in groups:
    per_folder[folder] = per_folder.get(folder, 0) + 1
  numbers: dict[tuple[str, str], int] = {}
  for (folder, _), members in groups.items():
    key = (folder, str(members[0][1].get("SeriesNumber") or ""))
    numbers[key] = numbers.get(key, 0) + 1
  for (folder, uid), members in groups.items():
    if len(members) == 1:
      items.append(Item(_relative(members[0][0], root), (members[0][0],)))
      continue
    name = _relative(pathlib.Path(folder), root)
    if per_folder[folder] > 1:
      # The SeriesNumber names a series unless two in the folder share it.
      number = str(members[0][1].get("SeriesNumber") or "")
      name += f" (series {number if number and numbers[(folder, number)] == 1 else uid})"
    ordered, problem = _order(name, members)
    items.append(Item(name, tuple(ordered), series_uid=uid, problem=problem))
  return sorted(items, key=lambda item: item.name)


def _relative(path: pathlib.Path, root: pathlib.Path) -> str:
  relative = pathlib.Path(os.path.relpath(path, root)).as_posix()
  return root.name if relative == "." else relative


def _slice_header(path: pathlib.Path) -> Optional[pydicom.Dataset]:
  """The header of a single-frame cross-sectional DICOM slice, else None."""
  try:
    with open(path, "rb") as file:
      if file.read(132)[128:132] != b"DICM":
        return None
    header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(_HEADER_TAGS))
  except Exception:  # pylint: disable=broad-except
    return None  # Reported by name when the file itself is read.
  if int(header.get("NumberOfFrames") or 1) != 1:
    return None
  if not all(k in header for k in ("SeriesInstanceUID", "ImagePositionPatient",
                                   "ImageOrientationPatient")):
    return None
  try:
    _vector(header.ImagePositionPatient, 3)
    _vector(header.ImageOrientationPatient, 6)
  except ValueError:
    return None
  return header


def _vector(value, count: int) -> np.ndarray:
  values = np.asarray([float(v) for v in value], np.float64)
  if values.shape != (count,):
    raise ValueError(f"expected {count} numbers, got {len(values)}")
  return values


def _order(name: str, members) -> tuple[list[pathlib.Path], str]:
  """Slices sorted along the normal, and what stops them forming one volume ('' if nothing)."""
  sizes: dict[tuple[int, int], list[str]] = {}
  for path, header in members:
    sizes.setdefault((int(header.get("Rows") or 0), int(header.get("Columns") or 0)),
                     []).append(path.name)
  if len(sizes) > 1:
    parts = [f"{cols}x{rows} ({_some(names)})" for (rows, cols), names in
             sorted(sizes.items(), key=lambda kv: -len(kv[1]))]
    return [p for p, _ in members], f"{name}: series with mixed slice sizes: " + ", ".join(parts)
  orientation = _vector(members[0][1].ImageOrientationPatient, 6)
  for path, header in members[1:]:
    if not np.allclose(_vector(header.ImageOrientationPatient, 6), orientation, atol=1e-4):
      return ([p for p, _ in members],
              f"{name}: {path.name} is oriented differently from {members[0][0].name}")
  normal = np.cross(orientation[:3], orientation[3:])
  where = [(float(_vector(h.ImagePositionPatient, 3) @ normal), p) for p, h in members]
  where.sort(key=lambda pair: pair[0])
  ordered = [p for _, p in where]
  steps = np.diff([d for d, _ in where])
  for step, (at, first), (_, second) in zip(steps, where, where[1:]):
    if step < 1e-3:
      return ordered, (f"{name}: two slices at the same position ({at:.3f} mm "
                       f"along the normal): {first.name} and {second.name}")
  usual = float(np.median(steps))
  for step, (_, first), (_, second) in zip(steps, where, where[1:]):
    if step > GAP_FACTOR * usual:
      return ordered, (f"{name}: slice(s) missing between {first.name} and {second.name} "
                       f"(a gap of {step:.3g} mm where slices are {usual:.3g} mm apart)")
  return ordered, ""


def _some(names: list[str], limit: int = 3) -> str:
  shown = ", ".join(sorted(names)[:limit])
  return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _load_series(item: Item, hu_range) -> image_lib.Image:
  first = images.read_image(item.paths[0], hu_range=hu_range)
  frames = np.empty((len(item.paths),) + first.frames.shape[1:], np.float32)
  frames[0] = first.frames[0]
  positions = [first.geometry.positions[0]]
  encodings = [first.encoding]
  for index, path in enumerate(item.paths[1:], start=1):
    slice_ = images.read_image(path, hu_range=hu_range)
    if slice_.frames.shape[1:] != first.frames.shape[1:] or slice_.bits != first.bits:
      raise image_lib.ImageReadError(
          f"{path}: slice of {slice_.describe()} in a series of {first.describe()}")
    frames[index] = slice_.frames[0]
    positions.append(slice_.geometry.positions[0])
    encodings.append(slice_.encoding)
  positions = np.asarray(positions)
  normal = first.geometry.normal
  steps = np.diff(positions @ normal)
  geometry = dataclasses.replace(first.geometry, positions=positions,
                                 spacing_between_slices=float(np.median(steps)))
  same = all(_same_encoding(e, encodings[0]) for e in encodings)
  return dataclasses.replace(
      first, frames=frames, path=str(item.paths[0].parent), geometry=geometry,
      sources=tuple(str(p) for p in item.paths), kind="volume",
      frame_encodings=None if same else tuple(encodings))


def _same_encoding(a: image_lib.Encoding, b: image_lib.Encoding) -> bool:
  return (a.slope, a.intercept, a.low, a.high, a.bits, a.signed, a.invert, a.table is None) == \
      (b.slope, b.intercept, b.low, b.high, b.bits, b.signed, b.invert, b.table is None)
