"""The paper experiment's tables from tools/reproduce_paper.sh's output folder.

  python tools/paper_tables.py OUT_DIR > OUT_DIR/tables.md

Reads OUT_DIR/eval_clean/metrics.csv and eval_realesrgan/metrics.csv (jaxsr
evaluate), each stage's config.json and seconds, and hardware.txt, and
prints Markdown:

  * a comparison of means per LR kind: PSNR, SSIM and MSE as mean ± standard
    deviation over the 8-bit held-out images (MSE on 0..255), the gain over
    bicubic, and the 12-bit DX image on its own (MSE on 0..4095 is not
    comparable with 8-bit MSE, so it is not pooled);
  * the seed paper's Tables 1-3 layout, one table per model and LR kind:
    Image | PSNR | MSE | SSIM;
  * the training of each stage: steps, batch, wall time (compilation and any
    pause included), seconds per step, and the median of the rates its
    train.log reports (the steps alone).
"""
import csv
import json
import pathlib
import re
import statistics
import sys

STAGES = ("srresnet", "srgan", "rrdb_psnr", "esrgan", "realesrnet", "realesrgan")
LR_KINDS = (("clean", "clean bicubic LR"), ("realesrgan", "Real-ESRGAN-degraded LR (seed 0)"))


def read_metrics(path: pathlib.Path) -> list[dict]:
  with path.open() as f:
    return [r for r in csv.DictReader(f) if not r.get("slice")]


def _spread(values: list[float], digits: int) -> str:
  if not values:
    return "-"
  if len(values) == 1:
    return f"{values[0]:.{digits}f}"
  return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _models(rows: list[dict]) -> list[str]:
  seen = []
  for r in rows:
    if r["model"] not in seen:
      seen.append(r["model"])
  return ["bicubic"] + [m for m in seen if m != "bicubic"] if "bicubic" in seen else seen


def means_table(rows: list[dict]) -> list[str]:
  eight = [r for r in rows if int(r["bits"]) == 8]
  deep = [r for r in rows if int(r["bits"]) != 8]
  n8 = len({r["image"] for r in eight})
  base = {r["image"]: float(r["psnr"]) for r in rows if r["model"] == "bicubic"}
  lines = [f"| model | PSNR dB ({n8} × 8-bit) | SSIM | MSE (0..255) | ΔPSNR vs bicubic "
           "| 12-bit DX PSNR / SSIM |", "|---|---:|---:|---:|---:|---:|"]
  for model in _models(rows):
    own = [r for r in eight if r["model"] == model]
    gains = [float(r["psnr"]) - base[r["image"]] for r in own if r["image"] in base]
    dx = [r for r in deep if r["model"] == model]
    dx_text = ", ".join(f"{float(r['psnr']):.2f} / {float(r['ssim']):.4f}" for r in dx) or "-"
    lines.append(
        f"| {model} | {_spread([float(r['psnr']) for r in own], 2)} "
        f"| {_spread([float(r['ssim']) for r in own], 4)} "
        f"| {_spread([float(r['mse']) for r in own], 2)} "
        f"| {'-' if model == 'bicubic' else f'{statistics.mean(gains):+.2f}' if gains else '-'} "
        f"| {dx_text} |")
  return lines


def per_image_tables(rows: list[dict]) -> list[str]:
  lines = []
  for model in _models(rows):
    own = [r for r in rows if r["model"] == model]
    lines += ["", f"**{model}**", "", "| Image | PSNR | MSE | SSIM |", "|---|---:|---:|---:|"]
    for r in own:
      levels = f" (0..{2 ** int(r['bits']) - 1})" if int(r["bits"]) != 8 else ""
      lines.append(f"| {pathlib.Path(r['image']).name} | {float(r['psnr']):.2f} "
                   f"| {float(r['mse']):.2f}{levels} | {float(r['ssim']):.4f} |")
  return lines


def logged_rate(log: pathlib.Path) -> float | None:
  """The median of the steps/s figures a stage's train.log reports."""
  if not log.exists():
    return None
  rates = [float(m) for m in re.findall(r"([0-9.]+) steps/s", log.read_text(errors="replace"))]
  return statistics.median(rates) if rates else None


def training_table(out: pathlib.Path) -> list[str]:
  lines = ["| stage | name | starts from | steps | batch | wall time | s/step | logged steps/s |",
           "|---|---|---|---:|---:|---:|---:|---:|"]
  for stage in STAGES:
    config_path = out / stage / "config.json"
    if not config_path.exists():
      continue
    config = json.loads(config_path.read_text())
    seconds_path = out / stage / "seconds"
    seconds = sum(int(s) for s in seconds_path.read_text().split()) if seconds_path.exists() else 0
    steps = config["train"]["num_steps"]
    init = pathlib.Path(config["init_from"]).name if config.get("init_from") else "random init"
    lines.append(f"| {stage} | {config['name']} | {init} | {steps:,} "
                 f"| {config['data']['batch_size']} | {seconds / 60:.1f} min "
                 f"| {seconds / steps:.2f} | {_rate(logged_rate(out / stage / 'train.log'))} |")
  return lines


def _rate(rate: float | None) -> str:
  return "-" if rate is None else f"{rate:.2f}"


def main(argv: list[str]) -> int:
  if len(argv) != 1:
    print("usage: python tools/paper_tables.py OUT_DIR", file=sys.stderr)
    return 2
  out = pathlib.Path(argv[0])
  lines = ["# The paper experiment's results", ""]
  hardware = out / "hardware.txt"
  if hardware.exists():
    lines += ["Hardware (each start of tools/reproduce_paper.sh):", "", "```",
              hardware.read_text().strip(), "```", ""]
  lines += ["## Training", ""] + training_table(out)
  for kind, title in LR_KINDS:
    path = out / f"eval_{kind}" / "metrics.csv"
    if not path.exists():
      print(f"paper_tables: {path}: missing; run tools/reproduce_paper.sh to the end",
            file=sys.stderr)
      return 1
    rows = read_metrics(path)
    lines += ["", f"## Held-out patients, x4, {title}", "", "Means ± standard deviation "
              "over images:", ""] + means_table(rows)
    lines += ["", f"### Per image ({title}), in the paper's Tables 1-3 layout"]
    lines += per_image_tables(rows)
  print("\n".join(lines))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
