"""Writes tests/fixtures/torch/*.pth with real torch, for the torch-free reader.

The tests of jaxsr.io.torch_checkpoint must not need torch, yet should prove
the reader against files torch itself wrote. This script needs torch (the
fixtures in the repository were made with torch 2.13.0+cpu, Python 3.11) and
is never run by the tests:

  python -m venv /tmp/torchvenv
  /tmp/torchvenv/bin/pip install torch==2.13.0 numpy
  /tmp/torchvenv/bin/python tools/make_torch_fixtures.py

Every value is arange-based, so tests/test_torch_checkpoint.py rebuilds the
expected arrays with numpy alone; keep the two in step.
"""
import collections
import io
import pathlib

import torch

REPO = pathlib.Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "fixtures" / "torch"


def state():
  """A state dict exercising dtypes, views, shared storage and _metadata."""
  conv = torch.nn.Conv2d(2, 3, 3)
  with torch.no_grad():
    weight = torch.arange(54, dtype=torch.float32).reshape(3, 2, 3, 3)
    conv.weight.copy_(weight / 8)
    conv.bias.copy_(torch.arange(3, dtype=torch.float32) - 1.5)
  sd = collections.OrderedDict(
      ("conv." + k, v) for k, v in conv.state_dict().items())
  base = torch.arange(20, dtype=torch.float64).reshape(4, 5)
  sd["base"] = base
  sd["offset_view"] = base[1:, 2:4]  # Shares base's storage, offset 7.
  sd["transposed"] = torch.arange(12, dtype=torch.float32).reshape(3, 4).t()
  sd["every_other"] = torch.arange(10, dtype=torch.int32)[1::2]
  sd["half"] = torch.arange(12, dtype=torch.float16).reshape(3, 4) / 4
  sd["bf16"] = torch.arange(6, dtype=torch.bfloat16) / 2
  sd["long"] = torch.arange(-3, 5, dtype=torch.int64)
  sd["short"] = torch.arange(-2, 2, dtype=torch.int16)
  sd["int8"] = torch.arange(-4, 4, dtype=torch.int8)
  sd["uint8"] = torch.arange(250, 256, dtype=torch.uint8)
  sd["flag"] = torch.arange(5) % 2 == 0
  sd["scalar"] = torch.tensor(3.25)
  sd["empty"] = torch.zeros(0, 3)
  sd["param"] = torch.nn.Parameter(torch.arange(4, dtype=torch.float32))
  # Dtypes without a storage class go through _rebuild_tensor_v3.
  uint16 = torch.arange(65530, 65536).to(torch.uint16).reshape(2, 3)
  sd["uint16"] = uint16[:, 1:]  # Offset 1 element, in a byte storage.
  sd["fp8"] = torch.arange(4.0).to(torch.float8_e4m3fn)
  return sd


def nested():
  """The BasicSR layout: EMA and raw weights, one name DataParallel-prefixed."""
  ema = collections.OrderedDict(
      w=torch.arange(6, dtype=torch.float32).reshape(2, 3),
      b=torch.arange(2, dtype=torch.float32))
  raw = collections.OrderedDict(
      (("module.w", torch.arange(6, dtype=torch.float32).reshape(2, 3) + 100),
       ("module.b", torch.arange(2, dtype=torch.float32) + 100)))
  return {"params_ema": ema, "params": raw, "iter": 5000}


def main():
  OUT.mkdir(parents=True, exist_ok=True)
  # Saved through a file object, the zip's top folder is 'archive/'.
  buffer = io.BytesIO()
  torch.save(state(), buffer)
  (OUT / "zip_state.pth").write_bytes(buffer.getvalue())
  # Saved to a path, the top folder is the file's stem.
  torch.save(nested(), OUT / "zip_nested.pth")
  torch.save(state(), OUT / "legacy_state.pth",
             _use_new_zipfile_serialization=False)
  torch.save(nested(), OUT / "legacy_nested.pth",
             _use_new_zipfile_serialization=False)
  for path in sorted(OUT.glob("*.pth")):
    print(path.name, path.stat().st_size, "bytes")


if __name__ == "__main__":
  main()
