"""Reads and writes PyTorch ``.pth`` checkpoints without importing torch.

Pretrained weights reach us as PyTorch files: torchvision's VGG19 (an old
file in torch's legacy format, a run of pickles followed by raw storages) and
BasicSR / Real-ESRGAN checkpoints (torch's zip format, ``{'params_ema': ...,
'params': ...}``). Pulling in torch just to read them would add gigabytes to
the environment, so this module parses both formats itself.

Reading never runs code from the file: pickles go through an unpickler that
knows only the handful of globals a tensor checkpoint needs, each replaced by
a harmless stand-in, and refuses everything else. Tensors come back as numpy
arrays (a copy honouring the stored offset and strides).

Writing produces torch's zip format with a hand-emitted protocol-2 pickle, so
that ``torch.load(path, weights_only=True)`` and BasicSR's ``load_network``
accept the file, again without torch being installed here.
"""
import collections
import math
import os
import pickle
import struct
import zipfile
from collections.abc import Mapping

import numpy as np

from jaxsr import errors
from jaxsr.io import files

__all__ = [
    "TorchCheckpointError",
    "load_pth",
    "load_state_dict",
    "save_state_dict",
    "select_params",
]

# torch storage class -> numpy dtype name.
_STORAGE_DTYPES = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
}
# torch.<dtype> attribute -> numpy dtype name. Dtypes without a storage class
# (uint16, float8, ...) are saved as raw bytes plus one of these.
_TORCH_DTYPES = {
    "float32": "float32", "float": "float32",
    "float64": "float64", "double": "float64",
    "float16": "float16", "half": "float16",
    "bfloat16": "bfloat16",
    "int64": "int64", "long": "int64",
    "int32": "int32", "int": "int32",
    "int16": "int16", "short": "int16",
    "int8": "int8",
    "uint8": "uint8",
    "bool": "bool",
    "complex64": "complex64", "cfloat": "complex64",
    "complex128": "complex128", "cdouble": "complex128",
    "uint16": "uint16",
    "uint32": "uint32",
    "uint64": "uint64",
    "float8_e4m3fn": "float8_e4m3fn",
    "float8_e5m2": "float8_e5m2",
    "float8_e4m3fnuz": "float8_e4m3fnuz",
    "float8_e5m2fnuz": "float8_e5m2fnuz",
    "float8_e8m0fnu": "float8_e8m0fnu",
}
_STORAGE_FOR_DTYPE = {v: k for k, v in _STORAGE_DTYPES.items()}
# Written as an untyped storage and _rebuild_tensor_v3, as torch does.
_UNTYPED_DTYPES = {v for v in _TORCH_DTYPES.values()
                   if v not in _STORAGE_FOR_DTYPE}

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
# torch aligns storages so that a memory-mapped load sees aligned data.
_ALIGNMENT = 64


class TorchCheckpointError(errors.UserError):
  """A file that cannot be read as a checkpoint; the message is one line."""

  def __init__(self, path, problem):
    self.path = os.fspath(path)
    self.problem = " ".join(str(problem).split())
    super().__init__(f"{self.path}: {self.problem}")


class _Refused(pickle.UnpicklingError):
  """A global or persistent id that a weights file has no business holding."""


def _np_dtype(name: str) -> np.dtype:
  if name.startswith(("bfloat16", "float8")):
    import ml_dtypes  # Ships with jax; numpy has no bfloat16 or float8.
    return np.dtype(getattr(ml_dtypes, name))
  return np.dtype(name)


class _StorageType:
  """Stands in for torch.FloatStorage, torch.float32 and the like.

  Deliberately not callable: the only legitimate use is as a tag inside a
  persistent id, so a pickle that tries to call one fails.
  """
  __slots__ = ("name", "dtype")

  def __init__(self, name, dtype_name):
    self.name = name
    self.dtype = _np_dtype(dtype_name)


class _Storage:
  """A reference to `numel` elements at `offset` of the storage named `key`."""
  __slots__ = ("key", "dtype", "offset", "numel")

  def __init__(self, key, dtype, offset, numel):
    self.key, self.dtype, self.offset, self.numel = key, dtype, offset, numel


class _Tensor:
  """A tensor whose storage bytes may not have been read yet.

  `dtype` overrides the storage's, for tensors over untyped (byte) storage.
  """
  __slots__ = ("storage", "offset", "shape", "stride", "dtype")

  def __init__(self, storage, offset, shape, stride, dtype=None):
    self.storage, self.offset, self.shape, self.stride = (
        storage, offset, shape, stride)
    self.dtype = storage.dtype if dtype is None else dtype


def _int_tuple(value, what):
  if not isinstance(value, (tuple, list)) or not all(
      isinstance(v, int) and not isinstance(v, bool) for v in value):
    raise _Refused(f"tensor {what} is not a tuple of ints: {value!r}")
  return tuple(value)


def _rebuild_tensor(storage, storage_offset, size, stride):
  if not isinstance(storage, _Storage):
    raise _Refused("tensor built from something that is not a storage")
  if not isinstance(storage_offset, int):
    raise _Refused(f"tensor offset is not an int: {storage_offset!r}")
  size, stride = _int_tuple(size, "size"), _int_tuple(stride, "stride")
  if len(size) != len(stride):
    raise _Refused(f"tensor size {size} and stride {stride} differ in rank")
  return _Tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride,
                       requires_grad=False, backward_hooks=None, metadata=None):
  del requires_grad, backward_hooks, metadata  # Training-time state only.
  return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad,
                       backward_hooks, dtype, metadata=None):
  del requires_grad, backward_hooks, metadata
  tensor = _rebuild_tensor(storage, storage_offset, size, stride)
  if not isinstance(dtype, _StorageType) or dtype.name not in _TORCH_DTYPES:
    raise _Refused(f"tensor dtype is not a torch dtype: {dtype!r}")
  tensor.dtype = dtype.dtype
  return tensor


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None,
                       state=None):
  del requires_grad, backward_hooks, state
  if not isinstance(data, _Tensor):
    raise _Refused("parameter built from something that is not a tensor")
  return data


def _allowed_globals():
  table = {
      ("collections", "OrderedDict"): collections.OrderedDict,
      ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
      ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
      ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
      ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
      ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
  }
  for name, dtype in _STORAGE_DTYPES.items():
    # Old checkpoints saved from a GPU name the torch.cuda classes.
    table["torch", name] = table["torch.cuda", name] = _StorageType(name, dtype)
  for name, dtype in _TORCH_DTYPES.items():
    table["torch", name] = _StorageType(name, dtype)
  untyped = _StorageType("UntypedStorage", "uint8")  # Counted in bytes.
  table["torch", "UntypedStorage"] = untyped
  table["torch.storage", "UntypedStorage"] = untyped
  return table


_ALLOWED_GLOBALS = _allowed_globals()


class _Unpickler(pickle.Unpickler):
  """Unpickles with the allow-list above; `persistent_load` is pluggable."""

  def __init__(self, file, persistent=None):
    super().__init__(file, encoding="utf-8")
    self._persistent = persistent

  def find_class(self, module, name):
    try:
      return _ALLOWED_GLOBALS[module, name]
    except KeyError:
      raise _Refused(f"disallowed global {module}.{name} in pickle") from None

  def persistent_load(self, pid):
    if self._persistent is None:
      raise _Refused(f"unexpected persistent id {pid!r}")
    return self._persistent(pid)


def _storage_array(buf, dtype, big_endian):
  """The bytes `buf` as a native-order 1-D array of `dtype`."""
  count = len(buf) // dtype.itemsize
  if not big_endian or dtype.itemsize == 1:
    return np.frombuffer(buf, dtype, count=count)
  if dtype.kind == "V":  # bfloat16: swap 16-bit words.
    return np.frombuffer(buf, ">u2", count=count).astype(np.uint16).view(dtype)
  return np.frombuffer(buf, dtype.newbyteorder(">"), count=count).astype(dtype)


def _tensor_array(tensor, buf, big_endian):
  """Copies `tensor` out of its storage bytes, refusing to read outside."""
  flat = _storage_array(buf, tensor.dtype, big_endian)
  shape, stride, offset = tensor.shape, tensor.stride, tensor.offset
  if min(shape, default=0) < 0 or min(stride, default=0) < 0 or offset < 0:
    raise _Refused(f"negative size, stride or offset in tensor {shape}")
  if math.prod(shape) == 0:
    return np.zeros(shape, flat.dtype)
  last = offset + sum((n - 1) * s for n, s in zip(shape, stride))
  if last >= flat.size:
    raise _Refused(f"tensor of size {shape}, stride {stride} at offset "
                   f"{offset} overruns its storage of {flat.size} elements")
  # np.ndarray rather than as_strided: the latter fails on ml_dtypes' float8.
  view = np.ndarray(shape, flat.dtype, buffer=flat,
                    offset=offset * flat.itemsize,
                    strides=[s * flat.itemsize for s in stride])
  return np.array(view, order="C")


def _materialize(obj, fetch, big_endian, memo=None):
  """Swaps tensor stand-ins for arrays; OrderedDicts become plain dicts.

  `fetch(storage)` returns the raw bytes a _Storage refers to.
  """
  memo = {} if memo is None else memo
  if isinstance(obj, (str, bytes, int, float, complex, type(None))):
    return obj
  if id(obj) in memo:
    return memo[id(obj)]
  if isinstance(obj, _Tensor):
    out = _tensor_array(obj, fetch(obj.storage), big_endian)
  elif isinstance(obj, _Storage):
    out = np.array(_storage_array(fetch(obj), obj.dtype, big_endian))
  elif isinstance(obj, dict):
    out = memo[id(obj)] = {}
    for key, value in obj.items():
      key = _materialize(key, fetch, big_endian, memo)  # Leaves no stand-in.
      out[key] = _materialize(value, fetch, big_endian, memo)
  elif isinstance(obj, list):
    out = memo[id(obj)] = []
    out.extend(_materialize(v, fetch, big_endian, memo) for v in obj)
  elif isinstance(obj, (tuple, set, frozenset)):
    out = type(obj)(_materialize(v, fetch, big_endian, memo) for v in obj)
  elif isinstance(obj, _StorageType):
    raise _Refused(f"bare torch.{obj.name} outside a storage reference")
  else:
    raise _Refused(f"unexpected {type(obj).__name__} in pickle")
  memo[id(obj)] = out
  return out


class _KeyDtypes:
  """Remembers each storage key's dtype and refuses conflicting ones."""

  def __init__(self):
    self.dtypes = {}

  def note(self, key, storage_type):
    if not isinstance(key, str) or not isinstance(storage_type, _StorageType):
      raise _Refused(f"malformed storage reference {key!r}")
    if self.dtypes.setdefault(key, storage_type.dtype) != storage_type.dtype:
      raise _Refused(f"storage {key} is referenced with two dtypes")
    return storage_type.dtype


def _check_count(value, what):
  if not isinstance(value, int) or isinstance(value, bool) or value < 0:
    raise _Refused(f"bad {what} {value!r} in storage reference")
  return value


def _load_zip(path):
  with zipfile.ZipFile(path) as archive:
    names = archive.namelist()
    pickles = [n for n in names
               if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
      raise _Refused("zip archive has no single <folder>/data.pkl; "
                     "not a PyTorch checkpoint")
    top = pickles[0][:-len("data.pkl")]
    big_endian = False
    if top + "byteorder" in names:
      order = archive.read(top + "byteorder").decode("ascii", "replace")
      if order not in ("little", "big"):
        raise _Refused(f"unknown byteorder {order!r}")
      big_endian = order == "big"
    dtypes = _KeyDtypes()

    def persistent(pid):
      if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
        raise _Refused(f"unsupported persistent id {pid!r}")
      _, storage_type, key, _, numel = pid
      dtype = dtypes.note(key, storage_type)
      return _Storage(key, dtype, 0, _check_count(numel, "numel"))

    with archive.open(pickles[0]) as f:
      obj = _Unpickler(f, persistent).load()
    records, cache = set(names), {}

    def fetch(storage):
      name = f"{top}data/{storage.key}"
      if name not in records:
        raise _Refused(f"missing storage record {name}")
      need = storage.numel * storage.dtype.itemsize
      buf = cache.get(name)
      if buf is None or len(buf) < need:
        with archive.open(name) as entry:  # Reads no more than is used.
          buf = cache[name] = entry.read(need)
      if len(buf) < need:
        raise _Refused(f"storage {storage.key} holds {len(buf)} bytes, "
                       f"needs {need}")
      return memoryview(buf)[:need]

    return _materialize(obj, fetch, big_endian)


def _load_legacy(path):
  with open(path, "rb") as f:
    try:
      magic = _Unpickler(f).load()
    except _Refused:
      raise
    except Exception:
      magic = None
    if magic != _LEGACY_MAGIC:
      raise _Refused("not a PyTorch checkpoint (no legacy magic number)")
    protocol = _Unpickler(f).load()
    if protocol != _LEGACY_PROTOCOL:
      raise _Refused(f"unsupported legacy protocol version {protocol!r}")
    sys_info = _Unpickler(f).load()
    big_endian = not (isinstance(sys_info, dict)
                      and sys_info.get("little_endian", True))
    dtypes = _KeyDtypes()

    def persistent(pid):
      if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
        raise _Refused(f"unsupported persistent id {pid!r}")
      _, storage_type, key, _, numel, view = pid
      dtype = dtypes.note(key, storage_type)
      if view is None:
        return _Storage(key, dtype, 0, _check_count(numel, "numel"))
      # Pre-1.0 storage views: (view key, offset, size) in elements.
      if not (isinstance(view, tuple) and len(view) == 3):
        raise _Refused(f"malformed storage view {view!r}")
      return _Storage(key, dtype, _check_count(view[1], "view offset"),
                      _check_count(view[2], "view size"))

    obj = _Unpickler(f, persistent).load()
    keys = _Unpickler(f).load()
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
      raise _Refused("storage key list is malformed")
    count_format = ">q" if big_endian else "<q"
    file_size = os.fstat(f.fileno()).st_size
    storages = {}
    for key in keys:
      if key not in dtypes.dtypes:
        raise _Refused(f"storage {key} is never referenced")
      dtype = dtypes.dtypes[key]
      header = f.read(8)
      if len(header) != 8:
        raise _Refused(f"file ends before storage {key}")
      count = _check_count(struct.unpack(count_format, header)[0],
                           "element count")
      if count * dtype.itemsize > file_size - f.tell():  # Before allocating.
        raise _Refused(f"file ends inside storage {key}")
      storages[key] = f.read(count * dtype.itemsize)

  def fetch(storage):
    if storage.key not in storages:
      raise _Refused(f"missing storage {storage.key}")
    start = storage.offset * storage.dtype.itemsize
    end = start + storage.numel * storage.dtype.itemsize
    if end > len(storages[storage.key]):
      raise _Refused(f"storage {storage.key} holds "
                     f"{len(storages[storage.key])} bytes, needs {end}")
    return memoryview(storages[storage.key])[start:end]

  return _materialize(obj, fetch, big_endian)


def load_pth(path):
  """The unpickled checkpoint, every tensor a numpy array, dicts plain dicts.

  Handles both torch's zip format and its legacy format. Anything the file
  holds besides containers, numbers, strings and tensors is refused with a
  TorchCheckpointError before it can run.
  """
  with open(path, "rb") as f:
    head = f.read(4)
  if not head:
    raise TorchCheckpointError(path, "empty file")
  try:
    if head == b"PK\x03\x04":
      return _load_zip(path)
    if head[:1] == pickle.PROTO:
      return _load_legacy(path)
    raise _Refused(f"not a PyTorch checkpoint (file starts {head!r})")
  except _Refused as e:
    raise TorchCheckpointError(path, e) from None
  except zipfile.BadZipFile as e:
    raise TorchCheckpointError(
        path, f"corrupt or truncated zip archive ({e})") from None
  except Exception as e:  # Any parse failure means a damaged file.
    raise TorchCheckpointError(
        path, f"corrupt or truncated checkpoint ({type(e).__name__}: {e})"
    ) from None


def load_state_dict(path):
  """A checkpoint's top-level dict: name -> array, or the nested original.

  A bare state dict comes back as name -> array. A wrapper such as
  BasicSR's {'params_ema': {...}, 'params': {...}} comes back whole, so the
  caller can choose with `select_params`.
  """
  obj = load_pth(path)
  if not isinstance(obj, dict):
    raise TorchCheckpointError(
        path, f"top-level object is a {type(obj).__name__}, not a dict")
  return obj


def select_params(obj, keys=("params_ema", "params")):
  """Picks the weights BasicSR would: params_ema, else params, else obj.

  The EMA weights are the ones published results use. A leading 'module.'
  (left by DataParallel) is stripped from every name.
  """
  if not isinstance(obj, Mapping):
    raise ValueError(f"expected a dict of weights, got {type(obj).__name__}")
  for key in keys:
    if isinstance(obj.get(key), Mapping):
      obj = obj[key]
      break
  out = {}
  for name, value in obj.items():
    if not isinstance(name, str) or not isinstance(value, np.ndarray):
      raise ValueError(
          f"entry {name!r} is a {type(value).__name__}, not a named array "
          f"(looked for {list(keys)} first)")
    stripped = name.removeprefix("module.")
    if stripped in out:
      raise ValueError(f"{name!r} and another entry both mean {stripped!r}")
    out[stripped] = value
  return out


class _PickleWriter:
  """Emits the protocol-2 pickle of a (wrapped) state dict, opcode by opcode.

  Writing the opcodes ourselves lets the pickle name torch's globals without
  torch (or a fake of it) being importable.
  """

  def __init__(self):
    self.out = bytearray(pickle.PROTO + b"\x02")

  def op(self, *codes):
    for code in codes:
      self.out += code

  def global_(self, module, name):
    self.op(pickle.GLOBAL, f"{module}\n{name}\n".encode("ascii"))

  def int_(self, value):
    if 0 <= value < 0x100:
      self.op(pickle.BININT1, struct.pack("<B", value))
    elif 0 <= value < 0x10000:
      self.op(pickle.BININT2, struct.pack("<H", value))
    elif -0x80000000 <= value < 0x80000000:
      self.op(pickle.BININT, struct.pack("<i", value))
    else:
      size = (value.bit_length() + 8) // 8
      data = value.to_bytes(size, "little", signed=True)
      self.op(pickle.LONG1, struct.pack("<B", len(data)), data)

  def str_(self, value):
    data = value.encode("utf-8")
    self.op(pickle.BINUNICODE, struct.pack("<I", len(data)), data)

  def int_tuple(self, values):
    self.op(pickle.MARK)
    for v in values:
      self.int_(v)
    self.op(pickle.TUPLE)

  def ordered_dict(self):
    self.global_("collections", "OrderedDict")
    self.op(pickle.EMPTY_TUPLE, pickle.REDUCE)

  def tensor(self, dtype, key, shape):
    """A contiguous tensor over the whole storage `key`.

    Dtypes with a storage class use _rebuild_tensor_v2(storage, offset, size,
    stride, requires_grad, hooks); newer ones, like torch, an untyped storage
    counted in bytes and _rebuild_tensor_v3(..., hooks, dtype).
    """
    untyped = dtype.name in _UNTYPED_DTYPES
    self.global_("torch._utils",
                 "_rebuild_tensor_v3" if untyped else "_rebuild_tensor_v2")
    self.op(pickle.MARK, pickle.MARK)
    self.str_("storage")
    if untyped:
      self.global_("torch.storage", "UntypedStorage")
    else:
      self.global_("torch", _STORAGE_FOR_DTYPE[dtype.name])
    self.str_(key)
    self.str_("cpu")
    self.int_(math.prod(shape) * (dtype.itemsize if untyped else 1))
    self.op(pickle.TUPLE, pickle.BINPERSID)
    self.int_(0)
    self.int_tuple(shape)
    strides = [math.prod(shape[i + 1:]) for i in range(len(shape))]
    self.int_tuple(strides)
    self.op(pickle.NEWFALSE)
    self.ordered_dict()
    if untyped:
      self.global_("torch", dtype.name)
    self.op(pickle.TUPLE, pickle.REDUCE)


def _little_endian_bytes(array):
  if array.dtype.itemsize == 1:
    return array.tobytes()
  if array.dtype.kind == "V":  # bfloat16
    return array.view(np.uint16).astype("<u2").tobytes()
  return array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


def _aligned_info(archive, name):
  """A ZipInfo whose data will start on an _ALIGNMENT boundary."""
  info = zipfile.ZipInfo(name)
  header_end = archive.fp.tell() + 30 + len(name.encode("utf-8")) + 4
  pad = -header_end % _ALIGNMENT
  info.extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad  # 'FB', as torch
  return info


def save_state_dict(state: Mapping, path, wrap_key: str | None = "params"):
  """Writes `state` (name -> array) as a torch zip-format checkpoint.

  With `wrap_key` the file holds {wrap_key: OrderedDict(state)}, the layout
  BasicSR's load_network expects; with None it holds the bare OrderedDict.
  Arrays are stored contiguous, little-endian, one storage each.
  """
  pickler = _PickleWriter()
  records = []
  if wrap_key is not None:
    pickler.op(pickle.EMPTY_DICT)
    pickler.str_(wrap_key)
  pickler.ordered_dict()
  if state:
    pickler.op(pickle.MARK)
    for index, (name, value) in enumerate(state.items()):
      if not isinstance(name, str):
        raise TypeError(f"state dict keys must be str, got {name!r}")
      array = np.asarray(value, order="C")  # Keeps 0-d arrays 0-d.
      if array.dtype.name not in _TORCH_DTYPES.values():
        raise TypeError(f"{name}: dtype {array.dtype} has no torch equivalent")
      pickler.str_(name)
      pickler.tensor(array.dtype, str(index), array.shape)
      records.append((f"data/{index}", _little_endian_bytes(array)))
    pickler.op(pickle.SETITEMS)
  if wrap_key is not None:
    pickler.op(pickle.SETITEM)
  pickler.op(pickle.STOP)

  def write_to(tmp):
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
      archive.writestr("archive/data.pkl", bytes(pickler.out))
      archive.writestr("archive/byteorder", "little")
      for name, data in records:
        archive.writestr(_aligned_info(archive, "archive/" + name), data)
      archive.writestr("archive/version", "3\n")

  files.write_atomically(path, write_to, suffix=".pth")  # Never half a checkpoint.
