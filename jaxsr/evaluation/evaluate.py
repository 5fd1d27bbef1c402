"""Evaluation of a generator against bicubic on whole radiographs.

LR inputs are made from each HR image by bicubic downscaling (rounded to the
image's own bit depth); metrics are computed on that bit depth's grey levels.
"""
import logging
import pathlib
import time

import jax
import numpy as np

from jaxsr.data import pipeline, sources
from jaxsr.evaluation import metrics, report
from jaxsr.inference import model as model_lib


def _prepare_hr(image: np.ndarray, scale: int, center_crop: int) -> np.ndarray:
  h, w = image.shape
  if center_crop:
    side = min(center_crop, h, w)
    top, left = (h - side) // 2, (w - side) // 2
    image = image[top:top + side, left:left + side]
    h, w = image.shape
  return image[:h - h % scale, :w - w % scale]


def evaluate(predict, variables, source, *, model_name: str, scale: int, num_channels: int,
             crop_border: int = 0, center_crop: int = 0,
             max_images: int = 0) -> list[report.MetricRow]:
  """Rows for ``bicubic`` and ``model_name`` on every image of ``source``."""
  rows = []
  count = len(source) if not max_images else min(max_images, len(source))
  for i in range(count):
    record = source[i]
    bits, name = record["bits"], record["name"]
    hr = _prepare_hr(record["image"], scale, center_crop)
    lr = pipeline.make_lr(hr, scale, bits)
    bicubic = np.clip(pipeline.bicubic_resize(lr, *hr.shape), 0.0, 1.0)
    start = time.perf_counter()
    gain = model_lib.input_gain(lr, bits)  # Low bits of a 16-bit container: stretch.
    sr = predict(variables, sources.as_channels(lr * gain, num_channels)[None])
    sr = np.clip(np.asarray(jax.device_get(sr))[0].mean(axis=-1) / gain, 0.0, 1.0)
    logging.info("eval %s (%dx%d, %d-bit): %.2f s", name, hr.shape[1], hr.shape[0], bits,
                 time.perf_counter() - start)
    for model, out in (("bicubic", bicubic), (model_name, sr)):
      m = metrics.image_metrics(out, hr, bits, crop_border=crop_border)
      rows.append(report.MetricRow(image=name, model=model, scale=scale, **m))
  return rows


def write(rows, out_dir, title: str) -> tuple[pathlib.Path, pathlib.Path]:
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  csv_path, md_path = out_dir / "metrics.csv", out_dir / "summary.md"
  report.write_metrics_csv(rows, csv_path)
  report.write_summary_md(rows, md_path, title=title)
  return csv_path, md_path


def mean_metrics(rows, model: str) -> dict:
  mine = [r for r in rows if r.model == model]
  return {k: float(np.mean([getattr(r, k) for r in mine])) for k in ("psnr", "ssim", "mse")}
