"""Input pipeline throughput: HR/LR patch pairs per second.

Times jaxsr's grain pipeline (decode, random crop, flips/rotations, bicubic
LR) over a folder of radiographs and over the same images as an ArrayRecord
dataset, in the main process and with worker processes:

  python benchmarks/bench_pipeline.py [--data=../shared/data/xray/png] \
      [--batch=16 --patch=128 --batches=30 --workers=0,2]
"""
import argparse
import os
import pathlib
import tempfile
import time

from absl import flags

from jaxsr import config as base
from jaxsr.data import pipeline, sources, tfds_builders

REPO = pathlib.Path(__file__).resolve().parents[1]


def _time(dataset, batches: int, batch_size: int) -> tuple[float, float]:
  it = iter(dataset)
  start = time.perf_counter()
  next(it)  # Start-up (worker spawn, first decode) is reported separately.
  first = time.perf_counter() - start
  start = time.perf_counter()
  for _ in range(batches):
    next(it)
  return batches * batch_size / (time.perf_counter() - start), first


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "xray" / "png"))
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--patch", type=int, default=128)
  parser.add_argument("--batches", type=int, default=30)
  parser.add_argument("--workers", default="0,2")
  args = parser.parse_args()
  flags.FLAGS.mark_as_parsed()

  config = base.base_config()
  config.data.batch_size, config.data.patch_size = args.batch, args.patch
  folder = sources.FolderSource(args.data, min_size=args.patch)
  with tempfile.TemporaryDirectory() as tmp:
    start = time.perf_counter()
    builder = tfds_builders.prepare_xray_folder(args.data, tmp)
    build_s = time.perf_counter() - start
    records = sources.ArrayRecordSource(builder.as_data_source("train"), min_size=args.patch)
    print(f"{len(folder)} images from {args.data}; ArrayRecord build {build_s:.1f} s; "
          f"batch {args.batch} of {args.patch}x{args.patch} HR patches, x{config.scale} LR; "
          f"load average {os.getloadavg()[0]:.2f}")
    print("| source | workers | patches/s | first batch s |")
    print("|---|---|---|---|")
    for name, source in (("folder", folder), ("arrayrecord", records)):
      for workers in (int(w) for w in args.workers.split(",")):
        config.data.num_workers = workers
        rate, first = _time(pipeline.train_dataset(config, source), args.batches, args.batch)
        print(f"| {name} | {workers} | {rate:.1f} | {first:.2f} |")


if __name__ == "__main__":
  main()
