"""Tests for jaxsr.io.torch_checkpoint, which must work without torch.

The files in tests/fixtures/torch/ were written by torch itself (torch
2.13.0+cpu, Python 3.11) with tools/make_torch_fixtures.py:

  /tmp/torchvenv/bin/pip install torch==2.13.0 numpy
  /tmp/torchvenv/bin/python tools/make_torch_fixtures.py

zip_state.pth / legacy_state.pth hold the same state dict in torch's zip and
legacy formats (`torch.save(..., _use_new_zipfile_serialization=False)`);
zip_nested.pth / legacy_nested.pth hold BasicSR's {'params_ema', 'params'}
layout. All values are arange-based, so `expected_state` and
`expected_nested` below rebuild them with numpy; keep them in step with the
script. The state includes uint16 and float8 tensors, which torch writes as
byte storages read by `_rebuild_tensor_v3` (torch 2.13 itself fails to load
them back from a legacy-format file; we read both). Reading torch's output,
and torch.load reading ours, were also checked against real torch outside
this suite.
"""
import collections
import os
import pathlib
import pickle
import pickletools
import struct
import zipfile

import ml_dtypes
import numpy as np
import pytest

from jaxsr.io import torch_checkpoint as tc

FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures" / "torch"


def expected_state():
  base = np.arange(20, dtype=np.float64).reshape(4, 5)
  return {
      "conv.weight": np.arange(54, dtype=np.float32).reshape(3, 2, 3, 3) / 8,
      "conv.bias": np.arange(3, dtype=np.float32) - 1.5,
      "base": base,
      "offset_view": base[1:, 2:4],
      "transposed": np.arange(12, dtype=np.float32).reshape(3, 4).T,
      "every_other": np.arange(10, dtype=np.int32)[1::2],
      "half": np.arange(12, dtype=np.float16).reshape(3, 4) / np.float16(4),
      "bf16": np.arange(6).astype(ml_dtypes.bfloat16) / ml_dtypes.bfloat16(2),
      "long": np.arange(-3, 5, dtype=np.int64),
      "short": np.arange(-2, 2, dtype=np.int16),
      "int8": np.arange(-4, 4, dtype=np.int8),
      "uint8": np.arange(250, 256, dtype=np.uint8),
      "flag": np.arange(5) % 2 == 0,
      "scalar": np.array(3.25, dtype=np.float32),
      "empty": np.zeros((0, 3), dtype=np.float32),
      "param": np.arange(4, dtype=np.float32),
      "uint16": np.arange(65530, 65536, dtype=np.uint16).reshape(2, 3)[:, 1:],
      "fp8": np.arange(4).astype(ml_dtypes.float8_e4m3fn),
  }


def expected_nested():
  return {
      "params_ema": {
          "w": np.arange(6, dtype=np.float32).reshape(2, 3),
          "b": np.arange(2, dtype=np.float32),
      },
      "params": {
          "module.w": np.arange(6, dtype=np.float32).reshape(2, 3) + 100,
          "module.b": np.arange(2, dtype=np.float32) + 100,
      },
      "iter": 5000,
  }


def assert_arrays_equal(got, want):
  """Same names in the same order, same dtypes, shapes and bits."""
  assert list(got) == list(want)
  for name, value in want.items():
    assert isinstance(got[name], np.ndarray), name
    assert got[name].dtype == value.dtype, name
    assert got[name].shape == value.shape, name
    assert np.ascontiguousarray(got[name]).tobytes() == (
        np.ascontiguousarray(value).tobytes()), name


def assert_one_line_error(excinfo, path, *fragments):
  message = str(excinfo.value)
  assert "\n" not in message
  assert message.startswith(f"{path}: ")
  for fragment in fragments:
    assert fragment in message


# Files torch wrote.


@pytest.mark.parametrize("name", ["zip_state.pth", "legacy_state.pth"])
def test_reads_torch_written_state_dict_exactly(name):
  state = tc.load_state_dict(FIXTURES / name)
  assert type(state) is dict  # OrderedDict (with _metadata) comes back plain.
  assert_arrays_equal(state, expected_state())
  assert state["transposed"].flags.c_contiguous  # A copy, not a strided view.


@pytest.mark.parametrize("name", ["zip_nested.pth", "legacy_nested.pth"])
def test_reads_torch_written_nested_checkpoint(name):
  obj = tc.load_state_dict(FIXTURES / name)
  want = expected_nested()
  assert list(obj) == ["params_ema", "params", "iter"]
  assert obj["iter"] == 5000
  assert_arrays_equal(obj["params_ema"], want["params_ema"])
  assert_arrays_equal(obj["params"], want["params"])
  assert_arrays_equal(tc.select_params(obj), want["params_ema"])
  assert_arrays_equal(tc.select_params(obj, keys=("params",)),
                      {"w": want["params"]["module.w"],
                       "b": want["params"]["module.b"]})


def test_zip_fixtures_have_different_top_folders():
  # torch names the folder after the file stem or 'archive'; both must read.
  tops = set()
  for name in ("zip_state.pth", "zip_nested.pth"):
    with zipfile.ZipFile(FIXTURES / name) as archive:
      tops.add(archive.namelist()[0].split("/")[0])
  assert tops == {"archive", "zip_nested"}


def test_shared_storage_tensors_are_independent_copies():
  state = tc.load_state_dict(FIXTURES / "zip_state.pth")
  state["base"][1, 2] = -1.0
  assert state["offset_view"][0, 0] == 7.0


# Our writer.


def roundtrip_state():
  return collections.OrderedDict([
      ("body.0.weight", np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2)),
      ("body.0.bias", np.arange(2, dtype=np.float16) - 0.5),
      ("steps", np.array(7, dtype=np.int64)),
      ("ids", np.arange(-3, 3, dtype=np.int32)),
      ("mask", np.array([True, False, True])),
      ("bytes", np.arange(4, dtype=np.uint8)),
      ("bf16", np.arange(3).astype(ml_dtypes.bfloat16)),
      ("double", np.linspace(0, 1, 5)),
      ("empty", np.zeros((2, 0), dtype=np.float32)),
      # Non-contiguous and big-endian inputs must still store correctly.
      ("strided", np.arange(20, dtype=np.float32).reshape(4, 5)[::2, 1::2].T),
      ("big_endian", np.arange(6, dtype=">i8").reshape(2, 3)),
      # No torch storage class: untyped storage plus _rebuild_tensor_v3.
      ("uint16", np.arange(65530, 65536, dtype=np.uint16).reshape(3, 2)),
      ("uint64", np.array([2**64 - 1, 0], dtype=np.uint64)),
      ("fp8", np.arange(4).astype(ml_dtypes.float8_e4m3fn)),
  ])


@pytest.mark.parametrize("wrap_key", ["params", "params_ema", None])
def test_writer_reader_roundtrip(tmp_path, wrap_key):
  state = roundtrip_state()
  path = tmp_path / "net.pth"
  tc.save_state_dict(state, path, wrap_key=wrap_key)
  obj = tc.load_pth(path)
  if wrap_key is not None:
    assert list(obj) == [wrap_key]
    obj = obj[wrap_key]
  want = {k: v.astype(v.dtype.newbyteorder("=")) for k, v in state.items()}
  assert_arrays_equal(obj, want)
  assert_arrays_equal(tc.select_params(tc.load_state_dict(path)), want)


def test_writer_emits_torch_zip_layout(tmp_path):
  path = tmp_path / "net.pth"
  tc.save_state_dict(roundtrip_state(), path)
  with zipfile.ZipFile(path) as archive:
    names = archive.namelist()
    assert names[0] == "archive/data.pkl"
    assert set(names) == {"archive/data.pkl", "archive/byteorder",
                          "archive/version"} | {
                              f"archive/data/{i}" for i in range(14)}
    assert archive.read("archive/version") == b"3\n"
    assert archive.read("archive/byteorder") == b"little"
    assert archive.read("archive/data/0") == (
        np.arange(24, dtype="<f4").tobytes())
    assert archive.read("archive/data/10") == (
        np.arange(6, dtype="<i8").tobytes())
    assert archive.read("archive/data/11") == (
        np.arange(65530, 65536, dtype="<u2").tobytes())
    assert all(i.compress_type == zipfile.ZIP_STORED
               for i in archive.infolist())
    ops = list(pickletools.genops(archive.read("archive/data.pkl")))
    offsets = [(i.header_offset, len(i.filename), i.filename)
               for i in archive.infolist()]
  assert ops[0][0].name == "PROTO" and ops[0][1] == 2
  globals_used = {arg for op, arg, _ in ops if op.name == "GLOBAL"}
  assert globals_used == {
      "collections OrderedDict", "torch._utils _rebuild_tensor_v2",
      "torch FloatStorage", "torch HalfStorage", "torch LongStorage",
      "torch IntStorage", "torch BoolStorage", "torch ByteStorage",
      "torch BFloat16Storage", "torch DoubleStorage",
      "torch._utils _rebuild_tensor_v3", "torch.storage UntypedStorage",
      "torch uint16", "torch uint64", "torch float8_e4m3fn"}
  # Storage data starts on 64-byte boundaries, as torch's own writer does.
  raw = path.read_bytes()
  for header_offset, name_length, name in offsets:
    if "/data/" in name:
      extra_length = struct.unpack_from("<H", raw, header_offset + 28)[0]
      assert (header_offset + 30 + name_length + extra_length) % 64 == 0


def test_writer_rejects_what_torch_cannot_hold(tmp_path):
  path = tmp_path / "bad.pth"
  with pytest.raises(TypeError, match="no torch equivalent"):
    tc.save_state_dict({"x": np.array(["text"])}, path)
  with pytest.raises(TypeError, match="no torch equivalent"):
    tc.save_state_dict({"x": np.zeros(2, dtype=np.float16), "y": [None]}, path)
  with pytest.raises(TypeError, match="keys must be str"):
    tc.save_state_dict({3: np.zeros(2)}, path)
  assert not path.exists() and not list(tmp_path.iterdir())


def test_writer_replaces_existing_file_whole(tmp_path):
  path = tmp_path / "net.pth"
  tc.save_state_dict({"a": np.ones(3)}, path)
  tc.save_state_dict({"b": np.zeros(2)}, path, wrap_key=None)
  assert list(tc.load_pth(path)) == ["b"]
  assert [p.name for p in tmp_path.iterdir()] == ["net.pth"]


# select_params.


def test_select_params_precedence_and_module_prefix():
  ema, raw = {"w": np.ones(1)}, {"w": np.zeros(1)}
  assert tc.select_params({"params_ema": ema, "params": raw})["w"][0] == 1
  assert tc.select_params({"params": raw, "iter": 3})["w"][0] == 0
  assert tc.select_params({"module.w": np.full(1, 2.0)})["w"][0] == 2
  stripped = tc.select_params(
      {"params": {"module.body.module.x": np.ones(1), "head": np.ones(1)}})
  assert list(stripped) == ["body.module.x", "head"]  # Leading prefix only.
  assert list(tc.select_params({"g": ema, "params": raw}, keys=("g",))) == ["w"]


def test_select_params_refuses_non_weights():
  with pytest.raises(ValueError, match="'net' is a dict"):
    tc.select_params({"net": {"w": np.ones(1)}, "iter": 3})
  with pytest.raises(ValueError, match="list"):
    tc.select_params([np.ones(1)])
  with pytest.raises(ValueError, match="both mean 'w'"):
    tc.select_params({"w": np.ones(1), "module.w": np.ones(1)})


# Hostile and damaged files.


def hand_pickle(build):
  """A protocol-2 pickle written opcode by opcode with the module's emitter."""
  writer = tc._PickleWriter()
  build(writer)
  writer.op(pickle.STOP)
  return bytes(writer.out)


def zip_checkpoint(path, data_pkl, records=()):
  """torch's zip layout around a hand-made pickle and raw storages."""
  with zipfile.ZipFile(path, "w") as archive:
    archive.writestr("ckpt/data.pkl", data_pkl)
    archive.writestr("ckpt/version", "3\n")
    for key, data in records:
      archive.writestr(f"ckpt/data/{key}", data.tobytes())


def legacy_file(path, main_pickle, storages):
  """torch's legacy layout: magic, protocol, sys_info, object, keys, data."""
  with open(path, "wb") as f:
    f.write(pickle.dumps(tc._LEGACY_MAGIC, protocol=2))
    f.write(pickle.dumps(tc._LEGACY_PROTOCOL, protocol=2))
    f.write(pickle.dumps({"protocol_version": 1001, "little_endian": True,
                          "type_sizes": {"short": 2, "int": 4, "long": 4}},
                         protocol=2))
    f.write(main_pickle)
    f.write(pickle.dumps([key for key, _ in storages], protocol=2))
    for _, data in storages:
      f.write(struct.pack("<q", data.size) + data.tobytes())


def old_tensor(writer, key, numel, view, offset, shape, stride):
  """A pre-0.4 tensor: _rebuild_tensor over a (maybe viewed) CUDA storage."""
  writer.global_("torch._utils", "_rebuild_tensor")
  writer.op(pickle.MARK, pickle.MARK)
  writer.str_("storage")
  writer.global_("torch.cuda", "FloatStorage")
  writer.str_(key)
  writer.str_("cuda:0")
  writer.int_(numel)
  if view is None:
    writer.op(pickle.NONE)
  else:
    writer.op(pickle.MARK)
    writer.str_(view[0])
    writer.int_(view[1])
    writer.int_(view[2])
    writer.op(pickle.TUPLE)
  writer.op(pickle.TUPLE, pickle.BINPERSID)
  writer.int_(offset)
  writer.int_tuple(shape)
  writer.int_tuple(stride)
  writer.op(pickle.TUPLE, pickle.REDUCE)


def test_reads_pre_0_4_legacy_tensors_and_storage_views(tmp_path):
  # What pre-0.4 torch wrote, the era of torchvision's VGG19 weights file.
  def build(w):
    w.ordered_dict()
    w.op(pickle.MARK)
    w.str_("features.0.weight")
    old_tensor(w, "140001", 12, None, 2, (2, 3), (1, 2))
    w.str_("features.0.bias")
    old_tensor(w, "140001", 4, ("140002", 8, 4), 1, (3,), (1,))
    w.op(pickle.SETITEMS)

  path = tmp_path / "vgg_like.pth"
  legacy_file(path, hand_pickle(build),
              [("140001", np.arange(12, dtype=np.float32))])
  state = tc.load_state_dict(path)
  assert_arrays_equal(state, {
      "features.0.weight": np.arange(2, 8, dtype=np.float32).reshape(3, 2).T,
      "features.0.bias": np.arange(9, 12, dtype=np.float32),
  })


def test_tensor_overrunning_its_storage_is_refused(tmp_path):
  def build(w):
    w.ordered_dict()
    w.op(pickle.MARK)
    w.str_("w")
    old_tensor(w, "1", 4, None, 1, (2, 2), (2, 1))  # Needs elements 1..4.
    w.op(pickle.SETITEMS)

  path = tmp_path / "overrun.pth"
  legacy_file(path, hand_pickle(build), [("1", np.arange(4, dtype=np.float32))])
  with pytest.raises(tc.TorchCheckpointError) as excinfo:
    tc.load_pth(path)
  assert_one_line_error(excinfo, path, "overruns its storage")


def test_zip_storage_shorter_than_declared_is_refused(tmp_path):
  good, bad = tmp_path / "good.pth", tmp_path / "short.pth"
  tc.save_state_dict({"w": np.arange(8, dtype=np.float32)}, good)
  with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
    for info in src.infolist():
      data = src.read(info)
      dst.writestr(info.filename, data[:12] if "/data/" in info.filename
                   else data)
  with pytest.raises(tc.TorchCheckpointError) as excinfo:
    tc.load_pth(bad)
  assert_one_line_error(excinfo, bad, "storage 0 holds 12 bytes, needs 32")


class _RunsCode:
  """Pickles as a call to os.system, the classic malicious checkpoint."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f"touch {self.marker}",))


def test_disallowed_global_in_legacy_pickle_is_refused(tmp_path):
  marker = tmp_path / "pwned"
  path = tmp_path / "evil_legacy.pth"
  legacy_file(path, pickle.dumps({"w": _RunsCode(marker)}, protocol=2), [])
  with pytest.raises(tc.TorchCheckpointError) as excinfo:
    tc.load_pth(path)
  assert_one_line_error(excinfo, path, "disallowed global", "system")
  assert not marker.exists()


def test_disallowed_global_in_zip_pickle_is_refused(tmp_path):
  marker = tmp_path / "pwned"
  path = tmp_path / "evil.pth"
  zip_checkpoint(path, pickle.dumps({"params": _RunsCode(marker)}, protocol=2))
  with pytest.raises(tc.TorchCheckpointError) as excinfo:
    tc.load_state_dict(path)
  assert_one_line_error(excinfo, path, "disallowed global", "system")
  assert not marker.exists()


def test_plain_pickle_with_code_is_refused(tmp_path):
  marker = tmp_path / "pwned"
  path = tmp_path / "evil.pkl"
  path.write_bytes(pickle.dumps(_RunsCode(marker), protocol=4))
  with pytest.raises(tc.TorchCheckpointError) as excinfo:
    tc.load_pth(path)
  assert_one_line_error(excinfo, path, "disallowed global", "system")
  assert not marker.exists()


def test_storage_typed_by_torch_dtype(tmp_path):
  # Storage types may be given as torch.<dtype> rather than *Storage classes.
  def build(w):
    w.op(pickle.EMPTY_DICT)
    w.str_("w")
    w.global_("torch._utils", "_rebuild_tensor_v2")
    w.op(pickle.MARK, pickle.MARK)
    w.str_("storage")
    w.global_("torch", "float16")
    w.str_("0")
    w.str_("cpu")
    w.int_(6)
    w.op(pickle.TUPLE, pickle.BINPERSID)
    w.int_(0)
    w.int_tuple((3, 2))
    w.int_tuple((2, 1))
    w.op(pickle.NEWFALSE)
    w.ordered_dict()
    w.op(pickle.TUPLE, pickle.REDUCE, pickle.SETITEM)

  path = tmp_path / "dtype.pth"
  zip_checkpoint(path, hand_pickle(build),
                 [("0", np.arange(6, dtype="<f2"))])
  assert_arrays_equal(tc.load_state_dict(path),
                      {"w": np.arange(6, dtype=np.float16).reshape(3, 2)})


def test_storage_type_cannot_be_called(tmp_path):
  # An allowed global used as a function must not become a way to run code.
  def build(w):
    w.global_("torch", "FloatStorage")
    w.op(pickle.EMPTY_TUPLE, pickle.REDUCE)

  path = tmp_path / "call.pth"
  zip_checkpoint(path, hand_pickle(build))
  with pytest.raises(tc.TorchCheckpointError) as excinfo:
    tc.load_pth(path)
  assert_one_line_error(excinfo, path, "not callable")


@pytest.mark.parametrize("name", ["zip_state.pth", "legacy_state.pth"])
def test_truncated_checkpoints_are_refused(tmp_path, name):
  raw = (FIXTURES / name).read_bytes()
  for cut in (1, 3, 40, len(raw) // 3, len(raw) // 2, len(raw) - 30,
              len(raw) - 1):
    path = tmp_path / f"cut{cut}.pth"
    path.write_bytes(raw[:cut])
    with pytest.raises(tc.TorchCheckpointError) as excinfo:
      tc.load_pth(path)
    assert_one_line_error(excinfo, path)


def test_random_bytes_and_empty_files_are_refused(tmp_path):
  rng = np.random.default_rng(0)
  cases = {"empty.pth": b"", "text.pth": b"hello, not a checkpoint\n"}
  for i in range(20):
    cases[f"random{i}.pth"] = rng.bytes(int(rng.integers(1, 4000)))
  cases["random_zip_head.pth"] = b"PK\x03\x04" + rng.bytes(200)
  cases["random_pickle_head.pth"] = b"\x80\x02" + rng.bytes(200)
  for name, data in cases.items():
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(tc.TorchCheckpointError) as excinfo:
      tc.load_pth(path)
    assert_one_line_error(excinfo, path)
  with pytest.raises(tc.TorchCheckpointError, match="empty file"):
    tc.load_pth(tmp_path / "empty.pth")


def test_zip_without_a_pickle_is_not_a_checkpoint(tmp_path):
  path = tmp_path / "images.zip"
  with zipfile.ZipFile(path, "w") as archive:
    archive.writestr("images/a.png", b"\x89PNG")
  with pytest.raises(tc.TorchCheckpointError) as excinfo:
    tc.load_pth(path)
  assert_one_line_error(excinfo, path, "not a PyTorch checkpoint")


def test_load_state_dict_needs_a_dict(tmp_path):
  path = tmp_path / "list.pth"
  legacy_file(path, pickle.dumps([1, 2], protocol=2), [])
  assert tc.load_pth(path) == [1, 2]
  with pytest.raises(tc.TorchCheckpointError) as excinfo:
    tc.load_state_dict(path)
  assert_one_line_error(excinfo, path, "list, not a dict")


def test_error_is_a_value_error_with_the_path():
  error = tc.TorchCheckpointError(pathlib.Path("/x/y.pth"), "bad\nthing")
  assert isinstance(error, ValueError)
  assert str(error) == "/x/y.pth: bad thing"
  assert error.path == "/x/y.pth"


def test_missing_file_is_a_plain_file_not_found_error(tmp_path):
  with pytest.raises(FileNotFoundError):
    tc.load_pth(tmp_path / "nope.pth")


def test_non_ascii_names_and_large_ints_survive_the_writer(tmp_path):
  path = tmp_path / "unicode.pth"
  tc.save_state_dict({"größe.w": np.arange(3, dtype=np.int64)}, path)
  assert_arrays_equal(tc.select_params(tc.load_state_dict(path)),
                      {"größe.w": np.arange(3, dtype=np.int64)})
  # Large ints need LONG1 in the pickle; check the emitter's encodings.
  for value in (0, 255, 256, 65535, 65536, -1, 2**31 - 1, 2**31, -2**31 - 1,
                2**40):
    writer = tc._PickleWriter()
    writer.int_(value)
    writer.op(pickle.STOP)
    assert pickle.loads(bytes(writer.out)) == value
