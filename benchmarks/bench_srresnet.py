"""Benchmark jaxsr's MSRResNet/SRResNet against basicsr's MSRResNet on CPU.

One invocation runs two worker subprocesses, one after the other:
  * jax:   jaxsr.models.srresnet under jax.jit, in this interpreter;
  * torch: basicsr.archs.srresnet_arch.MSRResNet, in the reference venv
           (built by benchmarks/setup_reference.sh).
Each worker prints its timings as JSON; the driver prints one table.

Tasks:
  infer  forward of 1 x C x 128 x 128 -> 512 x 512 (torch: inference_mode).
  train  one step: batch 4, LR 32 x 32 -> HR 128 x 128, L1 loss,
         Adam(lr 1e-4, betas 0.9/0.99).

Usage:
  python benchmarks/bench_srresnet.py \
      [--reps 5 --warmup 2 --batch 4 --lr_size 32 --ref_python PATH]
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARK = 'BENCH_JSON '
SCALE = 4
INFER_SIZE = 128
DEFAULT_REF_VENV = os.path.join(
    os.path.expanduser('~'), '.cache', 'jaxsr', 'ref-venv')


def _stats(times):
  """Median/min/max of a list of seconds (the list is kept too)."""
  return dict(median=statistics.median(times), min=min(times), max=max(times),
              n=len(times), times=list(times))


def _emit(records, meta):
  meta = dict(meta, glibc_tunables=os.environ.get('GLIBC_TUNABLES'))
  print(MARK + json.dumps(dict(meta=meta, records=records)), flush=True)


def worker_env(huge_pages=False):
  """The workers' environment, the same for both sides. ``huge_pages`` adds
  glibc's huge-page tunable for both, as ``JAXSR_HUGE_PAGES=1`` does for
  jaxsr's entry points (jaxsr/huge_pages.py; off by default there too)."""
  env = dict(os.environ)
  if huge_pages:
    sys.path.insert(0, REPO)
    from jaxsr.huge_pages import tunables_with_huge_pages  # pylint: disable=g-import-not-at-top
    tunables = tunables_with_huge_pages(env.get('GLIBC_TUNABLES'))
    if tunables:
      env['GLIBC_TUNABLES'] = tunables
  return env


# --------------------------------------------------------------------------
# jax worker


def jax_worker(cfg):
  """Times jaxsr models under jax.jit; compile time is reported apart."""
  sys.path.insert(0, REPO)
  import jax
  import jax.numpy as jnp
  import optax
  from jaxsr.models import srresnet

  classes = dict(msrresnet=srresnet.MSRResNet, srresnet=srresnet.SRResNet)
  records = []
  key = jax.random.PRNGKey(0)
  for name in cfg['models']:
    for c in cfg['channels']:
      model = classes[name](num_in_ch=c, num_out_ch=c, num_feat=64,
                            num_block=16, upscale=SCALE)
      k_init, k_lr, k_hr, k_x = jax.random.split(jax.random.fold_in(key, c), 4)
      lr_shape = (cfg['batch'], cfg['lr_size'], cfg['lr_size'], c)
      variables = model.init(k_init, jnp.zeros(lr_shape, jnp.float32))
      params = variables['params']
      batch_stats = variables.get('batch_stats')
      n_params = sum(x.size for x in jax.tree_util.tree_leaves(params))

      if 'infer' in cfg['tasks']:
        x = jax.random.uniform(k_x, (1, INFER_SIZE, INFER_SIZE, c))

        def infer(variables, x):
          return model.apply(variables, x, train=False)

        t0 = time.perf_counter()
        fn = jax.jit(infer).lower(variables, x).compile()
        compile_s = time.perf_counter() - t0
        times = _time(lambda: fn(variables, x).block_until_ready(), cfg)
        records.append(dict(model=name, channels=c, task='infer',
                            shape=f'1x{INFER_SIZE}x{INFER_SIZE}x{c}',
                            params=n_params, compile_s=compile_s,
                            **_stats(times)))

      if 'train' in cfg['tasks']:
        tx = optax.adam(1e-4, b1=0.9, b2=0.99)
        opt_state = tx.init(params)
        lr = jax.random.uniform(k_lr, lr_shape)
        hr_shape = (cfg['batch'], cfg['lr_size'] * SCALE,
                    cfg['lr_size'] * SCALE, c)
        hr = jax.random.uniform(k_hr, hr_shape)

        def train_step(params, batch_stats, opt_state, lr, hr):
          def loss_fn(p):
            if batch_stats is None:
              out = model.apply({'params': p}, lr, train=True)
              new_stats = None
            else:
              out, upd = model.apply({'params': p, 'batch_stats': batch_stats},
                                     lr, train=True, mutable=['batch_stats'])
              new_stats = upd['batch_stats']
            return jnp.mean(jnp.abs(out - hr)), new_stats

          (loss, new_stats), grads = jax.value_and_grad(
              loss_fn, has_aux=True)(params)
          updates, opt_state = tx.update(grads, opt_state, params)
          params = optax.apply_updates(params, updates)
          return params, new_stats, opt_state, loss

        t0 = time.perf_counter()
        fn = jax.jit(train_step, donate_argnums=(0, 1, 2)).lower(
            params, batch_stats, opt_state, lr, hr).compile()
        compile_s = time.perf_counter() - t0
        state = [params, batch_stats, opt_state]

        def run():
          out = fn(*state, lr, hr)
          state[:] = out[:3]
          out[3].block_until_ready()

        times = _time(run, cfg)
        records.append(dict(model=name, channels=c, task='train',
                            shape='x'.join(map(str, lr_shape)),
                            params=n_params, compile_s=compile_s,
                            **_stats(times)))
  meta = dict(jax=jax.__version__, backend=jax.default_backend(),
              devices=jax.device_count())
  _emit(records, meta)


# --------------------------------------------------------------------------
# torch worker


def torch_worker(cfg):
  """Times basicsr's MSRResNet with torch on CPU (2 threads)."""
  import warnings
  warnings.filterwarnings('ignore')
  import torch
  import torch.nn.functional as F
  from basicsr.archs.srresnet_arch import MSRResNet

  torch.set_num_threads(cfg['threads'])
  torch.manual_seed(0)
  records = []
  if 'msrresnet' in cfg['models']:
    for c in cfg['channels']:
      model = MSRResNet(num_in_ch=c, num_out_ch=c, num_feat=64, num_block=16,
                        upscale=SCALE)
      n_params = sum(p.numel() for p in model.parameters())

      if 'infer' in cfg['tasks']:
        model.eval()
        x = torch.rand(1, c, INFER_SIZE, INFER_SIZE)

        def infer():
          with torch.inference_mode():
            model(x)

        times, first = _time(infer, cfg, first=True)
        records.append(dict(model='msrresnet', channels=c, task='infer',
                            shape=f'1x{c}x{INFER_SIZE}x{INFER_SIZE}',
                            params=n_params, compile_s=first,
                            **_stats(times)))

      if 'train' in cfg['tasks']:
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.99))
        b, s = cfg['batch'], cfg['lr_size']
        lr = torch.rand(b, c, s, s)
        hr = torch.rand(b, c, s * SCALE, s * SCALE)

        def step():
          opt.zero_grad(set_to_none=True)
          loss = F.l1_loss(model(lr), hr)
          loss.backward()
          opt.step()

        times, first = _time(step, cfg, first=True)
        records.append(dict(model='msrresnet', channels=c, task='train',
                            shape=f'{b}x{c}x{s}x{s}', params=n_params,
                            compile_s=first, **_stats(times)))
  meta = dict(torch=torch.__version__, threads=torch.get_num_threads())
  _emit(records, meta)


def _time(fn, cfg, first=False):
  """Runs fn warmup + reps times; returns the timed reps (and the 1st call)."""
  first_s = None
  for i in range(cfg['warmup']):
    t0 = time.perf_counter()
    fn()
    if i == 0:
      first_s = time.perf_counter() - t0
  times = []
  for _ in range(cfg['reps']):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return (times, first_s) if first else times


# --------------------------------------------------------------------------
# driver


def run_worker(python, kind, cfg, env=None, script=__file__):
  """Runs one worker subprocess of ``script`` (this file, or a benchmark
  built on it) and returns its parsed JSON (or None)."""
  cmd = [python, os.path.abspath(script), '--worker', kind,
         '--config', json.dumps(cfg)]
  t0 = time.perf_counter()
  proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True, cwd=REPO, env=env, check=False)
  wall = time.perf_counter() - t0
  for line in reversed(proc.stdout.splitlines()):
    if line.startswith(MARK):
      out = json.loads(line[len(MARK):])
      out['meta']['wall_s'] = round(wall, 1)
      return out
  sys.stderr.write(f'{kind} worker failed (exit {proc.returncode}):\n'
                   f'{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}\n')
  return None


def pool(runs):
  """Merges worker outputs of several rounds; None if any round failed."""
  if not runs or any(r is None for r in runs):
    return None
  merged = {}
  for run in runs:
    for r in run['records']:
      k = (r['model'], r['channels'], r['task'])
      if k in merged:
        merged[k]['times'] += r['times']
        merged[k]['compile_s'] = min(merged[k]['compile_s'], r['compile_s'])
      else:
        merged[k] = dict(r)
  records = [dict(r, **_stats(r['times'])) for r in merged.values()]
  return dict(meta=runs[0]['meta'], records=records, rounds=len(runs))


def fmt_t(r):
  if r is None:
    return '-'
  return f"{r['median']:.3f} [{r['min']:.3f}-{r['max']:.3f}]"


def print_markdown(head, rows):
  """A markdown table with columns padded to their widest cell."""
  widths = [max(len(x) for x in col) for col in zip(head, *rows)]
  line = lambda cells: '| ' + ' | '.join(
      c.ljust(w) for c, w in zip(cells, widths)) + ' |'
  print(line(head))
  print('|' + '|'.join('-' * (w + 2) for w in widths) + '|')
  for row in rows:
    print(line(row))


def print_table(jax_out, ref_out):
  jrec = {(r['model'], r['channels'], r['task']): r
          for r in (jax_out or {}).get('records', [])}
  rrec = {(r['model'], r['channels'], r['task']): r
          for r in (ref_out or {}).get('records', [])}
  keys = list(jrec) + [k for k in rrec if k not in jrec]
  head = ('model', 'C', 'task', 'params', 'jaxsr median [min-max] s',
          'jax compile s', 'reference median [min-max] s', 'ratio ref/jaxsr')
  rows = []
  for k in keys:
    j, r = jrec.get(k), rrec.get(k)
    ratio = f"{r['median'] / j['median']:.2f}" if j and r else '-'
    params = (j or r)['params']
    rows.append((k[0], str(k[1]), k[2], f'{params:,}', fmt_t(j),
                 f"{j['compile_s']:.1f}" if j else '-', fmt_t(r), ratio))
  print_markdown(head, rows)


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--reps', type=int, default=5)
  p.add_argument('--warmup', type=int, default=2)
  p.add_argument('--batch', type=int, default=4)
  p.add_argument('--lr_size', type=int, default=32)
  p.add_argument('--rounds', type=int, default=1,
                 help='alternate the jax and torch workers this many times '
                 'and pool their timed reps (evens out load on a busy host)')
  p.add_argument('--threads', type=int, default=2,
                 help='torch.set_num_threads for the reference')
  p.add_argument('--models', default='msrresnet,srresnet')
  p.add_argument('--channels', default='3,1')
  p.add_argument('--tasks', default='infer,train')
  p.add_argument('--ref_python', default=None,
                 help='python of the reference venv (default: '
                 '$JAXSR_REF_VENV/bin/python or ~/.cache/jaxsr/ref-venv)')
  p.add_argument('--no_ref', action='store_true', help='skip the reference')
  p.add_argument('--huge_pages', action='store_true',
                 help='run both workers with glibc huge pages (JAXSR_HUGE_PAGES=1)')
  p.add_argument('--json', default=None, help='also write results here')
  p.add_argument('--worker', choices=('jax', 'torch'), help=argparse.SUPPRESS)
  p.add_argument('--config', help=argparse.SUPPRESS)
  args = p.parse_args()

  if args.worker:
    cfg = json.loads(args.config)
    (jax_worker if args.worker == 'jax' else torch_worker)(cfg)
    return

  cfg = dict(reps=args.reps, warmup=args.warmup, batch=args.batch,
             lr_size=args.lr_size, threads=args.threads,
             models=args.models.split(','),
             channels=[int(c) for c in args.channels.split(',')],
             tasks=args.tasks.split(','))
  ref_python = args.ref_python or os.path.join(
      os.environ.get('JAXSR_REF_VENV', DEFAULT_REF_VENV), 'bin', 'python')

  print(f'host: {platform.node()} {platform.machine()}, '
        f'{os.cpu_count()} cpus, python {platform.python_version()}')
  print(f"config: reps={cfg['reps']} warmup={cfg['warmup']} "
        f"batch={cfg['batch']} lr_size={cfg['lr_size']} "
        f"infer=1xCx{INFER_SIZE}x{INFER_SIZE} x{SCALE}", flush=True)

  env = worker_env(args.huge_pages)
  print(f"workers' GLIBC_TUNABLES: {env.get('GLIBC_TUNABLES')}", flush=True)
  use_ref = not args.no_ref
  if use_ref and not os.path.exists(ref_python):
    print(f'reference python not found at {ref_python}; '
          'run benchmarks/setup_reference.sh (or pass --ref_python)')
    use_ref = False
  jax_runs, ref_runs = [], []
  for i in range(args.rounds):
    tag = f'[round {i + 1}/{args.rounds}] ' if args.rounds > 1 else ''
    print(f'{tag}load average {os.getloadavg()[0]:.2f}', flush=True)
    jax_runs.append(run_worker(sys.executable, 'jax', cfg, env))
    if jax_runs[-1]:
      print(f"{tag}jax worker: {jax_runs[-1]['meta']}", flush=True)
    if use_ref:
      ref_runs.append(run_worker(ref_python, 'torch', cfg, env))
      if ref_runs[-1]:
        print(f"{tag}torch worker: {ref_runs[-1]['meta']}", flush=True)
  print(f'load average {os.getloadavg()[0]:.2f}')
  jax_out, ref_out = pool(jax_runs), pool(ref_runs)
  print()
  print_table(jax_out, ref_out)
  print('\nratio > 1: jaxsr is faster. jax compile s: jit lower + compile, '
        'not in the timed reps (--json also stores torch\'s first call as '
        'compile_s).')
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(dict(config=cfg, jax=jax_out, reference=ref_out), f, indent=1)
  if jax_out is None or (use_ref and ref_out is None):
    sys.exit(1)


if __name__ == '__main__':
  main()
