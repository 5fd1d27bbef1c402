"""What a command tells its user when something goes wrong, and how it exits.

Every jaxsr command follows the same rules, so scripts can rely on them:

* exit 0: everything asked for was done;
* exit 1: some items (files, images, volumes) failed; each was reported on
  its own line, ``jaxsr: failed: <path>: <problem>``, and the rest was done;
* exit 2: the command could not run (arguments, config, weights, data):
  one line ``jaxsr: error: <problem>``, no traceback;
* exit 130: interrupted (Ctrl-C) before its work was done.

A problem with the user's input raises a :class:`UserError` (or one of the
standard errors in :data:`USER_ERRORS`); anything else is a bug and keeps its
traceback.
"""
import logging
import os
import signal
import sys
import threading

PREFIX = "jaxsr"
INTERRUPTED = 130


class UserError(ValueError):
  """A problem with what the user gave (arguments, config, files); one line."""

  def __init__(self, message: str = ""):
    super().__init__(one_line_text(str(message)))


class ConfigError(UserError):
  """A config that cannot work; the message names the key."""


class UsageError(UserError):
  """Arguments that do not fit together."""


# Standard errors that mean bad input when they reach a command's top level.
USER_ERRORS = (UserError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
               PermissionError, FileExistsError)


def one_line_text(text: str) -> str:
  """``text`` on one line; an embedded traceback is reduced to its last line."""
  lines = [line.strip() for line in str(text).splitlines() if line.strip()]
  if any(line.startswith("Traceback") for line in lines):
    lines = lines[-1:]  # The exception that ended the embedded traceback.
  # ml_collections puts a repr (with literal \n) of its hint in the message.
  return " ".join(" ".join(lines).replace("\\n", " ").replace("\\'", "'").split())


def one_line(error: BaseException) -> str:
  """A readable single line for an exception."""
  return one_line_text(str(error)) or type(error).__name__


def item_message(path, error: BaseException) -> str:
  """``<path>: <problem>``, without repeating the path the message already starts with."""
  message = one_line(error)
  return message if message.startswith(str(path)) else f"{path}: {message}"


def report_failure(path, error: BaseException, write=None) -> None:
  """Reports one failed item (exit status 1 rules) and lets the batch go on."""
  line = f"{PREFIX}: failed: {item_message(path, error)}"
  if write is None:
    print(line, file=sys.stderr)
  else:
    write(line)


def error_line(message: str) -> str:
  return f"{PREFIX}: error: {message}"


def fail(message: str, status: int = 2):
  """Ends the command with one line on stderr."""
  print(error_line(message), file=sys.stderr)
  sys.exit(status)


def exit_interrupted():
  """Leaves at once: after Ctrl-C during compilation, interpreter teardown
  with XLA's and grain's threads still running can crash (SIGSEGV)."""
  try:
    print(f"\n{PREFIX}: interrupted", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
  finally:
    os._exit(INTERRUPTED)  # pylint: disable=protected-access


def _watch_interrupts(read_fd: int, grace_s: float):
  """Ends the process when Ctrl-C finds the main thread stuck in native code.

  Python runs signal handlers between bytecodes only, so a Ctrl-C during a
  minute-long XLA compilation would wait for it. The C-level handler still
  writes the signal to the wake-up fd; if the main thread has not ended the
  process ``grace_s`` later, this thread does. A command that installs its
  own SIGINT handler (the training loop: checkpoint, then stop) is left alone.
  """
  while True:
    try:
      data = os.read(read_fd, 64)
    except OSError:
      return
    if not data:
      return
    if signal.SIGINT not in data:
      continue
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
      continue
    timer = threading.Timer(grace_s, exit_interrupted)
    timer.daemon = True
    timer.start()


def install_interrupt_watcher(grace_s: float = 2.0) -> bool:
  """Makes Ctrl-C end the command within ``grace_s`` wherever it is."""
  if threading.current_thread() is not threading.main_thread():
    return False
  read_fd, write_fd = os.pipe()
  os.set_blocking(write_fd, False)
  try:
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
  except ValueError:
    os.close(read_fd)
    os.close(write_fd)
    return False
  threading.Thread(target=_watch_interrupts, args=(read_fd, grace_s), daemon=True,
                   name="jaxsr-interrupt-watcher").start()
  return True


def quiet_libraries() -> None:
  """pydicom logs every failed decoder with a traceback; jaxsr names the file
  and the problem itself, in one line."""
  import pydicom  # pylint: disable=import-outside-toplevel,unused-import  # Sets its level on import.
  logging.getLogger("pydicom").setLevel(logging.CRITICAL)


def run(main, argv=None) -> int:
  """Runs a command's ``main(argv) -> status`` under the rules above.

  Ctrl-C ends the process at once with status 130 (see
  :func:`install_interrupt_watcher`, which the command-line entry points
  call once); bad input returns 2 after one line on stderr.
  """
  quiet_libraries()
  try:
    return main(argv)
  except KeyboardInterrupt:
    exit_interrupted()
  except USER_ERRORS as error:
    print(error_line(one_line(error)), file=sys.stderr)
    return 2
  return 0  # Not reached.
