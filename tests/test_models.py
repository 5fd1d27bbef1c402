"""Shapes, parameter counts and layout conventions of the networks."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsr.models import layers
from jaxsr.models.discriminators import VGGStyleDiscriminator
from jaxsr.models.srresnet import MSRResNet, SRResNet
from jaxsr.models import vgg


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def test_pixel_shuffle_matches_pytorch_channel_order():
  # PyTorch: out[c, h*r+i, w*r+j] = in[c*r*r + i*r + j, h, w].
  n, h, w, c, r = 2, 3, 4, 5, 2
  x = np.random.default_rng(0).normal(size=(n, h, w, c * r * r)).astype(np.float32)
  out = np.asarray(layers.pixel_shuffle(jnp.asarray(x), r))
  assert out.shape == (n, h * r, w * r, c)
  for ch in range(c):
    for i in range(r):
      for j in range(r):
        np.testing.assert_array_equal(out[:, i::r, j::r, ch], x[..., ch * r * r + i * r + j])


def test_pixel_unshuffle_inverts_shuffle():
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 8, 12, 3)).astype(np.float32))
  for r in (2, 4):
    down = layers.pixel_unshuffle(x, r)
    assert down.shape == (2, 8 // r, 12 // r, 3 * r * r)
    np.testing.assert_array_equal(layers.pixel_shuffle(down, r), x)


@pytest.mark.parametrize("channels,expected", [(3, 1_517_571), (1, 1_515_265)])
def test_msrresnet_parameter_count_matches_basicsr(channels, expected):
  shapes = jax.eval_shape(MSRResNet(channels, channels).init, jax.random.PRNGKey(0),
                          jnp.zeros((1, 16, 16, channels)))
  assert _count(shapes["params"]) == expected


def test_vgg_style_discriminator_parameter_count_matches_basicsr():
  shapes = jax.eval_shape(VGGStyleDiscriminator(3).init, jax.random.PRNGKey(0),
                          jnp.zeros((1, 128, 128, 3)))
  assert _count(shapes["params"]) == 14_499_401


@pytest.mark.slow
@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("cls", [MSRResNet, SRResNet])
def test_generator_output_shape(cls, scale):
  model = cls(1, 1, num_feat=8, num_block=2, upscale=scale)
  x = jnp.ones((2, 10, 12, 1))
  variables = model.init(jax.random.PRNGKey(0), x)
  y = model.apply(variables, x)
  assert y.shape == (2, 10 * scale, 12 * scale, 1)


def test_srresnet_has_batchnorm_and_prelu():
  variables = SRResNet(1, 1, num_feat=8, num_block=2).init(jax.random.PRNGKey(0),
                                                           jnp.ones((1, 8, 8, 1)))
  assert "batch_stats" in variables
  assert variables["params"]["body_0"]["prelu"]["weight"].shape == (8,)
  np.testing.assert_allclose(variables["params"]["prelu_first"]["weight"], 0.25)
  # The 9x9 head of the paper.
  assert variables["params"]["conv_first"]["kernel"].shape == (9, 9, 1, 8)


def test_msrresnet_adds_bilinear_upsampled_input():
  """With the residual branch zeroed, MSRResNet is bilinear upsampling."""
  model = MSRResNet(1, 1, num_feat=8, num_block=1)
  x = jnp.asarray(np.random.default_rng(0).random((1, 6, 6, 1)), jnp.float32)
  variables = model.init(jax.random.PRNGKey(0), x)
  zeroed = jax.tree.map(jnp.zeros_like, variables)
  y = model.apply(zeroed, x)
  expected = jax.image.resize(x, (1, 24, 24, 1), "linear", antialias=False)
  np.testing.assert_allclose(y, expected, atol=1e-6)


def test_discriminator_rejects_wrong_patch_size():
  with pytest.raises(ValueError, match="128x128"):
    VGGStyleDiscriminator(1).init(jax.random.PRNGKey(0), jnp.zeros((1, 96, 96, 1)))


def test_vgg_features_and_torchvision_mapping():
  rng = np.random.default_rng(0)
  state = {}
  index = 0
  for b, n, width in ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512)):
    in_ch = 3 if b == 1 else {2: 64, 3: 128, 4: 256, 5: 512}[b]
    for i in range(n):
      cin = in_ch if i == 0 else width
      state[f"features.{index}.weight"] = rng.normal(size=(width, cin, 3, 3)).astype(np.float32)
      state[f"features.{index}.bias"] = rng.normal(size=(width,)).astype(np.float32)
      index += 2
    index += 1
  params = vgg.params_from_torchvision(state)
  assert params["conv1_1"]["kernel"].shape == (3, 3, 3, 64)
  np.testing.assert_array_equal(params["conv5_4"]["kernel"],
                                state["features.34.weight"].transpose(2, 3, 1, 0))
  feats = vgg.VGG19Features(layers=("conv2_2", "conv5_4")).apply(
      {"params": params}, jnp.ones((1, 32, 32, 1)))
  assert feats["conv2_2"].shape == (1, 16, 16, 128)
  assert feats["conv5_4"].shape == (1, 2, 2, 512)


def test_missing_vgg_weights_error_names_file(tmp_path):
  with pytest.raises(vgg.VGGWeightsError, match="vgg19-dcbb9e9d.pth") as err:
    vgg.load_vgg19_params(str(tmp_path / "nope.pth"))
  assert "\n" not in str(err.value)
  bad = tmp_path / "bad.npz"
  bad.write_bytes(b"not a zip")
  with pytest.raises(vgg.VGGWeightsError, match="bad.npz"):
    vgg.load_vgg19_params(str(bad))


@pytest.mark.slow
def test_srvgg_training_init_options_change_the_init_only():
  from jaxsr.models.srvgg import SRVGGNetCompact  # pylint: disable=import-outside-toplevel
  x = jnp.asarray(np.random.default_rng(2).random((1, 12, 12, 1), np.float32))
  nearest = layers.upsample_nearest(x, 4)
  reference = SRVGGNetCompact(1, 1, 4, num_feat=16, num_conv=4)
  scratch = SRVGGNetCompact(1, 1, 4, num_feat=16, num_conv=4, init_scale=1.0, out_init_scale=0.01)
  v_ref = reference.init(jax.random.key(0), x)
  v_new = scratch.init(jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, v_ref) == jax.tree.map(jnp.shape, v_new)
  # PyTorch's default init: U(+-1/sqrt(fan_in)); He init: std sqrt(2/fan_in).
  fan_in = 16 * 9
  k_ref, k_new = v_ref["params"]["body_4"]["kernel"], v_new["params"]["body_4"]["kernel"]
  assert float(jnp.abs(k_ref).max()) <= 1 / np.sqrt(fan_in)
  assert abs(float(k_new.std()) - np.sqrt(2 / fan_in)) < 0.1 * np.sqrt(2 / fan_in)
  # The near-zero last conv starts the network at the nearest-neighbour upscale.
  residual = scratch.apply(v_new, x) - nearest
  assert float(jnp.abs(residual).max()) < 0.05
  assert float(jnp.abs(reference.apply(v_ref, x) - nearest).max()) > 0.05
  # The same weights compute the same function whatever the init options.
  np.testing.assert_allclose(scratch.apply(v_ref, x), reference.apply(v_ref, x), atol=1e-6)


def test_pack_along_width_round_trips_through_upsampling():
  x = jax.random.uniform(jax.random.PRNGKey(0), (3, 5, 7, 2))
  packed, mask = layers.pack_along_width(x)
  assert packed.shape == (1, 5, 3 * 8 - 1, 2)
  np.testing.assert_array_equal(mask.ravel(), ([1] * 7 + [0]) * 2 + [1] * 7)
  np.testing.assert_array_equal(layers.unpack_along_width(packed, 3), x)
  for scale in (2, 4):
    up = layers.upsample_nearest(packed, scale)
    np.testing.assert_array_equal(layers.unpack_along_width(up, 3, scale),
                                  layers.upsample_nearest(x, scale))
  # The separator columns are zero and stay zero under the widened mask.
  garbage = jnp.ones_like(layers.upsample_nearest(packed, 2))
  masked = layers.apply_width_mask(garbage, mask)
  assert float(masked[0, 0, 14:16].sum()) == 0.0 and float(masked[0, 0, :14].min()) == 1.0


def test_should_pack_only_batches_when_asked():
  assert not layers.should_pack(True, 1)
  assert layers.should_pack(True, 2)
  assert not layers.should_pack(False, 8)
  batch, = jax.export.symbolic_shape("b")
  assert not layers.should_pack(True, batch)  # jax.export: one graph for every batch.


class _FakeDevice:
  def __init__(self, platform):
    self.platform = platform


def test_auto_execution_options_follow_the_devices_a_step_runs_on():
  """'auto' packs and uses Winograd (where it pays) on one CPU device only, whatever the
  process has."""
  from jaxsr import errors, models  # pylint: disable=import-outside-toplevel
  from jaxsr.models.rrdbnet import RRDBNet  # pylint: disable=import-outside-toplevel
  from jaxsr.models.srresnet import SRResNet  # pylint: disable=import-outside-toplevel
  from jaxsr.models.srvgg import SRVGGNetCompact  # pylint: disable=import-outside-toplevel
  cpu, gpu = [_FakeDevice("cpu")], [_FakeDevice("gpu")]
  assert models.execution_kwargs(RRDBNet, cpu) == dict(conv_algorithm="auto", pack_batch=True)
  assert models.execution_kwargs(RRDBNet, gpu) == dict(conv_algorithm="direct", pack_batch=False)
  # A batch sharded over several devices keeps its data parallelism.
  assert models.execution_kwargs(RRDBNet, cpu * 8) == dict(conv_algorithm="direct",
                                                           pack_batch=False)
  assert models.execution_kwargs(SRVGGNetCompact, cpu) == dict(conv_algorithm="auto",
                                                                pack_batch=True)
  assert models.execution_kwargs(SRResNet, cpu) == dict(conv_algorithm="auto")
  assert models.execution_kwargs(SRResNet, gpu) == dict(conv_algorithm="direct")
  assert models.execution_kwargs(RRDBNet, cpu, "direct", "false") == dict(
      conv_algorithm="direct", pack_batch=False)
  assert models.execution_kwargs(RRDBNet, gpu, "winograd", "true") == dict(
      conv_algorithm="winograd", pack_batch=True)
  with pytest.raises(errors.ConfigError, match="pack_batch='true' is not an option"):
    models.execution_kwargs(SRResNet, cpu, "auto", "true")
  with pytest.raises(errors.ConfigError, match="conv_algorithm='fft'"):
    models.execution_kwargs(SRVGGNetCompact, cpu, "fft")
  # The modules themselves never look at the process: plain convolutions by default.
  assert (RRDBNet().conv_algorithm, RRDBNet().pack_batch) == ("direct", False)


def test_generators_describe_themselves():
  from jaxsr import models  # pylint: disable=import-outside-toplevel
  for name, cls in models.GENERATORS.items():
    for scale in (4, 2):
      net = cls(num_in_ch=1, num_out_ch=1, upscale=scale)
      expected = {4: 1, 2: 2}[scale] if name == "rrdbnet" else 1
      assert (net.scale, net.input_multiple) == (scale, expected), name


def _packing_cases():
  from jaxsr.models.rrdbnet import RRDBNet
  from jaxsr.models.srvgg import SRVGGNetCompact
  # conv_algorithm="direct": whole 4x4 tiles would take the Winograd path, which does not pack.
  cases = [(RRDBNet, s, dict(num_feat=8, num_grow_ch=4, num_block=2, conv_algorithm="direct"))
           for s in (4, 2, 1)]
  cases += [(SRVGGNetCompact, s, dict(num_feat=8, num_conv=3)) for s in (4, 3)]
  cases += [(MSRResNet, s, dict(num_feat=8, num_block=2)) for s in (4, 3)]
  return cases


@pytest.mark.parametrize("cls,scale,kwargs", _packing_cases(),
                         ids=lambda v: getattr(v, "__name__", str(v)))
@pytest.mark.slow
def test_packed_batch_computes_what_each_image_alone_computes(cls, scale, kwargs, monkeypatch):
  calls = []
  pack = layers.pack_along_width
  monkeypatch.setattr(layers, "pack_along_width", lambda x: calls.append(x.shape) or pack(x))
  packed = cls(num_in_ch=1, num_out_ch=1, upscale=scale, pack_batch=True, **kwargs)
  plain = packed.clone(pack_batch=False)
  # Bright, distinct images side by side: any leak across a separator shows.
  x = jax.random.uniform(jax.random.PRNGKey(1), (3, 12, 20, 1)) + jnp.arange(3.0)[:, None, None, None]
  params = plain.init(jax.random.PRNGKey(0), x[:1])
  loss = lambda model: lambda p: jnp.sum(model.apply(p, x) ** 2)
  y = packed.apply(params, x)
  assert calls, "the packed path was not taken"
  alone = jnp.concatenate([plain.apply(params, x[i:i + 1]) for i in range(3)])
  np.testing.assert_allclose(y, alone, atol=1e-5)
  np.testing.assert_allclose(y, plain.apply(params, x), atol=1e-5)
  grads = jax.grad(loss(packed))(params)
  ref = jax.grad(loss(plain))(params)
  for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref)):
    np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4 * float(jnp.abs(r).max()))
