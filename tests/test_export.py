"""python -m jaxsr.export: every exported form must compute what the model computes.

Bitwise for the weight files (they are the same numbers in another wrapper);
within float tolerance for the serialised JAX function, which XLA recompiles
for each input size.
"""
import json
import os
import pathlib
import stat

import jax
import numpy as np
import pytest

from jaxsr import export, weights
from jaxsr.io import torch_checkpoint

PARITY = pathlib.Path(__file__).parent / "fixtures" / "parity"


def _cli(capsys, *args):
  try:
    code = export.main(list(args))
  except SystemExit as e:
    code = e.code
  return code, capsys.readouterr()


def _images(channels, *sides):
  rng = np.random.default_rng(0)
  return [rng.random((b, h, w, channels), np.float32) for b, h, w in sides]


@pytest.mark.parametrize("name, sides", [
    ("rrdbnet_x2_c1.pth", [(1, 16, 24), (2, 10, 6)]),  # Sizes must be even at x2.
    ("rrdbnet_x1_c3.pth", [(1, 8, 12), (3, 20, 4)]),  # ... multiples of 4 at x1.
    ("srvgg_x4.pth", [(1, 9, 13), (2, 16, 7)]),
    ("msrresnet_x3_c1.pth", [(1, 11, 5), (1, 6, 17)]),
])
@pytest.mark.slow
def test_every_export_reproduces_the_model(tmp_path, capsys, name, sides):
  out = tmp_path / "export"
  code, printed = _cli(capsys, f"--weights={PARITY / name}", f"--output={out}")
  assert code == 0, printed.err
  assert sorted(p.name for p in out.iterdir()) == sorted(export.FILES)  # No .partial left.
  module, variables, info = weights.load_generator(PARITY / name)
  xs = _images(info["num_channels"], *sides)
  expected = [np.asarray(module.apply(variables, x)) for x in xs]

  m2, v2, info2 = weights.load_generator(out / "model.safetensors")
  assert (info2["arch"], info2["scale"], info2["num_channels"]) == (
      info["arch"], info["scale"], info["num_channels"])
  for x, y in zip(xs, expected):
    np.testing.assert_array_equal(np.asarray(m2.apply(v2, x)), y)

  pth = torch_checkpoint.load_pth(out / "model.pth")
  assert list(pth) == ["params_ema"]
  v3 = weights.from_state_dict(pth["params_ema"],
                               weights.abstract_variables(module, info["num_channels"]))
  for x, y in zip(xs, expected):
    np.testing.assert_array_equal(np.asarray(module.apply(v3, x)), y)

  fn = jax.export.deserialize((out / "model.jax_export").read_bytes())
  for x, y in zip(xs, expected):
    np.testing.assert_allclose(np.asarray(fn.call(x)), y, rtol=0, atol=1e-5)

  config = json.loads((out / "config.json").read_text())
  assert config["arch"] == info["arch"] and config["scale"] == info["scale"]
  assert config["num_channels"] == info["num_channels"]
  assert config["arch_kwargs"] == info["arch_kwargs"]
  readme = (out / "README.md").read_text()
  assert "jax.export.deserialize" in readme and "strict=True" in readme


def test_exported_function_rejects_sizes_the_network_cannot_take(tmp_path, capsys):
  code, printed = _cli(capsys, f"--weights={PARITY / 'rrdbnet_x2_c1.pth'}", f"--output={tmp_path}")
  assert code == 0, printed.err
  assert json.loads((tmp_path / "config.json").read_text())["input_multiple"] == 2
  fn = jax.export.deserialize((tmp_path / "model.jax_export").read_bytes())
  assert "2*h" in str(fn.in_avals[0].shape) and "2*w" in str(fn.in_avals[0].shape)
  with pytest.raises((ValueError, TypeError)):  # jax 0.10: "Division had remainder 1 ..."
    fn.call(np.zeros((1, 7, 8, 1), np.float32))


def test_existing_outputs_are_kept_unless_overwrite(tmp_path, capsys):
  source = PARITY / "srvgg_x4.pth"
  (tmp_path / "model.pth").write_bytes(b"mine")
  code, printed = _cli(capsys, f"--weights={source}", f"--output={tmp_path}")
  assert code == 2 and "--overwrite" in printed.err and printed.err.count("\n") == 1
  assert (tmp_path / "model.pth").read_bytes() == b"mine"
  assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pth"]
  code, printed = _cli(capsys, f"--weights={source}", f"--output={tmp_path}", "--overwrite")
  assert code == 0, printed.err
  assert list(torch_checkpoint.load_pth(tmp_path / "model.pth")) == ["params_ema"]
  # Written through private temporary files, published with a new file's usual mode.
  umask = os.umask(0)
  os.umask(umask)
  assert sorted(p.name for p in tmp_path.iterdir()) == sorted(export.FILES)
  assert {stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()} == {0o666 & ~umask}


@pytest.mark.parametrize("make_args, message", [
    (lambda d: [f"--weights={d / 'missing.pth'}", f"--output={d / 'o'}"], "no such file"),
    (lambda d: [f"--weights={d / 'corrupt.pth'}", f"--output={d / 'o'}"], "corrupt"),
    (lambda d: [f"--weights={d / 'g.pth'}", f"--output={d / 'g.pth'}"], "not a folder"),
    (lambda d: [f"--weights={d / 'model.pth'}", f"--output={d}", "--overwrite"],
     "refusing to overwrite"),
    (lambda d: [f"--weights={d / 'g.pth'}", f"--output={d / 'o'}", "--platforms=cpu,gpu"],
     "--platforms"),
    (lambda d: [f"--weights={PARITY / 'unet_disc.pth'}", f"--output={d / 'o'}"],
     "not a generator"),
    (lambda d: [f"--weights={d / 'g.pth'}", f"--output={d / 'o'}", "--scale=4"],
     "scale mismatch"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, make_args, message):
  (tmp_path / "g.pth").write_bytes((PARITY / "srvgg_x2.pth").read_bytes())
  (tmp_path / "model.pth").write_bytes((PARITY / "srvgg_x2.pth").read_bytes())
  (tmp_path / "corrupt.pth").write_bytes(b"PK\x03\x04garbage")
  code, printed = _cli(capsys, *make_args(tmp_path))
  assert code == 2
  assert message in printed.err and printed.err.count("\n") == 1, printed.err
  assert not (tmp_path / "o").exists()
  assert (tmp_path / "model.pth").read_bytes() == (PARITY / "srvgg_x2.pth").read_bytes()
