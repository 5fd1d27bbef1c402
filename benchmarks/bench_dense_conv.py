"""RRDBNet's Winograd dense blocks: per-piece products against one concatenation, paired.

A dense block's conv reads the Winograd transforms of all earlier features.
``winograd.dense_conv`` sums each piece's product with its rows of the
transformed kernel; the form it replaced concatenated the pieces first and
took one product. Both compute the same numbers (float32 rounding apart).
This script keeps the concatenating form here, as the baseline, and times
the whole RRDBNet (Winograd trunk) with each, in one process on one CPU
device:

  * ``infer``: the forward pass of one RGB LR image of ``--size``;
  * ``train``: value_and_grad of L1 plus an Adam update, ``--batch`` 32² LR
    patches.

Both variants are compiled first, then called in ABBA order. Printed: the
median of each, concatenated / per-piece (> 1: the shipped form is faster),
and the largest difference of the outputs (infer) or updated parameters
(train; Adam's first step amplifies rounding-level gradient differences to
about its learning rate).

  python benchmarks/bench_dense_conv.py [--tasks infer,train] [--size 256] [--batch 16] \\
      [--blocks 23] [--reps 4] [--json PATH]
"""
import argparse
import json
import pathlib
import statistics
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxsr.models import winograd
from jaxsr.models.rrdbnet import RRDBNet

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bench_conv_algorithm  # pylint: disable=wrong-import-position


@jax.custom_vjp
def concatenated_dense_conv(pieces, kernel):
  """The baseline: one product over the concatenated pieces."""
  return winograd.multiply(jnp.concatenate(pieces, axis=-1), winograd.kernel_transform(kernel))


def _concatenated_fwd(pieces, kernel):
  return concatenated_dense_conv(pieces, kernel), (pieces, kernel)


def _concatenated_bwd(residuals, g):
  pieces, kernel = residuals
  hi = jax.lax.Precision.HIGHEST
  dv = jnp.einsum("ptd,pcd->ptc", g, winograd.kernel_transform(kernel), precision=hi)
  du = jnp.einsum("ptc,ptd->pdc", jnp.concatenate(pieces, axis=-1), g, precision=hi)
  splits = np.cumsum([p.shape[-1] for p in pieces])[:-1]
  return (tuple(jnp.split(dv, splits, axis=-1)),
          winograd.kernel_transform_transpose(du.swapaxes(1, 2)))


concatenated_dense_conv.defvjp(_concatenated_fwd, _concatenated_bwd)
VARIANTS = {"concatenated": concatenated_dense_conv, "per_piece": winograd.dense_conv}


def build(task, net, params, x, y, dense_conv):
  """A compiled call of ``task`` whose trunk uses ``dense_conv``."""
  shipped = winograd.dense_conv
  winograd.dense_conv = dense_conv
  jax.clear_caches()  # The trunk's traced scans would otherwise be reused.
  try:
    if task == "infer":
      compiled = jax.jit(net.apply).lower(params, x).compile()
      return lambda: compiled(params, x)
    opt = optax.adam(1e-4)

    def step(p, state):
      loss, grads = jax.value_and_grad(lambda p: jnp.mean(jnp.abs(net.apply(p, x) - y)))(p)
      updates, state = opt.update(grads, state, p)
      return optax.apply_updates(p, updates), state, loss

    state = opt.init(params)
    compiled = jax.jit(step).lower(params, state).compile()
    return lambda: compiled(params, state)
  finally:
    winograd.dense_conv = shipped


def run(task, size, batch, blocks, reps):
  net = RRDBNet(num_in_ch=3, num_out_ch=3, num_block=blocks, conv_algorithm="winograd",
                pack_batch=True)
  rng = np.random.default_rng(0)
  shape = (1, size, size, 3) if task == "infer" else (batch, 32, 32, 3)
  x = jnp.asarray(rng.random(shape), jnp.float32)
  y = jnp.asarray(rng.random((shape[0], 4 * shape[1], 4 * shape[2], 3)), jnp.float32)
  params = jax.jit(net.init)(jax.random.key(0), x[:1, :16, :16])
  calls = {name: build(task, net, params, x, y, fn) for name, fn in VARIANTS.items()}
  outs = {name: jax.block_until_ready(call()) for name, call in calls.items()}
  diff = max(float(jnp.abs(a - b).max()) for a, b in zip(
      jax.tree.leaves(outs["concatenated"]), jax.tree.leaves(outs["per_piece"])))
  # The calls above were the warm-up.
  times = bench_conv_algorithm.measure(
      {name: lambda c=call: jax.block_until_ready(c()) for name, call in calls.items()},
      reps, warmup=0)
  medians = {name: statistics.median(t) for name, t in times.items()}
  return dict(task=task, size=size if task == "infer" else 32, batch=shape[0], blocks=blocks,
              times=times, **medians, ratio=medians["concatenated"] / medians["per_piece"],
              max_diff=diff)


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--tasks", default="infer,train")
  p.add_argument("--size", type=int, default=256, help="infer: LR side")
  p.add_argument("--batch", type=int, default=16, help="train: 32x32 LR patches per step")
  p.add_argument("--blocks", type=int, default=23, help="RRDB blocks")
  p.add_argument("--reps", type=int, default=4)
  p.add_argument("--json", default=None)
  args = p.parse_args()
  print(f"jax {jax.__version__}, {jax.default_backend()}, {jax.device_count()} device(s)")
  rows = []
  for task in args.tasks.split(","):
    r = run(task, args.size, args.batch, args.blocks, args.reps)
    rows.append(r)
    what = f"{r['size']}²" if task == "infer" else f"batch {r['batch']} of 32²"
    print(f"{task} {what}, {r['blocks']} blocks: concatenated {r['concatenated']:.3f} s  "
          f"per-piece {r['per_piece']:.3f} s  concatenated/per-piece {r['ratio']:.2f}x  "
          f"max |diff| {r['max_diff']:.1e}")
  if args.json:
    with open(args.json, "w", encoding="utf-8") as f:
      json.dump(rows, f, indent=1)


if __name__ == "__main__":
  main()
