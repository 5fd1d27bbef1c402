"""The metrics CSV round-trips exactly and summary.md shows the right numbers."""
import math
import os

import numpy as np
import pytest

from jaxsr.evaluation import report
from jaxsr.evaluation.report import MetricRow

IMAGES = ("chest_a.png", "chest_b.png", "hip_c.png")


def make_rows():
  """ESRGAN appears before bicubic on purpose: bicubic must still lead."""
  rng = np.random.default_rng(0)
  rows = []
  for model in ("esrgan", "bicubic", "srgan"):
    for image in IMAGES:
      rows.append(
          MetricRow(image=image, model=model, scale=4, bits=8,
                    psnr=float(rng.uniform(25, 40)),
                    ssim=float(rng.uniform(0.6, 0.99)),
                    mse=float(rng.uniform(5, 200))))
  return rows


def section(text, heading):
  """The markdown under `### heading`, up to the next heading."""
  start = text.index(f"### {heading}\n")
  end = text.find("###", start + 3)
  return text[start:end if end != -1 else None]


def table_rows(markdown):
  """Cells of each table body line (header and rule excluded)."""
  lines = [line for line in markdown.splitlines() if line.startswith("|")]
  return [[cell.strip() for cell in line.strip("|").split("|")]
          for line in lines[2:]]


def test_csv_round_trip_is_exact(tmp_path):
  rows = make_rows() + [
      MetricRow(image="same.png", model="bicubic", scale=2, bits=12,
                psnr=math.inf, ssim=1.0, mse=0.0),
      MetricRow(image="tiny, odd \"name\".png", model="srgan", scale=2,
                bits=16, psnr=1 / 3, ssim=0.1 + 0.2, mse=1e-17),
  ]
  path = tmp_path / "metrics.csv"
  report.write_metrics_csv(rows, path)
  assert report.read_metrics_csv(path) == rows


def test_csv_header_and_inf(tmp_path):
  path = tmp_path / "metrics.csv"
  report.write_metrics_csv(
      [MetricRow("a.png", "bicubic", 4, 8, math.inf, 1.0, 0.0),
       MetricRow("b.png", "esrgan", 4, 12, 31.25, 0.875, 48.5)], path)
  lines = path.read_text().splitlines()
  assert lines[0] == ("image,model,scale,bits,psnr,ssim,mse,modality,data_range,slice,"
                      "psnr_soft_tissue,ssim_soft_tissue,group")
  assert lines[1] == "a.png,bicubic,4,8,inf,1.0,0.0,,255.0,,,,"
  assert lines[2] == "b.png,esrgan,4,12,31.25,0.875,48.5,,4095.0,,,,"
  assert len(lines) == 3


def test_csv_keeps_modality_range_slice_and_soft_tissue_columns(tmp_path):
  path = tmp_path / "metrics.csv"
  rows = [MetricRow("head", "bicubic", 2, 12, 40.5, 0.97, 9.25, modality="CT",
                    data_range=4095.0, slice=3, psnr_soft_tissue=30.125, ssim_soft_tissue=0.75),
          MetricRow("head", "bicubic", 2, 12, 41.0, 0.98, 8.0, modality="CT", data_range=4095.0,
                    psnr_soft_tissue=31.0, ssim_soft_tissue=0.8)]
  report.write_metrics_csv(rows, path)
  assert path.read_text().splitlines()[1] == \
      "head,bicubic,2,12,40.5,0.97,9.25,CT,4095.0,3,30.125,0.75,"
  assert report.read_metrics_csv(path) == rows


def test_reads_files_written_before_the_modality_columns(tmp_path):
  path = tmp_path / "old.csv"
  path.write_text("image,model,scale,bits,psnr,ssim,mse\na.png,bicubic,4,12,30.0,0.9,5.0\n")
  (row,) = report.read_metrics_csv(path)
  assert (row.bits, row.peak, row.modality, row.slice) == (12, 4095.0, "", None)


def test_summary_uses_volume_rows_and_groups_by_modality(tmp_path):
  rows = [MetricRow("head", "bicubic", 2, 12, 40.0, 0.9, 10.0, modality="CT",
                    psnr_soft_tissue=30.0, ssim_soft_tissue=0.7),
          MetricRow("head", "bicubic", 2, 12, 99.0, 0.1, 1.0, modality="CT", slice=0),
          MetricRow("knee", "bicubic", 2, 12, 35.0, 0.8, 20.0, modality="MR")]
  report.write_summary_md(rows, tmp_path / "summary.md")
  text = (tmp_path / "summary.md").read_text()
  assert "99.00" not in text  # Slice rows stay in metrics.csv.
  assert "### Means by modality" in text
  assert "| CT | bicubic | 1 | 4095 | 40.00 | 10.00 | 0.9000 | 30.00 | 0.7000 |" in text
  assert "| MR | bicubic | 1 | 4095 | 35.00 | 20.00 | 0.8000 |  |  |" in text


def test_read_rejects_the_header_without_bits(tmp_path):
  path = tmp_path / "old.csv"
  path.write_text("image,model,scale,psnr,ssim,mse\na.png,bicubic,4,30,0.9,5\n")
  with pytest.raises(ValueError, match="header"):
    report.read_metrics_csv(path)


def test_read_rejects_a_foreign_header(tmp_path):
  path = tmp_path / "other.csv"
  path.write_text("image,psnr\na.png,30\n")
  with pytest.raises(ValueError, match="header"):
    report.read_metrics_csv(path)


def test_writes_are_atomic(tmp_path, monkeypatch):
  path = tmp_path / "metrics.csv"
  rows = make_rows()
  report.write_metrics_csv(rows, path)
  before = path.read_text()

  def crash(*args, **kwargs):
    raise OSError("disk full")

  monkeypatch.setattr(os, "replace", crash)
  with pytest.raises(OSError, match="disk full"):
    report.write_metrics_csv(rows[:1], path)
  with pytest.raises(OSError, match="disk full"):
    report.write_summary_md(rows, tmp_path / "summary.md")
  # The old file is untouched, no new file appeared and no temp is left over.
  assert path.read_text() == before
  assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]


def test_summary_has_one_row_per_image_and_numpy_means(tmp_path):
  rows = make_rows()
  path = tmp_path / "summary.md"
  report.write_summary_md(rows, path, title="Test set")
  text = path.read_text()
  assert text.startswith("# Test set\n")
  for model in ("bicubic", "esrgan", "srgan"):
    model_rows = [row for row in rows if row.model == model]
    body = table_rows(section(text, f"{model} (×4)"))
    assert [cells[0] for cells in body] == list(IMAGES) + ["**Mean**"]
    for row, cells in zip(model_rows, body):
      assert cells[1:] == [f"{row.psnr:.2f}", f"{row.mse:.2f}",
                           f"{row.ssim:.4f}"]
    mean_cells = [cell.strip("*") for cell in body[-1][1:]]
    assert float(mean_cells[0]) == pytest.approx(
        np.mean([row.psnr for row in model_rows]), abs=0.005)
    assert float(mean_cells[1]) == pytest.approx(
        np.mean([row.mse for row in model_rows]), abs=0.005)
    assert float(mean_cells[2]) == pytest.approx(
        np.mean([row.ssim for row in model_rows]), abs=0.00005)
  assert "arithmetic mean" in section(text, "bicubic (×4)")


def test_bicubic_section_comes_first(tmp_path):
  path = tmp_path / "summary.md"
  report.write_summary_md(make_rows(), path)
  headings = [line for line in path.read_text().splitlines()
              if line.startswith("### ")]
  assert headings == ["### bicubic (×4)", "### esrgan (×4)", "### srgan (×4)",
                      "### Comparison"]


def test_comparison_table_lists_model_means(tmp_path):
  rows = make_rows()
  path = tmp_path / "summary.md"
  report.write_summary_md(rows, path)
  comparison = table_rows(section(path.read_text(), "Comparison"))
  assert [cells[0] for cells in comparison] == ["bicubic", "esrgan", "srgan"]
  for cells in comparison:
    model_rows = [row for row in rows if row.model == cells[0]]
    assert cells[1:] == [
        f"{np.mean([row.psnr for row in model_rows]):.2f}",
        f"{np.mean([row.mse for row in model_rows]):.2f}",
        f"{np.mean([row.ssim for row in model_rows]):.4f}",
    ]


def test_summary_shows_inf_and_small_mse(tmp_path):
  rows = [
      MetricRow("same.png", "bicubic", 2, 8, math.inf, 1.0, 0.0),
      MetricRow("close.png", "bicubic", 2, 8, 60.5, 0.9999, 0.0578123),
  ]
  path = tmp_path / "summary.md"
  report.write_summary_md(rows, path)
  text = path.read_text()
  body = table_rows(section(text, "bicubic (×2)"))
  assert body[0][1:] == ["inf", "0.00", "1.0000"]
  assert body[1][1:] == ["60.50", "0.05781", "0.9999"]
  # Nothing is dropped: the identical image makes the mean PSNR inf.
  assert body[2][1] == "**inf**"
  assert body[2][2] == "**0.02891**"
  assert "1 image reproduced exactly" in text


def test_summary_separates_scales(tmp_path):
  rows = [
      MetricRow("a.png", "esrgan", 2, 8, 35.0, 0.95, 20.0),
      MetricRow("a.png", "bicubic", 4, 8, 26.0, 0.70, 160.0),
      MetricRow("a.png", "esrgan", 4, 8, 28.0, 0.80, 100.0),
  ]
  path = tmp_path / "summary.md"
  report.write_summary_md(rows, path)
  text = path.read_text()
  headings = [line for line in text.splitlines() if line.startswith("### ")]
  assert headings == ["### bicubic (×4)", "### esrgan (×2)", "### esrgan (×4)",
                      "### Comparison"]
  comparison = table_rows(section(text, "Comparison"))
  assert [cells[0] for cells in comparison] == [
      "bicubic (×4)", "esrgan (×2)", "esrgan (×4)"]


def test_summary_rejects_no_rows(tmp_path):
  with pytest.raises(ValueError):
    report.write_summary_md([], tmp_path / "summary.md")


def setup_items(text):
  """The "- key: value" lines between the title and the first table."""
  head = text[:text.index("### ")]
  return [line[2:] for line in head.splitlines() if line.startswith("- ")]


def test_summary_lists_the_setup_under_the_title(tmp_path):
  path = tmp_path / "summary.md"
  setup = {"LR": "bicubic (antialiased, rounded to the image's depth)",
           "Region": "central 512×512 px",
           "Border": "4 px cropped at each edge"}
  report.write_summary_md(make_rows(), path, title="Test set", setup=setup)
  text = path.read_text()
  assert text.startswith("# Test set\n")
  assert setup_items(text) == [
      "LR: bicubic (antialiased, rounded to the image's depth)",
      "Region: central 512×512 px", "Border: 4 px cropped at each edge",
      f"Images: {len(IMAGES)}"]
  assert text.index("Setup") < text.index("### bicubic (×4)")


def test_summary_setup_keeps_a_given_image_count(tmp_path):
  path = tmp_path / "summary.md"
  report.write_summary_md(make_rows(), path, setup={"Images": 7})
  assert setup_items(path.read_text()) == ["Images: 7"]


def test_summary_without_setup_still_counts_images(tmp_path):
  path = tmp_path / "summary.md"
  report.write_summary_md(make_rows(), path)
  assert setup_items(path.read_text()) == [f"Images: {len(IMAGES)}"]


def test_one_bit_depth_has_no_bit_depth_section(tmp_path):
  path = tmp_path / "summary.md"
  report.write_summary_md(make_rows(), path)
  assert "Means by bit depth" not in path.read_text()


def mixed_depth_rows():
  rng = np.random.default_rng(1)
  rows = []
  for model in ("esrgan", "bicubic"):
    for i, bits in enumerate((8, 12, 12, 16, 8)):
      rows.append(MetricRow(f"img{i}.png", model, 4, bits,
                            psnr=float(rng.uniform(25, 50)),
                            ssim=float(rng.uniform(0.6, 0.99)),
                            mse=float(rng.uniform(5, 2e5))))
  return rows


def test_means_by_bit_depth_never_mix_depths(tmp_path):
  rows = mixed_depth_rows()
  path = tmp_path / "summary.md"
  report.write_summary_md(rows, path)
  text = path.read_text()
  headings = [line for line in text.splitlines() if line.startswith("### ")]
  assert headings == ["### bicubic (×4)", "### esrgan (×4)", "### Comparison",
                      "### Means by bit depth"]
  assert "| Model | Bits | Images | PSNR | MSE | SSIM |" in text
  body = table_rows(section(text, "Means by bit depth"))
  assert [cells[:3] for cells in body] == [
      ["bicubic", "8", "2"], ["bicubic", "12", "2"], ["bicubic", "16", "1"],
      ["esrgan", "8", "2"], ["esrgan", "12", "2"], ["esrgan", "16", "1"]]
  for model, bits, _, psnr, mse, ssim in body:
    depth_rows = [row for row in rows
                  if row.model == model and row.bits == int(bits)]
    assert psnr == f"{np.mean([row.psnr for row in depth_rows]):.2f}"
    assert mse == f"{np.mean([row.mse for row in depth_rows]):.2f}"
    assert ssim == f"{np.mean([row.ssim for row in depth_rows]):.4f}"


def test_mixed_depths_keep_the_comparison_table(tmp_path):
  rows = mixed_depth_rows()
  path = tmp_path / "summary.md"
  report.write_summary_md(rows, path)
  comparison = table_rows(section(path.read_text(), "Comparison"))
  assert [cells[0] for cells in comparison] == ["bicubic", "esrgan"]
  for cells in comparison:
    model_rows = [row for row in rows if row.model == cells[0]]
    assert cells[1] == f"{np.mean([row.psnr for row in model_rows]):.2f}"


def test_csv_keeps_the_source_group_and_reads_files_written_before_it(tmp_path):
  rows = [MetricRow("nih/a.png", "bicubic", 4, 8, 30.0, 0.9, 5.0, group="nih")]
  report.write_metrics_csv(rows, tmp_path / "m.csv")
  assert report.read_metrics_csv(tmp_path / "m.csv") == rows
  old = tmp_path / "old.csv"
  old.write_text(",".join(report.VOLUME_CSV_HEADER) + "\na.png,bicubic,4,8,30.0,0.9,5.0,,255.0,,,\n")
  (row,) = report.read_metrics_csv(old)
  assert row.group == "" and row.psnr == 30.0


def test_means_by_source_group_pair_each_model_with_bicubic(tmp_path):
  rows = []
  for group, images, offsets in (("nih", ("n1", "n2"), (1.0, 3.0)), ("mhh", ("m1",), (-0.5,))):
    for image, offset in zip(images, offsets):
      rows.append(MetricRow(image, "bicubic", 4, 8, 30.0 + offset, 0.80, 5.0, group=group))
      rows.append(MetricRow(image, "net", 4, 8, 30.0 + 2 * offset, 0.81, 4.0, group=group))
  report.write_summary_md(rows, tmp_path / "summary.md")
  body = table_rows(section((tmp_path / "summary.md").read_text(), "Means by source group"))
  assert body == [
      ["nih", "bicubic", "2", "8", "32.00", "0.8000", "5.00", "", ""],
      ["nih", "net", "2", "8", "34.00", "0.8100", "4.00", "+2.00", "+0.0100"],
      ["mhh", "bicubic", "1", "8", "29.50", "0.8000", "5.00", "", ""],
      ["mhh", "net", "1", "8", "29.00", "0.8100", "4.00", "-0.50", "+0.0100"]]


def test_no_source_groups_no_group_section(tmp_path):
  report.write_summary_md(make_rows(), tmp_path / "summary.md")
  assert "Means by source group" not in (tmp_path / "summary.md").read_text()
