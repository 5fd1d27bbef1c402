"""Scores super-resolution models against bicubic on full-resolution images and volumes.

  jaxsr evaluate --hr=DIR --output=DIR [--weights=W --weights=W2 ...] \
      [--scale=4] [--degradation=bicubic|realesrgan | --lr=DIR] [--seed=0] [--names=a,b] \
      [--include=GLOB,...] [--exclude=GLOB,...] [--heldout] [--validation] \
      [--groups=NAME=GLOB,...] \
      [--crop_border=4] [--max_images=0] [--center_crop=0] [--tile=512] \
      [--figure_crop=128] [--no_report] [--hu_range=-1024,3071] [--modality=ct|mr] [--slice_axis=N] \
      [--slices=START:STOP] [--min_foreground=0]

Each W is the name of a model shipped with jaxsr (xray_x4, xray_x2,
xray_x4_gan, ct_x2, ...), a training workdir (latest checkpoint, EMA weights
where kept), a jaxsr .safetensors export or an official .pth. Every model
must upscale by --scale (default: the models' own scale). Without --weights,
each image is scored with the shipped models for its DICOM Modality (a
NIfTI's: --modality, else the CT guess) at --scale: CT ct_x2, MR mr_x2;
radiographs (and, with a notice, modalities without a model of their own) x4
xray_x4 and xray_x4_gan, x2 xray_x2. --scale then defaults to 2 when an
input has a model of its own at x2 (CT, MR), else 4. The HR images in DIR
(searched recursively; read only, never written to; --include/--exclude glob
patterns on their relative paths or names select some, --heldout keeps only
the patients the shipped models never saw in training,
jaxsr.config.XRAY_HELDOUT, and --validation the radiograph models'
validation patients, jaxsr.config.XRAY_VALIDATION) are cut to a multiple of
the scale and shrunk to LR inputs:

* ``bicubic`` (default): antialiased bicubic downscaling, rounded to the
  image's own bit depth (the classic SRGAN/ESRGAN benchmark LR);
* ``realesrgan``: Real-ESRGAN's second-order degradation (blur, resize,
  noise, JPEG, twice) with the default degradation settings and the LR
  rounded to the image's own bit depth. The random draws come from
  (--seed, image index in sorted order), so a run is reproducible. The whole
  image is degraded: it is reflect-padded at the bottom/right to a square
  (the degradation works on square canvases) and the LR is cut back;
* ``--lr=DIR``: LR images made elsewhere (another degradation pipeline, a
  scanner's low-dose or low-resolution acquisition), one per HR image at the
  same relative path and name stem in any image or DICOM format, each the
  HR's size divided by the scale; a larger HR is cut at the bottom/right to
  scale x the LR with a notice. An HR image without its LR, or with one too
  large for it, is reported and skipped; LR files without an HR are named.

Every model and the bicubic upscale of the same LR are scored against the HR
on the image's own grey levels (0..2**bits - 1, where bits is DICOM's
BitsStored, or for a 16-bit PNG/TIFF the depth its levels use, so 10-bit
data in a 16-bit PNG is scored on 0..1023), with --crop_border pixels
dropped at every edge. Models run in tiles of --tile LR pixels (0: whole
image), so memory stays bounded on large radiographs; --center_crop=N scores
only the central NxN HR region (useful for quick runs and for the costly
realesrgan degradation of very large images).

DICOM series (one volume each), multi-frame files and NIfTI volumes are
scored slice by slice (--slices and --min_foreground pick some, as a
training config's data.eval_slices and data.min_foreground do). CT is scored
in HU over --hu_range's width, and again within the soft-tissue window (both
images clipped to -160..240 HU); MR and radiographs on their stored range;
colour on luminance.

Outputs in --output:
  metrics.csv   image,model,scale,bits,psnr,ssim,mse,modality,data_range,slice,
                psnr_soft_tissue,ssim_soft_tissue,group: one line per image (a volume:
                its slices pooled) and model, and one per slice of a volume
  summary.md    the setup, a table per model (per image, mean), a comparison of
                means, means and gains over bicubic by source group (--groups,
                else the images' top folders: nih/, mhh/), means by bit depth
                when the images differ in depth and by modality when they
                differ in modality (or include CT)
  metrics.png   PSNR, SSIM and MSE bars: mean per model, per-image std as error bars
  report.html   a page to look at (opens offline from the folder): per image a
                before/after slider between any two of LR, bicubic, each model and
                HR, synchronised zoom and pan, display windows (the DICOM window,
                the effective range; CT soft tissue, brain, bone, lung), a
                sortable table of the metrics and the means by group; report/
                holds its PNGs (previews and full resolution). --no_report: none
  crops/<image>.png  the central --figure_crop HR pixels: LR (nearest-upsampled),
                bicubic, each model and HR side by side

Model names come from --names (comma-separated, one per --weights) or else
the weights file's stem or the workdir's folder name. Missing weights, no
images, a scale mismatch or --output inside --hr stop the run with a one-line
error and exit status 2; an image that cannot be read or scored is reported
and skipped, and the exit status is then 1.
"""
import argparse
import pathlib
import sys

from jaxsr import config as base
from jaxsr import cli, compile_cache, degradations, errors, huge_pages, pretrained
from jaxsr.data import sources, volumes
from jaxsr.evaluation import evaluate, report
from jaxsr.inference import model as model_lib
from jaxsr.io import images, series


def parse_args(argv):
  parser = argparse.ArgumentParser(
      prog="jaxsr evaluate", description=__doc__.split("\n")[0],
      formatter_class=cli.HelpFormatter)
  parser.add_argument("--weights", action="append", default=None,
                      help="shipped model name, training workdir, .safetensors or .pth; repeat "
                      "for several models; default: the shipped models for each input's "
                      "modality and --scale")
  parser.add_argument("--hr", required=True,
                      help="folder of HR images, series and volumes (searched recursively)")
  parser.add_argument("--output", required=True, help="folder for the results")
  parser.add_argument("--scale", type=int, default=None,
                      help="upscaling factor every model must have (default: the models')")
  parser.add_argument("--degradation", choices=degradations.NAMES, default="bicubic",
                      help="how the LR inputs are made from the HR images")
  parser.add_argument("--lr", default="",
                      help="folder of given LR images, one per HR image at the same relative "
                      "path (any image extension), instead of --degradation")
  parser.add_argument("--seed", type=int, default=0, help="seed of the realesrgan degradation")
  parser.add_argument("--names", default="", help="comma-separated model names, one per --weights")
  parser.add_argument("--crop_border", type=int, default=4,
                      help="pixels dropped at every edge before scoring")
  parser.add_argument("--include", default="",
                      help="comma-separated glob patterns: score only the images matching one")
  parser.add_argument("--exclude", default="",
                      help="comma-separated glob patterns: skip the images matching one")
  parser.add_argument("--heldout", action="store_true",
                      help="score only the shipped models' held-out patients (XRAY_HELDOUT)")
  parser.add_argument("--validation", action="store_true",
                      help="score only the radiograph models' validation patients "
                      "(XRAY_VALIDATION); with --heldout: both sets")
  parser.add_argument("--groups", default="",
                      help="source groups for the summary's means, NAME=GLOB,... (first match "
                      "wins; a name may repeat); default: each image's top folder")
  parser.add_argument("--max_images", type=int, default=0, help="score only the first N images; 0: all")
  parser.add_argument("--center_crop", type=int, default=0,
                      help="score only the central NxN HR region; 0: the whole image")
  parser.add_argument("--tile", type=int, default=512, help="tile side in LR pixels; 0: no tiling")
  parser.add_argument("--tile_overlap", type=int, default=32, help="overlap of tiles in LR pixels")
  parser.add_argument("--no_report", action="store_true",
                      help="do not write report.html and report/ (the page of images)")
  parser.add_argument("--figure_crop", type=int, default=128,
                      help="side of the central HR region shown in crops/*.png")
  parser.add_argument("--slices", type=_slice_range, default=(0, 0),
                      help="volumes: score only slices START:STOP (Python slicing, in slice "
                      "order; the config's data.eval_slices); default: all")
  parser.add_argument("--min_foreground", type=float, default=0.0,
                      help="volumes: skip slices with less than this share of pixels above "
                      "the background (the config's data.min_foreground)")
  images.add_image_arguments(parser)
  compile_cache.add_argument(parser)
  args = parser.parse_args(argv)
  images.check_image_arguments(parser, args)
  if min(args.crop_border, args.max_images, args.center_crop, args.tile, args.tile_overlap) < 0:
    parser.error("--crop_border, --max_images, --center_crop, --tile and --tile_overlap must be >= 0")
  if args.scale is not None and args.scale < 1:
    parser.error("--scale must be >= 1")
  if args.figure_crop < 1:
    parser.error("--figure_crop must be >= 1")
  if args.tile and args.tile_overlap >= args.tile:
    parser.error("--tile_overlap must be smaller than --tile")
  if args.lr and (args.degradation != parser.get_default("degradation") or args.center_crop):
    parser.error("--lr gives the LR images: drop --degradation and --center_crop")
  if not 0.0 <= args.min_foreground <= 1.0:
    parser.error("--min_foreground must lie in [0, 1]")
  return args


def _slice_range(text: str) -> tuple[int, int]:
  start, colon, stop = text.partition(":")
  try:
    if not colon:
      raise ValueError
    return int(start or 0), int(stop or 0)
  except ValueError:
    raise argparse.ArgumentTypeError(f"{text!r}: give START:STOP, e.g. 0:20") from None


def model_names(weights_args: list[str], names_arg: str) -> list[str]:
  """--names, or each source's file stem / workdir name; unique, never 'bicubic'."""
  if names_arg:
    names = [n.strip() for n in names_arg.split(",")]
    if len(names) != len(weights_args) or not all(names):
      raise errors.UsageError(f"--names gives {len(names)} names for {len(weights_args)} --weights")
  else:
    names = []
    for source in weights_args:
      path = pathlib.Path(source).expanduser()
      names.append(path.name if path.is_dir() else path.stem)
  if report.BASELINE_MODEL in names:
    raise errors.UsageError(f"model name '{report.BASELINE_MODEL}' is taken by the baseline; "
                            "pass --names")
  if len(set(names)) != len(names):
    raise errors.UsageError(f"model names repeat ({', '.join(names)}); pass --names")
  return names


def shipped_models(items, scale: int | None, modality: str | None, say):
  """The shipped models chosen per image by its Modality, and the scale they share:
  --scale, else :func:`pretrained.default_scale` of the inputs' modalities."""
  if scale is None:
    scale = pretrained.default_scale({item.modality(modality) for item in items})
  if scale not in pretrained.shipped_scales():
    raise errors.UsageError(f"no shipped model upscales x{scale}; pass --weights")
  return model_lib.Shipped(lambda m: pretrained.evaluate_for(m, scale), say).for_image, scale


def select_images(files: list[pathlib.Path], root: pathlib.Path, include: str, exclude: str,
                  heldout: bool, validation: bool = False) -> list[pathlib.Path]:
  """The files --include/--exclude/--heldout/--validation keep (patterns on relative
  path or name)."""
  patterns = lambda text: [p.strip() for p in text.split(",") if p.strip()]
  split = (base.XRAY_HELDOUT if heldout else ()) + (base.XRAY_VALIDATION if validation else ())
  kept = []
  for path in files:
    relative = path.relative_to(root).as_posix()
    if include and not sources.matches(relative, patterns(include)):
      continue
    if exclude and sources.matches(relative, patterns(exclude)):
      continue
    if split and not sources.matches(relative, split):
      continue
    kept.append(path)
  if not kept:
    raise errors.UsageError(f"{root}: no images left after "
                            "--include/--exclude/--heldout/--validation")
  return kept


def load_models(weights_args: list[str], names: list[str], scale: int | None):
  """[(name, model)] and the common scale; one-line errors for bad sets."""
  loaded = []
  for source, name in zip(weights_args, names):
    if not pretrained.resolve(source).exists():
      raise errors.UsageError(f"{source}: no such weights file or training workdir")
    loaded.append((name, model_lib.load(source)))
  scales = {m.scale for _, m in loaded}
  if scale is None and len(scales) > 1:
    found = ", ".join(f"{n} x{m.scale}" for n, m in loaded)
    raise errors.UsageError(f"models have different scales ({found}); they must share one")
  scale = scale if scale is not None else scales.pop()
  for name, model in loaded:
    if model.scale != scale:
      raise errors.UsageError(f"{model.info.get('source', name)}: model upscales "
                              f"x{model.scale}, not --scale={scale}")
  return loaded, scale


def lr_partners(found, lr_root: pathlib.Path, say=None) -> dict[str, pathlib.Path | str]:
  """HR item name -> its LR file in ``lr_root`` (same relative path, any image extension),
  or the one-line problem when there is none; LR files no HR image matches are named
  through ``say``."""
  if not lr_root.is_dir():
    raise errors.UsageError(f"{lr_root}: no such folder (--lr)")
  by_stem: dict[str, list[pathlib.Path]] = {}
  for path in images.list_images(lr_root):
    stem = path.relative_to(lr_root).with_suffix("").as_posix()
    by_stem.setdefault(stem, []).append(path)
  partners = {}
  for item in found:
    stem = pathlib.PurePosixPath(item.name).with_suffix("").as_posix()
    if item.is_series:
      partners[item.name] = f"{item.name}: --lr pairs single image files, not a DICOM series"
    elif len(by_stem.get(stem, ())) == 1:
      partners[item.name] = by_stem[stem][0]
    elif stem in by_stem:
      partners[item.name] = f"{item.name}: several LR files named {stem}.* in {lr_root}"
    else:
      partners[item.name] = f"{item.name}: no LR file {stem}.* in {lr_root}"
  used = {pathlib.PurePosixPath(item.name).with_suffix("").as_posix() for item in found}
  for stem in sorted(set(by_stem) - used):
    if say is not None:
      say(f"jaxsr: note: {by_stem[stem][0]}: LR file without an HR image in the --hr folder")
  return partners


def _load_lr(partner, options: dict):
  if isinstance(partner, str):
    raise images.ImageReadError(partner)
  return images.read_image(partner, **options)


def _load(item: series.Item, options: dict, args):
  """The item's image; a volume cut to --slices and --min_foreground."""
  image = item.load(**options)
  if image.num_frames == 1 or (tuple(args.slices) == (0, 0) and not args.min_foreground):
    return image
  kept = volumes.keep_slices(image, args.slices, args.min_foreground)
  if not kept:
    raise images.ImageReadError(
        f"{item.name}: none of its {image.num_frames} slices is in --slices="
        f"{args.slices[0]}:{args.slices[1]} with --min_foreground={args.min_foreground:g}")
  return image.select_frames(kept)


def main(argv=None) -> int:
  """``jaxsr evaluate``: exit 0, 1 (some images failed) or 2 (bad arguments)."""
  return errors.run(_main, argv)


def _main(argv) -> int:
  args = parse_args(argv)
  compile_cache.enable(args.compilation_cache)
  hr_root = pathlib.Path(args.hr)
  output = pathlib.Path(args.output)
  if not hr_root.is_dir():
    raise errors.UsageError(f"{args.hr}: no such folder")
  hr_abs, out_abs = hr_root.resolve(), output.resolve()
  if out_abs == hr_abs or hr_abs in out_abs.parents:
    raise errors.UsageError(f"{args.output}: output folder is (inside) the --hr folder; "
                            "choose another")
  files = select_images(images.list_images(hr_root), hr_root, args.include, args.exclude,
                        args.heldout, args.validation)
  groups = evaluate.parse_groups(args.groups)
  say = lambda line: print(line, file=sys.stderr)
  found = series.find(hr_root, files)
  if args.weights is None:
    if args.names:
      raise errors.UsageError("--names names --weights; give both or neither")
    models, scale = shipped_models(found, args.scale, args.modality, say)
  else:
    names = model_names(args.weights, args.names)
    models, scale = load_models(args.weights, names, args.scale)
  setup = evaluate.Setup(scale=scale,
                         degradation=evaluate.GIVEN_LR if args.lr else args.degradation,
                         seed=args.seed,
                         crop_border=args.crop_border, center_crop=args.center_crop,
                         tile=args.tile, tile_overlap=args.tile_overlap,
                         figure_crop=args.figure_crop, max_images=args.max_images,
                         groups=groups, report=not args.no_report)
  options = dict(hu_range=args.hu_range, modality=args.modality, slice_axis=args.slice_axis)
  items = [(item.name, lambda item=item: _load(item, options, args)) for item in found]
  if args.lr:
    partners = lr_partners(found, pathlib.Path(args.lr), say)
    items = [(name, load, lambda p=partners[name]: _load_lr(p, options)) for name, load in items]
  result = evaluate.evaluate(models, items, setup, output=output, log=say)
  for line in result.failed:
    say(f"jaxsr: failed: {line}")
  attempted = min(len(items), args.max_images or len(items))
  if not result.rows:
    say(errors.error_line(f"none of the {attempted} images could be scored"))
    return 1
  count = len({r.model for r in result.rows}) - 1
  say(f"wrote {output}/metrics.csv, summary.md, metrics.png and crops/ "
      f"({result.count} images, {count} model{'s' * (count != 1)} + bicubic)")
  if result.failed:
    say(f"jaxsr: {len(result.failed)} of {attempted} images failed")
    return 1
  return 0


if __name__ == "__main__":
  huge_pages.restart_with_huge_pages()  # Before jax allocates anything.
  errors.install_interrupt_watcher()
  sys.exit(main())
