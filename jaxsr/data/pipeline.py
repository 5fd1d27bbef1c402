"""grain input pipelines: whole radiographs -> augmented (LR, HR) patch batches.

The pipeline is a pure function of (seed, record index): ``random_map`` seeds
each record's generator from the dataset seed and its index, so a resumed
iterator (its state is saved with every checkpoint) yields the same batches
an uninterrupted run would.
"""
import dataclasses
import logging
import pathlib

import grain
from absl import flags
import jax
import ml_collections
import numpy as np
from PIL import Image

from jaxsr.data import sources


def bicubic_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
  """Bicubic resize of a (H, W) float image with antialiasing when shrinking.

  PIL's float ('F') bicubic uses the a=-0.5 kernel widened by the scale
  factor when downscaling, as MATLAB's ``imresize`` (which made the LR images
  of the SRGAN/ESRGAN benchmarks) does.
  """
  out = Image.fromarray(np.asarray(image, np.float32), mode="F").resize(
      (width, height), Image.Resampling.BICUBIC)
  return np.asarray(out, np.float32)


def quantize(image: np.ndarray, bits: int) -> np.ndarray:
  """Clip to [0, 1] and round to the image's own grey levels, as a saved file would."""
  levels = float(2 ** bits - 1)
  return (np.round(np.clip(image, 0.0, 1.0) * levels) / levels).astype(np.float32)


def make_lr(hr: np.ndarray, scale: int, bits: int) -> np.ndarray:
  h, w = hr.shape[:2]
  return quantize(bicubic_resize(hr, h // scale, w // scale), bits)


def augment(patch: np.ndarray, rng: np.random.Generator, use_flip: bool, use_rot: bool):
  """BasicSR's ``augment``: horizontal flip, vertical flip, transpose (x8 dihedral)."""
  if use_flip and rng.random() < 0.5:
    patch = patch[:, ::-1]
  if use_rot and rng.random() < 0.5:
    patch = patch[::-1, :]
  if use_rot and rng.random() < 0.5:
    patch = patch.T
  return np.ascontiguousarray(patch)


@dataclasses.dataclass(frozen=True)
class RandomPatch(grain.transforms.RandomMap):
  """Whole image -> random HR crop (augmented) and its bicubic LR."""
  patch_size: int
  scale: int
  num_channels: int = 1
  use_flip: bool = True
  use_rot: bool = True

  def random_map(self, record: dict, rng: np.random.Generator) -> dict:
    image = record["image"]
    h, w = image.shape
    p = self.patch_size
    top = int(rng.integers(0, h - p + 1))
    left = int(rng.integers(0, w - p + 1))
    hr = augment(image[top:top + p, left:left + p], rng, self.use_flip, self.use_rot)
    lr = make_lr(hr, self.scale, record["bits"])
    return {"hr": sources.as_channels(hr, self.num_channels),
            "lr": sources.as_channels(lr, self.num_channels)}


def make_source(data_cfg: ml_collections.ConfigDict, split: str, min_size: int):
  """The record source for ``split`` ('train' or 'eval') as the config asks."""
  folder = data_cfg.train_dir if split == "train" else data_cfg.eval_dir
  if folder:
    include = data_cfg.train_include if split == "train" else data_cfg.eval_include
    exclude = data_cfg.train_exclude if split == "train" else data_cfg.eval_exclude
    return sources.FolderSource(folder, min_size=min_size, strict=data_cfg.strict,
                                include=tuple(include), exclude=tuple(exclude),
                                cache=data_cfg.cache_images and split == "train")
  from jaxsr.data import tfds_builders  # pylint: disable=g-import-not-at-top
  tfds_split = "train" if split == "train" else data_cfg.tfds_eval_split
  data_dir = str(pathlib.Path(data_cfg.tfds_data_dir).expanduser())
  if data_cfg.tfds_name == tfds_builders.NihChestXray14Sample.name:
    # The public default: built on first use (downloaded, or from manual_dir).
    builder = tfds_builders.prepare_nih_sample(data_dir)
  else:
    builder = data_cfg.tfds_name
  data_source = tfds_builders.load_split(builder, tfds_split, data_dir)
  return sources.ArrayRecordSource(data_source, min_size=min_size, strict=data_cfg.strict,
                                   label=f"{data_cfg.tfds_name}/{tfds_split}")


def global_batch_size(config) -> int:
  batch = config.data.batch_size
  if batch % jax.process_count():
    raise ValueError(f"data.batch_size={batch} must divide by the number of processes "
                     f"({jax.process_count()})")
  return batch


def train_dataset(config: ml_collections.ConfigDict, source) -> grain.IterDataset:
  """Infinite, shuffled, per-process batches of numpy arrays.

  Bicubic: {"lr", "hr"} pairs. Real-ESRGAN: HR crops with each sample's
  kernels and noise draws; the train step degrades them on the device.
  """
  data = config.data
  per_process = global_batch_size(config) // jax.process_count()
  ds = grain.MapDataset.source(source).shuffle(seed=config.seed).repeat()
  if config.degradation.name == "realesrgan":
    from jaxsr.degradations import sampling  # pylint: disable=g-import-not-at-top
    transform = sampling.RealESRGANSample.from_config(config.degradation, config.num_channels)
  else:
    transform = RandomPatch(patch_size=data.patch_size, scale=config.scale,
                            num_channels=config.num_channels, use_flip=data.use_flip,
                            use_rot=data.use_rot)
  ds = ds.random_map(transform, seed=config.seed)
  # Each process reads its own slice of the same global stream; slicing after
  # random_map keeps every sample's randomness tied to its global index, so the
  # samples do not depend on the number of processes.
  ds = ds[jax.process_index()::jax.process_count()]
  ds = ds.batch(per_process, drop_remainder=True)
  it_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=data.read_threads,
                                               prefetch_buffer_size=data.prefetch))
  if data.num_workers > 0:
    # grain's workers read absl flags; outside an absl app (tests, notebooks)
    # nothing has parsed them, so take the defaults.
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()
    it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=data.num_workers))
  logging.info("train data: %s, per-process batch %d", source, per_process)
  return it_ds
