"""Upscaling CLI: tiling parity, output formats, DICOM metadata, safety."""
import hashlib
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
from PIL import Image
import pydicom
from pydicom import uid as dicom_uid
import pytest
import tifffile

import jax.numpy as jnp

from jaxsr import upscale
from jaxsr.inference import model, tiling
from jaxsr.io import images, levels
from jaxsr.models.srresnet import MSRResNet

REPO = pathlib.Path(__file__).resolve().parents[1]


def _generator(module, channels=1, scale=4, gain=1.0):
  variables = module.init(jax.random.PRNGKey(0), np.zeros((1, 16, 16, channels), np.float32))
  # Random init is near identity (kernels x0.1); a gain makes the body matter.
  variables = jax.tree.map(lambda a: a * gain if a.ndim == 4 else a, variables)
  return model.Model(module.clone(upscale=scale), variables, {"arch": "test"})


@pytest.fixture(scope="module")
def msrresnet():
  return _generator(MSRResNet(1, 1, num_feat=8, num_block=2), gain=5.0).predict


@pytest.mark.slow
def test_tiled_matches_untiled_with_enough_overlap(msrresnet):
  image = np.random.RandomState(0).rand(150, 170).astype(np.float32)
  full = tiling.upscale(msrresnet, image, 4, tile=0)
  assert full.shape == (600, 680)
  tiled = tiling.upscale(msrresnet, image, 4, tile=64, overlap=32, batch=3)
  np.testing.assert_allclose(tiled, full, atol=1e-3)
  # Too little overlap shows: the parity above is not trivially true.
  assert np.abs(tiling.upscale(msrresnet, image, 4, tile=64, overlap=4) - full).max() > 1e-3
  # A tile larger than the image is the untiled pass.
  np.testing.assert_allclose(tiling.upscale(msrresnet, image, 4, tile=512), full, atol=1e-6)


def test_slices_batched_through_the_network_equal_slice_by_slice():
  generator = _generator(MSRResNet(1, 1, num_feat=8, num_block=1), scale=2, gain=5.0)
  frames = np.random.RandomState(3).rand(5, 21, 19).astype(np.float32) * 0.3
  counted = []
  batched = list(generator.upscale_frames(frames, 12, tile=64, batch=4, pre_pad=2,
                                          progress=counted.append))
  one_by_one = [generator.upscale(f, 12, tile=64, pre_pad=2) for f in frames]
  assert len(batched) == 5 and sum(counted) == 5
  for got, want in zip(batched, one_by_one):
    np.testing.assert_allclose(got, want, atol=1e-6)
  # Without the stretch of little-used containers the network sees the pixels as they are.
  plain = list(generator.upscale_frames(frames, 12, tile=64, batch=4, stretch=False))
  assert not np.allclose(plain[0], batched[0], atol=1e-3)
  np.testing.assert_allclose(plain[0], generator.upscale(frames[0], 12, tile=64, stretch=False),
                             atol=1e-6)


def test_colour_frame_through_a_grey_model_keeps_its_chroma():
  generator = _generator(MSRResNet(1, 1, num_feat=8, num_block=1), scale=2)
  rgb = np.zeros((12, 14, 3), np.float32)
  rgb[..., 0], rgb[..., 1], rgb[..., 2] = 0.8, 0.3, 0.1
  out = generator.upscale_frame(rgb, 8, tile=0)
  assert out.shape == (24, 28, 3)
  # A flat colour is upscaled to the same colour (chroma resized, luminance by the model).
  np.testing.assert_allclose(out[4:-4, 4:-4], np.broadcast_to(rgb[0, 0], (16, 20, 3)), atol=0.03)


def test_weights_cover_every_pixel_once():
  for size, tile, overlap in ((150, 64, 32), (1000, 512, 32), (65, 64, 8), (31, 64, 8)):
    total = np.zeros(size * 2)
    for start, w in zip(tiling.tile_starts(size, tile, overlap),
                        tiling.axis_weights(size, tile, overlap, 2)):
      total[start * 2:start * 2 + len(w)] += w
    np.testing.assert_allclose(total, 1.0)


def test_pre_pad_and_unshuffle_multiple():
  seen = []

  def nearest(tiles):
    seen.append(tiles.shape)
    return np.repeat(np.repeat(tiles, 2, axis=1), 2, axis=2)

  image = np.random.RandomState(1).rand(37, 41).astype(np.float32)
  out = tiling.upscale(nearest, image, 2, tile=16, overlap=4, pre_pad=3, multiple=2)
  assert out.shape == (74, 82)
  np.testing.assert_allclose(out, nearest(image[None])[0], atol=1e-6)
  assert all(shape[1] % 2 == 0 and shape[2] % 2 == 0 for shape in seen[:-1])


@pytest.mark.slow
def test_three_channel_model_on_grey_clamps_each_channel_then_takes_luma():
  """As RealESRGANer: clamp(0, 1) per channel, then 0.299 R + 0.587 G + 0.114 B."""
  generator = _generator(MSRResNet(3, 3, num_feat=8, num_block=1), channels=3, gain=30.0)
  image = np.random.RandomState(2).rand(1, 20, 24).astype(np.float32)
  out = generator.predict(image)
  rgb = np.asarray(generator.module.apply(generator.variables, np.repeat(image[..., None], 3, -1)))
  assert rgb.min() < -0.05 and rgb.max() > 1.05  # The channels overshoot here.
  clamped = np.clip(rgb, 0.0, 1.0)
  np.testing.assert_allclose(out, clamped @ np.array([0.299, 0.587, 0.114]), atol=1e-6)
  # Averaging first and clipping after (the old rule) differs where channels overshoot.
  assert np.abs(np.clip(rgb.mean(-1), 0, 1) - out).max() > 1e-3


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """A two-step tiny x2 MSRResNet training run (a subprocess: tests using it are slow)."""
  root = tmp_path_factory.mktemp("train")
  (root / "data").mkdir()
  for i in range(4):
    levels = (np.random.RandomState(i).rand(64, 64) * 255).astype(np.uint8)
    Image.fromarray(levels).save(root / "data" / f"{i}.png")
  result = subprocess.run(
      [sys.executable, "-m", "jaxsr.main", f"--config={REPO}/configs/srresnet.py:tiny",
       f"--workdir={root / 'wd'}", f"--config.data.train_dir={root / 'data'}",
       "--config.train.num_steps=2", "--config.scale=2", "--config.data.patch_size=32",
       "--config.model.name=msrresnet"], capture_output=True, text=True, cwd=REPO,
      env={k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  return root / "wd"


def _dicom(path, pixels, *, photometric="MONOCHROME2", bits=12, signed=False, rescale=None):
  ds = pydicom.Dataset()
  ds.PatientName, ds.PatientID = "Test^Patient", "P1"
  ds.StudyInstanceUID, ds.SeriesInstanceUID = dicom_uid.generate_uid(), dicom_uid.generate_uid()
  ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage.
  ds.SOPInstanceUID = dicom_uid.generate_uid()
  ds.Modality, ds.ImageType = "DX", ["ORIGINAL", "PRIMARY"]
  ds.PixelSpacing, ds.ImagerPixelSpacing = [0.2, 0.2], [0.25, 0.25]
  ds.NominalScannedPixelSpacing = [0.1, 0.1]
  if rescale:
    ds.RescaleSlope, ds.RescaleIntercept = rescale
  ds.file_meta = pydicom.dataset.FileMetaDataset()
  ds.file_meta.TransferSyntaxUID = dicom_uid.ImplicitVRLittleEndian
  ds.set_pixel_data(pixels.astype(np.int16 if signed else np.uint16), photometric, bits,
                    generate_instance_uid=False)
  ds.save_as(path, enforce_file_format=True)


def _hashes(folder):
  return {p: hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_cli_folder(workdir, tmp_path, capsys):
  src, out = tmp_path / "in", tmp_path / "out"
  (src / "sub").mkdir(parents=True)
  rng = np.random.RandomState(3)
  Image.fromarray((rng.rand(30, 40) * 255).astype(np.uint8)).save(src / "a8.png")
  Image.fromarray((rng.rand(30, 40) * 65535).astype(np.uint16)).save(src / "sub" / "b16.png")
  tifffile.imwrite(src / "c.tif", (rng.rand(30, 40) * 4095).astype(np.uint16))
  _dicom(src / "sub" / "mono1.dcm", rng.randint(-2048, 2048, (30, 40)),
         photometric="MONOCHROME1", signed=True, rescale=(-2.0, 100.0))
  _dicom(src / "mono2.dcm", rng.randint(0, 4096, (30, 40)))
  (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
  before = _hashes(src)
  args = [f"--weights={workdir}", f"--input={src}", f"--output={out}", "--tile=16",
          "--tile_overlap=8", "--batch=2"]
  assert upscale.main(args) == 1
  err = capsys.readouterr().err
  assert "jaxsr: failed: " + str(src / "broken.png") in err
  assert f"jaxsr: wrote 5 of 6 input(s) to {out}; 1 failed" in err
  assert _hashes(src) == before
  generator = model.load(workdir)
  for name in ("a8.png", "sub/b16.png", "c.tif", "sub/mono1.dcm", "mono2.dcm"):
    given, written = images.read_image(src / name), images.read_image(out / name)
    # c.tif holds 12-bit values in 16 bits: the network sees them stretched.
    gain = levels.stretch_gain(given.pixels, given.bits)
    assert (gain > 1) == (name == "c.tif"), name
    expected = generator.upscale(given.pixels, given.bits, tile=16, overlap=8)
    assert written.pixels.shape == (60, 80)
    assert (written.bits, written.file_format) == (given.bits, given.file_format), name
    np.testing.assert_allclose(written.pixels, expected, atol=0.5 / (2**given.bits - 1) + 1e-6)
  original, ds = pydicom.dcmread(src / "sub" / "mono1.dcm"), pydicom.dcmread(out / "sub" / "mono1.dcm")
  assert ds.file_meta.TransferSyntaxUID == dicom_uid.JPEGLSLossless  # auto: lossless
  assert ds.SOPInstanceUID != original.SOPInstanceUID
  assert ds.SeriesInstanceUID != original.SeriesInstanceUID
  assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
  assert (ds.StudyInstanceUID, ds.PatientName) == (original.StudyInstanceUID, original.PatientName)
  assert list(ds.ImageType) == ["DERIVED", "SECONDARY"]
  assert (ds.Rows, ds.Columns) == (60, 80)
  assert [float(v) for v in ds.PixelSpacing] == [0.1, 0.1]
  assert [float(v) for v in ds.ImagerPixelSpacing] == [0.125, 0.125]
  assert [float(v) for v in ds.NominalScannedPixelSpacing] == [0.05, 0.05]
  assert (ds.PhotometricInterpretation, ds.BitsStored, ds.BitsAllocated,
          ds.PixelRepresentation) == ("MONOCHROME1", 12, 16, 1)
  assert "jaxsr" in ds.DerivationDescription and "x2" in ds.DerivationDescription
  # Stored values mean what they meant: same modality LUT output for the same pixel.
  assert ds.pixel_array.min() >= -2048 and ds.pixel_array.max() < 2048
  # A second run refuses existing outputs; --overwrite replaces them.
  assert upscale.main(args[:3] + ["--tile=0"]) == 1
  assert "exists" in capsys.readouterr().err
  assert upscale.main(args[:3] + ["--tile=0", "--overwrite"]) == 1  # Only broken.png.
  assert _hashes(src) == before


@pytest.mark.slow
def test_cli_refuses_input_folder_as_output(workdir, tmp_path, capsys):
  Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "x.png")
  before = _hashes(tmp_path)
  assert upscale.main([f"--weights={workdir}", f"--input={tmp_path}",
                       f"--output={tmp_path}"]) == 2
  assert "input folder" in capsys.readouterr().err
  assert upscale.main([f"--weights={workdir}", f"--input={tmp_path / 'x.png'}",
                       f"--output={tmp_path}", "--overwrite"]) == 1
  assert "overwrite an input" in capsys.readouterr().err
  assert _hashes(tmp_path) == before
  # One file: an output folder beside it is fine (nothing searches that folder again).
  assert upscale.main([f"--weights={workdir}", f"--input={tmp_path / 'x.png'}",
                       f"--output={tmp_path / 'out'}"]) == 0
  assert (tmp_path / "out" / "x.png").is_file()


@pytest.mark.slow
def test_cli_real_compressed_dicom(workdir, xray_dir, tmp_path):
  source = xray_dir / "dicom" / "wg04_RG3_leg_CR_JPLL.dcm"
  digest = hashlib.sha256(source.read_bytes()).hexdigest()
  assert upscale.main([f"--weights={workdir}", f"--input={source}", f"--output={tmp_path}",
                       "--tile=384", "--tile_overlap=16", "--batch=2"]) == 0
  assert hashlib.sha256(source.read_bytes()).hexdigest() == digest
  original, ds = pydicom.dcmread(source), pydicom.dcmread(tmp_path / source.name)
  assert ds.file_meta.TransferSyntaxUID == dicom_uid.JPEGLSLossless  # auto: lossless
  assert (ds.Rows, ds.Columns) == (2 * original.Rows, 2 * original.Columns)
  assert (ds.PhotometricInterpretation, ds.BitsStored) == ("MONOCHROME1", original.BitsStored)
  assert ds.PatientID == original.PatientID
  given, written = images.read_image(source), images.read_image(tmp_path / source.name)
  # Bilinear upsampling dominates a barely trained net: the means agree.
  assert abs(float(written.pixels.mean()) - float(given.pixels.mean())) < 0.02
  assert written.pixels.shape == (2 * given.pixels.shape[0], 2 * given.pixels.shape[1])


def test_stretch_gain_and_upscale_keep_low_bit_data_in_its_range():
  data = np.array([[0, 1000], [4095, 17]], np.float64)
  # 12-bit data in a 16-bit container: stretched to full range, exactly invertible.
  gain = levels.stretch_gain(data / 65535, 16)
  np.testing.assert_allclose(gain, 65535 / 4095)
  assert levels.stretch_gain(data / 4095, 12) == 1.0       # DICOM using its BitsStored.
  assert levels.stretch_gain(np.full((2, 2), 200 / 255), 8) == 1.0
  assert levels.stretch_gain(np.full((2, 2), 30 / 65535), 16) == 65535 / 255  # At least 8 bits.
  seen = []

  def forward(variables, tiles):
    del variables
    seen.append(float(tiles.max()))
    return jnp.repeat(jnp.repeat(tiles * 2.0 - 0.5, 2, axis=1), 2, axis=2)

  fake = model.Model(MSRResNet(1, 1, num_feat=4, num_block=0, upscale=2), {}, {},
                     forward=forward)
  out = fake.upscale(data / 65535, 16, tile=0)
  np.testing.assert_allclose(seen[0], 1.0)  # The network saw the data at full range.
  # Overshoot is clipped to the data's own range (here 4095 of 65535).
  np.testing.assert_allclose(out.max(), 4095 / 65535, rtol=1e-6)
  assert out.min() == 0 and out.shape == (4, 4)


def _png(path, value=128, size=(12, 16)):
  Image.fromarray(np.full(size, value, np.uint8)).save(path)


@pytest.mark.slow
def test_symbolic_links_in_the_input_folder_are_upscaled_under_their_own_names(
    workdir, tmp_path, capsys):
  outside, src, out = tmp_path / "elsewhere", tmp_path / "in", tmp_path / "out"
  outside.mkdir()
  (src / "real").mkdir(parents=True)
  _png(outside / "target.png")
  _png(src / "real" / "plain.png")
  (src / "link.png").symlink_to(outside / "target.png")         # A file outside the folder.
  (src / "linked_dir").symlink_to(outside, target_is_directory=True)
  (src / "dangling.png").symlink_to(tmp_path / "missing.png")   # A broken link.
  assert upscale.main([f"--weights={workdir}", f"--input={src}", f"--output={out}"]) == 1
  err = capsys.readouterr().err
  assert "Traceback" not in err
  assert f"jaxsr: failed: {src / 'dangling.png'}" in err
  for name in ("link.png", "linked_dir/target.png", "real/plain.png"):
    with Image.open(out / name) as image:
      assert image.size == (32, 24), name
  assert not (out / "target.png").exists() and not (outside / "target.png").is_symlink()


@pytest.mark.slow
def test_colour_input_stays_colour_with_a_notice_for_a_grey_model(workdir, tmp_path, capsys):
  (tmp_path / "in").mkdir()
  rgb = np.zeros((12, 16, 3), np.uint8)
  rgb[..., 0] = 200
  Image.fromarray(rgb).save(tmp_path / "in" / "colour.png")
  _png(tmp_path / "in" / "grey.png")
  assert upscale.main([f"--weights={workdir}", f"--input={tmp_path / 'in'}",
                       f"--output={tmp_path / 'out'}"]) == 0
  err = capsys.readouterr().err
  assert "colour.png: colour (RGB) image: the luminance is upscaled by the model" in err
  assert "grey.png: colour" not in err
  with Image.open(tmp_path / "out" / "colour.png") as out:
    assert out.mode == "RGB"
    red = np.asarray(out)[..., 0].astype(int)
  # A flat red input stays red: chroma is resized, never dropped.
  assert np.abs(red - 200).max() <= 12


def test_outputs_get_the_usual_file_permissions(tmp_path):
  from jaxsr.io import files  # pylint: disable=import-outside-toplevel
  tmp = tmp_path / "tmp"
  tmp.write_bytes(b"x")
  os.chmod(tmp, 0o600)  # As tempfile.mkstemp makes it.
  files.publish(tmp, tmp_path / "out.png")
  mask = os.umask(0)
  os.umask(mask)
  assert (tmp_path / "out.png").stat().st_mode & 0o777 == 0o666 & ~mask
  assert not tmp.exists()


def test_png_compression_changes_the_file_size_not_the_pixels(tmp_path, capsys):
  (tmp_path / "in").mkdir()
  levels_16 = (np.random.default_rng(0).random((40, 36)) * 4095).astype(np.uint16)
  Image.fromarray(levels_16).save(tmp_path / "in" / "a.png")
  for level in (1, 9):
    assert upscale.main([f"--input={tmp_path / 'in'}", f"--output={tmp_path / str(level)}",
                         f"--png_compression={level}", "--compilation_cache=none"]) == 0
  fast, small = tmp_path / "1" / "a.png", tmp_path / "9" / "a.png"
  np.testing.assert_array_equal(np.asarray(Image.open(fast)), np.asarray(Image.open(small)))
  assert small.stat().st_size < fast.stat().st_size
  with pytest.raises(SystemExit):
    upscale.main([f"--input={tmp_path / 'in'}", f"--output={tmp_path / 'x'}",
                  "--png_compression=10"])
  assert "--png_compression" in capsys.readouterr().err


def _slice(path, modality, side=24):
  ds = pydicom.Dataset()
  ds.file_meta = pydicom.dataset.FileMetaDataset()
  ds.file_meta.TransferSyntaxUID = dicom_uid.ExplicitVRLittleEndian
  ds.SOPClassUID, ds.SOPInstanceUID = dicom_uid.SecondaryCaptureImageStorage, dicom_uid.generate_uid()
  ds.Modality = modality
  if modality == "CT":
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
  ramp = np.linspace(0, 2000, side * side).reshape(side, side).astype(np.uint16)
  ds.set_pixel_data(ramp, "MONOCHROME2", 12)
  ds.save_as(path, enforce_file_format=True)


@pytest.mark.slow
def test_without_weights_each_input_gets_the_model_for_its_modality(tmp_path, capsys):
  (tmp_path / "in").mkdir()
  _slice(tmp_path / "in" / "ct.dcm", "CT")
  _slice(tmp_path / "in" / "dx.dcm", "DX")
  _slice(tmp_path / "in" / "xa.dcm", "XA")
  args = [f"--input={tmp_path / 'in'}", f"--output={tmp_path / 'out'}"]
  assert upscale.main(args) == 0
  err = capsys.readouterr().err
  # CT has a model of its own, at its own scale when --scale is not given.
  assert "using the shipped CT model ct_x2" in err
  assert pydicom.dcmread(tmp_path / "out" / "ct.dcm").Rows == 48
  assert pydicom.dcmread(tmp_path / "out" / "dx.dcm").Rows == 96
  # A modality without one: the radiograph model, with one notice.
  assert "jaxsr: note: no shipped XA model; upscaled by the radiograph model xray_x4" in err
  assert "DX model" not in err and err.count("using the shipped radiograph model xray_x4") == 1
  # --scale picks within the modality's models, else falls back with a notice.
  assert upscale.main(args[:1] + [f"--output={tmp_path / 'out4'}", "--scale=4"]) == 0
  assert "no shipped CT model at x4" in capsys.readouterr().err
