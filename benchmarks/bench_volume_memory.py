"""Peak memory and wall time of `python -m jaxsr.upscale` on a whole CT volume.

  python benchmarks/bench_volume_memory.py [--form series|nifti] [--size 512] \
      [--slices 300] [--weights W] [--tile 512] [--batch 1] [--budget_gib 6]

A synthetic CT (HU -1024..~1500: a water cylinder with bone-like rings and
noise, 12 bits stored, RescaleIntercept -1024) of --size x --size x --slices
is written as a DICOM series (one file per slice) or as an int16 NIfTI, then
upscaled x2 by the CLI in a child process. Its peak RSS is the child's
ru_maxrss, so this script's own memory is not counted; the last line compares
it with --budget_gib (the bound the volume path is meant to keep).

Without --weights a random tiny MSRResNet x2 (16 features, 2 blocks, one
channel) is used: the network's cost is not what is measured here, the
volume path around it is (reading, per-slice tiling, writing).
"""
import argparse
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]


def random_weights(path: pathlib.Path) -> pathlib.Path:
  import jax  # pylint: disable=g-import-not-at-top
  from jaxsr import weights  # pylint: disable=g-import-not-at-top
  kwargs = {"num_feat": 16, "num_block": 2}
  module = weights.build("msrresnet", 2, 1, kwargs)
  variables = module.init(jax.random.PRNGKey(0), np.zeros((1, 16, 16, 1), np.float32))
  weights.save(path, variables, {"arch": "msrresnet", "scale": 2, "num_channels": 1,
                                 "arch_kwargs": kwargs})
  return path


def phantom_slice(size: int, index: int, rng) -> np.ndarray:
  """Stored values (HU + 1024) of one slice: air, a water body, a bone ring, noise."""
  y, x = np.mgrid[:size, :size] / (size / 2.0) - 1.0
  radius = np.hypot(x, y * (1.0 + 0.1 * np.sin(index / 20.0)))
  hu = np.full((size, size), -1024.0)
  hu[radius < 0.8] = 40.0
  hu[(radius > 0.7) & (radius < 0.76)] = 1500.0
  hu += rng.normal(0.0, 8.0, hu.shape) * (radius < 0.8)
  return np.clip(np.rint(hu + 1024.0), 0, 4095).astype(np.uint16)


def write_series(folder: pathlib.Path, size: int, slices: int) -> None:
  import pydicom  # pylint: disable=g-import-not-at-top
  from pydicom.dataset import FileMetaDataset  # pylint: disable=g-import-not-at-top
  from pydicom import uid  # pylint: disable=g-import-not-at-top
  folder.mkdir(parents=True)
  rng = np.random.default_rng(0)
  study, series, frame = uid.generate_uid(), uid.generate_uid(), uid.generate_uid()
  for index in range(slices):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = uid.CTImageStorage
    meta.MediaStorageSOPInstanceUID = uid.generate_uid()
    meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.StudyInstanceUID, ds.SeriesInstanceUID = "CT", study, series
    ds.FrameOfReferenceUID, ds.SeriesNumber, ds.InstanceNumber = frame, 1, index + 1
    ds.ImagePositionPatient = [0.0, 0.0, 1.0 * index]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing, ds.SliceThickness = [0.7, 0.7], 1.0
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
    ds.set_pixel_data(phantom_slice(size, index, rng), "MONOCHROME2", 12)
    ds.save_as(folder / f"slice{index:04d}.dcm", enforce_file_format=True)


def write_nifti(path: pathlib.Path, size: int, slices: int) -> None:
  import nibabel  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  volume = np.empty((size, size, slices), np.int16)
  for index in range(slices):
    volume[:, :, index] = (phantom_slice(size, index, rng).astype(np.int32) - 1024).T
  nibabel.save(nibabel.Nifti1Image(volume, np.diag([0.7, 0.7, 1.0, 1.0])), path)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--form", choices=("series", "nifti"), default="series")
  parser.add_argument("--size", type=int, default=512)
  parser.add_argument("--slices", type=int, default=300)
  parser.add_argument("--weights", default="")
  parser.add_argument("--tile", type=int, default=512)
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--budget_gib", type=float, default=6.0)
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    if args.form == "series":
      source = tmp / "ct"
      write_series(source, args.size, args.slices)
    else:
      source = tmp / "ct.nii.gz"
      write_nifti(source, args.size, args.slices)
    weights = args.weights or str(random_weights(tmp / "tiny_msrresnet_x2.safetensors"))
    command = [sys.executable, "-m", "jaxsr.upscale", f"--weights={weights}",
               f"--input={source}", f"--output={tmp / 'out'}", f"--tile={args.tile}",
               f"--batch={args.batch}"]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, check=False, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    outputs = [p for p in (tmp / "out").rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in outputs)
  print(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "")
  print(f"input: synthetic CT {args.form}, {args.size}x{args.size}x{args.slices}, x2")
  print(f"weights: {args.weights or 'random tiny MSRResNet x2 (16 feat, 2 blocks)'}")
  print(f"exit {result.returncode}; {len(outputs)} file(s), {size / 2**20:.0f} MiB written")
  print(f"wall {seconds:.1f} s ({seconds / args.slices:.2f} s per slice); "
        f"peak RSS {peak_gib:.2f} GiB = {peak_gib / args.budget_gib:.2f} x the "
        f"{args.budget_gib:g} GiB budget")
  return result.returncode


if __name__ == "__main__":
  sys.exit(main())
