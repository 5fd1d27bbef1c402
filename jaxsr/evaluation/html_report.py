"""report.html: a page to look at results, offline, with before/after sliders.

``jaxsr evaluate --output=DIR`` writes ``DIR/report.html`` and ``jaxsr upscale
--report`` writes ``OUT/report.html``. The page is one HTML file (its style,
script and data inline) plus a folder ``report/`` of 8-bit PNGs beside it.
Why not one self-contained file: full-resolution radiographs are megabytes
each, and a page carrying a hundred of them inline would have to be read
whole before it shows anything; as files, the browser fetches a small
preview of the image on screen first and its full-resolution PNG only when
zoomed in. Nothing is fetched from elsewhere (no CDN, no server): the folder
opens from disk and can be copied or zipped as a whole.

Each image is drawn for display through a window, never as the raw 16-bit
container: the file's DICOM window when it has one, its effective range
(0.5th to 99.5th percentile of the HR or input) always, and for CT in HU the
usual soft-tissue, brain, bone and lung windows
(:data:`jaxsr.io.image.CT_WINDOWS`); the page has a window selector. Every
panel of an image uses the same window, so none is contrast-stretched
differently from the others.
"""
import datetime
import html
import json
import math
import pathlib
from typing import Sequence

import numpy as np
from PIL import Image as PILImage

from jaxsr.evaluation import figures, report
from jaxsr.io import files
from jaxsr.io import image as image_lib

PREVIEW_SIDE = 768   # Longest side of the previews the page loads first.
FOLDER = "report"    # Beside report.html.


def windows_for(image: image_lib.Image, reference: np.ndarray) -> dict[str, tuple[float, float]]:
  """Display windows of an image, name -> (low, high) in its [0, 1] pixel units; the
  first is the default. ``reference`` (the HR, or the input) sets the effective range."""
  windows = {}
  if image.is_ct_hu:
    low, high = image.value_range
    for name, (lo, hi) in image_lib.CT_WINDOWS.items():
      windows[name] = ((lo - low) / (high - low), (hi - low) / (high - low))
  dicom = image.voi_window_unit()
  if dicom is not None:
    windows["file (DICOM)"] = dicom
  windows["effective range"] = figures.display_window(reference)
  return windows


def _to_8bit(pixels: np.ndarray, window: tuple[float, float]) -> np.ndarray:
  low, high = window
  scaled = (np.asarray(pixels, np.float32) - np.float32(low)) / np.float32(high - low)
  return np.clip(np.rint(scaled * 255.0), 0, 255).astype(np.uint8)


def _save_png(array: np.ndarray, path: pathlib.Path) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  files.write_atomically(path, lambda tmp: PILImage.fromarray(array).save(tmp, format="png"),
                         suffix=".png")


def nearest_up(pixels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
  """``pixels`` repeated to ``shape`` (an LR shown at the output's size), cut to fit."""
  fy = -(-shape[0] // pixels.shape[0])
  fx = -(-shape[1] // pixels.shape[1])
  return np.repeat(np.repeat(pixels, fy, axis=0), fx, axis=1)[:shape[0], :shape[1]]


class ReportWriter:
  """Collects the images of a run and writes report.html and report/.

  ``start_image`` opens an image, ``add_panel`` writes one of its versions
  (LR, bicubic, a model, HR) in every window as soon as it exists, so no
  full-size output is held for the page; ``write`` writes the page last.
  """

  def __init__(self, output, title: str):
    self.output = pathlib.Path(output)
    self.title = title
    self.images: list[dict] = []
    self._current = None

  def start_image(self, name: str, image: image_lib.Image, shape: tuple[int, int],
                  reference: np.ndarray, note: str = "") -> None:
    """A new image of ``shape`` (its output size); ``reference`` sets the windows."""
    index = len(self.images)
    windows = windows_for(image, reference)
    factor = max(1, math.ceil(max(shape) / PREVIEW_SIDE))
    self._current = dict(id=f"i{index:04d}", name=name, width=int(shape[1]),
                         height=int(shape[0]), preview_factor=factor,
                         windows=[dict(name=n, low=float(lo), high=float(hi))
                                  for n, (lo, hi) in windows.items()],
                         modality=image.modality or "", bits=int(image.bits), note=note,
                         panels=[])
    self.images.append(self._current)

  def add_panel(self, label: str, pixels: np.ndarray) -> None:
    """One version of the current image, full size, in its [0, 1] pixel units."""
    image = self._current
    if tuple(pixels.shape[:2]) != (image["height"], image["width"]):
      pixels = nearest_up(pixels, (image["height"], image["width"]))
    key = f"p{len(image['panels'])}"
    factor = image["preview_factor"]
    for w, window in enumerate(image["windows"]):
      full = _to_8bit(pixels, (window["low"], window["high"]))
      base = self.output / FOLDER / image["id"]
      _save_png(full, base / f"{key}_w{w}.png")
      if factor > 1:
        preview = PILImage.fromarray(full).reduce(factor)
        _save_png(np.asarray(preview), base / f"{key}_w{w}_preview.png")
    image["panels"].append(dict(key=key, label=label))

  def write(self, rows: Sequence[report.MetricRow] = (), run: dict | None = None,
            chart: str = "") -> pathlib.Path:
    """Writes report.html for the images so far; ``rows`` the metrics (none for
    upscaling), ``run`` what the run was, ``chart`` a metrics PNG beside the page."""
    rows = [r for r in rows if r.slice is None]
    names = {image["name"] for image in self.images}
    data = dict(title=self.title, run=dict(run or {}), chart=chart, folder=FOLDER,
                images=self.images, models=figures.model_order(rows) if rows else [],
                rows=[dict(image=r.image, model=r.model, psnr=_finite(r.psnr), ssim=r.ssim,
                           mse=r.mse, bits=r.bits, modality=r.modality, group=r.group)
                      for r in rows if r.image in names],
                means=_means(rows))
    text = _PAGE.replace("__TITLE__", html.escape(self.title)).replace(
        "__DATA__", json.dumps(data).replace("</", "<\\/"))
    path = self.output / "report.html"
    self.output.mkdir(parents=True, exist_ok=True)

    def write_to(tmp):
      with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)

    files.write_atomically(path, write_to, suffix=".html")
    return path


def _finite(value: float):
  """JSON has no inf: an exact reproduction's PSNR is written as the string 'inf'."""
  return value if math.isfinite(value) else "inf"


def _means(rows: Sequence[report.MetricRow]) -> list[dict]:
  """Per (group, modality, model): image count, mean PSNR, SSIM, MSE and gain over bicubic."""
  baseline = {r.image: r for r in rows if r.model == report.BASELINE_MODEL}
  out, keys = [], list(dict.fromkeys((r.group, r.modality, r.model) for r in rows))
  for group, modality, model in keys:
    mine = [r for r in rows if (r.group, r.modality, r.model) == (group, modality, model)]
    paired = [(r, baseline[r.image]) for r in mine if r.image in baseline]
    gain = (float(np.mean([r.psnr - b.psnr for r, b in paired]))
            if model != report.BASELINE_MODEL and paired else None)
    psnr = float(np.mean([r.psnr for r in mine]))
    out.append(dict(group=group, modality=modality, model=model, images=len(mine),
                    psnr=_finite(psnr), ssim=float(np.mean([r.ssim for r in mine])),
                    mse=float(np.mean([r.mse for r in mine])),
                    gain=None if gain is None or not math.isfinite(gain) else gain))
  return out


def run_info(**items) -> dict:
  """The page's 'What this run was' list, with the jaxsr version and the date added."""
  import jaxsr  # pylint: disable=import-outside-toplevel
  info = {k.replace("_", " "): v for k, v in items.items() if v not in (None, "")}
  info["jaxsr"] = jaxsr.__version__
  info["date"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
  return info


_PAGE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#16181b;color:#ddd}
header,section{padding:8px 16px}
h1{font-size:18px;margin:8px 0}
h2{font-size:15px;margin:12px 0 6px}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid #333;padding:3px 8px;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
th{cursor:pointer;background:#22252a;position:sticky;top:0}
th.sorted-asc::after{content:" \25B2"}
th.sorted-desc::after{content:" \25BC"}
#images tbody tr{cursor:pointer}
#images tbody tr:hover,#images tbody tr.current{background:#2c3440}
#controls{display:flex;gap:12px;align-items:center;flex-wrap:wrap;margin:6px 0}
#viewer{position:relative;width:100%;height:70vh;overflow:hidden;background:#000;
  cursor:grab;touch-action:none;user-select:none}
#stage{position:absolute;left:0;top:0;transform-origin:0 0}
#stage img{position:absolute;left:0;top:0;image-rendering:pixelated}
#handle{position:absolute;top:0;bottom:0;width:3px;margin-left:-1px;background:#ffd54a;
  cursor:ew-resize}
#handle::after{content:"";position:absolute;top:50%;left:-8px;width:18px;height:18px;
  margin-top:-9px;border-radius:50%;background:#ffd54a}
.tag{position:absolute;top:6px;padding:2px 6px;background:rgba(0,0,0,.6);font-size:12px}
#tagA{left:6px}#tagB{right:6px}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px;margin:0}
dt{color:#999}dd{margin:0}
.chart{max-width:min(100%,560px);background:#fff}
[hidden]{display:none!important}
#summary{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
#summary h2{flex-basis:100%;margin-bottom:0}
</style></head>
<body>
<header><h1 id="title"></h1><dl id="run"></dl></header>
<section id="summary"><h2>Means by group and modality</h2><table id="means"></table>
<div id="chartbox"></div></section>
<section><h2>Image <span id="current"></span></h2>
<div id="controls">
<label>left <select id="left"></select></label>
<label>right <select id="right"></select></label>
<label>window <select id="window"></select></label>
<button id="fit">fit</button><button id="one">1:1</button>
<span id="zoom"></span>
</div>
<div id="viewer" tabindex="0" aria-label="before/after slider: arrow keys move it">
<div id="stage"><img id="imgA" alt="" draggable="false"><img id="imgB" alt="" draggable="false"></div>
<div id="handle"></div><div class="tag" id="tagA"></div><div class="tag" id="tagB"></div>
</div></section>
<section><h2>Images</h2><table id="images"></table></section>
<script id="data" type="application/json">__DATA__</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const $ = id => document.getElementById(id);
const fmt = (v, d) => v === "inf" ? "inf" : (v === null || v === undefined ? "" : Number(v).toFixed(d));
$("title").textContent = D.title;
for (const [k, v] of Object.entries(D.run)) {
  const dt = document.createElement("dt"); dt.textContent = k;
  const dd = document.createElement("dd"); dd.textContent = v;
  $("run").append(dt, dd);
}
if (D.means.length) {
  const head = ["group", "modality", "model", "images", "PSNR", "SSIM", "MSE", "ΔPSNR vs bicubic"];
  $("means").innerHTML = "<thead><tr>" + head.map(h => `<th>${h}</th>`).join("") + "</tr></thead>";
  const body = document.createElement("tbody");
  for (const m of D.means) {
    const tr = body.insertRow();
    for (const v of [m.group || "—", m.modality || "—", m.model, m.images, fmt(m.psnr, 2),
                     fmt(m.ssim, 4), fmt(m.mse, 2), m.gain === null ? "" : (m.gain >= 0 ? "+" : "") + fmt(m.gain, 2)])
      tr.insertCell().textContent = v;
  }
  $("means").append(body);
} else { $("summary").hidden = true; }
if (D.chart) { const img = new Image(); img.src = D.chart; img.className = "chart"; img.alt = "metrics chart"; $("chartbox").append(img); }

// The table of images: one row per image, per-model metrics and gain over bicubic.
const byImage = {};
for (const r of D.rows) (byImage[r.image] = byImage[r.image] || {})[r.model] = r;
const columns = [{key: "name", label: "image", text: true}];
if (D.rows.length) columns.push({key: "group", label: "group", text: true}, {key: "modality", label: "modality", text: true});
columns.push({key: "bits", label: "bits"}, {key: "size", label: "size", text: true});
for (const m of D.models) {
  columns.push({key: m + ":psnr", label: m + " PSNR", d: 2}, {key: m + ":ssim", label: m + " SSIM", d: 4},
               {key: m + ":mse", label: m + " MSE", d: 2});
  if (m !== "bicubic") columns.push({key: m + ":gain", label: m + " ΔPSNR", d: 2, signed: true});
}
const records = D.images.map((im, i) => {
  const rec = {index: i, name: im.name, bits: im.bits, modality: im.modality, size: im.width + "×" + im.height, group: ""};
  const mine = byImage[im.name] || {};
  for (const [m, r] of Object.entries(mine)) {
    rec.group = r.group; rec.modality = r.modality || rec.modality;
    rec[m + ":psnr"] = r.psnr; rec[m + ":ssim"] = r.ssim; rec[m + ":mse"] = r.mse;
    if (m !== "bicubic" && mine.bicubic && r.psnr !== "inf" && mine.bicubic.psnr !== "inf")
      rec[m + ":gain"] = r.psnr - mine.bicubic.psnr;
  }
  return rec;
});
let sortKey = null, sortDir = 1;
function renderTable() {
  const t = $("images");
  t.innerHTML = "";
  const tr = t.createTHead().insertRow();
  for (const c of columns) {
    const th = document.createElement("th"); th.textContent = c.label; th.dataset.key = c.key;
    if (c.key === sortKey) th.className = sortDir > 0 ? "sorted-asc" : "sorted-desc";
    th.onclick = () => { sortDir = sortKey === c.key ? -sortDir : 1; sortKey = c.key; renderTable(); };
    tr.append(th);
  }
  const rows = records.slice();
  if (sortKey) {
    const col = columns.find(c => c.key === sortKey);
    const val = r => { const v = r[sortKey]; return v === "inf" ? Infinity : v; };
    rows.sort((a, b) => {
      const x = val(a), y = val(b);
      if (x === undefined) return 1; if (y === undefined) return -1;
      return (col.text ? String(x).localeCompare(String(y)) : x - y) * sortDir;
    });
  }
  const body = t.createTBody();
  for (const r of rows) {
    const row = body.insertRow(); row.dataset.index = r.index;
    if (r.index === current) row.className = "current";
    for (const c of columns) {
      const v = r[c.key];
      row.insertCell().textContent = c.d === undefined ? (v ?? "") :
        (v === undefined ? "" : ((c.signed && v >= 0) ? "+" : "") + fmt(v, c.d));
    }
    row.onclick = () => { show(r.index); $("viewer").scrollIntoView({block: "nearest"}); };
  }
}

// The viewer: two versions of one image, stacked; the right one is cut at the slider.
let current = -1, split = 0.5, scale = 1, tx = 0, ty = 0;
function src(im, panelKey, full) {
  const w = $("window").value;
  const base = `${D.folder}/${im.id}/${panelKey}_w${w}`;
  return (full || im.preview_factor === 1) ? base + ".png" : base + "_preview.png";
}
function fillSelect(sel, im, chosen) {
  sel.innerHTML = "";
  im.panels.forEach((p, i) => sel.add(new Option(p.label, p.key, false, i === chosen)));
}
function show(index) {
  current = index;
  const im = D.images[index];
  $("current").textContent = im.name + " (" + im.width + "×" + im.height + (im.note ? ", " + im.note : "") + ")";
  const n = im.panels.length;
  // Bicubic against the first model where there are both, else first against last.
  fillSelect($("left"), im, n > 2 ? 1 : 0);
  fillSelect($("right"), im, n > 2 ? 2 : n - 1);
  const win = $("window"); win.innerHTML = "";
  im.windows.forEach((w, i) => win.add(new Option(w.name, String(i), false, i === 0)));
  for (const img of [$("imgA"), $("imgB")]) { img.style.width = im.width + "px"; img.style.height = im.height + "px"; }
  fit(); load(); renderTable();
}
function wantFull() {
  const im = D.images[current];
  return scale * (window.devicePixelRatio || 1) * im.preview_factor > 1.001;
}
function load() {
  const im = D.images[current], full = wantFull();
  $("imgA").src = src(im, $("left").value, full);
  $("imgB").src = src(im, $("right").value, full);
  $("tagA").textContent = $("left").selectedOptions[0].textContent;
  $("tagB").textContent = $("right").selectedOptions[0].textContent;
}
function place() {
  $("stage").style.transform = `translate(${tx}px,${ty}px) scale(${scale})`;
  const v = $("viewer").getBoundingClientRect();
  const x = split * v.width;
  $("handle").style.left = x + "px";
  $("imgB").style.clipPath = `inset(0 0 0 ${Math.max(0, (x - tx) / scale)}px)`;
  $("zoom").textContent = Math.round(scale * 100) + " %";
}
function fit() {
  const im = D.images[current], v = $("viewer").getBoundingClientRect();
  scale = Math.min(v.width / im.width, v.height / im.height);
  tx = (v.width - im.width * scale) / 2; ty = (v.height - im.height * scale) / 2;
  place();
}
function zoomAt(x, y, factor) {
  const before = wantFull();
  const s = Math.min(32, Math.max(0.02, scale * factor));
  tx = x - (x - tx) * s / scale; ty = y - (y - ty) * s / scale; scale = s;
  place();
  if (wantFull() !== before) load();
}
$("left").onchange = $("right").onchange = $("window").onchange = load;
$("fit").onclick = () => { fit(); load(); };
$("one").onclick = () => { const v = $("viewer").getBoundingClientRect(); zoomAt(v.width / 2, v.height / 2, 1 / scale); };
const viewer = $("viewer");
viewer.addEventListener("wheel", e => {
  e.preventDefault();
  const r = viewer.getBoundingClientRect();
  zoomAt(e.clientX - r.left, e.clientY - r.top, Math.exp(-e.deltaY * 0.002));
}, {passive: false});
let drag = null;
const pointers = new Map();
viewer.addEventListener("dragstart", e => e.preventDefault());  // No native image drag.
viewer.addEventListener("pointerdown", e => {
  e.preventDefault();
  viewer.setPointerCapture(e.pointerId);
  pointers.set(e.pointerId, {x: e.clientX, y: e.clientY});
  const r = viewer.getBoundingClientRect();
  const onHandle = Math.abs(e.clientX - r.left - split * r.width) < 12;
  drag = {mode: onHandle ? "split" : "pan", x: e.clientX, y: e.clientY, tx, ty};
  viewer.focus();
});
viewer.addEventListener("pointermove", e => {
  if (!drag) return;
  const r = viewer.getBoundingClientRect();
  if (pointers.size === 2 && pointers.has(e.pointerId)) {  // Pinch: zoom about the midpoint.
    const [a, b] = [...pointers.values()];
    const before = Math.hypot(a.x - b.x, a.y - b.y);
    pointers.set(e.pointerId, {x: e.clientX, y: e.clientY});
    const [c, d] = [...pointers.values()];
    const after = Math.hypot(c.x - d.x, c.y - d.y);
    if (before > 0) zoomAt((c.x + d.x) / 2 - r.left, (c.y + d.y) / 2 - r.top, after / before);
    return;
  }
  pointers.set(e.pointerId, {x: e.clientX, y: e.clientY});
  if (drag.mode === "split") { split = Math.min(1, Math.max(0, (e.clientX - r.left) / r.width)); }
  else { tx = drag.tx + e.clientX - drag.x; ty = drag.ty + e.clientY - drag.y; }
  place();
});
const release = e => { pointers.delete(e.pointerId); if (!pointers.size) drag = null; };
viewer.addEventListener("pointerup", release);
viewer.addEventListener("pointercancel", release);
viewer.addEventListener("keydown", e => {
  if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
    split = Math.min(1, Math.max(0, split + (e.key === "ArrowLeft" ? -0.02 : 0.02)));
    place(); e.preventDefault();
  }
});
window.addEventListener("resize", place);
renderTable();
if (D.images.length) show(0);
</script></body></html>
"""
