"""Training and evaluation slices from volumes: DICOM series, multi-frame files, NIfTI.

A CT or MR study is one volume, not one image per file: a folder's series
are assembled by :mod:`jaxsr.io.series`, and every selected 2-D slice
becomes one record. Shuffling the records (grain, by the config's seed)
then draws a random slice of a random volume, and each record's crop,
flips and LR come from the degradation's random map keyed on the record's
global index, so a draw is a pure function of (seed, record, step) and a
resumed run sees the same samples.

Slices are selected per volume by a range of slice indices in slice order
(``data.train_slices`` / ``data.eval_slices``): one patient's volume can
then give a training and a validation part with a gap between them. Slices
that are mostly background (air around the body, the empty ends of a scan)
teach nothing and are skipped: a slice is kept when at least
``data.min_foreground`` of its pixels lie above the background level
(−500 HU for CT, 5 % of the range otherwise).

Near-isotropic volumes (voxel sizes within ``ISOTROPIC_RATIO`` of each
other, e.g. a 1 mm MR) can also give slices along their other two axes
(``data.all_axes``), three times the training slices from the same scans.
A slice range along one axis does not split the others (every sagittal slice
crosses every axial one), so this is for training sets split by patient,
and is refused with slice ranges.

Volumes are decoded once, when the source is built, and kept in memory:
training sets of volumes are a few volumes of a few hundred MB.
"""
import dataclasses
import logging
import pathlib
from typing import Sequence

import numpy as np

from jaxsr import errors
from jaxsr.data import sources
from jaxsr.io import image as image_lib
from jaxsr.io import images, series

# Background: below -500 HU (air and lung) for CT; below this share of the range otherwise.
CT_BACKGROUND_HU = -500.0
BACKGROUND_SHARE = 0.05
# Largest / smallest voxel size up to which a volume counts as isotropic (all_axes).
ISOTROPIC_RATIO = 1.25


class VolumeError(errors.UserError):
  """A volume folder that gives no usable slices; one line."""


def foreground_share(frame: np.ndarray, image: image_lib.Image) -> float:
  """Share of a slice's pixels above the background level."""
  if image.is_ct_hu:
    low, high = image.value_range
    level = (CT_BACKGROUND_HU - low) / (high - low)
  else:
    level = BACKGROUND_SHARE
  return float(np.mean(frame > level))


def select(count: int, slice_range: Sequence[int]) -> range:
  """The slice indices ``slice_range`` = (start, stop) keeps of ``count`` (Python slicing;
  (0, 0) keeps them all)."""
  start, stop = (int(v) for v in slice_range)
  if (start, stop) == (0, 0):
    return range(count)
  return range(count)[start:stop]


def other_axes(image: image_lib.Image) -> list[tuple[str, image_lib.Image]]:
  """A grey near-isotropic volume re-sliced along its rows and its columns:
  [(axis name, volume)], or [] when it is not one (then only its own slices count)."""
  spacing = image.geometry.voxel_spacing()
  if (image.kind != "volume" or image.is_colour or spacing is None
      or max(spacing) > ISOTROPIC_RATIO * min(spacing)):
    return []
  frames = image.grey_frames
  views = []
  for label, order, pixel_spacing in (("rows", (1, 0, 2), (spacing[0], spacing[2])),
                                      ("columns", (2, 0, 1), (spacing[0], spacing[1]))):
    views.append((label, dataclasses.replace(
        image, frames=np.ascontiguousarray(frames.transpose(order)),
        geometry=image_lib.Geometry(pixel_spacing=pixel_spacing),
        sources=image.sources[:1], frame_encodings=None, frame_numbers=None)))
  return views


def keep_slices(image: image_lib.Image, slice_range: Sequence[int] = (0, 0),
                min_foreground: float = 0.0) -> list[int]:
  """Indices of ``image``'s slices in ``slice_range`` with at least ``min_foreground``
  of their pixels above the background: what training and evaluation use of a volume."""
  frames = image.grey_frames
  return [k for k in select(len(frames), slice_range)
          if foreground_share(frames[k], image) >= min_foreground]


class VolumeSource:
  """Grey 2-D slices of every image, series and volume in a folder, one record each."""

  def __init__(self, folder, *, min_size: int = 0, slice_range=(0, 0),
               min_foreground: float = 0.0, hu_range=image_lib.DEFAULT_HU_RANGE,
               slice_axis: int | None = None, all_axes: bool = False, include=(), exclude=(),
               strict: bool = False, label: str = "train"):
    self.folder = pathlib.Path(folder).expanduser()
    try:
      files = images.list_images(self.folder)
    except images.ImageReadError as error:
      raise VolumeError(str(error)) from None
    files = [p for p in files
             if (not include or sources.matches(p.relative_to(self.folder).as_posix(), include))
             and not (exclude and sources.matches(p.relative_to(self.folder).as_posix(), exclude))]
    self.volumes: list[tuple[str, image_lib.Image, list[int]]] = []
    self.records: list[tuple[int, int]] = []
    for item in series.find(self.folder, files):
      try:
        image = item.load(hu_range=hu_range, slice_axis=slice_axis)
      except images.ImageReadError as error:
        if strict:
          raise VolumeError(str(error)) from None
        logging.warning("skipping %s", error)
        continue
      if min(image.height, image.width) < min_size:
        message = (f"{item.name}: slices are {image.width}x{image.height}, smaller than the "
                   f"{min_size}x{min_size} patch")
        if strict:
          raise VolumeError(message)
        logging.warning("skipping %s", message)
        continue
      views = [(item.name, image)]
      if all_axes:
        across = other_axes(image)
        if not across and image.kind == "volume":
          logging.info("%s: not isotropic (voxels %s mm): slices along its own axis only",
                       item.name, image.geometry.voxel_spacing())
        views += [(f"{item.name}@{label}", view) for label, view in across
                  if min(view.height, view.width) >= min_size]
      for name, view in views:
        kept = keep_slices(view, slice_range, min_foreground)
        if kept:
          self.volumes.append((name, view, kept))
          self.records.extend((len(self.volumes) - 1, k) for k in kept)
    if not self.records:
      raise VolumeError(f"{self.folder}: no {label} slices (slice range {tuple(slice_range)}, "
                        f"min_foreground {min_foreground}, patch {min_size})")
    logging.info("%s slices: %d from %d volume(s) in %s", label, len(self.records),
                 len(self.volumes), self.folder)

  def __len__(self) -> int:
    return len(self.records)

  def __getitem__(self, index: int) -> dict:
    volume, frame = self.records[index]
    name, image, _ = self.volumes[volume]
    return {"image": image.grey_frames[frame], "bits": image.bits, "name": f"{name}#{frame}"}

  def __repr__(self):
    return (f"VolumeSource({str(self.folder)!r}, {len(self.records)} slices of "
            f"{len(self.volumes)} volume(s))")

  def whole_images(self) -> list[tuple[str, callable]]:
    """(name, load) per volume, holding only its selected slices: evaluation scores
    each slice and the volume as a whole."""
    return [(name, lambda image=image, kept=tuple(kept): image.select_frames(kept))
            for name, image, kept in self.volumes]
