"""Builds an ArrayRecord dataset from folders of radiographs.

Decoding DICOM/PNG/TIFF once here keeps training input fast and TF-free:

  python tools/build_arrayrecord.py --train_dir=DIR [--eval_dir=DIR2] \
      --data_dir=OUT [--name=xray_folder] [--strict] [--overwrite]

The eval folder becomes the "validation" split. Exit status 2 (with a one-line
message) when a folder is missing, holds no readable images, or, with
--strict, holds an unreadable file.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys

try:
  import jaxsr  # pylint: disable=unused-import
except ImportError:  # Run from a checkout without installing the package.
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from jaxsr.data import tfds_builders  # pylint: disable=wrong-import-position


def build_arrayrecord(train_dir, data_dir, eval_dir=None,
                      name: str = "xray_folder", strict: bool = False,
                      overwrite: bool = False) -> tuple[str, dict[str, int]]:
  """Builds (or reuses) the dataset; returns its folder and records per split."""
  builder = tfds_builders.prepare_xray_folder(
      train_dir, data_dir, eval_dir=eval_dir, name=name, strict=strict,
      overwrite=overwrite)
  counts = {k: int(v.num_examples) for k, v in builder.info.splits.items()}
  return os.fspath(builder.data_dir), counts


def _parse(argv):
  parser = argparse.ArgumentParser(
      description="Build an ArrayRecord dataset from folders of radiographs.")
  parser.add_argument("--train_dir", required=True,
                      help="folder of training radiographs (searched recursively)")
  parser.add_argument("--eval_dir", default=None,
                      help="folder of validation radiographs")
  parser.add_argument("--data_dir", required=True,
                      help="tfds data directory to write into")
  parser.add_argument("--name", default="xray_folder",
                      help="dataset name inside data_dir")
  parser.add_argument("--strict", action="store_true",
                      help="fail on the first unreadable file instead of skipping it")
  parser.add_argument("--overwrite", action="store_true",
                      help="rebuild even if the dataset already exists")
  return parser.parse_args(argv)


def main(argv=None) -> int:
  args = _parse(argv)
  try:
    path, counts = build_arrayrecord(
        args.train_dir, args.data_dir, eval_dir=args.eval_dir, name=args.name,
        strict=args.strict, overwrite=args.overwrite)
  except ValueError as e:  # ImageReadError is a ValueError too.
    message = " ".join(str(e).split())
    print(f"build_arrayrecord: error: {message}", file=sys.stderr)
    return 2
  print(f"{args.name} written to {path}")
  for split, count in counts.items():
    print(f"  {split}: {count} records")
  return 0


if __name__ == "__main__":
  sys.exit(main())
