"""Radiograph models trained by us and shipped inside the package.

Each ``NAME.safetensors`` here carries its architecture, scale and channel
count in its metadata; ``NAME.md`` is its model card (data, recipe, training
time, evaluation). Every command that takes ``--weights`` also accepts these
names, and ``jaxsr.upscale``/``jaxsr.evaluate`` use them when ``--weights``
is left out. How they were trained: ``tools/train_xray_models.sh``.
"""
import difflib
import pathlib

from jaxsr import errors

FOLDER = pathlib.Path(__file__).resolve().parent

# name -> one-line description.
MODELS = {
    "xray_x4": "x4, PSNR-oriented (L1), bicubic-downscaled inputs",
    "xray_x2": "x2, PSNR-oriented (L1), bicubic-downscaled inputs",
    "xray_x4_gan": "x4, Real-ESRGAN-style (degradations + GAN), blurred/noisy/JPEG inputs",
}
# What a command uses when --weights is not given, by scale.
DEFAULT = {4: "xray_x4", 2: "xray_x2"}
# What jaxsr.evaluate compares when --weights is not given, by scale.
EVALUATE = {4: ("xray_x4", "xray_x4_gan"), 2: ("xray_x2",)}


class PretrainedError(errors.UserError):
  """An unknown shipped-model name or scale, or a package without its weights."""


def weights_path(name: str) -> pathlib.Path:
  if name not in MODELS:
    raise PretrainedError(f"'{name}' is not a shipped model; choose one of {sorted(MODELS)}")
  path = FOLDER / f"{name}.safetensors"
  if not path.is_file():
    raise PretrainedError(f"{path}: the shipped model '{name}' is missing from this "
                          "installation; reinstall jaxsr")
  return path


def card_path(name: str) -> pathlib.Path:
  weights_path(name)
  return FOLDER / f"{name}.md"


def default_name(scale: int) -> str:
  if scale not in DEFAULT:
    raise PretrainedError(f"no shipped model upscales x{scale} (shipped: "
                          f"{', '.join(f'x{s} {n}' for s, n in sorted(DEFAULT.items()))}); "
                          "pass --weights")
  return DEFAULT[scale]


def resolve(source) -> pathlib.Path:
  """A path as given, or the shipped file when ``source`` names a shipped model.

  An existing file or folder of that name wins, so a workdir called
  ``xray_x2`` in the current folder still means that workdir.
  """
  path = pathlib.Path(source).expanduser()
  if path.exists():
    return path
  if str(source) in MODELS:
    return weights_path(str(source))
  close = difflib.get_close_matches(str(source), list(MODELS), n=1, cutoff=0.75)
  if close:
    raise PretrainedError(f"{source}: no such weights file, training workdir or shipped model; "
                          f"did you mean {close[0]}?")
  return path
