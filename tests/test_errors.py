"""The exit-status and one-line rules every command shares (jaxsr.errors)."""
import subprocess
import sys

import pytest

from jaxsr import errors


def test_one_line_keeps_the_last_line_of_an_embedded_traceback():
  text = "Traceback (most recent call last):\n  File 'x.py'\nValueError: bad\n"
  assert errors.one_line(ValueError(text)) == "ValueError: bad"
  assert errors.one_line(ValueError("two\n  lines")) == "two lines"
  assert errors.one_line(KeyError()) == "KeyError"
  assert str(errors.ConfigError("a\nb")) == "a b"


def test_item_messages_name_the_path_once(tmp_path):
  path = tmp_path / "x.png"
  assert errors.item_message(path, ValueError("broken")) == f"{path}: broken"
  assert errors.item_message(path, ValueError(f"{path}: broken")) == f"{path}: broken"
  lines = []
  errors.report_failure(path, OSError("gone"), write=lines.append)
  assert lines == [f"jaxsr: failed: {path}: gone"]


def test_run_returns_2_with_one_line_for_user_errors_and_keeps_bugs(capsys):
  def bad_input(argv):
    raise errors.UsageError(f"--thing={argv[0]}: no such thing")

  assert errors.run(bad_input, ["x"]) == 2
  assert capsys.readouterr().err == "jaxsr: error: --thing=x: no such thing\n"
  assert errors.run(lambda argv: (_ for _ in ()).throw(FileNotFoundError("f: missing")), []) == 2
  assert capsys.readouterr().err == "jaxsr: error: f: missing\n"
  assert errors.run(lambda argv: 1, []) == 1
  with pytest.raises(ZeroDivisionError):  # A bug keeps its traceback.
    errors.run(lambda argv: 1 / 0, [])


def test_ctrl_c_exits_130_with_one_line():
  code = ("import os, signal, sys\n"
          "from jaxsr import errors\n"
          "errors.install_interrupt_watcher()\n"
          "def main(argv):\n"
          "  os.kill(os.getpid(), signal.SIGINT)\n"
          "  import time; time.sleep(30)\n"
          "sys.exit(errors.run(main, []))\n")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                        check=False)
  assert proc.returncode == 130
  assert proc.stderr.strip() == "jaxsr: interrupted"
