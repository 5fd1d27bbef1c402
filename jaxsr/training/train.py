"""One trainer for SRResNet/SRGAN, ESRGAN and Real-ESRGAN: the config decides.

``train_and_evaluate(config, workdir)`` builds the mesh, networks, data and
state, resumes from the workdir's latest checkpoint if there is one, and runs
the jit-compiled step until ``train.num_steps``. ``evaluate_workdir`` writes
``eval/metrics.csv`` and ``eval/summary.md`` for the latest checkpoint.
"""
import functools
import json
import logging
import pathlib
import signal

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxsr import models
from jaxsr.data import pipeline
from jaxsr.degradations import pipeline as degradations
from jaxsr.evaluation import evaluate
from jaxsr.models import vgg as vgg_lib
from jaxsr.training import checkpoint, logger, optim, sharding, steps
from jaxsr.training.state import TrainState, generator_variables, split_variables


class ConfigError(ValueError):
  """A config that cannot work; the message names the key."""


class TrainingDivergedError(RuntimeError):
  """Too many consecutive non-finite losses; the last good checkpoint is kept."""


def check_config(config: ml_collections.ConfigDict):
  if config.scale not in (2, 3, 4):
    raise ConfigError(f"scale={config.scale}: use 2, 3 or 4")
  if config.data.patch_size % config.scale:
    raise ConfigError(f"data.patch_size={config.data.patch_size} must be a multiple of "
                      f"scale={config.scale}")
  if config.num_channels not in (1, 3):
    raise ConfigError(f"num_channels={config.num_channels}: use 1 (grey) or 3")
  if config.train.num_steps < 1:
    raise ConfigError(f"train.num_steps={config.train.num_steps} must be positive")
  deg = config.degradation
  if deg.name not in ("bicubic", "realesrgan"):
    raise ConfigError(f"degradation.name='{deg.name}': use 'bicubic' or 'realesrgan'")
  if deg.name == "realesrgan":
    if deg.scale != config.scale:
      raise ConfigError(f"degradation.scale={deg.scale} must equal scale={config.scale}")
    if deg.gt_size != config.data.patch_size:
      raise ConfigError(f"degradation.gt_size={deg.gt_size} must equal "
                        f"data.patch_size={config.data.patch_size} (the HR patch)")
  elif any((config.loss.pixel_on_usm, config.loss.perceptual_on_usm, config.loss.gan_on_usm)):
    raise ConfigError("loss.*_on_usm needs degradation.name='realesrgan'")


def build_modules(config):
  """Networks and optimizers named by the config (no arrays yet)."""
  generator = models.build_generator(config.model, config.num_channels, config.scale)
  discriminator = None
  if config.loss.gan_weight > 0:
    if not config.discriminator.name:
      raise ConfigError("loss.gan_weight > 0 needs discriminator.name")
    discriminator = models.build_discriminator(config.discriminator, config.num_channels,
                                               config.data.patch_size)
  vgg = None
  if config.loss.perceptual_weight > 0:
    layers = tuple(config.loss.perceptual_layers.keys())
    unknown = set(layers) - set(vgg_lib.layer_names())
    if unknown:
      raise ConfigError(f"loss.perceptual_layers: unknown VGG19 layers {sorted(unknown)}")
    vgg = vgg_lib.VGG19Features(layers=layers,
                                before_activation=config.loss.perceptual_before_activation)
  g_tx = optim.make_optimizer(config.optim_g.lr, config.optim_g)
  d_tx = optim.make_optimizer(config.optim_d.lr, config.optim_d) if discriminator else None
  return steps.StepModules(generator, discriminator, vgg, g_tx, d_tx)


def load_vgg_params(config):
  if config.loss.perceptual_weight <= 0:
    return {}
  if config.loss.vgg_weights == "random":
    logging.warning("perceptual loss uses a RANDOMLY INITIALISED VGG19 "
                    "(loss.vgg_weights='random'): for tests and tiny runs only")
    return vgg_lib.random_params(tuple(config.loss.perceptual_layers.keys()), config.seed)
  return vgg_lib.load_vgg19_params(config.loss.vgg_weights)


def init_state(config, mods: steps.StepModules) -> TrainState:
  """A fresh state; pure, so it can be jit-compiled straight onto the mesh."""
  key = jax.random.PRNGKey(config.seed)
  g_key, d_key = jax.random.split(jax.random.fold_in(key, 1))
  c, p, s = config.num_channels, config.data.patch_size, config.scale
  g_params, g_stats = split_variables(mods.generator.init(g_key, jnp.zeros((1, p // s, p // s, c))))
  d_params, d_stats, d_opt = {}, {}, ()
  if mods.discriminator is not None:
    d_params, d_stats = split_variables(mods.discriminator.init(d_key, jnp.zeros((1, p, p, c))))
    d_opt = mods.d_tx.init(d_params)
  ema = jax.tree.map(jnp.copy, g_params) if config.train.ema_decay > 0 else {}
  pool = {}
  if config.degradation.name == "realesrgan":
    pool = degradations.init_pool_state(config.degradation,
                                        pipeline.global_batch_size(config), c)
  return TrainState(step=jnp.zeros((), jnp.int32), rng=key, g_params=g_params, g_stats=g_stats,
                    g_opt=mods.g_tx.init(g_params), d_params=d_params, d_stats=d_stats,
                    d_opt=d_opt, ema_params=ema, pool=pool,
                    bad_steps=jnp.zeros((), jnp.int32))


def _init_from(state: TrainState, workdir: str, mods, config) -> TrainState:
  """Starts G (and its EMA) from another stage's checkpoint."""
  params, stats, step = checkpoint.read_generator(workdir)
  try:
    params = jax.tree.map(lambda ref, new: jnp.asarray(new, ref.dtype).reshape(ref.shape),
                          state.g_params, params)
    if state.g_stats:
      stats = jax.tree.map(lambda ref, new: jnp.asarray(new, ref.dtype).reshape(ref.shape),
                           state.g_stats, stats)
  except (ValueError, TypeError) as e:
    raise ConfigError(f"init_from={workdir}: its generator does not fit model "
                      f"'{config.model.name}' ({e})") from None
  logging.info("generator initialised from %s (step %d)", workdir, step)
  ema = jax.tree.map(jnp.copy, params) if state.ema_params else {}
  return state.replace(g_params=params, g_stats=stats or state.g_stats,
                       g_opt=mods.g_tx.init(params), ema_params=ema)


def _install_stop_handlers():
  """SIGTERM/SIGINT ask the loop to checkpoint and stop at the next step."""
  stop = {"signal": None}

  def handler(signum, frame):
    del frame
    stop["signal"] = signum

  for sig in (signal.SIGTERM, signal.SIGINT):
    try:
      signal.signal(sig, handler)
    except ValueError:  # Not the main thread (e.g. inside a notebook worker).
      pass
  return stop


def setup(config, workdir, mesh):
  """Everything a run needs: modules, jitted step, state and the data iterator."""
  check_config(config)
  mods = build_modules(config)
  vgg_params = load_vgg_params(config)
  global_batch = pipeline.global_batch_size(config)
  sharding.check_batch_divisible(global_batch, mesh)
  repl = sharding.replicated(mesh)
  train_source = pipeline.make_source(config.data, "train", min_size=config.data.patch_size)
  data_iter = iter(pipeline.train_dataset(config, train_source))

  init_fn = functools.partial(init_state, config, mods)
  state_sharding = sharding.state_shardings(jax.eval_shape(init_fn), mesh,
                                            config.train.fsdp_regex, config.train.fsdp_min_size)
  state_init = jax.jit(init_fn, out_shardings=state_sharding)
  mngr = checkpoint.manager(workdir, save_every=config.train.checkpoint_every,
                            keep=config.train.keep_checkpoints)
  latest = mngr.latest_step()
  if latest is not None:
    abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                            jax.eval_shape(init_fn), state_sharding)
    state = checkpoint.restore(mngr, latest, abstract, data_iter)
    logging.info("resumed from %s at step %d", mngr.directory, latest)
  else:
    state = state_init()
    if config.init_from:
      state = jax.device_put(_init_from(state, config.init_from, mods, config), state_sharding)

  degrade = None
  if config.degradation.name == "realesrgan":
    degrade = degradations.make_degrade_fn(config.degradation)
  step_fn = steps.make_train_step(mods, config.loss, config.train.ema_decay, degrade,
                                  ema_warmup=config.train.ema_warmup)
  train_step = jax.jit(step_fn,
                       in_shardings=(state_sharding, sharding.data_sharded(mesh), repl, repl),
                       out_shardings=(state_sharding, repl), donate_argnums=(0,))
  vgg_params = jax.device_put(vgg_params, repl)
  return mods, train_step, state, data_iter, mngr, vgg_params


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  workdir = pathlib.Path(workdir).expanduser()
  try:
    workdir.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise NotADirectoryError(f"{workdir}: cannot create the workdir ({e.strerror or e})") from None
  mesh = sharding.make_mesh(config.train.num_devices or None)
  logging.info("mesh: %s", dict(mesh.shape))
  mods, train_step, state, data_iter, mngr, vgg_params = setup(config, workdir, mesh)
  config_dict = json.loads(config.to_json())
  if jax.process_index() == 0:
    (workdir / "config.json").write_text(json.dumps(config_dict, indent=2))

  num_steps = config.train.num_steps
  step = int(jax.device_get(state.step))
  log = logger.TrainLogger(workdir, num_steps=num_steps, batch_size=config.data.batch_size,
                           start_step=step, log_every=config.train.log_every)
  stop = _install_stop_handlers()
  check_every = max(1, min(config.train.log_every, config.train.max_bad_steps))
  base_rng = np.asarray(jax.device_get(state.rng))  # The state is donated each step.
  while step < num_steps:
    batch = sharding.put_batch(next(data_iter), mesh)
    state, metrics = train_step(state, batch, jax.random.fold_in(base_rng, step), vgg_params)
    step += 1
    log.record(step, metrics)
    if (step % check_every == 0 or mngr.should_save(step)) and int(state.bad_steps) > 0:
      # Checked at intervals (a device sync); a skipped update leaves the
      # parameters as they were, so saving the state stays safe meanwhile.
      bad = int(state.bad_steps)
      logging.warning("non-finite loss: %d consecutive step(s) skipped (step %d)", bad, step)
      if bad >= config.train.max_bad_steps:
        last = mngr.latest_step()
        raise TrainingDivergedError(
            f"{bad} consecutive non-finite losses up to step {step}; stopped. The last good "
            f"checkpoint is step {last} in {mngr.directory}; lower the learning rate or "
            "check the data")
    saved = checkpoint.save(mngr, step, state, data_iter, config_dict)
    if stop["signal"] is not None:
      if not saved:
        checkpoint.save(mngr, step, state, data_iter, config_dict, force=True)
      logging.warning("stopped by signal %d at step %d; checkpoint saved", stop["signal"], step)
      break
    if config.train.eval_every and step % config.train.eval_every == 0 and step < num_steps:
      _periodic_eval(config, mods, state, log, step)
  if step >= num_steps and mngr.latest_step() != step:
    checkpoint.save(mngr, step, state, data_iter, config_dict, force=True)
  mngr.wait_until_finished()
  log.close()
  return state


def _periodic_eval(config, mods, state, log, step):
  try:
    source = pipeline.make_source(config.data, "eval", min_size=config.scale)
  except Exception as e:  # pylint: disable=broad-except
    logging.warning("periodic evaluation skipped: %s", e)
    return
  rows = evaluate.evaluate(steps.make_predict_fn(mods.generator),
                           generator_variables(state, config.eval.use_ema), source,
                           model_name=config.name, scale=config.scale,
                           num_channels=config.num_channels, crop_border=config.eval.crop_border,
                           center_crop=config.eval.center_crop, max_images=config.eval.max_images)
  means = evaluate.mean_metrics(rows, config.name)
  log.scalars(step, {f"eval/{k}": v for k, v in means.items()})


def evaluate_workdir(config: ml_collections.ConfigDict, workdir: str):
  """``--mode=eval``: metrics of the latest checkpoint and bicubic on the eval set."""
  workdir = pathlib.Path(workdir).expanduser()
  check_config(config)
  mngr = checkpoint.manager(workdir, read_only=True)
  latest = mngr.latest_step() if (workdir / checkpoint.CHECKPOINT_DIR).is_dir() else None
  if latest is None:
    raise FileNotFoundError(f"{workdir}: no checkpoint to evaluate; train first")
  mods = build_modules(config)
  abstract = jax.eval_shape(functools.partial(init_state, config, mods))
  abstract = checkpoint.abstract_like(abstract, jax.sharding.SingleDeviceSharding(jax.devices()[0]))
  state = checkpoint.restore(mngr, latest, abstract)
  source = pipeline.make_source(config.data, "eval", min_size=config.scale)
  rows = evaluate.evaluate(steps.make_predict_fn(mods.generator),
                           generator_variables(state, config.eval.use_ema), source,
                           model_name=config.name, scale=config.scale,
                           num_channels=config.num_channels, crop_border=config.eval.crop_border,
                           center_crop=config.eval.center_crop, max_images=config.eval.max_images)
  csv_path, md_path = evaluate.write(
      rows, workdir / "eval", title=f"{config.name} at step {latest}, x{config.scale}")
  for model in dict.fromkeys(r.model for r in rows):
    m = evaluate.mean_metrics(rows, model)
    logging.info("%s: PSNR %.2f dB, SSIM %.4f, MSE %.4g", model, m["psnr"], m["ssim"], m["mse"])
  print(f"wrote {csv_path} and {md_path}")
  return rows
