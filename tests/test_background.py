"""Reading ahead and writing behind the network: order, bounds and errors."""
import threading
import time

import numpy as np
import pytest
from PIL import Image

from jaxsr import upscale
from jaxsr.inference import background


class _Sink:
  def __init__(self, log, name, fail_at=None):
    self.log, self.name, self.fail_at = log, name, fail_at

  def put(self, index, frame):
    if index == self.fail_at:
      raise OSError(f"disk full writing {self.name}")
    time.sleep(0.01)
    self.log.append((self.name, index, threading.current_thread().name))

  def close(self):
    self.log.append((self.name, "close", threading.current_thread().name))
    return [self.name]


@pytest.mark.parametrize("enabled", [True, False])
def test_writes_keep_item_order_and_a_failed_write_fails_its_item_only(enabled):
  log = []
  with background.Writer(enabled=enabled, queue_size=2) as writer:
    writes = []
    for name, fail_at in (("a", None), ("b", 1), ("c", None)):
      write = writer.open(_Sink(log, name, fail_at))
      for index in range(3):
        write.put(index, np.zeros(2))
      write.close()
      writes.append(write)
    assert writes[0].result() == ["a"] and writes[2].result() == ["c"]
    with pytest.raises(OSError, match="disk full writing b"):
      writes[1].result()
  assert [(n, i) for n, i, _ in log] == [("a", 0), ("a", 1), ("a", 2), ("a", "close"),
                                          ("b", 0), ("c", 0), ("c", 1), ("c", 2), ("c", "close")]
  threads = {t for _, _, t in log}
  assert threads == ({"jaxsr-write"} if enabled else {threading.current_thread().name})


def test_prefetch_reads_ahead_in_order_and_raises_where_the_item_is_used():
  started = []

  def load(name):
    started.append(name)
    if name == "bad":
      raise ValueError("truncated file")
    return name.upper()

  loads = background.prefetch(["a", "bad", "c"], load)
  item, future = next(loads)
  assert (item, future.result()) == ("a", "A")
  time.sleep(0.05)
  assert started[:2] == ["a", "bad"]  # The next one was under way while "a" was used.
  item, future = next(loads)
  with pytest.raises(ValueError, match="truncated"):
    future.result()
  assert [(i, f.result()) for i, f in loads] == [("c", "C")]
  lazy = background.prefetch(["a", "b"], load, enabled=False)
  started.clear()
  item, future = next(lazy)
  assert started == [] and future.result() == "A" and started == ["a"]


def test_a_folder_upscaled_with_and_without_io_threads_is_the_same(tmp_path, capsys):
  rng = np.random.default_rng(0)
  (tmp_path / "in").mkdir()
  for i in range(3):
    Image.fromarray((rng.random((20, 24)) * 255).astype(np.uint8)).save(tmp_path / "in" / f"{i}.png")
  (tmp_path / "in" / "1b_truncated.png").write_bytes(
      (tmp_path / "in" / "1.png").read_bytes()[:60])
  outputs = {}
  for threads in (0, 1):
    out = tmp_path / f"out{threads}"
    status = upscale.main([f"--input={tmp_path / 'in'}", f"--output={out}",
                           f"--io_threads={threads}", "--compilation_cache=none"])
    err = capsys.readouterr().err
    assert status == 1
    assert "1b_truncated.png" in err and "wrote 3 of 4 input(s)" in err
    outputs[threads] = {p.name: np.asarray(Image.open(p)) for p in sorted(out.glob("*.png"))}
  assert sorted(outputs[0]) == sorted(outputs[1]) == ["0.png", "1.png", "2.png"]
  for name, pixels in outputs[0].items():
    np.testing.assert_array_equal(pixels, outputs[1][name])
