"""Upscales medical images with a trained generator, writing them in the form they came in.

  jaxsr upscale --input=FILE_OR_FOLDER --output=DIR \
      [--weights=NAME|WORKDIR|FILE.safetensors|FILE.pth] [--scale=4] \
      [--max_memory=auto] [--tile=auto] [--tile_overlap=auto] [--batch=1] [--pre_pad=0] \
      [--io_threads=1] [--dtype=float32|bfloat16] [--png_compression=1] \
      [--hu_range=-1024,3071] [--modality=ct|mr] [--slice_axis=N] [--overwrite] \
      [--dicom_transfer_syntax=auto|jpeg-ls|jpeg2000|rle|uncompressed] \
      [--send=AET@HOST:PORT [--calling_aet=JAXSR]]

Without --weights, each input gets the model shipped for its DICOM Modality
and --scale: radiographs (CR, DX, MG, RG, DR, PX, IO) and files without a
Modality the radiograph model (x4: xray_x4, x2: xray_x2), CT ct_x2 and MR
mr_x2 (x2 when --scale is left out), and a modality without a shipped model
of its own the radiograph model, with a notice (colour on its luminance).
--weights also takes those names and xray_x4_gan (for blurred, noisy or
JPEG-compressed inputs).

DICOM outputs are stored losslessly compressed (--dicom_transfer_syntax,
default auto: JPEG-LS, else JPEG 2000, else RLE Lossless, whichever is
installed and allowed; see jaxsr.io.compression), and say what they are and
where they came from (jaxsr.inference.derived). --send stores each written
DICOM in an archive with a C-STORE, one retry, and reports per file what it
answered; a file the archive does not take stays on disk and counts as
failed.

--input is a file (PNG, TIFF, JPEG, DICOM single- or multi-frame, NIfTI),
a DICOM series folder or a folder of any of these, searched recursively:
the slices of each series become one volume, written back as a new series
(see jaxsr.inference.writers for the geometry). Outputs mirror the inputs
under --output with the same names (paths as found, symbolic links
included: an output is never placed outside --output). A file or series
that cannot be read or written is reported in one line and skipped; the
exit status is then 1. Bad arguments or weights exit with status 2.

CT is given to the network as --hu_range mapped to [0, 1] and stored back
in the input's representation. Colour inputs keep their colour: a grey
model upscales the luminance and the chroma is resized bicubically.
"""
import argparse
import collections
import os
import pathlib
import sys

import numpy as np
from tqdm import tqdm

from jaxsr import cli, compile_cache, errors, huge_pages, pretrained
from jaxsr.degradations import bicubic
from jaxsr.evaluation import html_report
from jaxsr.inference import model as model_lib
from jaxsr.inference import background, tiling, writers
from jaxsr.io import compression, dicom_send, images, series


def _auto_int(text: str):
  """argparse type: 'auto' -> None, else an int."""
  if text.strip().lower() == "auto":
    return None
  try:
    return int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"'{text}' is not a whole number or auto") from None


def _memory_size(text: str):
  try:
    return tiling.parse_memory(text)
  except ValueError as e:
    raise argparse.ArgumentTypeError(str(e)) from None


def parse_args(argv):
  parser = argparse.ArgumentParser(prog="jaxsr upscale", description=__doc__.split("\n")[0],
                                   formatter_class=cli.HelpFormatter)
  parser.add_argument("--weights", default=None,
                      help="shipped model name (xray_x4, xray_x2, xray_x4_gan, ct_x2, mr_x2), "
                      "training workdir, jaxsr .safetensors export or official .pth; default: "
                      "the shipped model for each input's modality and --scale")
  parser.add_argument("--scale", type=int, default=None,
                      help="upscaling factor; picks the shipped model when --weights is not "
                      "given (default: 4, CT and MR 2) and is checked against --weights "
                      "otherwise")
  parser.add_argument("--input", required=True, help="image file or folder (recursive)")
  parser.add_argument("--output", required=True, help="output folder")
  parser.add_argument("--max_memory", type=_memory_size, default=None,
                      help="memory one forward pass may use, e.g. 8G or 512M; images that fit "
                      "go through whole, larger ones in the fewest tiles that fit (default "
                      "auto: half of the device's free memory)")
  parser.add_argument("--tile", type=_auto_int, default=None,
                      help="tile side in input pixels, 0: whole images (default auto: from "
                      "--max_memory)")
  parser.add_argument("--tile_overlap", type=_auto_int, default=None,
                      help="overlap of neighbouring tiles in input pixels (default auto: the "
                      "least at which tiles give the untiled result, from the network's "
                      "receptive field)")
  parser.add_argument("--batch", type=int, default=1, help="tiles per forward pass")
  parser.add_argument("--dtype", choices=model_lib.DTYPES, default="float32",
                      help="precision of the network: bfloat16 is faster on GPUs and TPUs "
                      "(its error against float32: benchmarks/README.md)")
  parser.add_argument("--png_compression", type=int, choices=writers.PNG_COMPRESSION_LEVELS,
                      default=1, metavar="0..9",
                      help="zlib level of PNG outputs, lossless at any level: 1 (OpenCV's "
                      "default) is fast, 9 the smallest")
  parser.add_argument("--io_threads", type=int, choices=(0, 1), default=1,
                      help="1: decode the next input and write outputs in threads while the "
                      "network runs; 0: read, upscale and write in turn")
  parser.add_argument("--pre_pad", type=int, default=0,
                      help="reflect-pad bottom/right by this many pixels, cropped after")
  images.add_image_arguments(parser)
  parser.add_argument("--overwrite", action="store_true",
                      help="replace existing outputs and allow --output inside an input folder")
  parser.add_argument("--dicom_transfer_syntax", choices=compression.CHOICES, default="auto",
                      help="how DICOM outputs store their pixels: auto (the best lossless "
                      "syntax installed), a lossless syntax by name, or uncompressed")
  parser.add_argument("--send", default="",
                      help="AET@HOST:PORT: C-STORE every written DICOM to this archive")
  parser.add_argument("--calling_aet", default="JAXSR",
                      help="our AE title when sending (--send)")
  parser.add_argument("--report", action="store_true",
                      help="also write OUTPUT/report.html: each input beside its bicubic and "
                      "model upscale with a before/after slider, zoom and display windows "
                      "(no metrics: there is no ground truth)")
  compile_cache.add_argument(parser)
  args = parser.parse_args(argv)
  if ((args.tile or 0) < 0 or args.batch < 1 or args.pre_pad < 0
      or (args.tile_overlap or 0) < 0):
    parser.error("--tile, --tile_overlap and --pre_pad must be >= 0 and --batch >= 1")
  if args.tile and args.tile_overlap is not None and args.tile_overlap >= args.tile:
    parser.error("--tile_overlap must be smaller than --tile")
  if args.scale is not None and args.scale < 1:
    parser.error("--scale must be >= 1")
  images.check_image_arguments(parser, args)
  try:
    compression.check_choice(args.dicom_transfer_syntax)
    args.sender = (dicom_send.Sender(dicom_send.Destination.parse(args.send), args.calling_aet)
                   if args.send else None)
  except errors.UserError as error:
    parser.error(str(error))
  return args


def find_inputs(input_path: pathlib.Path) -> tuple[pathlib.Path, list[series.Item]]:
  """(folder the outputs mirror, the files and series found under it)."""
  if input_path.is_dir():
    return input_path, series.find(input_path, images.list_images(input_path))
  if not input_path.exists():
    raise FileNotFoundError(f"{input_path}: no such file or folder")
  return input_path.parent, [series.Item(input_path.name, (input_path,))]


class Models:
  """The model for each input: --weights' for all, or else the shipped model for the
  input's Modality and --scale (:class:`jaxsr.inference.model.Shipped`)."""

  def __init__(self, weights_arg, scale, say, dtype: str = "float32"):
    self.fixed = None if weights_arg is None else load_model(weights_arg, scale, dtype)
    if self.fixed is None:
      pretrained.default_name(4 if scale is None else scale)  # A bad --scale fails now.

    def pick(modality):
      name, notice = pretrained.default_for(modality, scale)
      return (name,), notice
    self.shipped = model_lib.Shipped(pick, say, dtype)

  def for_image(self, image) -> model_lib.Model:
    if self.fixed is not None:
      return self.fixed
    return self.shipped.for_image(image)[0][1]

  def run_items(self, args) -> dict:
    """What the run was, for report.html."""
    if self.fixed is not None:
      used = f"{args.weights}: {self.fixed.description}"
    else:
      used = ", ".join(f"{name} (jaxsr/pretrained/{name}.md, x{model.scale})"
                       for name, model in self.shipped.loaded.items())
    return dict(models=used, input=args.input, output=args.output,
                tiles=("whole images" if args.tile == 0 else
                       f"{args.tile or 'planned'} px, overlap {args.tile_overlap or 'exact'}, "
                       f"max memory {'auto' if args.max_memory is None else args.max_memory}"))


def load_model(weights_arg, scale, dtype: str = "float32") -> model_lib.Model:
  """The generator --weights names, or the shipped one for --scale."""
  if weights_arg is None:
    weights_arg = pretrained.default_name(4 if scale is None else scale)
    print(f"jaxsr: using the shipped radiograph model {weights_arg} "
          f"({pretrained.MODELS[weights_arg]})", file=sys.stderr)
  model = model_lib.load(weights_arg, dtype=dtype)
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
  compile_cache.enable(args.compilation_cache)
  output = pathlib.Path(args.output)
  root, items = find_inputs(pathlib.Path(args.input))
  root_abs, output_abs = root.resolve(), output.resolve()
  # Only a folder input is searched again next time: an output inside it would be found.
  if (not args.overwrite and pathlib.Path(args.input).is_dir()
      and (output_abs == root_abs or root_abs in output_abs.parents)):
    raise errors.UsageError(f"{args.output}: output folder is (inside) the input folder "
                            f"{root}; choose another or pass --overwrite")
  say = lambda line: tqdm.write(line, file=sys.stderr)
  models = Models(args.weights, args.scale, say, args.dtype)
  inputs = {p.resolve() for item in items for p in item.paths}
  page = html_report.ReportWriter(output, f"jaxsr upscale of {args.input}") if args.report else None
  args.page = page
  written, failed, unsent = 0, 0, 0
  load = lambda item: item.load(hu_range=args.hu_range, modality=args.modality,  # pylint: disable=unnecessary-lambda-assignment
                                slice_axis=args.slice_axis)
  pending = collections.deque()  # (item, its writes), in input order.

  def fail(item, error):
    # One bad file must not stop a folder: report it by name and go on.
    nonlocal failed
    failed += 1
    errors.report_failure(item.paths[0] if not item.is_series else item.name, error, write=say)

  def finish(item, write):
    nonlocal written, unsent
    try:
      paths = write.result()
    except Exception as error:  # pylint: disable=broad-except
      fail(item, error)
      return
    written += 1
    if args.sender is not None:
      unsent += send(paths, args.sender, say)

  with background.Writer(enabled=bool(args.io_threads)) as writer:
    loads = background.prefetch(items, load, enabled=bool(args.io_threads))
    for item, loaded in tqdm(loads, total=len(items), desc="inputs", unit="input",
                             file=sys.stderr, disable=len(items) < 2):
      try:
        pending.append((item, upscale_item(item, loaded, root, output, models, args, say,
                                           inputs, writer)))
      except Exception as error:  # pylint: disable=broad-except
        fail(item, error)
      while pending and pending[0][1].done():
        finish(*pending.popleft())
    while pending:
      finish(*pending.popleft())
  if page is not None and page.images:
    say(f"jaxsr: wrote {page.write(run=html_report.run_info(**models.run_items(args)))}")
  print(f"jaxsr: wrote {written} of {len(items)} input(s) to {output}"
        + (f"; {failed} failed" if failed else "")
        + (f"; {unsent} file(s) not stored by {args.sender.destination}" if unsent else ""),
        file=sys.stderr)
  return 1 if failed or unsent else 0


def send(paths: list[pathlib.Path], sender: dicom_send.Sender, say) -> int:
  """C-STOREs the DICOM files among ``paths``; returns how many the archive did not take."""
  unsent = 0
  for path in paths:
    if images.is_dicom_file(path):
      try:
        say(f"jaxsr: sent {path} to {sender.destination}: {sender.send(path)}")
      except dicom_send.SendError as error:
        unsent += 1
        say(errors.error_line(str(error)))
  return unsent


def upscale_item(item: series.Item, loaded, root: pathlib.Path, output: pathlib.Path,
                 models: Models, args, say, inputs: set,
                 writer: background.Writer) -> background.ItemWrite:
  """Upscales one file or series and hands its frames to ``writer``; returns its writes.

  ``loaded`` is the future of the item's image (read ahead). Raises on a
  failure before writing; a failed write is raised by the result's
  ``result()``. ``inputs`` are every input file of the run (resolved): no
  output may replace one.
  """
  targets = [output_path(path, root, output) for path in item.paths]
  for target in targets:
    if target.resolve() in inputs:
      raise FileExistsError("output would overwrite an input file")
    if target.exists() and not args.overwrite:
      raise FileExistsError(f"{target} exists (pass --overwrite to replace it)")
  image = loaded.result()
  if image.num_frames > 1 or image.modality_guess:
    say(f"jaxsr: {item.name}: {image.describe()}")
  model = models.for_image(image)
  if image.is_colour and model.num_channels == 1:
    say(f"jaxsr: note: {item.name}: colour ({image.photometric}) image: the luminance is "
        "upscaled by the model, the colour bicubically")
  sink = writer.open(writers.open_output(image, targets, scale=model.scale,
                                        model=model.description,
                                        transfer_syntax=args.dicom_transfer_syntax,
                                        png_compression=args.png_compression))
  plan = model.plan(image.frames.shape[1:3], tile=args.tile, overlap=args.tile_overlap,
                    max_memory=args.max_memory, batch=args.batch, pre_pad=args.pre_pad,
                    frames=image.num_frames)
  tiles = plan.tiles
  frames = image.num_frames
  whole = image.num_frames > 1 and not image.is_colour and tiles == 1
  with tqdm(total=tiles * frames, desc=item.name[-40:], unit="slice" if whole else "tile",
            leave=False, file=sys.stderr) as bar:
    outputs = model.upscale_frames(image.frames, image.bits, tile=plan.tile,
                                   overlap=plan.overlap, batch=args.batch,
                                   pre_pad=args.pre_pad, progress=bar.update,
                                   stretch=image.stretchable)
    for index, sr in enumerate(outputs):
      if frames > 1:
        bar.set_postfix_str(f"{'slice' if image.kind == 'volume' else 'frame'} "
                            f"{index + 1}/{frames}")
      if args.page is not None and index == frames // 2:
        add_to_page(args.page, item.name, image, index, sr, model)
      sink.put(index, sr)
  sink.close()
  return sink


def add_to_page(page, name: str, image, index: int, sr, model) -> None:
  """The shown frame of an input on the report page: input, bicubic and the model."""
  frame = image.frames[index]
  shape = sr.shape[:2]
  note = f"frame {image.frame_number(index)} of {image.num_frames}" if image.num_frames > 1 else ""
  page.start_image(name, image, shape, frame, note=note)
  page.add_panel(f"input (x{model.scale} nearest)", frame)
  if frame.ndim == 2:
    page.add_panel("bicubic", bicubic.upscale(frame, shape))
  else:
    page.add_panel("bicubic", np.stack([bicubic.upscale(frame[..., c], shape)
                                        for c in range(frame.shape[-1])], axis=-1))
  page.add_panel(model.description, sr)


if __name__ == "__main__":
  huge_pages.restart_with_huge_pages()  # Before jax allocates anything.
  errors.install_interrupt_watcher()
  sys.exit(main())
