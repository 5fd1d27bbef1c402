"""How fast report.html opens, and how much disk it takes, for a large evaluation.

Makes (or takes) a ``jaxsr evaluate`` output folder and opens its report.html
from disk in headless Chromium (Playwright, the system browser), timing from
navigation to (a) the load event and (b) the first image pair drawn in the
viewer, over several fresh pages; prints the medians and the size of
report.html and report/ on disk.

  python benchmarks/bench_report.py --hr=../shared/data/xray_train/nih --count=100 \
      [--weights=xray_x4] [--work=/tmp/bench_report] [--reps=5] [--screenshot=docs/report_page.png]
  python benchmarks/bench_report.py --report=DIR      # an existing evaluation folder
"""
import argparse
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]


def folder_bytes(path: pathlib.Path) -> int:
  return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def make_report(hr: pathlib.Path, count: int, weights: str, work: pathlib.Path) -> pathlib.Path:
  """An evaluation of the first ``count`` images of ``hr`` (copied as links) into work/."""
  subset = work / "hr"
  if subset.exists():
    shutil.rmtree(subset)
  subset.mkdir(parents=True)
  names = sorted(p for p in hr.iterdir() if p.suffix.lower() == ".png")[:count]
  for path in names:
    os.symlink(path.resolve(), subset / path.name)
  out = work / "eval"
  if out.exists():
    shutil.rmtree(out)
  start = time.perf_counter()
  subprocess.run([sys.executable, "-m", "jaxsr.evaluate", f"--weights={weights}",
                  f"--hr={subset}", f"--output={out}"], check=True, cwd=REPO,
                 stderr=subprocess.DEVNULL)
  print(f"evaluated {len(names)} images in {time.perf_counter() - start:.0f} s")
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
  p.add_argument("--report", default="", help="an existing jaxsr evaluate output folder")
  p.add_argument("--hr", default=str(REPO.parent / "shared" / "data" / "xray_train" / "nih"))
  p.add_argument("--count", type=int, default=100)
  p.add_argument("--weights", default="xray_x4")
  p.add_argument("--work", default="/tmp/bench_report")
  p.add_argument("--reps", type=int, default=5)
  p.add_argument("--width", type=int, default=1280)
  p.add_argument("--height", type=int, default=900)
  p.add_argument("--screenshot", default="", help="also save a screenshot of the page here")
  p.add_argument("--chromium", default=os.environ.get("JAXSR_CHROMIUM") or shutil.which("chromium"))
  args = p.parse_args()
  from playwright.sync_api import sync_playwright  # pylint: disable=import-outside-toplevel
  folder = (pathlib.Path(args.report) if args.report
            else make_report(pathlib.Path(args.hr), args.count, args.weights,
                             pathlib.Path(args.work)))
  page_path = folder / "report.html"
  loads, drawn = [], []
  with sync_playwright() as pw:
    browser = pw.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
    for _ in range(args.reps):
      page = browser.new_page(viewport={"width": args.width, "height": args.height})
      start = time.perf_counter()
      page.goto(page_path.as_uri(), wait_until="load")
      loads.append(time.perf_counter() - start)
      page.wait_for_function("document.getElementById('imgA').complete && "
                             "document.getElementById('imgB').complete && "
                             "document.getElementById('imgB').naturalWidth > 0")
      drawn.append(time.perf_counter() - start)
      rows = page.locator("#images tbody tr").count()
      if args.screenshot and len(loads) == args.reps:
        page.screenshot(path=args.screenshot, full_page=False)
      page.close()
    browser.close()
  html = page_path.stat().st_size
  images = folder_bytes(folder / "report")
  print(f"report: {page_path} ({rows} images in the table)")
  print(f"load event: median {statistics.median(loads):.2f} s [{min(loads):.2f}-{max(loads):.2f}] "
        f"over {args.reps} fresh pages")
  print(f"first image pair drawn: median {statistics.median(drawn):.2f} s "
        f"[{min(drawn):.2f}-{max(drawn):.2f}]")
  print(f"size: report.html {html / 1e6:.2f} MB, report/ {images / 1e6:.1f} MB "
        f"({len(list((folder / 'report').rglob('*.png')))} PNGs)")


if __name__ == "__main__":
  main()
