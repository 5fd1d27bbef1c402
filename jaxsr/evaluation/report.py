"""Evaluation outputs: a per-image metrics CSV and a markdown summary.

The CSV is the record (every image, every model, full float precision) and
is what later comparisons read back. summary.md is for people: one table per
model laid out like a thesis results table, then a comparison of the means.

Both files are written atomically (temporary file in the same folder, then
``os.replace``) so an interrupted evaluation never leaves a truncated file
that looks like a finished one.
"""
import csv
import dataclasses
import io
import math
import os
from typing import Mapping, Sequence

import numpy as np

from jaxsr.io import files

# Files written before volumes and modalities had the first seven columns only.
OLD_CSV_HEADER = ("image", "model", "scale", "bits", "psnr", "ssim", "mse")
# ... and before source groups, these twelve.
VOLUME_CSV_HEADER = OLD_CSV_HEADER + ("modality", "data_range", "slice", "psnr_soft_tissue",
                                      "ssim_soft_tissue")
CSV_HEADER = VOLUME_CSV_HEADER + ("group",)
BASELINE_MODEL = "bicubic"


@dataclasses.dataclass(frozen=True)
class MetricRow:
  """Quality of one model's output for one test image, or one slice of a volume.

  `bits` is the depth the metrics were computed on and `data_range` the
  peak PSNR and SSIM used (2**bits - 1, or for CT the width of the HU range):
  PSNR and MSE are in those units, so rows of different ranges must not be
  averaged. A volume has one row per slice (`slice` = its index) and one for
  the whole volume (`slice` None: MSE and PSNR of all its slices pooled, SSIM
  their mean). CT rows carry
  PSNR and SSIM within the soft-tissue window as well. `group` is the image's
  source group (:func:`jaxsr.evaluation.evaluate.group_of`), '' if none.
  """
  image: str
  model: str
  scale: int
  bits: int
  psnr: float
  ssim: float
  mse: float
  modality: str = ""
  data_range: float = 0.0
  slice: int | None = None
  psnr_soft_tissue: float | None = None
  ssim_soft_tissue: float | None = None
  group: str = ""

  def __post_init__(self):
    if not self.data_range:
      object.__setattr__(self, "data_range", float(2**int(self.bits) - 1))

  @property
  def peak(self) -> float:
    return float(self.data_range)


def _write_text_atomically(path, text: str) -> None:
  def write_to(tmp):
    with open(tmp, "w", encoding="utf-8", newline="") as tmp_file:
      tmp_file.write(text)
      tmp_file.flush()
      os.fsync(tmp_file.fileno())

  files.write_atomically(path, write_to)


def _float_text(value: float) -> str:
  # repr is the shortest text that reads back to the same float; inf -> "inf".
  return repr(float(value))


def _optional_text(value) -> str:
  return "" if value is None else _float_text(value)


def write_metrics_csv(rows: Sequence[MetricRow], path) -> None:
  """Writes one CSV line per (image or slice, model) with lossless float text."""
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator="\n")
  writer.writerow(CSV_HEADER)
  for row in rows:
    writer.writerow([
        row.image, row.model, int(row.scale), int(row.bits),
        _float_text(row.psnr), _float_text(row.ssim), _float_text(row.mse),
        row.modality, _float_text(row.peak), "" if row.slice is None else int(row.slice),
        _optional_text(row.psnr_soft_tissue), _optional_text(row.ssim_soft_tissue), row.group
    ])
  _write_text_atomically(path, buffer.getvalue())


def read_metrics_csv(path) -> list[MetricRow]:
  """Reads a file written by `write_metrics_csv` back into MetricRows."""
  with open(path, encoding="utf-8", newline="") as csv_file:
    reader = csv.reader(csv_file)
    header = next(reader, None)
    if header is None or tuple(header) not in (CSV_HEADER, VOLUME_CSV_HEADER, OLD_CSV_HEADER):
      raise ValueError(
          f"{path}: expected header {','.join(CSV_HEADER)}, got {header}")
    width = len(header)
    rows = []
    for line_number, fields in enumerate(reader, start=2):
      if not fields:
        continue
      if len(fields) != width:
        raise ValueError(
            f"{path}:{line_number}: expected {width} fields, "
            f"got {len(fields)}")
      image, model, scale, bits, psnr, ssim, mse = fields[:7]
      extra = (fields[7:] or ["", "0", "", "", ""]) + [""] * (len(CSV_HEADER) - width)
      optional = lambda text: float(text) if text else None  # pylint: disable=unnecessary-lambda-assignment
      try:
        rows.append(
            MetricRow(image=image, model=model, scale=int(scale),
                      bits=int(bits), psnr=float(psnr), ssim=float(ssim),
                      mse=float(mse), modality=extra[0], data_range=float(extra[1]),
                      slice=int(extra[2]) if extra[2] else None,
                      psnr_soft_tissue=optional(extra[3]),
                      ssim_soft_tissue=optional(extra[4]), group=extra[5]))
      except ValueError as error:
        raise ValueError(f"{path}:{line_number}: {error}") from None
  return rows


def _format_psnr(value: float) -> str:
  return "inf" if math.isinf(value) else f"{value:.2f}"


def _format_mse(value: float) -> str:
  # Two decimals would print a near-perfect result as 0.00.
  if value != 0 and abs(value) < 1:
    return f"{value:.4g}"
  return f"{value:.2f}"


def _format_ssim(value: float) -> str:
  return f"{value:.4f}"


def _ordered_groups(
    rows: Sequence[MetricRow]) -> list[tuple[tuple[str, int], list[MetricRow]]]:
  """Groups rows by (model, scale): bicubic first, then first appearance."""
  groups: dict[tuple[str, int], list[MetricRow]] = {}
  for row in rows:
    groups.setdefault((row.model, int(row.scale)), []).append(row)
  keys = list(groups)
  keys.sort(key=lambda key: 0 if key[0] == BASELINE_MODEL else 1)  # stable
  return [(key, groups[key]) for key in keys]


def _means(rows: Sequence[MetricRow]) -> tuple[float, float, float]:
  """Arithmetic means of per-image PSNR, MSE and SSIM (inf stays inf)."""
  return (float(np.mean([row.psnr for row in rows])),
          float(np.mean([row.mse for row in rows])),
          float(np.mean([row.ssim for row in rows])))


def _count(number: int, noun: str) -> str:
  return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _table_line(cells: Sequence[str]) -> str:
  # A bare "|" in an image or model name would split the cell.
  return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _setup_lines(rows: Sequence[MetricRow],
                 setup: Mapping[str, object] | None) -> list[str]:
  """The "Setup" list: what the numbers below were measured on.

  A reader comparing two summaries needs the LR, region and border before the
  numbers mean anything; the image count is always there because it is the
  one fact the rows themselves can vouch for.
  """
  items = dict(setup or {})
  items.setdefault("Images", len(dict.fromkeys(row.image for row in rows)))
  lines = ["**Setup**", ""]
  lines += [f"- {key}: {value}" for key, value in items.items()]
  lines.append("")
  return lines


def _bit_depth_lines(groups, scales) -> list[str]:
  """Per-model means split by bit depth, or nothing if there is one depth.

  PSNR and MSE are in the grey levels of each image's own depth (an MSE of 100
  is tiny at 16 bits and large at 8), so a mean over mixed depths is not a
  number anyone can compare with a published result; this table never mixes.
  """
  depths = sorted({int(row.bits) for _, model_rows in groups
                   for row in model_rows})
  if len(depths) < 2:
    return []
  lines = ["### Means by bit depth", ""]
  lines.append(
      _table_line(["Model", "Bits", "Images", "PSNR", "MSE", "SSIM"]))
  lines.append(_table_line(["---", "---:", "---:", "---:", "---:", "---:"]))
  for (model, scale), model_rows in groups:
    label = model if len(scales) == 1 else f"{model} (×{scale})"
    for bits in depths:
      depth_rows = [row for row in model_rows if int(row.bits) == bits]
      if not depth_rows:
        continue
      mean_psnr, mean_mse, mean_ssim = _means(depth_rows)
      lines.append(_table_line([
          label, str(bits), str(len(depth_rows)), _format_psnr(mean_psnr),
          _format_mse(mean_mse), _format_ssim(mean_ssim)
      ]))
  lines.append("")
  lines.append(
      "Each value is the arithmetic mean over that model's images of one bit "
      "depth (MSE in that depth's grey levels, PSNR against its peak). The "
      "Comparison table above averages over all depths together.")
  return lines


def _split(groups, scales, attribute: str, values):
  """(value, model, label, rows) for each value of a row attribute and each model, in
  that order, skipping empty pairs; label names the scale where several are shown."""
  for value in values:
    for (model, scale), model_rows in groups:
      mine = [row for row in model_rows if getattr(row, attribute) == value]
      if mine:
        yield value, model, (model if len(scales) == 1 else f"{model} (×{scale})"), mine


def _source_group_lines(groups, scales) -> list[str]:
  """Per-model means for each source group with the gain over bicubic, or nothing
  when no row has a group.

  A model tuned on one hospital's images can gain on them and lose on
  another's; the overall mean hides that, so each group is shown apart, its
  gain taken against bicubic on the same images.
  """
  names = list(dict.fromkeys(row.group for _, model_rows in groups for row in model_rows))
  if not any(names):
    return []
  baseline = {(row.image, row.scale): row for (model, _), model_rows in groups
              if model == BASELINE_MODEL for row in model_rows}
  lines = ["### Means by source group", ""]
  lines.append(_table_line(["Group", "Model", "Images", "Bits", "PSNR", "SSIM", "MSE",
                            "ΔPSNR vs bicubic", "ΔSSIM vs bicubic"]))
  lines.append(_table_line(["---", "---", "---:", "---:", "---:", "---:", "---:", "---:",
                            "---:"]))
  for name, model, label, mine in _split(groups, scales, "group", names):
    mean_psnr, mean_mse, mean_ssim = _means(mine)
    paired = [(row, baseline[(row.image, row.scale)]) for row in mine
              if (row.image, row.scale) in baseline]
    gain = ["", ""]
    if model != BASELINE_MODEL and len(paired) == len(mine):
      gain = [f"{np.mean([r.psnr - b.psnr for r, b in paired]):+.2f}",
              f"{np.mean([r.ssim - b.ssim for r, b in paired]):+.4f}"]
    depths = "/".join(str(b) for b in sorted({int(row.bits) for row in mine}))
    lines.append(_table_line([name or "—", label, str(len(mine)), depths,
                              _format_psnr(mean_psnr), _format_ssim(mean_ssim),
                              _format_mse(mean_mse)] + gain))
  lines.append("")
  lines.append("Means over each group's images; the gains are means of the per-image "
               "differences from bicubic on the same LR. Groups of mixed bit depths mix "
               "grey-level units in their MSE.")
  return lines


def _modality_lines(groups, scales) -> list[str]:
  """Per-model means for each modality, or nothing when all rows share one.

  CT is scored in HU over its HU range (with soft-tissue window columns), MR and
  radiographs on their stored range, colour on luminance: means only make sense
  within one modality.
  """
  modalities = sorted({row.modality for _, model_rows in groups for row in model_rows})
  if len(modalities) < 2 and not any(row.psnr_soft_tissue is not None
                                     for _, model_rows in groups for row in model_rows):
    return []
  lines = ["### Means by modality", ""]
  lines.append(_table_line(["Modality", "Model", "Images", "Data range", "PSNR", "MSE", "SSIM",
                            "PSNR soft tissue", "SSIM soft tissue"]))
  lines.append(_table_line(["---", "---", "---:", "---:", "---:", "---:", "---:", "---:",
                            "---:"]))
  for modality, _, label, mine in _split(groups, scales, "modality", modalities):
    mean_psnr, mean_mse, mean_ssim = _means(mine)
    ranges = sorted({row.peak for row in mine})
    soft = [row for row in mine if row.psnr_soft_tissue is not None]
    soft_cells = ([_format_psnr(float(np.mean([r.psnr_soft_tissue for r in soft]))),
                   _format_ssim(float(np.mean([r.ssim_soft_tissue for r in soft])))]
                  if soft else ["", ""])
    lines.append(_table_line([modality or "—", label, str(len(mine)),
                              "/".join(f"{r:g}" for r in ranges), _format_psnr(mean_psnr),
                              _format_mse(mean_mse), _format_ssim(mean_ssim)] + soft_cells))
  lines.append("")
  lines.append("Data range: the peak PSNR and SSIM are computed against (2**bits - 1 stored "
               "levels; CT: the width of the HU range, MSE in HU²). Soft tissue: both images "
               "clipped to −160…240 HU (window 400, level 40) and scored against 400.")
  return lines


def write_summary_md(rows: Sequence[MetricRow], path,
                     title: str = "Super-resolution results",
                     setup: Mapping[str, object] | None = None) -> None:
  """Writes per-model results tables and a comparison of model means.

  Means are plain arithmetic means of the per-image values; PSNR is averaged
  in dB, not recomputed from the mean MSE. No image is ever dropped: an image
  reproduced exactly has PSNR inf, which makes that model's mean PSNR inf, and
  the section says how many such images there were.

  `setup` (e.g. {"LR": ..., "Region": ..., "Border": ...}) is listed under
  the title as given; "Images" is added from the rows unless given. When the
  rows hold more than one bit depth, a last section gives the means per depth.
  """
  if not rows:
    raise ValueError("no metric rows to summarise")
  # Volumes are summarised by their whole-volume rows; slices are in metrics.csv.
  rows = [row for row in rows if row.slice is None]
  groups = _ordered_groups(rows)
  scales = {scale for (_, scale), _ in groups}
  lines = [f"# {title}", ""]
  lines += _setup_lines(rows, setup)
  comparison = []
  for (model, scale), model_rows in groups:
    lines += [f"### {model} (×{scale})", ""]
    lines.append(_table_line(["Image", "PSNR", "MSE", "SSIM"]))
    lines.append(_table_line(["---", "---:", "---:", "---:"]))
    for row in model_rows:
      lines.append(_table_line([
          row.image, _format_psnr(row.psnr), _format_mse(row.mse),
          _format_ssim(row.ssim)
      ]))
    mean_psnr, mean_mse, mean_ssim = _means(model_rows)
    lines.append(_table_line([
        "**Mean**", f"**{_format_psnr(mean_psnr)}**",
        f"**{_format_mse(mean_mse)}**", f"**{_format_ssim(mean_ssim)}**"
    ]))
    lines.append("")
    lines.append(
        f"PSNR in dB. Mean: arithmetic mean of the per-image values over "
        f"{_count(len(model_rows), 'image')} (PSNR averaged in dB).")
    exact_count = sum(math.isinf(row.psnr) for row in model_rows)
    if exact_count:
      lines.append(
          f"{_count(exact_count, 'image')} reproduced exactly (MSE 0, PSNR "
          "inf) and kept in the mean, so the mean PSNR is inf.")
    lines.append("")
    label = model if len(scales) == 1 else f"{model} (×{scale})"
    comparison.append((label, mean_psnr, mean_mse, mean_ssim))

  lines += ["### Comparison", ""]
  lines.append(_table_line(["Model", "PSNR", "MSE", "SSIM"]))
  lines.append(_table_line(["---", "---:", "---:", "---:"]))
  for label, mean_psnr, mean_mse, mean_ssim in comparison:
    lines.append(_table_line([
        label, _format_psnr(mean_psnr), _format_mse(mean_mse),
        _format_ssim(mean_ssim)
    ]))
  lines.append("")
  lines.append("Each value is the arithmetic mean of that model's per-image "
               "values in the tables above.")
  by_source = _source_group_lines(groups, scales)
  if by_source:
    lines += [""] + by_source
  bit_depth = _bit_depth_lines(groups, scales)
  if bit_depth:
    lines += [""] + bit_depth
  by_modality = _modality_lines(groups, scales)
  if by_modality:
    lines += [""] + by_modality
  _write_text_atomically(path, "\n".join(lines) + "\n")
