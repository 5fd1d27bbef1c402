"""One trainer for SRResNet/SRGAN, ESRGAN and Real-ESRGAN: the config decides.

``train_and_evaluate(config, workdir)`` builds the mesh, networks, data and
state, resumes from the workdir's latest checkpoint if there is one, runs the
jit-compiled step until ``train.num_steps``, and evaluates every
``train.eval_every`` steps and at the end. ``evaluate_workdir`` scores the
latest checkpoint (``--mode=eval``). Both evaluations are
``jaxsr.evaluation.evaluate``, the same as ``jaxsr evaluate``.
"""
import dataclasses
import functools
import json
import logging
import pathlib
import signal
import sys
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from jaxsr import degradations, errors, models, pretrained, weights
from jaxsr import workdir as workdir_lib
from jaxsr.data import pipeline
from jaxsr.evaluation import evaluate
from jaxsr.inference import model as model_lib
from jaxsr.models import vgg as vgg_lib
from jaxsr.training import logger, optim, sharding, steps
from jaxsr.training.state import TrainState, generator_variables, split_variables

ConfigError = errors.ConfigError


class TrainingDivergedError(errors.UserError):
  """Too many consecutive non-finite losses; the last good checkpoint is kept."""


class TrainingStopped(Exception):
  """SIGINT/SIGTERM stopped the run before its last step, after a checkpoint.

  Raised rather than returned so that the process exits non-zero (128 plus
  the signal, as a shell reports it): a script or scheduler then knows the
  run is unfinished and runs the same command again to resume it.
  """

  def __init__(self, signum: int, step: int, num_steps: int):
    super().__init__(f"stopped by signal {signum} at step {step} of {num_steps}; checkpoint "
                     "saved: run the same command to resume")
    self.signum = signum


def check_config(config: ml_collections.ConfigDict):
  if config.scale not in (2, 3, 4):
    raise ConfigError(f"scale={config.scale}: use 2, 3 or 4")
  if config.data.source not in ("images", "volumes"):
    raise ConfigError(f"data.source={config.data.source!r}: use 'images' or 'volumes'")
  if config.data.source == "volumes" and not config.data.train_dir:
    raise ConfigError("data.source='volumes' reads folders: set data.train_dir (and eval_dir)")
  for key in ("train_slices", "eval_slices"):
    if len(tuple(config.data[key])) != 2:
      raise ConfigError(f"data.{key}={tuple(config.data[key])}: give (start, stop)")
  if config.data.all_axes and (tuple(config.data.train_slices) != (0, 0)
                               or tuple(config.data.eval_slices) != (0, 0)):
    raise ConfigError("data.all_axes=True with slice ranges: a range along one axis does "
                      "not split the other axes; split by patient and leave "
                      "data.train_slices/eval_slices at (0, 0)")
  if config.data.all_axes and config.data.source != "volumes":
    raise ConfigError("data.all_axes=True needs data.source='volumes'")
  if config.data.slice_axis not in (-1, 0, 1, 2):
    raise ConfigError(f"data.slice_axis={config.data.slice_axis}: use 0, 1, 2 or -1")
  hu_range = tuple(config.data.hu_range)
  if len(hu_range) != 2 or not float(hu_range[1]) > float(hu_range[0]):
    raise ConfigError(f"data.hu_range={hu_range}: give (low, high) in HU with high > low")
  if config.data.patch_size % config.scale:
    raise ConfigError(f"data.patch_size={config.data.patch_size} must be a multiple of "
                      f"scale={config.scale}")
  if config.num_channels not in (1, 3):
    raise ConfigError(f"num_channels={config.num_channels}: use 1 (grey) or 3")
  if config.train.num_steps < 1:
    raise ConfigError(f"train.num_steps={config.train.num_steps} must be positive")
  degradation = degradations.get(config.degradation.name)
  degradation.check(config)
  degradations.get(config.eval.degradation)
  usm = [k for k in ("pixel_on_usm", "perceptual_on_usm", "gan_on_usm") if config.loss[k]]
  if usm and not degradation.makes_usm_target:
    raise ConfigError(f"loss.{usm[0]} needs a degradation that makes a sharpened target "
                      f"(degradation.name='{config.degradation.name}' does not)")


def build_modules(config, devices):
  """Networks and optimizers named by the config, for a step on ``devices``."""
  generator = models.build_generator(config.model, config.num_channels, config.scale, devices)
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
  g_schedule = optim.make_schedule(config.optim_g.lr, config.optim_g)
  d_schedule = optim.make_schedule(config.optim_d.lr, config.optim_d) if discriminator else None
  return steps.StepModules(
      generator, discriminator, vgg, optim.make_optimizer(g_schedule, config.optim_g),
      optim.make_optimizer(d_schedule, config.optim_d) if discriminator else None,
      g_schedule=g_schedule, d_schedule=d_schedule)


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
  pool = degradations.get(config.degradation.name).init_state(
      config, pipeline.global_batch_size(config))
  return TrainState(step=jnp.zeros((), jnp.int32), rng=key, g_params=g_params, g_stats=g_stats,
                    g_opt=mods.g_tx.init(g_params), d_params=d_params, d_stats=d_stats,
                    d_opt=d_opt, ema_params=ema, pool=pool,
                    bad_steps=jnp.zeros((), jnp.int32))


# ----------------------------------------------------------------------------
# What a saved config must share with the current one.

def _flat(tree: dict, prefix: str = "") -> dict:
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(_flat(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = tuple(value) if isinstance(value, list) else value
  return out


def network_keys(config: dict) -> dict:
  """The keys that define the generator's weights (not how it is run)."""
  flat = _flat(config)
  keep = {"scale", "num_channels"}
  return {k: v for k, v in flat.items()
          if k in keep or (k.startswith("model.") and k[6:] not in models.EXECUTION_KEYS)}


def state_keys(config: dict) -> dict:
  """The keys that shape the whole train state (what a resume must match)."""
  flat = _flat(config)
  out = network_keys(config)
  uses_d = flat.get("loss.gan_weight", 0) > 0
  if uses_d:
    out.update({k: v for k, v in flat.items() if k.startswith("discriminator.")})
  out.update({k: flat.get(k) for k in ("degradation.name", "degradation.queue_size",
                                       "data.patch_size")})
  out["train.ema_decay > 0"] = flat.get("train.ema_decay", 0) > 0
  out["loss.gan_weight > 0"] = uses_d
  for opt in ("optim_g", "optim_d"):
    out[f"{opt}.schedule"] = flat.get(f"{opt}.schedule")
  return out


def differences(saved: dict, current: dict) -> list[str]:
  """``key: saved -> current`` for every key whose values differ."""
  keys = sorted(set(saved) | set(current))
  return [f"{k} {saved.get(k, '(none)')!r} (saved) vs {current.get(k, '(none)')!r}"
          for k in keys if saved.get(k) != current.get(k)]


def _init_from(state: TrainState, source: str, mods, config) -> TrainState:
  """Starts G (and its EMA) from another stage's generator: a workdir, a shipped
  model's name (fine-tuning ``xray_x2`` on CT, say) or a weights file."""
  if pretrained.resolve(source).is_dir():
    try:
      saved = workdir_lib.read_generator(source)
    except (workdir_lib.CheckpointError, FileNotFoundError) as e:
      raise ConfigError(f"init_from={source}: {errors.one_line(e)}") from None
    mine = network_keys(json.loads(config.to_json()))
    diff = differences(network_keys(saved.config), mine)
    if diff:
      raise ConfigError(f"init_from={source}: its generator differs from this config's: "
                        + "; ".join(diff))
  else:
    saved = _saved_weights(source, config)
  cast = lambda ref, new: jnp.asarray(new, ref.dtype).reshape(ref.shape)
  try:
    params = jax.tree.map(cast, state.g_params, saved.params)
    stats = jax.tree.map(cast, state.g_stats, saved.batch_stats) if state.g_stats else {}
  except (ValueError, TypeError) as e:
    raise ConfigError(f"init_from={source}: its generator does not fit model "
                      f"'{config.model.name}' ({errors.one_line(e)})") from None
  logging.info("generator initialised from %s (step %d)", source, saved.step)
  ema = jax.tree.map(jnp.copy, params) if state.ema_params else {}
  return state.replace(g_params=params, g_stats=stats or state.g_stats,
                       g_opt=mods.g_tx.init(params), ema_params=ema)


def _saved_weights(source: str, config) -> workdir_lib.SavedGenerator:
  """A shipped model or weights file as a SavedGenerator, checked against the config."""
  try:
    _, variables, info = weights.load_generator(source)
  except (weights.WeightsError, FileNotFoundError) as e:
    raise ConfigError(f"init_from={source}: {errors.one_line(e)}") from None
  arch = weights.canonical_arch(config.model.name)
  found = (info.get("arch"), info.get("scale"), info.get("num_channels"))
  wanted = (arch, config.scale, config.num_channels)
  if found != wanted:
    raise ConfigError(f"init_from={source}: holds {found[0]} x{found[1]} with {found[2]} "
                      f"channel(s), this config trains {wanted[0]} x{wanted[1]} with "
                      f"{wanted[2]}")
  return workdir_lib.SavedGenerator(config={}, params=variables["params"],
                                    batch_stats=variables.get("batch_stats") or {}, step=0,
                                    ema=False)


# ----------------------------------------------------------------------------
# Setup.

@dataclasses.dataclass
class Compiled:
  """The jitted pieces of a run on one mesh."""
  init_fn: Callable
  state_sharding: Any
  init: Callable       # () -> a fresh, sharded TrainState
  train_step: Callable  # (state, batch, rng, vgg_params) -> (state, metrics); donates state


def compile_step(config, mods: steps.StepModules, mesh, donate: bool = True) -> Compiled:
  """The train step and state initialiser, jitted with the mesh's shardings.

  The same function serves 1 CPU device, 8 virtual devices and many hosts:
  the batch is split over the mesh's data axis, the state replicated (or
  FSDP-split where ``train.fsdp_regex`` says).
  """
  repl = sharding.replicated(mesh)
  init_fn = functools.partial(init_state, config, mods)
  state_sharding = sharding.state_shardings(jax.eval_shape(init_fn), mesh,
                                            config.train.fsdp_regex, config.train.fsdp_min_size)
  step_fn = steps.make_train_step(mods, config.loss, config.train.ema_decay,
                                  degradations.get(config.degradation.name).device_fn(config),
                                  ema_warmup=config.train.ema_warmup)
  train_step = jax.jit(step_fn,
                       in_shardings=(state_sharding, sharding.data_sharded(mesh), repl, repl),
                       out_shardings=(state_sharding, repl),
                       donate_argnums=(0,) if donate else ())
  return Compiled(init_fn, state_sharding, jax.jit(init_fn, out_shardings=state_sharding),
                  train_step)


def _check_resume(saved_config: dict | None, config_dict: dict, directory):
  if saved_config is None:
    return
  diff = differences(state_keys(saved_config), state_keys(config_dict))
  if diff:
    raise ConfigError(f"{directory}: the checkpoint was trained with another config ("
                      + "; ".join(diff) + "); resume with the config it was trained with, or "
                      "start a new workdir with --config.init_from")


def _restore(mngr, latest, compiled, data_iter, saved_config, config_dict):
  abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                          jax.eval_shape(compiled.init_fn), compiled.state_sharding)
  try:
    return workdir_lib.restore(mngr, latest, abstract, data_iter)
  except workdir_lib.CheckpointError:
    raise
  except (ValueError, KeyError, TypeError) as e:
    diff = differences(_flat(saved_config or {}), _flat(config_dict))
    raise ConfigError(f"{mngr.directory / str(latest)}: cannot resume with this config ("
                      + ("; ".join(diff[:6]) or errors.one_line(e)) + ")") from None


@dataclasses.dataclass
class Run:
  mods: steps.StepModules
  compiled: Compiled
  state: TrainState
  data_iter: Any
  mngr: Any
  vgg_params: Any


def setup(config, workdir, mesh) -> Run:
  """Everything a run needs: modules, jitted step, state and the data iterator."""
  check_config(config)
  mods = build_modules(config, mesh.devices.flat)
  vgg_params = load_vgg_params(config)
  sharding.check_batch_divisible(pipeline.global_batch_size(config), mesh)
  train_source = pipeline.make_source(config.data, "train", min_size=config.data.patch_size)
  data_iter = iter(pipeline.train_dataset(config, train_source))
  compiled = compile_step(config, mods, mesh)
  mngr = workdir_lib.manager(workdir, save_every=config.train.checkpoint_every,
                             keep=config.train.keep_checkpoints)
  latest = mngr.latest_step()
  config_dict = json.loads(config.to_json())
  if latest is not None:
    saved_config = workdir_lib.read_config(workdir)
    _check_resume(saved_config, config_dict, mngr.directory)
    state = _restore(mngr, latest, compiled, data_iter, saved_config, config_dict)
    logging.info("resumed from %s at step %d", mngr.directory, latest)
  else:
    state = compiled.init()
    if config.init_from:
      state = jax.device_put(_init_from(state, config.init_from, mods, config),
                             compiled.state_sharding)
  vgg_params = jax.device_put(vgg_params, sharding.replicated(mesh))
  return Run(mods, compiled, state, data_iter, mngr, vgg_params)


# ----------------------------------------------------------------------------
# Evaluation (periodic and --mode=eval).

def eval_images(config):
  """(name, load) of the evaluation images, scanned once; None when there are none.

  The eval folder, or the tensorflow-datasets eval split when training from
  the dataset; a run on a train folder without ``data.eval_dir`` does not
  evaluate.
  """
  if not config.data.eval_dir and config.data.train_dir:
    return None
  source = pipeline.make_source(config.data, "eval", min_size=config.scale)
  return source.whole_images()


def eval_setup(config) -> evaluate.Setup:
  e = config.eval
  return evaluate.Setup(scale=config.scale, degradation=e.degradation, seed=config.seed,
                        crop_border=e.crop_border, center_crop=e.center_crop, tile=e.tile,
                        tile_overlap=e.tile_overlap, figure_crop=e.figure_crop,
                        max_images=e.max_images, num_samples=e.num_samples,
                        groups=evaluate.parse_groups(e.groups))


class PeriodicEval:
  """Evaluates the training state on the eval images (process 0 scores and writes).

  The eval network is built once, for the one device it runs on, so its
  forward pass compiles once per tile shape for the whole run.
  """

  def __init__(self, config, workdir: pathlib.Path, items):
    self.config, self.workdir, self.items = config, workdir, items
    generator = models.build_generator(config.model, config.num_channels, config.scale,
                                       [model_lib.inference_device()])
    self.model = model_lib.Model(generator, {}, {"arch": config.model.name,
                                                 "source": str(workdir)})
    self.setup = eval_setup(config)

  def __call__(self, state: TrainState, step: int, log: logger.TrainLogger) -> dict | None:
    variables = generator_variables(state, self.config.eval.use_ema)
    if jax.process_count() > 1:
      variables = multihost_utils.process_allgather(variables, tiled=True)  # Every process.
    if jax.process_index() != 0:
      return None
    variables = jax.device_put(jax.device_get(variables), model_lib.inference_device())
    name = self.config.name
    out = self.workdir / "eval" / f"step_{step:07d}"
    result = evaluate.evaluate([(name, self.model.with_variables(variables))], self.items,
                               self.setup, output=out, log=logging.info)
    for line in result.failed:
      logging.warning("evaluation: failed: %s", line)
    if not result.rows:
      logging.warning("evaluation at step %d: no image could be scored", step)
      return None
    means = evaluate.mean_metrics(result.rows, name)
    base = evaluate.mean_metrics(result.rows, "bicubic")
    log.scalars(step, {**{f"eval/{k}": v for k, v in means.items()},
                       **{f"eval/bicubic_{k}": v for k, v in base.items()},
                       "eval/psnr_gain_over_bicubic": means["psnr"] - base["psnr"]})
    log.images(step, result.samples)
    logging.info("eval at step %d (%d images, %s): PSNR %.2f dB (bicubic %.2f), SSIM %.4f "
                 "(bicubic %.4f); %s", step, result.count, self.setup.degradation,
                 means["psnr"], base["psnr"], means["ssim"], base["ssim"], out)
    return means


# ----------------------------------------------------------------------------
# The loop.

def _install_stop_handlers():
  """SIGTERM/SIGINT ask the loop to checkpoint and stop at the next step."""
  stop = {"signal": None}

  def handler(signum, frame):
    del frame
    stop["signal"] = signum

  previous = {}
  for sig in (signal.SIGTERM, signal.SIGINT):
    try:
      previous[sig] = signal.signal(sig, handler)
    except ValueError:  # Not the main thread (e.g. inside a notebook worker).
      pass
  return stop, previous


def _restore_handlers(previous: dict):
  for sig, handler in previous.items():
    signal.signal(sig, handler)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  workdir = pathlib.Path(workdir).expanduser()
  try:
    workdir.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise NotADirectoryError(f"{workdir}: cannot create the workdir ({e.strerror or e})") from None
  mesh = sharding.make_mesh(config.train.num_devices or None)
  logging.info("mesh: %s", dict(mesh.shape))
  run = setup(config, workdir, mesh)
  items = eval_images(config)
  periodic = PeriodicEval(config, workdir, items) if items else None
  if periodic is None:
    logging.info("no data.eval_dir: this run will not evaluate")
  config_dict = json.loads(config.to_json())
  if jax.process_index() == 0:
    (workdir / "config.json").write_text(json.dumps(config_dict, indent=2))

  mods, mngr, state, data_iter = run.mods, run.mngr, run.state, run.data_iter
  num_steps = config.train.num_steps
  step = int(jax.device_get(state.step))
  log = logger.TrainLogger(workdir, num_steps=num_steps, batch_size=config.data.batch_size,
                           start_step=step, log_every=config.train.log_every,
                           schedules={"lr/generator": mods.g_schedule,
                                      "lr/discriminator": mods.d_schedule})
  stop, previous = _install_stop_handlers()
  check_every = max(1, min(config.train.log_every, config.train.max_bad_steps))
  base_rng = np.asarray(jax.device_get(state.rng))  # The state is donated each step.
  try:
    while step < num_steps:
      batch = sharding.put_batch(next(data_iter), mesh)
      state, metrics = run.compiled.train_step(state, batch, jax.random.fold_in(base_rng, step),
                                               run.vgg_params)
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
      saved = workdir_lib.save(mngr, step, state, data_iter, config_dict)
      if stop["signal"] is not None:
        if not saved:
          workdir_lib.save(mngr, step, state, data_iter, config_dict, force=True)
        logging.warning("stopped by signal %d at step %d; checkpoint saved", stop["signal"], step)
        break
      if (periodic is not None and config.train.eval_every and step % config.train.eval_every == 0
          and step < num_steps):
        periodic(state, step, log)
        log.resume_clock(step)
    if step >= num_steps and mngr.latest_step() != step:
      workdir_lib.save(mngr, step, state, data_iter, config_dict, force=True)
    mngr.wait_until_finished()
  finally:
    _restore_handlers(previous)
  if step >= num_steps and stop["signal"] is None and periodic is not None:
    periodic(state, step, log)
  log.close()
  if stop["signal"] is not None and step < num_steps:
    raise TrainingStopped(stop["signal"], step, num_steps)
  return state


def evaluate_workdir(config: ml_collections.ConfigDict, workdir: str) -> evaluate.Result:
  """``--mode=eval``: the latest checkpoint and bicubic on the eval set.

  The network is the one the workdir was trained with (its saved config);
  the config given here says only how and on what to evaluate.
  """
  workdir = pathlib.Path(workdir).expanduser()
  if workdir_lib.latest_step(workdir) is None:
    raise FileNotFoundError(f"{workdir}: no checkpoint to evaluate; train first")
  model = model_lib.load(workdir, use_ema=config.eval.use_ema)
  saved = workdir_lib.read_config(workdir) or {}
  diff = differences(network_keys(saved), network_keys(json.loads(config.to_json())))
  if diff:
    logging.info("evaluating the network %s was trained with, not the config's (%s)", workdir,
                 "; ".join(diff))
  config = ml_collections.ConfigDict(json.loads(config.to_json()))
  config.scale = model.scale
  degradations.get(config.eval.degradation)
  if not config.data.eval_dir and config.data.train_dir:
    raise ConfigError("no evaluation data: set --config.data.eval_dir to a folder of images")
  items = eval_images(config)
  name = saved.get("name") or config.name
  result = evaluate.evaluate([(name, model)], items, eval_setup(config), output=workdir / "eval",
                             log=logging.info)
  for line in result.failed:
    print(f"jaxsr: failed: {line}", file=sys.stderr)
  if not result.rows:
    raise errors.UserError(f"{workdir}: none of the {len(items)} evaluation images could be scored")
  for model_name in dict.fromkeys(r.model for r in result.rows):
    m = evaluate.mean_metrics(result.rows, model_name)
    logging.info("%s: PSNR %.2f dB, SSIM %.4f, MSE %.4g", model_name, m["psnr"], m["ssim"],
                 m["mse"])
  print(f"wrote {workdir / 'eval'}/metrics.csv, summary.md, metrics.png and crops/ "
        f"({result.count} images, step {model.info.get('step')})", file=sys.stderr)
  return result
