"""Size and write time of upscaled DICOMs per transfer syntax, on the shared DICOMs.

  python benchmarks/bench_dicom_syntax.py [--data ../shared/data] [--scale 2] \
      [--syntaxes uncompressed,rle,jpeg-ls,jpeg2000] [--slices 8]

Each shared DICOM (radiographs, the first --slices slices of the CT series,
Enhanced CT/MR, MR, ultrasound) is read, upscaled bicubically by --scale
(the content an upscaled image has: smooth, at the data's depth; the network
is not what is measured) and written by jaxsr's DICOM writer once per
syntax. It prints, per file and syntax, the output size, its ratio to the
uncompressed output and the write time (encoding plus the bit-exact decode
check) against the uncompressed write, then the totals.
"""
import argparse
import pathlib
import tempfile
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]


def inputs(data: pathlib.Path, slices: int) -> list[pathlib.Path]:
  found = sorted((data / "xray" / "dicom").glob("*.dcm"))
  for folder in ("ct", "mr", "us"):
    found += sorted((data / folder).glob("*.dcm"))
  found += sorted((data / "ct" / "invesalius_head_ct").glob("*.dcm"))[:slices]
  return found


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
  parser.add_argument("--scale", type=int, default=2)
  parser.add_argument("--syntaxes", default="uncompressed,rle,jpeg-ls,jpeg2000")
  parser.add_argument("--slices", type=int, default=8, help="CT series slices to include")
  args = parser.parse_args()
  from jaxsr.degradations import bicubic  # pylint: disable=import-outside-toplevel
  from jaxsr.inference import writers  # pylint: disable=import-outside-toplevel
  from jaxsr.io import images  # pylint: disable=import-outside-toplevel
  syntaxes = args.syntaxes.split(",")
  totals = {name: [0, 0.0] for name in syntaxes}
  print(f"{'file':44s} " + " ".join(f"{name:>22s}" for name in syntaxes))
  with tempfile.TemporaryDirectory() as tmp:
    for path in inputs(pathlib.Path(args.data), args.slices):
      image = images.read_image(path)
      frames = []
      for index in range(image.num_frames):
        frame = image.frames[index]
        size = (frame.shape[0] * args.scale, frame.shape[1] * args.scale)
        channels = [frame] if frame.ndim == 2 else [frame[..., c] for c in range(3)]
        up = [np.clip(bicubic.upscale(c, size), 0, 1) for c in channels]
        frames.append(up[0] if frame.ndim == 2 else np.stack(up, axis=-1))
      cells, sizes = [], {}
      for name in syntaxes:
        target = pathlib.Path(tmp) / f"{name}.dcm"
        start = time.perf_counter()
        output = writers.open_output(image, [target], scale=args.scale, model="bicubic",
                                     transfer_syntax=name)
        for index, frame in enumerate(frames):
          output.put(index, frame)
        output.close()
        seconds = time.perf_counter() - start
        sizes[name] = (target.stat().st_size, seconds)
        totals[name][0] += sizes[name][0]
        totals[name][1] += seconds
      base_size, base_time = sizes.get("uncompressed", next(iter(sizes.values())))
      for name in syntaxes:
        size, seconds = sizes[name]
        cells.append(f"{size / 2**20:7.2f} MB {base_size / size:4.2f}x {seconds:5.2f}s")
      print(f"{path.name[:44]:44s} " + " ".join(f"{c:>22s}" for c in cells), flush=True)
  base = totals.get("uncompressed", next(iter(totals.values())))
  print(f"{'total':44s} " + " ".join(
      f"{totals[n][0] / 2**20:7.1f} MB {base[0] / totals[n][0]:4.2f}x {totals[n][1]:5.1f}s"
      .rjust(22) for n in syntaxes))
  print("ratio: uncompressed size / size (higher is smaller); time: write incl. the "
        "bit-exact decode check")


if __name__ == "__main__":
  main()
