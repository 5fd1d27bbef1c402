"""CT, MR and ultrasound from ``../shared/data`` through the readers and ``jaxsr upscale``.

The network is MSRResNet with every weight zero, which is exactly bilinear x2
(half-pixel centres, edge-clamped): every output must equal bilinear x2 of its
input in the file's own stored values (HU for CT, the modality LUT's output
where there is one) and lie where the half-pixel rule puts it in world
coordinates. Expected values are read from the files with pydicom and nibabel,
not with jaxsr's readers, so a reader bug cannot hide a writer bug; the output
series is also read back by nibabel's DICOM wrapper, an independent reader.
``JAXSR_SHARED_DATA_DIR`` overrides ``../shared/data`` (see tests/conftest.py).
"""
import contextlib
import dataclasses
import gzip
import hashlib
import io
import pathlib
import shutil
import warnings

import jax
import nibabel
from nibabel import affines as nib_affines
import numpy as np
import pydicom
from pydicom import uid as dicom_uid
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, convert_color_space
from pydicom.pixels import pixel_array as decode_pixels
import pytest

from jaxsr import upscale, weights
from jaxsr.inference import derived
from jaxsr.io import compression, images, series

with warnings.catch_warnings():
  # nibabel warns on import that its DICOM readers are experimental; we use only the basics.
  warnings.simplefilter("ignore", UserWarning)
  from nibabel.nicom import dicomwrappers

SCALE = 2
SERIES = "ct/invesalius_head_ct"
CT_NIFTI = "ct/invesalius_head_ct.nii.gz"
MR_NIFTI = "mr/mni_icbm152_t1_2009a.nii.gz"
# Every DICOM file of ct/, mr/ and us/ (beside the series) and its kind: facts of the data
# (per-frame positions make slices a volume; frames without positions, or ultrasound, a cine).
DICOM_KINDS = {
    "ct/eCT_Supplemental.dcm": "volume",
    "ct/mlut_18.dcm": "image",
    "mr/MR-SIEMENS-DICOM-WithOverlays.dcm": "image",
    "mr/emri_small.dcm": "cine",
    "mr/emri_small_jpeg_ls_lossless.dcm": "cine",
    "us/US1_UNCR.dcm": "image",
    "us/OBXXXX1A.dcm": "image",
    "us/color3d_jpeg_baseline.dcm": "cine",
}
GREY_DICOMS = ("ct/eCT_Supplemental.dcm", "ct/mlut_18.dcm",
               "mr/MR-SIEMENS-DICOM-WithOverlays.dcm", "mr/emri_small.dcm",
               "mr/emri_small_jpeg_ls_lossless.dcm")
# Output pixels (row, col) whose world positions are checked: corners and one inside.
PROBES = ((0, 0), (0, -1), (-1, 0), (-1, -1), (17, 301))


# Helpers: the reference resampling, the files' own values and geometry.


def bilinear(x: np.ndarray, s: int = SCALE) -> np.ndarray:
  """Bilinear x s of axes 0 and 1 (float64), half-pixel centres, edges clamped: what
  torch's interpolate(align_corners=False) and a zero-weight MSRResNet compute."""
  x = np.asarray(x, np.float64)

  def axis(n):
    src = np.clip((np.arange(n * s) + 0.5) / s - 0.5, 0, n - 1)
    lo = np.floor(src).astype(int)
    return lo, np.minimum(lo + 1, n - 1), src - lo

  lo, hi, w = axis(x.shape[0])
  shape = (-1,) + (1,) * (x.ndim - 1)
  x = x[lo] * (1 - w).reshape(shape) + x[hi] * w.reshape(shape)
  lo, hi, w = axis(x.shape[1])
  shape = (1, -1) + (1,) * (x.ndim - 2)
  return x[:, lo] * (1 - w).reshape(shape) + x[:, hi] * w.reshape(shape)


def _sha(path: pathlib.Path) -> str:
  return hashlib.sha256(path.read_bytes()).hexdigest()


def _shared_files(shared: pathlib.Path) -> list[pathlib.Path]:
  return sorted(p for folder in ("ct", "mr", "us") for p in (shared / folder).rglob("*")
                if p.is_file())


def _item(ds, sequence: str, keyword: str, frame: int):
  """``keyword`` for ``frame``, looked up as the standard says: per-frame functional group,
  shared group, then the top level; None where the file does not have it."""
  groups = []
  per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
  if frame < len(per_frame):
    groups.append(per_frame[frame])
  groups += list(ds.get("SharedFunctionalGroupsSequence") or [])[:1]
  for group in groups:
    inner = group.get(sequence)
    if inner and keyword in inner[0]:
      return inner[0][keyword].value
  return ds.get(keyword)


def _floats(value):
  return None if value is None or value == "" else np.asarray(
      [float(v) for v in (value if isinstance(value, (list, tuple, MultiValue))
                          else [value])], np.float64)


def _frame_planes(ds) -> list[dict]:
  """Per frame: position, orientation (row dir, col dir), pixel spacing (between rows,
  between columns) and thickness, each None where the file has none."""
  count = int(ds.get("NumberOfFrames") or 1)
  planes = []
  for frame in range(count):
    planes.append(dict(
        position=_floats(_item(ds, "PlanePositionSequence", "ImagePositionPatient", frame)),
        orientation=_floats(_item(ds, "PlaneOrientationSequence", "ImageOrientationPatient",
                                  frame)),
        spacing=_floats(_item(ds, "PixelMeasuresSequence", "PixelSpacing", frame)),
        thickness=_floats(_item(ds, "PixelMeasuresSequence", "SliceThickness", frame))))
  return planes


def _world(plane: dict, rows, cols) -> np.ndarray:
  """Patient coordinates of pixel centres (rows, cols), by the DICOM formula."""
  rows, cols = np.asarray(rows, np.float64)[..., None], np.asarray(cols, np.float64)[..., None]
  row_dir, col_dir = plane["orientation"][:3], plane["orientation"][3:]
  return (plane["position"] + cols * plane["spacing"][1] * row_dir
          + rows * plane["spacing"][0] * col_dir)


def _probes(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
  rows = np.array([r % height for r, _ in PROBES], np.float64)
  cols = np.array([c % width for _, c in PROBES], np.float64)
  return rows, cols


def _assert_half_pixel_world(plane_in: dict, plane_out: dict, height_out: int, width_out: int,
                             what: str):
  """Output pixel centres lie where the half-pixel rule puts them on the input grid."""
  rows, cols = _probes(height_out, width_out)
  np.testing.assert_allclose(
      _world(plane_out, rows, cols),
      _world(plane_in, (rows + 0.5) / SCALE - 0.5, (cols + 0.5) / SCALE - 0.5),
      atol=1e-4, err_msg=what)


def _stored(ds, frames=None) -> np.ndarray:
  """Stored samples of ``frames`` (default: all) as (F, H, W) or (F, H, W, 3), colour as
  pydicom decodes it (RGB)."""
  if frames is not None and "NumberOfFrames" in ds:
    return np.stack([decode_pixels(ds, index=index) for index in frames])
  stored = ds.pixel_array
  return stored if "NumberOfFrames" in ds else stored[None]


def _values(ds, stored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(physical values, the modality LUT sorted or None) of grey stored samples: HU for CT."""
  if ds.get("ModalityLUTSequence"):
    return np.asarray(apply_modality_lut(stored, ds), np.float64), np.sort(
        np.asarray(ds.ModalityLUTSequence[0].LUTData, np.float64))
  slope = float(_item(ds, "PixelValueTransformationSequence", "RescaleSlope", 0) or 1)
  intercept = float(_item(ds, "PixelValueTransformationSequence", "RescaleIntercept", 0) or 0)
  return stored * slope + intercept, None


def _assert_within_a_level(expected: np.ndarray, got: np.ndarray, step, what: str):
  """``got`` is ``expected`` to within one stored step (a scalar, or per pixel for a LUT)."""
  error = np.abs(np.asarray(got, np.float64) - expected)
  excess = error - (np.asarray(step, np.float64) * (1 + 1e-6) + 1e-6)
  worst = np.unravel_index(np.argmax(excess), excess.shape)
  assert excess[worst] <= 0, (f"{what}: off by {error[worst]:.4g} (allowed "
                              f"{np.broadcast_to(step, error.shape)[worst]:.4g}) at {worst}")


def _lut_step(table_sorted: np.ndarray, values: np.ndarray) -> np.ndarray:
  """The LUT's local step at ``values``: the gap between the entries around each."""
  right = np.clip(np.searchsorted(table_sorted, values), 1, len(table_sorted) - 1)
  return table_sorted[right] - table_sorted[right - 1]


def _palette_rgb(ds) -> np.ndarray:
  """A PALETTE COLOR image's colours at 8 bits, from its own 16-bit LUT entries."""
  rgb = apply_color_lut(_stored(ds), ds)
  assert rgb.dtype == np.uint16 and not np.any(rgb & 0xFF), "8-bit colours in 16-bit entries"
  return (rgb >> 8).astype(np.uint8)


def _luma(rgb: np.ndarray) -> np.ndarray:
  return np.asarray(rgb, np.float64) @ np.array([0.299, 0.587, 0.114])


def _saturation(rgb: np.ndarray) -> float:
  """Mean spread between the channels: 0 for grey."""
  return float((rgb.max(-1) - rgb.min(-1)).mean())


# Fixtures: the weights, the input hashes, one upscale run per folder.


def _zero_msrresnet(path: pathlib.Path, channels: int) -> pathlib.Path:
  """A zero-weight MSRResNet x2: the residual branch vanishes, the bilinear skip remains."""
  kw = dict(num_feat=4, num_block=1)
  module = weights.build("msrresnet", SCALE, channels, kw)
  variables = module.init(jax.random.key(0), np.zeros((1, 8, 8, channels), np.float32))
  zero = jax.tree.map(np.zeros_like, variables)
  weights.save_safetensors(path, zero["params"], zero.get("batch_stats"), "msrresnet", SCALE,
                           channels, kw)
  return path


@pytest.fixture(scope="module")
def grey_weights(tmp_path_factory):
  return _zero_msrresnet(tmp_path_factory.mktemp("weights") / "grey.safetensors", 1)


@pytest.fixture(scope="module")
def colour_weights(tmp_path_factory):
  return _zero_msrresnet(tmp_path_factory.mktemp("weights") / "colour.safetensors", 3)


@pytest.fixture(scope="module")
def input_hashes(shared_data_dir):
  """Every shared CT/MR/US file's hash, taken before any run (every run asks for it)."""
  return {p: _sha(p) for p in _shared_files(shared_data_dir)}


@dataclasses.dataclass
class Run:
  status: int
  stderr: str
  output: pathlib.Path

  @property
  def failures(self) -> list[str]:
    return [line[line.index("jaxsr: failed: "):] for line in self.stderr.splitlines()
            if "jaxsr: failed: " in line]

  @property
  def closing(self) -> str:
    lines = [line[line.index("jaxsr: wrote "):] for line in self.stderr.splitlines()
             if "jaxsr: wrote " in line]
    assert len(lines) == 1, self.stderr[-2000:]
    return lines[0]


def _upscale(source, output: pathlib.Path, model: pathlib.Path, *flags) -> Run:
  """``jaxsr upscale`` in this process, stderr captured (progress bars included)."""
  err = io.StringIO()
  with contextlib.redirect_stderr(err):
    status = upscale.main([f"--input={source}", f"--output={output}", f"--weights={model}",
                           f"--scale={SCALE}", *flags])
  return Run(status, err.getvalue(), output)


@pytest.fixture(scope="module")
def ct_run(shared_data_dir, grey_weights, input_hashes, tmp_path_factory):
  """ct/ as it is (series, its NIfTI twin, Enhanced CT, modality LUT), default tiling."""
  del input_hashes
  return _upscale(shared_data_dir / "ct", tmp_path_factory.mktemp("ct") / "out", grey_weights)


@pytest.fixture(scope="module")
def mr_run(shared_data_dir, grey_weights, input_hashes, tmp_path_factory):
  """mr/ as it is (single-frame, Enhanced MR twice, the MNI NIfTI), no tiling."""
  del input_hashes
  return _upscale(shared_data_dir / "mr", tmp_path_factory.mktemp("mr") / "out", grey_weights,
                  "--tile=0")


def _ybr_full_copy(shared: pathlib.Path, target: pathlib.Path) -> pathlib.Path:
  """US1_UNCR stored as uncompressed YBR_FULL: the one colour model written as it came."""
  ds = pydicom.dcmread(shared / "us" / "US1_UNCR.dcm")
  ds.PixelData = convert_color_space(ds.pixel_array, "RGB", "YBR_FULL").tobytes()
  ds.PhotometricInterpretation = "YBR_FULL"
  ds.save_as(target)
  return target


@pytest.fixture(scope="module")
def us_run(shared_data_dir, colour_weights, input_hashes, tmp_path_factory):
  """The still ultrasound images (links to them, the cine is the slow test) and a YBR_FULL
  copy, through a three-channel model in small overlapping tiles."""
  del input_hashes
  root = tmp_path_factory.mktemp("us")
  folder = root / "in"
  folder.mkdir()
  for name in ("US1_UNCR.dcm", "OBXXXX1A.dcm"):
    (folder / name).symlink_to((shared_data_dir / "us" / name).resolve())
  _ybr_full_copy(shared_data_dir, folder / "ybr_full.dcm")
  return _upscale(folder, root / "out", colour_weights, "--tile=160", "--tile_overlap=8")


@pytest.fixture(scope="module")
def us_grey_run(shared_data_dir, grey_weights, input_hashes, tmp_path_factory):
  """An RGB ultrasound image through a one-channel model (luminance by the model)."""
  del input_hashes
  return _upscale(shared_data_dir / "us" / "US1_UNCR.dcm",
                  tmp_path_factory.mktemp("us_grey") / "out", grey_weights)


# 1. Reading: every file, with the frames, kind, colour and geometry the file states.


def test_the_folders_hold_the_files_covered_here(shared_data_dir):
  """So 'every file' below means every file: a new one must be added to these tests."""
  found = {p.relative_to(shared_data_dir).as_posix()
           for folder in ("ct", "mr", "us") for p in images.list_images(shared_data_dir / folder)}
  slices = {f for f in found if f.startswith(SERIES + "/")}
  assert len(slices) == 108
  assert found - slices == set(DICOM_KINDS) | {CT_NIFTI, MR_NIFTI}


@pytest.mark.parametrize("name", sorted(DICOM_KINDS))
def test_dicom_file_loads_as_stated(shared_data_dir, name):
  path = shared_data_dir / name
  ds = pydicom.dcmread(path)
  image = images.read_image(path)
  count = int(ds.get("NumberOfFrames") or 1)
  photometric = ds.PhotometricInterpretation
  colour = ds.SamplesPerPixel == 3 or photometric == "PALETTE COLOR"
  assert image.num_frames == count and (image.height, image.width) == (ds.Rows, ds.Columns)
  assert image.kind == DICOM_KINDS[name]
  assert image.photometric == photometric
  assert image.is_colour == colour and image.palette == (photometric == "PALETTE COLOR")
  assert image.modality == ds.Modality
  assert image.file_format == "dicom" and image.sources == (str(path),)

  # Every frame of the small files; the first, middle and last of the 120-frame cine.
  frames = range(count) if count <= 10 else sorted({0, count // 2, count - 1})
  if colour:
    # Colour as RGB: palette through its LUT, YBR converted (as pydicom decodes it).
    rgb = _palette_rgb(ds) if photometric == "PALETTE COLOR" else _stored(ds, frames)
    assert image.frames.shape == (count, ds.Rows, ds.Columns, 3) and image.bits == 8
    np.testing.assert_array_equal(np.rint(image.frames[list(frames)] * 255).astype(np.uint8), rgb)
  else:
    # Grey frames give the stored samples back exactly, and mean the file's values.
    stored = _stored(ds, frames)
    for index, frame in enumerate(frames):
      encoding = image.encoding_of(frame)
      np.testing.assert_array_equal(encoding.to_stored(image.frames[frame]), stored[index])
      values, table = _values(ds, stored[index])
      np.testing.assert_array_equal(encoding.values(stored[index]), values)
      assert encoding.linear == (table is None)

  planes = _frame_planes(ds)
  geometry = image.geometry
  for key, got in (("spacing", geometry.pixel_spacing), ("orientation", geometry.orientation)):
    want = planes[0][key]
    assert (got is None) == (want is None), key
    if want is not None:
      np.testing.assert_allclose(got, want, err_msg=key)
  positions = [p["position"] for p in planes]
  if any(p is None for p in positions):
    assert geometry.positions is None
  else:
    # Enhanced CT: each frame's own PlanePositionSequence, in frame order.
    np.testing.assert_allclose(geometry.positions, np.stack(positions))
  thickness = planes[0]["thickness"]
  assert geometry.slice_thickness == (None if thickness is None else thickness[0])
  between = _item(ds, "PixelMeasuresSequence", "SpacingBetweenSlices", 0)
  assert geometry.spacing_between_slices == (None if between is None else float(between))


def test_jpeg_ls_enhanced_mr_is_the_uncompressed_one(shared_data_dir):
  """Lossless compression: both files must read to the same frames and encoding."""
  plain = images.read_image(shared_data_dir / "mr" / "emri_small.dcm")
  packed = images.read_image(shared_data_dir / "mr" / "emri_small_jpeg_ls_lossless.dcm")
  np.testing.assert_array_equal(packed.frames, plain.frames)
  assert packed.bits == plain.bits == 12


@pytest.mark.parametrize("name, modality", [(CT_NIFTI, "CT"), (MR_NIFTI, "")])
def test_nifti_loads_as_stated(shared_data_dir, name, modality):
  path = shared_data_dir / name
  img = nibabel.load(path)
  data = np.asarray(img.dataobj.get_unscaled())
  image = images.read_image(path)
  # Frames along the coarsest axis (ties: the last): z for both.
  assert image.kind == "volume" and image.file_format == "nifti" and not image.is_colour
  assert image.geometry.slice_axis == 2
  assert image.frames.shape == (data.shape[2], data.shape[0], data.shape[1])
  assert image.modality == modality and image.is_ct_hu == (modality == "CT")
  np.testing.assert_array_equal(image.encoding.to_stored(image.frames), np.moveaxis(data, 2, 0))
  np.testing.assert_array_equal(image.geometry.affine, img.affine)
  np.testing.assert_allclose(image.geometry.pixel_spacing, img.header.get_zooms()[:2])


def test_head_ct_series_is_its_nifti_twin(shared_data_dir):
  """The shuffled slices sort along the normal into the volume the NIfTI holds."""
  folder = shared_data_dir / SERIES
  items = series.find(folder, images.list_images(folder))
  assert len(items) == 1
  item = items[0]
  assert item.is_series and item.problem == "" and len(item.paths) == 108
  headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in item.paths]
  assert len({h.SeriesInstanceUID for h in headers}) == 1
  positions = np.array([[float(v) for v in h.ImagePositionPatient] for h in headers])
  volume = item.load()
  assert volume.kind == "volume" and volume.num_frames == 108 and not volume.is_colour
  assert volume.frames.shape == (108, 256, 256)
  assert volume.modality == "CT" and volume.is_ct_hu and volume.photometric == "MONOCHROME2"
  assert volume.sources == tuple(str(p) for p in item.paths)
  geometry = volume.geometry
  np.testing.assert_allclose(geometry.positions, positions)
  normal = np.cross(geometry.orientation[:3], geometry.orientation[3:])
  np.testing.assert_allclose(np.diff(positions @ normal), 1.5, atol=1e-6)  # Sorted, no gap.
  np.testing.assert_allclose(geometry.pixel_spacing, [float(v) for v in headers[0].PixelSpacing])
  np.testing.assert_allclose(geometry.orientation,
                             [float(v) for v in headers[0].ImageOrientationPatient])
  assert geometry.spacing_between_slices == pytest.approx(1.5)
  assert geometry.slice_thickness == pytest.approx(1.5)

  hu = np.stack([volume.encoding_of(i).values(volume.encoding_of(i).to_stored(volume.frames[i]))
                 for i in range(volume.num_frames)])
  twin = nibabel.load(shared_data_dir / CT_NIFTI)
  # NIfTI is (x = column, y = row, z = slice); the series frames are (slice, row, column).
  np.testing.assert_array_equal(hu, np.asarray(twin.dataobj).transpose(2, 1, 0))
  # And slice k lies where the twin's affine puts its slice k.
  z = nib_affines.apply_affine(twin.affine, np.c_[np.zeros((108, 2)), np.arange(108)])[:, 2]
  np.testing.assert_allclose(positions[:, 2], z, atol=1e-6)


# 2. Upscaling: bilinear pixels, colour kept, geometry by the half-pixel rule.


def test_every_run_writes_everything(ct_run, mr_run, us_run, us_grey_run):
  for run, count in ((ct_run, 4), (mr_run, 4), (us_run, 3), (us_grey_run, 1)):
    assert run.status == 0 and not run.failures, run.stderr[-2000:]
    assert run.closing == f"jaxsr: wrote {count} of {count} input(s) to {run.output}"


def _check_derived_header(ds_in, ds_out, what: str):
  """What every upscaled DICOM must say: new instance and series, same study and frame
  of reference, twice the pixels, half the spacing, the same stored representation."""
  assert ds_out.Rows == ds_in.Rows * SCALE and ds_out.Columns == ds_in.Columns * SCALE, what
  assert int(ds_out.get("NumberOfFrames") or 1) == int(ds_in.get("NumberOfFrames") or 1), what
  assert ds_out.SOPInstanceUID != ds_in.SOPInstanceUID, what
  assert ds_out.file_meta.MediaStorageSOPInstanceUID == ds_out.SOPInstanceUID, what
  assert ds_out.SeriesInstanceUID != ds_in.SeriesInstanceUID, what
  assert ds_out.StudyInstanceUID == ds_in.StudyInstanceUID, what
  assert ds_out.get("FrameOfReferenceUID") == ds_in.get("FrameOfReferenceUID"), what
  assert int(ds_out.SeriesNumber) == int(ds_in.get("SeriesNumber") or 0) + 1000, what
  assert list(ds_out.ImageType)[:2] == [
      "DERIVED", "PRIMARY" if derived.is_enhanced(ds_in) else "SECONDARY"], what
  # Stored losslessly (the default, auto): never a lossy syntax.
  assert ds_out.file_meta.TransferSyntaxUID in compression.SYNTAXES.values(), what
  for keyword in ("BitsStored", "PixelRepresentation", "Modality"):
    assert ds_out.get(keyword) == ds_in.get(keyword), (what, keyword)
  if ds_in.SamplesPerPixel == 1 and ds_in.PhotometricInterpretation != "PALETTE COLOR":
    assert ds_out.PhotometricInterpretation == ds_in.PhotometricInterpretation, what
  for plane_in, plane_out in zip(_frame_planes(ds_in), _frame_planes(ds_out)):
    assert (plane_out["spacing"] is None) == (plane_in["spacing"] is None), what
    if plane_in["spacing"] is not None:
      np.testing.assert_allclose(plane_out["spacing"], plane_in["spacing"] / SCALE, rtol=1e-6)
    for key in ("orientation", "thickness"):
      assert (plane_out[key] is None) == (plane_in[key] is None), (what, key)
      if plane_in[key] is not None:
        np.testing.assert_array_equal(plane_out[key], plane_in[key], err_msg=f"{what} {key}")


@pytest.mark.parametrize("name", GREY_DICOMS)
def test_grey_dicom_is_bilinear_in_its_own_values(shared_data_dir, ct_run, mr_run, name):
  run = ct_run if name.startswith("ct/") else mr_run
  ds_in = pydicom.dcmread(shared_data_dir / name)
  ds_out = pydicom.dcmread(run.output / pathlib.Path(name).name)
  _check_derived_header(ds_in, ds_out, name)
  # The output's values mean the input's: the same rescale or modality LUT.
  for keyword in ("RescaleSlope", "RescaleIntercept", "RescaleType"):
    assert (_item(ds_out, "PixelValueTransformationSequence", keyword, 0)
            == _item(ds_in, "PixelValueTransformationSequence", keyword, 0)), keyword
  if "ModalityLUTSequence" in ds_in:
    lut_in, lut_out = ds_in.ModalityLUTSequence[0], ds_out.ModalityLUTSequence[0]
    assert list(lut_out.LUTDescriptor) == list(lut_in.LUTDescriptor)
    np.testing.assert_array_equal(lut_out.LUTData, lut_in.LUTData)
  stored_in, stored_out = _stored(ds_in), _stored(ds_out)
  for frame in range(stored_in.shape[0]):
    values_in, table = _values(ds_in, stored_in[frame])
    values_out, _ = _values(ds_out, stored_out[frame])
    expected = bilinear(values_in)
    if table is None:
      step = abs(float(_item(ds_in, "PixelValueTransformationSequence", "RescaleSlope", 0) or 1))
    else:
      step = _lut_step(table, expected)  # mlut_18: 16 or 17 between entries.
    _assert_within_a_level(expected, values_out, step, f"{name} frame {frame}")


def test_overlays_of_the_old_grid_are_gone(shared_data_dir, mr_run):
  name = "MR-SIEMENS-DICOM-WithOverlays.dcm"
  assert any(0x6000 <= t.group <= 0x601E for t in pydicom.dcmread(shared_data_dir / "mr" / name)
             .keys())
  assert not any(0x6000 <= t.group <= 0x601E for t in pydicom.dcmread(mr_run.output / name).keys())


@pytest.mark.parametrize("name", ["mr/MR-SIEMENS-DICOM-WithOverlays.dcm",
                                  "ct/eCT_Supplemental.dcm"])
def test_dicom_pixel_centres_stay_in_place(shared_data_dir, ct_run, mr_run, name):
  """Single-frame MR (top-level position) and Enhanced CT (a position per frame)."""
  run = ct_run if name.startswith("ct/") else mr_run
  ds_in = pydicom.dcmread(shared_data_dir / name, stop_before_pixels=True)
  ds_out = pydicom.dcmread(run.output / pathlib.Path(name).name, stop_before_pixels=True)
  planes_in, planes_out = _frame_planes(ds_in), _frame_planes(ds_out)
  assert len(planes_out) == len(planes_in) >= 1
  for frame, (plane_in, plane_out) in enumerate(zip(planes_in, planes_out)):
    assert plane_in["position"] is not None and plane_out["position"] is not None
    _assert_half_pixel_world(plane_in, plane_out, ds_out.Rows, ds_out.Columns,
                             f"{name} frame {frame}")
    # Along the normal nothing moves.
    normal = np.cross(plane_in["orientation"][:3], plane_in["orientation"][3:])
    assert plane_out["position"] @ normal == pytest.approx(plane_in["position"] @ normal)


def test_files_without_geometry_get_none(ct_run, mr_run, us_run):
  """No position is invented where the input had none."""
  for path in (ct_run.output / "mlut_18.dcm", mr_run.output / "emri_small.dcm",
               us_run.output / "US1_UNCR.dcm", us_run.output / "OBXXXX1A.dcm"):
    for plane in _frame_planes(pydicom.dcmread(path, stop_before_pixels=True)):
      assert plane["position"] is None and plane["spacing"] is None, path.name


def test_oblique_non_square_slice_stays_in_place(shared_data_dir, grey_weights, input_hashes,
                                                 tmp_path):
  """The shared slices all have square pixels along the axes, where swapping rows and
  columns goes unseen: the MR slice again, tilted, with 0.6 mm rows and 0.9 mm columns."""
  del input_hashes
  ds = pydicom.dcmread(shared_data_dir / "mr" / "MR-SIEMENS-DICOM-WithOverlays.dcm")
  a, b = np.deg2rad(20.0), np.deg2rad(-30.0)
  row_dir = [np.cos(a), np.sin(a), 0.0]
  col_dir = [-np.sin(a) * np.cos(b), np.cos(a) * np.cos(b), np.sin(b)]
  ds.ImageOrientationPatient = [f"{v:.10f}" for v in row_dir + col_dir]
  ds.PixelSpacing = ["0.6", "0.9"]
  (tmp_path / "in").mkdir()
  ds.save_as(tmp_path / "in" / "oblique.dcm")
  image = images.read_image(tmp_path / "in" / "oblique.dcm")
  assert image.geometry.pixel_spacing == (0.6, 0.9)
  run = _upscale(tmp_path / "in", tmp_path / "out", grey_weights)
  assert run.status == 0, run.stderr[-2000:]
  ds_in = pydicom.dcmread(tmp_path / "in" / "oblique.dcm", stop_before_pixels=True)
  ds_out = pydicom.dcmread(run.output / "oblique.dcm", stop_before_pixels=True)
  np.testing.assert_allclose([float(v) for v in ds_out.PixelSpacing], [0.3, 0.45])
  [plane_in], [plane_out] = _frame_planes(ds_in), _frame_planes(ds_out)
  _assert_half_pixel_world(plane_in, plane_out, ds_out.Rows, ds_out.Columns, "oblique")
  # nibabel's affine of the output, voxel (row, column, 0), says the same.
  rows, cols = _probes(ds_out.Rows, ds_out.Columns)
  wrapper = dicomwrappers.wrapper_from_file(run.output / "oblique.dcm")
  np.testing.assert_allclose(
      nib_affines.apply_affine(wrapper.affine, np.c_[rows, cols, np.zeros_like(rows)]),
      _world(plane_in, (rows + 0.5) / SCALE - 0.5, (cols + 0.5) / SCALE - 0.5), atol=1e-4)


@pytest.fixture(scope="module")
def series_pairs(shared_data_dir, ct_run):
  """(input, output) datasets of every slice, matched by file name."""
  inputs = sorted((shared_data_dir / SERIES).iterdir())
  outputs = sorted((ct_run.output / pathlib.Path(SERIES).name).iterdir())
  assert [p.name for p in outputs] == [p.name for p in inputs]
  return [(pydicom.dcmread(a), pydicom.dcmread(b)) for a, b in zip(inputs, outputs)]


def test_series_is_bilinear_in_hu_and_in_place(series_pairs):
  for ds_in, ds_out in series_pairs:
    what = pathlib.Path(ds_in.filename).name
    hu_in, _ = _values(ds_in, ds_in.pixel_array)
    hu_out, _ = _values(ds_out, ds_out.pixel_array)
    _assert_within_a_level(bilinear(hu_in), hu_out, abs(float(ds_in.RescaleSlope)), what)
    [plane_in], [plane_out] = _frame_planes(ds_in), _frame_planes(ds_out)
    _assert_half_pixel_world(plane_in, plane_out, ds_out.Rows, ds_out.Columns, what)
    assert ds_out.get("SliceLocation") == ds_in.get("SliceLocation")


# 3. The output series: one new series, readable as one volume by jaxsr and by nibabel.


def test_series_output_is_one_new_series(series_pairs):
  ins = [a for a, _ in series_pairs]
  outs = [b for _, b in series_pairs]
  for ds_in, ds_out in series_pairs:
    _check_derived_header(ds_in, ds_out, pathlib.Path(ds_in.filename).name)
  uids = {ds.SeriesInstanceUID for ds in outs}
  assert len(uids) == 1 and not uids & {ds.SeriesInstanceUID for ds in ins}
  sops = [ds.SOPInstanceUID for ds in outs]
  assert len(set(sops)) == len(sops) == 108
  assert not set(sops) & {ds.SOPInstanceUID for ds in ins}
  for ds in outs:
    np.testing.assert_allclose([float(v) for v in ds.PixelSpacing], [0.4785155] * 2, rtol=1e-6)
    assert float(ds.SliceThickness) == 1.5


def test_series_output_reads_back_as_one_volume(shared_data_dir, ct_run, series_pairs):
  folder = ct_run.output / pathlib.Path(SERIES).name
  items = series.find(folder, images.list_images(folder))
  assert len(items) == 1 and items[0].is_series and items[0].problem == ""
  volume = items[0].load()
  assert volume.kind == "volume" and volume.frames.shape == (108, 512, 512)
  np.testing.assert_allclose(volume.geometry.pixel_spacing, [0.4785155] * 2, rtol=1e-6)
  assert volume.geometry.spacing_between_slices == pytest.approx(1.5)
  source = series.find(shared_data_dir / SERIES, images.list_images(shared_data_dir / SERIES))
  order = [p.name for p in source[0].paths]
  assert [p.name for p in items[0].paths] == order  # Same slice order as the input.
  by_name = {pathlib.Path(b.filename).name: b for _, b in series_pairs}
  for index, name in enumerate(order):
    hu, _ = _values(by_name[name], by_name[name].pixel_array)
    encoding = volume.encoding_of(index)
    np.testing.assert_array_equal(encoding.values(encoding.to_stored(volume.frames[index])), hu)


def test_series_output_reads_back_with_nibabel(series_pairs):
  """nibabel's DICOM wrapper: its own affine, normal and scaling, our sorting."""
  wrappers = [(dicomwrappers.wrapper_from_file(b.filename), a) for a, b in series_pairs]
  normal = wrappers[0][0].slice_normal
  for wrapper, _ in wrappers:
    np.testing.assert_allclose(wrapper.slice_normal, normal)
  wrappers.sort(key=lambda pair: float(pair[0].image_position @ normal))
  volume = np.stack([w.get_data() for w, _ in wrappers])
  assert volume.shape == (108, 512, 512)
  affine = wrappers[0][0].affine
  np.testing.assert_allclose(np.linalg.norm(affine[:3, :2], axis=0), [0.4785155] * 2, rtol=1e-6)
  where = np.array([w.image_position @ normal for w, _ in wrappers])
  np.testing.assert_allclose(np.diff(where), 1.5, atol=1e-6)
  for (wrapper, ds_in), frame in zip(wrappers, volume):
    # get_data() applies the rescale: HU, bilinear of the input's.
    hu_in, _ = _values(ds_in, ds_in.pixel_array)
    _assert_within_a_level(bilinear(hu_in), frame, 1.0, pathlib.Path(ds_in.filename).name)
    # Its affine takes (row, column, 0) to where the input had the half-pixel point.
    rows, cols = _probes(512, 512)
    [plane_in] = _frame_planes(ds_in)
    np.testing.assert_allclose(
        nib_affines.apply_affine(wrapper.affine, np.c_[rows, cols, np.zeros_like(rows)]),
        _world(plane_in, (rows + 0.5) / SCALE - 0.5, (cols + 0.5) / SCALE - 0.5), atol=1e-4)


@pytest.mark.parametrize("name", [CT_NIFTI, MR_NIFTI])
def test_nifti_is_bilinear_and_in_place(shared_data_dir, ct_run, mr_run, name):
  run = ct_run if name.startswith("ct/") else mr_run
  img_in = nibabel.load(shared_data_dir / name)
  img_out = nibabel.load(run.output / pathlib.Path(name).name)
  data_in = np.asarray(img_in.dataobj.get_unscaled())
  data_out = np.asarray(img_out.dataobj.get_unscaled())
  x, y, z = data_in.shape
  assert data_out.shape == (x * SCALE, y * SCALE, z) and data_out.dtype == data_in.dtype
  np.testing.assert_allclose(img_out.header.get_zooms(),
                             np.array(img_in.header.get_zooms()) / (SCALE, SCALE, 1), rtol=1e-6)
  for field in ("qform_code", "sform_code", "scl_slope", "scl_inter"):
    np.testing.assert_array_equal(img_out.header[field], img_in.header[field], err_msg=field)
  # Stored samples (HU for the CT: no scaling) bilinear in x and y, slice by slice.
  _assert_within_a_level(bilinear(data_in), data_out, 1.0, name)
  voxels = np.array([[0, 0, 0], [x * SCALE - 1, 0, z - 1], [0, y * SCALE - 1, 3],
                     [x * SCALE - 1, y * SCALE - 1, z // 2], [17, 301 % (y * SCALE), 5]], float)
  half = voxels.copy()
  half[:, :2] = (half[:, :2] + 0.5) / SCALE - 0.5
  for transform in ("get_qform", "get_sform"):
    np.testing.assert_allclose(
        nib_affines.apply_affine(getattr(img_out.header, transform)(), voxels),
        nib_affines.apply_affine(getattr(img_in.header, transform)(), half), atol=1e-4,
        err_msg=transform)


# Colour: kept, and in the photometric the writer promises.


@pytest.mark.parametrize("name, photometric", [("US1_UNCR.dcm", "RGB"), ("OBXXXX1A.dcm", "RGB"),
                                               ("ybr_full.dcm", "YBR_FULL")])
def test_colour_is_bilinear_and_kept(us_run, name, photometric):
  ds_in = pydicom.dcmread(us_run.output.parent / "in" / name)
  ds_out = pydicom.dcmread(us_run.output / name)
  _check_derived_header(ds_in, ds_out, name)
  assert ds_out.PhotometricInterpretation == photometric
  assert ds_out.SamplesPerPixel == 3 and ds_out.BitsStored == 8
  assert int(ds_out.get("PlanarConfiguration", 0)) == 0
  assert not any("PaletteColorLookupTable" in (e.keyword or "") for e in ds_out)
  if photometric == "YBR_FULL":
    # Compared as stored: the reader's RGB rounding adds up to half a level to each.
    _assert_within_a_level(bilinear(decode_pixels(ds_in, as_rgb=False)),
                           decode_pixels(ds_out, as_rgb=False), 1.5, name)
    return
  rgb = _palette_rgb(ds_in) if ds_in.PhotometricInterpretation == "PALETTE COLOR" \
      else _stored(ds_in)
  _assert_within_a_level(bilinear(rgb[0]), ds_out.pixel_array, 1.0, name)


def test_grey_model_keeps_colour(shared_data_dir, us_grey_run):
  """Luminance through the model (bilinear here), chroma resized: still a colour image."""
  ds_in = pydicom.dcmread(shared_data_dir / "us" / "US1_UNCR.dcm")
  ds_out = pydicom.dcmread(us_grey_run.output / "US1_UNCR.dcm")
  _check_derived_header(ds_in, ds_out, "US1_UNCR.dcm")
  assert ds_out.PhotometricInterpretation == "RGB" and ds_out.SamplesPerPixel == 3
  rgb_in, rgb_out = ds_in.pixel_array.astype(np.float64), ds_out.pixel_array.astype(np.float64)
  error = np.abs(_luma(rgb_out) - bilinear(_luma(rgb_in)))
  # RGB rounding moves luma by up to half a level; gamut clipping of the chroma a little more.
  assert np.percentile(error, 99.9) <= 2.0 and error.max() <= 8, (error.max(),)
  # As colourful as bilinear colour would be (a grey output would score 0).
  expected = _saturation(bilinear(rgb_in))
  assert expected > 5 and abs(_saturation(rgb_out) - expected) < 0.05 * expected


# 5. Bad inputs: each reported on one line by name, the rest still written.


def _copy_series(shared: pathlib.Path, target: pathlib.Path, prefix: str = "",
                 count: int = 108) -> list:
  """The head-CT series (its first ``count`` slices) copied to ``target``, in order along
  the normal."""
  source = shared / SERIES
  item = series.find(source, images.list_images(source))[0]
  target.mkdir(parents=True)
  copies = []
  for path in item.paths[:count]:
    copies.append(target / (prefix + path.name))
    shutil.copyfile(path, copies[-1])
  return copies


def test_bad_inputs_are_reported_by_name_and_the_rest_written(
    shared_data_dir, grey_weights, input_hashes, tmp_path):
  del input_hashes
  folder = tmp_path / "in"
  # A series with a slice missing in the middle.
  gap = _copy_series(shared_data_dir, folder / "series_gap")
  gap[54].unlink()
  # A series with one slice of another size.
  small = _copy_series(shared_data_dir, folder / "series_small")
  ds = pydicom.dcmread(small[30])
  ds.set_pixel_data(np.ascontiguousarray(ds.pixel_array[::2, ::2]), "MONOCHROME2", 12)
  ds.save_as(small[30])
  # A NIfTI whose header claims 0 dimensions.
  raw = bytearray(gzip.decompress((shared_data_dir / MR_NIFTI).read_bytes()))
  raw[40:42] = (0).to_bytes(2, "little")
  (folder / "broken.nii").write_bytes(bytes(raw))
  # A palette image without its palette.
  ds = pydicom.dcmread(shared_data_dir / "us" / "OBXXXX1A.dcm")
  for colour in ("Red", "Green", "Blue"):
    delattr(ds, f"{colour}PaletteColorLookupTableData")
  ds.save_as(folder / "palette_no_lut.dcm")
  # Good ones beside them.
  (folder / "good").mkdir()
  for name in ("emri_small.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm"):
    shutil.copyfile(shared_data_dir / "mr" / name, folder / "good" / name)

  run = _upscale(folder, tmp_path / "out", grey_weights)
  assert run.status == 1, run.stderr[-2000:]
  assert run.closing == f"jaxsr: wrote 2 of 6 input(s) to {run.output}; 4 failed"
  failures = run.failures
  assert len(failures) == 4, failures
  named = {key: [line for line in failures if key in line]
           for key in ("series_gap", "series_small", "broken.nii", "palette_no_lut.dcm")}
  assert all(len(lines) == 1 for lines in named.values()), failures
  # Each line says what is wrong, naming the files concerned.
  assert "missing" in named["series_gap"][0]
  assert gap[53].name in named["series_gap"][0] and gap[55].name in named["series_gap"][0]
  assert "size" in named["series_small"][0] and small[30].name in named["series_small"][0]
  assert "header" in named["broken.nii"][0]
  assert "palette" in named["palette_no_lut.dcm"][0].lower()
  for name in ("emri_small.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm"):
    assert pydicom.dcmread(run.output / "good" / name).Rows == 2 * pydicom.dcmread(
        folder / "good" / name, stop_before_pixels=True).Rows
  written = sorted(p.relative_to(run.output).as_posix() for p in run.output.rglob("*")
                   if p.is_file())
  assert written == ["good/MR-SIEMENS-DICOM-WithOverlays.dcm", "good/emri_small.dcm"]


def test_two_series_in_one_folder_are_two_volumes(shared_data_dir, grey_weights, input_hashes,
                                                  tmp_path):
  """Same folder, same positions, different SeriesInstanceUID: two valid series."""
  del input_hashes
  folder = tmp_path / "in" / "two"
  first = _copy_series(shared_data_dir, folder, "a_", count=12)
  second = []
  uid = dicom_uid.generate_uid()
  for path in first:
    ds = pydicom.dcmread(path)
    ds.SeriesInstanceUID, ds.SeriesNumber = uid, 2
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = dicom_uid.generate_uid()
    second.append(folder / ("b_" + path.name[2:]))
    ds.save_as(second[-1])
  run = _upscale(folder.parent, tmp_path / "out", grey_weights)
  assert run.status == 0 and not run.failures, run.stderr[-2000:]
  assert run.closing == f"jaxsr: wrote 2 of 2 input(s) to {run.output}"
  new = {}
  for group in (first, second):
    outs = [pydicom.dcmread(run.output / "two" / p.name, stop_before_pixels=True) for p in group]
    uids = {ds.SeriesInstanceUID for ds in outs}
    assert len(uids) == 1
    new[group[0].name] = uids.pop()
  olds = {pydicom.dcmread(group[0], stop_before_pixels=True).SeriesInstanceUID
          for group in (first, second)}
  assert len(set(new.values())) == 2 and not set(new.values()) & olds
  out_folder = run.output / "two"
  items = series.find(out_folder, images.list_images(out_folder))
  assert [len(i.paths) for i in items] == [12, 12] and not any(i.problem for i in items)
  assert {i.series_uid for i in items} == set(new.values())


def test_two_slices_at_one_position_are_reported_where_they_are(shared_data_dir, grey_weights,
                                                                input_hashes, tmp_path):
  """The line names the two files and the position they share along the normal."""
  del input_hashes
  copies = _copy_series(shared_data_dir, tmp_path / "in" / "series_twice", count=20)
  ds = pydicom.dcmread(copies[12])
  ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = dicom_uid.generate_uid()
  twin = copies[12].with_name("copy_" + copies[12].name)
  ds.save_as(twin)
  where = float(np.asarray([float(v) for v in ds.ImagePositionPatient]) @ np.cross(
      [float(v) for v in ds.ImageOrientationPatient[:3]],
      [float(v) for v in ds.ImageOrientationPatient[3:]]))
  run = _upscale(tmp_path / "in", tmp_path / "out", grey_weights)
  assert run.status == 1 and len(run.failures) == 1, run.stderr[-2000:]
  [line] = run.failures
  assert "series_twice" in line and "same position" in line
  assert copies[12].name in line and twin.name in line
  assert f"({where:.3f} mm" in line, line  # 18.000 mm here, not the first slice's 0.000.


def test_series_description_keeps_the_scale_and_model(shared_data_dir, grey_weights,
                                                      input_hashes, ct_run, mr_run, us_run,
                                                      tmp_path):
  """"SR x2" and the model must survive the 64 characters of LO whatever the input's
  description: cutting the end cuts exactly what marks the output as upscaled."""
  del input_hashes
  ds = pydicom.dcmread(shared_data_dir / "mr" / "emri_small.dcm")
  ds.SeriesDescription = ("T1 3D TFE head, sagittal, research protocol, repeat " * 2)[:64]
  (tmp_path / "in").mkdir()
  ds.save_as(tmp_path / "in" / "long_description.dcm")
  long_run = _upscale(tmp_path / "in", tmp_path / "out", grey_weights)
  assert long_run.status == 0, long_run.stderr[-2000:]
  outputs = [long_run.output / "long_description.dcm", ct_run.output / "mlut_18.dcm",
             ct_run.output / "eCT_Supplemental.dcm", mr_run.output / "emri_small.dcm",
             us_run.output / "US1_UNCR.dcm"]
  wrong = {}
  for path in outputs:
    description = str(pydicom.dcmread(path, stop_before_pixels=True).SeriesDescription)
    if len(description) > 64 or f"SR x{SCALE}" not in description or "msrresnet" not in description:
      wrong[path.name] = description
  assert not wrong, f"SeriesDescription without 'SR x{SCALE}' and the model: {wrong}"


# 4. The inputs are only ever read.


def test_shared_inputs_are_unchanged(shared_data_dir, input_hashes, ct_run, mr_run, us_run,
                                     us_grey_run):
  del ct_run, mr_run, us_run, us_grey_run  # Run (and any test before this one) first.
  after = {p: _sha(p) for p in _shared_files(shared_data_dir)}
  assert after.keys() == input_hashes.keys()
  changed = [p.name for p in after if after[p] != input_hashes[p]]
  assert not changed, f"modified: {changed}"


@pytest.mark.slow
def test_colour_jpeg_cine(shared_data_dir, colour_weights, tmp_path):
  """120 YBR_FULL_422 JPEG frames (~55 s): written as uncompressed RGB, bilinear."""
  path = shared_data_dir / "us" / "color3d_jpeg_baseline.dcm"
  before = _sha(path)
  run = _upscale(path, tmp_path / "out", colour_weights)
  assert run.status == 0 and not run.failures, run.stderr[-2000:]
  assert _sha(path) == before
  ds_in, ds_out = pydicom.dcmread(path), pydicom.dcmread(tmp_path / "out" / path.name)
  _check_derived_header(ds_in, ds_out, path.name)
  assert ds_out.PhotometricInterpretation == "RGB" and int(ds_out.NumberOfFrames) == 120
  frames_in, frames_out = ds_in.pixel_array, ds_out.pixel_array  # Input decoded to RGB.
  assert frames_out.shape == (120, 960, 1280, 3)
  for index in range(120):
    _assert_within_a_level(bilinear(frames_in[index]), frames_out[index], 1.0,
                           f"frame {index}")
