"""The ``jaxsr`` command: ``jaxsr COMMAND [flags]``, ``jaxsr COMMAND --help``.

One program for everything jaxsr does, so users need not know which module
implements what. Each command is also ``python -m jaxsr.<module>`` (the
table below says which) and behaves the same either way: the same flags,
the exit statuses of jaxsr.errors (0 done, 1 some items failed, 2 bad input
with one line ``jaxsr: error: ...``, 130 interrupted).

This module imports only the standard library and jaxsr's jax-free helpers:
the huge-pages restart must happen before jax is imported (jaxsr.huge_pages),
so a command's module is imported only once it is dispatched to.
"""
import argparse
import importlib
import sys

from jaxsr import errors, huge_pages

# name -> (module, what the command is for). Dict order is the help's order.
COMMANDS = {
    "train": ("jaxsr.main",
              "train a super-resolution model from a recipe (--config); rerun to resume"),
    "eval": ("jaxsr.main",
             "score a training run's latest checkpoint against bicubic on its eval images"),
    "upscale": ("jaxsr.upscale",
                "upscale images, series and volumes (DICOM, NIfTI, PNG, TIFF, JPEG) with a model"),
    "evaluate": ("jaxsr.evaluate",
                 "compare models and bicubic on your own HR images and volumes: tables, charts, crops"),
    "export": ("jaxsr.export",
               "export a trained generator for jaxsr, PyTorch and serving without jaxsr"),
    "convert": ("jaxsr.convert",
                "convert weights between PyTorch .pth, .safetensors and training runs"),
    "interpolate": ("jaxsr.interpolate",
                    "blend two weight sets of one network, e.g. between a PSNR and a GAN model"),
    "preview": ("jaxsr.degradations.preview",
                "draw HR crops next to their Real-ESRGAN-degraded LR, to check the degradations"),
}
HELP_FLAGS = ("-h", "--help")


class HelpFormatter(argparse.RawDescriptionHelpFormatter,
                    argparse.ArgumentDefaultsHelpFormatter):
  """Keeps the docstring's layout and shows each flag's default.

  A default of None is left out: such a flag's help says what happens
  without it (e.g. the architecture is read from the weights).
  """

  def _get_help_string(self, action):
    if action.default is None:
      return action.help
    return super()._get_help_string(action)


def help_text() -> str:
  width = max(map(len, COMMANDS))
  lines = ["usage: jaxsr COMMAND [flags]", "",
           "Super-resolution of radiographs (SRGAN, ESRGAN, Real-ESRGAN) in JAX.", "",
           "commands:"]
  lines += [f"  {name:<{width}}  {about}" for name, (_, about) in COMMANDS.items()]
  lines += ["", "`jaxsr COMMAND --help` lists a command's flags and their defaults."]
  return "\n".join(lines) + "\n"


def dispatch(command: str, args: list[str]):
  """Runs ``command`` with its flags ``args``; returns its exit status."""
  module = importlib.import_module(COMMANDS[command][0])
  if command == "train":
    return module.run(["jaxsr train", *args])
  if command == "eval":
    return module.run(["jaxsr eval", "--mode=eval", *args])
  return module.main(args)


def main(argv=None):
  """The ``jaxsr`` console script; ``argv`` without the program name.

  Only a call without ``argv`` (the console script's) restarts with huge
  pages: the restart re-executes the process's own command line
  (``sys.orig_argv``), which is the command only then.
  """
  if argv is None:
    huge_pages.restart_with_huge_pages()  # Before anything imports jax.
    argv = sys.argv[1:]
  argv = list(argv)
  if not argv:
    sys.stderr.write(help_text())
    sys.exit(2)
  command, args = argv[0], argv[1:]
  if command in HELP_FLAGS:
    sys.stdout.write(help_text())
    sys.exit(0)
  if command not in COMMANDS:
    errors.fail(f"unknown command '{command}'; choose one of {', '.join(COMMANDS)} "
                "(jaxsr --help says what each does)")
  errors.install_interrupt_watcher()
  sys.exit(dispatch(command, args))


if __name__ == "__main__":
  main()
