r"""Exports a generator as weight files for jaxsr and PyTorch and as a serialised JAX function.

  jaxsr export --weights=NAME|WORKDIR|FILE.safetensors|FILE.pth --output=DIR \
      [--platforms=cpu,cuda] [--overwrite] [--arch=... --scale=... --num_channels=...]

DIR gets (and is created if missing):

  model.safetensors  PyTorch-named tensors plus the metadata every jaxsr
                     command reads (``weights.load_generator``);
  config.json        architecture, scale, channels, constructor kwargs, and
                     the input-size multiple of the exported function;
  model.pth          {'params_ema': state_dict}, as the official ESRGAN /
                     Real-ESRGAN releases: BasicSR's and Real-ESRGAN's
                     networks load it with ``load_state_dict(strict=True)``;
  model.jax_export   the forward pass serialised with ``jax.export``
                     (StableHLO, weights inside): NHWC float32 in [0, 1] ->
                     the raw, unclipped upscaled image, with symbolic batch,
                     height and width, runnable without jaxsr or flax;
  README.md          how to load each of them.

The serialised function needs no Python model code, so it can run in a
service pinned to another jax version (jax.export promises that newer jax
releases load it for at least six months after it was written). RRDBNet x2
and x1 pixel-unshuffle their input: their function's height and width are
declared as multiples of 2 and 4 (shapes ``2*h``/``4*h``), and a call with
other sizes fails with a shape error; pad first
(``jaxsr.inference.tiling.upscale`` does, with ``multiple``). The function is lowered for --platforms (default cpu and
cuda), and ``.call`` runs it on the default device.

Existing files in DIR are never replaced without --overwrite. Bad arguments or
weights exit with status 2 and a one-line message.
"""
import argparse
import json
import pathlib
import sys

import jax
from jax import export
import jax.numpy as jnp

from jaxsr import cli, convert, errors, huge_pages, weights
from jaxsr.io import files, torch_checkpoint

FILES = ("model.safetensors", "config.json", "model.pth", "model.jax_export", "README.md")
PTH_KEY = "params_ema"  # The key of the official releases' .pth files.
DEFAULT_PLATFORMS = ("cpu", "cuda")
KNOWN_PLATFORMS = ("cpu", "cuda", "rocm", "tpu")


class ExportError(errors.UserError):
  """An export that cannot be done; the message is one line."""


def export_function(module, variables: dict, num_channels: int, multiple: int = 1,
                    platforms=DEFAULT_PLATFORMS):
  """``jax.export.Exported`` of ``module.apply(variables, x)`` with symbolic b, h, w.

  The weights are closed over, so they travel inside the StableHLO as
  constants and the function takes the image only.
  """
  factor = f"{multiple}*" if multiple > 1 else ""
  shape = export.symbolic_shape(f"b, {factor}h, {factor}w, {int(num_channels)}")
  variables = jax.tree.map(jnp.asarray, variables)

  def forward(x):
    return module.apply(variables, x, train=False)

  return export.export(jax.jit(forward), platforms=tuple(platforms))(
      jax.ShapeDtypeStruct(shape, jnp.float32))


def serialize(exported) -> bytes:
  try:
    return bytes(exported.serialize())
  except ImportError as e:  # jax needs the optional 'flatbuffers' package for this.
    raise ExportError(f"cannot serialise the JAX function: {e}") from None


def config_dict(info: dict, multiple: int, platforms) -> dict:
  return dict(arch=info["arch"], scale=int(info["scale"]), num_channels=int(info["num_channels"]),
              arch_kwargs=dict(info["arch_kwargs"]), input_multiple=multiple,
              source=str(info.get("source", "")), step=info.get("step"),
              pth_key=PTH_KEY, jax_export=dict(platforms=list(platforms), jax=jax.__version__,
                                                input="NHWC float32 in [0, 1]"))


def _torch_constructor(module, config: dict) -> str | None:
  """The PyTorch class that loads model.pth strictly, with its constructor kwargs."""
  torch_class = getattr(module, "TORCH_CLASS", None)
  if torch_class is None:
    return None  # SRResNet (with BatchNorm) has no BasicSR class.
  path, scale_kwarg = torch_class
  package, name = path.rsplit(".", 1)
  c = config["num_channels"]
  kwargs = dict(num_in_ch=c, num_out_ch=c, **{scale_kwarg: config["scale"]},
                **config["arch_kwargs"])
  args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
  return f"from {package} import {name}\nnet = {name}({args})"


def readme_text(config: dict, torch_net: str | None = None) -> str:
  c, s, m = config["num_channels"], config["scale"], config["input_multiple"]
  side = 64 * m if m > 1 else 60
  constraint = (f"Height and width must be multiples of {m} (RRDBNet x{s} pixel-unshuffles "
                "its input); pad before calling.\n\n" if m > 1 else "")
  torch_part = (
      "```python\nimport torch\n" + torch_net + "\n"
      f"state = torch.load('model.pth', map_location='cpu', weights_only=True)['{PTH_KEY}']\n"
      "net.load_state_dict(state, strict=True)\n"
      f"y = net.eval()(torch.rand(1, {c}, {side}, {side}))  # NCHW\n```\n"
      "Real-ESRGAN's `RealESRGANer(scale=..., model_path='model.pth', model=net, ...)` "
      f"reads the same file (it prefers '{PTH_KEY}').\n"
      if torch_net else
      f"The file holds {{'{PTH_KEY}': state_dict}} with BasicSR-style names; BasicSR has no "
      f"class for `{config['arch']}`.\n")
  return f"""# {config['arch']} x{s}, {c} channel(s)

Exported by `python -m jaxsr.export` from `{config['source']}`.
Constructor kwargs: `{json.dumps(config['arch_kwargs'], sort_keys=True)}`. Images are
NHWC (PyTorch: NCHW) float32 in [0, 1]; outputs are not clipped.

## `model.jax_export`: the forward pass as StableHLO (jax only, no jaxsr)

```python
import jax, numpy as np
fn = jax.export.deserialize(open('model.jax_export', 'rb').read())
x = np.random.rand(2, {side}, {side}, {c}).astype(np.float32)   # any batch, height, width
y = fn.call(x)                                       # (2, {side * s}, {side * s}, {c})
```
{constraint}Lowered for: {', '.join(config['jax_export']['platforms'])} (jax {config['jax_export']['jax']}).

## `model.safetensors` + `config.json`: jaxsr

```python
from jaxsr import weights
module, variables, info = weights.load_generator('model.safetensors')
y = module.apply(variables, x)
```
or `python -m jaxsr.upscale --weights=model.safetensors --input=... --output=...`.
The tensors carry PyTorch names and layout, so `safetensors.torch.load_file`
gives the same state dict as `model.pth`.

## `model.pth`: PyTorch (BasicSR / Real-ESRGAN)

{torch_part}"""


def _write_bytes(path: pathlib.Path, data: bytes):
  """Writes through a temporary file (never half a file), with the umask's permissions."""
  files.write_atomically(path, lambda tmp: pathlib.Path(tmp).write_bytes(data),
                         suffix=path.suffix or ".tmp")


def plan(output, sources, overwrite: bool) -> dict[str, pathlib.Path]:
  """The output paths, after checking none is an input and none would be clobbered."""
  output = pathlib.Path(output).expanduser()
  if output.exists() and not output.is_dir():
    raise ExportError(f"{output}: exists and is not a folder")
  paths = {name: output / name for name in FILES}
  inputs = {pathlib.Path(s).expanduser().resolve() for s in sources}
  for path in paths.values():
    if path.resolve() in inputs:
      raise ExportError(f"{path}: refusing to overwrite the input weights")
  existing = [str(p) for p in paths.values() if p.exists()]
  if existing and not overwrite:
    raise ExportError(f"{existing[0]} exists ({len(existing)} of the outputs do); "
                      "pass --overwrite to replace them")
  return paths


def export_all(source, output, *, overwrite=False, platforms=DEFAULT_PLATFORMS, arch=None,
               scale=None, num_channels=None, arch_kwargs=None) -> dict[str, pathlib.Path]:
  """Writes every export of the generator at ``source`` into ``output``."""
  paths = plan(output, [source], overwrite)
  module, variables, info = weights.load_generator(source, arch, scale, num_channels, arch_kwargs)
  multiple = module.input_multiple
  config = config_dict(info, multiple, platforms)
  # Lower first: it is the step that can fail, and it should fail before anything is written.
  exported = serialize(export_function(module, variables, info["num_channels"], multiple, platforms))
  paths["model.safetensors"].parent.mkdir(parents=True, exist_ok=True)
  weights.save_safetensors(paths["model.safetensors"], variables["params"],
                           variables.get("batch_stats"), info["arch"], info["scale"],
                           info["num_channels"], info["arch_kwargs"])
  torch_checkpoint.save_state_dict(weights.to_state_dict(variables), paths["model.pth"],
                                   wrap_key=PTH_KEY)
  _write_bytes(paths["model.jax_export"], exported)
  _write_bytes(paths["config.json"], (json.dumps(config, indent=2) + "\n").encode())
  _write_bytes(paths["README.md"], readme_text(config, _torch_constructor(module, config)).encode())
  return paths


def parse_args(argv):
  parser = argparse.ArgumentParser(prog="jaxsr export", description=__doc__,
                                   formatter_class=cli.HelpFormatter)
  # SUPPRESS: a required flag has no default for the help to show.
  parser.add_argument("--weights", required=True, default=argparse.SUPPRESS,
                      help="shipped model name, training workdir, jaxsr .safetensors or "
                      "official .pth")
  parser.add_argument("--output", required=True, default=argparse.SUPPRESS,
                      help="folder to write the exports into")
  parser.add_argument("--platforms", default=",".join(DEFAULT_PLATFORMS),
                      help="comma-separated jax.export platforms (cpu, cuda, rocm, tpu)")
  parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
  convert.add_arch_flags(parser)
  return parser, parser.parse_args(argv)


def main(argv=None) -> int:
  """``jaxsr export``: exit 0, or 2 with one line for bad arguments or weights."""
  parser, args = parse_args(argv)
  platforms = tuple(p.strip().lower() for p in args.platforms.split(",") if p.strip())
  try:
    unknown = [p for p in platforms if p not in KNOWN_PLATFORMS]
    if unknown or not platforms:
      raise ExportError(f"--platforms: expected some of {', '.join(KNOWN_PLATFORMS)}, "
                        f"got '{args.platforms}'")
    paths = export_all(args.weights, args.output, overwrite=args.overwrite, platforms=platforms,
                       arch=args.arch, scale=args.scale, num_channels=args.num_channels,
                       arch_kwargs=args.arch_kwargs)
  except KeyboardInterrupt:
    errors.exit_interrupted()
  except (ExportError, weights.WeightsError, OSError) as e:
    convert.fail(parser, e)
  for path in paths.values():
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")
  return 0


if __name__ == "__main__":
  huge_pages.restart_with_huge_pages()  # Before jax allocates anything.
  errors.install_interrupt_watcher()
  sys.exit(main())
