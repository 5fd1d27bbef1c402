"""Entry point: ``python -m jaxsr.main --config=configs/srgan.py --workdir=DIR``.

Kept short on purpose: flags in, ``train.train_and_evaluate`` or
``train.evaluate_workdir`` out. Problems with the user's input end in one
line on stderr and exit status 2, not a traceback.
"""
import logging
import sys

from absl import app, flags
from ml_collections import config_flags

from jaxsr import huge_pages

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. configs/srgan.py or configs/srgan.py:tiny.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for checkpoints, logs and evaluations.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None,
    "host:port of process 0 for multi-process runs (else taken from the environment "
    "on TPU VMs and SLURM, or a single process).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval"],
                          "train: train (resuming if the workdir has a checkpoint), "
                          "then stop; eval: evaluate the latest checkpoint.")


def user_errors() -> tuple[type[BaseException], ...]:
  """Exceptions that mean bad input rather than a bug."""
  from jaxsr.data import sources, tfds_builders  # pylint: disable=g-import-not-at-top
  from jaxsr.io import images  # pylint: disable=g-import-not-at-top
  from jaxsr.models import vgg  # pylint: disable=g-import-not-at-top
  from jaxsr.training import checkpoint, train  # pylint: disable=g-import-not-at-top
  return (sources.DataError, images.ImageReadError, vgg.VGGWeightsError, train.ConfigError,
          train.TrainingDivergedError, checkpoint.CheckpointError, NotADirectoryError,
          tfds_builders.DatasetUnavailableError, FileNotFoundError, PermissionError)


class _QuietLibraries(logging.Filter):
  """Keeps jaxsr's INFO lines and the libraries' warnings; drops library chatter."""

  def filter(self, record):
    return record.levelno >= logging.WARNING or "/jaxsr/" in record.pathname


def _initialize_distributed():
  """Joins the other processes of a multi-host run, if this is one."""
  import os  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
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
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not _WORKDIR.value:
    raise app.UsageError("--workdir is required")
  try:
    config = _CONFIG.value
    if config is not None:
      config.get("name")  # A config file that failed to load raises only on use.
  except (IOError, OSError) as e:  # config_flags defers file errors to first use.
    _fail(f"bad config: {one_line(e)}")
  if config is None:
    raise app.UsageError("--config is required")
  logging.getLogger().setLevel(logging.INFO)
  # pydicom logs each failed decoder with a traceback; jaxsr names the file
  # and the problem itself.
  import pydicom  # pylint: disable=g-import-not-at-top,unused-import  # Its import sets the level.
  logging.getLogger("pydicom").setLevel(logging.CRITICAL)
  for handler in logging.getLogger().handlers:
    handler.addFilter(_QuietLibraries())
  from jaxsr.training import train  # pylint: disable=g-import-not-at-top
  _initialize_distributed()
  try:
    if _MODE.value == "train":
      train.train_and_evaluate(config, _WORKDIR.value)
    else:
      train.evaluate_workdir(config, _WORKDIR.value)
  except user_errors() as e:
    _fail(one_line(e))


def one_line(error: BaseException) -> str:
  """A readable single line from an exception whose text may hold a traceback."""
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  if any(line.startswith("Traceback") for line in lines):
    lines = lines[-1:]  # The exception that ended the embedded traceback.
  text = " ".join(lines) or type(error).__name__
  # ml_collections puts a repr (with literal \\n) of its hint in the message.
  return " ".join(text.replace("\\n", " ").replace("\\'", "'").split())


def _fail(message: str):
  print(f"jaxsr: error: {message}", file=sys.stderr)
  sys.exit(2)


def parse_flags(argv):
  """absl flag parsing, with config mistakes reported in one line."""
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # pylint: disable=broad-except
    # ml_collections reports unknown keys as AttributeError with a
    # 'Did you mean' hint, and config-file errors with their traceback.
    _fail(f"bad command line or config: {one_line(e)}")


if __name__ == "__main__":
  huge_pages.restart_with_huge_pages()  # Before jax allocates anything.
  app.run(main, flags_parser=parse_flags)
