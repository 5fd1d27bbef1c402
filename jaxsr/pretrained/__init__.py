"""Models trained by us and shipped inside the package: radiographs, CT, MR.

Each ``NAME.safetensors`` here carries its architecture, scale and channel
count in its metadata; ``NAME.md`` is its model card (data, recipe, training
time, evaluation). Every command that takes ``--weights`` also accepts these
names, and ``jaxsr.upscale``/``jaxsr.evaluate`` use them when ``--weights``
is left out, choosing by the input's DICOM Modality (a NIfTI volume's by
``--modality`` or the CT guess). How they were trained:
``tools/train_xray_models.sh`` and ``tools/train_volume_models.sh``.
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
    "ct_x2": "x2 CT, PSNR-oriented (L1), bicubic-downscaled slices in HU; one patient",
    "mr_x2": "x2 MR, PSNR-oriented (L1), bicubic-downscaled slices; mostly one brain template",
}
# What a command uses when --weights is not given, by scale.
DEFAULT = {4: "xray_x4", 2: "xray_x2"}
# DICOM Modalities the radiograph models are for.
RADIOGRAPH_MODALITIES = ("CR", "DX", "MG", "RG", "DR", "PX", "IO")
# Shipped models for other modalities: modality -> {scale: name}. Inputs of a modality
# without one are upscaled by the radiograph model (grey, or on luminance), with a notice.
BY_MODALITY: dict[str, dict[int, str]] = {"CT": {2: "ct_x2"}, "MR": {2: "mr_x2"}}
# What jaxsr.evaluate compares on radiographs when --weights is not given, by scale
# (a modality with models of its own: its model at that scale).
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


def default_for(modality: str, scale: int | None) -> tuple[str, str]:
  """(name, notice) of the shipped model for an input of ``modality`` at ``scale``.

  ``scale`` None means the modality's own model (the lowest scale shipped for
  it), else the radiograph default ×4. The notice is '' when the model was
  made for that modality, else it says what is used instead.
  """
  family = BY_MODALITY.get(modality, {})
  if family and (scale is None or scale in family):
    return family[min(family) if scale is None else scale], ""
  name = default_name(4 if scale is None else scale)
  if not modality or modality in RADIOGRAPH_MODALITIES:
    return name, ""  # No tag (PNG, TIFF, JPEG): taken for a radiograph, jaxsr's first use.
  what = f"{modality} "
  colour = " (colour: on its luminance)" if modality in ("US", "XC", "ES", "OT", "SC") else ""
  return name, (f"no shipped {what}model" + (f" at x{scale}" if family else "") +
                f"; upscaled by the radiograph model {name}{colour}")


def family(name: str) -> str:
  """'radiograph', 'CT' or 'MR': what a shipped model is for."""
  for modality, by_scale in BY_MODALITY.items():
    if name in by_scale.values():
      return modality
  return "radiograph"


def evaluate_for(modality: str, scale: int) -> tuple[tuple[str, ...], str]:
  """(names, notice) of the shipped models ``jaxsr evaluate`` compares on an input of
  ``modality`` at ``scale``: its own model, else the radiograph models (notice as in
  :func:`default_for`)."""
  name, notice = default_for(modality, scale)
  if name in BY_MODALITY.get(modality, {}).values():
    return (name,), notice
  if scale not in EVALUATE:
    raise PretrainedError(f"no shipped model upscales x{scale}; pass --weights")
  return EVALUATE[scale], notice


def shipped_scales() -> set[int]:
  """Every scale some shipped model upscales by."""
  return set(EVALUATE).union(*BY_MODALITY.values())


def default_scale(modalities) -> int:
  """The scale commands use without --weights and --scale for inputs of ``modalities``:
  the lowest scale of their own models when one has any, else the radiograph ×4."""
  own = [min(BY_MODALITY[m]) for m in modalities if BY_MODALITY.get(m)]
  return min(own) if own else 4


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
