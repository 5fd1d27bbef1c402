"""The RRDBNet benchmark's throughput report (images/s, FLOPs, peak fraction).

Wall-clock times are never asserted; the FLOP count is checked against the
network's own convolution arithmetic, since the fraction of peak rests on it.
"""
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # The benchmark scripts, run small in subprocesses.

REPO = pathlib.Path(__file__).resolve().parents[1]


def _run(script: str, *args: str, env=None) -> str:
  """Runs benchmarks/``script`` with ``args`` (default: one CPU device); returns its stdout."""
  if env is None:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args],
                        capture_output=True, text=True, cwd=REPO, timeout=600, check=False,
                        env=env)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
  return proc.stdout


def _bench_module():
  sys.path.insert(0, str(REPO / "benchmarks"))
  spec = importlib.util.spec_from_file_location("bench_rrdbnet", REPO / "benchmarks" / "bench_rrdbnet.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _conv_flops(blocks, c, size):
  """2 * MACs of RRDBNet x4's 3x3 convolutions on one size x size image."""
  macs = lambda cin, cout, side: 9 * cin * cout * side * side
  dense = sum(macs(64 + 32 * i, 32, size) for i in range(4)) + macs(192, 64, size)
  total = macs(c, 64, size) + 3 * blocks * dense + macs(64, 64, size)
  total += macs(64, 64, 2 * size) + 2 * macs(64, 64, 4 * size) + macs(64, c, 4 * size)
  return 2 * total


def test_peak_table_and_override():
  bench = _bench_module()
  assert bench.peak_tflops("NVIDIA H100 80GB HBM3", "bfloat16") == 989.4
  assert bench.peak_tflops("NVIDIA H200", "float32") == 494.7
  assert bench.peak_tflops("cpu", "float32") is None
  assert bench.peak_tflops("cpu", "float32", override=2.5) == 2.5


def test_benchmark_reports_images_per_second_and_xla_flops(tmp_path):
  out = tmp_path / "bench.json"
  stdout = _run("bench_rrdbnet.py", "--blocks", "1", "--reps", "1", "--warmup", "0", "--no_ref",
               "--channels", "1", "--train_channels", "1", "--peak_tflops", "1.0", "--json",
               str(out))
  assert "fraction of peak" in stdout
  result = json.loads(out.read_text())
  rows = {r["task"]: r for r in result["throughput"]}
  records = {r["task"]: r for r in result["jax"]["records"]}
  assert set(rows) == {"infer", "train"}
  for task, row in rows.items():
    rec = records[task]
    assert row["images_per_s"] == pytest.approx(rec["images"] / rec["median"])
    assert row["tflops"] == pytest.approx(rec["flops"] / rec["median"] / 1e12)
    assert row["fraction_of_peak"] == pytest.approx(row["tflops"] / 1.0)
  assert records["train"]["images"] == 4 and records["infer"]["images"] == 1
  # On one CPU device the trunk runs as Winograd convolutions; the FLOPs are
  # still those of the direct convolutions (the work the result stands for).
  assert result["jax"]["meta"]["conv_algorithm"] == "auto"
  assert result["jax"]["meta"]["trunk"] == "winograd"
  # The worker runs as jaxsr's entry points do by default: without glibc huge pages.
  assert "glibc.malloc.hugetlb" not in (result["jax"]["meta"]["glibc_tunables"] or "")
  # Forward: XLA's count is the convolutions plus a little elementwise work.
  expected = _conv_flops(1, 1, 128)
  # (XLA skips the zero-padding taps at the border: a little below 2*MACs.)
  assert 0.99 * expected <= records["infer"]["flops"] <= 1.05 * expected
  # Train step: forward + input and weight gradients (~3x the forward convs)
  # on 4 images of 32x32 (plus the packed batch's separator columns).
  step = 3 * 4 * _conv_flops(1, 1, 32)
  assert 0.95 * step <= records["train"]["flops"] <= 1.2 * step


def test_cpu_options_runs_both_variants_of_each_option(tmp_path):
  """bench_cpu_options.py, tiny: each A/B reports both variants, and the
  huge-pages workers really ran with (and without) glibc's tunable."""
  out = tmp_path / "options.json"
  env = dict(os.environ, GLIBC_TUNABLES="glibc.malloc.hugetlb=0")  # must be overridden
  stdout = _run("bench_cpu_options.py", "--blocks", "1", "--reps", "1", "--warmup", "0",
               "--rounds", "1", "--barrier_reps", "1", "--models", "srvgg", "--json", str(out),
               env=env)
  assert "ratio on/off of medians" in stdout and "ratio with/without" in stdout
  result = json.loads(out.read_text())
  huge = result["huge_pages"]
  on, off = huge["variants"]["on"], huge["variants"]["off"]
  for variant in (on, off):
    assert variant["n"] == 1 and variant["median"] > 0 and variant["minflt_per_step"] >= 0
    assert "stime_per_step" in variant
  assert on["glibc_tunables"] == ["glibc.malloc.hugetlb=1"]  # read in the worker
  assert all("hugetlb" not in (t or "") for t in off["glibc_tunables"])
  assert huge["ratio"] == pytest.approx(on["median"] / off["median"])
  assert huge["verdict"] in ("yes", "no")
  (record,) = result["barrier"]["records"]
  assert record["model"] == "srvgg" and record["shape"] == "16x32x32x1"
  for name in ("with", "without"):
    assert record[name]["n"] == 1 and record[name]["median"] > 0
  assert record["ratio"] == pytest.approx(record["with"]["median"] / record["without"]["median"])
  assert result["barrier"]["meta"]["devices"] == 1


def test_conv_algorithm_benchmark_times_both_trunks_of_each_network(tmp_path):
  """bench_conv_algorithm.py, small: both variants timed per network and task, and
  the two trunks' outputs agree to float32 rounding."""
  out = tmp_path / "conv.json"
  _run("bench_conv_algorithm.py", "--models", "srvgg10g,srresnet", "--size", "32",
       "--reps", "2", "--json", str(out))
  rows = json.loads(out.read_text())
  assert [(r["model"], r["task"]) for r in rows] == [
      ("srvgg10g", "infer"), ("srvgg10g", "train"), ("srresnet", "infer"), ("srresnet", "train")]
  for r in rows:
    assert len(r["times"]["direct"]) == len(r["times"]["winograd"]) == 2
    assert r["ratio"] == pytest.approx(r["direct"] / r["winograd"])
    if r["task"] == "infer":
      assert r["max_diff"] < 1e-4


def test_dense_conv_benchmark_times_both_forms_on_the_same_network(tmp_path):
  """bench_dense_conv.py, small: the concatenated and per-piece dense blocks are
  both timed per task and compute the same forward pass."""
  out = tmp_path / "dense.json"
  _run("bench_dense_conv.py", "--size", "16", "--batch", "2", "--blocks", "1", "--reps", "2",
       "--json", str(out))
  rows = json.loads(out.read_text())
  assert [r["task"] for r in rows] == ["infer", "train"]
  for r in rows:
    assert len(r["times"]["concatenated"]) == len(r["times"]["per_piece"]) == 2
    assert r["ratio"] == pytest.approx(r["concatenated"] / r["per_piece"])
  assert rows[0]["max_diff"] < 1e-4


def test_fps_benchmark_reports_frames_per_second_against_the_published_figure(tmp_path):
  out = tmp_path / "fps.json"
  stdout = _run("bench_fps.py", "--nets", "srvgg", "--dtypes", "float32", "--batches", "1",
               "--reps", "1", "--json", str(out))
  assert "| srvgg | float32 | 1 |" in stdout
  result = json.loads(out.read_text())
  (row,) = result["rows"]
  assert row["size"] == "640x480" and row["median_s"] > 0
  assert row["fps"] == pytest.approx(1 / row["median_s"])
  assert row["output_mp_per_s"] == pytest.approx(row["fps"] * 2560 * 1920 / 1e6)
  assert row["vs_published"] == pytest.approx(row["fps"] / result["published_fps"]["srvgg"])
