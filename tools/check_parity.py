"""Full-size parity and export checks against BasicSR / Real-ESRGAN (not CI).

  REF=~/.cache/jaxsr/ref-venv/bin/python
  $REF tools/make_parity_fixtures.py --full_size --out=/tmp/parity_full
  python tools/check_parity.py --dir=/tmp/parity_full          # import + run
  python tools/check_parity.py --export_dir=/tmp/parity_export # our weights out
  $REF tools/make_parity_fixtures.py --check_exports=/tmp/parity_export

The import side reuses tests/test_parity.py's comparison; the export side
writes .pth files from randomly initialised flax nets with our outputs, which
the reference then loads with strict=True and runs.
"""
import argparse
import json
import pathlib
import sys

import jax
import numpy as np

from jaxsr import weights

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
import test_parity  # pylint: disable=wrong-import-position

EXPORTS = {
    "RealESRGAN_x4plus": ("rrdbnet", 4, 3, dict(num_feat=64, num_block=23, num_grow_ch=32), 32),
    "RealESRGAN_x2plus": ("rrdbnet", 2, 3, dict(num_feat=64, num_block=23, num_grow_ch=32), 32),
    "RRDBNet_x1_grey": ("rrdbnet", 1, 1, dict(num_feat=64, num_block=23, num_grow_ch=32), 32),
    "RealESRGAN_x4plus_anime_6B": ("rrdbnet", 4, 3, dict(num_feat=64, num_block=6,
                                                         num_grow_ch=32), 32),
    "realesr-general-x4v3": ("srvgg", 4, 3, dict(num_feat=64, num_conv=32, act_type="prelu"), 32),
    "MSRResNet_x4": ("msrresnet", 4, 3, dict(num_feat=64, num_block=16), 32),
    "VGGStyleDiscriminator_128": ("vgg_style", None, 3, dict(num_feat=64, input_size=128), 128),
    "UNetDiscriminatorSN": ("unet_disc", None, 3, dict(num_feat=64), 64),
}


def check_dir(folder):
  for npz in sorted(pathlib.Path(folder).glob("*.npz")):
    if npz.stem == "losses":
      continue
    diffs = test_parity.compare(folder, npz.stem)
    scale = float(np.abs(np.load(npz)["y"]).max())
    worst = max(diffs, key=diffs.get)
    print(f"import {npz.stem}: max abs diff {diffs[worst]:.3g} ({worst}; |y| max {scale:.3g})")


def export(folder):
  folder = pathlib.Path(folder)
  folder.mkdir(parents=True, exist_ok=True)
  for i, (name, (arch, scale, c, kwargs, side)) in enumerate(EXPORTS.items()):
    module = weights.build(arch, scale, c, kwargs)
    x = jax.random.uniform(jax.random.key(i), (1, side, side, c))
    variables = module.init(jax.random.key(100 + i), x)
    if arch == "unet_disc":  # Converge u, v as training would; fresh ones give sigma ~ 0.
      step = jax.jit(lambda v, x, m=module: m.apply(v, x, train=True, mutable=["batch_stats"])[1])
      for _ in range(30):
        variables = {**variables, **step(variables, x)}
    y = jax.jit(lambda v, x, m=module: m.apply(v, x))(variables, x)
    weights.save_pth(folder / f"{name}.pth", variables["params"], variables.get("batch_stats"))
    spec = dict(arch=arch, scale=scale, num_channels=c, arch_kwargs=kwargs)
    np.savez(folder / f"{name}.npz", x=np.asarray(x).transpose(0, 3, 1, 2),
             y=test_parity._nchw(y), spec=np.array(json.dumps(spec)))  # pylint: disable=protected-access
    print(f"wrote {name}.pth")


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--dir", help="fixtures written by make_parity_fixtures.py")
  parser.add_argument("--export_dir", help="where to write our exported weights")
  args = parser.parse_args()
  if args.dir:
    check_dir(args.dir)
  if args.export_dir:
    export(args.export_dir)


if __name__ == "__main__":
  main()
