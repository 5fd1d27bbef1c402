"""One evaluation for every caller: models against bicubic on whole images.

The trainer's periodic evaluation, ``--mode=eval`` and ``jaxsr evaluate``
all run :func:`evaluate`: each HR image is read whole at its data depth
(:meth:`Image.at_data_depth`: a 10-bit image in a 16-bit PNG is scored
on 1023 levels), optionally cut to a central crop, shrunk to its LR by the
configured degradation, upscaled by bicubic and by every model (tiled, so
memory stays bounded on whole radiographs), and scored on the stored levels.

Volumes and cines are scored slice by slice; each gets a row per slice and
a whole-volume row (MSE and PSNR of all slices pooled, SSIM their mean). CT with a rescale to HU is
scored in HU over its HU range, and again within the soft-tissue window
(both images clipped to −160…240 HU); colour images on their luminance.
With an output folder it writes ``metrics.csv``, ``summary.md``,
``metrics.png`` and a crop figure per image (``crops/<image>.png``).

An image that cannot be read or scored is reported by name and skipped; the
caller decides the exit status from :attr:`Result.failed`.
"""
import dataclasses
import fnmatch
import logging
import pathlib
import time
from typing import Callable, Sequence

import numpy as np

from jaxsr import degradations, errors
from jaxsr.degradations import bicubic
from jaxsr.evaluation import figures, html_report, metrics, report
from jaxsr.inference.model import Model
from jaxsr.io import image as image_lib


# Setup.degradation of LR inputs read from files (jaxsr evaluate --lr) rather than made.
GIVEN_LR = "given"
GIVEN_LR_TEXT = "given LR files, one per HR image (--lr), read at their own depth"


@dataclasses.dataclass(frozen=True)
class Setup:
  """How LR inputs are made and what is scored."""
  scale: int
  degradation: str = "bicubic"
  seed: int = 0
  crop_border: int = 4
  center_crop: int = 0      # >0: only the central NxN HR region.
  tile: int = 512           # LR tile side; 0: whole image at once.
  tile_overlap: int = 32
  figure_crop: int = 128    # Side of the central HR region in crops/*.png; 0: no figures.
  max_images: int = 0       # 0: all.
  num_samples: int = 0      # Crops of the first N images returned for TensorBoard.
  groups: tuple = ()        # ((name, glob), ...): see parse_groups; (): top folders.
  report: bool = False      # With an output folder: report.html and report/ (html_report).

  def describe(self, count: int) -> dict:
    """The summary's Setup list."""
    return {
        "Scale": f"×{self.scale}",
        "LR": (GIVEN_LR_TEXT if self.degradation == GIVEN_LR
               else degradations.get(self.degradation).describe(self.seed)),
        "Region": (f"central {self.center_crop}×{self.center_crop} px" if self.center_crop
                   else "whole image"),
        "Border": f"{self.crop_border} px cropped at each edge before scoring",
        "Depth": "metrics on the stored levels at each image's data depth "
                 "(DICOM BitsStored, else the depth the levels use)",
        "Images": count,
    }

  def run_items(self, models, shipped=()) -> dict:
    """What the run was, for report.html: its models (``None``: the ``shipped``
    models chosen per image), LR, region and border."""
    if models is None:
      described = ", ".join(f"{name} (jaxsr/pretrained/{name}.md)" for name in shipped)
      described += ", shipped, chosen by each image's modality"
    else:
      described = ", ".join(f"{name} (x{model.scale}, {model.description})"
                            for name, model in models)
    return dict(models=described, scale=f"x{self.scale}",
                LR=(GIVEN_LR_TEXT if self.degradation == GIVEN_LR
                    else degradations.get(self.degradation).describe(self.seed)),
                region=(f"central {self.center_crop}x{self.center_crop} px" if self.center_crop
                        else "whole image"),
                border=f"{self.crop_border} px cropped at each edge before scoring")

  def title(self) -> str:
    random = self.degradation != GIVEN_LR and degradations.get(self.degradation).random
    return (f"x{self.scale} super-resolution, {self.degradation} LR"
            + (f" (seed {self.seed})" if random else "")
            + (f", central {self.center_crop}px" if self.center_crop else "")
            + f", crop_border {self.crop_border}")


@dataclasses.dataclass
class Result:
  rows: list[report.MetricRow]      # One per (image, model); a volume's: its slices pooled.
  failed: list[str]                 # One line per image that failed.
  samples: list[tuple[str, dict]]   # (image, {'lr', 'sr', 'hr'} windowed crops in [0, 1]).
  count: int                        # Images scored.
  slice_rows: list[report.MetricRow] = dataclasses.field(default_factory=list)


def parse_groups(text: str) -> tuple[tuple[str, str], ...]:
  """``NAME=GLOB,NAME=GLOB,...`` (``--groups``, ``eval.groups``) as ((name, glob), ...).

  A name may repeat to give its group several patterns; patterns match an
  image's relative path or its file name, as --include does, and the first
  match names the group.
  """
  groups = []
  for part in (p.strip() for p in str(text or "").split(",")):
    if not part:
      continue
    name, equals, pattern = (s.strip() for s in part.partition("="))
    if not equals or not name or not pattern:
      raise errors.UsageError(f"groups: {part!r} is not NAME=GLOB (e.g. nih=nih/*,mhh=mhh_*)")
    groups.append((name, pattern))
  return tuple(groups)


def group_of(image_name: str, groups: Sequence[tuple[str, str]]) -> str:
  """The source group of an image: the first of ``groups`` whose glob matches its
  relative path or name; without groups its top folder ('nih' of 'nih/a.png');
  '' when neither says."""
  if not groups:
    head, slash, _ = image_name.partition("/")
    return head if slash else ""
  name = image_name.rsplit("/", 1)[-1]
  for group, pattern in groups:
    if fnmatch.fnmatchcase(image_name, pattern) or fnmatch.fnmatchcase(name, pattern):
      return group
  return ""


def prepare_hr(image: np.ndarray, scale: int, center_crop: int = 0) -> np.ndarray:
  """The central ``center_crop`` square (0: all), cut to a multiple of ``scale``.

  The cut drops the last rows/columns, as BasicSR's ``mod_crop`` does.
  """
  height, width = image.shape
  if center_crop:
    side = min(center_crop, height, width)
    top, left = (height - side) // 2, (width - side) // 2
    image = image[top:top + side, left:left + side]
    height, width = image.shape
  if height < scale or width < scale:
    raise ValueError(f"image of {width}x{height} is smaller than the scale {scale}")
  return np.ascontiguousarray(image[:height - height % scale, :width - width % scale],
                              dtype=np.float32)


def crop_names(names: Sequence[str]) -> dict[str, str]:
  """Image name -> relative path of its crops PNG (suffix kept where stems clash)."""
  stems = [str(pathlib.PurePosixPath(n).with_suffix("")) for n in names]
  clash = {s for s in stems if stems.count(s) > 1}
  return {n: (n if s in clash else s) + ".png" for n, s in zip(names, stems)}


def psnr_text(value: float) -> str:
  return "inf dB" if value == float("inf") else f"{value:.2f} dB"


def mean_metrics(rows: Sequence[report.MetricRow], model: str) -> dict:
  mine = [r for r in rows if r.model == model]
  return {k: float(np.mean([getattr(r, k) for r in mine])) for k in ("psnr", "ssim", "mse")}


def evaluate(models, images: Sequence[tuple[str, Callable]],
             setup: Setup, output=None, log: Callable[[str], None] = logging.info) -> Result:
  """Scores bicubic and every ``(name, model)`` on ``images`` (``(name, load)`` pairs).

  ``models`` is a sequence of ``(name, model)``, or a function of the image
  giving them (the shipped models chosen by its modality). ``load()`` returns
  a :class:`jaxsr.io.image.Image`. Every model must upscale by ``setup.scale``.
  With ``setup.degradation == GIVEN_LR`` each item is ``(name, load,
  load_lr)``: the LR is read, not made, and must be the HR's size / scale.
  """
  if not callable(models):
    models = list(models)
    _models_for(models, None, setup.scale)
  given = setup.degradation == GIVEN_LR
  if given and setup.center_crop:
    raise errors.UsageError("given LR files (--lr) are scored whole: drop --center_crop")
  degradation = None if given else degradations.get(setup.degradation)
  images = list(images)[:setup.max_images or None]
  output = None if output is None else pathlib.Path(output)
  crop_paths = crop_names([item[0] for item in images])
  rows, slice_rows, failed, samples = [], [], [], []
  page = (html_report.ReportWriter(output, setup.title())
          if output is not None and setup.report else None)
  for index, (image_name, load, *load_lr) in enumerate(images):
    start = time.perf_counter()
    try:
      image = load().at_data_depth()
      if given:
        degradation = _GivenLR(load_lr[0]().at_data_depth(), image, setup.scale, image_name,
                               log)
      image_models = _models_for(models, image, setup.scale)
      frames = image.grey_frames
      count = len(frames)
      scorer = _Scorer(image, setup, group_of(image_name, setup.groups))
      shown = None if page is None else (page, image)
      if count == 1:
        image_rows, panels, first_sr = _score_frame(image_models, frames[0], image_name, None,
                                                    index, setup, degradation, scorer, shown)
      else:
        per_slice, panels, first_sr = [], None, None
        middle = count // 2
        for number, frame in enumerate(frames):
          frame_rows, frame_panels, frame_sr = _score_frame(
              image_models, frame, image_name, image.frame_number(number),
              index * _SLICE_STRIDE + number, setup, degradation, scorer,
              shown if number == middle else None)
          per_slice.append(frame_rows)
          if number == middle:
            panels, first_sr = frame_panels, frame_sr
        slice_rows.extend(row for frame_rows in per_slice for row in frame_rows)
        image_rows = [_mean_row(column) for column in zip(*per_slice)]
      hr_box = panels[-1][1]
      if output is not None and setup.figure_crop:
        where = (f" (slice {image.frame_number(count // 2)}, middle of {count})"
                 if count > 1 else "")
        figures.crop_panels(
            panels, output / "crops" / crop_paths[image_name],
            title=f"{image_name}{where}: central {hr_box.shape[0]}x{hr_box.shape[0]} HR pixels "
                  f"of {image.width - image.width % setup.scale}x"
                  f"{image.height - image.height % setup.scale}",
            window=scorer.window, window_label=scorer.window_label)
      if len(samples) < setup.num_samples and first_sr is not None:
        low, high = figures.display_window(hr_box, scorer.window)
        window = lambda x, lo=low, hi=high: np.clip((x - lo) / (hi - lo), 0.0, 1.0)
        samples.append((image_name, {"lr": window(panels[0][1]), "sr": window(first_sr),
                                     "hr": window(hr_box)}))
      rows.extend(image_rows)
      best = max(image_rows[1:], key=lambda r: r.psnr) if len(image_rows) > 1 else None
      log(f"{image_name} ({image.describe()}{scorer.range_text()}): bicubic "
          f"{psnr_text(image_rows[0].psnr)}"
          + (f", best {best.model} {psnr_text(best.psnr)}" if best else "")
          + (" (whole volume)" if count > 1 else "")
          + f" [{time.perf_counter() - start:.1f} s]")
    except Exception as error:  # pylint: disable=broad-except
      # One bad image must not stop a test set: report it by name and go on.
      failed.append(errors.item_message(image_name, error))
  count = len({row.image for row in rows})
  if output is not None and rows:
    output.mkdir(parents=True, exist_ok=True)
    report.write_metrics_csv(_with_slices(rows, slice_rows), output / "metrics.csv")
    report.write_summary_md(rows, output / "summary.md", title=setup.title(),
                            setup=setup.describe(count))
    figures.metrics_chart(rows, output / "metrics.png", title=setup.title())
    if page is not None:
      shipped = [m for m in figures.model_order(rows) if m != report.BASELINE_MODEL]
      items = setup.run_items(None if callable(models) else models, shipped)
      page.write(rows, run=html_report.run_info(**items), chart="metrics.png")
  return Result(rows=rows, failed=failed, samples=samples, count=count, slice_rows=slice_rows)


class _GivenLR:
  """A read LR in the place of a degradation: ``make_lr`` gives frame by frame the LR
  file's frames; :meth:`fit_hr` checks the HR against it."""

  def __init__(self, lr_image, hr_image, scale: int, name: str = "",
               log: Callable[[str], None] = logging.info):
    if lr_image.num_frames != hr_image.num_frames:
      raise ValueError(f"LR has {lr_image.num_frames} frames, HR {hr_image.num_frames}")
    if lr_image.is_colour != hr_image.is_colour:
      raise ValueError("LR and HR differ in colour")
    self.frames = list(lr_image.grey_frames)
    self.hr_size = (hr_image.width, hr_image.height)
    self.scale, self.name, self.log = scale, name, log
    self.noted = False

  def make_lr(self, hr, scale, bits, *, seed=0, index=0):
    del hr, scale, bits, seed
    return np.asarray(self.frames[index % _SLICE_STRIDE if len(self.frames) > 1 else 0],
                      np.float32)

  def fit_hr(self, hr: np.ndarray, lr: np.ndarray) -> np.ndarray:
    """The HR that goes with ``lr``: scale x its size, the HR's bottom/right cut off (with
    a notice) when the HR is larger; an HR smaller than that is an error."""
    want = (lr.shape[0] * self.scale, lr.shape[1] * self.scale)
    if hr.shape == want:
      return hr
    if hr.shape[0] < want[0] or hr.shape[1] < want[1]:
      raise ValueError(f"LR is {lr.shape[1]}x{lr.shape[0]}: x{self.scale} needs an HR of at "
                       f"least {want[1]}x{want[0]}, the HR is {self.hr_size[0]}x{self.hr_size[1]}")
    if not self.noted:
      self.log(f"{self.name}: HR {self.hr_size[0]}x{self.hr_size[1]} cut to {want[1]}x{want[0]}, "
               f"x{self.scale} the LR's {lr.shape[1]}x{lr.shape[0]}")
      self.noted = True
    return np.ascontiguousarray(hr[:want[0], :want[1]])


def _models_for(models, image, scale: int) -> list[tuple[str, Model]]:
  """The models scored on ``image``, checked to upscale by ``scale``."""
  chosen = list(models(image)) if callable(models) else models
  for name, model in chosen:
    if model.scale != scale:
      raise errors.UsageError(f"{name}: model upscales x{model.scale}, not x{scale}")
  return chosen


# Slices of volume i draw their random LR as image i * stride + slice.
_SLICE_STRIDE = 100_000


class _Scorer:
  """How one image is scored: on stored levels, or for CT in HU over its HU range
  plus the soft-tissue window."""

  def __init__(self, image, setup: Setup, group: str = ""):
    self.group = group
    self.bits = image.bits
    self.modality = image.modality
    self.crop_border = setup.crop_border
    self.value_range = image.value_range if image.is_ct_hu else None
    self.stretch = image.stretchable
    # Figures of CT in the soft-tissue window, as a reader would look at them.
    self.window, self.window_label = None, ""
    if self.value_range is not None:
      low, high = self.value_range
      self.window = tuple((v - low) / (high - low) for v in image_lib.SOFT_TISSUE_WINDOW)
      width = image_lib.SOFT_TISSUE_WINDOW[1] - image_lib.SOFT_TISSUE_WINDOW[0]
      self.window_label = (f"soft-tissue window W {width:g} / "
                           f"L {sum(image_lib.SOFT_TISSUE_WINDOW) / 2:g} HU")

  def range_text(self) -> str:
    if self.value_range is None:
      return ""
    return f", HU {self.value_range[0]:g}…{self.value_range[1]:g}"

  def __call__(self, sr, hr) -> dict:
    scores = metrics.image_metrics(sr, hr, self.bits, crop_border=self.crop_border,
                                   value_range=self.value_range)
    extra = dict(modality=self.modality, group=self.group)
    if self.value_range is not None:
      soft = metrics.image_metrics(sr, hr, self.bits, crop_border=self.crop_border,
                                   value_range=self.value_range,
                                   window=image_lib.SOFT_TISSUE_WINDOW)
      extra.update(data_range=self.value_range[1] - self.value_range[0],
                   psnr_soft_tissue=soft["psnr"], ssim_soft_tissue=soft["ssim"])
    return dict(scores, **extra)


def _score_frame(models, frame, image_name, number, index, setup, degradation, scorer,
                 shown=None):
  """Rows (bicubic first), crop panels and the first model's crop of one 2-D frame.

  ``shown``: (the html_report.ReportWriter, the image) when this frame is the one
  the report page shows; each full-size version is written to it as it is made.
  """
  bits, scale = scorer.bits, setup.scale
  hr = prepare_hr(frame, scale, setup.center_crop)
  lr = degradation.make_lr(hr, scale, bits, seed=setup.seed, index=index)
  if isinstance(degradation, _GivenLR):
    hr = degradation.fit_hr(hr, lr)
  if shown is not None:
    page, image = shown
    where = "" if number is None else f"slice {number}"
    page.start_image(image_name, image, hr.shape, hr, note=where)
    page.add_panel(f"LR ({setup.degradation}, x{scale} nearest)", lr)
  top, left, side = figures.center_box(*hr.shape, max(setup.figure_crop, scale), scale)
  box = lambda x: x[top:top + side, left:left + side]  # pylint: disable=unnecessary-lambda-assignment
  lr_box = lr[top // scale:(top + side) // scale, left // scale:(left + side) // scale]
  lr_box = np.repeat(np.repeat(lr_box, scale, axis=0), scale, axis=1)
  panels = [(f"LR ({setup.degradation}, x{scale} nearest)", lr_box)]
  candidates = [(report.BASELINE_MODEL, lambda: bicubic.upscale(lr, hr.shape))]
  for name, model in models:
    candidates.append((name, lambda m=model: m.upscale(
        lr, bits, tile=setup.tile, overlap=setup.tile_overlap, stretch=scorer.stretch)))
  rows, first_sr = [], None
  for name, run in candidates:
    # Score and crop at once: one full-size output is held at a time.
    sr = run()
    if shown is not None:
      shown[0].add_panel(name, sr)
    scores = scorer(sr, hr)
    rows.append(report.MetricRow(image=image_name, model=name, scale=scale, bits=bits,
                                 slice=number, **scores))
    panels.append((f"{name}\n{psnr_text(scores['psnr'])} / SSIM {scores['ssim']:.4f}", box(sr)))
    if name != report.BASELINE_MODEL and first_sr is None:
      first_sr = box(sr)
    del sr
  panels.append((f"HR ({bits}-bit)", box(hr)))
  if shown is not None:
    shown[0].add_panel(f"HR ({bits}-bit)", hr)
  return rows, panels, first_sr


def _mean_row(rows: Sequence[report.MetricRow]) -> report.MetricRow:
  """The whole-volume row of one model: MSE and PSNR of the volume, SSIM the slice mean.

  PSNR is taken from the volume's MSE (the slices pooled; they share one size),
  not averaged over slices: one slice reproduced exactly (air above the head,
  empty in the soft-tissue window) would make a slice mean infinite.
  """
  mse = float(np.mean([r.mse for r in rows]))
  psnr = metrics.psnr_from_mse(mse, rows[0].peak)
  soft_psnr = soft_ssim = None
  if rows[0].psnr_soft_tissue is not None:
    width = image_lib.SOFT_TISSUE_WINDOW[1] - image_lib.SOFT_TISSUE_WINDOW[0]
    soft_mse = float(np.mean([width**2 / 10**(r.psnr_soft_tissue / 10) for r in rows]))
    soft_psnr = metrics.psnr_from_mse(soft_mse, width)
    soft_ssim = float(np.mean([r.ssim_soft_tissue for r in rows]))
  return dataclasses.replace(rows[0], slice=None, psnr=psnr, mse=mse,
                             ssim=float(np.mean([r.ssim for r in rows])),
                             psnr_soft_tissue=soft_psnr, ssim_soft_tissue=soft_ssim)


def _with_slices(rows, slice_rows):
  """Image rows, each volume's rows followed by its slices' rows."""
  slices: dict[str, list] = {}
  for row in slice_rows:
    slices.setdefault(row.image, []).append(row)
  grouped: dict[str, list] = {}
  for row in rows:
    grouped.setdefault(row.image, []).append(row)
  return [row for image, own in grouped.items() for row in own + slices.get(image, [])]
