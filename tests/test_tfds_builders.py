"""ArrayRecord builders: exact round trips, bad files, NIH splits, offline use."""
import collections
import importlib.util
import io
import logging
import pathlib
import socket
import subprocess
import sys
import tarfile

import grain
import numpy as np
from PIL import Image
import pytest

from jaxsr import errors
from jaxsr.data import tfds_builders as tb
from jaxsr.io.images import ImageReadError, read_image
from jaxsr.io.levels import to_levels

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
TOOL = REPO_ROOT / "tools" / "build_arrayrecord.py"
LEG_16BIT = "dcm16_wg04_RG3_leg_CR_UNC.png"


def _link(src: pathlib.Path, dest: pathlib.Path) -> pathlib.Path:
  dest.parent.mkdir(parents=True, exist_ok=True)
  dest.symlink_to(src)
  return dest


def _png_bytes(levels: np.ndarray) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(levels).save(buf, format="PNG")
  return buf.getvalue()


def _write_png(path: pathlib.Path, levels: np.ndarray) -> pathlib.Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(_png_bytes(levels))
  return path


def _tiny(seed: int, dtype=np.uint8) -> np.ndarray:
  high = 256 if dtype == np.uint8 else 65536
  return np.random.default_rng(seed).integers(0, high, (6, 9), dtype=dtype)


def _records(source) -> dict:
  """filename -> record; the writer shuffles, so index order means nothing."""
  out = {}
  for i in range(len(source)):
    record = source[i]
    out[tb.record_to_radiograph(record)[2]] = record
  return out


def _load_tool():
  spec = importlib.util.spec_from_file_location("build_arrayrecord", TOOL)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_xray_folder_round_trips_real_8_and_16_bit_levels(tmp_path, xray_dir):
  png = xray_dir / "png"
  train = tmp_path / "train"
  evals = tmp_path / "eval"
  sources = {
      "nih_00000075_000.png": _link(png / "nih_00000075_000.png",
                                    train / "nih_00000075_000.png"),
      "cr/leg.png": _link(png / LEG_16BIT, train / "cr" / "leg.png"),
  }
  eval_src = _link(png / "nih_00000284_000.png", evals / "a" / "b.png")

  builder = tb.prepare_xray_folder(train, tmp_path / "data", eval_dir=evals)
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == {
      "train": 2, "validation": 1}

  records = _records(tb.load_split(builder, "train"))
  assert set(records) == set(sources)
  for filename, path in sources.items():
    expected = read_image(path)
    record = records[filename]
    assert record["image"].dtype == np.uint16
    np.testing.assert_array_equal(
        record["image"], to_levels(expected.pixels, expected.bits))
    assert int(record["bits"]) == expected.bits
    assert (int(record["height"]), int(record["width"])) == expected.pixels.shape
    pixels, bits, name = tb.record_to_radiograph(record)
    assert pixels.dtype == np.float32 and name == filename
    assert bits == expected.bits
    np.testing.assert_array_equal(pixels, expected.pixels)
  assert int(records["nih_00000075_000.png"]["bits"]) == 8
  assert int(records["cr/leg.png"]["bits"]) == 16
  assert records["cr/leg.png"]["image"].max() > 255

  # Read back by name, as training does, with no builder arguments.
  validation = _records(tb.load_split("xray_folder", "validation",
                                      tmp_path / "data"))
  assert list(validation) == ["a/b.png"]
  np.testing.assert_array_equal(
      tb.record_to_radiograph(validation["a/b.png"])[0],
      read_image(eval_src).pixels)


def test_unreadable_file_is_skipped_with_warning_or_raises_when_strict(
    tmp_path, caplog):
  folder = tmp_path / "xrays"
  _write_png(folder / "good.png", _tiny(0))
  _write_png(folder / "deep" / "good16.png", _tiny(1, np.uint16))
  (folder / "broken.png").write_bytes(b"this is not an image")

  with caplog.at_level(logging.WARNING):
    builder = tb.prepare_xray_folder(folder, tmp_path / "data")
  records = _records(tb.load_split(builder, "train"))
  assert set(records) == {"good.png", "deep/good16.png"}
  np.testing.assert_array_equal(records["good.png"]["image"], _tiny(0))
  np.testing.assert_array_equal(records["deep/good16.png"]["image"],
                                _tiny(1, np.uint16))
  warned = [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and "broken.png" in r.getMessage()]
  assert warned, caplog.text

  with pytest.raises(ImageReadError, match="broken.png"):
    tb.prepare_xray_folder(folder, tmp_path / "strict", strict=True)


def test_named_dataset_reads_back_and_refuses_other_sources(tmp_path):
  first = tmp_path / "first"
  second = tmp_path / "second"
  _write_png(first / "x.png", _tiny(2))
  _write_png(second / "y.png", _tiny(3))
  _write_png(second / "z.png", _tiny(4))
  data = tmp_path / "data"

  tb.prepare_xray_folder(first, data, name="knee_xrays")
  assert list(_records(tb.load_split("knee_xrays", "train", data))) == ["x.png"]
  with pytest.raises(ValueError, match="was built from"):
    tb.prepare_xray_folder(second, data, name="knee_xrays")
  tb.prepare_xray_folder(second, data, name="knee_xrays", overwrite=True)
  # The source feeds grain directly.
  names = grain.MapDataset.source(tb.load_split("knee_xrays", "train", data))
  names = names.map(lambda record: tb.record_to_radiograph(record)[2])
  assert sorted(names[i] for i in range(len(names))) == ["y.png", "z.png"]
  with pytest.raises(FileNotFoundError, match="no dataset"):
    tb.load_split("never_built", "train", data)


@pytest.mark.slow
def test_tool_cli_exit_codes(tmp_path):
  train = _write_png(tmp_path / "in" / "t.png", _tiny(5)).parent
  evals = _write_png(tmp_path / "ev" / "e.png", _tiny(6)).parent
  out = tmp_path / "out"
  ok = subprocess.run(
      [sys.executable, str(TOOL), f"--train_dir={train}",
       f"--eval_dir={evals}", f"--data_dir={out}"],
      cwd=tmp_path, capture_output=True, text=True, timeout=120)
  assert ok.returncode == 0, ok.stderr
  assert str(out / "xray_folder" / "1.0.0") in ok.stdout
  assert "train: 1 records" in ok.stdout
  assert "validation: 1 records" in ok.stdout

  missing = tmp_path / "does_not_exist"
  bad = subprocess.run(
      [sys.executable, str(TOOL), f"--train_dir={missing}",
       f"--data_dir={out}"],
      cwd=tmp_path, capture_output=True, text=True, timeout=120)
  assert bad.returncode == 2
  last = bad.stderr.strip().splitlines()[-1]
  assert last.startswith("build_arrayrecord: error:") and str(missing) in last

  # In process: the module function and --strict on a folder with a bad file.
  tool = _load_tool()
  (train / "bad.png").write_bytes(b"junk")
  path, counts = tool.build_arrayrecord(train, tmp_path / "lenient")
  assert counts == {"train": 1} and pathlib.Path(path).is_dir()
  assert tool.main([f"--train_dir={train}", f"--data_dir={tmp_path / 's'}",
                    "--strict"]) == 2


def _fake_nih(patients: int = 24, per_patient: int = 3):
  """{NIH file name: levels}, several images for each of several patients."""
  images = {}
  for p in range(patients):
    for i in range(per_patient):
      images[f"{1000 + 37 * p:08d}_{i:03d}.png"] = _tiny(100 * p + i)
  return images


def _write_nih_archive(path: pathlib.Path, images: dict) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  with tarfile.open(path, "w:gz") as tar:
    for name, levels in images.items():
      data = _png_bytes(levels)
      info = tarfile.TarInfo(f"images/{name}")
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))


def _closed_port_url() -> str:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  return f"http://127.0.0.1:{port}/images_001.tar.gz"


@pytest.mark.parametrize("layout", ["archive", "extracted"])
def test_nih_sample_from_manual_dir_splits_by_patient(tmp_path, layout):
  images = _fake_nih()
  manual = tmp_path / "manual"
  if layout == "archive":
    _write_nih_archive(manual / "images_001.tar.gz", images)
  else:
    for name, levels in images.items():
      _write_png(manual / "images" / name, levels)

  # An unreachable URL proves nothing is downloaded when local files exist.
  builder = tb.prepare_nih_sample(tmp_path / "data", manual_dir=manual,
                                  urls=[_closed_port_url()])
  splits = {s: _records(tb.load_split(builder, s))
            for s in ("train", "validation")}

  patients = {s: collections.Counter(n[:8] for n in r)
              for s, r in splits.items()}
  assert patients["train"] and patients["validation"]
  assert not set(patients["train"]) & set(patients["validation"])
  # Every patient keeps all of its images, on one side only.
  for counts in patients.values():
    assert set(counts.values()) == {3}
  assert set(splits["train"]) | set(splits["validation"]) == set(images)
  for split, records in splits.items():
    assert builder.info.splits[split].num_examples == len(records)
    assert all(tb.nih_split(name) == split for name in records)
    for name, record in records.items():
      assert int(record["bits"]) == 8
      np.testing.assert_array_equal(record["image"], images[name])
  assert "Wang" in builder.info.citation
  assert "NIH Clinical Center" in builder.info.description


def test_nih_sample_without_files_or_network_raises_clear_error(tmp_path):
  manual = tmp_path / "manual"
  with pytest.raises(tb.DatasetUnavailableError) as err:
    tb.prepare_nih_sample(tmp_path / "data", manual_dir=manual,
                          urls=[_closed_port_url()], timeout=5)
  message = str(err.value)
  assert isinstance(err.value, errors.UserError)  # A one-line error, exit 2, in the commands.
  assert "\n" not in message
  assert message.startswith("could not download NIH ChestX-ray14 (")
  assert "--config.data.train_dir=" in message
  assert "--config.data.eval_dir" in message
  assert f"images_001.tar.gz in {manual}" in message
