"""Scores super-resolution models against bicubic on full-resolution radiographs.

  python -m jaxsr.evaluate --hr=DIR --output=DIR [--weights=W --weights=W2 ...] \
      [--scale=4] [--degradation=bicubic|realesrgan] [--seed=0] [--names=a,b] \
      [--include=GLOB,...] [--exclude=GLOB,...] [--heldout] \
      [--crop_border=4] [--max_images=0] [--center_crop=0] [--tile=512] \
      [--figure_crop=128]

Each W is the name of a model shipped with jaxsr (xray_x4, xray_x2,
xray_x4_gan), a training workdir (latest checkpoint, EMA weights where
kept), a jaxsr .safetensors export or an official .pth. Without --weights,
the shipped models for --scale (default 4) are compared: x4 xray_x4 and
xray_x4_gan, x2 xray_x2. Every model must upscale by --scale (default: the
models' own scale). The HR images in DIR (searched recursively; read only,
never written to; --include/--exclude glob patterns on their relative paths
or names select some, --heldout keeps only the patients the shipped models
never saw in training, jaxsr.config.XRAY_HELDOUT) are cut to a multiple of
the scale and shrunk to LR inputs:

* ``bicubic`` (default): antialiased bicubic downscaling, rounded to the
  image's own bit depth (the classic SRGAN/ESRGAN benchmark LR);
* ``realesrgan``: Real-ESRGAN's second-order degradation (blur, resize,
  noise, JPEG, twice) with the default degradation settings and the LR
  rounded to the image's own bit depth. The random draws come from
  (--seed, image index in sorted order), so a run is reproducible. The whole
  image is degraded: it is reflect-padded at the bottom/right to a square
  (the degradation works on square canvases) and the LR is cut back.

Every model and the bicubic upscale of the same LR are scored against the HR
on the image's own grey levels (0..2**bits - 1), with --crop_border pixels
dropped at every edge. Models run in tiles of --tile LR pixels (0: whole
image), so memory stays bounded on large radiographs; --center_crop=N scores
only the central NxN HR region (useful for quick runs and for the costly
realesrgan degradation of very large images).

Outputs in --output:
  metrics.csv   image,model,scale,psnr,ssim,mse: one line per image and model
  summary.md    a table per model (per image, mean) and a comparison of means
  metrics.png   PSNR, SSIM and MSE bars: mean per model, per-image std as error bars
  crops/<image>.png  the central --figure_crop HR pixels: LR (nearest-upsampled),
                bicubic, each model and HR side by side

Model names come from --names (comma-separated, one per --weights) or else
the weights file's stem or the workdir's folder name. Missing weights, no
images, a scale mismatch or --output inside --hr stop the run with a one-line
error and exit status 2; an image that cannot be read or scored is reported
and skipped, and the exit status is then 1.
"""
import argparse
import logging
import pathlib
import sys
import time

from jaxsr import huge_pages

DEGRADATIONS = ("bicubic", "realesrgan")


def parse_args(argv):
  parser = argparse.ArgumentParser(prog="python -m jaxsr.evaluate",
                                   description=__doc__.split("\n")[0])
  parser.add_argument("--weights", action="append", default=None,
                      help="shipped model name, training workdir, .safetensors or .pth; repeat "
                      "for several models; default: the shipped models for --scale")
  parser.add_argument("--hr", required=True, help="folder of HR radiographs (searched recursively)")
  parser.add_argument("--output", required=True, help="folder for the results")
  parser.add_argument("--scale", type=int, default=None,
                      help="upscaling factor every model must have (default: the models')")
  parser.add_argument("--degradation", choices=DEGRADATIONS, default="bicubic",
                      help="how the LR inputs are made from the HR images")
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
  parser.add_argument("--max_images", type=int, default=0, help="score only the first N images; 0: all")
  parser.add_argument("--center_crop", type=int, default=0,
                      help="score only the central NxN HR region; 0: the whole image")
  parser.add_argument("--tile", type=int, default=512, help="tile side in LR pixels; 0: no tiling")
  parser.add_argument("--tile_overlap", type=int, default=32, help="overlap of tiles in LR pixels")
  parser.add_argument("--figure_crop", type=int, default=128,
                      help="side of the central HR region shown in crops/*.png")
  args = parser.parse_args(argv)
  if min(args.crop_border, args.max_images, args.center_crop, args.tile, args.tile_overlap) < 0:
    parser.error("--crop_border, --max_images, --center_crop, --tile and --tile_overlap must be >= 0")
  if args.scale is not None and args.scale < 1:
    parser.error("--scale must be >= 1")
  if args.figure_crop < 1:
    parser.error("--figure_crop must be >= 1")
  if args.tile and args.tile_overlap >= args.tile:
    parser.error("--tile_overlap must be smaller than --tile")
  return args


class UsageError(ValueError):
  """A problem with the arguments as a whole; reported in one line, exit 2."""


def one_line(error: BaseException) -> str:
  return " ".join(str(error).split()) or type(error).__name__


def model_names(weights_args: list[str], names_arg: str) -> list[str]:
  """--names, or each source's file stem / workdir name; unique, never 'bicubic'."""
  if names_arg:
    names = [n.strip() for n in names_arg.split(",")]
    if len(names) != len(weights_args) or not all(names):
      raise UsageError(f"--names gives {len(names)} names for {len(weights_args)} --weights")
  else:
    names = []
    for source in weights_args:
      path = pathlib.Path(source).expanduser()
      names.append(path.name if path.is_dir() else path.stem)
  from jaxsr.evaluation import report  # pylint: disable=g-import-not-at-top
  if report.BASELINE_MODEL in names:
    raise UsageError(f"model name '{report.BASELINE_MODEL}' is taken by the baseline; pass --names")
  if len(set(names)) != len(names):
    raise UsageError(f"model names repeat ({', '.join(names)}); pass --names")
  return names


def default_weights(scale: int | None) -> list[str]:
  """The shipped models to compare when --weights is not given."""
  from jaxsr import pretrained  # pylint: disable=g-import-not-at-top
  scale = 4 if scale is None else scale
  if scale not in pretrained.EVALUATE:
    raise UsageError(f"no shipped model upscales x{scale}; pass --weights")
  return list(pretrained.EVALUATE[scale])


def select_images(files: list[pathlib.Path], root: pathlib.Path, include: str, exclude: str,
                  heldout: bool) -> list[pathlib.Path]:
  """The files --include/--exclude/--heldout keep (patterns on relative path or name)."""
  from jaxsr import config as base  # pylint: disable=g-import-not-at-top
  from jaxsr.data import sources  # pylint: disable=g-import-not-at-top
  patterns = lambda text: [p.strip() for p in text.split(",") if p.strip()]
  kept = []
  for path in files:
    relative = path.relative_to(root).as_posix()
    if include and not sources.matches(relative, patterns(include)):
      continue
    if exclude and sources.matches(relative, patterns(exclude)):
      continue
    if heldout and not sources.matches(relative, base.XRAY_HELDOUT):
      continue
    kept.append(path)
  if not kept:
    raise UsageError(f"{root}: no images left after --include/--exclude/--heldout")
  return kept


def load_models(weights_args: list[str], names: list[str], scale: int | None):
  """[(name, generator)] and the common scale; one-line errors for bad sets."""
  from jaxsr import pretrained  # pylint: disable=g-import-not-at-top
  from jaxsr.inference import model  # pylint: disable=g-import-not-at-top
  loaded = []
  for source, name in zip(weights_args, names):
    if not pretrained.resolve(source).exists():
      raise UsageError(f"{source}: no such weights file or training workdir")
    loaded.append((name, model.load(source)))
  scales = {g.scale for _, g in loaded}
  if scale is None and len(scales) > 1:
    found = ", ".join(f"{n} x{g.scale}" for n, g in loaded)
    raise UsageError(f"models have different scales ({found}); they must share one")
  scale = scale if scale is not None else scales.pop()
  for name, generator in loaded:
    if generator.scale != scale:
      raise UsageError(f"{generator.info.get('source', name)}: model upscales x{generator.scale}, "
                       f"not --scale={scale}")
  return loaded, scale


def crop_names(names: list[str]) -> dict[str, str]:
  """Image name -> relative path of its crops PNG (suffix kept where stems clash)."""
  stems = [str(pathlib.PurePosixPath(n).with_suffix("")) for n in names]
  clash = {s for s in stems if stems.count(s) > 1}
  return {n: (n if s in clash else s) + ".png" for n, s in zip(names, stems)}


def main(argv=None) -> int:
  args = parse_args(argv)
  # pydicom logs each failed decoder with a traceback; failures are reported
  # here by file name instead.
  import pydicom  # pylint: disable=g-import-not-at-top,unused-import  # Its import sets the level.
  logging.getLogger("pydicom").setLevel(logging.CRITICAL)
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jaxsr.evaluation import figures, metrics, report  # pylint: disable=g-import-not-at-top
  from jaxsr.evaluation import lr_inputs  # pylint: disable=g-import-not-at-top
  from jaxsr.io import images  # pylint: disable=g-import-not-at-top

  hr_root = pathlib.Path(args.hr)
  output = pathlib.Path(args.output)
  try:
    if not hr_root.is_dir():
      raise UsageError(f"{args.hr}: no such folder")
    hr_abs, out_abs = hr_root.resolve(), output.resolve()
    if out_abs == hr_abs or hr_abs in out_abs.parents:
      raise UsageError(f"{args.output}: output folder is (inside) the --hr folder; choose another")
    files = select_images(images.list_images(hr_root), hr_root, args.include, args.exclude,
                          args.heldout)
    if args.max_images:
      files = files[:args.max_images]
    if args.weights is None:
      args.weights = default_weights(args.scale)
      print(f"jaxsr: comparing the shipped radiograph models {', '.join(args.weights)}",
            file=sys.stderr)
    names = model_names(args.weights, args.names)
    models, scale = load_models(args.weights, names, args.scale)
  except (UsageError, images.ImageReadError, FileNotFoundError, ValueError, OSError) as error:
    print(f"jaxsr: error: {one_line(error)}", file=sys.stderr)
    return 2

  from jaxsr.inference import tiling  # pylint: disable=g-import-not-at-top
  from jaxsr.inference import model as model_lib  # pylint: disable=g-import-not-at-top
  predicts = []
  for name, generator in models:
    multiple = (4 // scale if type(generator.module).__name__ == "RRDBNet"
                and scale in (1, 2) else 1)  # pixel-unshuffling input
    predicts.append((name, model_lib.grey_predict(generator), multiple))

  image_names = [p.relative_to(hr_root).as_posix() for p in files]
  crop_paths = crop_names(image_names)
  rows, failed = [], 0
  for index, (path, image_name) in enumerate(zip(files, image_names)):
    start = time.perf_counter()
    try:
      radiograph = images.read_image(path)
      bits = radiograph.bits
      hr = lr_inputs.prepare_hr(radiograph.pixels, scale, args.center_crop)
      if args.degradation == "bicubic":
        lr = lr_inputs.bicubic_lr(hr, scale, bits)
      else:
        lr = lr_inputs.realesrgan_lr(hr, scale, bits, seed=args.seed, index=index)
      top, left, side = figures.center_box(*hr.shape, args.figure_crop, scale)
      box = lambda x: x[top:top + side, left:left + side]  # pylint: disable=cell-var-from-loop
      lr_box = lr[top // scale:(top + side) // scale, left // scale:(left + side) // scale]
      lr_box = np.repeat(np.repeat(lr_box, scale, axis=0), scale, axis=1)
      panels = [(f"LR ({args.degradation}, x{scale} nearest)", lr_box)]
      image_rows = []
      candidates = [(report.BASELINE_MODEL, lambda: lr_inputs.bicubic_upscale(lr, hr.shape))]
      gain = model_lib.input_gain(lr, bits)
      for name, predict, multiple in predicts:
        candidates.append((name, lambda p=predict, m=multiple: tiling.upscale(
            model_lib.stretched(p, gain), lr, scale, tile=args.tile, overlap=args.tile_overlap,
            multiple=m)))
      for name, run in candidates:
        # Score and crop at once: one full-size output is held at a time.
        sr = np.clip(run(), 0.0, 1.0)
        scores = metrics.image_metrics(sr, hr, bits, crop_border=args.crop_border)
        image_rows.append(report.MetricRow(image=image_name, model=name, scale=scale, **scores))
        panels.append((f"{name}\n{_psnr_text(scores['psnr'])} / SSIM {scores['ssim']:.4f}",
                       box(sr)))
        del sr
      panels.append((f"HR ({bits}-bit)", box(hr)))
      figures.crop_panels(
          panels, output / "crops" / crop_paths[image_name],
          title=f"{image_name}: central {side}x{side} HR pixels of {hr.shape[1]}x{hr.shape[0]}")
      rows.extend(image_rows)
      best = max(image_rows[1:], key=lambda r: r.psnr)
      print(f"{image_name} ({hr.shape[1]}x{hr.shape[0]}, {bits}-bit): bicubic "
            f"{_psnr_text(image_rows[0].psnr)}, best {best.model} {_psnr_text(best.psnr)} "
            f"[{time.perf_counter() - start:.1f} s]", file=sys.stderr)
    except Exception as error:  # pylint: disable=broad-except
      # One bad image must not stop a test set: report it by name and go on.
      failed += 1
      message = one_line(error)
      message = message if message.startswith(str(path)) else f"{path}: {message}"
      print(f"jaxsr: failed: {message}", file=sys.stderr)

  if not rows:
    print(f"jaxsr: error: none of the {len(files)} images could be scored", file=sys.stderr)
    return 1
  title = (f"x{scale} super-resolution, {args.degradation} LR"
           + (f" (seed {args.seed})" if args.degradation == "realesrgan" else "")
           + (f", central {args.center_crop}px" if args.center_crop else "")
           + f", crop_border {args.crop_border}")
  report.write_metrics_csv(rows, output / "metrics.csv")
  report.write_summary_md(rows, output / "summary.md", title=title)
  figures.metrics_chart(rows, output / "metrics.png", title=title)
  count = len(rows) // (len(models) + 1)
  print(f"wrote {output}/metrics.csv, summary.md, metrics.png and crops/ "
        f"({count} images, {len(models)} models + bicubic)", file=sys.stderr)
  if failed:
    print(f"jaxsr: {failed} of {len(files)} images failed", file=sys.stderr)
    return 1
  return 0


def _psnr_text(value: float) -> str:
  return "inf dB" if value == float("inf") else f"{value:.2f} dB"


if __name__ == "__main__":
  huge_pages.restart_with_huge_pages()  # Before jax allocates anything.
  sys.exit(main())
