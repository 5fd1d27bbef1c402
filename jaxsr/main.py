"""Trains or evaluates a GAN: ``jaxsr train --config=configs/srgan.py --workdir=DIR``.

Kept short on purpose: flags in, ``train.train_and_evaluate`` or
``train.evaluate_workdir`` out. Problems with the user's input end in one
line on stderr and exit status 2, not a traceback (``jaxsr.errors``).
"""
import contextlib
import importlib.resources
import logging
import os
import pathlib
import sys
import textwrap

from absl import app, flags
import jax
from ml_collections import config_flags

from jaxsr import config as base
from jaxsr import compile_cache, errors, huge_pages
from jaxsr.models import vgg
from jaxsr.training import train

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config: a shipped one by name (srgan, realesrgan:tiny; "
    "--show_config lists its keys) or a file (configs/srgan.py, my_config.py:tiny); "
    "override keys with --config.KEY=VALUE.",
    lock_config=True)
_SHOW_CONFIG = flags.DEFINE_bool(
    "show_config", False, "Print every key of the resolved --config (overrides included) "
    "with its value and meaning, then exit without training.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for checkpoints, logs and evaluations.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None,
    "host:port of process 0 for multi-process runs (else taken from the environment "
    "on TPU VMs and SLURM, or a single process).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")
_COMPILATION_CACHE = flags.DEFINE_string(compile_cache.FLAG, None, compile_cache.HELP)
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval"],
                          "train: train (resuming if the workdir has a checkpoint), "
                          "then stop; eval: evaluate the latest checkpoint.")
# absl files flags under the defining module's name, or under sys.argv[0]
# when that module is __main__ (python -m jaxsr.main).
_FLAGS_MODULE = sys.argv[0] if __name__ == "__main__" else __name__

# What ``--help`` says each mode is for.
DESCRIPTIONS = {
    "train": "Trains a super-resolution generator (and its discriminator, for the GAN "
             "recipes) on a folder of radiographs, as the --config recipe says. Rerunning "
             "the same command resumes from the workdir's latest checkpoint; Ctrl-C saves "
             "a checkpoint first. Evaluations, TensorBoard logs and checkpoints go to "
             "--workdir.",
    "eval": "Evaluates the latest checkpoint of a training workdir against bicubic on "
            "the config's eval images (PSNR, SSIM, MSE): WORKDIR/eval/metrics.csv and "
            "summary.md.",
}
USAGE = ("usage: {prog} --config=NAME[:tiny]|FILE.py[:tiny] --workdir=DIR "
         "[--config.KEY=VALUE ...] [flags]\n"
         "       {prog} --config=... [--config.KEY=VALUE ...] --show_config")
HELP_FLAGS = ("-h", "--help", "-help", "-?")  # --helpshort/--helpfull stay absl's.


def user_errors() -> tuple[type[BaseException], ...]:
  """Exceptions that mean bad input rather than a bug."""
  return errors.USER_ERRORS + (vgg.VGGWeightsError,)


class _QuietLibraries(logging.Filter):
  """Keeps jaxsr's INFO lines and the libraries' warnings; drops library chatter."""

  def filter(self, record):
    return record.levelno >= logging.WARNING or "/jaxsr/" in record.pathname


def _initialize_distributed():
  """Joins the other processes of a multi-host run, if this is one."""
  if _COORDINATOR.value:
    jax.distributed.initialize(coordinator_address=_COORDINATOR.value,
                               num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value)
  elif (int(os.environ.get("SLURM_NTASKS", "1")) > 1 or "TPU_WORKER_HOSTNAMES" in os.environ
        or "JAX_COORDINATOR_ADDRESS" in os.environ):
    jax.distributed.initialize()  # Cluster auto-detection (SLURM, Cloud TPU, env).
  if jax.process_count() > 1:
    logging.info("process %d of %d, %d local / %d global devices", jax.process_index(),
                 jax.process_count(), jax.local_device_count(), jax.device_count())


def main(argv):
  if len(argv) > 1:
    errors.fail(f"unexpected arguments: {' '.join(argv[1:])}")
  try:
    config = _CONFIG.value
    if config is not None:
      config.get("name")  # A config file that failed to load raises only on use.
  except (IOError, OSError) as e:  # config_flags defers file errors to first use.
    errors.fail(f"bad config: {errors.one_line(e)}")
  if config is None:
    errors.fail(f"--config is required: a file or one of {', '.join(shipped_configs())}")
  if _SHOW_CONFIG.value:
    try:
      print(base.show(config), flush=True)
    except BrokenPipeError:  # `... --show_config | head`: the reader has what it wanted.
      os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return
  if not _WORKDIR.value:
    errors.fail("--workdir is required")
  logging.getLogger().setLevel(logging.INFO)
  errors.quiet_libraries()
  for handler in logging.getLogger().handlers:
    handler.addFilter(_QuietLibraries())
  compile_cache.enable(_COMPILATION_CACHE.value)
  try:
    _initialize_distributed()
    if _MODE.value == "train":
      train.train_and_evaluate(config, _WORKDIR.value)
    else:
      train.evaluate_workdir(config, _WORKDIR.value)
  except KeyboardInterrupt:
    errors.exit_interrupted()
  except train.TrainingStopped as e:
    print(f"{errors.PREFIX}: {e}", file=sys.stderr, flush=True)
    sys.exit(128 + e.signum)
  except user_errors() as e:
    errors.fail(errors.one_line(e))


# Shipped configs copied out of a zipped install, kept until the process ends.
_EXTRACTED = contextlib.ExitStack()


def _configs_folder():
  """The shipped configs: the package jaxsr.configs of an install (editable or
  not), else the repository's configs/ beside jaxsr/ (a checkout on PYTHONPATH)."""
  try:
    return importlib.resources.files("jaxsr.configs")
  except ModuleNotFoundError:
    return pathlib.Path(__file__).resolve().parent.parent / "configs"


def shipped_configs() -> list[str]:
  """Names of the shipped configs, as ``--config=NAME`` takes them."""
  folder = _configs_folder()
  if not folder.is_dir():
    return []
  return sorted(entry.name[:-3] for entry in folder.iterdir()
                if entry.name.endswith(".py") and not entry.name.startswith("_"))


def is_config_name(value: str) -> bool:
  """A bare name (``srgan``, ``srgan:tiny``) rather than a path (which has a '/' or '.py')."""
  path = value.split(":", 1)[0]
  return bool(path) and "/" not in path and os.sep not in path and ".py" not in path


def config_path(value: str) -> str:
  """``--config``'s value with a shipped config's name replaced by its file.

  config_flags loads configs from files, so the name is resolved before it
  parses: ``realesrgan:tiny`` becomes ``.../configs/realesrgan.py:tiny``.
  Paths are returned as given.
  """
  if not is_config_name(value):
    return value
  name, sep, arg = value.partition(":")
  if name not in shipped_configs():
    errors.fail(f"--config={value}: no shipped config '{name}'; choose one of "
                f"{', '.join(shipped_configs())} or give a file (path/to/config.py)")
  path = _configs_folder() / f"{name}.py"
  if not isinstance(path, pathlib.Path):  # A zipped install: config_flags needs a real file.
    path = _EXTRACTED.enter_context(importlib.resources.as_file(path))
  return f"{path}{sep}{arg}"


def resolve_config_names(argv: list[str]) -> list[str]:
  """``argv`` with every ``--config`` value naming a shipped config made a path.

  Takes absl's spellings: ``--config=V``, ``-config=V``, ``--config V`` and
  ``-config V``; arguments after ``--`` are left alone.
  """
  out, args = list(argv[:1]), list(argv[1:])
  i = 0
  while i < len(args):
    arg = args[i]
    if arg == "--":
      out.extend(args[i:])
      break
    flag, eq, value = arg.partition("=")
    if flag in ("--config", "-config") and eq:
      out.append(f"{flag}={config_path(value)}")
    elif arg in ("--config", "-config") and i + 1 < len(args):
      out.extend([arg, config_path(args[i + 1])])
      i += 1
    else:
      out.append(arg)
    i += 1
  return out


def parse_flags(argv):
  """absl flag parsing, with config mistakes reported in one line."""
  argv = resolve_config_names(argv)
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # pylint: disable=broad-except
    # ml_collections reports unknown keys as AttributeError with a
    # 'Did you mean' hint, and config-file errors with their traceback.
    errors.fail(f"bad command line or config: {errors.one_line(e)}")


def wants_help(argv) -> bool:
  args = list(argv[1:])
  if "--" in args:
    args = args[:args.index("--")]
  return any(arg in HELP_FLAGS for arg in args)


def help_text(argv) -> str:
  """What ``--help`` prints: what the command is for, then its flags and defaults.

  absl's own help prints the docstring of ``__main__`` and the flags filed
  under ``sys.argv[0]``, which under the ``jaxsr`` script are neither this
  module's docstring nor its flags.
  """
  prog = argv[0] if argv and argv[0].startswith("jaxsr ") else "python -m jaxsr.main"
  mode = "eval" if any(a in ("--mode=eval", "-mode=eval") for a in argv[1:]) else "train"
  names = ", ".join(shipped_configs()) or "(none found)"
  shipped = textwrap.fill(f"Shipped configs (--config=NAME or NAME:tiny): {names}.", 80)
  return (f"{USAGE.format(prog=prog)}\n\n{textwrap.fill(DESCRIPTIONS[mode], 80)}\n\n"
          f"{shipped}\n\nflags:\n{flags.FLAGS.module_help(_FLAGS_MODULE)}\n")


def run(argv=None):
  """The command line: ``argv`` as ``sys.argv`` (program name first).

  ``jaxsr train``/``jaxsr eval`` call it with their own program name; the
  caller installs the Ctrl-C watcher (errors.install_interrupt_watcher).
  """
  argv = list(sys.argv if argv is None else argv)
  if wants_help(argv):
    print(help_text(argv), end="")
    sys.exit(0)
  if _FLAGS_MODULE != sys.argv[0]:
    # Under the jaxsr script absl's --helpshort looks for flags filed under the
    # script's path; file this module's there too.
    for flag in flags.FLAGS.get_flags_for_module(_FLAGS_MODULE):
      flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
  app.run(main, argv=argv, flags_parser=parse_flags)


if __name__ == "__main__":
  huge_pages.restart_with_huge_pages()  # Before jax allocates anything.
  errors.install_interrupt_watcher()
  run()
