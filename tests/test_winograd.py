"""Winograd F(4x4, 3x3) convolutions: the same numbers as direct convolution."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export, lax

from jaxsr.models import layers, winograd
from jaxsr.models.rrdbnet import RRDBNet
from jaxsr.models.srresnet import MSRResNet, SRResNet
from jaxsr.models.srvgg import SRVGGNetCompact


def _direct(x, kernel, bias=None):
  y = lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)),
                               dimension_numbers=("NHWC", "HWIO", "NHWC"),
                               precision=lax.Precision.HIGHEST)
  return y if bias is None else y + bias


def _random(shape, seed):
  return jax.random.normal(jax.random.PRNGKey(seed), shape)


def test_tile_layout_round_trips():
  x = _random((2, 8, 12, 3), 0)
  t = winograd.to_tiles(x)
  assert t.shape == (4, 4, 2, 2, 3, 3)
  np.testing.assert_array_equal(t[1, 2, 1, 0, 2], x[1, 1, 4 * 2 + 2])
  np.testing.assert_array_equal(winograd.from_tiles(t), x)


@pytest.mark.slow
@pytest.mark.parametrize("shape,out_ch", [((1, 4, 4, 1), 1), ((2, 8, 12, 5), 7),
                                          ((3, 16, 8, 32), 16)])
def test_conv3x3_equals_direct_convolution(shape, out_ch):
  x = _random(shape, 1)
  kernel = _random((3, 3, shape[-1], out_ch), 2) * 0.3
  bias = _random((out_ch,), 3)
  ref = _direct(x, kernel, bias)
  np.testing.assert_allclose(winograd.conv3x3(x, kernel, bias), ref,
                             atol=2e-5 * float(jnp.abs(ref).max()))


@pytest.mark.slow
def test_conv3x3_gradients_equal_direct_convolution_gradients():
  x = _random((2, 8, 12, 6), 4)
  kernel = _random((3, 3, 6, 5), 5) * 0.3
  bias = _random((5,), 6)
  probe = _random((2, 8, 12, 5), 7)
  loss = lambda conv: lambda x, k, b: jnp.sum(jnp.sin(conv(x, k, b)) * probe)
  got = jax.grad(loss(winograd.conv3x3), argnums=(0, 1, 2))(x, kernel, bias)
  want = jax.grad(loss(_direct), argnums=(0, 1, 2))(x, kernel, bias)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, atol=2e-5 * float(jnp.abs(w).max()))


_GRID = (2, 3, 2)


@pytest.mark.parametrize("transform,forward_only,shape", [
    (winograd.input_transform, winograd.input_transform.fun, (4, 4, *_GRID, 3)),
    (lambda m: winograd.output_transform(m, _GRID),
     lambda m: winograd.output_transform.fun(m, _GRID), (36, 12, 3)),
], ids=["input", "output"])
@pytest.mark.slow
def test_hand_written_backward_passes_equal_autodiff(transform, forward_only, shape):
  # The transforms are linear: their VJP must be the transpose that JAX
  # derives from the forward computation itself.
  x = _random(shape, 8)
  out, vjp = jax.vjp(transform, x)
  cotangent = _random(out.shape, 9)
  (want,) = jax.linear_transpose(forward_only, x)(cotangent)
  (got,) = vjp(cotangent)
  np.testing.assert_allclose(got, want, atol=1e-5 * float(jnp.abs(want).max()))


def test_dense_conv_equals_the_product_of_the_concatenation_and_its_gradient():
  # dense_conv sums per-piece products instead of building the concatenation;
  # value and hand-written VJP must be those of the concatenated product.
  pieces = tuple(_random((36, 10, c), 20 + i) for i, c in enumerate((6, 3, 3)))
  kernel = _random((3, 3, 12, 5), 30) * 0.3
  concat = lambda ps, k: winograd.multiply(jnp.concatenate(ps, -1), winograd.kernel_transform(k))
  want, want_vjp = jax.vjp(concat, pieces, kernel)
  got, got_vjp = jax.vjp(winograd.dense_conv, pieces, kernel)
  np.testing.assert_allclose(got, want, atol=1e-5 * float(jnp.abs(want).max()))
  cotangent = _random(want.shape, 31)
  for g, w in zip(jax.tree.leaves(got_vjp(cotangent)), jax.tree.leaves(want_vjp(cotangent))):
    assert g.shape == w.shape
    np.testing.assert_allclose(g, w, atol=1e-5 * float(jnp.abs(w).max()))


def test_use_winograd_where_asked_and_the_map_allows():
  assert layers.use_winograd("winograd", (2, 8, 12, 3))
  assert not layers.use_winograd("direct", (2, 8, 12, 3))
  # Maps that are not whole 4x4 tiles fall back to direct convolutions.
  assert not layers.use_winograd("winograd", (2, 6, 12, 3))
  assert not layers.use_winograd("winograd", (2, 8, 10, 3))
  with pytest.raises(ValueError, match="conv_algorithm"):
    layers.use_winograd("fft", (2, 8, 12, 3))
  batch, = export.symbolic_shape("b")
  assert not layers.use_winograd("winograd", (batch, 8, 12, 3))  # jax.export: portable graph
  assert not layers.use_winograd("auto", (batch, 8, 12, 3))
  # 'auto' stops at the network's map size; 'winograd' does not.
  assert layers.use_winograd("auto", (2, 8, 12, 3), auto_max_pixels=2 * 8 * 12)
  assert not layers.use_winograd("auto", (2, 8, 12, 3), auto_max_pixels=2 * 8 * 12 - 1)
  assert layers.use_winograd("winograd", (2, 8, 12, 3), auto_max_pixels=1)
  assert layers.use_winograd("auto", (64, 1024, 1024, 3))  # no limit: RRDBNet's
  # bfloat16 keeps direct convolutions under 'auto'.
  assert not layers.use_winograd("auto", (2, 8, 12, 3), dtype=jnp.bfloat16)
  assert layers.use_winograd("winograd", (2, 8, 12, 3), dtype=jnp.bfloat16)


@pytest.mark.slow
def test_rrdbnet_winograd_on_a_map_of_odd_size_runs_direct_convolutions():
  kwargs = dict(num_in_ch=1, num_out_ch=1, num_feat=8, num_block=1, num_grow_ch=4)
  x = jnp.asarray(np.random.default_rng(0).random((1, 10, 13, 1), np.float32))
  params = RRDBNet(**kwargs).init(jax.random.PRNGKey(0), x)
  np.testing.assert_array_equal(RRDBNet(conv_algorithm="winograd", **kwargs).apply(params, x),
                                RRDBNet(**kwargs).apply(params, x))


@pytest.mark.slow
def test_rrdbnet_winograd_trunk_computes_what_direct_convolutions_compute(monkeypatch):
  # x1 and x4 against BasicSR itself: tests/test_parity.py.
  scale, size = 4, (12, 20)
  calls = []
  transform = winograd.input_transform
  monkeypatch.setattr(winograd, "input_transform", lambda t: calls.append(t.shape) or transform(t))
  kwargs = dict(num_in_ch=3, num_out_ch=3, upscale=scale, num_feat=16, num_grow_ch=8, num_block=2)
  direct = RRDBNet(conv_algorithm="direct", **kwargs)
  wino = RRDBNet(conv_algorithm="winograd", **kwargs)
  x = jax.random.uniform(jax.random.PRNGKey(1), (2, *size, 3))
  params = direct.init(jax.random.PRNGKey(0), x)
  # Same parameter names, shapes and init values on both paths.
  wino_params = wino.init(jax.random.PRNGKey(0), x)
  assert jax.tree.structure(wino_params) == jax.tree.structure(params)
  for a, b in zip(jax.tree.leaves(wino_params), jax.tree.leaves(params)):
    np.testing.assert_array_equal(a, b)
  # Larger weights than the 0.1-scaled init, so that the trunk matters.
  params = jax.tree.map(lambda p: p * 4.0, params)
  calls.clear()
  y = wino.apply(params, x)
  assert calls, "the Winograd path was not taken"
  ref = direct.apply(params, x)
  np.testing.assert_allclose(y, ref, atol=1e-5 * float(jnp.abs(ref).max()))
  loss = lambda model: lambda p: jnp.mean(jnp.abs(model.apply(p, x) - 0.5))
  grads, ref_grads = jax.grad(loss(wino))(params), jax.grad(loss(direct))(params)
  for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
    np.testing.assert_allclose(g, r, atol=1e-4 * float(jnp.abs(r).max()) + 1e-9)


@pytest.mark.slow
def test_rrdbnet_built_for_one_cpu_device_runs_winograd_where_tiles_fit(monkeypatch):
  from jaxsr import models  # pylint: disable=import-outside-toplevel
  calls = []
  transform = winograd.input_transform
  monkeypatch.setattr(winograd, "input_transform", lambda t: calls.append(t.shape) or transform(t))
  cfg = dict(name="rrdbnet", num_feat=8, num_grow_ch=4, num_block=1)
  net = models.build_generator(cfg, 1, 4, jax.devices("cpu")[:1])
  params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)))
  net.apply(params, jnp.zeros((1, 8, 8, 1)))
  assert calls
  calls.clear()
  y = net.apply(params, jnp.zeros((1, 9, 7, 1)))  # not whole tiles: direct convs
  assert not calls and y.shape == (1, 36, 28, 1)


def test_rrdbnet_without_blocks_matches_direct_convolutions():
  # num_block=0 is a valid BasicSR network (conv_body on conv_first's output).
  kwargs = dict(num_in_ch=1, num_out_ch=1, upscale=4, num_feat=8, num_grow_ch=4, num_block=0)
  x = jax.random.uniform(jax.random.PRNGKey(1), (1, 8, 8, 1))
  params = RRDBNet(conv_algorithm="direct", **kwargs).init(jax.random.PRNGKey(0), x)
  y = RRDBNet(conv_algorithm="winograd", **kwargs).apply(params, x)
  ref = RRDBNet(conv_algorithm="direct", **kwargs).apply(params, x)
  np.testing.assert_allclose(y, ref, atol=1e-5 * float(jnp.abs(ref).max()))


_COMPACT = [
    (SRVGGNetCompact, dict(num_in_ch=1, num_out_ch=1, num_feat=8, num_conv=3, init_scale=1.0)),
    (MSRResNet, dict(num_in_ch=1, num_out_ch=1, num_feat=8, num_block=2)),
    (SRResNet, dict(num_in_ch=1, num_out_ch=1, num_feat=8, num_block=2)),
]


@pytest.mark.parametrize("cls,kwargs", _COMPACT, ids=lambda c: getattr(c, "__name__", ""))
def test_compact_networks_winograd_trunk_computes_what_direct_convolutions_compute(
    cls, kwargs, monkeypatch):
  """SRVGGNetCompact, MSRResNet and SRResNet: same parameters, outputs and gradients
  (and SRResNet's batch statistics) on both paths; the Winograd path does run."""
  calls = []
  transform = winograd.input_transform
  monkeypatch.setattr(winograd, "input_transform", lambda t: calls.append(t.shape) or transform(t))
  x = jax.random.uniform(jax.random.PRNGKey(1), (2, 12, 16, 1))
  direct, wino = cls(conv_algorithm="direct", **kwargs), cls(conv_algorithm="winograd", **kwargs)
  variables = direct.init(jax.random.PRNGKey(0), x)
  assert jax.tree.map(jnp.shape, wino.init(jax.random.PRNGKey(0), x)) == jax.tree.map(
      jnp.shape, variables)
  calls.clear()
  np.testing.assert_array_equal(direct.apply(variables, x), direct.apply(variables, x))
  assert not calls
  want = direct.apply(variables, x)
  np.testing.assert_allclose(wino.apply(variables, x), want, atol=1e-5 * float(jnp.abs(want).max()))
  assert calls

  def loss(net, params):
    out = net.apply({**variables, "params": params}, x, train=True,
                    mutable=["batch_stats"] if "batch_stats" in variables else False)
    out, stats = out if isinstance(out, tuple) else (out, {})
    return (out ** 2).mean(), stats

  (want, want_stats), want_grads = jax.value_and_grad(
      lambda p: loss(direct, p), has_aux=True)(variables["params"])
  (got, got_stats), got_grads = jax.value_and_grad(
      lambda p: loss(wino, p), has_aux=True)(variables["params"])
  np.testing.assert_allclose(got, want, rtol=1e-5)
  for g, w in zip(jax.tree.leaves(got_grads), jax.tree.leaves(want_grads)):
    np.testing.assert_allclose(g, w, atol=1e-5 * float(jnp.abs(w).max()) + 1e-8)
  for g, w in zip(jax.tree.leaves(got_stats), jax.tree.leaves(want_stats)):
    np.testing.assert_allclose(g, w, atol=1e-6)


@pytest.mark.parametrize("cls,kwargs", _COMPACT, ids=lambda c: getattr(c, "__name__", ""))
def test_compact_networks_auto_keeps_direct_convolutions_on_whole_images(cls, kwargs):
  """'auto' takes Winograd for training patches only: on large maps direct is faster
  (benchmarks/bench_conv_algorithm.py)."""
  net, patches = cls(conv_algorithm="auto", **kwargs), jnp.zeros((16, 32, 32, 1))
  image = jax.ShapeDtypeStruct((1, 1024, 1024, 1), jnp.float32)
  assert net.use_winograd(patches) and not net.use_winograd(image)
  assert not net.use_winograd(patches.astype(jnp.bfloat16))
  assert cls(conv_algorithm="winograd", **kwargs).use_winograd(image)


def test_narrow_compact_networks_stop_winograd_at_smaller_maps():
  """A 48-feature trunk (ct_x2's) loses to direct convolutions on a 256² CT
  slice, where the 64-feature one still gains (bench_conv_algorithm.py)."""
  slice_ = jax.ShapeDtypeStruct((1, 256, 256, 1), jnp.float32)
  patches = jax.ShapeDtypeStruct((16, 32, 32, 1), jnp.float32)
  narrow = SRVGGNetCompact(1, 1, upscale=2, num_feat=48, num_conv=10, conv_algorithm="auto")
  wide = SRVGGNetCompact(1, 1, upscale=2, num_feat=64, num_conv=10, conv_algorithm="auto")
  assert narrow.use_winograd(patches) and not narrow.use_winograd(slice_)
  assert wide.use_winograd(patches) and wide.use_winograd(slice_)
