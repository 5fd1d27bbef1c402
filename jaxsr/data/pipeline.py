"""grain input pipelines: whole radiographs -> batches for the train step.

What a record becomes (a bicubic LR/HR pair, or an HR crop with Real-ESRGAN's
draws for the device) is the configured degradation's transform
(`jaxsr.degradations`); this module only reads, shuffles, shards and batches.

The pipeline is a pure function of (seed, record index): ``random_map`` seeds
each record's generator from the dataset seed and its index, so a resumed
iterator (its state is saved with every checkpoint) yields the same batches
an uninterrupted run would.
"""
import logging
import pathlib

import grain
from absl import flags
import jax
import ml_collections

from jaxsr import degradations
from jaxsr.data import sources, tfds_builders, volumes


def make_source(data_cfg: ml_collections.ConfigDict, split: str, min_size: int):
  """The record source for ``split`` ('train' or 'eval') as the config asks."""
  folder = data_cfg.train_dir if split == "train" else data_cfg.eval_dir
  if folder:
    include = data_cfg.train_include if split == "train" else data_cfg.eval_include
    exclude = data_cfg.train_exclude if split == "train" else data_cfg.eval_exclude
    if data_cfg.source == "volumes":
      return volumes.VolumeSource(
          folder, min_size=min_size,
          slice_range=tuple(data_cfg.train_slices if split == "train" else data_cfg.eval_slices),
          min_foreground=data_cfg.min_foreground, hu_range=tuple(data_cfg.hu_range),
          slice_axis=None if data_cfg.slice_axis < 0 else data_cfg.slice_axis,
          all_axes=data_cfg.all_axes and split == "train",
          include=tuple(include), exclude=tuple(exclude), strict=data_cfg.strict, label=split)
    return sources.FolderSource(folder, min_size=min_size, strict=data_cfg.strict,
                                include=tuple(include), exclude=tuple(exclude),
                                cache=data_cfg.cache_images and split == "train",
                                hu_range=tuple(data_cfg.hu_range))
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

  Each record goes through the degradation's host-side transform: bicubic
  gives {"lr", "hr"} pairs; Real-ESRGAN HR crops with each sample's kernels
  and noise draws, which the train step degrades on the device.
  """
  data = config.data
  per_process = global_batch_size(config) // jax.process_count()
  ds = grain.MapDataset.source(source).shuffle(seed=config.seed).repeat()
  transform = degradations.get(config.degradation.name).transform(config)
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
