"""Tests for jaxsr.io.images: real radiographs, synthetic files, bad input."""
import functools
import hashlib
import pathlib
import re
import struct
import zlib

import numpy as np
from PIL import Image
from PIL import ImageFile
import pydicom
from pydicom import uid
from pydicom.dataset import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate
import pytest
import tifffile

from jaxsr import io as jio
from jaxsr.io import images

# Same image in several DICOM transfer syntaxes (see SOURCES.md).
SAME_IMAGE_GROUPS = {
    "RG2_hip": [f"wg04_RG2_hip_CR_{code}.dcm"
                for code in ("UNC", "J2KR", "JPLL", "RLE")],
    "RG3_leg": [f"wg04_RG3_leg_CR_{code}.dcm"
                for code in ("UNC", "J2KR", "JPLL", "JLSL")],
}


@pytest.fixture(scope="module")
def read_shared():
  """read_image with a cache, so each big shared file is decoded once."""
  return functools.cache(images.read_image)


@pytest.fixture(scope="module")
def sources_bits(xray_dir) -> dict[str, int]:
  """'dicom/x.dcm' -> the 'bits N' that SOURCES.md records for that file."""
  table_rows = re.findall(r"^\| `((?:png|dicom)/[^`]+)` \|(.*)$",
                          (xray_dir / "SOURCES.md").read_text(), re.MULTILINE)
  bits = {}
  for name, rest in table_rows:
    match = re.search(r"bits (\d+)", rest)
    assert match, f"SOURCES.md gives no bit depth for {name}"
    bits[name] = int(match.group(1))
  return bits


def _sha256(path: pathlib.Path) -> str:
  return hashlib.sha256(path.read_bytes()).hexdigest()


def _exact_unit(levels, bits: int) -> np.ndarray:
  """The float32 pixels that integer `levels` must load as."""
  return np.asarray(levels).astype(np.float32) / np.float32(2**bits - 1)


def _luma(rgb) -> np.ndarray:
  """BT.601 luma rounded half up, in exact integer arithmetic."""
  rgb = np.asarray(rgb, np.int64)
  red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
  return (299 * red + 587 * green + 114 * blue + 500) // 1000


def _png_bytes(width, height, bit_depth, colour_type, rows: bytes) -> bytes:
  """A minimal PNG with unfiltered scanlines, for layouts PIL cannot write."""
  def chunk(kind, payload):
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload)))
  header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type,
                       0, 0, 0)
  return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
          + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def _write_dicom(path, stored, *, bits_stored, photometric="MONOCHROME2",
                 signed=False, transfer_syntax=uid.ExplicitVRLittleEndian,
                 pixel_data=None, preamble=None, **elements):
  """A minimal single-frame DICOM file written by hand with pydicom.

  `pixel_data` replaces the encoded `stored` array (e.g. with garbage);
  False leaves PixelData out altogether.
  """
  stored = np.asarray(stored)
  meta = FileMetaDataset()
  meta.MediaStorageSOPClassUID = uid.SecondaryCaptureImageStorage
  meta.MediaStorageSOPInstanceUID = uid.generate_uid()
  meta.TransferSyntaxUID = transfer_syntax
  ds = Dataset()
  ds.file_meta = meta
  if preamble is not None:
    ds.preamble = preamble
  ds.SOPClassUID = meta.MediaStorageSOPClassUID
  ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
  ds.Modality = "OT"
  ds.Rows, ds.Columns = stored.shape[:2]
  ds.SamplesPerPixel = 3 if stored.ndim == 3 else 1
  if stored.ndim == 3:
    ds.PlanarConfiguration = 0
  ds.PhotometricInterpretation = photometric
  ds.BitsAllocated = 8 if bits_stored <= 8 else 16
  ds.BitsStored = bits_stored
  ds.HighBit = bits_stored - 1
  ds.PixelRepresentation = 1 if signed else 0
  for keyword, value in elements.items():
    setattr(ds, keyword, value)
  if pixel_data is None:
    dtype = f"<{'i' if signed else 'u'}{ds.BitsAllocated // 8}"
    pixel_data = stored.astype(dtype).tobytes()
  if pixel_data is not False:
    ds.PixelData = pixel_data
    native_words = ds.BitsAllocated > 8 and not transfer_syntax.is_compressed
    ds["PixelData"].VR = "OW" if native_words else "OB"
  ds.save_as(path, enforce_file_format=True)
  return path


def _random_levels(shape, bits, seed=0):
  """Random levels that include both extremes, so the scale is pinned."""
  rng = np.random.default_rng(seed)
  levels = rng.integers(0, 2**bits, size=shape)
  levels.flat[0], levels.flat[-1] = 0, 2**bits - 1
  return levels


# The shared radiographs.


@pytest.mark.slow
def test_every_shared_image_loads(xray_dir, read_shared, sources_bits):
  files = sorted((xray_dir / "png").iterdir()) + sorted(
      (xray_dir / "dicom").iterdir())
  assert len(files) >= 40
  assert images.list_images(xray_dir) == sorted(files)
  for path in files:
    rad = read_shared(path)
    relative = f"{path.parent.name}/{path.name}"
    if path.name.startswith("dcm16_"):
      expected_bits = 16  # The PNG says 16, whatever depth its source had.
    else:
      expected_bits = sources_bits[relative]
    assert rad.pixels.dtype == np.float32, relative
    assert rad.pixels.ndim == 2, relative
    assert rad.pixels.shape[0] > 100 and rad.pixels.shape[1] > 100, relative
    assert rad.bits == expected_bits, relative
    assert rad.path == str(path)
    assert 0.0 <= rad.pixels.min() < rad.pixels.max() <= 1.0, relative
    # Pixels sit on the grid of 2**bits levels.
    levels = rad.pixels.astype(np.float64) * (2**rad.bits - 1)
    assert np.abs(levels - np.rint(levels)).max() < 1e-3, relative
    assert rad.file_format == ("png" if path.suffix == ".png" else "dicom")


def test_nih_rgba_png_is_read_as_its_grey_channel(xray_dir, read_shared):
  path = xray_dir / "png" / "nih_00005224_000.png"
  rgba = np.asarray(Image.open(path))
  assert rgba.shape[-1] == 4
  rad = read_shared(path)
  assert rad.bits == 8 and rad.photometric == "RGBA"
  # The channels are equal, so the luma is that grey exactly.
  assert np.array_equal(rad.pixels, _exact_unit(rgba[..., 0], 8))


@pytest.mark.parametrize("group", sorted(SAME_IMAGE_GROUPS))
def test_dicom_encodings_of_one_image_load_identically(xray_dir, read_shared,
                                                       group):
  names = SAME_IMAGE_GROUPS[group]
  reference = read_shared(xray_dir / "dicom" / names[0])
  for name in names[1:]:
    other = read_shared(xray_dir / "dicom" / name)
    assert other.bits == reference.bits == 10, name
    assert other.inverted == reference.inverted, name
    assert np.array_equal(other.pixels, reference.pixels), name


@pytest.mark.parametrize("dicom_name,inverted", [
    ("wg04_RG3_leg_CR_UNC.dcm", True),
    ("wg04_RG2_hip_CR_UNC.dcm", False),
    ("wg04_RG1_chest_CR_JLSN.dcm", True),
    ("pydicom966_chest_DX_J2KR_mono1.dcm", True),
    ("wg04_MG1_mammo_J2KI.dcm", False),
])
def test_dicom_matches_png_of_its_stored_values(xray_dir, read_shared,
                                                dicom_name, inverted):
  dicom = read_shared(xray_dir / "dicom" / dicom_name)
  png = read_shared(xray_dir / "png" / f"dcm16_{dicom_name[:-4]}.png")
  assert png.bits == 16 and dicom.bits < 16
  assert dicom.inverted == inverted
  # The PNG holds (inverted) stored levels / 65535, the DICOM / (2**bits - 1):
  # compare the integer levels.
  png_levels = jio.to_levels(png.pixels, 16)
  assert np.array_equal(jio.to_levels(dicom.pixels, dicom.bits), png_levels)
  assert np.array_equal(dicom.pixels, _exact_unit(png_levels, dicom.bits))


def test_monochrome1_is_inverted_stored_values(xray_dir, read_shared):
  path = xray_dir / "dicom" / "wg04_RG3_leg_CR_UNC.dcm"
  stored = pydicom.dcmread(path).pixel_array.astype(np.int64)
  rad = read_shared(path)
  assert rad.photometric == "MONOCHROME1" and rad.inverted
  assert np.array_equal(jio.to_levels(rad.pixels, 10), 1023 - stored)


def test_identity_rescale_in_shared_dicom_changes_nothing(xray_dir,
                                                          read_shared):
  path = xray_dir / "dicom" / "pydicom966_chest_DX_J2KR_mono1.dcm"
  header = pydicom.dcmread(path, stop_before_pixels=True)
  assert float(header.RescaleSlope) == 1.0
  assert float(header.RescaleIntercept) == 0.0
  rad = read_shared(path)
  png = read_shared(
      xray_dir / "png" / "dcm16_pydicom966_chest_DX_J2KR_mono1.png")
  # Exactly the plain (4095 - v) / 4095 path.
  assert np.array_equal(rad.pixels,
                        _exact_unit(jio.to_levels(png.pixels, 16), 12))


def test_jpeg_baseline_dicom_is_8_bit(xray_dir, read_shared):
  rad = read_shared(xray_dir / "dicom" / "siim_chest_CR_8bit_jpegbaseline.dcm")
  assert rad.bits == 8
  assert rad.photometric == "MONOCHROME2" and not rad.inverted
  levels = jio.to_levels(rad.pixels, 8)
  assert levels.min() == 0 and levels.max() == 255
  assert np.abs(rad.pixels.astype(np.float64) * 255 - levels).max() < 1e-4


# Synthetic PNG, TIFF and JPEG files.


@pytest.mark.parametrize("bits,dtype", [(8, np.uint8), (16, np.uint16)])
def test_grey_png_round_trips_exact_levels(tmp_path, bits, dtype):
  levels = _random_levels((37, 53), bits).astype(dtype)
  path = tmp_path / "grey.png"
  Image.fromarray(levels).save(path)
  rad = images.read_image(path)
  assert rad.bits == bits and rad.file_format == "png"
  assert rad.pixels.shape == (37, 53) and rad.pixels.dtype == np.float32
  assert np.array_equal(rad.pixels, _exact_unit(levels, bits))
  assert np.array_equal(jio.to_levels(rad.pixels, bits), levels)


def test_16_bit_png_with_few_levels_still_reports_16_bits(tmp_path):
  levels = np.array([[0, 1000], [512, 7]], np.uint16)
  path = tmp_path / "dark.png"
  Image.fromarray(levels).save(path)
  rad = images.read_image(path)
  assert rad.bits == 16
  assert np.array_equal(jio.to_levels(rad.pixels, 16), levels)


def test_low_bit_depth_grey_png_keeps_its_depth(tmp_path):
  # 4-bit grey, two pixels per byte: levels 0, 5, 10, 15.
  path = tmp_path / "four_bit.png"
  path.write_bytes(_png_bytes(4, 1, 4, 0, b"\x00\x05\xaf"))
  rad = images.read_image(path)
  assert rad.bits == 4
  assert np.array_equal(jio.to_levels(rad.pixels, 4), [[0, 5, 10, 15]])


RGB_PIXELS = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]],
                       [[255, 255, 255], [10, 200, 30], [0, 0, 0]]], np.uint8)
# Hand-computed BT.601 luma of RGB_PIXELS, rounded to the nearest level.
RGB_LUMA = np.array([[76, 150, 29], [255, 124, 0]])


def test_rgb_png_becomes_bt601_luma(tmp_path):
  path = tmp_path / "rgb.png"
  Image.fromarray(RGB_PIXELS).save(path)
  rad = images.read_image(path)
  assert rad.bits == 8 and rad.photometric == "RGB"
  assert np.array_equal(jio.to_levels(rad.pixels, 8), RGB_LUMA)
  assert np.array_equal(rad.pixels, _exact_unit(RGB_LUMA, 8))


def test_rgba_png_drops_alpha(tmp_path):
  rng = np.random.default_rng(1)
  rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
  alpha = rng.integers(0, 256, (20, 30, 1), dtype=np.uint8)
  path = tmp_path / "rgba.png"
  Image.fromarray(np.concatenate([rgb, alpha], -1), mode="RGBA").save(path)
  rad = images.read_image(path)
  assert rad.bits == 8 and rad.photometric == "RGBA"
  assert np.array_equal(jio.to_levels(rad.pixels, 8), _luma(rgb))


def test_grey_alpha_png_drops_alpha(tmp_path):
  grey = _random_levels((9, 11), 8).astype(np.uint8)
  alpha = np.full_like(grey, 17)
  path = tmp_path / "la.png"
  Image.fromarray(np.stack([grey, alpha], -1), mode="LA").save(path)
  rad = images.read_image(path)
  assert rad.bits == 8
  assert np.array_equal(jio.to_levels(rad.pixels, 8), grey)


def test_palette_png_goes_through_its_palette(tmp_path):
  palette = np.array([[0, 0, 0], [255, 0, 0], [10, 200, 30], [90, 90, 90]],
                     np.uint8)
  indices = np.array([[0, 1, 2, 3], [3, 2, 1, 0]], np.uint8)
  image = Image.fromarray(indices, mode="P")
  image.putpalette(palette.flatten().tolist())
  path = tmp_path / "palette.png"
  image.save(path)
  assert Image.open(path).mode == "P"
  rad = images.read_image(path)
  assert rad.bits == 8
  assert np.array_equal(jio.to_levels(rad.pixels, 8), _luma(palette)[indices])


def test_one_pixel_png_is_fine(tmp_path):
  path = tmp_path / "dot.png"
  Image.fromarray(np.array([[200]], np.uint8)).save(path)
  rad = images.read_image(path)
  assert rad.pixels.shape == (1, 1)
  assert rad.pixels[0, 0] == np.float32(200) / np.float32(255)


def test_png_content_wins_over_a_wrong_extension(tmp_path):
  levels = _random_levels((8, 8), 8).astype(np.uint8)
  path = tmp_path / "actually_png.jpg"
  Image.fromarray(levels).save(path, format="PNG")
  rad = images.read_image(path)
  assert rad.file_format == "png"
  assert np.array_equal(jio.to_levels(rad.pixels, 8), levels)


@pytest.mark.parametrize("bits,dtype", [(8, np.uint8), (16, np.uint16)])
def test_grey_tiff_round_trips_exact_levels(tmp_path, bits, dtype):
  levels = _random_levels((31, 47), bits).astype(dtype)
  path = tmp_path / "grey.tif"
  tifffile.imwrite(path, levels, photometric="minisblack", compression="zlib")
  rad = images.read_image(path)
  assert rad.bits == bits and rad.file_format == "tiff"
  assert np.array_equal(rad.pixels, _exact_unit(levels, bits))


def test_min_is_white_tiff_is_inverted(tmp_path):
  levels = _random_levels((16, 16), 16).astype(np.uint16)
  path = tmp_path / "white.tiff"
  tifffile.imwrite(path, levels, photometric="miniswhite")
  rad = images.read_image(path)
  assert rad.bits == 16 and rad.inverted
  assert np.array_equal(jio.to_levels(rad.pixels, 16),
                        65535 - levels.astype(int))


def test_lzw_tiff_written_by_pil_reads_exactly(tmp_path):
  # tifffile needs the optional imagecodecs package for LZW; PIL steps in.
  levels = _random_levels((40, 24), 16).astype(np.uint16)
  path = tmp_path / "lzw.tif"
  Image.fromarray(levels).save(path, compression="tiff_lzw")
  rad = images.read_image(path)
  assert rad.bits == 16
  assert np.array_equal(jio.to_levels(rad.pixels, 16), levels)


def test_16_bit_rgb_tiff_becomes_luma(tmp_path):
  rng = np.random.default_rng(2)
  rgb = rng.integers(0, 65536, (12, 10, 3)).astype(np.uint16)
  path = tmp_path / "rgb16.tif"
  tifffile.imwrite(path, rgb, photometric="rgb")
  rad = images.read_image(path)
  assert rad.bits == 16
  assert np.array_equal(jio.to_levels(rad.pixels, 16), _luma(rgb))


def test_grey_jpeg_reads_as_8_bit_close_to_original(tmp_path):
  ramp = np.add.outer(np.arange(64), np.arange(64)).astype(np.uint8) * 2
  path = tmp_path / "ramp.jpeg"
  Image.fromarray(ramp).save(path, quality=95)
  rad = images.read_image(path)
  assert rad.bits == 8 and rad.file_format == "jpeg"
  decoded = np.asarray(Image.open(path))
  assert np.array_equal(jio.to_levels(rad.pixels, 8), decoded)
  assert np.abs(decoded.astype(int) - ramp).mean() < 2


def test_colour_jpeg_becomes_luma(tmp_path):
  rgb = np.zeros((32, 32, 3), np.uint8)
  rgb[..., 0], rgb[..., 1] = 200, 100
  path = tmp_path / "colour.jpg"
  Image.fromarray(rgb).save(path, quality=95)
  rad = images.read_image(path)
  assert rad.bits == 8 and rad.photometric == "RGB"
  assert np.abs(jio.to_levels(rad.pixels, 8) - _luma(rgb)).max() <= 3


# Synthetic DICOM files.


def test_monochrome2_12_bit_dicom(tmp_path):
  stored = _random_levels((24, 20), 12)
  path = _write_dicom(tmp_path / "mono2.dcm", stored, bits_stored=12)
  rad = images.read_image(path)
  assert rad.bits == 12 and not rad.inverted and rad.file_format == "dicom"
  assert np.array_equal(rad.pixels, _exact_unit(stored, 12))


def test_monochrome1_12_bit_dicom_is_inverted(tmp_path):
  stored = _random_levels((24, 20), 12)
  path = _write_dicom(tmp_path / "mono1.dcm", stored, bits_stored=12,
                      photometric="MONOCHROME1")
  rad = images.read_image(path)
  assert rad.bits == 12 and rad.inverted
  assert np.array_equal(rad.pixels, _exact_unit(4095 - stored, 12))


def test_identity_rescale_is_exactly_the_plain_path(tmp_path):
  stored = _random_levels((24, 20), 12)
  plain = _write_dicom(tmp_path / "plain.dcm", stored, bits_stored=12,
                       photometric="MONOCHROME1")
  rescaled = _write_dicom(tmp_path / "identity.dcm", stored, bits_stored=12,
                          photometric="MONOCHROME1", RescaleSlope=1,
                          RescaleIntercept=0)
  assert np.array_equal(images.read_image(rescaled).pixels,
                        images.read_image(plain).pixels)


def test_positive_rescale_maps_stored_range_onto_unit_interval(tmp_path):
  stored = _random_levels((24, 20), 12)
  path = _write_dicom(tmp_path / "rescale.dcm", stored, bits_stored=12,
                      RescaleSlope=2, RescaleIntercept=-1024)
  rad = images.read_image(path)
  # Output range [-1024, 7166] -> [0, 1]: the same image as without rescale.
  assert rad.bits == 12
  assert np.array_equal(jio.to_levels(rad.pixels, 12), stored)
  np.testing.assert_allclose(rad.pixels, _exact_unit(stored, 12), atol=1e-7)


def test_negative_rescale_slope_flips_the_image(tmp_path):
  stored = _random_levels((24, 20), 12)
  path = _write_dicom(tmp_path / "flip.dcm", stored, bits_stored=12,
                      RescaleSlope=-1, RescaleIntercept=100)
  rad = images.read_image(path)
  assert np.array_equal(jio.to_levels(rad.pixels, 12), 4095 - stored)


def test_modality_lut_sequence_is_applied(tmp_path):
  lut = (np.arange(4096, dtype=np.int64) ** 2 // 256).astype(np.uint16)
  item = Dataset()
  item.add_new("LUTDescriptor", "US", [4096, 0, 16])
  item.ModalityLUTType = "US"
  item.add_new("LUTData", "OW", lut.astype("<u2").tobytes())
  stored = _random_levels((24, 20), 12)
  path = _write_dicom(tmp_path / "lut.dcm", stored, bits_stored=12,
                      ModalityLUTSequence=[item])
  rad = images.read_image(path)
  assert rad.bits == 12
  expected = lut[stored].astype(np.float64) / lut.max()
  np.testing.assert_allclose(rad.pixels, expected, atol=1e-6)
  assert not np.allclose(rad.pixels, _exact_unit(stored, 12), atol=1e-2)


@pytest.mark.parametrize("bits", [16, 12])
def test_signed_dicom_is_shifted_to_unsigned_range(tmp_path, bits):
  stored = _random_levels((24, 20), bits) - 2**(bits - 1)
  assert stored.min() == -2**(bits - 1) and stored.max() == 2**(bits - 1) - 1
  path = _write_dicom(tmp_path / "signed.dcm", stored, bits_stored=bits,
                      signed=True)
  rad = images.read_image(path)
  assert rad.bits == bits
  assert np.array_equal(rad.pixels, _exact_unit(stored + 2**(bits - 1), bits))


def test_rgb_dicom_becomes_luma(tmp_path):
  path = _write_dicom(tmp_path / "rgb.dcm", RGB_PIXELS, bits_stored=8,
                      photometric="RGB")
  rad = images.read_image(path)
  assert rad.bits == 8
  assert np.array_equal(jio.to_levels(rad.pixels, 8), RGB_LUMA)


def test_one_pixel_dicom_without_extension_is_fine(tmp_path):
  path = _write_dicom(tmp_path / "IM0001", np.array([[3000]]), bits_stored=12)
  rad = images.read_image(path)
  assert rad.pixels.shape == (1, 1)
  assert rad.pixels[0, 0] == np.float32(3000) / np.float32(4095)


def test_dicom_whose_preamble_looks_like_tiff(tmp_path):
  stored = _random_levels((8, 8), 10)
  preamble = b"II*\x00" + b"\x00" * 124
  path = _write_dicom(tmp_path / "dual.dcm", stored, bits_stored=10,
                      preamble=preamble)
  assert path.read_bytes()[:4] == b"II*\x00"
  assert np.array_equal(images.read_image(path).pixels, _exact_unit(stored, 10))


def test_dicom_without_preamble_is_read(tmp_path):
  stored = _random_levels((6, 5), 12)
  full = _write_dicom(tmp_path / "full.dcm", stored, bits_stored=12)
  ds = pydicom.dcmread(full)
  del ds.file_meta
  ds.preamble = None
  bare = tmp_path / "bare.dcm"
  ds.save_as(bare, implicit_vr=True, little_endian=True)
  assert bare.read_bytes()[128:132] != b"DICM"
  assert np.array_equal(images.read_image(bare).pixels, _exact_unit(stored, 12))


# Bad input.


def _text_file(tmp_path, name):
  path = tmp_path / name
  path.write_text("this is a text file, not an image\n" * 20)
  return path


def _truncated_png(tmp_path, xray_dir):
  data = (xray_dir / "png" / "nih_00000075_000.png").read_bytes()
  path = tmp_path / "truncated.png"
  path.write_bytes(data[:len(data) // 2])
  return path


def _png_missing_its_middle(tmp_path, xray_dir):
  data = (xray_dir / "png" / "nih_00000075_000.png").read_bytes()
  path = tmp_path / "holed.png"
  path.write_bytes(data[:len(data) // 2] + data[-12:])
  return path


def _empty_png(tmp_path):
  path = tmp_path / "empty.png"
  path.write_bytes(b"")
  return path


def _rgb16_png(tmp_path):
  path = tmp_path / "rgb16.png"
  path.write_bytes(_png_bytes(1, 1, 16, 2, b"\x00" + b"\x12\x34" * 3))
  return path


def _float_tiff(tmp_path):
  path = tmp_path / "float.tif"
  tifffile.imwrite(path, np.full((4, 4), 0.5, np.float32))
  return path


def _multi_page_tiff(tmp_path):
  path = tmp_path / "pages.tif"
  tifffile.imwrite(path, np.zeros((3, 8, 8), np.uint16),
                   photometric="minisblack")
  return path


def _truncated_tiff(tmp_path):
  path = tmp_path / "cut.tif"
  tifffile.imwrite(path, _random_levels((64, 64), 16).astype(np.uint16))
  path.write_bytes(path.read_bytes()[:100])
  return path


def _dicom_without_pixel_data(tmp_path):
  return _write_dicom(tmp_path / "nopixels.dcm", np.zeros((4, 4)),
                      bits_stored=12, pixel_data=False)


def _garbage_jpeg2000_dicom(tmp_path):
  return _write_dicom(tmp_path / "j2k.dcm", np.zeros((4, 4)), bits_stored=12,
                      transfer_syntax=uid.JPEG2000Lossless,
                      pixel_data=encapsulate([b"not a codestream" * 4]))


def _undecodable_syntax_dicom(tmp_path):
  return _write_dicom(tmp_path / "mpeg.dcm", np.zeros((4, 4)), bits_stored=8,
                      transfer_syntax=uid.MPEG2MPML,
                      pixel_data=encapsulate([b"\x00" * 16]))


def _short_pixel_data_dicom(tmp_path):
  return _write_dicom(tmp_path / "short.dcm", np.zeros((4, 4)), bits_stored=12,
                      pixel_data=b"\x00\x01" * 3)


def _palette_colour_dicom(tmp_path):
  return _write_dicom(tmp_path / "palette.dcm", np.zeros((4, 4)), bits_stored=8,
                      photometric="PALETTE COLOR")


BAD_INPUTS = {
    "zero_byte_png": (lambda tmp, xray: _empty_png(tmp), "empty file"),
    "truncated_png": (_truncated_png, "truncated"),
    "png_missing_its_middle": (_png_missing_its_middle,
                               "truncated or corrupt PNG file (cannot decode"),
    "text_named_png": (lambda tmp, xray: _text_file(tmp, "text.png"),
                       "not a PNG, TIFF, JPEG or DICOM file"),
    "text_named_dcm": (lambda tmp, xray: _text_file(tmp, "text.dcm"),
                       "not a DICOM file"),
    "rgb16_png": (lambda tmp, xray: _rgb16_png(tmp), "16-bit colour"),
    "float_tiff": (lambda tmp, xray: _float_tiff(tmp), "floating-point TIFF"),
    "multi_page_tiff": (lambda tmp, xray: _multi_page_tiff(tmp), "multi-page"),
    "truncated_tiff": (lambda tmp, xray: _truncated_tiff(tmp), "TIFF"),
    "dicom_without_pixel_data": (
        lambda tmp, xray: _dicom_without_pixel_data(tmp), "no PixelData"),
    "garbage_jpeg2000_dicom": (lambda tmp, xray: _garbage_jpeg2000_dicom(tmp),
                               "JPEG 2000"),
    "undecodable_syntax_dicom": (
        lambda tmp, xray: _undecodable_syntax_dicom(tmp),
        "no decoder available for DICOM transfer syntax MPEG2"),
    "short_pixel_data_dicom": (lambda tmp, xray: _short_pixel_data_dicom(tmp),
                               "cannot decode DICOM pixel data"),
    "palette_colour_dicom": (lambda tmp, xray: _palette_colour_dicom(tmp),
                             "PALETTE COLOR"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_raises_one_line_error_and_leaves_file_alone(
    tmp_path, xray_dir, case):
  make, expected_text = BAD_INPUTS[case]
  path = make(tmp_path, xray_dir)
  digest = _sha256(path)
  with pytest.raises(images.ImageReadError) as caught:
    images.read_image(path)
  message = str(caught.value)
  assert "\n" not in message
  assert message.startswith(f"{path}: "), message
  assert expected_text in message, message
  assert _sha256(path) == digest


def test_truncated_png_fails_even_if_pil_accepts_truncated_images(
    tmp_path, xray_dir, monkeypatch):
  monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
  path = _truncated_png(tmp_path, xray_dir)
  with pytest.raises(images.ImageReadError, match="truncated"):
    images.read_image(path)


def test_missing_file_is_a_file_not_found_image_error(tmp_path):
  path = tmp_path / "nowhere.png"
  with pytest.raises(images.ImageReadError) as caught:
    images.read_image(path)
  assert isinstance(caught.value, FileNotFoundError)
  assert str(caught.value) == f"{path}: no such file"


def test_folder_given_as_image_is_an_error(tmp_path):
  with pytest.raises(images.ImageReadError, match="is a folder"):
    images.read_image(tmp_path)


# list_images.


def _touch(path: pathlib.Path, data: bytes = b"x") -> pathlib.Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(data)
  return path


def test_list_images_recurses_sorts_and_filters(tmp_path):
  dicom_preamble = b"\x00" * 128 + b"DICM" + b"\x00" * 16
  wanted = [
      _touch(tmp_path / "b.PNG"),
      _touch(tmp_path / "a.png"),
      _touch(tmp_path / "c.JPeG"),
      _touch(tmp_path / "sub" / "d.tif"),
      _touch(tmp_path / "sub" / "e.tiff"),
      _touch(tmp_path / "sub" / "deeper" / "f.dcm"),
      _touch(tmp_path / "sub" / "deeper" / "g.dicom"),
      _touch(tmp_path / "sub" / "deeper" / "h.jpg"),
      _touch(tmp_path / "sub" / "IM0001", dicom_preamble),
      _touch(tmp_path / "sub" / "scan.ima", dicom_preamble),
  ]
  for ignored in ("notes.txt", "sub/readme", "sub/deeper/data.json",
                  "sub/DICOMDIR", ".hidden.png", "sub/._d.tif",
                  ".cache/i.png"):
    content = dicom_preamble if "DICOMDIR" in ignored else b"x"
    _touch(tmp_path / ignored, content)
  found = images.list_images(tmp_path)
  assert found == sorted(wanted)
  assert found == sorted(found)
  top_level = images.list_images(str(tmp_path), recursive=False)
  assert top_level == sorted([tmp_path / "a.png", tmp_path / "b.PNG",
                              tmp_path / "c.JPeG"])
  assert all(extension.startswith(".") and extension == extension.lower()
             for extension in jio.IMAGE_EXTENSIONS)


def test_list_images_follows_folder_links_once(tmp_path):
  real = tmp_path / "real"
  _touch(real / "x.png")
  (tmp_path / "data").mkdir()
  (tmp_path / "data" / "linked").symlink_to(real, target_is_directory=True)
  (real / "loop").symlink_to(real, target_is_directory=True)
  found = images.list_images(tmp_path / "data")
  assert found == [tmp_path / "data" / "linked" / "x.png"]


def test_list_images_errors_on_empty_missing_or_file_folder(tmp_path):
  _touch(tmp_path / "empty" / "notes.txt")
  with pytest.raises(images.ImageReadError) as caught:
    images.list_images(tmp_path / "empty")
  assert str(caught.value).startswith(
      f"{tmp_path / 'empty'}: no images found (")
  _touch(tmp_path / "deep" / "sub" / "x.png")
  with pytest.raises(images.ImageReadError, match="no images found"):
    images.list_images(tmp_path / "deep", recursive=False)
  missing = tmp_path / "missing"
  with pytest.raises(images.ImageReadError) as caught:
    images.list_images(missing)
  assert isinstance(caught.value, FileNotFoundError)
  assert str(caught.value).startswith(f"{missing}: ")
  with pytest.raises(images.ImageReadError, match="not a folder"):
    images.list_images(tmp_path / "deep" / "sub" / "x.png")


# to_levels.


def test_to_levels_rounds_and_clips():
  pixels = np.array([-0.2, 0.0, 0.4 / 4095, 0.6 / 4095, 1.0, 1.3])
  levels = jio.to_levels(pixels, 12)
  assert levels.dtype == np.float64
  assert levels.tolist() == [0.0, 0.0, 0.0, 1.0, 4095.0, 4095.0]
  every_level = np.arange(65536)
  assert np.array_equal(jio.to_levels(_exact_unit(every_level, 16), 16),
                        every_level)
  with pytest.raises(ValueError):
    jio.to_levels(np.zeros(2), 0)
