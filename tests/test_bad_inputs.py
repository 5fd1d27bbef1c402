"""Bad inputs: skipped or refused by name, never a traceback, never modified.

A corpus of broken and awkward files (made here) is put next to a few good
images; training skips the broken ones with a warning naming each (or stops on
the first with ``--config.data.strict=True``), trains on the awkward but valid
ones, and ``jaxsr.upscale`` reports the broken ones and goes on.
"""
import hashlib
import io
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tifffile
from PIL import Image
from pydicom import encaps
from pydicom import uid as dicom_uid
from pydicom.dataset import Dataset, FileMetaDataset

from jaxsr.data import sources
from jaxsr.io import images

pytestmark = pytest.mark.slow  # Subprocess runs of the commands on bad inputs.

REPO = pathlib.Path(__file__).resolve().parents[1]
PATCH = 32
GOOD_SIDE = 48

# Broken files: skipped by training (probe or decode) and failed by upscale.
BROKEN = ("truncated.png", "empty.png", "text.png", "float.tif", "palette_nolut.dcm",
          "nopixels.dcm", "j2k_garbage.dcm")
# Readable but smaller than the training patch: skipped by training only.
TOO_SMALL = ("one_pixel.png", "small.png")
# Valid, if unusual: must train.
VALID = ("rgba.png", "palette.png", "signed16.dcm", "monochrome1.dcm")
# Broken files that only fail when decoded (their headers look fine).
DECODE_TIME = ("float.tif", "palette_nolut.dcm", "nopixels.dcm", "j2k_garbage.dcm")


def _smooth(rng, side, dtype=np.uint8, high=256):
  coarse = rng.integers(0, high, (8, 8)).astype(np.float32)
  img = Image.fromarray(coarse, mode="F").resize((side, side), Image.Resampling.BICUBIC)
  return np.clip(np.asarray(img), 0, high - 1).astype(dtype)


def _dicom(path, pixels, *, stored=12, signed=False, photometric="MONOCHROME2", frames=1,
           syntax=dicom_uid.ExplicitVRLittleEndian, pixel_data=True, encapsulated=None):
  meta = FileMetaDataset()
  meta.MediaStorageSOPClassUID = dicom_uid.SecondaryCaptureImageStorage
  meta.MediaStorageSOPInstanceUID = dicom_uid.generate_uid()
  meta.TransferSyntaxUID = syntax
  ds = Dataset()
  ds.file_meta = meta
  ds.SOPClassUID = meta.MediaStorageSOPClassUID
  ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
  ds.Modality = "DX"
  ds.Rows, ds.Columns = pixels.shape[-2:]
  ds.SamplesPerPixel = 1
  ds.PhotometricInterpretation = photometric
  ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, stored, stored - 1
  ds.PixelRepresentation = int(signed)
  if frames > 1:
    ds.NumberOfFrames = frames
  if encapsulated is not None:
    ds.add_new(0x7FE00010, "OB", encapsulated)
  elif pixel_data:
    ds.add_new(0x7FE00010, "OW", pixels.astype("<i2" if signed else "<u2").tobytes())
  ds.save_as(path, enforce_file_format=True)


def _make_corpus(folder: pathlib.Path):
  rng = np.random.default_rng(7)
  folder.mkdir()
  for i in range(3):
    Image.fromarray(_smooth(rng, GOOD_SIDE)).save(folder / f"good{i}.png")
  buf = io.BytesIO()
  Image.fromarray(_smooth(rng, GOOD_SIDE)).save(buf, format="PNG")
  (folder / "truncated.png").write_bytes(buf.getvalue()[:len(buf.getvalue()) // 2])
  (folder / "empty.png").write_bytes(b"")
  (folder / "text.png").write_text("this is not an image\n" * 20)
  Image.fromarray(np.full((1, 1), 128, np.uint8)).save(folder / "one_pixel.png")
  Image.fromarray(_smooth(rng, PATCH - 12)).save(folder / "small.png")
  rgba = np.dstack([_smooth(rng, GOOD_SIDE) for _ in range(3)] + [np.full(
      (GOOD_SIDE, GOOD_SIDE), 200, np.uint8)])
  Image.fromarray(rgba, mode="RGBA").save(folder / "rgba.png")
  Image.fromarray(_smooth(rng, GOOD_SIDE)).convert("P").save(folder / "palette.png")
  tifffile.imwrite(folder / "float.tif", rng.random((GOOD_SIDE, GOOD_SIDE), dtype=np.float32))
  signed = _smooth(rng, GOOD_SIDE, np.int32, 4096).astype(np.int16) - 2048
  _dicom(folder / "signed16.dcm", signed, signed=True)
  _dicom(folder / "monochrome1.dcm", _smooth(rng, GOOD_SIDE, np.uint16, 4096),
         photometric="MONOCHROME1")
  # A palette image whose palette is missing: it cannot be turned into colours.
  _dicom(folder / "palette_nolut.dcm", _smooth(rng, GOOD_SIDE, np.uint16, 256), stored=8,
         photometric="PALETTE COLOR")
  _dicom(folder / "nopixels.dcm", np.zeros((GOOD_SIDE, GOOD_SIDE), np.uint16), pixel_data=False)
  _dicom(folder / "j2k_garbage.dcm", np.zeros((GOOD_SIDE, GOOD_SIDE), np.uint16),
         syntax=dicom_uid.JPEG2000Lossless,
         encapsulated=encaps.encapsulate([bytes(rng.integers(0, 256, 500, dtype=np.uint8))]))


def _hashes(folder):
  return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _env():
  return dict(os.environ, PYTHONUNBUFFERED="1",
              XLA_FLAGS="--xla_force_host_platform_device_count=1")


def _train_cmd(workdir, data, *extra, steps=2):
  return [sys.executable, "-m", "jaxsr.main", f"--config={REPO / 'configs' / 'srresnet.py'}:tiny",
          f"--workdir={workdir}", f"--config.data.train_dir={data}",
          "--config.model.name=msrresnet", f"--config.data.patch_size={PATCH}",
          "--config.data.batch_size=2", f"--config.train.num_steps={steps}",
          "--config.train.checkpoint_every=2", "--config.train.log_every=1", *extra]


def _run(cmd, timeout=120):
  return subprocess.run(["timeout", str(timeout), *cmd], cwd=REPO, env=_env(),
                        capture_output=True, text=True, check=False)


def _own_tracebacks(stderr: str) -> list[str]:
  """Tracebacks in stderr other than those pydicom's decoders log themselves.

  pydicom logs each failed decoder plugin at ERROR with its traceback, whose
  first frame is in ``pydicom/pixels/decoders``; those are counted separately
  by ``test_no_traceback_at_all_in_the_logs``.
  """
  lines = stderr.splitlines() + [""]
  return [lines[i + 1] for i, line in enumerate(lines[:-1])
          if line.strip().startswith("Traceback")
          and "pydicom/pixels/decoders/" not in lines[i + 1]]


def _warned(stderr: str, name: str) -> bool:
  return any("skipping" in line and name in line for line in stderr.splitlines())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
  folder = tmp_path_factory.mktemp("bad") / "inputs"
  _make_corpus(folder)
  return folder, _hashes(folder)


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
  """A 2-step run over the whole corpus (also the weights for upscaling)."""
  folder, _ = corpus
  workdir = tmp_path_factory.mktemp("trained")
  result = _run(_train_cmd(workdir, folder))
  return workdir, result


def test_corpus_is_what_it_claims(corpus):
  folder, _ = corpus
  assert sorted(_hashes(folder)) == sorted(BROKEN + TOO_SMALL + VALID
                                           + tuple(f"good{i}.png" for i in range(3)))
  for name in BROKEN:
    with pytest.raises(images.ImageReadError, match=name):
      images.read_image(folder / name)
  for name in VALID + TOO_SMALL:
    rad = images.read_image(folder / name)
    assert rad.pixels.ndim == 2 and 0 <= rad.pixels.min() <= rad.pixels.max() <= 1
  assert images.read_image(folder / "signed16.dcm").bits == 12
  assert images.read_image(folder / "monochrome1.dcm").inverted


def test_training_skips_each_bad_file_by_name_and_trains_on_the_valid_ones(corpus, trained):
  folder, before = corpus
  workdir, result = trained
  assert result.returncode == 0, result.stderr[-3000:]
  assert not _own_tracebacks(result.stderr), result.stderr[-3000:]
  header_level = [n for n in BROKEN + TOO_SMALL if n not in DECODE_TIME]
  for name in header_level:
    assert _warned(result.stderr, name), f"no warning names {name}"
  for name in VALID + ("good0.png",):
    assert not _warned(result.stderr, name), f"valid {name} was skipped"
  assert (workdir / "checkpoints" / "2").is_dir()
  assert _hashes(folder) == before


def test_files_that_fail_only_when_decoded_are_skipped_by_name(corpus):
  """Headers pass the up-front scan; decoding falls back to the next file."""
  folder, _ = corpus
  source = sources.FolderSource(folder, min_size=PATCH)
  names = [p.name for p in source.paths]
  assert sorted(names) == sorted(VALID + DECODE_TIME + tuple(f"good{i}.png" for i in range(3)))
  for i, name in enumerate(names):
    record = source[i]
    if name in DECODE_TIME:
      assert record["name"] != name
    else:
      assert record["name"] == name
      assert record["image"].shape == (GOOD_SIDE, GOOD_SIDE)


@pytest.mark.parametrize("name", BROKEN + TOO_SMALL)
def test_strict_source_stops_on_each_bad_file_naming_it(corpus, tmp_path, name):
  folder, _ = corpus
  one = tmp_path / "one"
  one.mkdir()
  for good in ("good0.png", "good1.png", name):
    (one / good).symlink_to(folder / good)
  try:
    source = sources.FolderSource(one, min_size=PATCH, strict=True)
  except sources.DataError as error:
    assert name in str(error) and "\n" not in str(error)
  else:
    raise AssertionError(f"strict source accepted {name}: {source.paths}")


def test_strict_training_stops_with_one_line_naming_the_file(corpus, tmp_path):
  folder, before = corpus
  one = tmp_path / "one"
  one.mkdir()
  for good in ("good0.png", "good1.png", "truncated.png"):
    (one / good).symlink_to(folder / good)
  result = _run(_train_cmd(tmp_path / "w", one, "--config.data.strict=True"))
  assert result.returncode == 2, result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  errors = [l for l in result.stderr.splitlines() if l.startswith("jaxsr: error:")]
  assert len(errors) == 1 and "truncated.png" in errors[0], result.stderr[-3000:]
  assert not (tmp_path / "w" / "checkpoints").exists() or not any(
      (tmp_path / "w" / "checkpoints").iterdir())
  assert _hashes(folder) == before


def test_upscale_reports_each_bad_file_and_goes_on(corpus, trained, tmp_path):
  folder, before = corpus
  workdir, train_result = trained
  assert train_result.returncode == 0, train_result.stderr[-3000:]
  out = tmp_path / "out"
  result = _run([sys.executable, "-m", "jaxsr.upscale", f"--weights={workdir}",
                 f"--input={folder}", f"--output={out}", "--tile=0"])
  assert result.returncode == 1, result.stderr[-3000:]
  assert not _own_tracebacks(result.stderr), result.stderr[-3000:]
  failed = [l for l in result.stderr.splitlines() if "jaxsr: failed:" in l]
  for name in BROKEN:
    assert any(name in l for l in failed), f"{name} not reported: {failed}"
  total = len(before)
  assert (f"jaxsr: wrote {total - len(failed)} of {total} input(s) to {out}; {len(failed)} failed"
          in result.stderr)
  assert "WARNING" not in result.stderr  # No library chatter (orbax's read-only notes).
  assert len(failed) == len(BROKEN), failed
  for name in VALID + TOO_SMALL + ("good0.png",):
    assert (out / name).is_file(), f"{name} was not upscaled"
  assert _hashes(folder) == before


def test_no_traceback_at_all_in_the_logs(trained):
  _, result = trained
  assert result.returncode == 0
  assert "Traceback" not in result.stderr


def test_unwritable_workdir_is_one_line_exit_2(corpus, tmp_path):
  folder, _ = corpus
  blocker = tmp_path / "a_file"
  blocker.write_text("not a folder")
  result = _run(_train_cmd(blocker / "workdir", folder), timeout=60)
  assert result.returncode == 2, result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  errors = [l for l in result.stderr.splitlines() if l.startswith("jaxsr: error:")]
  assert len(errors) == 1 and "a_file" in errors[0], result.stderr[-3000:]


def test_missing_weights_for_upscale_is_one_line_exit_2(corpus, tmp_path):
  folder, _ = corpus
  result = _run([sys.executable, "-m", "jaxsr.upscale", f"--weights={tmp_path / 'nope.pth'}",
                 f"--input={folder}", f"--output={tmp_path / 'out'}"], timeout=60)
  assert result.returncode == 2, result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  lines = result.stderr.strip().splitlines()
  assert lines[-1].startswith("jaxsr: error:") and "nope.pth" in lines[-1], result.stderr
  assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_mistyped_config_key_is_one_line_exit_2_before_any_work(corpus, tmp_path):
  folder, _ = corpus
  result = _run(_train_cmd(tmp_path / "w", folder, "--config.train.num_stesp=3"), timeout=60)
  assert result.returncode == 2, result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and "num_stesp" in lines[0], result.stderr
  assert not (tmp_path / "w").exists()
