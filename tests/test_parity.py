"""Our networks and losses against BasicSR / Real-ESRGAN on the same inputs.

The fixtures (tests/fixtures/parity) are state dicts, inputs and outputs
written by the reference code with tools/make_parity_fixtures.py; here they
are read without torch, converted by jaxsr.weights and run through our
modules. tools/check_parity.py runs the same comparison on full-size nets.
"""
import json
import pathlib

import jax.numpy as jnp
import numpy as np
import pytest

from jaxsr import losses, weights
from jaxsr.models import vgg

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "parity"
NETS = sorted(p.stem for p in FIXTURES.glob("*.pth"))


def random_vgg19_features(seed):
  """Same draw as tools/make_parity_fixtures.py; keep the two in step."""
  cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
         512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
  rng = np.random.default_rng(seed)
  state, index, cin = {}, 0, 3
  for item in cfg:
    if item == "M":
      index += 1
      continue
    w = rng.standard_normal((item, cin, 3, 3), dtype=np.float32) * np.float32(np.sqrt(2 / (cin * 9)))
    state[f"features.{index}.weight"] = w
    state[f"features.{index}.bias"] = rng.standard_normal(item, dtype=np.float32) * np.float32(0.01)
    index, cin = index + 2, item
  return state


def _nhwc(x):
  return jnp.asarray(np.asarray(x, np.float32).transpose(0, 2, 3, 1))


def _nchw(y):
  y = np.asarray(y)
  return y.transpose(0, 3, 1, 2) if y.ndim == 4 else y


def compare(folder, name, conv_algorithm=None) -> dict:
  """Max |ours - reference| of each output (and SN vectors) of one fixture.

  ``conv_algorithm`` forces RRDBNet's trunk convolutions (direct/winograd).
  """
  folder = pathlib.Path(folder)
  data = np.load(folder / f"{name}.npz")
  spec = json.loads(str(data["spec"]))
  act = spec["arch_kwargs"].get("act_type", "prelu")
  # A parameter-free activation cannot be read off the weights.
  module, variables, info = weights.load_weights(
      folder / f"{name}.pth", arch_kwargs=None if act == "prelu" else {"act_type": act})
  found = {k: info[k] for k in ("arch", "scale", "num_channels", "arch_kwargs")}
  assert found == spec, f"inferred {found}, fixture says {spec}"
  if conv_algorithm is not None:
    module = module.clone(conv_algorithm=conv_algorithm)
  x = _nhwc(data["x"])
  diffs = {}
  if info["arch"] == "unet_disc":
    y, updates = module.apply(variables, x, train=True, mutable=["batch_stats"])
    for key in data.files:
      if key.startswith("after:"):
        mod, leaf = key[len("after:"):].rsplit(".", 1)
        ours = updates["batch_stats"][mod][leaf]
        diffs[key] = float(np.abs(np.asarray(ours) - data[key]).max())
    diffs["y_train"] = float(np.abs(_nchw(y) - data["y"]).max())
    y_eval = module.apply({**variables, **updates}, x, train=False)
    diffs["y_eval"] = float(np.abs(_nchw(y_eval) - data["y_eval"]).max())
  else:
    y = module.apply(variables, x)
    diffs["y"] = float(np.abs(_nchw(y) - data["y"]).max())
  return diffs


@pytest.mark.slow
@pytest.mark.parametrize("name", NETS)
def test_network_matches_reference(name):
  diffs = compare(FIXTURES, name)
  for key, diff in diffs.items():
    tol = 1e-6 if key.startswith("after:") else 1e-4
    assert diff <= tol, f"{name} {key}: max abs diff {diff:.3g} > {tol}"


# The x4 and x1 fixtures' trunks are whole 4x4 tiles (x2's 6x6 is not).
# Direct convolutions: test_network_matches_reference (the test process has
# 8 CPU devices, where RRDBNet keeps direct convolutions by default).
@pytest.mark.slow
@pytest.mark.parametrize("name", ["rrdbnet_x4_c3", "rrdbnet_x4_c1", "rrdbnet_x1_c3",
                                  "rrdbnet_x1_c1"])
def test_rrdbnet_with_winograd_trunk_matches_reference(name):
  diffs = compare(FIXTURES, name, "winograd")
  assert diffs["y"] <= 1e-4, f"{name} (winograd): max abs diff {diffs['y']:.3g}"


def test_fixture_set_is_complete():
  assert {"rrdbnet_x4_c3", "rrdbnet_x2_c3", "rrdbnet_x1_c3", "rrdbnet_x4_c1", "rrdbnet_x2_c1",
          "rrdbnet_x1_c1", "srvgg_x4", "srvgg_x2", "msrresnet_x4", "vgg_disc_128",
          "unet_disc"} <= set(NETS)


@pytest.fixture(scope="module")
def loss_data():
  return np.load(FIXTURES / "losses.npz")


def _close(ours, ref):
  assert abs(float(ours) - float(ref)) <= 1e-5 * max(1.0, abs(float(ref))), (float(ours), float(ref))


def test_gan_losses_match_basicsr(loss_data):
  real, fake = jnp.asarray(loss_data["real"]), jnp.asarray(loss_data["fake"])
  _close(losses.generator_adversarial_loss("vanilla", fake), loss_data["vanilla_g"])
  _, (d_real, d_fake) = losses.discriminator_loss("vanilla", real, fake)
  _close(d_real, loss_data["vanilla_d_real"])
  _close(d_fake, loss_data["vanilla_d_fake"])
  _close(losses.generator_adversarial_loss("ragan", fake, real), loss_data["ragan_g"])
  _, (d_real, d_fake) = losses.discriminator_loss("ragan", real, fake)
  _close(d_real, loss_data["ragan_d_real"])
  _close(d_fake, loss_data["ragan_d_fake"])


@pytest.mark.slow
def test_perceptual_loss_matches_basicsr(loss_data):
  layer_weights = {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}
  net = vgg.VGG19Features(tuple(layer_weights), before_activation=True)
  params = vgg.params_from_torchvision(random_vgg19_features(int(loss_data["vgg_seed"])))
  sr_feats = net.apply({"params": params}, _nhwc(loss_data["sr"]))
  hr_feats = net.apply({"params": params}, _nhwc(loss_data["hr"]))
  ours = losses.perceptual_loss(sr_feats, hr_feats, layer_weights, "l1")
  _close(ours, loss_data["perceptual"])
