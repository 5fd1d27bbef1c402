"""Benchmark jaxsr's RRDBNet (ESRGAN / Real-ESRGAN) against basicsr's RRDBNet.

One invocation runs a jax worker (this interpreter) and a torch worker (the
reference venv built by benchmarks/setup_reference.sh), alternating them
``--rounds`` times, both on the same seeded numpy inputs. The worker
machinery (timing loop, JSON hand-off, pooling) is bench_srresnet.py's.

Network: RRDBNet x4, 23 blocks, 64 features, growth 32 (RealESRGAN_x4plus).
Tasks:
  infer  forward of 1 x C x 128 x 128 -> 512 x 512, C = 3 and 1.
  train  one step: batch 4, LR 32 x 32 -> HR 128 x 128 (C = 3), L1 loss,
         Adam(lr 1e-4, betas 0.9/0.99).
Targets: jaxsr time / reference time <= 0.8 (infer) and <= 1.0 (train).

Usage:
  python benchmarks/bench_rrdbnet.py \
      [--reps 3 --warmup 1 --rounds 1 --dtype float32 --ref_python PATH]
"""

import argparse
import json
import os
import platform
import sys
import time
from functools import partial

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# pylint: disable=wrong-import-position
from bench_srresnet import DEFAULT_REF_VENV, REPO, _emit, _stats, _time
from bench_srresnet import fmt_t, pool, print_markdown, run_worker, worker_env

SCALE = 4
INFER_SIZE = 128
TARGETS = dict(infer=0.8, train=1.0)
# Dense peak TFLOP/s by device kind, for --peak_tflops auto: bfloat16 on
# tensor cores, and TF32 tensor cores for float32 (what XLA's default
# precision may use there). NVIDIA's H100 SXM / H200 datasheet figures.
PEAK_TFLOPS = {
    'H100': dict(bfloat16=989.4, float32=494.7),
    'H200': dict(bfloat16=989.4, float32=494.7),
}


def _flops(lowered):
  """FLOPs of one call of a lowered or compiled function (XLA's cost analysis)."""
  cost = lowered.cost_analysis()
  if isinstance(cost, (list, tuple)):  # older jax: one dict per device
    cost = cost[0] if cost else {}
  return float((cost or {}).get('flops', 0.0))


def peak_tflops(device_kind, dtype, override=None):
  """The peak to compare against: --peak_tflops, else the known table."""
  if override:
    return override
  for name, peaks in PEAK_TFLOPS.items():
    if name in (device_kind or ''):
      return peaks[dtype]
  return None


def _inputs(cfg, c):
  """Seeded NCHW float32 arrays shared by both workers: x, lr, hr."""
  import numpy as np
  rng = np.random.default_rng(1000 + c)
  b, s = cfg['batch'], cfg['lr_size']
  x = rng.random((1, c, INFER_SIZE, INFER_SIZE), dtype=np.float32)
  lr = rng.random((b, c, s, s), dtype=np.float32)
  hr = rng.random((b, c, s * SCALE, s * SCALE), dtype=np.float32)
  return x, lr, hr


def _arch(cfg, c):
  return dict(num_in_ch=c, num_out_ch=c, num_feat=64, num_block=cfg['blocks'],
              num_grow_ch=32)


# --------------------------------------------------------------------------
# jax worker


def jax_worker(cfg):
  """Times jaxsr's RRDBNet under jax.jit; compile time is reported apart."""
  sys.path.insert(0, REPO)
  import jax
  import jax.numpy as jnp
  import optax
  from jaxsr import models
  from jaxsr.models.rrdbnet import RRDBNet

  dtype = jnp.dtype(cfg['dtype'])
  cast = lambda tree: jax.tree_util.tree_map(lambda a: a.astype(dtype), tree)
  nhwc = lambda a: jnp.asarray(a.transpose(0, 2, 3, 1))
  records = []
  for c in cfg['channels']:
    tasks = [t for t in cfg['tasks']
             if t == 'infer' or c in cfg['train_channels']]
    if not tasks:
      continue
    # As jaxsr builds it for one device ('auto': Winograd and packing on one CPU).
    model = RRDBNet(upscale=SCALE, **_arch(cfg, c))
    model = model.clone(**models.execution_kwargs(RRDBNet, jax.devices()[:1]))
    # FLOPs are counted on direct convolutions: XLA counts a scanned trunk
    # once, and Winograd's 4x fewer multiplications are the speed-up itself.
    direct = model.clone(conv_algorithm='direct')
    x, lr, hr = (nhwc(a) for a in _inputs(cfg, c))
    params = model.init(jax.random.PRNGKey(c), lr[:1])['params']
    n_params = sum(a.size for a in jax.tree_util.tree_leaves(params))

    if 'infer' in tasks:
      p_run, x_run = cast(params), x.astype(dtype)
      infer = lambda p, x, net=model: net.apply({'params': p}, x)
      t0 = time.perf_counter()
      fn = jax.jit(infer).lower(p_run, x_run).compile()
      compile_s = time.perf_counter() - t0
      flops = _flops(jax.jit(partial(infer, net=direct)).lower(p_run, x_run))
      times = _time(lambda: fn(p_run, x_run).block_until_ready(), cfg)
      records.append(dict(model='rrdbnet', channels=c, task='infer',
                          shape=f'1x{INFER_SIZE}x{INFER_SIZE}x{c}',
                          params=n_params, compile_s=compile_s, images=1,
                          flops=flops, **_stats(times)))

    if 'train' in tasks:
      tx = optax.adam(1e-4, b1=0.9, b2=0.99)
      opt_state = tx.init(params)
      lr_run = lr.astype(dtype)

      def train_step(params, opt_state, lr, hr, net=model):
        def loss_fn(p):
          # float32 master weights; bfloat16 compute when --dtype asks.
          out = net.apply({'params': cast(p)}, lr)
          return jnp.mean(jnp.abs(out.astype(jnp.float32) - hr))

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

      jit_kw = dict(donate_argnums=(0, 1)) if cfg['donate'] else {}
      t0 = time.perf_counter()
      fn = jax.jit(train_step, **jit_kw).lower(
          params, opt_state, lr_run, hr).compile()
      compile_s = time.perf_counter() - t0
      flops = _flops(jax.jit(partial(train_step, net=direct)).lower(
          params, opt_state, lr_run, hr))
      state = [params, opt_state]

      def run():
        out = fn(*state, lr_run, hr)
        state[:] = out[:2]
        out[2].block_until_ready()

      times = _time(run, cfg)
      records.append(dict(model='rrdbnet', channels=c, task='train',
                          shape='x'.join(map(str, lr.shape)),
                          params=n_params, compile_s=compile_s,
                          images=int(lr.shape[0]), flops=flops,
                          **_stats(times)))
  _emit(records, dict(jax=jax.__version__, backend=jax.default_backend(),
                      devices=jax.device_count(),
                      device_kind=jax.devices()[0].device_kind,
                      dtype=cfg['dtype'], donate=cfg['donate'],
                      conv_algorithm=model.conv_algorithm,
                      trunk='winograd' if model.use_winograd(x) else 'direct'))


# --------------------------------------------------------------------------
# torch worker


def torch_worker(cfg):
  """Times basicsr's RRDBNet with torch on CPU (float32, --threads)."""
  import warnings
  warnings.filterwarnings('ignore')
  import torch
  import torch.nn.functional as F
  from basicsr.archs.rrdbnet_arch import RRDBNet

  torch.set_num_threads(cfg['threads'])
  torch.manual_seed(0)
  records = []
  for c in cfg['channels']:
    tasks = [t for t in cfg['tasks']
             if t == 'infer' or c in cfg['train_channels']]
    if not tasks:
      continue
    model = RRDBNet(scale=SCALE, **_arch(cfg, c))
    x, lr, hr = (torch.from_numpy(a) for a in _inputs(cfg, c))
    n_params = sum(p.numel() for p in model.parameters())

    if 'infer' in tasks:
      model.eval()

      def infer():
        with torch.inference_mode():
          model(x)

      times, first = _time(infer, cfg, first=True)
      records.append(dict(model='rrdbnet', channels=c, task='infer',
                          shape=f'1x{c}x{INFER_SIZE}x{INFER_SIZE}',
                          params=n_params, compile_s=first, **_stats(times)))

    if 'train' in tasks:
      model.train()
      opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.99))

      def step():
        opt.zero_grad(set_to_none=True)
        loss = F.l1_loss(model(lr), hr)
        loss.backward()
        opt.step()

      times, first = _time(step, cfg, first=True)
      records.append(dict(model='rrdbnet', channels=c, task='train',
                          shape='x'.join(map(str, lr.shape)),
                          params=n_params, compile_s=first, **_stats(times)))
  _emit(records, dict(torch=torch.__version__,
                      threads=torch.get_num_threads()))


# --------------------------------------------------------------------------
# driver


def print_table(jax_out, ref_out):
  """Markdown table; ratio = jaxsr median / reference median (< 1: faster)."""
  key = lambda r: (r['channels'], r['task'])
  jrec = {key(r): r for r in (jax_out or {}).get('records', [])}
  rrec = {key(r): r for r in (ref_out or {}).get('records', [])}
  head = ('task', 'C', 'params', 'jaxsr median [min-max] s', 'jax compile s',
          'reference median [min-max] s', 'ratio jaxsr/ref', 'target')
  rows = []
  for k in list(jrec) + [k for k in rrec if k not in jrec]:
    j, r = jrec.get(k), rrec.get(k)
    ratio, verdict = '-', ''
    if j and r:
      value = j['median'] / r['median']
      ratio = f'{value:.2f}'
      verdict = 'met' if value <= TARGETS[k[1]] else 'missed'
    rows.append((k[1], str(k[0]), f"{(j or r)['params']:,}", fmt_t(j),
                 f"{j['compile_s']:.1f}" if j else '-', fmt_t(r), ratio,
                 f'<= {TARGETS[k[1]]} {verdict}'))
  print_markdown(head, rows)


def throughput_rows(jax_out, dtype, override=None):
  """images/s, achieved TFLOP/s and fraction of peak for each jax record."""
  meta = (jax_out or {}).get('meta', {})
  peak = peak_tflops(meta.get('device_kind'), dtype, override)
  rows = []
  for r in (jax_out or {}).get('records', []):
    tflops = r['flops'] / r['median'] / 1e12
    rows.append(dict(task=r['task'], channels=r['channels'], shape=r['shape'],
                     images_per_s=r['images'] / r['median'],
                     gflop_per_call=r['flops'] / 1e9, tflops=tflops,
                     peak_tflops=peak,
                     fraction_of_peak=tflops / peak if peak else None))
  return rows


def print_throughput(rows, device_kind, conv_algorithm='direct'):
  head = ('task', 'C', 'input', 'images/s', 'GFLOP per call (XLA)',
          'achieved TFLOP/s', 'peak TFLOP/s', 'fraction of peak')
  print_markdown(head, [
      (r['task'], str(r['channels']), r['shape'], f"{r['images_per_s']:.2f}",
       f"{r['gflop_per_call']:.1f}", f"{r['tflops']:.3f}",
       f"{r['peak_tflops']:g}" if r['peak_tflops'] else '-',
       f"{r['fraction_of_peak']:.1%}" if r['fraction_of_peak'] else '-')
      for r in rows])
  print(f'\njax device: {device_kind}; trunk convolutions: {conv_algorithm}. '
        'FLOPs are XLA\'s cost analysis of the same call with direct '
        'convolutions (a train step counts forward, backward and Adam; '
        'Winograd does fewer multiplications for the same result); '
        'images/s = images per call / median seconds.')


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--reps', type=int, default=3)
  p.add_argument('--warmup', type=int, default=1)
  p.add_argument('--rounds', type=int, default=1,
                 help='alternate the jax and torch workers this many times '
                 'and pool their timed reps')
  p.add_argument('--batch', type=int, default=4)
  p.add_argument('--lr_size', type=int, default=32)
  p.add_argument('--blocks', type=int, default=23)
  p.add_argument('--channels', default='3,1', help='inference channels')
  p.add_argument('--train_channels', default='3')
  p.add_argument('--tasks', default='infer,train')
  p.add_argument('--dtype', choices=('float32', 'bfloat16'), default='float32',
                 help='jax compute dtype (bfloat16 is for GPUs; the train '
                 'step keeps float32 master weights and loss)')
  p.add_argument('--no_donate', action='store_true',
                 help='do not donate params/optimizer state to the train step')
  p.add_argument('--threads', type=int, default=2,
                 help='torch.set_num_threads for the reference')
  p.add_argument('--ref_python', default=None,
                 help='python of the reference venv (default: '
                 '$JAXSR_REF_VENV/bin/python or ~/.cache/jaxsr/ref-venv)')
  p.add_argument('--no_ref', action='store_true', help='skip the reference')
  p.add_argument('--huge_pages', action='store_true',
                 help='run both workers with glibc huge pages (JAXSR_HUGE_PAGES=1; '
                 'see jaxsr/huge_pages.py)')
  p.add_argument('--json', default=None, help='also write results here')
  p.add_argument('--peak_tflops', type=float, default=None,
                 help='peak of the jax device for the fraction-of-peak '
                 'column (default: known H100/H200 figures, else none)')
  p.add_argument('--worker', choices=('jax', 'torch'), help=argparse.SUPPRESS)
  p.add_argument('--config', help=argparse.SUPPRESS)
  args = p.parse_args()

  if args.worker:
    cfg = json.loads(args.config)
    (jax_worker if args.worker == 'jax' else torch_worker)(cfg)
    return

  ints = lambda s: [int(c) for c in s.split(',') if c]
  cfg = dict(reps=args.reps, warmup=args.warmup, batch=args.batch,
             lr_size=args.lr_size, blocks=args.blocks, threads=args.threads,
             channels=ints(args.channels),
             train_channels=ints(args.train_channels),
             tasks=args.tasks.split(','), dtype=args.dtype,
             donate=not args.no_donate)
  ref_python = args.ref_python or os.path.join(
      os.environ.get('JAXSR_REF_VENV', DEFAULT_REF_VENV), 'bin', 'python')
  print(f'host: {platform.node()} {platform.machine()}, '
        f'{os.cpu_count()} cpus, python {platform.python_version()}')
  print(f"config: RRDBNet x{SCALE} blocks={cfg['blocks']} feat=64 grow=32; "
        f"reps={cfg['reps']} warmup={cfg['warmup']} rounds={args.rounds}; "
        f"infer 1xCx{INFER_SIZE}x{INFER_SIZE} C={cfg['channels']}; train "
        f"batch={cfg['batch']} lr={cfg['lr_size']} C={cfg['train_channels']}; "
        f"jax dtype={cfg['dtype']} donate={cfg['donate']}", flush=True)

  env = worker_env(args.huge_pages)
  print(f"workers' GLIBC_TUNABLES: {env.get('GLIBC_TUNABLES')}", flush=True)
  use_ref = not args.no_ref
  if use_ref and not os.path.exists(ref_python):
    print(f'reference python not found at {ref_python}; '
          'run benchmarks/setup_reference.sh (or pass --ref_python)')
    use_ref = False
  jax_runs, ref_runs = [], []
  for i in range(args.rounds):
    tag = f'[round {i + 1}/{args.rounds}] '
    print(f'{tag}load average {os.getloadavg()[0]:.2f}', flush=True)
    jax_runs.append(run_worker(sys.executable, 'jax', cfg, env, __file__))
    if jax_runs[-1]:
      print(f"{tag}jax worker: {jax_runs[-1]['meta']}", flush=True)
    if use_ref:
      print(f'{tag}load average {os.getloadavg()[0]:.2f}', flush=True)
      ref_runs.append(run_worker(ref_python, 'torch', cfg, env, __file__))
      if ref_runs[-1]:
        print(f"{tag}torch worker: {ref_runs[-1]['meta']}", flush=True)
  print(f'load average {os.getloadavg()[0]:.2f}')
  jax_out, ref_out = pool(jax_runs), pool(ref_runs)
  print()
  print_table(jax_out, ref_out)
  print('\nratio = jaxsr median / reference median (< 1: jaxsr is faster). '
        'jax compile s: jit lower + compile, not in the timed reps.')
  rows = throughput_rows(jax_out, cfg['dtype'], args.peak_tflops)
  if rows:
    print()
    print_throughput(rows, jax_out['meta'].get('device_kind'),
                     jax_out['meta'].get('trunk', 'direct'))
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(dict(config=cfg, jax=jax_out, reference=ref_out,
                     throughput=rows), f, indent=1)
  if jax_out is None or (use_ref and ref_out is None):
    sys.exit(1)


if __name__ == '__main__':
  main()
