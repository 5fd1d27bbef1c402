"""Benchmark Real-ESRGAN's second-order degradation: jaxsr vs realesrgan's feed_data.

One invocation runs two worker subprocesses, one after the other:
  * jax:   jaxsr.degradations.pipeline.make_degrade_fn under jax.jit (this venv),
           for C = 1 (radiographs, native) and C = 3;
  * torch: realesrgan.models.realesrgan_model.RealESRGANModel.feed_data, bound to
           an object made with __new__ (its __init__ calls .cuda()), modules and
           the training-pair queue on CPU, basicsr's filter2D given contiguous
           input (DiffJPEG returns channels_last tensors that its .view rejects).
Both degrade a batch of 12 HR patches of 400 x 400 (the dataset's crop) with
Real-ESRGAN's default options, pool full (steady state, swap path). Host-side
kernel sampling is not timed on either side. Each worker prints JSON; the
driver prints one table with patches/s and the ratio.

Usage:
  python benchmarks/bench_degradations.py \
      [--reps 3 --warmup 1 --batch 12 --size 400 --ref_python PATH --no_ref]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARK = "BENCH_JSON "
DEFAULT_REF_PYTHON = os.path.join(os.path.expanduser("~"), ".cache", "jaxsr", "ref-venv",
                                  "bin", "python")


def _images(n, size, seed=0):
  """Smooth, radiograph-like float32 test images (no files needed)."""
  import numpy as np
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:size, 0:size] / size
  out = []
  for _ in range(n):
    a, b, c = rng.uniform(0.2, 0.8, 3)
    img = 0.5 + 0.3 * np.sin(6 * a * xx + 4 * b * yy) * c + 0.03 * rng.standard_normal((size, size))
    out.append(np.clip(img, 0, 1).astype(np.float32))
  return out


def _time(fn, warmup, reps):
  for _ in range(warmup):
    fn(0)
  times = []
  for i in range(reps):
    t = time.perf_counter()
    fn(i + 1)
    times.append(time.perf_counter() - t)
  return times


def jax_worker(args):
  sys.path.insert(0, REPO)
  import jax
  import numpy as np
  from jaxsr.degradations import pipeline, sampling

  cfg = pipeline.default_params()
  cfg.crop_size = args.size
  records = []
  for channels in (1, 3):
    t = sampling.RealESRGANSample.from_config(cfg, channels)
    recs = [t.random_map({"image": im}, np.random.default_rng(i))
            for i, im in enumerate(_images(args.batch, args.size))]
    batch = jax.device_put({k: np.stack([r[k] for r in recs]) for k in recs[0]})
    pool = pipeline.init_pool_state(cfg, args.batch, channels)
    pool["count"] = pool["count"] + cfg.queue_size  # full: the steady-state swap path
    degrade = jax.jit(pipeline.make_degrade_fn(cfg))
    key = jax.random.key(0)
    t0 = time.perf_counter()
    jax.block_until_ready(degrade(batch, key, pool))
    compile_s = time.perf_counter() - t0

    def run(i):
      jax.block_until_ready(degrade(batch, jax.random.fold_in(key, i), pool))
    records.append({"side": "jaxsr", "channels": channels, "compile_s": compile_s,
                    "times": _time(run, args.warmup, args.reps)})
  print(MARK + json.dumps(records), flush=True)


def torch_worker(args):
  import math
  import numpy as np
  import torch
  from basicsr.data.degradations import circular_lowpass_kernel, random_mixed_kernels
  from basicsr.utils import DiffJPEG, USMSharp
  from basicsr.utils import img_process_util
  from realesrgan.models import realesrgan_model

  torch.set_num_threads(2)
  torch.set_grad_enabled(False)
  realesrgan_model.filter2D = lambda img, k: img_process_util.filter2D(img.contiguous(), k)
  opt = {"scale": 4, "gt_size": 256, "queue_size": 180,
         "resize_prob": [0.2, 0.7, 0.1], "resize_range": [0.15, 1.5],
         "gaussian_noise_prob": 0.5, "noise_range": [1, 30], "poisson_scale_range": [0.05, 3],
         "gray_noise_prob": 0.4, "jpeg_range": [30, 95], "second_blur_prob": 0.8,
         "resize_prob2": [0.3, 0.4, 0.3], "resize_range2": [0.3, 1.2],
         "gaussian_noise_prob2": 0.5, "noise_range2": [1, 25],
         "poisson_scale_range2": [0.05, 2.5], "gray_noise_prob2": 0.4, "jpeg_range2": [30, 95]}
  model = realesrgan_model.RealESRGANModel.__new__(realesrgan_model.RealESRGANModel)
  model.opt, model.is_train, model.device = opt, True, torch.device("cpu")
  model.jpeger, model.usm_sharpener = DiffJPEG(differentiable=False), USMSharp()
  model.queue_size = 180
  model.queue_lr = torch.zeros(180, 3, 64, 64)
  model.queue_gt = torch.zeros(180, 3, 256, 256)
  np.random.seed(0)
  kinds = ["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"]
  probs = [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]

  def kernel(sigma):
    size = int(np.random.choice(range(7, 22, 2)))
    k = random_mixed_kernels(kinds, probs, size, sigma, sigma, [-math.pi, math.pi],
                             [0.5, 4], [1, 2], noise_range=None)
    return np.pad(k, (21 - size) // 2)
  gt = torch.from_numpy(np.stack([np.repeat(im[None], 3, 0) for im in
                                  _images(args.batch, args.size)]))
  data = {"gt": gt,
          "kernel1": torch.FloatTensor(np.stack([kernel([0.2, 3]) for _ in range(args.batch)])),
          "kernel2": torch.FloatTensor(np.stack([kernel([0.2, 1.5]) for _ in range(args.batch)])),
          "sinc_kernel": torch.FloatTensor(np.stack([np.pad(circular_lowpass_kernel(2.0, 11), 5)
                                                     for _ in range(args.batch)]))}

  def run(i):
    torch.manual_seed(i)
    np.random.seed(i)
    model.queue_ptr = 180  # full: the steady-state swap path
    model.feed_data(data)
  records = [{"side": "reference", "channels": 3, "compile_s": 0.0,
              "times": _time(run, args.warmup, args.reps)}]
  print(MARK + json.dumps(records), flush=True)


def run_worker(python, kind, args):
  cmd = [python, os.path.abspath(__file__), "--worker", kind, "--reps", str(args.reps),
         "--warmup", str(args.warmup), "--batch", str(args.batch), "--size", str(args.size)]
  proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                        check=False)
  for line in proc.stdout.splitlines():
    if line.startswith(MARK):
      return json.loads(line[len(MARK):])
  print(f"{kind} worker failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
  return []


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--reps", type=int, default=3)
  p.add_argument("--warmup", type=int, default=1)
  p.add_argument("--batch", type=int, default=12)
  p.add_argument("--size", type=int, default=400)
  p.add_argument("--ref_python", default=os.environ.get("JAXSR_REF_PYTHON_BIN",
                                                        DEFAULT_REF_PYTHON))
  p.add_argument("--no_ref", action="store_true")
  p.add_argument("--worker", choices=("jax", "torch"))
  args = p.parse_args()
  if args.worker == "jax":
    return jax_worker(args)
  if args.worker == "torch":
    return torch_worker(args)
  print(f"load average {os.getloadavg()[0]:.2f}; batch {args.batch} x {args.size}^2, "
        f"{args.warmup} warm-up + {args.reps} timed calls", flush=True)
  rows = run_worker(sys.executable, "jax", args)
  if not args.no_ref:
    rows += run_worker(args.ref_python, "torch", args)
  ref = [r for r in rows if r["side"] == "reference"]
  ref_rate = args.batch / statistics.median(ref[0]["times"]) if ref else None
  print(f"{'side':<10} {'C':>2} {'compile s':>9} {'median s [min-max]':>22} {'patches/s':>10} "
        f"{'ratio':>6}")
  for r in rows:
    t = r["times"]
    rate = args.batch / statistics.median(t)
    ratio = f"{rate / ref_rate:6.1f}" if ref_rate else "     -"
    print(f"{r['side']:<10} {r['channels']:>2} {r['compile_s']:>9.1f} "
          f"{statistics.median(t):>8.3f} [{min(t):.3f}-{max(t):.3f}] {rate:>10.2f} {ratio}")
  print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
  main()
