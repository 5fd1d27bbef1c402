"""Start-up of `jaxsr upscale` with an empty, a filled and no compilation cache.

The user's question: how long does the same command take the second time?
Each repetition runs, as separate processes and in this order,

  * cold: `python -m jaxsr.upscale ... --compilation_cache=EMPTY` (a new, empty
    folder: it compiles and writes the cache);
  * warm: the same command again with that now filled folder;
  * off:  `--compilation_cache=none` (what every run cost before the cache);
  * import: `python -c "import jaxsr.upscale"`, the floor no cache can lower,

and reports the whole-process wall time of each (median over repetitions) with
the ratios cold / warm and off / warm. The default input is one whole 1024²
radiograph and its x4 upscale with the shipped xray_x4; --size crops it, so
that compilation dominates (e.g. --size 128).

--arch rrdbnet (or srvgg, srvgg48) runs random 3-channel weights of that
network instead of --weights (bench_upscale_process.py's .pth): RRDBNet's
compilation is what the cache is for.

  python benchmarks/bench_startup.py [--input PNG] [--size 0] [--weights xray_x4 | --arch NET] \
      [--reps 3]
"""
import argparse
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bench_upscale_process  # pylint: disable=wrong-import-position

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_INPUT = REPO.parent / "shared" / "data" / "xray" / "png" / "nih_00000075_000.png"


def timed(command: list[str]) -> float:
  start = time.perf_counter()
  subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)
  return time.perf_counter() - start


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--input", default=str(DEFAULT_INPUT))
  parser.add_argument("--size", type=int, default=0, help="centre crop side; 0: whole image")
  parser.add_argument("--weights", default="xray_x4")
  parser.add_argument("--arch", choices=tuple(bench_upscale_process.NETS),
                      help="random weights of this network instead of --weights")
  parser.add_argument("--reps", type=int, default=3)
  args = parser.parse_args(argv)
  with tempfile.TemporaryDirectory(prefix="jaxsr-bench-startup-") as tmp:
    tmp = pathlib.Path(tmp)
    if args.arch:
      args.weights = str(tmp / f"{args.arch}_x4.pth")
      bench_upscale_process.write_weights(args.arch, 4, pathlib.Path(args.weights))
    image = np.asarray(Image.open(args.input))
    if args.size:
      top, left = (image.shape[0] - args.size) // 2, (image.shape[1] - args.size) // 2
      image = image[top:top + args.size, left:left + args.size]
    source = tmp / "input.png"
    Image.fromarray(image).save(source)
    times = {"cold": [], "warm": [], "off": [], "import": []}
    for rep in range(args.reps):
      cache = tmp / f"cache{rep}"
      upscale = [sys.executable, "-m", "jaxsr.upscale", f"--input={source}",
                 f"--weights={args.weights}", "--overwrite"]
      for kind, flag in (("cold", str(cache)), ("warm", str(cache)), ("off", "none")):
        times[kind].append(timed(upscale + [f"--output={tmp / kind}",
                                            f"--compilation_cache={flag}"]))
      times["import"].append(timed([sys.executable, "-c", "import jaxsr.upscale"]))
      entries = sum(1 for _ in cache.iterdir())
      print(f"rep {rep}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items())
            + f"; cache {entries} entries", flush=True)
    median = {kind: statistics.median(values) for kind, values in times.items()}
  print(f"\n{args.arch or args.weights} x upscale of {image.shape[1]}x{image.shape[0]}, "
        f"{args.reps} reps, whole process, median s:")
  for kind, value in median.items():
    print(f"  {kind:<6} {value:7.2f}")
  print(f"ratio cold / warm: {median['cold'] / median['warm']:.2f}x")
  print(f"ratio off / warm:  {median['off'] / median['warm']:.2f}x")
  print(f"warm minus import (the run itself): {median['warm'] - median['import']:.2f} s; "
        f"cold minus import: {median['cold'] - median['import']:.2f} s")


if __name__ == "__main__":
  main()
