"""A training workdir on disk: orbax checkpoints of the train state, the data
iterator and the config.

The trainer saves and resumes through this module; everything that reads a
trained generator back (evaluation, ``init_from``, weight conversion,
inference) goes through :func:`read_generator`, which takes the network
from the workdir's own saved config. Each saved step holds three items: ``state`` (every array of
:class:`TrainState`, restored against an abstract target so optax keeps its
structure), ``data`` (the grain iterator, one file per process) and ``config``
(JSON, so evaluation and inference can rebuild the networks from a workdir).
Orbax writes into a temporary folder and renames it when complete, so a
process killed mid-save leaves the previous checkpoint intact.
"""
import dataclasses
import logging
import pathlib

import grain
import jax
import orbax.checkpoint as ocp

from jaxsr import errors

CHECKPOINT_DIR = "checkpoints"


class CheckpointError(errors.UserError):
  """A checkpoint that cannot be used for this run; the message says why."""


class _QuietReadOnly(logging.Filter):
  """Orbax warns about every read-only manager (each eval, export, init_from);
  reading a finished run is what read-only is for."""

  def filter(self, record):
    message = record.getMessage()
    return "is read only" not in message and "read_only=True" not in message


_ABSL_LOGGER = logging.getLogger("absl")
if not any(isinstance(f, _QuietReadOnly) for f in _ABSL_LOGGER.filters):
  _ABSL_LOGGER.addFilter(_QuietReadOnly())


def manager(workdir, save_every: int = 1, keep: int = 3, read_only: bool = False):
  directory = pathlib.Path(workdir).expanduser().resolve() / CHECKPOINT_DIR
  options = ocp.CheckpointManagerOptions(
      max_to_keep=keep, save_interval_steps=save_every, create=not read_only,
      read_only=read_only, enable_async_checkpointing=False)
  return ocp.CheckpointManager(directory, options=options,
                               item_names=("state", "data", "config"))


def save(mngr: ocp.CheckpointManager, step: int, state, data_iter, config_dict: dict,
         force: bool = False) -> bool:
  args = {"state": ocp.args.StandardSave(state), "config": ocp.args.JsonSave(config_dict)}
  if data_iter is not None:
    args["data"] = grain.checkpoint.CheckpointSave(data_iter)
  saved = mngr.save(step, args=ocp.args.Composite(**args), force=force)
  if saved:
    logging.info("saved checkpoint at step %d in %s", step, mngr.directory)
  return saved


def abstract_like(tree, sharding):
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), tree)


def restore(mngr: ocp.CheckpointManager, step: int, abstract_state, data_iter=None):
  args = {"state": ocp.args.StandardRestore(abstract_state)}
  if data_iter is not None:
    args["data"] = grain.checkpoint.CheckpointRestore(data_iter)
  try:
    restored = mngr.restore(step, args=ocp.args.Composite(**args))
  except ValueError as e:
    saved = sorted(p.name for p in (mngr.directory / str(step) / "data").glob("process_*.json"))
    if data_iter is not None and "process_" in str(e) and saved:
      writers = saved[0].split("-of-")[-1].removesuffix(".json")
      raise CheckpointError(
          f"{mngr.directory / str(step)}: written by {writers} process(es), resumed with "
          f"{jax.process_count()}; resume with the same number of processes, or start a new "
          "run from it with --config.init_from") from None
    raise
  return restored["state"]


def latest_step(workdir) -> int | None:
  """The newest finished checkpoint's step, or None (no checkpoints folder or none finished)."""
  path = pathlib.Path(workdir).expanduser()
  if not (path / CHECKPOINT_DIR).is_dir():
    return None
  return manager(path, read_only=True).latest_step()


def read_config(workdir) -> dict | None:
  """The config a workdir's latest checkpoint was trained with."""
  step = latest_step(workdir)
  if step is None:
    return None
  mngr = manager(workdir, read_only=True)
  return mngr.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]


def read_state(mngr: ocp.CheckpointManager, step: int) -> dict:
  """The saved state as plain nested dicts on one local device.

  Works whatever mesh or process count wrote the checkpoint (the fallback
  sharding replaces a saved sharding that does not exist here).
  """
  local = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  args = ocp.args.StandardRestore(fallback_sharding=local)
  return mngr.restore(step, args=ocp.args.Composite(state=args))["state"]


@dataclasses.dataclass(frozen=True)
class SavedGenerator:
  """A workdir's generator as saved: its config (the network), weights and step."""
  config: dict
  params: dict
  batch_stats: dict
  step: int
  ema: bool  # Whether ``params`` are the EMA weights.


def read_generator(workdir, prefer_ema: bool = True) -> SavedGenerator:
  """The generator of a workdir's latest checkpoint, with the config it was trained with.

  The state is read without a target, so it does not matter what the run
  trained besides (discriminator, pool) or on how many devices.
  """
  path = pathlib.Path(workdir).expanduser()
  if not (path / CHECKPOINT_DIR).is_dir():
    raise CheckpointError(f"{path}: not a training workdir (no {CHECKPOINT_DIR}/ folder)")
  mngr = manager(path, read_only=True)
  step = mngr.latest_step()
  if step is None:
    raise CheckpointError(f"{path}: no finished checkpoint in {path / CHECKPOINT_DIR}")
  local = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  restored = mngr.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(fallback_sharding=local), config=ocp.args.JsonRestore()))
  state, config = restored["state"], restored["config"]
  ema = bool(prefer_ema and state.get("ema_params"))
  params = state["ema_params"] if ema else state["g_params"]
  return SavedGenerator(config=config, params=params, batch_stats=state.get("g_stats") or {},
                        step=int(step), ema=ema)
