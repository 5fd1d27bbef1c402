"""Direct against Winograd convolutions for the compact networks on CPU, paired.

``model.conv_algorithm`` chooses how SRVGGNetCompact's and MSRResNet's
64->64 trunk convolutions run: XLA's direct convolution, or Winograd
F(4x4, 3x3) in a tile layout (``jaxsr/models/winograd.py``). Both compute the
same function with the same parameters; this script measures which is faster
where, as the default ``auto`` needs to know.

In one process (one CPU device), for each network, both variants are
compiled and then called alternately in ABBA order, so that the host's drift
falls on both alike:

  * ``infer``: the forward pass of one whole LR image (``--size``, default
    1024: a 1024² radiograph upscaled x4), as ``jaxsr upscale`` runs it;
  * ``train``: value_and_grad of the L1 loss plus an Adam update, batch 16 of
    32² LR patches (the shipped radiograph configs' 128² HR patches at x4).

Both variants have ``pack_batch=True``, as ``auto`` sets on one CPU device:
direct convolutions take the batch packed side by side (their faster form
on CPU), Winograd takes it as it is (its tiles already hold the batch).

It prints the median of each variant, the ratio direct / Winograd of the
medians and the median of the per-pair ratios, and the largest output
difference (float32 rounding).

Networks: srvgg10g (the shipped radiograph models: 64x10, grey), srvgg16
(64x16, RGB), msrresnet and srresnet (64x16 blocks, grey), rrdbnet (23
blocks, RGB; inference only at sizes this CPU finishes, e.g. --size 256).

  python benchmarks/bench_conv_algorithm.py [--models srvgg10g,srvgg16,msrresnet,srresnet] \
      [--tasks infer,train] [--size 1024] [--reps 4] [--json PATH]
"""
import argparse
import dataclasses
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxsr.models.rrdbnet import RRDBNet
from jaxsr.models.srresnet import MSRResNet, SRResNet
from jaxsr.models.srvgg import SRVGGNetCompact

# name: (class, kwargs, channels)
MODELS = {
    "srvgg10g": (SRVGGNetCompact, dict(num_feat=64, num_conv=10, num_in_ch=1, num_out_ch=1), 1),
    "srvgg16": (SRVGGNetCompact, dict(num_feat=64, num_conv=16), 3),
    "srvgg48": (SRVGGNetCompact,  # ct_x2's shape
                dict(num_feat=48, num_conv=10, num_in_ch=1, num_out_ch=1, upscale=2), 1),
    "msrresnet": (MSRResNet, dict(num_feat=64, num_block=16, num_in_ch=1, num_out_ch=1), 1),
    "srresnet": (SRResNet, dict(num_feat=64, num_block=16, num_in_ch=1, num_out_ch=1), 1),
    "rrdbnet": (RRDBNet, dict(num_feat=64, num_block=23, num_grow_ch=32), 3),
}
ALGORITHMS = ("direct", "winograd")


def _net(cls, kwargs, algo):
  packs = "pack_batch" in {f.name for f in dataclasses.fields(cls)}
  return cls(**kwargs, conv_algorithm=algo, **({"pack_batch": True} if packs else {}))


def _infer_fns(cls, kwargs, channels, size):
  x = jax.random.uniform(jax.random.PRNGKey(0), (1, size, size, channels))
  params = cls(**kwargs).init(jax.random.PRNGKey(1), x[:, :32, :32])
  fns = {}
  for algo in ALGORITHMS:
    net = _net(cls, kwargs, algo)
    fn = jax.jit(net.apply)  # SRResNet: BatchNorm's running averages (eval mode)
    fns[algo] = (lambda fn=fn: fn(params, x).block_until_ready())
  return fns


def _train_fns(cls, kwargs, channels, batch=16, lr_size=32):
  key = jax.random.PRNGKey(0)
  x = jax.random.uniform(key, (batch, lr_size, lr_size, channels))
  scale = kwargs.get("upscale", 4)
  y = jax.random.uniform(jax.random.PRNGKey(2), (batch, lr_size * scale, lr_size * scale, channels))
  variables = cls(**kwargs).init(jax.random.PRNGKey(1), x)
  params, rest = variables["params"], {k: v for k, v in variables.items() if k != "params"}
  tx = optax.adam(1e-4, b1=0.9, b2=0.99)
  fns = {}
  for algo in ALGORITHMS:
    net = _net(cls, kwargs, algo)

    def step(p, s, net=net):
      def loss_fn(q):  # SRResNet: BatchNorm in training mode, its statistics updated
        out = net.apply({"params": q, **rest}, x, train=True, mutable=list(rest) or False)
        return jnp.abs((out[0] if rest else out) - y).mean()
      loss, grads = jax.value_and_grad(loss_fn)(p)
      updates, s = tx.update(grads, s, p)
      return optax.apply_updates(p, updates), s, loss

    step = jax.jit(step)
    state = {"p": params, "s": tx.init(params)}

    def run(step=step, state=state):
      state["p"], state["s"], loss = step(state["p"], state["s"])
      loss.block_until_ready()
    fns[algo] = run
  return fns


def measure(fns, reps, warmup=2):
  """Wall seconds of ``reps`` calls of each of ``fns`` (name -> call that blocks), in
  ABBA order, after ``warmup`` untimed calls of each (the first compiles)."""
  for fn in fns.values():
    for _ in range(warmup):
      fn()
  times = {name: [] for name in fns}
  order = list(fns)
  for rep in range(reps):
    for name in (order if rep % 2 == 0 else order[::-1]):
      start = time.perf_counter()
      fns[name]()
      times[name].append(time.perf_counter() - start)
  return times


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--models", default="srvgg10g,srvgg16,msrresnet,srresnet")
  p.add_argument("--tasks", default="infer,train")
  p.add_argument("--size", type=int, default=1024, help="LR side of the inference image")
  p.add_argument("--reps", type=int, default=4)
  p.add_argument("--json")
  args = p.parse_args()
  print(f"jax {jax.__version__}, {jax.devices()[0].platform}, {len(jax.devices())} device(s)")
  results = []
  for name in args.models.split(","):
    cls, kwargs, channels = MODELS[name]
    for task in args.tasks.split(","):
      if task == "infer":
        fns = _infer_fns(cls, kwargs, channels, args.size)
        x = jax.random.uniform(jax.random.PRNGKey(3), (1, 64, 64, channels))
        params = cls(**kwargs).init(jax.random.PRNGKey(1), x)
        outs = [_net(cls, kwargs, a).apply(params, x) for a in ALGORITHMS]
        diff = float(jnp.abs(outs[0] - outs[1]).max())
      else:
        fns, diff = _train_fns(cls, kwargs, channels), float("nan")
      times = measure(fns, args.reps)
      med = {a: statistics.median(t) for a, t in times.items()}
      pairs = statistics.median(d / w for d, w in zip(times["direct"], times["winograd"]))
      row = dict(model=name, task=task, direct=med["direct"], winograd=med["winograd"],
                 ratio=med["direct"] / med["winograd"], pair_ratio=pairs, max_diff=diff,
                 times={a: list(map(float, t)) for a, t in times.items()})
      results.append(row)
      print(f"{name:<10} {task:<5} direct {med['direct']:.3f} s  winograd {med['winograd']:.3f} s  "
            f"direct/winograd {row['ratio']:.2f}x (pairs {pairs:.2f}x)"
            + ("" if np.isnan(diff) else f"  max |diff| {diff:.1e}"), flush=True)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(results, f, indent=1)


if __name__ == "__main__":
  main()
