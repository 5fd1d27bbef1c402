"""JAX's persistent compilation cache, on for every jaxsr command.

Each run of ``jaxsr upscale``, ``evaluate`` or ``train`` compiles its networks
again: one executable per model, tile shape and batch, seconds each on a CPU
and more for an RRDBNet train step. JAX can keep compiled executables on disk
and load them the next time the same computation is compiled for the same
devices and JAX version, so a second run of a command starts without
compiling. The cache only ever holds what JAX would compile anyway: deleting
the folder is safe and costs the next run its compile time again.

The folder, in order of precedence:
  * ``--compilation_cache=DIR`` (``none`` turns the cache off for that run);
  * JAX's own settings, for users who already made them: off with
    ``JAX_ENABLE_COMPILATION_CACHE=false``, else ``JAX_COMPILATION_CACHE_DIR``;
  * ``$XDG_CACHE_HOME/jaxsr/xla``, by default ``~/.cache/jaxsr/xla``.

:func:`enable` must run before the process compiles anything: JAX reads the
setting at its first compilation and keeps it.
"""
import logging
import os
import pathlib

import jax

FLAG = "compilation_cache"
OFF = "none"
HELP = ("folder of JAX's persistent compilation cache, so that a second run skips "
        "compiling (safe to delete); 'none': off. Default: JAX's own settings "
        "(JAX_ENABLE_COMPILATION_CACHE, JAX_COMPILATION_CACHE_DIR), else ~/.cache/jaxsr/xla")

# Cache every executable, however quick its compilation: a command compiles many
# small functions (resizes, metrics, one per tile shape) whose times add up at start-up.
MIN_COMPILE_SECONDS = 0.0


def default_dir() -> pathlib.Path:
  """The user's cache folder for jaxsr's executables (XDG base directories)."""
  home = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
  return pathlib.Path(home) / "jaxsr" / "xla"


def add_argument(parser) -> None:
  """Adds ``--compilation_cache`` to an argparse parser."""
  parser.add_argument(f"--{FLAG}", default=None, help=HELP)


def resolve(folder: str | None) -> pathlib.Path | None:
  """The folder a ``--compilation_cache`` value means; None when off."""
  if folder is None:
    if not jax.config.jax_enable_compilation_cache:  # JAX_ENABLE_COMPILATION_CACHE=false
      return None
    folder = jax.config.jax_compilation_cache_dir or str(default_dir())
  if not folder or folder.lower() == OFF:
    return None
  return pathlib.Path(folder).expanduser()


def enable(folder: str | None = None) -> pathlib.Path | None:
  """Points JAX's persistent cache at ``folder`` (see :func:`resolve`); returns it.

  A folder that cannot be created or written is reported in one warning and the
  run goes on without the cache: it only saves time.
  """
  path = resolve(folder)
  if path is None:
    jax.config.update("jax_enable_compilation_cache", False)
    return None
  try:
    path.mkdir(parents=True, exist_ok=True)
    if not os.access(path, os.W_OK):
      raise PermissionError(f"{path} is not writable")
  except OSError as error:
    logging.warning("compilation cache off: %s", error)
    jax.config.update("jax_enable_compilation_cache", False)
    return None
  jax.config.update("jax_enable_compilation_cache", True)
  jax.config.update("jax_compilation_cache_dir", str(path))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return path
