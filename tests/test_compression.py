"""Lossless DICOM outputs: every transfer syntax decodes to exactly what was meant to be
stored, at every depth jaxsr writes (8 to 16 bits, signed CT included), grey and colour."""
import numpy as np
import pydicom
from pydicom import uid as dicom_uid
import pytest

from jaxsr import upscale
from jaxsr.inference import writers
from jaxsr.io import compression, images

SCALE = 2


def _dicom(path, bits, signed=False, colour=None, frames=1):
  rng = np.random.default_rng(bits + 100 * signed)
  ds = pydicom.Dataset()
  ds.file_meta = pydicom.dataset.FileMetaDataset()
  ds.file_meta.TransferSyntaxUID = dicom_uid.ExplicitVRLittleEndian
  ds.SOPInstanceUID = dicom_uid.generate_uid()
  shape = (frames, 20, 24) + ((3,) if colour else ())
  if signed:  # CT: signed stored values with a rescale to HU.
    ds.SOPClassUID, ds.Modality = dicom_uid.CTImageStorage, "CT"
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, 0, "HU"
    low = -(2 ** (bits - 1))
    values = rng.integers(max(low, -1024), 2 ** (bits - 1), shape)
  else:
    ds.SOPClassUID, ds.Modality = dicom_uid.SecondaryCaptureImageStorage, "OT"
    values = rng.integers(0, 2 ** bits, shape)
  # Smooth enough to compress: a ramp plus a little noise, kept in range.
  ramp = np.linspace(0, 1, shape[1] * shape[2]).reshape(shape[1:3])
  if colour:
    ramp = ramp[..., None]
  values = np.clip((values // 8) + (ramp * 2 ** (bits - 2)).astype(np.int64),
                   values.min(), values.max())
  dtype = (np.int16 if bits > 8 else np.int8) if signed else (np.uint16 if bits > 8 else np.uint8)
  data = values.astype(dtype)
  ds.set_pixel_data(data if frames > 1 else data[0], colour or "MONOCHROME2", bits)
  if frames > 1:
    ds.NumberOfFrames = frames
  ds.save_as(path, enforce_file_format=True)
  return path


def _written(source, target, syntax):
  image = images.read_image(source)
  output = writers.open_output(image, [target], scale=SCALE, model="test",
                               transfer_syntax=syntax)
  for index in range(image.num_frames):
    frame = image.frames[index]
    output.put(index, np.repeat(np.repeat(frame, SCALE, axis=0), SCALE, axis=1))
  output.close()
  return pydicom.dcmread(target)


CASES = [(8, False, None), (10, False, None), (12, False, None), (15, False, None),
         (16, False, None), (12, True, None), (16, True, None), (8, False, "RGB"),
         (8, False, "YBR_FULL")]


@pytest.mark.parametrize("bits,signed,colour", CASES)
def test_every_lossless_syntax_decodes_bit_exactly(bits, signed, colour, tmp_path):
  source = _dicom(tmp_path / "in.dcm", bits, signed, colour, frames=2)
  plain = _written(source, tmp_path / "plain.dcm", "uncompressed")
  assert plain.file_meta.TransferSyntaxUID == dicom_uid.ExplicitVRLittleEndian
  expected = plain.pixel_array
  for name in ("jpeg-ls", "jpeg2000", "rle", "auto"):
    if colour == "YBR_FULL" and name == "jpeg2000":
      with pytest.raises(compression.CompressionError, match="cannot hold YBR_FULL"):
        _written(source, tmp_path / f"{name}.dcm", name)
      continue
    ds = _written(source, tmp_path / f"{name}.dcm", name)
    wanted = compression.SYNTAXES["jpeg-ls" if name == "auto" else name]
    assert ds.file_meta.TransferSyntaxUID == wanted, name
    assert ds.file_meta.TransferSyntaxUID.is_compressed
    assert (ds.BitsStored, ds.PixelRepresentation, ds.PhotometricInterpretation) == (
        plain.BitsStored, plain.PixelRepresentation, plain.PhotometricInterpretation), name
    np.testing.assert_array_equal(ds.pixel_array, expected, err_msg=name)
    assert "LossyImageCompression" not in ds, name  # Lossless: nothing lost to say.


def test_auto_falls_back_and_a_missing_encoder_is_one_line(tmp_path, monkeypatch):
  source = _dicom(tmp_path / "in.dcm", 12)
  monkeypatch.setattr(compression, "available",
                      lambda name: name in ("rle", "uncompressed"))
  assert _written(source, tmp_path / "a.dcm", "auto").file_meta.TransferSyntaxUID == \
      dicom_uid.RLELossless
  with pytest.raises(compression.CompressionError,
                     match="jpeg-ls: its encoder is not installed .needs pyjpegls"):
    compression.check_choice("jpeg-ls")
  monkeypatch.setattr(compression, "available", lambda name: name == "uncompressed")
  assert _written(source, tmp_path / "b.dcm", "auto").file_meta.TransferSyntaxUID == \
      dicom_uid.ExplicitVRLittleEndian


def test_a_syntax_that_does_not_round_trip_is_never_written(tmp_path, monkeypatch):
  source = _dicom(tmp_path / "in.dcm", 12)
  real = compression.pixel_array
  monkeypatch.setattr(compression, "pixel_array",
                      lambda ds, **kw: real(ds, **kw) + (ds.file_meta.TransferSyntaxUID
                                                          == dicom_uid.JPEGLSLossless))
  # auto skips the syntax whose decode differs; asked for by name, it is an error.
  assert _written(source, tmp_path / "a.dcm", "auto").file_meta.TransferSyntaxUID == \
      dicom_uid.JPEG2000Lossless
  with pytest.raises(compression.CompressionError, match="decoded pixels differ"):
    _written(source, tmp_path / "b.dcm", "jpeg-ls")
  assert not (tmp_path / "b.dcm").exists()


@pytest.mark.skipif(not compression.available("jpeg-ls"), reason="pyjpegls not installed")
def test_jpeg_ls_is_decoded_by_charls_with_the_same_samples(tmp_path, monkeypatch):
  # Writing checks every JPEG-LS output by decoding it, and JPEG-LS inputs are read:
  # both through CharLS, never pydicom's first choice libjpeg (several times slower).
  source = _dicom(tmp_path / "in.dcm", 12, frames=2)
  written = _written(source, tmp_path / "ls.dcm", "jpeg-ls")
  by_libjpeg = pydicom.pixels.pixel_array(written, raw=True, decoding_plugin="pylibjpeg") \
      if "pylibjpeg" in pydicom.pixels.decoders.JPEGLSLosslessDecoder.available_plugins else None
  calls = []
  decoder = pydicom.pixels.decoders.JPEGLSLosslessDecoder
  for label, decode in list(decoder._available.items()):  # pylint: disable=protected-access
    monkeypatch.setitem(decoder._available, label,  # pylint: disable=protected-access
                        lambda src, runner, _d=decode, _l=label: calls.append(_l) or _d(src, runner))
  assert compression.decoding_plugin(dicom_uid.JPEGLSLossless) == "pyjpegls"
  _written(source, tmp_path / "again.dcm", "jpeg-ls")
  read = images.read_image(tmp_path / "again.dcm")
  assert calls and set(calls) == {"pyjpegls"}
  if by_libjpeg is not None:  # The other decoder gives the same samples.
    np.testing.assert_array_equal(pydicom.dcmread(tmp_path / "again.dcm").pixel_array, by_libjpeg)
  assert read.num_frames == 2
  assert compression.decoding_plugin(dicom_uid.JPEG2000Lossless) == ""  # pydicom's choice.


@pytest.mark.skipif(not compression.available("jpeg-ls")
                    or "pylibjpeg" not in pydicom.pixels.decoders.JPEGLSLosslessDecoder
                    .available_plugins, reason="needs both JPEG-LS decoders")
def test_a_jpeg_ls_input_charls_refuses_is_read_by_the_other_decoder(tmp_path, monkeypatch):
  source = _dicom(tmp_path / "in.dcm", 12)
  _written(source, tmp_path / "ls.dcm", "jpeg-ls")
  expected = images.read_image(tmp_path / "ls.dcm").frames

  def refuse(src, runner):
    raise ValueError("CharLS refuses this stream")

  decoder = pydicom.pixels.decoders.JPEGLSLosslessDecoder
  monkeypatch.setitem(decoder._available, "pyjpegls", refuse)  # pylint: disable=protected-access
  with pytest.raises(RuntimeError, match="CharLS refuses"):  # The patch is in force...
    pydicom.pixels.pixel_array(tmp_path / "ls.dcm", decoding_plugin="pyjpegls")
  # ...and the input is still read, by libjpeg, to the same samples.
  np.testing.assert_array_equal(images.read_image(tmp_path / "ls.dcm").frames, expected)


def test_cli_flag_names_the_syntaxes_and_refuses_others(tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_info:
    upscale.main([f"--input={tmp_path}", f"--output={tmp_path / 'o'}",
                  "--dicom_transfer_syntax=jpeg"])
  assert exit_info.value.code == 2
  assert "invalid choice: 'jpeg'" in capsys.readouterr().err
