"""The grain input pipeline: patches, augmentation, LR, determinism, resume, bad files."""
import shutil

import grain
import numpy as np
import pytest
from PIL import Image

from jaxsr import config as base
from jaxsr.data import augment, pipeline, sources
from jaxsr.degradations import bicubic


def _write_png(path, array):
  Image.fromarray(array).save(path)


@pytest.fixture()
def folder(tmp_path):
  rng = np.random.default_rng(0)
  d = tmp_path / "train"
  (d / "sub").mkdir(parents=True)
  for i in range(5):
    _write_png(d / f"img{i}.png", rng.integers(0, 256, (70 + i, 80), dtype=np.uint8))
  _write_png(d / "sub" / "deep.png", rng.integers(0, 65536, (64, 64), dtype=np.uint16))
  return d


def _config(folder, batch=2, patch=32):
  c = base.make_tiny(base.base_config())
  c.data.train_dir = str(folder)
  c.data.batch_size = batch
  c.data.patch_size = patch
  return c


def test_patches_have_the_right_shapes_and_lr_is_bicubic_of_hr(folder):
  config = _config(folder)
  source = sources.FolderSource(folder, min_size=32)
  assert len(source) == 6
  batch = next(iter(pipeline.train_dataset(config, source)))
  assert batch["hr"].shape == (2, 32, 32, 1) and batch["lr"].shape == (2, 8, 8, 1)
  assert batch["hr"].dtype == np.float32
  for hr, lr in zip(batch["hr"], batch["lr"]):
    np.testing.assert_allclose(lr[..., 0], bicubic.make_lr(hr[..., 0], 4, 8), atol=1e-6)


def test_lr_is_bicubic_with_antialiasing():
  # A fine checkerboard averages to grey when downscaled with antialiasing.
  hr = np.indices((64, 64)).sum(axis=0) % 2
  lr = bicubic.make_lr(hr.astype(np.float32), 4, 16)
  assert lr.shape == (16, 16)
  assert np.abs(lr[2:-2, 2:-2] - 0.5).max() < 0.02


def test_patch_is_a_crop_of_the_image_up_to_the_dihedral_group():
  image = np.random.default_rng(1).random((50, 60), dtype=np.float32)
  transform = bicubic.RandomPatch(patch_size=16, scale=4)
  for seed in range(20):
    out = transform.random_map({"image": image, "bits": 16}, np.random.default_rng(seed))
    hr = out["hr"][..., 0]
    candidates = [hr, hr.T, hr[::-1], hr[:, ::-1], hr[::-1].T, hr[:, ::-1].T, hr[::-1, ::-1],
                  hr[::-1, ::-1].T]
    found = any(np.array_equal(image[t:t + 16, l:l + 16], c)
                for c in candidates for t in range(35) for l in range(45))
    assert found


def test_all_eight_orientations_occur():
  image = np.arange(16, dtype=np.float32).reshape(4, 4)
  seen = {augment.flip_rotate(image, np.random.default_rng(s), True, True).tobytes()
          for s in range(200)}
  assert len(seen) == 8


def test_three_channel_config_repeats_the_grey_channel(folder):
  config = _config(folder)
  config.num_channels = 3
  batch = next(iter(pipeline.train_dataset(config, sources.FolderSource(folder, min_size=32))))
  assert batch["hr"].shape[-1] == 3
  np.testing.assert_array_equal(batch["hr"][..., 0], batch["hr"][..., 2])


def test_same_seed_same_batches_and_iterator_state_resumes_exactly(folder):
  config = _config(folder)
  source = sources.FolderSource(folder, min_size=32)
  it = iter(pipeline.train_dataset(config, source))
  first = [next(it) for _ in range(3)]
  state = it.get_state()
  expected = [next(it) for _ in range(4)]
  again = iter(pipeline.train_dataset(config, source))
  for a, b in zip(first, [next(again) for _ in range(3)]):
    np.testing.assert_array_equal(a["hr"], b["hr"])
  resumed = iter(pipeline.train_dataset(config, source))
  resumed.set_state(state)
  for a, b in zip(expected, [next(resumed) for _ in range(4)]):
    np.testing.assert_array_equal(a["hr"], b["hr"])
    np.testing.assert_array_equal(a["lr"], b["lr"])
  config.seed = 1
  other = next(iter(pipeline.train_dataset(config, source)))
  assert not np.array_equal(other["hr"], first[0]["hr"])


@pytest.mark.slow
def test_worker_processes_give_the_same_batches(folder):
  config = _config(folder)
  source = sources.FolderSource(folder, min_size=32)
  expected = [b["hr"] for b, _ in zip(pipeline.train_dataset(config, source), range(3))]
  config.data.num_workers = 2
  got = [b["hr"] for b, _ in zip(pipeline.train_dataset(config, source), range(3))]
  for a, b in zip(expected, got):
    np.testing.assert_array_equal(a, b)


def test_bad_and_small_files_are_skipped_with_a_warning_naming_them(folder, caplog):
  good = (folder / "img0.png").read_bytes()
  (folder / "truncated.png").write_bytes(good[: len(good) // 2])
  (folder / "empty.png").write_bytes(b"")
  (folder / "text.png").write_text("not an image")
  _write_png(folder / "tiny.png", np.zeros((8, 8), np.uint8))
  with caplog.at_level("WARNING"):
    source = sources.FolderSource(folder, min_size=32)
  assert len(source) == 6
  for name in ("truncated.png", "empty.png", "text.png", "tiny.png"):
    assert any(name in r.getMessage() for r in caplog.records), name
  assert any("smaller than the 32x32 patch" in r.getMessage() for r in caplog.records)


def test_strict_mode_stops_at_the_first_bad_file(folder):
  (folder / "zzz.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
  with pytest.raises(sources.DataError, match="zzz.png") as err:
    sources.FolderSource(folder, min_size=32, strict=True)
  assert "\n" not in str(err.value)


def test_empty_or_missing_folder_is_a_one_line_error(tmp_path):
  (tmp_path / "empty").mkdir()
  with pytest.raises(sources.DataError, match="no images found"):
    sources.FolderSource(tmp_path / "empty")
  with pytest.raises(sources.DataError, match="no such folder"):
    sources.FolderSource(tmp_path / "missing")
  d = tmp_path / "small"
  d.mkdir()
  _write_png(d / "a.png", np.zeros((10, 10), np.uint8))
  with pytest.raises(sources.DataError, match="no usable images"):
    sources.FolderSource(d, min_size=32)


def test_a_file_that_breaks_after_the_scan_is_replaced_deterministically(folder):
  source = sources.FolderSource(folder, min_size=32)
  victim = source.paths[1]
  shutil.copy(folder / "img0.png", victim.with_suffix(".bak"))
  victim.write_bytes(victim.read_bytes()[:100])
  record = source[1]
  assert record["name"] == str(source.paths[2].relative_to(folder))


def test_arrayrecord_source_feeds_the_same_pipeline(folder, tmp_path):
  from jaxsr.data import tfds_builders
  builder = tfds_builders.prepare_xray_folder(folder, tmp_path / "tfds")
  source = sources.ArrayRecordSource(builder.as_data_source("train"), min_size=32)
  folder_source = sources.FolderSource(folder, min_size=32)
  assert len(source) == len(folder_source)
  names = {source[i]["name"] for i in range(len(source))}
  assert names == {folder_source[i]["name"] for i in range(len(folder_source))}
  by_name = {folder_source[i]["name"]: folder_source[i] for i in range(len(folder_source))}
  for i in range(len(source)):
    rec = source[i]
    np.testing.assert_array_equal(rec["image"], by_name[rec["name"]]["image"])
    assert rec["bits"] == by_name[rec["name"]]["bits"]
  config = _config(folder)
  batch = next(iter(pipeline.train_dataset(config, source)))
  assert batch["lr"].shape == (2, 8, 8, 1)


def test_dataset_is_a_grain_dataset(folder):
  ds = pipeline.train_dataset(_config(folder), sources.FolderSource(folder, min_size=32))
  assert isinstance(ds, grain.IterDataset)


def test_include_and_exclude_patterns_split_one_folder(folder):
  names = lambda s: sorted(str(p.relative_to(folder)) for p in s.paths)
  train = sources.FolderSource(folder, exclude=("img1.png", "sub/*"))
  held_out = sources.FolderSource(folder, include=("img1.png", "sub/*"))
  assert names(train) == ["img0.png", "img2.png", "img3.png", "img4.png"]
  assert names(held_out) == ["img1.png", "sub/deep.png"]
  # A bare file-name pattern also matches in subfolders.
  assert names(sources.FolderSource(folder, include=("deep*",))) == ["sub/deep.png"]
  with pytest.raises(sources.DataError, match="no images left after include"):
    sources.FolderSource(folder, include=("nothing*",))


def test_config_patterns_reach_the_sources(folder):
  c = _config(folder)
  c.data.eval_dir = str(folder)
  c.data.train_exclude = ("img0.png",)
  c.data.eval_include = ("img0.png",)
  train = pipeline.make_source(c.data, "train", min_size=32)
  held_out = pipeline.make_source(c.data, "eval", min_size=1)
  assert [p.name for p in held_out.paths] == ["img0.png"]
  assert "img0.png" not in [p.name for p in train.paths] and len(train) == 5


def test_radiograph_split_keeps_held_out_patients_out_of_training(tmp_path):
  for name in ("nih_00018999_000.png", "nih_00000075_000.png", "dcm16_pydicom966_chest_DX.png",
               "dcm16_wg04_RG2_hip.png"):
    _write_png(tmp_path / name, np.zeros((40, 40), np.uint8))
  c = base.radiograph_split(base.base_config())
  c.data.train_dir = c.data.eval_dir = str(tmp_path)
  train = {p.name for p in pipeline.make_source(c.data, "train", 32).paths}
  held_out = {p.name for p in pipeline.make_source(c.data, "eval", 1).paths}
  assert train == {"nih_00000075_000.png", "dcm16_wg04_RG2_hip.png"}
  assert held_out == {"nih_00018999_000.png", "dcm16_pydicom966_chest_DX.png"}


def test_cached_source_decodes_each_file_once_and_returns_the_same_pixels(folder, monkeypatch):
  calls = []
  read = sources.images.read_image
  monkeypatch.setattr(sources.images, "read_image",
                      lambda p, **options: calls.append(p) or read(p, **options))
  cached = sources.FolderSource(folder, cache=True)
  plain = sources.FolderSource(folder)
  calls.clear()
  first = [cached[i]["image"] for i in range(len(cached))]
  again = [cached[i]["image"] for i in range(len(cached))]
  assert len(calls) == len(cached)
  for a, b, i in zip(first, again, range(len(cached))):
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, plain[i]["image"])
    assert not a.flags.writeable  # A transform cannot corrupt the cache.
  # The pipeline's patches are the same with and without the cache.
  config = _config(folder)
  batches = [next(iter(pipeline.train_dataset(config, s))) for s in (cached, plain)]
  np.testing.assert_array_equal(batches[0]["hr"], batches[1]["hr"])


def test_several_folders_are_one_source_named_by_their_own_paths(tmp_path):
  rng = np.random.default_rng(1)
  for folder, name in (("a", "x.png"), ("b/nih", "y.png"), ("b/mhh", "z.png")):
    (tmp_path / folder).mkdir(parents=True)
    _write_png(tmp_path / folder / name, rng.integers(0, 256, (40, 40), dtype=np.uint8))
  source = sources.FolderSource(f"{tmp_path / 'a'},{tmp_path / 'b'}", exclude=("z.png",))
  assert [name for name, _ in source.whole_images()] == ["x.png", "nih/y.png"]
  assert sorted(source[i]["name"] for i in range(len(source))) == ["nih/y.png", "x.png"]
  c = _config(tmp_path / "a")
  c.data.train_dir = f"{tmp_path / 'a'}, {tmp_path / 'b'}"
  assert len(pipeline.make_source(c.data, "train", min_size=32)) == 3


def test_two_folders_holding_one_name_are_refused(tmp_path):
  for folder in ("a", "b"):
    (tmp_path / folder).mkdir()
    _write_png(tmp_path / folder / "same.png", np.zeros((40, 40), np.uint8))
  with pytest.raises(sources.DataError, match=r"both hold same\.png"):
    sources.FolderSource([tmp_path / "a", tmp_path / "b"])


def test_low_bit_data_in_a_16_bit_container_is_trained_at_its_own_depth(tmp_path):
  """12-bit levels in a 16-bit PNG reach the pipeline as the network sees them at
  inference: full range over 4095 levels, bits 12, so the LR is rounded to those."""
  rng = np.random.default_rng(2)
  levels12 = rng.integers(0, 4096, (64, 64)).astype(np.uint16)
  levels12[0, 0] = 4095
  _write_png(tmp_path / "twelve.png", levels12)
  _write_png(tmp_path / "eight.png", rng.integers(0, 256, (64, 64), dtype=np.uint8))
  source = sources.FolderSource(tmp_path)
  records = {source[i]["name"]: source[i] for i in range(len(source))}
  assert records["twelve.png"]["bits"] == 12
  np.testing.assert_allclose(records["twelve.png"]["image"], levels12 / 4095.0, atol=1e-6)
  assert records["eight.png"]["bits"] == 8
  transform = bicubic.RandomPatch(patch_size=32, scale=4, use_flip=False, use_rot=False)
  pair = transform.random_map(records["twelve.png"], np.random.default_rng(0))
  np.testing.assert_allclose(pair["lr"] * 4095, np.rint(pair["lr"] * 4095), atol=1e-3)


def test_validation_split_is_by_patient_and_out_of_training(tmp_path):
  """Every image of a validation patient is held out; nothing else from its folders."""
  mhh = {f"mhh_{image}.png" for images in base.XRAY_VALIDATION_MHH.values() for image in images}
  assert len(base.XRAY_VALIDATION_MHH) == 8 and len(mhh) == 24
  assert len(base.XRAY_VALIDATION_NIH) == 20
  (tmp_path / "nih").mkdir()
  (tmp_path / "mhh").mkdir()
  names = ["nih/" + n for n in base.XRAY_VALIDATION_NIH] + ["nih/nih_00000211_000.png"]
  names += ["mhh/" + n for n in sorted(mhh)] + ["mhh/mhh_006f3a8a.png"]
  for name in names:
    _write_png(tmp_path / name, np.zeros((40, 40), np.uint8))
  c = base.radiograph_psnr("x", 4, base.srvgg(), 32, 10)
  c.data.train_dir = c.data.eval_dir = str(tmp_path)
  train = {name for name, _ in pipeline.make_source(c.data, "train", 32).whole_images()}
  held = {name for name, _ in pipeline.make_source(c.data, "eval", 1).whole_images()}
  assert train == {"nih/nih_00000211_000.png", "mhh/mhh_006f3a8a.png"}
  assert held == set(names) - train


def test_validation_patients_are_whole_patients_of_the_training_set(xray_train_dir):
  """XRAY_VALIDATION_MHH lists each patient's images exactly as PATIENTS.txt does, and
  every listed validation image exists."""
  patients = {}
  for line in (xray_train_dir / "PATIENTS.txt").read_text().splitlines():
    if line.strip() and not line.startswith("#"):
      patient, *images = line.split()
      patients[patient] = tuple(sorted(images))
  for patient, images in base.XRAY_VALIDATION_MHH.items():
    assert patients[patient] == tuple(sorted(images)), patient
  for name in base.XRAY_VALIDATION:
    folder = "nih" if name.startswith("nih_") else "mhh"
    assert (xray_train_dir / folder / name).is_file(), name
