"""Parity against the live BasicSR / Real-ESRGAN packages (torch in a subprocess).

Runs only when ``JAXSR_REF_PYTHON`` names a python with torch, basicsr and
realesrgan (benchmarks/setup_reference.sh builds one; CI sets the variable
after running it). The fixture-based tests in test_parity.py and
test_degradations.py cover parity without torch.

Both directions use small nets generated afresh in a temporary directory:
  import  the reference builds random nets and writes state dicts, inputs and
          outputs (tools/make_parity_fixtures.py's format); we convert them
          with jaxsr.weights and compare (test_parity.compare).
  export  our random nets go out through jaxsr.weights.save_pth; the reference
          loads them with strict=True and runs them on our inputs.
"""
import json
import os
import pathlib
import re
import subprocess

import jax
import numpy as np
import pytest

import test_parity
from jaxsr import weights

REF_PYTHON = os.environ.get("JAXSR_REF_PYTHON")
REPO = pathlib.Path(__file__).resolve().parents[1]
TOL = 1e-4

pytestmark = [pytest.mark.reference, pytest.mark.skipif(
    not REF_PYTHON,
    reason="JAXSR_REF_PYTHON not set: live reference checks need benchmarks/setup_reference.sh")]

_RRDB3 = dict(num_feat=16, num_block=2, num_grow_ch=8)
_RRDB1 = dict(num_feat=8, num_block=1, num_grow_ch=4)
_SRVGG = dict(num_feat=16, num_conv=4, act_type="prelu")
_MSRR = dict(num_feat=16, num_block=2)

# name: arch, scale, channels, kwargs, input side, seed, float16-rounded He weights
# (False: the reference's own float32 init), batch.
IMPORTS = {
    "rrdbnet_x4_c3": ("rrdbnet", 4, 3, _RRDB3, 8, 7001, True, 1),
    "rrdbnet_x2_c3": ("rrdbnet", 2, 3, _RRDB3, 12, 7002, True, 1),
    "rrdbnet_x1_c1": ("rrdbnet", 1, 1, _RRDB1, 16, 7003, True, 1),
    "rrdbnet_x4_c1_f32": ("rrdbnet", 4, 1, _RRDB1, 8, 7004, False, 2),
    "srvgg_x4": ("srvgg", 4, 3, _SRVGG, 10, 7005, True, 1),
    "srvgg_x2_c1_lrelu": ("srvgg", 2, 1, dict(num_feat=8, num_conv=2, act_type="leakyrelu"),
                          8, 7006, True, 1),
    "msrresnet_x4": ("msrresnet", 4, 3, _MSRR, 10, 7007, True, 1),
    "msrresnet_x2_f32": ("msrresnet", 2, 3, _MSRR, 8, 7008, False, 1),
    "vgg_disc_128": ("vgg_style", None, 3, dict(num_feat=4, input_size=128), 128, 7009, True, 2),
    "unet_disc": ("unet_disc", None, 3, dict(num_feat=8), 32, 7010, True, 2),
}

# name: arch, scale, channels, kwargs, input side.
EXPORTS = {
    "rrdbnet_x4_c3": ("rrdbnet", 4, 3, _RRDB3, 8),
    "rrdbnet_x2_c1": ("rrdbnet", 2, 1, _RRDB1, 12),
    "rrdbnet_x1_c3": ("rrdbnet", 1, 3, _RRDB3, 16),
    "srvgg_x4": ("srvgg", 4, 3, _SRVGG, 10),
    "msrresnet_x4": ("msrresnet", 4, 3, _MSRR, 10),
    "vgg_disc_128": ("vgg_style", None, 3, dict(num_feat=4, input_size=128), 128),
    "unet_disc": ("unet_disc", None, 3, dict(num_feat=8), 32),
}

_MAKE = """
import json, pathlib, sys
sys.path.insert(0, "tools")
import torch
import make_parity_fixtures as m
torch.use_deterministic_algorithms(True)
out = pathlib.Path(sys.argv[1])
for name, (arch, scale, c, kw, side, seed, half, batch) in json.loads(sys.argv[2]).items():
  m.make_net(out, name, arch, scale, c, kw, side, seed, half=half, batch=batch)
"""

_CHECK = """
import sys
sys.path.insert(0, "tools")
import make_parity_fixtures as m
m.check_exports(sys.argv[1])
"""


def _run_reference(code, *args):
  proc = subprocess.run([REF_PYTHON, "-c", code, *map(str, args)], cwd=REPO, text=True,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False, timeout=300)
  assert proc.returncode == 0, f"reference failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
  return proc.stdout


@pytest.fixture(scope="module")
def reference_nets(tmp_path_factory):
  folder = tmp_path_factory.mktemp("live_import")
  _run_reference(_MAKE, folder, json.dumps(IMPORTS))
  return folder


@pytest.mark.parametrize("name", sorted(IMPORTS))
def test_reference_weights_import(reference_nets, name):
  diffs = test_parity.compare(reference_nets, name)
  for key, diff in diffs.items():
    tol = 1e-5 if key.startswith("after:") else TOL
    assert diff <= tol, f"{name} {key}: max abs diff {diff:.3g} > {tol}"


def _random_variables(module, c, rng):
  """Random variables filled by numpy (flax's eager init is slow on CPU)."""
  def draw(path, a):
    leaf = path[-1].key
    if leaf == "kernel":
      fan_in = int(np.prod(a.shape[:-1]))
      return rng.standard_normal(a.shape, np.float32) * np.float32(np.sqrt(2 / fan_in))
    if leaf in ("bias", "mean"):
      return rng.standard_normal(a.shape, np.float32) * np.float32(0.1)
    if leaf in ("scale", "var"):
      return rng.uniform(0.5, 1.5, a.shape).astype(np.float32)
    if leaf == "weight":  # PReLU slopes.
      return rng.uniform(0.0, 0.5, a.shape).astype(np.float32)
    if leaf in ("weight_u", "weight_v"):
      v = rng.standard_normal(a.shape, np.float32)
      return v / np.linalg.norm(v)
    raise ValueError(f"no random fill for {jax.tree_util.keystr(path)}")
  return jax.tree_util.tree_map_with_path(draw, weights.abstract_variables(module, c))


def _export(folder):
  for i, (name, (arch, scale, c, kwargs, side)) in enumerate(EXPORTS.items()):
    module = weights.build(arch, scale, c, kwargs)
    rng = np.random.default_rng(8000 + i)
    x = rng.random((2, side, side, c), dtype=np.float32)
    variables = _random_variables(module, c, rng)
    if arch == "unet_disc":  # Converge u, v as training would.
      step = jax.jit(lambda v, x, m=module: m.apply(v, x, train=True, mutable=["batch_stats"])[1])
      for _ in range(30):
        variables = {**variables, **step(variables, x)}
    y = jax.jit(module.apply)(variables, x)
    weights.save_pth(folder / f"{name}.pth", variables["params"], variables.get("batch_stats"))
    spec = dict(arch=arch, scale=scale, num_channels=c, arch_kwargs=kwargs)
    np.savez(folder / f"{name}.npz", x=x.transpose(0, 3, 1, 2), y=test_parity._nchw(y),  # pylint: disable=protected-access
             spec=np.array(json.dumps(spec)))


@pytest.fixture(scope="module")
def export_diffs(tmp_path_factory):
  folder = tmp_path_factory.mktemp("live_export")
  _export(folder)
  out = _run_reference(_CHECK, folder)
  found = re.findall(r"export (\S+): strict load ok, max \|torch - jax\| = (\S+)", out)
  return {name: float(diff) for name, diff in found}


@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_export_loads_strictly_and_matches(export_diffs, name):
  assert name in export_diffs, f"{name}: no result from the reference"
  assert export_diffs[name] <= TOL, f"{name}: max |torch - jax| {export_diffs[name]:.3g} > {TOL}"


_REALESRGANER = """
import sys
import numpy as np
import torch
from realesrgan import RealESRGANer
from realesrgan.archs.srvgg_arch import SRVGGNetCompact
net = SRVGGNetCompact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=4,
                      act_type="prelu")
upsampler = RealESRGANer(scale=4, model_path=sys.argv[1], model=net, tile=0, pre_pad=0,
                         half=False, device=torch.device("cpu"))
grey = np.load(sys.argv[2])
out, mode = upsampler.enhance(grey)
assert mode == "L", mode
np.save(sys.argv[3], out)
"""


def test_three_channel_model_on_grey_matches_realesrganer(tmp_path):
  """A grey radiograph through an RGB network, as RealESRGANer does it: each
  output channel clamped to [0, 1], then cv2's BGR2GRAY luma on the RGB."""
  import jaxsr  # pylint: disable=import-outside-toplevel
  arch = dict(num_feat=8, num_conv=2, act_type="prelu")
  module = weights.build("srvgg", 4, 3, arch)
  rng = np.random.default_rng(11)
  variables = _random_variables(module, 3, rng)
  weights.save_pth(tmp_path / "rgb.pth", variables["params"])
  grey = (rng.random((24, 28)) * 255).astype(np.uint8)
  np.save(tmp_path / "grey.npy", grey)
  _run_reference(_REALESRGANER, tmp_path / "rgb.pth", tmp_path / "grey.npy", tmp_path / "ref.npy")
  reference = np.load(tmp_path / "ref.npy")
  model = jaxsr.load_model(tmp_path / "rgb.pth")
  rgb = np.asarray(module.apply(variables, np.repeat(grey[None, ..., None] / 255.0, 3, -1)))
  assert (rgb < 0).mean() > 0.05 and (rgb > 1).mean() > 0.05  # The channels overshoot.
  ours = np.round(model.upscale(grey / np.float32(255), bits=8, tile=0) * 255)
  assert reference.shape == ours.shape == (96, 112)
  assert np.abs(ours - reference.astype(np.float64)).max() <= 1  # Rounding of the last level.
  # The rule this replaced (channel mean, then clip) is far off wherever channels overshoot.
  old = np.round(np.clip(rgb[0].mean(-1), 0, 1) * 255)
  assert np.abs(old - reference).max() > 10
