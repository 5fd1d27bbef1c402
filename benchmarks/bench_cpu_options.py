"""Paired A/B benchmarks of two CPU options of jaxsr's train step.

Each task runs its two variants in one invocation, alternated, so that the
host's drift falls on both alike. Workers are subprocesses of this file on
one CPU device (XLA_FLAGS unset); the worker machinery is bench_srresnet.py's.

Tasks:
  huge_pages  the same jax worker run alternately with and without
              GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (what jaxsr/huge_pages.py
              restarts the entry points with), ``--rounds`` times each, the
              order swapped every round. Each worker compiles the RRDBNet
              train step, runs ``--warmup`` steps, then ``--reps`` timed
              ones, with getrusage(RUSAGE_SELF) around them (minor page
              faults, system/user time per step); the timed steps of all
              rounds are pooled per variant. Verdict: does the tunable cut
              the median step by at least ``--threshold`` (5%)?
  barrier     jax.lax.optimization_barrier on the gradients before the Adam
              update (which jaxsr's train step once had), on against off:
              both compiled in one worker, then called alternately (ABBA
              order), ``--barrier_reps`` calls each after ``--warmup`` each.

Train step (a minimal copy of steps.py's generator update, not the trainer):
value_and_grad of the L1 loss, [optimization_barrier on the grads], optax
Adam(1e-4, b1 0.9, b2 0.99), optax.apply_updates; jit with params and
optimizer state donated. Networks (``--models`` for the barrier task):
  rrdbnet    RRDBNet x4, ``--blocks`` (23) blocks, 64 features, growth 32,
             Winograd trunk; batch 4, LR 3 x 32 x 32 -> HR 128 x 128
             (the huge_pages task always uses this one).
  srvgg      SRVGGNetCompact x4, 64 features, 16 convs; batch 16, 1 channel.
  msrresnet  MSRResNet x4, 64 features, 16 blocks; batch 16, 1 channel.
All with pack_batch=True.

Usage:
  python benchmarks/bench_cpu_options.py [--tasks huge_pages,barrier] \
      [--rounds 3 --reps 4 --warmup 1 --barrier_reps 8 --blocks 23 \
       --models rrdbnet,srvgg,msrresnet --json PATH]
"""

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# pylint: disable=wrong-import-position
from bench_srresnet import REPO, _emit, _stats, fmt_t, print_markdown
from bench_srresnet import run_worker

SCALE = 4
TUNABLE = 'glibc.malloc.hugetlb'
# Barrier verdicts: "helps"/"hurts" need both ratios beyond 1 -+ this.
BARRIER_BAND = 0.03
# name: (channels, batch); LR 32 x 32 for all.
MODELS = dict(rrdbnet=(3, 4), srvgg=(1, 16), msrresnet=(1, 16))
LR_SIZE = 32


def variant_env(huge_pages):
  """The worker environment: one CPU device, and glibc's huge pages on or
  off whatever this process was started with."""
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  kept = [t for t in env.pop('GLIBC_TUNABLES', '').split(':')
          if t and not t.startswith(TUNABLE + '=')]
  if huge_pages:
    kept.append(TUNABLE + '=1')
  if kept:
    env['GLIBC_TUNABLES'] = ':'.join(kept)
  return env


# --------------------------------------------------------------------------
# jax workers


def _build(name, blocks):
  """(network, input channels, batch) for a --models name."""
  from jaxsr.models import MSRResNet, RRDBNet, SRVGGNetCompact
  c, batch = MODELS[name]
  if name == 'rrdbnet':
    net = RRDBNet(num_in_ch=c, num_out_ch=c, upscale=SCALE, num_feat=64,
                  num_block=blocks, num_grow_ch=32, conv_algorithm='winograd',
                  pack_batch=True)
  elif name == 'srvgg':
    net = SRVGGNetCompact(num_in_ch=c, num_out_ch=c, upscale=SCALE,
                          num_feat=64, num_conv=16, pack_batch=True)
  else:
    net = MSRResNet(num_in_ch=c, num_out_ch=c, num_feat=64, num_block=16,
                    upscale=SCALE, pack_batch=True)
  return net, c, batch


def _setup(name, blocks, barriers):
  """Builds a network's data and one compiled train step per barrier flag.

  Returns (info, {barrier: runner}); each runner owns its (donated) state.
  """
  import jax
  import jax.numpy as jnp
  import optax

  net, c, batch = _build(name, blocks)
  k_init, k_lr, k_hr = jax.random.split(jax.random.PRNGKey(0), 3)
  lr = jax.random.uniform(k_lr, (batch, LR_SIZE, LR_SIZE, c))
  hr = jax.random.uniform(k_hr, (batch, LR_SIZE * SCALE, LR_SIZE * SCALE, c))
  params = net.init(k_init, lr[:1])['params']
  tx = optax.adam(1e-4, b1=0.9, b2=0.99)
  info = dict(model=name, shape='x'.join(map(str, lr.shape)),
              params=sum(a.size for a in jax.tree_util.tree_leaves(params)),
              compile_s={})
  runners = {}
  for barrier in barriers:

    def train_step(params, opt_state, lr, hr, barrier=barrier):
      def loss_fn(p):
        return jnp.mean(jnp.abs(net.apply({'params': p}, lr) - hr))

      loss, grads = jax.value_and_grad(loss_fn)(params)
      if barrier:
        grads = jax.lax.optimization_barrier(grads)
      updates, opt_state = tx.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), opt_state, loss

    # Each variant gets its own copy: the step donates what it is given.
    p = jax.tree_util.tree_map(jnp.copy, params)
    state = [p, tx.init(p)]
    t0 = time.perf_counter()
    fn = jax.jit(train_step, donate_argnums=(0, 1)).lower(
        *state, lr, hr).compile()
    info['compile_s'][_vname(barrier)] = time.perf_counter() - t0

    def run(fn=fn, state=state):
      out = fn(*state, lr, hr)
      state[:] = out[:2]
      out[2].block_until_ready()

    runners[barrier] = run
  return info, runners


def _vname(barrier):
  return 'with' if barrier else 'without'


def _meta():
  import jax
  return dict(jax=jax.__version__, backend=jax.default_backend(),
              devices=jax.device_count(), pid=os.getpid())


def huge_pages_worker(cfg):
  """One variant's round: RRDBNet train step, timed reps, getrusage."""
  sys.path.insert(0, REPO)
  info, runners = _setup('rrdbnet', cfg['blocks'], [cfg['barrier']])
  run = runners[cfg['barrier']]
  for _ in range(cfg['warmup']):
    run()
  times = []
  r0 = resource.getrusage(resource.RUSAGE_SELF)
  for _ in range(cfg['reps']):
    t0 = time.perf_counter()
    run()
    times.append(time.perf_counter() - t0)
  r1 = resource.getrusage(resource.RUSAGE_SELF)
  n = len(times)
  record = dict(info, compile_s=info['compile_s'][_vname(cfg['barrier'])],
                minflt_per_step=(r1.ru_minflt - r0.ru_minflt) / n,
                majflt_per_step=(r1.ru_majflt - r0.ru_majflt) / n,
                stime_per_step=(r1.ru_stime - r0.ru_stime) / n,
                utime_per_step=(r1.ru_utime - r0.ru_utime) / n,
                **_stats(times))
  _emit([record], _meta())


def barrier_worker(cfg):
  """Per model: both variants compiled here, then called alternately."""
  sys.path.insert(0, REPO)
  records = []
  for name in cfg['models']:
    info, runners = _setup(name, cfg['blocks'], [True, False])
    for barrier in (True, False):
      for _ in range(cfg['warmup']):
        runners[barrier]()
    times = {True: [], False: []}
    faults = {True: 0, False: 0}
    for i in range(cfg['reps']):
      # ABBA: with/without, then without/with, ... (cancels linear drift).
      for barrier in ((True, False) if i % 2 == 0 else (False, True)):
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        runners[barrier]()
        times[barrier].append(time.perf_counter() - t0)
        faults[barrier] += resource.getrusage(
            resource.RUSAGE_SELF).ru_minflt - f0
    rec = dict(info)
    for barrier in (True, False):
      rec[_vname(barrier)] = dict(
          _stats(times[barrier]),
          minflt_per_step=faults[barrier] / len(times[barrier]))
    records.append(rec)
  _emit(records, _meta())


# --------------------------------------------------------------------------
# driver


def _pool_variant(runs):
  """Pools one variant's rounds: all timed steps, mean rusage per step."""
  times = [t for r in runs for t in r['times']]
  mean = lambda k: statistics.fmean(r[k] for r in runs)
  return dict(_stats(times),
              glibc_tunables=[r['glibc_tunables'] for r in runs],
              minflt_per_step=mean('minflt_per_step'),
              majflt_per_step=mean('majflt_per_step'),
              stime_per_step=mean('stime_per_step'),
              utime_per_step=mean('utime_per_step'),
              compile_s=min(r['compile_s'] for r in runs),
              shape=runs[0]['shape'], params=runs[0]['params'])


def run_huge_pages(args, cfg):
  """Alternates the on/off workers ``--rounds`` times; None if one failed."""
  envs = {'on': variant_env(True), 'off': variant_env(False)}
  for k, env in envs.items():
    print(f"huge pages {k}: GLIBC_TUNABLES={env.get('GLIBC_TUNABLES')}",
          flush=True)
  runs = {'on': [], 'off': []}
  rounds = []
  for i in range(args.rounds):
    order = ('on', 'off') if i % 2 == 0 else ('off', 'on')
    row = dict(round=i + 1, order=list(order))
    for k in order:
      tag = f'[huge pages round {i + 1}/{args.rounds}, {k}]'
      print(f'{tag} load average {os.getloadavg()[0]:.2f}', flush=True)
      out = run_worker(sys.executable, 'huge_pages', cfg, envs[k], __file__)
      if out is None:
        return None
      rec = dict(out['records'][0],
                 glibc_tunables=out['meta']['glibc_tunables'])
      runs[k].append(rec)
      row[k] = dict(median=rec['median'], minflt_per_step=rec['minflt_per_step'],
                    stime_per_step=rec['stime_per_step'],
                    glibc_tunables=rec['glibc_tunables'],
                    wall_s=out['meta']['wall_s'])
      print(f"{tag} median {rec['median']:.3f} s, "
            f"{rec['minflt_per_step']:.0f} faults/step, "
            f"sys {rec['stime_per_step']:.3f} s/step, worker GLIBC_TUNABLES="
            f"{rec['glibc_tunables']}, {out['meta']['wall_s']} s", flush=True)
    rounds.append(row)
  variants = {k: _pool_variant(v) for k, v in runs.items()}
  ratio = variants['on']['median'] / variants['off']['median']
  verdict = ('yes' if 1 - ratio >= args.threshold else 'no')
  return dict(variants=variants, rounds=rounds, ratio=ratio, gain=1 - ratio,
              threshold=args.threshold, verdict=verdict,
              meta=dict(out['meta'], glibc_tunables=None))


def print_huge_pages(res):
  head = ('huge pages', 'GLIBC_TUNABLES (worker)', 'steps',
          'median [min-max] s', 'minor faults/step', 'sys s/step',
          'user s/step', 'compile s')
  rows = []
  for k in ('on', 'off'):
    v = res['variants'][k]
    rows.append((k, str(v['glibc_tunables'][0]), str(v['n']), fmt_t(v),
                 f"{v['minflt_per_step']:,.0f}", f"{v['stime_per_step']:.3f}",
                 f"{v['utime_per_step']:.3f}", f"{v['compile_s']:.1f}"))
  print_markdown(head, rows)
  print()
  print_markdown(('round', 'order', 'on median s', 'off median s'),
                 [(str(r['round']), '/'.join(r['order']),
                   f"{r['on']['median']:.3f}", f"{r['off']['median']:.3f}")
                  for r in res['rounds']])
  print(f"\nhuge pages: ratio on/off of medians {res['ratio']:.3f} "
        f"(gain {100 * res['gain']:.1f}%); >= {100 * res['threshold']:.0f}% "
        f"gain: {res['verdict']}")


def barrier_verdict(ratio, paired_ratio):
  """'helps'/'hurts' only where the ratio of medians and the median paired
  ratio agree beyond the band; on a loaded host they often do not."""
  if max(ratio, paired_ratio) <= 1 - BARRIER_BAND:
    return 'helps'
  if min(ratio, paired_ratio) >= 1 + BARRIER_BAND:
    return 'hurts'
  return f'no clear difference (band {100 * BARRIER_BAND:.0f}%)'


def run_barrier(args, cfg):
  env = variant_env(True)
  print(f"[barrier] load average {os.getloadavg()[0]:.2f}; "
        f"GLIBC_TUNABLES={env.get('GLIBC_TUNABLES')}", flush=True)
  out = run_worker(sys.executable, 'barrier', cfg, env, __file__)
  if out is None:
    return None
  for r in out['records']:
    w, wo = r['with'], r['without']
    r['ratio'] = w['median'] / wo['median']
    pairs = [a / b for a, b in zip(w['times'], wo['times'])]
    r['paired_ratio'] = statistics.median(pairs)
    r['verdict'] = barrier_verdict(r['ratio'], r['paired_ratio'])
  print(f"[barrier] worker: {out['meta']}", flush=True)
  return out


def print_barrier(res):
  head = ('model', 'LR batch', 'params', 'calls', 'with barrier s',
          'without s', 'ratio with/without', 'paired ratio', 'verdict')
  rows = [(r['model'], r['shape'], f"{r['params']:,}", str(r['with']['n']),
           fmt_t(r['with']), fmt_t(r['without']), f"{r['ratio']:.3f}",
           f"{r['paired_ratio']:.3f}", r['verdict'])
          for r in res['records']]
  print_markdown(head, rows)
  print('\nratio < 1: the barrier is faster. paired ratio: median of the '
        'per-pair ratios of alternating calls.')


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--tasks', default='huge_pages,barrier')
  p.add_argument('--rounds', type=int, default=3,
                 help='huge_pages: workers per variant, alternated')
  p.add_argument('--reps', type=int, default=4,
                 help='huge_pages: timed steps per worker')
  p.add_argument('--warmup', type=int, default=1,
                 help='untimed steps per worker (barrier: per variant)')
  p.add_argument('--barrier_reps', type=int, default=8,
                 help='barrier: alternating timed calls per variant')
  p.add_argument('--blocks', type=int, default=23, help='RRDBNet blocks')
  p.add_argument('--models', default='rrdbnet,srvgg,msrresnet',
                 help='barrier: networks (%s)' % ','.join(MODELS))
  p.add_argument('--threshold', type=float, default=0.05,
                 help='huge_pages: median gain that counts as worth it')
  p.add_argument('--barrier_in_huge_pages', action='store_true',
                 help='huge_pages: time the step with the gradient barrier '
                 '(default: without, as jaxsr/training/steps.py now runs)')
  p.add_argument('--json', default=None, help='also write results here')
  p.add_argument('--worker', choices=('huge_pages', 'barrier'),
                 help=argparse.SUPPRESS)
  p.add_argument('--config', help=argparse.SUPPRESS)
  args = p.parse_args()

  if args.worker:
    cfg = json.loads(args.config)
    (huge_pages_worker if args.worker == 'huge_pages' else barrier_worker)(cfg)
    return

  tasks = args.tasks.split(',')
  models = [m for m in args.models.split(',') if m]
  unknown = [t for t in tasks if t not in ('huge_pages', 'barrier')]
  unknown += [m for m in models if m not in MODELS]
  if unknown:
    p.error(f'unknown task or model: {unknown}')
  print(f'host: {platform.node()} {platform.machine()}, '
        f'{os.cpu_count()} cpus, python {platform.python_version()}, '
        f'glibc {platform.libc_ver()[1]}')
  print(f'config: tasks={tasks} rounds={args.rounds} reps={args.reps} '
        f'warmup={args.warmup} barrier_reps={args.barrier_reps} '
        f'blocks={args.blocks} models={models}', flush=True)
  load = dict(before=os.getloadavg())
  result = dict(config=vars(args), host=dict(
      node=platform.node(), cpus=os.cpu_count(),
      python=platform.python_version(), glibc=platform.libc_ver()[1]))
  failed = False
  if 'huge_pages' in tasks:
    cfg = dict(blocks=args.blocks, reps=args.reps, warmup=args.warmup,
               barrier=args.barrier_in_huge_pages)
    result['huge_pages'] = run_huge_pages(args, cfg)
    failed |= result['huge_pages'] is None
  if 'barrier' in tasks:
    cfg = dict(blocks=args.blocks, reps=args.barrier_reps,
               warmup=args.warmup, models=models)
    result['barrier'] = run_barrier(args, cfg)
    failed |= result['barrier'] is None
  load['after'] = os.getloadavg()
  result['load_average'] = load
  print(f"load average (1/5/15 min) before {load['before']}, "
        f"after {load['after']}")
  if result.get('huge_pages'):
    print()
    print_huge_pages(result['huge_pages'])
  if result.get('barrier'):
    print()
    print_barrier(result['barrier'])
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(result, f, indent=1)
  if failed:
    sys.exit(1)


if __name__ == '__main__':
  main()
