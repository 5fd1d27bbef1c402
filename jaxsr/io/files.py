"""Writing output files through a temporary name, so a crash never leaves half a file."""
import contextlib
import os
import pathlib
import tempfile
from typing import Callable


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


def publish(tmp, path) -> None:
  """Gives ``tmp`` a new file's usual permissions and moves it to ``path``.

  ``tempfile.mkstemp`` creates files readable by their owner only; an
  upscaled study or a report must be as readable as any file the user makes.
  """
  os.chmod(tmp, 0o666 & ~_umask())
  os.replace(tmp, path)


def write_atomically(path, write_to: Callable[[str], None], suffix: str = ".tmp") -> pathlib.Path:
  """Calls ``write_to(tmp)`` on a temporary file beside ``path``, then publishes it.

  ``path`` either keeps its old content or gets the whole new file; the
  temporary file is removed if writing fails.
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
  os.close(fd)
  try:
    write_to(tmp)
    publish(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.unlink(tmp)
    raise
  return path
