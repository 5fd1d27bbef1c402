"""Converts network weights between PyTorch .pth, .safetensors and workdirs.

  jaxsr convert --input=RealESRGAN_x4plus.pth --output=x4plus.safetensors
  jaxsr convert --input=WORKDIR --output=G.pth [--overwrite]

The direction follows the output's suffix: .safetensors (PyTorch names and
layout plus the metadata every jaxsr command needs) or .pth (a
{'params': state_dict} that BasicSR and Real-ESRGAN load with strict=True).
``--arch``/``--scale`` are only needed where the input cannot tell; given,
they are checked against it. An existing output is only replaced with
--overwrite; bad arguments or weights exit with status 2 and one line.
"""
import argparse
import json
import pathlib
import sys

from jaxsr import cli, errors, huge_pages, weights


def parse_args(argv, description=__doc__):
  parser = argparse.ArgumentParser(prog="jaxsr convert", description=description,
                                   formatter_class=cli.HelpFormatter)
  # SUPPRESS: a required flag has no default for the help to show.
  parser.add_argument("--input", required=True, default=argparse.SUPPRESS,
                      help=".pth, .safetensors or training workdir")
  parser.add_argument("--output", required=True, default=argparse.SUPPRESS,
                      help=".safetensors or .pth to write")
  add_overwrite_flag(parser)
  add_arch_flags(parser)
  return parser, parser.parse_args(argv)


def add_overwrite_flag(parser):
  parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")


def add_arch_flags(parser):
  parser.add_argument("--arch", help="rrdbnet|srvgg|msrresnet|srresnet|unet_disc|vgg_disc; "
                      "default: read from the weights")
  parser.add_argument("--scale", type=int,
                      help="upscaling factor of a generator; default: read from the weights")
  parser.add_argument("--num_channels", type=int,
                      help="image channels (1 grey, 3 RGB); default: read from the weights")
  parser.add_argument("--arch_kwargs", type=json.loads,
                      help='constructor kwargs as JSON, e.g. \'{"act_type": "leakyrelu"}\'; '
                      "default: read from the weights")
  parser.add_argument("--final_weights", action="store_true",
                      help="from a training workdir, take the final weights, not the EMA")


def load(args, source):
  return weights.load_weights(source, args.arch, args.scale, args.num_channels, args.arch_kwargs,
                              use_ema=not args.final_weights)


def check_output(output, *inputs, overwrite: bool = False):
  """The output path, refused before any work if it is an input, or exists
  and ``overwrite`` is off (a finished conversion must not clobber a file)."""
  output = pathlib.Path(output).expanduser()
  if output.suffix not in (".safetensors", ".pth"):
    raise weights.WeightsError(f"{output}: output must end in .safetensors or .pth")
  for source in inputs:
    if output.resolve() == pathlib.Path(source).expanduser().resolve():
      raise weights.WeightsError(f"{output}: refusing to overwrite an input")
  if output.exists() and not overwrite:
    raise weights.WeightsError(f"{output} exists; pass --overwrite to replace it")
  return output


def fail(parser, error: BaseException):
  """Exit status 2 with the one line ``jaxsr: error: ...`` every command uses."""
  parser.exit(2, errors.error_line(errors.one_line(error)) + "\n")


def main(argv=None) -> int:
  """``jaxsr convert``: exit 0, or 2 with one line for bad arguments or weights."""
  parser, args = parse_args(argv)
  try:
    output = check_output(args.output, args.input, overwrite=args.overwrite)
    _, variables, info = load(args, args.input)
    weights.save(output, variables, info)
  except KeyboardInterrupt:
    errors.exit_interrupted()
  except (weights.WeightsError, OSError) as e:
    fail(parser, e)
  print(f"wrote {output} ({info['arch']}, scale {info['scale']}, "
        f"{info['num_channels']} channel(s), {info['arch_kwargs']})")
  return 0


if __name__ == "__main__":
  huge_pages.restart_with_huge_pages()  # Before jax allocates anything.
  errors.install_interrupt_watcher()
  sys.exit(main())
