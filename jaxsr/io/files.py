"""Publishing files written through a temporary name."""
import os


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
