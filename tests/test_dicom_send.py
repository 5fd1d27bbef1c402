"""``jaxsr upscale --send``: C-STORE to a real DICOM receiver (dcmtk's storescp) on
127.0.0.1, what it stored checked against what jaxsr wrote; refusals and an
unreachable archive as one line per file, files kept."""
import os
import shutil
import socket
import subprocess
import time

import numpy as np
import pydicom
import pytest

from jaxsr import upscale
from jaxsr.io import dicom_send
from dicom_helpers import write_ct_series

def _dcmtk_storescp():
  """dcmtk's storescp: pynetdicom installs a command of the same name, which may come
  first on PATH, with other options."""
  for folder in os.get_exec_path():
    candidate = shutil.which("storescp", path=folder)
    if candidate:
      run = subprocess.run([candidate, "--version"], capture_output=True, text=True,
                           check=False)
      if "dcmtk" in run.stdout + run.stderr:
        return candidate
  return None


STORESCP = _dcmtk_storescp()
NEEDS_STORESCP = pytest.mark.skipif(
    STORESCP is None,
    reason="storescp (Debian dcmtk) is not installed; .ci/run installs it with apt-get")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _storescp(folder, *extra):
  folder.mkdir()
  port = _free_port()
  process = subprocess.Popen([STORESCP, "+xa", "-aet", "ARCHIVE", "-od", str(folder),
                              *extra, str(port)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
  for _ in range(100):  # Until it listens.
    with socket.socket() as s:
      if s.connect_ex(("127.0.0.1", port)) == 0:
        return process, port
    time.sleep(0.05)
  process.kill()
  raise RuntimeError("storescp did not start")


@pytest.fixture()
def ct_series(tmp_path):
  rng = np.random.default_rng(0)
  hu = [rng.integers(-100, 200, (16, 20)).astype(np.int32) for _ in range(3)]
  write_ct_series(tmp_path / "ct", hu)
  return tmp_path / "ct"


def _zero_x2(tmp_path):
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from jaxsr import weights  # pylint: disable=import-outside-toplevel
  from jaxsr.models import SRVGGNetCompact  # pylint: disable=import-outside-toplevel
  module = SRVGGNetCompact(1, 1, upscale=2, num_feat=4, num_conv=1)
  shapes = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  params = jax.tree.map(lambda s: np.zeros(s.shape, np.float32), shapes["params"])
  path = tmp_path / "zero_x2.safetensors"
  weights.save_safetensors(path, params, None, "srvgg", 2, 1, {"num_feat": 4, "num_conv": 1})
  return path


@NEEDS_STORESCP
@pytest.mark.parametrize("syntax", ["auto", "uncompressed"])
def test_send_stores_every_written_file_with_the_same_pixels(ct_series, tmp_path, capsys,
                                                              syntax):
  process, port = _storescp(tmp_path / "archive")
  try:
    out = tmp_path / "out"
    assert upscale.main([f"--weights={_zero_x2(tmp_path)}", f"--input={ct_series}",
                         f"--output={out}", f"--send=ARCHIVE@127.0.0.1:{port}",
                         "--calling_aet=JAXSR_TEST", f"--dicom_transfer_syntax={syntax}"]) == 0
  finally:
    process.terminate()
    process.wait(timeout=10)
  err = capsys.readouterr().err
  assert err.count(f"to ARCHIVE@127.0.0.1:{port}: stored") == 3
  written = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p) for p in out.glob("*.dcm")}
  stored = [pydicom.dcmread(p) for p in (tmp_path / "archive").iterdir()]
  assert len(stored) == len(written) == 3
  for ds in stored:
    mine = written[ds.SOPInstanceUID]
    assert ds.file_meta.TransferSyntaxUID == mine.file_meta.TransferSyntaxUID
    assert ds.PixelData == mine.PixelData  # The encoded bytes themselves.
    np.testing.assert_array_equal(ds.pixel_array, mine.pixel_array)


@NEEDS_STORESCP
def test_refused_or_unreachable_archive_is_one_line_per_file_and_files_stay(
    ct_series, tmp_path, capsys):
  weights_path = _zero_x2(tmp_path)
  process, port = _storescp(tmp_path / "archive", "--refuse")
  try:
    out = tmp_path / "refused"
    assert upscale.main([f"--weights={weights_path}", f"--input={ct_series}",
                         f"--output={out}", f"--send=ARCHIVE@127.0.0.1:{port}"]) == 1
  finally:
    process.terminate()
    process.wait(timeout=10)
  err = capsys.readouterr().err
  lines = [line for line in err.splitlines() if "the file stays on disk" in line]
  assert f"; 3 file(s) not stored by ARCHIVE@127.0.0.1:{port}" in err
  assert len(lines) == 3 and all("association refused or archive unreachable" in line
                                 and "the file stays on disk" in line for line in lines)
  assert len(list(out.glob("*.dcm"))) == 3
  out = tmp_path / "unreachable"
  assert upscale.main([f"--weights={weights_path}", f"--input={ct_series}",
                       f"--output={out}", f"--send=ARCHIVE@127.0.0.1:{_free_port()}"]) == 1
  assert capsys.readouterr().err.count("the file stays on disk") == 3
  assert len(list(out.glob("*.dcm"))) == 3


def test_destination_is_checked_before_any_work():
  assert dicom_send.Destination.parse("PACS@10.0.0.5:104") == dicom_send.Destination(
      "PACS", "10.0.0.5", 104)
  assert dicom_send.Destination.parse("A@[::1]:11112").host == "::1"
  for bad in ("PACS10.0.0.5:104", "PACS@host", "PACS@host:0", "A_TITLE_LONGER_THAN_16@h:1"):
    with pytest.raises(dicom_send.SendError, match="give AET@HOST:PORT"):
      dicom_send.Destination.parse(bad)
