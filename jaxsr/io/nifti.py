"""NIfTI-1/2 volumes (``.nii``, ``.nii.gz``) as :class:`~jaxsr.io.image.Image` frames, and back.

The networks upscale 2-D frames, so a volume is read as the stack of its
slices along one axis (by default the axis with the coarsest spacing: the
in-plane resolution is what an axial CT or MR series has most of). A 4-D
series is every slice of every volume, volume-major.

Reading works on the stored (unscaled) samples with the header's
``scl_slope``/``scl_inter`` as the :class:`~jaxsr.io.image.Encoding`, so an
upscaled result can be written back as the same data type with the same
scaling: the file a user gets looks like the one they gave, only with
more voxels in-plane, and lies in the same place in world coordinates.

Every failure while reading is an :class:`~jaxsr.io.image.ImageReadError`
whose message is one line starting with the path; the input is only read.
"""
import contextlib
import dataclasses
import gzip
import os
import pathlib
import zlib
from typing import Optional, Sequence

import nibabel
from nibabel import arraywriters
from nibabel import fileholders
from nibabel import imageglobals
from nibabel import volumeutils
import numpy as np

from jaxsr import errors
from jaxsr.io import files
from jaxsr.io import image as image_lib

EXTENSIONS = (".nii", ".nii.gz")

DEFAULT_HU_RANGE = image_lib.DEFAULT_HU_RANGE
ImageReadError = image_lib.ImageReadError

# Air in HU is -1000 (stored -1024 by most scanners): integer data whose lowest
# value lies here are taken for CT when no modality is given.
_CT_AIR = (-1100.0, -900.0)
_GZIP_MAGIC = b"\x1f\x8b"
_NIFTI2_MAGIC = b"n+2\x00\r\n\x1a\n"
# Deflate cannot shrink data by more than about 1032:1; a header that claims more
# data than that describes a damaged file, and must not make us allocate it.
_MAX_DEFLATE_RATIO = 1032
# Voxels converted to [0, 1] at once: bounds the float64 temporaries of a big volume.
_CHUNK_VOXELS = 1 << 22
# Image.bits is a level depth (jaxsr.io.levels accepts 1..32).
_MAX_BITS = 32
# nibabel's own choice for .nii.gz: output volumes are large, and level 1 is fast.
_GZIP_LEVEL = 1


class _Problem(Exception):
  """A problem with the file, worded for the user; becomes '<path>: <problem>'."""


def is_nifti(path) -> bool:
  """Whether ``path`` is named like a NIfTI file (``.nii`` or ``.nii.gz``, any case)."""
  return os.fsdecode(path).lower().endswith(EXTENSIONS)


def default_slice_axis(zooms: Sequence[float]) -> int:
  """The spatial axis (0..2) with the largest voxel spacing, ties going to the last.

  The coarse axis is the one a series was acquired along; the frames are the
  finely sampled planes. Ties go to the last axis, the usual slice axis of an
  isotropic volume.
  """
  spacing = np.nan_to_num(np.abs(np.asarray(zooms, np.float64)[:3]))
  if spacing.size == 0:
    return 2
  return int(max(range(spacing.size), key=lambda axis: (spacing[axis], axis)))


def _modality(modality: Optional[str]) -> Optional[str]:
  if modality is None or modality == "":
    return None
  name = str(modality).upper()
  if name not in ("CT", "MR"):
    raise errors.UsageError(f"modality must be 'ct', 'mr' or None, got {modality!r}")
  return name


def read(path, *, hu_range: Sequence[float] = DEFAULT_HU_RANGE,
         modality: Optional[str] = None, slice_axis: Optional[int] = None) -> image_lib.Image:
  """Reads a 2-D, 3-D or 4-D NIfTI file as an Image of 2-D frames.

  Args:
    path: a ``.nii`` or ``.nii.gz`` file (compression is recognised from the content).
    hu_range: the HU mapped onto [0, 1] for CT, so tissue has the same pixel
      values whatever the scanner stored.
    modality: 'ct', 'mr' or None (guess: CT for integer data whose lowest value is
      air in HU, else unknown). CT maps ``hu_range`` onto [0, 1]; anything else
      its stored range (integers) or its value range (floats).
    slice_axis: the data axis (0..2) frames are taken along; default
      :func:`default_slice_axis` of the voxel spacing (or a length-1 spatial
      axis where the data have one, so a single slice stays one frame).

  Returns:
    frames ``np.moveaxis(data, slice_axis, 0)`` (4-D: all slices of volume 0,
    then volume 1, ...), each frame's rows and columns the two remaining axes in
    their order; ``encoding`` gives the stored samples back exactly.

  Raises:
    ImageReadError: one line '<path>: <problem>' for any file that cannot be read.
    UsageError: a modality or slice axis that can never be valid.
  """
  name = os.fsdecode(path)
  modality = _modality(modality)
  if slice_axis is not None and slice_axis not in (0, 1, 2):
    raise errors.UsageError(f"slice_axis must be 0, 1 or 2, got {slice_axis!r}")
  hu_range = _check_hu_range(hu_range)
  try:
    img, data, _ = _load(name, with_data=True)
    return _to_image(name, img, data, hu_range=hu_range, modality=modality,
                     slice_axis=slice_axis)
  except _Problem as problem:
    raise ImageReadError(f"{name}: {problem}") from problem.__cause__


def _check_hu_range(hu_range) -> tuple[float, float]:
  low, high = (float(v) for v in hu_range)
  if not (np.isfinite(low) and np.isfinite(high)) or high <= low:
    raise errors.UsageError(f"hu_range must be two finite values, low < high; got "
                            f"{tuple(hu_range)}")
  return low, high


def _load(name: str, *, with_data: bool):
  """The nibabel image of ``name``, (if asked) its stored samples in native byte order,
  and its header as stored (nibabel's image header has the scaling reset)."""
  try:
    raw = open(name, "rb")  # pylint: disable=consider-using-with
  except FileNotFoundError:
    if os.path.islink(name):
      raise image_lib.ImageNotFoundError(
          f"{name}: broken symbolic link (to {os.readlink(name)})") from None
    raise image_lib.ImageNotFoundError(f"{name}: no such file") from None
  except IsADirectoryError:
    raise _Problem("is a folder, not a NIfTI file") from None
  except OSError as error:
    raise _Problem(f"cannot read file ({error.strerror or error})") from None
  with raw:
    size = os.fstat(raw.fileno()).st_size
    if size == 0:
      raise _Problem("empty file (0 bytes)")
    compressed = raw.read(2) == _GZIP_MAGIC
    raw.seek(0)
    stream = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
    with stream:
      try:
        img, stored_header = _header_image(stream, size, compressed)
        if not with_data:
          return img, None, stored_header
        data = _data(img, stream)
        if compressed:
          # The gzip CRC and length are checked only at the end of the stream.
          while stream.read(1 << 20):
            pass
      except (_Problem, MemoryError):
        raise
      except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        if not compressed:
          raise _Problem(f"broken NIfTI data ({_describe(error)})") from error
        raise _Problem(f"truncated or damaged gzip data ({_describe(error)})") from error
      except OSError as error:
        raise _Problem(f"cannot read file ({_describe(error)})") from error
  return img, data, stored_header


def _describe(error: BaseException) -> str:
  return f"{type(error).__name__}: {error}"


def _header_image(stream, size: int, compressed: bool):
  """The lazily loaded nibabel image and the header as stored, after checking what
  nibabel leaves unchecked."""
  start = stream.read(544)
  stream.seek(0)
  klass, endianness = _image_class(start)
  stored_header = klass.header_class(start[:klass.header_class.sizeof_hdr], endianness,
                                     check=False)
  ndim = int(stored_header["dim"][0])
  dims = tuple(int(d) for d in stored_header["dim"][1:])
  # Before nibabel: it guesses the byte order from dim[0] and reports a bad one as
  # another field's problem.
  if not 1 <= ndim <= 7:
    raise _Problem(f"broken NIfTI header (dim[0] is {ndim}, not 1..7)")
  dims = dims[:ndim]
  if min(dims) < 1:
    raise _Problem(f"broken NIfTI header (dimensions {dims} are not all positive)")
  if ndim < 2 or ndim > 4:
    raise _Problem(f"{ndim}-D data {dims}; only 2-D, 3-D and 4-D NIfTI can be read")
  try:
    file_map = {"image": fileholders.FileHolder(fileobj=stream)}
    with _quiet_nibabel():
      img = klass.from_file_map(file_map, mmap=False, keep_file_open=False)
    dtype = img.header.get_data_dtype()
    offset = int(img.dataobj.offset)
  except (EOFError, zlib.error, gzip.BadGzipFile, MemoryError):
    raise
  except Exception as error:  # pylint: disable=broad-except
    # nibabel raises many exception types for a bad header; the caller needs one.
    raise _Problem(f"broken NIfTI header ({_describe(error)})") from error
  if dtype.kind not in "iuf" or (dtype.kind == "f" and dtype.itemsize > 8):
    raise _Problem(f"unsupported data type {_dtype_name(dtype)}; only integer, float32 "
                   "and float64 NIfTI can be read")
  nbytes = int(np.prod(dims, dtype=object)) * dtype.itemsize
  if not compressed and offset + nbytes > size:
    raise _Problem(f"truncated data (the header promises {nbytes} bytes from byte {offset}; "
                   f"the file has {size} bytes)")
  if compressed and offset + nbytes > _MAX_DEFLATE_RATIO * size + (1 << 20):
    raise _Problem(f"broken NIfTI header (it promises {offset + nbytes} bytes, more than "
                   f"a {size}-byte gzip file can hold)")
  return img, stored_header


@contextlib.contextmanager
def _quiet_nibabel():
  """Keeps nibabel's header-check log lines off stderr: a problem it cannot fix is
  raised (and reported on one line), one it fixes needs no word."""
  logger = imageglobals.logger
  disabled, logger.disabled = logger.disabled, True
  try:
    yield
  finally:
    logger.disabled = disabled


def _dtype_name(dtype: np.dtype) -> str:
  return "RGB" if dtype.names else dtype.name


def _image_class(start: bytes):
  """NIfTI-1 or -2 and the byte order, from the first bytes; a clear message otherwise."""
  if len(start) < 348:
    raise _Problem(f"not a NIfTI file (only {len(start)} bytes, shorter than a NIfTI header)")
  little, big = int.from_bytes(start[:4], "little"), int.from_bytes(start[:4], "big")
  if start[4:12] == _NIFTI2_MAGIC:
    klass = nibabel.Nifti2Image
  elif start[344:348] == b"ni1\x00":
    raise _Problem("a NIfTI-1 header of a .hdr/.img pair; only single-file .nii / .nii.gz "
                   "can be read")
  elif start[344:348] == b"n+1\x00":
    klass = nibabel.Nifti1Image
  elif 348 in (little, big):
    raise _Problem("not a NIfTI file (an ANALYZE 7.5 header without the NIfTI magic)")
  else:
    raise _Problem("not a NIfTI file (no NIfTI-1 or NIfTI-2 header)")
  size = klass.header_class.sizeof_hdr
  if size not in (little, big):
    raise _Problem(f"broken NIfTI header (sizeof_hdr is {little}, not {size})")
  if len(start) < size:
    raise _Problem(f"broken NIfTI header (only {len(start)} of its {size} bytes)")
  return klass, "<" if little == size else ">"


def _data(img, stream) -> np.ndarray:
  stream.seek(0)
  try:
    data = np.asarray(img.dataobj.get_unscaled())
  except (EOFError, zlib.error, gzip.BadGzipFile, MemoryError):
    raise
  except Exception as error:  # pylint: disable=broad-except
    raise _Problem(f"broken NIfTI data ({_describe(error)})") from error
  if not data.dtype.isnative:
    data = data.astype(data.dtype.newbyteorder("="))
  return data


def _slope_inter(img) -> tuple[float, float]:
  """scl_slope/scl_inter as nibabel applies them (0 or nan slope: 1 and 0)."""
  return float(img.dataobj.slope), float(img.dataobj.inter)


def _slice_axis(shape: tuple[int, ...], zooms, slice_axis: Optional[int]) -> int:
  if len(shape) == 2:
    if slice_axis not in (None, 2):
      raise _Problem(f"2-D image {shape} has no axis {slice_axis} to take slices along")
    return 2
  if slice_axis is not None:
    return slice_axis
  single = [axis for axis in range(3) if shape[axis] == 1]
  if len(single) == 1:
    # One slice is one frame, whatever the spacing along it says.
    return single[0]
  return default_slice_axis(zooms[:3])


def _frames_view(data: np.ndarray, slice_axis: int) -> np.ndarray:
  """(F, rows, cols) view of the data: frame index t * n_slices + z."""
  if data.ndim == 2:
    return data[None]
  if data.ndim == 3:
    return np.moveaxis(data, slice_axis, 0)
  volumes = np.moveaxis(data, (3, slice_axis), (0, 1))
  return volumes.reshape((-1,) + volumes.shape[2:])


def _in_plane_axes(ndim: int, slice_axis: int) -> tuple[int, int]:
  return tuple(axis for axis in range(min(ndim, 3)) if axis != slice_axis)[:2]


def _encoding(stored_min: int | float, stored_max: int | float, dtype: np.dtype,
              slope: float, inter: float, modality: Optional[str],
              hu_range) -> tuple[image_lib.Encoding, int]:
  """The encoding of the data and the Image's bit depth."""
  name = dtype.name
  ends = sorted((stored_min * slope + inter, stored_max * slope + inter))
  if dtype.kind == "f":
    bits = min(_MAX_BITS, 8 * dtype.itemsize)
    value_range = hu_range if modality == "CT" else ends
    if modality != "CT" and not ends[1] > ends[0]:
      raise _Problem(f"constant image (every value is {ends[0]:g}): no range to map onto [0, 1]")
    encoding = dataclasses.replace(
        image_lib.Encoding.for_values(bits, True, slope=slope, intercept=inter,
                                      value_range=value_range, dtype=name),
        floating=True)
    return encoding, encoding.grid_bits if modality == "CT" else bits
  if modality == "CT":
    # [0, 1] is the HU range whatever the stored range; output samples are clipped only
    # to what the data type holds.
    encoding = image_lib.Encoding.for_values(
        8 * dtype.itemsize, dtype.kind == "i", slope=slope, intercept=inter,
        value_range=hu_range, dtype=name)
    return encoding, encoding.grid_bits
  if stored_min >= 0:
    signed, bits = False, max(8, int(stored_max).bit_length())
  else:
    signed = True
    bits = max(8, max(-int(stored_min), int(stored_max)).bit_length() + 1)
  # -2**15 needs 17 bits by that count but fits int16: never more than the container.
  bits = min(bits, 8 * dtype.itemsize)
  encoding = image_lib.Encoding.for_values(bits, signed, slope=slope, intercept=inter,
                                           dtype=name)
  return encoding, min(bits, _MAX_BITS)


def _to_image(name: str, img, data: np.ndarray, *, hu_range, modality: Optional[str],
              slice_axis: Optional[int]) -> image_lib.Image:
  header = img.header
  shape = tuple(int(n) for n in data.shape)
  zooms = tuple(float(z) for z in header.get_zooms())
  slope, inter = _slope_inter(img)
  axis = _slice_axis(shape, zooms, slice_axis)
  finite = None
  if data.dtype.kind == "f":
    finite = np.isfinite(data)
    if finite.all():
      finite = None
    elif not finite.any():
      raise _Problem("no finite values (every voxel is NaN or infinite)")
  present = data if finite is None else data[finite]
  stored_min, stored_max = present.min().item(), present.max().item()
  del present
  guess = ""
  if modality is None:
    lowest = min(stored_min * slope + inter, stored_max * slope + inter)
    is_ct = data.dtype.kind in "iu" and _CT_AIR[0] <= lowest <= _CT_AIR[1]
    modality = "CT" if is_ct else None
    guess = (f"CT guessed from its lowest value, {lowest:g} (air in HU); --modality=mr if not"
             if is_ct else "")
  encoding, bits = _encoding(stored_min, stored_max, data.dtype, slope, inter, modality,
                             hu_range)
  view = _frames_view(data, axis)
  frames = np.empty(view.shape, np.float32)
  step = max(1, _CHUNK_VOXELS // max(1, view.shape[1] * view.shape[2]))
  for start in range(0, view.shape[0], step):
    frames[start:start + step] = encoding.to_unit(view[start:start + step])
  if finite is not None:
    # NaN marks 'no data' (outside a mask); the networks need numbers there.
    np.nan_to_num(frames, copy=False, nan=0.0)
  rows, cols = _in_plane_axes(data.ndim, axis)
  geometry = image_lib.Geometry(
      pixel_spacing=(zooms[rows], zooms[cols]),
      affine=np.array(img.affine, np.float64),
      slice_axis=axis, shape=shape)
  return image_lib.Image(
      frames=frames, bits=int(bits), path=name, file_format="nifti", photometric=None,
      modality=modality or "", encoding=encoding, geometry=geometry, sources=(name,),
      kind="image" if frames.shape[0] == 1 else "volume", modality_guess=guess)


def output_affine(affine: np.ndarray, slice_axis: int, scale: int) -> np.ndarray:
  """The affine of the volume whose in-plane axes have ``scale`` times as many voxels.

  Each in-plane column is divided by ``scale``, and the origin moves by
  :func:`~jaxsr.io.image.shift_first_centre` old voxels along it, so each output
  voxel centre lies where half-pixel (bilinear-style) resampling puts it and the
  volume covers the same space as before.
  """
  scale = _check_scale(scale)
  old = np.array(affine, np.float64)
  if old.shape != (4, 4):
    raise ValueError(f"affine must be 4x4, got shape {old.shape}")
  new = old.copy()
  shift = image_lib.shift_first_centre(scale)
  for axis in _in_plane_axes(3, slice_axis):
    new[:3, 3] += shift * old[:3, axis]
    new[:3, axis] = old[:3, axis] / scale
  return new


def _check_scale(scale) -> int:
  if isinstance(scale, bool) or int(scale) != scale or scale < 1:
    raise ValueError(f"scale must be a positive integer, got {scale!r}")
  return int(scale)


def write(stored: np.ndarray, source: image_lib.Image, path, *, scale: int) -> None:
  """Writes upscaled frames as a NIfTI like ``source``'s file, ``scale`` times finer in-plane.

  The output keeps the source's header (NIfTI-1 or -2, data type, scl_slope and
  scl_inter, qform/sform codes, units, extensions), so ``stored`` is written
  unchanged as the file's samples; only the shape, the in-plane zooms and the
  qform/sform (:func:`output_affine` of each) change. The source's header is
  read again from ``source.path``, which an Image does not carry.

  Args:
    stored: (F, H * scale, W * scale) in ``source.encoding.dtype``: the output's
      stored samples in frame order (``source.encoding.to_stored`` of the frames).
    source: the Image :func:`read` returned for the input.
    path: the output; ``.nii.gz`` is gzip-compressed, ``.nii`` is not. It is written
      under a temporary name and renamed, so it is never left half-written.
    scale: the in-plane factor.
  """
  scale = _check_scale(scale)
  target = os.fsdecode(path)
  if not is_nifti(target):
    raise errors.UsageError(f"{target}: a NIfTI output must be named .nii or .nii.gz")
  geometry, encoding = source.geometry, source.encoding
  if source.file_format != "nifti" or encoding is None or geometry.shape is None:
    raise ValueError(f"{source.path}: not an image read from a NIfTI file")
  stored = np.asarray(stored)
  want = (source.num_frames, source.height * scale, source.width * scale)
  if stored.shape != want:
    raise ValueError(f"stored samples have shape {stored.shape}; {source.path} upscaled "
                     f"x{scale} needs {want}")
  if stored.dtype.name != np.dtype(encoding.dtype).name:
    raise ValueError(f"stored samples are {stored.dtype.name}; {source.path} stores "
                     f"{np.dtype(encoding.dtype).name}")
  try:
    img, _, stored_header = _load(source.path, with_data=False)
  except _Problem as problem:
    raise ImageReadError(f"{source.path}: {problem}") from problem.__cause__
  shape, axis = tuple(geometry.shape), int(geometry.slice_axis)
  if tuple(img.shape) != shape or img.get_data_dtype().name != np.dtype(encoding.dtype).name:
    raise ImageReadError(f"{source.path}: changed since it was read (now "
                         f"{img.get_data_dtype().name} {tuple(img.shape)}, was "
                         f"{encoding.dtype} {shape})")
  header = _output_header(img.header, stored_header, shape, axis, scale)
  data = _from_frames(stored, header.get_data_shape(), axis)
  compress = target.lower().endswith(".gz")

  def write_to(tmp: str) -> None:
    with open(tmp, "wb") as raw:
      if compress:
        # The temporary name ends in .tmp: compress here rather than leave it to nibabel.
        gz_name = os.path.basename(target)[:-3]
        with gzip.GzipFile(gz_name, "wb", _GZIP_LEVEL, raw, mtime=0) as stream:
          _write_nifti(stream, header, data)
      else:
        _write_nifti(raw, header, data)

  files.write_atomically(pathlib.Path(target), write_to)


def _output_header(source_header, stored_header, shape: tuple[int, ...], axis: int,
                   scale: int):
  """The source's header for the upscaled shape, zooms and affines; codes kept."""
  header = source_header.copy()
  # The samples are written as they are, so the file keeps the scaling it had.
  for field in ("scl_slope", "scl_inter"):
    header[field] = stored_header[field]
  in_plane = _in_plane_axes(len(shape), axis)
  new_shape = tuple(n * scale if i in in_plane else n for i, n in enumerate(shape))
  zooms = tuple(z / scale if i in in_plane else z
                for i, z in enumerate(source_header.get_zooms()))
  qform_code, sform_code = int(header["qform_code"]), int(header["sform_code"])
  # Each transform moves with the voxels on its own: a scanner qform and a registered
  # sform stay what they were.
  qform = output_affine(source_header.get_qform(), axis, scale)
  sform = output_affine(source_header.get_sform(), axis, scale)
  header.set_data_shape(new_shape)
  header.set_qform(qform, code=qform_code)
  header.set_sform(sform, code=sform_code)
  # Last: set_qform writes its column lengths into pixdim; the zooms are these exactly.
  header.set_zooms(zooms)
  return header


def _from_frames(stored: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray:
  """The inverse of :func:`_frames_view`: frames back to the data's axis order."""
  if len(shape) == 2:
    return stored[0]
  if len(shape) == 3:
    return np.moveaxis(stored, 0, axis)
  volumes = stored.reshape((shape[3], shape[axis]) + stored.shape[1:])
  return np.moveaxis(volumes, (0, 1), (3, axis))


def _write_nifti(stream, header, data: np.ndarray) -> None:
  """Header, extensions and the samples as they are: no scaling of nibabel's own."""
  header.write_to(stream)
  volumeutils.seek_tell(stream, header.get_data_offset(), write0=True)
  writer = arraywriters.ArrayWriter(data, header.get_data_dtype(), check_scaling=False)
  writer.to_fileobj(stream, order="F")

