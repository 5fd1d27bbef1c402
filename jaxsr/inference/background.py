"""Reading and writing beside the network: a reader and a writer thread, bounded.

`jaxsr upscale` decodes an input (PNG, JPEG 2000 or JPEG-LS DICOM), runs the
network and encodes the output. Done in turn, the network waits for both
codecs. Here the next input is decoded while the current one runs
(`prefetch`, one item ahead), and the frames of the current one are encoded
and written by one writer thread (`Writer`, a queue of at most
``queue_size`` frames) while the network goes on. Codecs and XLA release the
GIL, so the threads overlap on any machine with cores to spare.

Order and errors are as without threads: items are read, written and
reported in input order; a failed read is raised where the item is used,
and a failed write fails its own item only (`ItemWrite.result`). With
``enabled=False`` every call runs at once in the caller's thread, which is
the switch a benchmark compares against.
"""
import concurrent.futures
import queue
import threading
from typing import Any, Callable, Iterable, Iterator, Optional


class _Now:
  """A finished future of a call made at once (the threadless path)."""

  def __init__(self, fn: Callable[[], Any]):
    try:
      self._value, self._error = fn(), None
    except Exception as error:  # pylint: disable=broad-except
      self._value, self._error = None, error

  def result(self):
    if self._error is not None:
      raise self._error
    return self._value


class _Later:
  """A call made when its result is first asked for (threadless prefetch)."""

  def __init__(self, fn: Callable[[], Any]):
    self._fn, self._now = fn, None

  def result(self):
    if self._now is None:
      self._now = _Now(self._fn)
    return self._now.result()


def prefetch(items: Iterable, load: Callable[[Any], Any], enabled: bool = True,
             ahead: int = 1) -> Iterator[tuple[Any, Any]]:
  """Yields (item, future of ``load(item)``), the next ``ahead`` loads under way."""
  items = list(items)
  if not enabled:
    for item in items:
      yield item, _Later(lambda item=item: load(item))
    return
  with concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                             thread_name_prefix="jaxsr-read") as pool:
    futures = {}
    for i, item in enumerate(items):
      for j in range(i, min(i + ahead + 1, len(items))):
        if j not in futures:
          futures[j] = pool.submit(load, items[j])
      yield item, futures.pop(i)


class ItemWrite:
  """The writes of one item: frames put in order, then ``close`` for its files."""

  def __init__(self, writer: "Writer", sink):
    self.writer, self.sink = writer, sink
    self.error: Optional[BaseException] = None
    self.closed = threading.Event()
    self.paths = None

  def put(self, index: int, frame) -> None:
    self.writer.submit(self, lambda: self.sink.put(index, frame))

  def close(self) -> None:
    def finish():
      self.paths = self.sink.close()
    self.writer.submit(self, finish, last=True)

  def done(self) -> bool:
    return self.closed.is_set()

  def result(self):
    """The files written (waits for them); raises the item's first write error."""
    self.closed.wait()
    if self.error is not None:
      raise self.error
    return self.paths


class Writer:
  """One thread running each item's writes in order (``enabled=False``: at once)."""

  def __init__(self, enabled: bool = True, queue_size: int = 4):
    self.enabled = enabled
    self._jobs: queue.Queue = queue.Queue(maxsize=max(queue_size, 1))
    self._thread = None
    if enabled:
      self._thread = threading.Thread(target=self._run, name="jaxsr-write", daemon=True)
      self._thread.start()

  def open(self, sink) -> ItemWrite:
    return ItemWrite(self, sink)

  def submit(self, item: ItemWrite, job: Callable[[], None], last: bool = False) -> None:
    if self.enabled:
      self._jobs.put((item, job, last))  # Blocks while the queue is full: memory stays bounded.
    else:
      self._do(item, job, last)

  @staticmethod
  def _do(item: ItemWrite, job, last: bool) -> None:
    if item.error is None:  # After a failed write the item's other frames are dropped.
      try:
        job()
      except Exception as error:  # pylint: disable=broad-except
        item.error = error
    if last:
      item.closed.set()

  def _run(self) -> None:
    while True:
      entry = self._jobs.get()
      if entry is None:
        return
      self._do(*entry)

  def shutdown(self) -> None:
    """Waits for every queued write, then stops the thread."""
    if self._thread is not None:
      self._jobs.put(None)
      self._thread.join()
      self._thread = None

  def __enter__(self) -> "Writer":
    return self

  def __exit__(self, *exc) -> None:
    self.shutdown()
