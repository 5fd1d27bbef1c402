"""The jit-compiled train step: losses, updates, and 1-vs-8-device equality."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsr import config as base
from jaxsr import losses
from jaxsr.training import sharding, train
from jaxsr.training.state import TrainState


def _gan_config():
  c = base.make_tiny(base.base_config())
  c.model.name = "srresnet"
  c.discriminator.name = "vgg_style"
  c.loss.perceptual_weight = 1.0
  c.loss.perceptual_layers = {"conv1_1": 1.0}
  c.loss.vgg_weights = "random"
  c.loss.gan_weight = 5e-3
  c.loss.gan_type = "ragan"
  c.data.batch_size = 8
  c.data.patch_size = 128
  return c


def _batch(config, seed=0):
  """Smooth random images (learnable, unlike white noise) and their box-filtered LR."""
  rng = np.random.default_rng(seed)
  p, s, b = config.data.patch_size, config.scale, config.data.batch_size
  coarse = rng.random((b, 8, 8, config.num_channels), dtype=np.float32)
  hr = np.asarray(jax.image.resize(coarse, (b, p, p, config.num_channels), "cubic"))
  lr = hr.reshape(b, p // s, s, p // s, s, -1).mean(axis=(2, 4))
  return {"lr": lr, "hr": hr}


def _run(config, num_devices, num_steps=2, fsdp_regex=""):
  """The trainer's own mesh, modules and jitted step (train.compile_step)."""
  config = config.copy_and_resolve_references()
  config.train.fsdp_regex, config.train.fsdp_min_size = fsdp_regex, 1024
  mesh = sharding.make_mesh(num_devices)
  mods = train.build_modules(config, mesh.devices.flat)
  vgg_params = jax.device_put(train.load_vgg_params(config), sharding.replicated(mesh))
  compiled = train.compile_step(config, mods, mesh, donate=False)
  state = compiled.init()
  history = []
  for i in range(num_steps):
    batch = sharding.put_batch(_batch(config, i), mesh)
    state, metrics = compiled.train_step(state, batch, jax.random.PRNGKey(i), vgg_params)
    history.append(jax.device_get(metrics))
  return jax.device_get(state), history


@pytest.fixture(scope="module")
def gan_runs():
  config = _gan_config()
  return _run(config, 1), _run(config, 8)


@pytest.mark.slow
def test_eight_devices_give_the_same_losses_as_one(gan_runs):
  """The first step's losses agree to 1e-5 (raw logit means, diagnostics, to
  float32 rounding); later steps only as closely as the parameters do (see
  the next test: Adam can flip a rounding-level update), to 1e-3."""
  (_, hist1), (_, hist8) = gan_runs
  assert jax.device_count() == 8
  for step, (m1, m8) in enumerate(zip(hist1, hist8)):
    assert set(m1) == set(m8) >= {"l_percep", "l_g_gan", "l_d_real", "l_d_fake", "l_pix"}
    for k in m1:
      tol = (1e-5 if k.startswith("l_") else 1e-4) if step == 0 else 1e-3
      np.testing.assert_allclose(m1[k], m8[k], rtol=tol, atol=tol, err_msg=f"{k}, step {step}")


@pytest.mark.slow
def test_eight_devices_give_the_same_parameters_as_one(gan_runs):
  """Parameters agree except where Adam normalises a gradient that is ~0.

  Adam's first steps move each weight by about lr * sign(grad); where the
  gradient is at rounding level, the sum order over devices can flip that
  sign (how often depends on the CPU's vector kernels). Such weights differ by
  at most 2 * lr per step, and must be rare.
  """
  (s1, _), (s8, _) = gan_runs
  config = _gan_config()
  bound = 2 * config.optim_g.lr * 2 + 1e-6
  # Batch statistics of the second step are taken on outputs of the first
  # step's parameters, so they inherit those flips (scaled by the momentum):
  # nearly all agree to 5e-4, a rare channel by less than 5e-3.
  flat = lambda state, name: np.concatenate(
      [x.ravel() for x in jax.tree.leaves(getattr(state, name))])
  for name in ("g_stats", "d_stats"):
    a, b = flat(s1, name), flat(s8, name)
    diff = np.abs(a - b)
    assert diff.max() < 5e-3 * (1 + np.abs(a).max()), name
    assert np.mean(diff > 5e-4 + 1e-3 * np.abs(a)) < 0.01, name
  for name in ("g_params", "d_params", "ema_params"):
    a, b = flat(s1, name), flat(s8, name)
    diff = np.abs(a - b)
    assert diff.max() <= bound, name
    assert np.mean(diff > 1e-5 * (1 + np.abs(a))) < 0.03, name  # Rare: a few percent at most.


@pytest.mark.slow
def test_step_updates_generator_discriminator_and_ema(gan_runs):
  (state, _), _ = gan_runs
  config = _gan_config()
  mods = train.build_modules(config, jax.devices()[:1])
  fresh = jax.device_get(train.init_state(config, mods))
  assert int(state.step) == 2
  for name in ("g_params", "d_params", "ema_params", "g_stats", "d_stats"):
    before, after = jax.tree.leaves(getattr(fresh, name)), jax.tree.leaves(getattr(state, name))
    assert any(not np.allclose(a, b) for a, b in zip(before, after)), name
  # Two EMA updates move at most (1 - decay**2) of the way toward G.
  ema_step = [np.abs(e - f).max() for e, f in zip(jax.tree.leaves(state.ema_params),
                                                   jax.tree.leaves(fresh.g_params))]
  g_step = [np.abs(g - f).max() for g, f in zip(jax.tree.leaves(state.g_params),
                                                 jax.tree.leaves(fresh.g_params))]
  decay = config.train.ema_decay
  assert 0 < max(ema_step) <= (1 - decay ** 2) * max(g_step) * 1.05


@pytest.mark.slow
def test_pixel_only_training_lowers_the_loss():
  config = base.make_tiny(base.base_config())
  config.data.batch_size = 4
  config.data.patch_size = 32
  config.optim_g.lr = 1e-3
  mesh = sharding.make_mesh(1)
  mods = train.build_modules(config, jax.devices()[:1])
  state = train.init_state(config, mods)
  step_fn = jax.jit(train.steps.make_train_step(mods, config.loss, 0.0))
  batch = jax.device_put(_batch(config), sharding.replicated(mesh))
  first = None
  for i in range(30):
    state, metrics = step_fn(state, batch, jax.random.PRNGKey(i), {})
    first = first if first is not None else float(metrics["l_pix"])
  assert float(metrics["l_pix"]) < 0.8 * first
  assert isinstance(state, TrainState) and state.d_params == {}


def test_gan_losses_match_their_definitions():
  rng = np.random.default_rng(0)
  real, fake = rng.normal(size=(6, 1)), rng.normal(size=(6, 1))
  sig = lambda x: 1 / (1 + np.exp(-x))
  bce = lambda x, y: -np.mean(y * np.log(sig(x)) + (1 - y) * np.log(1 - sig(x)))
  np.testing.assert_allclose(losses.generator_adversarial_loss("vanilla", jnp.asarray(fake)),
                             bce(fake, 1), rtol=1e-5)
  expected = (bce(real - fake.mean(), 0) + bce(fake - real.mean(), 1)) / 2
  np.testing.assert_allclose(
      losses.generator_adversarial_loss("ragan", jnp.asarray(fake), jnp.asarray(real)),
      expected, rtol=1e-5)
  d_loss, _ = losses.discriminator_loss("ragan", jnp.asarray(real), jnp.asarray(fake))
  np.testing.assert_allclose(
      d_loss, 0.5 * bce(real - fake.mean(), 1) + 0.5 * bce(fake - real.mean(), 0), rtol=1e-5)
  d_loss, _ = losses.discriminator_loss("vanilla", jnp.asarray(real), jnp.asarray(fake))
  np.testing.assert_allclose(d_loss, bce(real, 1) + bce(fake, 0), rtol=1e-5)


def test_perceptual_loss_weights_layers():
  a = {"x": jnp.ones((1, 2, 2, 1)), "y": jnp.zeros((1, 2, 2, 1))}
  b = {"x": jnp.zeros((1, 2, 2, 1)), "y": jnp.full((1, 2, 2, 1), 2.0)}
  got = losses.perceptual_loss(a, b, {"x": 0.1, "y": 1.0}, "l1")
  np.testing.assert_allclose(got, 0.1 * 1 + 1.0 * 2)
  got = losses.perceptual_loss(a, b, {"y": 1.0}, "l2", feature_scale=0.5)
  np.testing.assert_allclose(got, 1.0)


@pytest.mark.slow
def test_fsdp_parameter_sharding_gives_the_replicated_losses():
  config = _rrdb_config()
  mesh = sharding.make_mesh(8)
  mods = train.build_modules(config, jax.devices()[:1])
  abstract = jax.eval_shape(functools.partial(train.init_state, config, mods))
  shardings = sharding.state_shardings(abstract, mesh, "(g_params|g_opt|ema_params).*",
                                       min_size=1024)
  split = [s for s in jax.tree.leaves(shardings) if s.spec != jax.sharding.PartitionSpec()]
  assert len(split) > 10  # The big kernels and their Adam moments are split.
  for (path, leaf), s in zip(jax.tree_util.tree_leaves_with_path(abstract),
                             jax.tree.leaves(shardings)):
    if s.spec != jax.sharding.PartitionSpec():
      assert "data" in s.spec and leaf.size >= 1024, path
  _assert_same_run(_run(config, 8), _run(config, 8, fsdp_regex="(g_params|g_opt|ema_params).*"),
                   loss_tol=(1e-5, 1e-5), param_tol=(1e-5, 1e-5))


def _assert_same_run(run_a, run_b, loss_tol, param_tol):
  """Pixel losses and generator parameters of two runs agree within (rtol, atol)."""
  (s_a, h_a), (s_b, h_b) = run_a, run_b
  for m_a, m_b in zip(h_a, h_b):
    np.testing.assert_allclose(m_a["l_pix"], m_b["l_pix"], rtol=loss_tol[0], atol=loss_tol[1])
  for a, b in zip(jax.tree.leaves(s_a.g_params), jax.tree.leaves(s_b.g_params)):
    np.testing.assert_allclose(a, b, rtol=param_tol[0], atol=param_tol[1])


def _rrdb_config():
  config = base.make_tiny(base.base_config())
  config.model = base.rrdbnet()
  config.model.num_feat, config.model.num_block, config.model.num_grow_ch = 16, 1, 8
  config.data.batch_size, config.data.patch_size = 8, 32
  return config


@pytest.mark.slow
def test_one_cpu_device_runs_the_cpu_path_and_matches_eight_devices():
  """The default ('auto') CPU path of one device: Winograd trunk and a packed batch.

  Decided from the mesh the step runs on, so it runs here although the test
  process has eight devices, and it gives the losses of the plain path.
  """
  config = _rrdb_config()
  one = train.build_modules(config, sharding.make_mesh(1).devices.flat).generator
  eight = train.build_modules(config, sharding.make_mesh(8).devices.flat).generator
  assert (one.conv_algorithm, one.pack_batch) == ("auto", True)
  assert (eight.conv_algorithm, eight.pack_batch) == ("direct", False)
  explicit = config.copy_and_resolve_references()
  explicit.model.conv_algorithm, explicit.model.pack_batch = "direct", "false"
  plain = train.build_modules(explicit, sharding.make_mesh(1).devices.flat).generator
  assert (plain.conv_algorithm, plain.pack_batch) == ("direct", False)
  _assert_same_run(_run(config, 1, num_steps=3), _run(config, 8, num_steps=3),
                   loss_tol=(1e-5, 1e-6), param_tol=(1e-4, 1e-5))


def test_execution_options_are_refused_where_a_network_has_none():
  config = base.make_tiny(base.base_config())
  config.model.name = "srresnet"
  config.model.pack_batch = "true"
  with pytest.raises(train.ConfigError, match="pack_batch='true' is not an option of SRResNet"):
    train.build_modules(config, jax.devices()[:1])
  config.model.pack_batch = "maybe"
  with pytest.raises(train.ConfigError, match="model.pack_batch='maybe'"):
    train.build_modules(config, jax.devices()[:1])


@pytest.mark.slow
def test_ema_warmup_forgets_the_initial_weights():
  from jaxsr.training import steps  # pylint: disable=import-outside-toplevel
  decays = [float(steps.ema_decay_at(jnp.asarray(t), 0.999, True)) for t in (0, 1, 90, 10 ** 5)]
  np.testing.assert_allclose(decays, [0.1, 2 / 11, 91 / 100, 0.999], rtol=1e-6)
  assert float(steps.ema_decay_at(jnp.asarray(5), 0.999, False)) == 0.999
  # In the step: after the first update the EMA is 0.1 init + 0.9 new weights.
  config = base.make_tiny(base.base_config())
  config.train.ema_decay = 0.999
  mods = train.build_modules(config, jax.devices()[:1])
  state = train.init_state(config, mods)
  init = jax.device_get(state.g_params)
  outcome = {}
  for warmup in (False, True):
    step_fn = jax.jit(train.steps.make_train_step(mods, config.loss, 0.999, ema_warmup=warmup))
    new, _ = step_fn(state, _batch(config), jax.random.PRNGKey(0), {})
    outcome[warmup] = jax.device_get(new)
  for e, i, p in zip(jax.tree.leaves(outcome[True].ema_params), jax.tree.leaves(init),
                     jax.tree.leaves(outcome[True].g_params)):
    np.testing.assert_allclose(e, 0.1 * i + 0.9 * p, rtol=1e-5, atol=1e-7)
  for e, i, p in zip(jax.tree.leaves(outcome[False].ema_params), jax.tree.leaves(init),
                     jax.tree.leaves(outcome[False].g_params)):
    np.testing.assert_allclose(e, 0.999 * i + 0.001 * p, rtol=1e-5, atol=1e-7)


def test_gradient_loss_is_the_l1_of_finite_differences_and_enters_the_step():
  rng = np.random.default_rng(4)
  a, b = rng.random((2, 5, 6, 1), np.float32), rng.random((2, 5, 6, 1), np.float32)
  dx = np.abs(np.diff(a, axis=2) - np.diff(b, axis=2)).mean()
  dy = np.abs(np.diff(a, axis=1) - np.diff(b, axis=1)).mean()
  assert float(losses.gradient_l1(jnp.asarray(a), jnp.asarray(b))) == pytest.approx(
      (dx + dy) / 2, rel=1e-6)
  assert float(losses.gradient_l1(jnp.asarray(a), jnp.asarray(a + 0.3))) < 1e-6  # Offsets vanish.
  config = base.make_tiny(base.base_config())
  config.data.batch_size, config.data.patch_size = 2, 32
  config.loss.gradient_weight = 0.5
  mods = train.build_modules(config, jax.devices()[:1])
  state = train.init_state(config, mods)
  _, metrics = jax.jit(train.steps.make_train_step(mods, config.loss, 0.0))(
      state, _batch(config), jax.random.PRNGKey(0), {})
  assert float(metrics["l_grad"]) > 0
  assert float(metrics["l_g_total"]) == pytest.approx(
      float(metrics["l_pix"]) + float(metrics["l_grad"]), rel=1e-6)
