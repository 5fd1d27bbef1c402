"""ESRGAN-family networks, weight conversion and the convert/interpolate CLIs.

Numerical agreement with the PyTorch reference is tests/test_parity.py's job;
here: published parameter counts, names and layouts both ways, metadata,
workdirs, spectral-norm state handling and the command lines' errors.
"""
import math
import os
import pathlib
import shutil
import stat

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsr import convert, interpolate, weights
from jaxsr.io import torch_checkpoint
from jaxsr.models import RRDBNet, SRVGGNetCompact, UNetDiscriminatorSN
from jaxsr.models.unet_discriminator import SpectralNormConv

PARITY = pathlib.Path(__file__).parent / "fixtures" / "parity"


def _random_variables(module, x, seed=0):
  """Variables shaped by the module, filled by numpy: flax's eager init is slow on CPU."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: jnp.asarray(rng.standard_normal(s.shape, np.float32) * 0.1),
                      jax.eval_shape(module.init, jax.random.key(0), x))


def _count(module, shape):
  variables = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros(shape))
  return sum(math.prod(x.shape) for x in jax.tree.leaves(variables["params"]))


@pytest.mark.parametrize("module, channels, expected", [
    (RRDBNet(), 3, 16_697_987),  # RealESRGAN_x4plus / ESRGAN
    (RRDBNet(upscale=2), 3, 16_703_171),  # RealESRGAN_x2plus
    (RRDBNet(num_block=6), 3, 4_467_779),  # RealESRGAN_x4plus_anime_6B
    (RRDBNet(num_in_ch=1, num_out_ch=1), 1, 16_695_681),
    (SRVGGNetCompact(num_conv=32), 3, 1_213_296),  # realesr-general-x4v3
    (SRVGGNetCompact(num_conv=16), 3, 621_424),  # realesr-animevideov3
    (UNetDiscriminatorSN(), 3, 4_376_897),
])
@pytest.mark.slow
def test_parameter_counts_match_reference(module, channels, expected):
  assert _count(module, (1, 16, 16, channels)) == expected


def _out_shape(module, x):
  return jax.eval_shape(lambda: module.apply(module.init(jax.random.key(0), x), x)).shape


def test_output_shapes():
  x = jnp.zeros((2, 8, 8, 1))
  for scale in (4, 2, 1):
    net = RRDBNet(1, 1, upscale=scale, num_feat=8, num_block=1, num_grow_ch=4)
    assert _out_shape(net, x) == (2, 8 * scale, 8 * scale, 1)
  assert _out_shape(SRVGGNetCompact(1, 1, upscale=3, num_feat=8, num_conv=2), x) == (2, 24, 24, 1)
  assert _out_shape(UNetDiscriminatorSN(1, num_feat=4), x) == (2, 8, 8, 1)
  with pytest.raises(ValueError, match="divisible by 8"):
    _out_shape(UNetDiscriminatorSN(1, num_feat=4), jnp.zeros((1, 12, 12, 1)))


def test_state_dict_names_and_layout_round_trip():
  net = RRDBNet(3, 3, upscale=2, num_feat=8, num_block=2, num_grow_ch=4)
  variables = _random_variables(net, jnp.zeros((1, 8, 8, 3)))
  state = weights.to_state_dict(variables)
  assert state["conv_first.weight"].shape == (8, 12, 3, 3)  # Pixel-unshuffled input.
  assert state["body.1.rdb3.conv5.weight"].shape == (8, 24, 3, 3)
  np.testing.assert_array_equal(state["body.0.rdb1.conv2.weight"],
                                np.transpose(variables["params"]["body_0"]["rdb1"]["conv2"]["kernel"],
                                             (3, 2, 0, 1)))
  assert weights.infer_arch(state) == ("rrdbnet", 2, 3, dict(num_feat=8, num_block=2, num_grow_ch=4))
  back = weights.from_state_dict(state, weights.abstract_variables(net, 3))
  jax.tree.map(np.testing.assert_array_equal, back, variables)
  with pytest.raises(weights.WeightsError, match="unexpected 1 tensor"):
    weights.from_state_dict({**state, "extra.weight": np.zeros(1)}, variables)
  with pytest.raises(weights.WeightsError, match="conv_last.weight has shape"):
    weights.from_state_dict({**state, "conv_last.weight": np.zeros((3, 8, 1, 1))}, variables)


def test_spectral_norm_init_gives_unit_vectors():
  conv = SpectralNormConv(6, 4, 2, 1)
  stats = conv.init(jax.random.key(0), jnp.zeros((1, 8, 8, 2)))["batch_stats"]
  assert stats["weight_u"].shape == (6,) and stats["weight_v"].shape == (2 * 4 * 4,)
  for vector in stats.values():
    np.testing.assert_allclose(jnp.linalg.norm(vector), 1.0, rtol=1e-6)


@pytest.mark.slow
def test_spectral_norm_state_is_updated_only_in_training():
  disc = UNetDiscriminatorSN(1, num_feat=4)
  x = jax.random.uniform(jax.random.key(1), (1, 16, 16, 1))
  variables = _random_variables(disc, x)
  stats = variables["batch_stats"]
  assert set(stats) == {f"conv{i}" for i in range(1, 9)}  # Not conv0, conv9.
  apply = jax.jit(disc.apply, static_argnames=("train", "mutable"))
  _, updates = apply(variables, x, train=True, mutable=("batch_stats",))
  u = updates["batch_stats"]["conv1"]["weight_u"]
  assert not np.allclose(u, stats["conv1"]["weight_u"])
  np.testing.assert_allclose(jnp.linalg.norm(u), 1.0, rtol=1e-6)
  _, same = apply(variables, x, train=False, mutable=("batch_stats",))
  jax.tree.map(np.testing.assert_array_equal, same["batch_stats"], stats)
  # Gradients reach the kernels through sigma, not through the power iteration.
  grads = jax.jit(jax.grad(lambda p: apply({"params": p, "batch_stats": stats}, x).sum()))(
      variables["params"])
  assert np.abs(grads["conv1"]["kernel"]).sum() > 0
  state = weights.to_state_dict(variables)
  assert {"conv1.weight_orig", "conv1.weight_u", "conv1.weight_v", "conv0.weight",
          "conv0.bias", "conv9.weight"} <= set(state)
  assert "conv1.weight" not in state and "conv1.bias" not in state


def _run(module, variables, c=3, side=8):
  x = jax.random.uniform(jax.random.key(3), (1, side, side, c))
  return np.asarray(module.apply(variables, x))


def test_safetensors_carry_their_architecture(tmp_path):
  net = SRVGGNetCompact(1, 1, upscale=2, num_feat=8, num_conv=2, act_type="leakyrelu")
  variables = _random_variables(net, jnp.zeros((1, 8, 8, 1)))
  path = tmp_path / "g.safetensors"
  weights.save_safetensors(path, variables["params"], None, "srvgg", 2, 1,
                           dict(num_feat=8, num_conv=2, act_type="leakyrelu"))
  module, loaded, info = weights.load_generator(path)
  assert info["arch"] == "srvgg" and info["scale"] == 2 and info["num_channels"] == 1
  assert info["arch_kwargs"]["act_type"] == "leakyrelu"  # Not visible in the weights.
  np.testing.assert_array_equal(_run(module, loaded, 1), _run(net, variables, 1))
  with pytest.raises(weights.WeightsError, match="scale mismatch"):
    weights.load_generator(path, scale=4)


def test_workdir_gives_ema_weights(tmp_path):
  from jaxsr import workdir as checkpoint  # pylint: disable=import-outside-toplevel
  net = RRDBNet(1, 1, upscale=4, num_feat=8, num_block=1, num_grow_ch=4)
  params = _random_variables(net, jnp.zeros((1, 8, 8, 1)))["params"]
  ema = jax.tree.map(lambda p: p + 1.0, params)
  config = dict(model=dict(name="rrdbnet", num_feat=8, num_block=1, num_grow_ch=4), scale=4,
                num_channels=1)
  mngr = checkpoint.manager(tmp_path)
  checkpoint.save(mngr, 7, dict(g_params=params, ema_params=ema), None, config, force=True)
  mngr.wait_until_finished()
  module, variables, info = weights.load_generator(tmp_path)
  assert info["kind"] == "workdir" and info["step"] == 7 and info["arch"] == "rrdbnet"
  jax.tree.map(np.testing.assert_array_equal, variables["params"], ema)
  assert _run(module, variables, 1).shape == (1, 32, 32, 1)
  _, final, _ = weights.load_generator(tmp_path, use_ema=False)
  jax.tree.map(np.testing.assert_array_equal, final["params"], params)
  # The same choice from the command line.
  out = tmp_path.parent / f"{tmp_path.name}_final.safetensors"
  assert convert.main([f"--input={tmp_path}", f"--output={out}", "--final_weights"]) == 0
  jax.tree.map(np.testing.assert_array_equal, weights.load_generator(out)[1]["params"], params)


def _cli(main, capsys, *args):
  try:
    code = main(list(args))
  except SystemExit as e:
    code = e.code
  return code, capsys.readouterr()


def test_convert_round_trip_keeps_every_tensor(tmp_path, capsys):
  source = PARITY / "rrdbnet_x2_c1.pth"
  sft, pth = tmp_path / "g.safetensors", tmp_path / "g.pth"
  code, out = _cli(convert.main, capsys, f"--input={source}", f"--output={sft}")
  assert code == 0, out.err
  code, out = _cli(convert.main, capsys, f"--input={sft}", f"--output={pth}", "--arch=rrdbnet",
                   "--scale=2")
  assert code == 0, out.err
  original = torch_checkpoint.select_params(torch_checkpoint.load_pth(source))
  exported = torch_checkpoint.load_pth(pth)
  assert list(exported) == ["params"]
  assert set(exported["params"]) == set(original)
  for key, value in original.items():
    np.testing.assert_array_equal(exported["params"][key], value.astype(np.float32))


def test_convert_discriminator_with_batch_norm(tmp_path, capsys):
  out_path = tmp_path / "d.pth"
  code, out = _cli(convert.main, capsys, f"--input={PARITY / 'vgg_disc_128.pth'}",
                   f"--output={out_path}", "--arch=vgg_disc")
  assert code == 0, out.err
  original = torch_checkpoint.load_pth(PARITY / "vgg_disc_128.pth")
  exported = torch_checkpoint.load_pth(out_path)["params"]
  assert set(exported) == set(original)  # num_batches_tracked included.
  np.testing.assert_array_equal(exported["bn1_0.running_var"], original["bn1_0.running_var"])


@pytest.mark.parametrize("make_args, message", [
    (lambda d: ["--input=" + str(d / "missing.pth"), "--output=" + str(d / "o.safetensors")],
     "no such file"),
    (lambda d: ["--input=" + str(d / "corrupt.pth"), "--output=" + str(d / "o.safetensors")],
     "corrupt"),
    (lambda d: ["--input=" + str(d / "g.pth"), "--output=" + str(d / "o.safetensors"),
                "--arch=srvgg"], "architecture mismatch"),
    (lambda d: ["--input=" + str(d / "g.pth"), "--output=" + str(d / "o.safetensors"),
                "--scale=4"], "scale mismatch"),
    (lambda d: ["--input=" + str(d / "g.pth"), "--output=" + str(d / "g.pth")],
     "refusing to overwrite"),
    (lambda d: ["--input=" + str(d / "g.pth"), "--output=" + str(d / "o.npz")],
     "must end in"),
])
def test_convert_errors_are_one_line(tmp_path, capsys, make_args, message):
  shutil.copy(PARITY / "rrdbnet_x2_c1.pth", tmp_path / "g.pth")
  (tmp_path / "corrupt.pth").write_bytes(b"PK\x03\x04garbage")
  before = (tmp_path / "g.pth").read_bytes()
  code, out = _cli(convert.main, capsys, *make_args(tmp_path))
  assert code == 2
  assert message in out.err and out.err.count("\n") == 1, out.err
  assert (tmp_path / "g.pth").read_bytes() == before
  assert not (tmp_path / "o.safetensors").exists()


def test_interpolate(tmp_path, capsys):
  a = PARITY / "srvgg_x4.pth"
  module, vars_a, _ = weights.load_generator(a)
  b = tmp_path / "b.safetensors"
  vars_b = jax.tree.map(lambda p: p * 3.0 + 1.0, vars_a)
  weights.save_safetensors(b, vars_b["params"], None, "srvgg", 4, 3,
                           dict(num_feat=16, num_conv=4, act_type="prelu"))
  out_path = tmp_path / "mix.safetensors"
  code, out = _cli(interpolate.main, capsys, f"--a={a}", f"--b={b}", "--alpha=0.8",
                   f"--output={out_path}")
  assert code == 0, out.err
  _, mixed, info = weights.load_generator(out_path)
  assert info["arch"] == "srvgg"
  jax.tree.map(lambda m, p, q: np.testing.assert_allclose(m, 0.2 * p + 0.8 * q, rtol=1e-6),
               mixed, vars_a, vars_b)
  code, out = _cli(interpolate.main, capsys, f"--a={a}", f"--b={PARITY / 'srvgg_x2.pth'}",
                   "--alpha=0.5", f"--output={tmp_path / 'bad.pth'}")
  assert code == 2 and "architectures differ" in out.err


@pytest.mark.parametrize("command", ["convert", "interpolate"])
def test_an_existing_output_is_kept_unless_overwrite(tmp_path, capsys, command):
  source, out_path = PARITY / "srvgg_x4.pth", tmp_path / "out.safetensors"
  out_path.write_bytes(b"mine")
  main, args = ((convert.main, [f"--input={source}"]) if command == "convert" else
                (interpolate.main, [f"--a={source}", f"--b={source}", "--alpha=0.5"]))
  code, out = _cli(main, capsys, *args, f"--output={out_path}")
  assert code == 2 and out.err.startswith("jaxsr: error: ") and out.err.count("\n") == 1
  assert "--overwrite" in out.err and out_path.read_bytes() == b"mine"
  code, out = _cli(main, capsys, *args, f"--output={out_path}", "--overwrite")
  assert code == 0, out.err
  assert weights.load_generator(out_path)[2]["arch"] == "srvgg"


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_convert_outputs_get_the_umask_permissions(tmp_path, capsys, suffix):
  # Files are written through a private temporary file (0600) and then
  # given a new file's usual mode; others must be able to read the weights.
  out_path = tmp_path / f"g{suffix}"
  previous = os.umask(0o022)
  try:
    code, out = _cli(convert.main, capsys, f"--input={PARITY / 'srvgg_x4.pth'}",
                     f"--output={out_path}")
  finally:
    os.umask(previous)
  assert code == 0, out.err
  assert stat.S_IMODE(out_path.stat().st_mode) == 0o644
  assert sorted(p.name for p in tmp_path.iterdir()) == [out_path.name]  # No temporary left.
