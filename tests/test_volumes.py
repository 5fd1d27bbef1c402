"""Training slices from volumes: selection by slice range and foreground, records, evaluation."""
import numpy as np
import pytest

from jaxsr import config as base
from jaxsr.data import pipeline, volumes
from jaxsr.training import train
from dicom_helpers import write_ct_series


def _head(count=10, side=40):
  """Slices with a body of growing size in air: slice k has about k/count of it."""
  y, x = np.mgrid[:side, :side] / side - 0.5
  return [np.where(np.hypot(x, y) < 0.5 * np.sqrt(k / count), 40 + k, -1024).astype(np.int32)
          for k in range(count)]


def test_slices_come_in_slice_order_within_the_range_and_skip_background(tmp_path):
  write_ct_series(tmp_path / "ct", _head(), spacing=2.0)
  every = volumes.VolumeSource(tmp_path, min_size=32)
  assert len(every) == 10
  # Slice order, not file order: slice k carries 40 + k HU inside the body.
  assert [every[k]["name"] for k in range(3)] == ["ct#0", "ct#1", "ct#2"]
  centre = every[7]["image"][20, 20]
  assert centre == pytest.approx((40 + 7 + 1024) / 4095)
  assert every[0]["bits"] == 12
  part = volumes.VolumeSource(tmp_path, min_size=32, slice_range=(2, 8), min_foreground=0.3)
  # Slices 0-1 are outside the range and 2-3 are mostly air (share below 0.3).
  assert [part[i]["name"] for i in range(len(part))] == [f"ct#{k}" for k in (4, 5, 6, 7)]
  (name, load), = part.whole_images()
  held = load()
  assert name == "ct" and held.num_frames == 4 and held.kind == "volume"
  np.testing.assert_array_equal(held.geometry.positions[:, 2], [8.0, 10.0, 12.0, 14.0])


def test_volume_folder_without_usable_slices_is_one_line(tmp_path):
  write_ct_series(tmp_path / "ct", _head(), spacing=2.0)
  with pytest.raises(volumes.VolumeError, match="no train slices"):
    volumes.VolumeSource(tmp_path, min_size=64)
  with pytest.raises(volumes.VolumeError, match="no eval slices"):
    volumes.VolumeSource(tmp_path, slice_range=(20, 30), label="eval")


def test_config_picks_the_volume_source_and_checks_its_keys(tmp_path):
  write_ct_series(tmp_path / "ct", _head(), spacing=2.0)
  config = base.base_config()
  config.data.train_dir = config.data.eval_dir = str(tmp_path)
  config.data.source = "volumes"
  config.data.train_slices, config.data.eval_slices = (0, 6), (8, 10)
  assert isinstance(pipeline.make_source(config.data, "train", 32), volumes.VolumeSource)
  assert len(pipeline.make_source(config.data, "eval", 2)) == 2
  config.data.source = "slices"
  with pytest.raises(train.ConfigError, match="data.source"):
    train.check_config(config)


def test_init_from_takes_a_shipped_model_and_refuses_one_that_does_not_fit():
  config = base.base_config()
  config.model = base.srvgg(num_feat=48, num_conv=10, act_type="prelu")
  config.scale = 2
  saved = train._saved_weights("xray_x2", config)  # pylint: disable=protected-access
  assert saved.params["body_0"]["kernel"].shape[-1] == 48
  config.scale = 4
  with pytest.raises(train.ConfigError, match=r"init_from=xray_x2: holds srvgg x2"):
    train._saved_weights("xray_x2", config)  # pylint: disable=protected-access
  with pytest.raises(train.ConfigError, match="init_from=nope"):
    train._saved_weights("nope", config)  # pylint: disable=protected-access


def test_all_axes_adds_the_other_axes_of_near_isotropic_volumes_only(tmp_path):
  import nibabel as nib  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  data = rng.integers(0, 4096, (36, 40, 34)).astype(np.int16)  # x, y, z voxels.
  (tmp_path / "iso").mkdir()
  nib.save(nib.Nifti1Image(data, np.diag([1.0, 1.0, 1.1, 1.0])), tmp_path / "iso" / "brain.nii")
  own = volumes.VolumeSource(tmp_path / "iso", min_size=32)
  every = volumes.VolumeSource(tmp_path / "iso", min_size=32, all_axes=True)
  assert len(own) == 34 and len(every) == 34 + 36 + 40
  names = [every[i]["name"] for i in range(len(every))]
  assert names[34] == "brain.nii@rows#0" and names[-1] == "brain.nii@columns#39"
  image = own.volumes[0][1]
  frames = image.grey_frames  # (z, x, y): slices along the last axis.
  np.testing.assert_array_equal(every[34 + 5]["image"], frames[:, 5, :])
  np.testing.assert_array_equal(every[34 + 36 + 7]["image"], frames[:, :, 7])
  # Slices 1 mm apart but 3 mm thick: along its own axis only.
  (tmp_path / "thick").mkdir()
  nib.save(nib.Nifti1Image(data, np.diag([1.0, 1.0, 3.0, 1.0])),
           tmp_path / "thick" / "brain.nii")
  assert len(volumes.VolumeSource(tmp_path / "thick", min_size=32, all_axes=True)) == 34
  # A series of 2 mm slices with 0.5 mm pixels is not isotropic either.
  write_ct_series(tmp_path / "ct", _head(), spacing=2.0)
  assert len(volumes.VolumeSource(tmp_path / "ct", all_axes=True)) == 10


def test_all_axes_is_refused_with_slice_ranges_that_cannot_split_the_other_axes(tmp_path):
  config = base.base_config()
  config.data.train_dir = str(tmp_path)
  config.data.source, config.data.all_axes = "volumes", True
  config.data.train_slices = (0, 6)
  with pytest.raises(train.ConfigError, match="does not split the other axes"):
    train.check_config(config)
  config.data.train_slices = (0, 0)
  config.data.source = "images"
  with pytest.raises(train.ConfigError, match="needs data.source='volumes'"):
    train.check_config(config)
