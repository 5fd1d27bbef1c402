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

CSV_HEADER = ("image", "model", "scale", "bits", "psnr", "ssim", "mse")
BASELINE_MODEL = "bicubic"


@dataclasses.dataclass(frozen=True)
class MetricRow:
  """Quality of one model's output for one test image.

  `bits` is the depth the metrics were computed on: PSNR and MSE are in that
  depth's grey levels, so rows of different depths must not be averaged.
  """
  image: str
  model: str
  scale: int
  bits: int
  psnr: float
  ssim: float
  mse: float


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


def write_metrics_csv(rows: Sequence[MetricRow], path) -> None:
  """Writes one CSV line per (image, model) with lossless float text."""
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator="\n")
  writer.writerow(CSV_HEADER)
  for row in rows:
    writer.writerow([
        row.image, row.model, int(row.scale), int(row.bits),
        _float_text(row.psnr), _float_text(row.ssim), _float_text(row.mse)
    ])
  _write_text_atomically(path, buffer.getvalue())


def read_metrics_csv(path) -> list[MetricRow]:
  """Reads a file written by `write_metrics_csv` back into MetricRows."""
  with open(path, encoding="utf-8", newline="") as csv_file:
    reader = csv.reader(csv_file)
    header = next(reader, None)
    if header is None or tuple(header) != CSV_HEADER:
      raise ValueError(
          f"{path}: expected header {','.join(CSV_HEADER)}, got {header}")
    rows = []
    for line_number, fields in enumerate(reader, start=2):
      if not fields:
        continue
      if len(fields) != len(CSV_HEADER):
        raise ValueError(
            f"{path}:{line_number}: expected {len(CSV_HEADER)} fields, "
            f"got {len(fields)}")
      image, model, scale, bits, psnr, ssim, mse = fields
      try:
        rows.append(
            MetricRow(image=image, model=model, scale=int(scale),
                      bits=int(bits), psnr=float(psnr), ssim=float(ssim),
                      mse=float(mse)))
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
  bit_depth = _bit_depth_lines(groups, scales)
  if bit_depth:
    lines += [""] + bit_depth
  _write_text_atomically(path, "\n".join(lines) + "\n")
