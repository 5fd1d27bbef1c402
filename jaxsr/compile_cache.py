"""JAX's persistent compilation cache, on for every jaxsr command.

Each run of ``jaxsr upscale``, ``evaluate`` or ``train`` compiles its networks
again: one executable per model, tile shape and batch, seconds each on a CPU
and more for an RRDBNet train step. JAX can keep compiled executables on disk
and load them the next time the same computation is compiled for the same
devices and JAX version, so a second run of a command starts without
compiling. The cache only ever holds what a run would compute anyway:
deleting the folder is safe and costs the next run its start-up time again.

Compiling is not all a second run would repeat: before anything compiles,
flax traces the network in Python to learn its variables' shapes and the
memory of a pass, most of a warm start-up for RRDBNet. :func:`stored` keeps
such small facts beside the executables, as JSON keyed by what they depend
on and by jaxsr's own source, so a changed network never reads a stale one.

The folder, in order of precedence:
  * ``--compilation_cache=DIR`` (``none`` turns the cache off for that run);
  * JAX's own settings, for users who already made them: off with
    ``JAX_ENABLE_COMPILATION_CACHE=false``, else ``JAX_COMPILATION_CACHE_DIR``;
  * ``$XDG_CACHE_HOME/jaxsr/xla``, by default ``~/.cache/jaxsr/xla``.

:func:`enable` must run before the process compiles anything: JAX reads the
setting at its first compilation and keeps it.
"""
import functools
import hashlib
import json
import logging
import os
import pathlib
from typing import Any, Callable

import jax

from jaxsr.io import files

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


# The subfolder of the cache that stored() writes (JAX's own files lie beside it).
STORE = "jaxsr-facts"


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
  """A digest of jaxsr's source and the versions of jax and flax: any change
  to the code that decides a stored fact makes a new key."""
  import flax  # pylint: disable=import-outside-toplevel
  digest = hashlib.sha256(f"jax {jax.__version__} flax {flax.__version__}".encode())
  package = pathlib.Path(__file__).resolve().parent
  for path in sorted(package.rglob("*.py")):
    digest.update(str(path.relative_to(package)).encode())
    digest.update(path.read_bytes())
  return digest.hexdigest()


def active_dir() -> pathlib.Path | None:
  """The folder JAX's persistent cache is using now (None: off)."""
  if not jax.config.jax_enable_compilation_cache or not jax.config.jax_compilation_cache_dir:
    return None
  return pathlib.Path(jax.config.jax_compilation_cache_dir)


def stored(kind: str, key: Any, compute: Callable[[], Any]) -> Any:
  """``compute()``, kept in the cache folder for the next run with the same key.

  ``key`` (JSON-able) says what the value depends on besides jaxsr's code;
  the value must be JSON-able. With the cache off, or a file that cannot be
  read or written, the value is computed as if nothing were kept: the store
  only saves time, never changes a result.
  """
  folder = active_dir()
  if folder is None:
    return compute()
  name = hashlib.sha256(json.dumps([kind, key, code_fingerprint()], sort_keys=True,
                                   default=str).encode()).hexdigest()[:32]
  path = folder / STORE / f"{kind}-{name}.json"
  try:
    return json.loads(path.read_text())["value"]
  except (OSError, ValueError, KeyError, TypeError):
    pass
  value = compute()
  text = json.dumps({"kind": kind, "key": key, "value": value}, default=str)
  try:  # Whole or not at all, even with runs side by side.
    files.write_atomically(path, lambda tmp: pathlib.Path(tmp).write_text(text))
  except OSError as error:
    logging.debug("compilation cache: could not keep %s: %s", kind, error)
  return value
