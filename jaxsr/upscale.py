"""Upscales radiographs with a trained generator, writing files like the inputs.

  jaxsr upscale --input=FILE_OR_FOLDER --output=DIR \
      [--weights=NAME|WORKDIR|FILE.safetensors|FILE.pth] [--scale=4] \
      [--tile=512] [--tile_overlap=32] [--batch=1] [--pre_pad=0] [--overwrite]

Without --weights, the radiograph model shipped with jaxsr for --scale is
used (x4: xray_x4, x2: xray_x2); --weights also takes those names and
xray_x4_gan (for blurred, noisy or JPEG-compressed inputs).

Folders are searched recursively and mirrored under --output with the same
names (paths as found, symbolic links included: an output is never placed
outside --output). A file that cannot be read or written is reported and
skipped; the exit status is then 1. Bad arguments or weights exit with
status 2. Colour inputs are upscaled as grey (BT.601 luma), with a notice.
"""
import argparse
import os
import pathlib
import sys

from tqdm import tqdm

from jaxsr import cli, errors, huge_pages, pretrained
from jaxsr.inference import model as model_lib
from jaxsr.inference import tiling, writers
from jaxsr.io import images


def parse_args(argv):
  parser = argparse.ArgumentParser(prog="jaxsr upscale", description=__doc__.split("\n")[0],
                                   formatter_class=cli.HelpFormatter)
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
  """(folder the outputs mirror, input files as found under it)."""
  if input_path.is_dir():
    return input_path, images.list_images(input_path)
  if not input_path.exists():
    raise FileNotFoundError(f"{input_path}: no such file or folder")
  return input_path.parent, [input_path]


def load_model(weights_arg, scale) -> model_lib.Model:
  """The generator --weights names, or the shipped one for --scale."""
  if weights_arg is None:
    weights_arg = pretrained.default_name(4 if scale is None else scale)
    print(f"jaxsr: using the shipped radiograph model {weights_arg} "
          f"({pretrained.MODELS[weights_arg]})", file=sys.stderr)
  model = model_lib.load(weights_arg)
  if scale is not None and model.scale != scale:
    raise errors.UsageError(f"{weights_arg}: model upscales x{model.scale}, not --scale={scale}")
  return model


def output_path(path: pathlib.Path, root: pathlib.Path, output: pathlib.Path) -> pathlib.Path:
  """Where ``path`` (found under ``root``) goes: the same relative path under ``output``.

  Taken from the path as found, not its target, so a symbolic link to a file
  elsewhere still lands inside ``output`` under the link's own name.
  """
  return output / os.path.relpath(path, root)


def main(argv=None) -> int:
  """``jaxsr upscale``: exit 0, 1 (some files failed) or 2 (bad arguments or weights)."""
  return errors.run(_main, argv)


def _main(argv) -> int:
  args = parse_args(argv)
  output = pathlib.Path(args.output)
  root, files = find_inputs(pathlib.Path(args.input))
  root_abs, output_abs = root.resolve(), output.resolve()
  if not args.overwrite and (output_abs == root_abs or root_abs in output_abs.parents):
    raise errors.UsageError(f"{args.output}: output folder is (inside) the input folder "
                            f"{root}; choose another or pass --overwrite")
  model = load_model(args.weights, args.scale)
  inputs = {f.resolve() for f in files}
  written, failed = 0, 0
  say = lambda line: tqdm.write(line, file=sys.stderr)
  for path in tqdm(files, desc="files", unit="file", file=sys.stderr):
    try:
      target = output_path(path, root, output)
      if target.resolve() in inputs:
        raise FileExistsError("output would overwrite an input file")
      if target.exists() and not args.overwrite:
        raise FileExistsError(f"{target} exists (pass --overwrite to replace it)")
      radiograph = images.read_image(path)
      if radiograph.colour:
        say(f"jaxsr: note: {path}: colour ({radiograph.photometric}) image upscaled as grey "
            "(BT.601 luma)")
      tiles = tiling.tile_count(radiograph.pixels.shape, args.tile, args.tile_overlap,
                                model.input_multiple)
      with tqdm(total=tiles, desc=path.name, unit="tile", leave=False, file=sys.stderr) as bar:
        sr = model.upscale(radiograph.pixels, radiograph.bits, tile=args.tile,
                           overlap=args.tile_overlap, batch=args.batch, pre_pad=args.pre_pad,
                           progress=bar.update)
      writers.write(sr, radiograph, target, scale=model.scale, model=model.description)
      written += 1
    except Exception as error:  # pylint: disable=broad-except
      # One bad file must not stop a folder: report it by name and go on.
      failed += 1
      errors.report_failure(path, error, write=say)
  print(f"jaxsr: wrote {written} of {len(files)} file(s) to {output}"
        + (f"; {failed} failed" if failed else ""), file=sys.stderr)
  return 1 if failed else 0


if __name__ == "__main__":
  huge_pages.restart_with_huge_pages()  # Before jax allocates anything.
  errors.install_interrupt_watcher()
  sys.exit(main())
