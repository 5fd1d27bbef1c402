"""Converts network weights between PyTorch .pth, .safetensors and workdirs.

  python -m jaxsr.convert --input=RealESRGAN_x4plus.pth --output=x4plus.safetensors
  python -m jaxsr.convert --input=WORKDIR --output=G.pth

The direction follows the output's suffix: .safetensors (PyTorch names and
layout plus the metadata every jaxsr command needs) or .pth (a
{'params': state_dict} that BasicSR and Real-ESRGAN load with strict=True).
``--arch``/``--scale`` are only needed where the input cannot tell; given,
they are checked against it.
"""
import argparse
import json
import pathlib
import sys

from jaxsr import weights


def parse_args(argv, description=__doc__):
  parser = argparse.ArgumentParser(prog="python -m jaxsr.convert", description=description,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--input", required=True, help=".pth, .safetensors or training workdir")
  parser.add_argument("--output", required=True, help=".safetensors or .pth to write")
  add_arch_flags(parser)
  return parser, parser.parse_args(argv)


def add_arch_flags(parser):
  parser.add_argument("--arch", help="rrdbnet|srvgg|msrresnet|srresnet|unet_disc|vgg_disc")
  parser.add_argument("--scale", type=int, help="upscaling factor of a generator")
  parser.add_argument("--num_channels", type=int, help="image channels (1 grey, 3 RGB)")
  parser.add_argument("--arch_kwargs", type=json.loads,
                      help='constructor kwargs as JSON, e.g. \'{"act_type": "leakyrelu"}\'')
  parser.add_argument("--final_weights", action="store_true",
                      help="from a training workdir, take the final weights, not the EMA")


def load(args, source):
  return weights.load_weights(source, args.arch, args.scale, args.num_channels, args.arch_kwargs,
                              use_ema=not args.final_weights)


def check_output(output, *inputs):
  output = pathlib.Path(output).expanduser()
  if output.suffix not in (".safetensors", ".pth"):
    raise weights.WeightsError(f"{output}: output must end in .safetensors or .pth")
  for source in inputs:
    if output.resolve() == pathlib.Path(source).expanduser().resolve():
      raise weights.WeightsError(f"{output}: refusing to overwrite an input")
  return output


def main(argv=None) -> int:
  parser, args = parse_args(argv)
  try:
    output = check_output(args.output, args.input)
    _, variables, info = load(args, args.input)
    weights.save(output, variables, info)
  except (weights.WeightsError, OSError) as e:
    parser.exit(2, f"convert: error: {' '.join(str(e).split())}\n")
  print(f"wrote {output} ({info['arch']}, scale {info['scale']}, "
        f"{info['num_channels']} channel(s), {info['arch_kwargs']})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
