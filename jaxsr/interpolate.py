"""Network interpolation between two weight sets of one architecture.

  jaxsr interpolate --a=PSNR.safetensors --b=GAN.safetensors \\
      --alpha=0.8 --output=interp.safetensors [--overwrite]

theta = (1 - alpha) * theta_a + alpha * theta_b (ESRGAN, section 3.4): one
knob between the PSNR-oriented and the perceptual model, without retraining.
Inputs are anything jaxsr convert reads (shipped model names included); the
output is .safetensors or .pth, and an existing one is only replaced with
--overwrite. Bad arguments or weights exit with status 2 and one line.
"""
import argparse
import sys

from jaxsr import cli, convert, errors, huge_pages, weights


def main(argv=None) -> int:
  """``jaxsr interpolate``: exit 0, or 2 with one line for bad arguments or weights."""
  parser = argparse.ArgumentParser(prog="jaxsr interpolate", description=__doc__,
                                   formatter_class=cli.HelpFormatter)
  # SUPPRESS: a required flag has no default for the help to show.
  parser.add_argument("--a", required=True, default=argparse.SUPPRESS,
                      help="weights at alpha = 0")
  parser.add_argument("--b", required=True, default=argparse.SUPPRESS,
                      help="weights at alpha = 1")
  parser.add_argument("--alpha", type=float, required=True, default=argparse.SUPPRESS,
                      help="weight of --b")
  parser.add_argument("--output", required=True, default=argparse.SUPPRESS,
                      help=".safetensors or .pth to write")
  convert.add_overwrite_flag(parser)
  convert.add_arch_flags(parser)
  args = parser.parse_args(argv)
  try:
    output = convert.check_output(args.output, args.a, args.b, overwrite=args.overwrite)
    _, vars_a, info_a = convert.load(args, args.a)
    _, vars_b, info_b = convert.load(args, args.b)
    keys = ("arch", "scale", "num_channels", "arch_kwargs")
    if any(info_a[k] != info_b[k] for k in keys):
      raise weights.WeightsError(
          f"architectures differ: {[info_a[k] for k in keys]} vs {[info_b[k] for k in keys]}")
    weights.save(output, weights.interpolate(vars_a, vars_b, args.alpha), info_a)
  except KeyboardInterrupt:
    errors.exit_interrupted()
  except (weights.WeightsError, OSError) as e:
    convert.fail(parser, e)
  print(f"wrote {output} = {1 - args.alpha:g} * {args.a} + {args.alpha:g} * {args.b}")
  return 0


if __name__ == "__main__":
  huge_pages.restart_with_huge_pages()  # Before jax allocates anything.
  errors.install_interrupt_watcher()
  sys.exit(main())
