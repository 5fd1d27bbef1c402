"""Peak memory and wall time of `python -m jaxsr.upscale` on a large radiograph.

  python benchmarks/bench_upscale_memory.py \
      [--input ../shared/data/xray/dicom/wg04_MG1_mammo_J2KI.dcm] [--weights W] \
      [--max_memory auto|2G] [--tile auto|N --tile_overlap auto|N] [--batch 1]

Without --weights a random tiny MSRResNet x4 (16 features, 2 blocks, one
channel) is exported to .safetensors first. The CLI runs in a child process;
its peak RSS is the child's ru_maxrss, so this script's own memory is not
counted.
"""
import argparse
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_INPUT = REPO.parent / "shared" / "data" / "xray" / "dicom" / "wg04_MG1_mammo_J2KI.dcm"


def random_weights(path: pathlib.Path) -> pathlib.Path:
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jaxsr import weights  # pylint: disable=g-import-not-at-top
  from jaxsr.models.srresnet import MSRResNet  # pylint: disable=g-import-not-at-top
  kwargs = {"num_feat": 16, "num_block": 2}
  module = MSRResNet(1, 1, upscale=4, **kwargs)
  variables = module.init(jax.random.PRNGKey(0), np.zeros((1, 16, 16, 1), np.float32))
  weights.save(path, variables, {"arch": "msrresnet", "scale": 4, "num_channels": 1,
                                 "arch_kwargs": kwargs})
  return path


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--input", default=str(DEFAULT_INPUT))
  parser.add_argument("--weights", default="")
  parser.add_argument("--max_memory", default="auto")
  parser.add_argument("--tile", default="auto")
  parser.add_argument("--tile_overlap", default="auto")
  parser.add_argument("--batch", type=int, default=1)
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    weights = args.weights or str(random_weights(tmp / "tiny_msrresnet_x4.safetensors"))
    command = [sys.executable, "-m", "jaxsr.upscale", f"--weights={weights}",
               f"--input={args.input}", f"--output={tmp / 'out'}", f"--tile={args.tile}",
               f"--tile_overlap={args.tile_overlap}", f"--max_memory={args.max_memory}",
               f"--batch={args.batch}"]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, check=False)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    outputs = [p for p in (tmp / "out").rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in outputs)
  print(f"input: {args.input}")
  print(f"weights: {args.weights or 'random tiny MSRResNet x4 (16 feat, 2 blocks)'}")
  print(f"max memory {args.max_memory}, tile {args.tile}, overlap {args.tile_overlap}, "
        f"batch {args.batch}; "
        f"load average {os.getloadavg()[0]:.1f}")
  print(f"exit status {result.returncode}; wall {seconds:.1f} s; "
        f"peak RSS {peak_kib / 2**20:.2f} GiB; output {size / 2**20:.0f} MiB")
  sys.exit(result.returncode)


if __name__ == "__main__":
  main()
