"""Upscales radiographs with a trained generator, writing files like the inputs.

  python -m jaxsr.upscale --input=FILE_OR_FOLDER --output=DIR \
      [--weights=NAME|WORKDIR|FILE.safetensors|FILE.pth] [--scale=4] \
      [--tile=512] [--tile_overlap=32] [--batch=1] [--pre_pad=0] [--overwrite]

Without --weights, the radiograph model shipped with jaxsr for --scale is
used (x4: xray_x4, x2: xray_x2); --weights also takes those names and
xray_x4_gan (for blurred, noisy or JPEG-compressed inputs).

Folders are searched recursively and mirrored under --output with the same
names. A file that cannot be read or written is reported and skipped; the
exit status is then 1. Bad arguments or weights exit with status 2.
"""
import argparse
import logging
import pathlib
import sys

from tqdm import tqdm

from jaxsr import huge_pages


def parse_args(argv):
  parser = argparse.ArgumentParser(prog="python -m jaxsr.upscale", description=__doc__.split("\n")[0])
  parser.add_argument("--weights", default=None,
                      help="shipped model name (xray_x4, xray_x2, xray_x4_gan), training "
                      "workdir, jaxsr .safetensors export or official .pth; default: the "
                      "shipped model for --scale")
  parser.add_argument("--scale", type=int, default=None,
                      help="upscaling factor; picks the shipped model when --weights is not "
                      "given (default 4) and is checked against --weights otherwise")
  parser.add_argument("--input", required=True, help="image file or folder (recursive)")
  parser.add_argument("--output", required=True, help="output folder")
  parser.add_argument("--tile", type=int, default=512, help="tile side in input pixels; 0: no tiling")
  parser.add_argument("--tile_overlap", type=int, default=32,
                      help="overlap of neighbouring tiles in input pixels")
  parser.add_argument("--batch", type=int, default=1, help="tiles per forward pass")
  parser.add_argument("--pre_pad", type=int, default=0,
                      help="reflect-pad bottom/right by this many pixels, cropped after")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace existing outputs and allow --output inside an input folder")
  args = parser.parse_args(argv)
  if args.tile < 0 or args.batch < 1 or args.pre_pad < 0 or args.tile_overlap < 0:
    parser.error("--tile, --tile_overlap and --pre_pad must be >= 0 and --batch >= 1")
  if args.tile and args.tile_overlap >= args.tile:
    parser.error("--tile_overlap must be smaller than --tile")
  if args.scale is not None and args.scale < 1:
    parser.error("--scale must be >= 1")
  return args


def find_inputs(input_path: pathlib.Path) -> tuple[pathlib.Path, list[pathlib.Path]]:
  """(folder the outputs mirror, input files)."""
  from jaxsr.io import images  # pylint: disable=g-import-not-at-top
  if input_path.is_dir():
    return input_path, images.list_images(input_path)
  if not input_path.exists():
    raise FileNotFoundError(f"{input_path}: no such file or folder")
  return input_path.parent, [input_path]


def one_line(error: BaseException) -> str:
  return " ".join(str(error).split()) or type(error).__name__


def load_generator(weights_arg, scale):
  """The generator --weights names, or the shipped one for --scale."""
  from jaxsr import pretrained  # pylint: disable=g-import-not-at-top
  from jaxsr.inference import model  # pylint: disable=g-import-not-at-top
  if weights_arg is None:
    weights_arg = pretrained.default_name(4 if scale is None else scale)
    print(f"jaxsr: using the shipped radiograph model {weights_arg} "
          f"({pretrained.MODELS[weights_arg]})", file=sys.stderr)
  generator = model.load(weights_arg)
  if scale is not None and generator.scale != scale:
    raise ValueError(f"{weights_arg}: model upscales x{generator.scale}, not --scale={scale}")
  return generator


def main(argv=None) -> int:
  args = parse_args(argv)
  # pydicom logs each failed decoder with a traceback; failures are reported
  # here by file name instead.
  import pydicom  # pylint: disable=g-import-not-at-top,unused-import  # Its import sets the level.
  logging.getLogger("pydicom").setLevel(logging.CRITICAL)
  from jaxsr.inference import model, tiling, writers  # pylint: disable=g-import-not-at-top
  from jaxsr.io import images  # pylint: disable=g-import-not-at-top
  output = pathlib.Path(args.output).resolve()
  try:
    root, files = find_inputs(pathlib.Path(args.input))
    root = root.resolve()
    if not args.overwrite and (output == root or root in output.parents):
      raise ValueError(f"{args.output}: output folder is (inside) the input folder "
                       f"{root}; choose another or pass --overwrite")
    generator = load_generator(args.weights, args.scale)
  except (images.ImageReadError, FileNotFoundError, ValueError, OSError) as error:
    print(f"jaxsr: error: {one_line(error)}", file=sys.stderr)
    return 2
  inputs = {f.resolve() for f in files}
  predict = model.grey_predict(generator)
  multiple = (4 // generator.scale if type(generator.module).__name__ == "RRDBNet"
              and generator.scale in (1, 2) else 1)  # pixel-unshuffling input
  failed = 0
  for path in tqdm(files, desc="files", unit="file", file=sys.stderr):
    target = output / path.resolve().relative_to(root)
    try:
      if target in inputs:
        raise FileExistsError("output would overwrite an input file")
      if target.exists() and not args.overwrite:
        raise FileExistsError(f"{target} exists (pass --overwrite to replace it)")
      radiograph = images.read_image(path)
      tiles = tiling.tile_count(radiograph.pixels.shape, args.tile, args.tile_overlap, multiple)
      with tqdm(total=tiles, desc=path.name, unit="tile", leave=False, file=sys.stderr) as bar:
        gain = model.input_gain(radiograph.pixels, radiograph.bits)
        sr = tiling.upscale(model.stretched(predict, gain), radiograph.pixels, generator.scale,
                            tile=args.tile,
                            overlap=args.tile_overlap, batch=args.batch, pre_pad=args.pre_pad,
                            multiple=multiple, progress=bar.update)
      writers.write(sr, radiograph, target, scale=generator.scale, model=generator.description)
    except Exception as error:  # pylint: disable=broad-except
      # One bad file must not stop a folder: report it by name and go on.
      failed += 1
      message = one_line(error)
      message = message if message.startswith(str(path)) else f"{path}: {message}"
      tqdm.write(f"jaxsr: failed: {message}", file=sys.stderr)
  if failed:
    print(f"jaxsr: {failed} of {len(files)} files failed", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  huge_pages.restart_with_huge_pages()  # Before jax allocates anything.
  sys.exit(main())
