"""Random-access sources of whole radiographs for grain.

Each record is a dict ``{"image": float32 (H, W) in [0, 1], "bits": int,
"name": str}``. Sources are scanned once up front so that unreadable files and
images smaller than a training patch are reported by name before training
starts, rather than crashing a worker hours later.

Records hold each image as the network sees it at inference: an image that
uses only the low bits of its container (12-bit data in a 16-bit PNG) is
stretched to full range at its used depth (:func:`jaxsr.io.levels.stretched`),
so training and ``Model.upscale`` agree on what a 12-bit radiograph looks like.
"""
import fnmatch
import logging
import pathlib

import numpy as np
import pydicom
from PIL import Image

from jaxsr import errors
from jaxsr.data import tfds_builders
from jaxsr.io import image as image_lib
from jaxsr.io import images, levels, nifti


class DataError(errors.UserError):
  """A problem with the user's data; the message is one line naming the file."""


def _looks_like_dicom(path: pathlib.Path) -> bool:
  """The same rule as ``read_image``: the DICM marker, else a DICOM-ish name."""
  with open(path, "rb") as f:
    head = f.read(132)
  if head[128:132] == b"DICM":
    return True
  is_other = head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*"))
  return not is_other and path.suffix.lower() in (".dcm", ".dicom", "")


def probe_size(path: pathlib.Path) -> tuple[int, int]:
  """(height, width) of an image from its header, without decoding pixels."""
  if nifti.is_nifti(path):
    raise images.ImageReadError(f"{path}: NIfTI volume: training reads one 2-D image per file")
  try:
    if _looks_like_dicom(path):
      ds = pydicom.dcmread(path, stop_before_pixels=True)
      if "Rows" not in ds or "Columns" not in ds:
        raise images.ImageReadError(f"{path}: DICOM has no Rows/Columns")
      return int(ds.Rows), int(ds.Columns)
    with Image.open(path) as im:
      im.verify()  # Catches truncated and corrupt files cheaply.
      return im.size[1], im.size[0]
  except images.ImageReadError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise images.ImageReadError(f"{path}: cannot read image header ({e})") from None


def _handle(problem: str, strict: bool):
  if strict:
    raise DataError(problem)
  logging.warning("skipping %s", problem)


def matches(relative: str, patterns) -> bool:
  """Glob patterns on the path relative to the folder, or on the file name alone."""
  name = relative.rsplit("/", 1)[-1]
  return any(fnmatch.fnmatchcase(relative, p) or fnmatch.fnmatchcase(name, p)
             for p in patterns)


def split_folders(folders) -> list[pathlib.Path]:
  """``data.train_dir``/``eval_dir`` as folders: one path, or several separated by commas."""
  if isinstance(folders, (str, pathlib.PurePath)):
    folders = [part for part in str(folders).split(",") if part.strip()]
  return [pathlib.Path(str(folder).strip()).expanduser() for folder in folders]


def stretched_record(image: image_lib.Image, name: str) -> dict:
  """The record of a 2-D image: its pixels at the depth and range the networks see."""
  pixels, bits = image.pixels, image.bits
  if image.stretchable:
    pixels, bits = levels.stretched(pixels, bits)
  return {"image": pixels, "bits": bits, "name": name}


class FolderSource:
  """Images in one or more folders (recursive), decoded on access.

  ``folder`` is a path, several separated by commas, or a list of paths;
  images are named by their path relative to their own folder, and two
  folders may not both hold one name. ``include``/``exclude`` are glob
  patterns (``*.png``, ``nih_0002*``, ``sub/dir/*``) on those names that
  select files, so that one folder can hold both a training split and a
  held-out split. ``cache`` keeps decoded images in memory: for a small set
  of large radiographs, decoding dominates reading.
  """

  def __init__(self, folder, min_size: int = 0, strict: bool = False,
               include=(), exclude=(), cache: bool = False,
               hu_range: tuple[float, float] = image_lib.DEFAULT_HU_RANGE):
    self.folders = split_folders(folder)
    if not self.folders:
      raise DataError("no folder given")
    self.folder = self.folders[0]
    self.hu_range = tuple(float(v) for v in hu_range)
    self.strict = strict
    self._cache = {} if cache else None
    self._names: dict[pathlib.Path, str] = {}
    owner: dict[str, pathlib.Path] = {}
    selected = []
    for root in self.folders:
      try:
        candidates = images.list_images(root)
      except images.ImageReadError as e:
        raise DataError(str(e)) from None
      for path in candidates:
        relative = path.relative_to(root).as_posix()
        if include and not matches(relative, include):
          continue
        if exclude and matches(relative, exclude):
          continue
        if relative in owner:
          raise DataError(f"{path}: {root} and {owner[relative]} both hold {relative}; "
                          "rename one or select with include/exclude")
        owner[relative] = root
        self._names[path] = relative
        selected.append(path)
    where = ",".join(str(f) for f in self.folders)
    if not selected:
      raise DataError(f"{where}: no images left after include={list(include)} "
                      f"exclude={list(exclude)}")
    candidates = selected
    self.paths: list[pathlib.Path] = []
    for path in candidates:
      try:
        # Strict runs decode every file up front, so that one whose header
        # reads but whose pixels do not stops the run before training.
        h, w = self._read(path).pixels.shape if strict else probe_size(path)
      except images.ImageReadError as e:
        _handle(str(e), strict)
        continue
      if min(h, w) < min_size:
        _handle(f"{path}: image is {w}x{h}, smaller than the {min_size}x{min_size} patch", strict)
        continue
      self.paths.append(path)
    if not self.paths:
      raise DataError(f"{where}: no usable images (need at least {min_size}x{min_size} px)")

  def __len__(self) -> int:
    return len(self.paths)

  def __getitem__(self, index: int) -> dict:
    # A file that passed the header probe may still fail to decode; fall back
    # deterministically to the next file so a worker never dies mid-run.
    for offset in range(len(self.paths)):
      path = self.paths[(index + offset) % len(self.paths)]
      if self._cache is not None and path in self._cache:
        return dict(self._cache[path])
      try:
        rad = self._read(path)
      except images.ImageReadError as e:
        logging.warning("skipping %s", e)
        continue
      record = stretched_record(rad, self._names[path])
      if self._cache is not None:
        record["image"].setflags(write=False)  # Shared by every later access.
        self._cache[path] = record
      return dict(record)
    raise DataError(f"{','.join(str(f) for f in self.folders)}: none of the images could be "
                    "decoded")

  def __repr__(self):
    return f"FolderSource({','.join(str(f) for f in self.folders)!r}, {len(self.paths)} images)"

  def whole_images(self) -> list[tuple[str, callable]]:
    """(name, load) per image, ``load() -> images.Radiograph``: for evaluation,
    which reads each file whole, with its format and stated depth."""
    return [(self._names[path], lambda path=path: self._read(path)) for path in self.paths]

  def _read(self, path):
    """CT slices are read with the configured HU range (``data.hu_range``)."""
    return images.read_image(path, hu_range=self.hu_range)


class ArrayRecordSource:
  """A tensorflow-datasets ArrayRecord split (see ``jaxsr.data.tfds_builders``)."""

  def __init__(self, data_source, min_size: int = 0, strict: bool = False, label: str = ""):
    self._source = data_source
    self._to_radiograph = tfds_builders.record_to_radiograph
    self.indices: list[int] = []
    for i in range(len(data_source)):
      record = data_source[i]
      h, w = int(record["height"]), int(record["width"])
      if min(h, w) < min_size:
        name = record["filename"]
        name = name.decode() if isinstance(name, bytes) else str(name)
        _handle(f"{label}:{name}: image is {w}x{h}, smaller than the "
                f"{min_size}x{min_size} patch", strict)
        continue
      self.indices.append(i)
    if not self.indices:
      raise DataError(f"{label}: no usable images (need at least {min_size}x{min_size} px)")

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, index: int) -> dict:
    pixels, bits, name = self._to_radiograph(self._source[self.indices[index]])
    return stretched_record(images.Radiograph(pixels=pixels, bits=int(bits), path=name,
                                              file_format="arrayrecord"), name)

  def whole_images(self) -> list[tuple[str, callable]]:
    """(name, load) per record, as FolderSource.whole_images."""
    def load(index):
      record = self[index]
      return images.Radiograph(pixels=record["image"], bits=record["bits"], path=record["name"],
                               file_format="arrayrecord")
    names = []
    for index in range(len(self)):
      name = self._source[self.indices[index]]["filename"]
      names.append(name.decode() if isinstance(name, bytes) else str(name))
    return [(name, lambda index=index: load(index)) for index, name in enumerate(names)]
