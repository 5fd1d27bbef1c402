"""Network interpolation between two weight sets of one architecture.

  python -m jaxsr.interpolate --a=PSNR.safetensors --b=GAN.safetensors \\
      --alpha=0.8 --output=interp.safetensors

theta = (1 - alpha) * theta_a + alpha * theta_b (ESRGAN, section 3.4): one
knob between the PSNR-oriented and the perceptual model, without retraining.
Inputs are anything jaxsr.convert reads; the output is .safetensors or .pth.
"""
import argparse
import sys

from jaxsr import convert, weights


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m jaxsr.interpolate", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--a", required=True, help="weights at alpha = 0")
  parser.add_argument("--b", required=True, help="weights at alpha = 1")
  parser.add_argument("--alpha", type=float, required=True, help="weight of --b")
  parser.add_argument("--output", required=True, help=".safetensors or .pth to write")
  convert.add_arch_flags(parser)
  args = parser.parse_args(argv)
  try:
    output = convert.check_output(args.output, args.a, args.b)
    _, vars_a, info_a = convert.load(args, args.a)
    _, vars_b, info_b = convert.load(args, args.b)
    keys = ("arch", "scale", "num_channels", "arch_kwargs")
    if any(info_a[k] != info_b[k] for k in keys):
      raise weights.WeightsError(
          f"architectures differ: {[info_a[k] for k in keys]} vs {[info_b[k] for k in keys]}")
    weights.save(output, weights.interpolate(vars_a, vars_b, args.alpha), info_a)
  except (weights.WeightsError, OSError) as e:
    parser.exit(2, f"interpolate: error: {' '.join(str(e).split())}\n")
  print(f"wrote {output} = {1 - args.alpha:g} * {args.a} + {args.alpha:g} * {args.b}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
