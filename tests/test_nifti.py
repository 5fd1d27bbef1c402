"""NIfTI reading and writing (jaxsr.io.nifti).

The shared volumes live in ``../shared/data/{ct,mr}`` relative to the
repository root; ``JAXSR_SHARED_DATA_DIR`` overrides that folder. The rest
are small synthetic files made in tmp_path, so every case the reader and
writer handle (NIfTI-1/2, .nii/.nii.gz, 2/3/4-D, scaling, floats, oblique
affines) is checked against nibabel itself.
"""
import gzip
import io
import pathlib

import nibabel
from nibabel import affines as nib_affines
import numpy as np
import pytest

from jaxsr import errors
from jaxsr.io import image as image_lib
from jaxsr.io import nifti

CT_NAME = "ct/invesalius_head_ct.nii.gz"
MR_NAME = "mr/mni_icbm152_t1_2009a.nii.gz"


@pytest.fixture(scope="module")
def ct_path(shared_data_dir):
  return shared_data_dir / CT_NAME


@pytest.fixture(scope="module")
def mr_path(shared_data_dir):
  return shared_data_dir / MR_NAME


@pytest.fixture(scope="module")
def ct(ct_path):
  return nifti.read(ct_path)


@pytest.fixture(scope="module")
def mr(mr_path):
  return nifti.read(mr_path)


def _rotated_affine() -> np.ndarray:
  """An oblique affine: rotations about two axes, anisotropic zooms, an origin."""
  a, b = np.deg2rad(20.0), np.deg2rad(-35.0)
  rot_z = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
  rot_x = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
  affine = np.eye(4)
  affine[:3, :3] = rot_z @ rot_x @ np.diag([0.8, 0.6, 2.5])
  affine[:3, 3] = (-40.0, 12.5, 7.0)
  return affine


def _make(tmp_path, name, data, *, version=1, affine=None, slope=None, inter=None, zooms=None,
          qform_code=1, sform_code=1):
  """A NIfTI file written by nibabel, with the raw samples and scaling exactly as given."""
  klass = nibabel.Nifti1Image if version == 1 else nibabel.Nifti2Image
  if affine is None:
    spatial = (1.0, 1.0, 1.0) if zooms is None else tuple(zooms[:3]) + (1.0,) * (3 - len(zooms))
    affine = np.diag(spatial + (1.0,))
  img = klass(data, affine, dtype=data.dtype)
  img.header.set_qform(affine, code=qform_code)
  img.header.set_sform(affine, code=sform_code)
  if zooms is not None:
    img.header.set_zooms(zooms)
  blob = img.to_bytes()
  if slope is not None:
    # nibabel chooses its own scaling for arrays it writes: set the raw header fields after.
    header = klass.header_class.from_fileobj(io.BytesIO(blob))
    header.set_slope_inter(slope, inter)
    patched = io.BytesIO()
    header.write_to(patched)
    blob = patched.getvalue() + blob[len(patched.getvalue()):]
  path = tmp_path / name
  path.write_bytes(gzip.compress(blob) if name.endswith(".gz") else blob)
  check = nibabel.load(path)
  if slope is not None:
    np.testing.assert_array_equal(_stored_scaling(path), (slope, inter))
  np.testing.assert_array_equal(check.dataobj.get_unscaled(), data)
  return path


def _in_plane(shape, axis):
  return [a for a in range(min(len(shape), 3)) if a != axis]


def _upscaled_raw(raw: np.ndarray, axis: int, scale: int) -> np.ndarray:
  for a in _in_plane(raw.shape, axis):
    raw = np.repeat(raw, scale, axis=a)
  return raw


def _stored_scaling(path):
  """scl_slope and scl_inter as the file has them (a loaded image's header has them reset)."""
  path = pathlib.Path(path)
  blob = path.read_bytes()
  if blob[:2] == b"\x1f\x8b":
    blob = gzip.decompress(blob)
  klass = nibabel.Nifti2Header if blob[4:8] == b"n+2\x00" else nibabel.Nifti1Header
  header = klass.from_fileobj(io.BytesIO(blob))
  return float(header["scl_slope"]), float(header["scl_inter"])


def _check_round_trip(tmp_path, src_path, *, out_name, scale=2, **read_args):
  """read -> to_stored -> np.repeat x scale -> write -> nibabel: all the brief asks."""
  src_path = pathlib.Path(src_path)
  before = (src_path.read_bytes(), src_path.stat().st_mtime_ns)
  src_nib = nibabel.load(src_path)
  raw = np.asarray(src_nib.dataobj.get_unscaled())
  source = nifti.read(src_path, **read_args)
  axis = source.geometry.slice_axis
  stored = source.encoding.to_stored(source.frames)
  assert stored.dtype == src_nib.get_data_dtype().newbyteorder("=")
  if not source.encoding.floating:
    # Integers come back exactly; the output is the input's samples, repeated.
    expected = _upscaled_raw(raw, axis, scale)
  up = np.repeat(np.repeat(stored, scale, axis=1), scale, axis=2)
  out_path = tmp_path / out_name
  nifti.write(up, source, out_path, scale=scale)
  assert (src_path.read_bytes(), src_path.stat().st_mtime_ns) == before
  assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")], "temp file left"

  is_gz = out_path.read_bytes()[:2] == b"\x1f\x8b"
  assert is_gz == out_name.lower().endswith(".gz")
  out = nibabel.load(out_path)
  assert type(out) is type(src_nib)  # NIfTI-1 stays NIfTI-1, NIfTI-2 stays NIfTI-2
  want_shape = list(raw.shape)
  for a in _in_plane(raw.shape, axis):
    want_shape[a] *= scale
  assert out.shape == tuple(want_shape)
  assert out.get_data_dtype() == src_nib.get_data_dtype()
  np.testing.assert_array_equal(_stored_scaling(out_path), _stored_scaling(src_path))
  assert (out.dataobj.slope, out.dataobj.inter) == (src_nib.dataobj.slope, src_nib.dataobj.inter)
  got = np.asarray(out.dataobj.get_unscaled())
  if source.encoding.floating:
    np.testing.assert_array_equal(got, _upscaled_raw(_stored_to_data(stored, raw, axis), axis,
                                                     scale))
    np.testing.assert_allclose(got, _upscaled_raw(raw, axis, scale), rtol=1e-6, atol=1e-6)
  else:
    np.testing.assert_array_equal(got, expected)
  zooms = list(src_nib.header.get_zooms())
  for a in _in_plane(raw.shape, axis):
    zooms[a] /= scale
  np.testing.assert_allclose(out.header.get_zooms(), zooms, rtol=1e-6)
  for code in ("qform_code", "sform_code"):
    assert int(out.header[code]) == int(src_nib.header[code])
  want_affine = nifti.output_affine(src_nib.affine, axis, scale)
  np.testing.assert_allclose(out.affine, want_affine, atol=1e-5)
  # Each of qform and sform moves with the voxels (the same affine where they agree).
  for form in ("get_qform", "get_sform"):
    np.testing.assert_allclose(getattr(out.header, form)(),
                               nifti.output_affine(getattr(src_nib.header, form)(), axis, scale),
                               atol=1e-5)
  if np.allclose(src_nib.header.get_qform(), src_nib.affine, atol=1e-6):
    np.testing.assert_allclose(out.header.get_qform(), want_affine, atol=1e-5)
  np.testing.assert_allclose(out.header.get_sform(), want_affine, atol=1e-5)

  # Every output voxel centre lies where half-pixel resampling puts it in the input.
  rng = np.random.default_rng(0)
  spatial = out.shape[:3] if len(out.shape) >= 3 else out.shape + (1,)
  ijk = np.stack([rng.integers(0, n, 6) for n in spatial], axis=1).astype(np.float64)
  ijk = np.concatenate([ijk, np.zeros((1, 3)), np.array(spatial, float)[None] - 1])
  src_ijk = ijk.copy()
  for a in _in_plane(raw.shape, axis):
    src_ijk[:, a] = (ijk[:, a] + 0.5) / scale - 0.5
  np.testing.assert_allclose(nib_affines.apply_affine(out.affine, ijk),
                             nib_affines.apply_affine(src_nib.affine, src_ijk), atol=1e-4)

  again = nifti.read(out_path, **read_args)
  assert again.frames.shape == (source.num_frames, source.height * scale,
                                source.width * scale)
  assert again.geometry.slice_axis == axis
  return source, out


def _stored_to_data(stored, raw, axis):
  """Frames back to the data's axis order, independently of nifti's own inverse."""
  if raw.ndim == 3:
    return np.moveaxis(stored, 0, axis)
  volumes = stored.reshape((raw.shape[3], raw.shape[axis]) + stored.shape[1:])
  return np.moveaxis(volumes, (0, 1), (3, axis))


# Names and the slice axis.


def test_is_nifti_by_name_any_case():
  assert nifti.EXTENSIONS == (".nii", ".nii.gz")
  for name in ("a.nii", "b.NII", "c.nii.gz", "d.Nii.GZ", pathlib.Path("x/e.nii")):
    assert nifti.is_nifti(name), name
  for name in ("a.gz", "b.dcm", "c.nii.bak", "nii", "d.niigz"):
    assert not nifti.is_nifti(name), name


@pytest.mark.parametrize("zooms,axis", [((1, 1, 1), 2), ((3, 1, 1), 0), ((1, 3, 1), 1),
                                        ((1, 2, 2), 2), ((2, 2, 1), 1), ((0.5, 0.5, 3.0), 2),
                                        ((1, 1, 1, 2.5), 2)])
def test_default_slice_axis_is_the_coarsest_ties_to_the_last(zooms, axis):
  assert nifti.default_slice_axis(zooms) == axis


# The shared volumes.


def test_shared_head_ct_loads_as_hu(ct, ct_path):
  ref = nibabel.load(ct_path)
  assert ct.frames.shape == (108, 256, 256) and ct.frames.dtype == np.float32
  assert ct.frames.min() >= 0.0 and ct.frames.max() <= 1.0
  assert ct.modality == "CT" and ct.is_ct_hu
  assert (ct.file_format, ct.kind, ct.photometric) == ("nifti", "volume", None)
  assert ct.sources == (str(ct_path),) and ct.path == str(ct_path)
  assert ct.geometry.slice_axis == 2 and ct.geometry.shape == (256, 256, 108)
  np.testing.assert_array_equal(ct.geometry.affine, ref.affine)
  assert ct.geometry.affine.dtype == np.float64 and ct.geometry.affine.shape == (4, 4)
  np.testing.assert_allclose(ct.geometry.pixel_spacing, (0.957, 0.957), atol=1e-3)
  enc = ct.encoding
  assert enc.dtype == "int16" and (enc.low, enc.high) == image_lib.DEFAULT_HU_RANGE
  assert ct.bits == enc.grid_bits == 12
  hu = np.moveaxis(ref.get_fdata(), 2, 0)
  np.testing.assert_array_equal(enc.values(enc.to_stored(ct.frames)), hu)
  np.testing.assert_allclose(ct.frames, (hu + 1024.0) / 4095.0, atol=1e-6)


def test_shared_mr_loads_by_its_stored_range(mr, mr_path):
  ref = nibabel.load(mr_path)
  raw = np.asarray(ref.dataobj.get_unscaled())
  assert mr.frames.shape == (189, 197, 233)
  assert mr.modality == "" and mr.kind == "volume" and mr.bits == 8
  assert mr.encoding.dtype == "uint8" and (mr.encoding.low, mr.encoding.high) == (0.0, 255.0)
  assert mr.geometry.slice_axis == 2 and mr.geometry.shape == (197, 233, 189)
  np.testing.assert_array_equal(mr.geometry.affine, ref.affine)
  np.testing.assert_array_equal(mr.geometry.affine[:3, 3], (-98, -134, -72))
  np.testing.assert_array_equal(mr.frames, np.moveaxis(raw, 2, 0) / np.float32(255))
  np.testing.assert_array_equal(mr.encoding.to_stored(mr.frames), np.moveaxis(raw, 2, 0))


def test_modality_and_hu_range_can_be_given(ct_path, mr_path):
  as_mr = nifti.read(ct_path, modality="MR")
  assert as_mr.modality == "MR"
  # -1024..2986 stored: signed, bit_length(2986) + 1 = 13 bits, by the stored range.
  assert as_mr.bits == 13 and as_mr.encoding.signed
  assert (as_mr.encoding.low, as_mr.encoding.high) == (-4096.0, 4095.0)
  window = nifti.read(ct_path, modality="ct", hu_range=(-160, 240))
  assert window.modality == "CT" and (window.encoding.low, window.encoding.high) == (-160, 240)
  assert window.bits == 9  # 400 HU steps
  as_ct = nifti.read(mr_path, modality="Ct")
  assert as_ct.modality == "CT" and as_ct.encoding.low == -1024.0
  with pytest.raises(errors.UsageError, match="modality"):
    nifti.read(mr_path, modality="pet")
  with pytest.raises(errors.UsageError, match="hu_range"):
    nifti.read(ct_path, hu_range=(100, -100))


def test_shared_mr_round_trip_x2(tmp_path, mr_path):
  source, out = _check_round_trip(tmp_path, mr_path, out_name="mr_x2.nii.gz")
  assert out.shape == (394, 466, 189)
  np.testing.assert_allclose(out.affine[:3, 3], (-98.25, -134.25, -72.0))
  assert source.modality == ""


def test_slice_axis_override(mr_path, tmp_path):
  raw = np.asarray(nibabel.load(mr_path).dataobj.get_unscaled())
  for axis, shape in ((0, (197, 233, 189)), (1, (233, 197, 189))):
    img = nifti.read(mr_path, slice_axis=axis)
    assert img.frames.shape == shape and img.geometry.slice_axis == axis
    index = shape[0] // 2
    np.testing.assert_array_equal(img.encoding.to_stored(img.frames[index]),
                                  np.take(raw, index, axis=axis))
    assert img.geometry.pixel_spacing == (1.0, 1.0)
  with pytest.raises(errors.UsageError, match="slice_axis"):
    nifti.read(mr_path, slice_axis=3)
  # The default follows the coarse axis of the header's zooms.
  data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
  path = _make(tmp_path, "coarse0.nii", data, zooms=(3.0, 1.0, 1.0))
  img = nifti.read(path)
  assert img.geometry.slice_axis == 0 and img.frames.shape == (4, 5, 6)
  assert img.geometry.pixel_spacing == (1.0, 1.0)
  path = _make(tmp_path, "iso.nii", data, zooms=(1.0, 1.0, 1.0))
  assert nifti.read(path).geometry.slice_axis == 2
  # A single slice is one frame, whatever the spacing along it.
  one = nifti.read(_make(tmp_path, "one.nii", data[:1], zooms=(1.0, 1.0, 2.0)))
  assert one.geometry.slice_axis == 0 and one.frames.shape == (1, 5, 6) and one.kind == "image"


# Synthetic files: every kind of NIfTI the writer has to reproduce.


def _int16(shape, seed=0):
  return np.random.default_rng(seed).integers(-600, 1500, shape).astype(np.int16)


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("ext", [".nii", ".nii.gz"])
def test_scaled_int16_3d_round_trip(tmp_path, version, ext):
  data = _int16((7, 6, 5))
  path = _make(tmp_path, f"src{ext}", data, version=version, slope=2.0, inter=-10.0,
               zooms=(0.7, 0.9, 2.0))
  source, out = _check_round_trip(tmp_path, path, out_name=f"out{ext}")
  assert source.encoding.slope == 2.0 and source.encoding.intercept == -10.0
  assert _stored_scaling(tmp_path / f"out{ext}") == (2.0, -10.0)
  assert out.header.sizeof_hdr == (348 if version == 1 else 540)
  # What a user sees: nibabel's scaled values are the input's values, repeated.
  np.testing.assert_array_equal(out.get_fdata(),
                                _upscaled_raw(data * 2.0 - 10.0, 2, 2))


@pytest.mark.parametrize("version", [1, 2])
def test_4d_frames_are_volume_major_and_round_trip(tmp_path, version):
  data = _int16((6, 5, 4, 3), seed=1)
  path = _make(tmp_path, "src4d.nii.gz", data, version=version, slope=2.0, inter=-10.0,
               zooms=(0.8, 0.8, 3.0, 2.5))
  img = nifti.read(path)
  assert img.frames.shape == (12, 6, 5) and img.kind == "volume"
  assert img.geometry.shape == (6, 5, 4, 3) and img.geometry.slice_axis == 2
  stored = img.encoding.to_stored(img.frames)
  for t in range(3):
    for z in range(4):
      np.testing.assert_array_equal(stored[t * 4 + z], data[:, :, z, t])
  _, out = _check_round_trip(tmp_path, path, out_name="out4d.nii", scale=3)
  assert out.shape == (18, 15, 4, 3)
  assert out.header.get_zooms()[3] == pytest.approx(2.5)


def test_4d_along_another_axis(tmp_path):
  data = _int16((4, 5, 6, 2), seed=2)
  path = _make(tmp_path, "axis0.nii", data, zooms=(2.0, 1.0, 1.0, 1.0))
  img = nifti.read(path)
  assert img.geometry.slice_axis == 0 and img.frames.shape == (8, 5, 6)
  np.testing.assert_array_equal(img.encoding.to_stored(img.frames[4 + 3]), data[3, :, :, 1])
  _, out = _check_round_trip(tmp_path, path, out_name="axis0_x2.nii.gz")
  assert out.shape == (4, 10, 12, 2)


@pytest.mark.parametrize("version", [1, 2])
def test_float32_oblique_round_trip(tmp_path, version):
  rng = np.random.default_rng(3)
  data = (rng.standard_normal((6, 7, 5)) * 50.0 + 200.0).astype(np.float32)
  path = _make(tmp_path, "float.nii.gz", data, version=version, affine=_rotated_affine(),
               qform_code=1, sform_code=2)
  img = nifti.read(path)
  enc = img.encoding
  assert enc.floating and enc.dtype == "float32" and img.bits == 32 and img.modality == ""
  assert (enc.low, enc.high) == (float(data.min()), float(data.max()))
  assert img.frames.min() == 0.0 and img.frames.max() == 1.0
  np.testing.assert_allclose(enc.to_stored(img.frames), np.moveaxis(data, 2, 0), rtol=1e-5)
  np.testing.assert_allclose(img.geometry.affine, _rotated_affine(), atol=1e-6)
  _check_round_trip(tmp_path, path, out_name="float_x2.nii.gz")


def test_oblique_int16_with_slice_axis_override(tmp_path):
  data = _int16((5, 6, 7), seed=4)
  path = _make(tmp_path, "oblique.nii", data, affine=_rotated_affine(), slope=2.0, inter=-10.0)
  _check_round_trip(tmp_path, path, out_name="oblique_x2.nii.GZ", slice_axis=1)


def test_qform_and_sform_each_move_and_extensions_are_kept(tmp_path):
  data = _int16((6, 5, 4), seed=7)
  img = nibabel.Nifti1Image(data, None, dtype=np.int16)
  img.header.set_qform(_rotated_affine(), code=1)
  registered = _rotated_affine() @ np.array([[1, 0, 0, 3.0], [0, 1, 0, -2.0], [0, 0, 1, 1.0],
                                             [0, 0, 0, 1]])
  img.header.set_sform(registered, code=4)
  img.header.extensions.append(nibabel.nifti1.Nifti1Extension("comment", b"jaxsr test"))
  path = tmp_path / "forms.nii"
  nibabel.save(img, path)
  _, out = _check_round_trip(tmp_path, path, out_name="forms_x2.nii")
  assert (int(out.header["qform_code"]), int(out.header["sform_code"])) == (1, 4)
  np.testing.assert_allclose(out.affine, nifti.output_affine(registered, 2, 2), atol=1e-5)
  assert [(e.get_code(), e.get_content()) for e in out.header.extensions] == \
      [(6, b"jaxsr test")]


def test_output_affine_formula():
  affine = _rotated_affine()
  for axis in range(3):
    got = nifti.output_affine(affine, axis, 4)
    shift = image_lib.shift_first_centre(4)
    for a in range(3):
      if a == axis:
        np.testing.assert_array_equal(got[:, a], affine[:, a])
      else:
        np.testing.assert_allclose(got[:3, a], affine[:3, a] / 4)
    in_plane = [a for a in range(3) if a != axis]
    np.testing.assert_allclose(got[:3, 3], affine[:3, 3] + shift * affine[:3, in_plane].sum(1))
    np.testing.assert_array_equal(got[3], (0, 0, 0, 1))
  np.testing.assert_array_equal(nifti.output_affine(affine, 2, 1), affine)
  with pytest.raises(ValueError):
    nifti.output_affine(affine, 2, 0)


def test_unscaled_header_keeps_nan_scaling(tmp_path):
  data = np.random.default_rng(5).integers(0, 4000, (6, 5, 4)).astype(np.uint16)
  path = _make(tmp_path, "plain.nii", data, slope=np.nan, inter=np.nan)
  assert np.isnan(_stored_scaling(path)).all()
  source, out = _check_round_trip(tmp_path, path, out_name="plain_x2.nii")
  assert source.bits == 12 and not source.encoding.signed and source.modality == ""
  assert np.isnan(_stored_scaling(tmp_path / "plain_x2.nii")).all()


def test_2d_nifti_is_one_frame(tmp_path):
  data = _int16((9, 8), seed=6)
  path = _make(tmp_path, "flat.nii", data, zooms=(0.5, 0.25))
  img = nifti.read(path)
  assert img.frames.shape == (1, 9, 8) and img.kind == "image"
  assert img.geometry.slice_axis == 2 and img.geometry.pixel_spacing == (0.5, 0.25)
  np.testing.assert_array_equal(img.encoding.to_stored(img.pixels), data)
  up = np.repeat(np.repeat(img.encoding.to_stored(img.frames), 2, 1), 2, 2)
  nifti.write(up, img, tmp_path / "flat_x2.nii", scale=2)
  out = nibabel.load(tmp_path / "flat_x2.nii")
  assert out.shape == (18, 16)
  np.testing.assert_allclose(out.header.get_zooms(), (0.25, 0.125))
  np.testing.assert_array_equal(out.dataobj.get_unscaled(), _upscaled_raw(data, 2, 2))


def test_ct_guess_needs_integers_with_air(tmp_path):
  air = _int16((4, 4, 3)).copy()
  air[0, 0, 0] = -1024
  assert nifti.read(_make(tmp_path, "air.nii", air)).modality == "CT"
  # Stored 0..4095 with intercept -1024: HU by the scaling, CT too.
  shifted = (air.astype(np.int32) + 1024).astype(np.uint16)
  img = nifti.read(_make(tmp_path, "shifted.nii", shifted, slope=1.0, inter=-1024.0))
  assert img.modality == "CT" and img.bits == 12
  assert nifti.read(_make(tmp_path, "float_air.nii", air.astype(np.float32))).modality == ""
  assert nifti.read(_make(tmp_path, "noair.nii", air + 500)).modality == ""


def test_float_nan_becomes_zero_and_constant_float_is_refused(tmp_path):
  data = np.linspace(1, 2, 60, dtype=np.float32).reshape(5, 4, 3)
  data[0, 0, 0] = np.nan
  img = nifti.read(_make(tmp_path, "nan.nii", data))
  assert np.isfinite(img.frames).all() and img.frames[0, 0, 0] == 0.0
  assert img.encoding.low == np.nanmin(data) and img.encoding.high == 2.0
  path = _make(tmp_path, "flat.nii", np.full((3, 3, 3), 7.0, np.float32))
  with pytest.raises(image_lib.ImageReadError, match="constant"):
    nifti.read(path)


def test_write_checks_its_arguments(tmp_path):
  data = _int16((4, 5, 3))
  path = _make(tmp_path, "src.nii", data)
  img = nifti.read(path)
  up = np.repeat(np.repeat(img.encoding.to_stored(img.frames), 2, 1), 2, 2)
  with pytest.raises(ValueError, match="shape"):
    nifti.write(up[:, 1:], img, tmp_path / "o.nii", scale=2)
  with pytest.raises(ValueError, match="float32"):
    nifti.write(up.astype(np.float32), img, tmp_path / "o.nii", scale=2)
  with pytest.raises(ValueError, match="NIfTI"):
    nifti.write(up, img, tmp_path / "o.png", scale=2)
  assert not (tmp_path / "o.nii").exists()


# Bad input: one line, starting with the path; the input left alone.


def _assert_read_error(path, match):
  path = pathlib.Path(path)
  before = path.read_bytes() if path.is_file() else None
  with pytest.raises(image_lib.ImageReadError) as info:
    nifti.read(path)
  message = str(info.value)
  assert message.startswith(f"{path}: "), message
  assert "\n" not in message
  assert match in message, message
  if before is not None:
    assert path.read_bytes() == before


def test_truncated_gzip(tmp_path, ct_path):
  blob = ct_path.read_bytes()
  half = tmp_path / "half.nii.gz"
  half.write_bytes(blob[:len(blob) // 2])
  _assert_read_error(half, "gzip")
  # Only the CRC and length trailer gone: found by reading the stream to its end.
  no_trailer = tmp_path / "no_trailer.nii.gz"
  no_trailer.write_bytes(blob[:-8])
  _assert_read_error(no_trailer, "gzip")
  header_only = tmp_path / "header_only.nii.gz"
  header_only.write_bytes(blob[:200])
  _assert_read_error(header_only, "gzip")


def test_corrupted_headers(tmp_path, capfd):
  good = _make(tmp_path, "good.nii", _int16((4, 5, 3)))
  blob = bytearray(good.read_bytes())
  sizeof = bytearray(blob)
  sizeof[0:4] = b"\x7f\x13\x22\x05"
  (tmp_path / "sizeof.nii").write_bytes(bytes(sizeof))
  _assert_read_error(tmp_path / "sizeof.nii", "broken NIfTI header")
  dim = bytearray(blob)
  dim[40:56] = b"\xff\x7f\x10\x27\x10\x27\x10\x27\x10\x27\x10\x27\x10\x27\x10\x27"
  (tmp_path / "dim.nii").write_bytes(bytes(dim))
  _assert_read_error(tmp_path / "dim.nii", "broken NIfTI header (dim[0] is 32767")
  huge = bytearray(blob)
  huge[42:48] = b"\x10\x27\x10\x27\x10\x27"  # 10000**3 voxels in a tiny file
  (tmp_path / "huge.nii").write_bytes(bytes(huge))
  _assert_read_error(tmp_path / "huge.nii", "truncated")
  (tmp_path / "huge.nii.gz").write_bytes(gzip.compress(bytes(huge)))
  _assert_read_error(tmp_path / "huge.nii.gz", "broken NIfTI header")
  short = tmp_path / "short.nii"
  short.write_bytes(bytes(blob[:-10]))
  _assert_read_error(short, "truncated")
  datatype = bytearray(blob)
  datatype[70:72] = b"\x39\x30"  # datatype 12345
  (tmp_path / "datatype.nii").write_bytes(bytes(datatype))
  capfd.readouterr()
  _assert_read_error(tmp_path / "datatype.nii", "broken NIfTI header")
  # nibabel's own check messages stay off stderr: one line per bad file, ours.
  assert capfd.readouterr().err == ""


def test_not_nifti_files(tmp_path):
  text = tmp_path / "notes.nii"
  text.write_text("these are not voxels\n" * 40)
  _assert_read_error(text, "not a NIfTI file")
  (tmp_path / "tiny.nii").write_bytes(b"abc")
  _assert_read_error(tmp_path / "tiny.nii", "not a NIfTI file")
  (tmp_path / "empty.nii").write_bytes(b"")
  _assert_read_error(tmp_path / "empty.nii", "empty")
  (tmp_path / "text.nii.gz").write_bytes(gzip.compress(b"no header here\n" * 40))
  _assert_read_error(tmp_path / "text.nii.gz", "not a NIfTI file")
  (tmp_path / "folder.nii").mkdir()
  _assert_read_error(tmp_path / "folder.nii", "folder")
  with pytest.raises(image_lib.ImageNotFoundError) as info:
    nifti.read(tmp_path / "missing.nii.gz")
  assert str(info.value) == f"{tmp_path / 'missing.nii.gz'}: no such file"


def test_unsupported_data(tmp_path):
  five = tmp_path / "five.nii"
  nibabel.save(nibabel.Nifti1Image(np.zeros((3, 3, 3, 1, 2), np.int16), np.eye(4)), five)
  _assert_read_error(five, "5-D")
  cplx = tmp_path / "complex.nii"
  nibabel.save(nibabel.Nifti1Image(np.zeros((3, 3, 3), np.complex64), np.eye(4)), cplx)
  _assert_read_error(cplx, "complex64")
  rgb = tmp_path / "rgb.nii"
  rgb_dtype = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])
  nibabel.save(nibabel.Nifti1Image(np.zeros((3, 3, 3), rgb_dtype), np.eye(4)), rgb)
  _assert_read_error(rgb, "RGB")
  flat = _make(tmp_path, "flat2d.nii", _int16((4, 5)))
  with pytest.raises(image_lib.ImageReadError, match="2-D"):
    nifti.read(flat, slice_axis=0)
