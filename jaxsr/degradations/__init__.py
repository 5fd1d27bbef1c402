"""How LR inputs are made from HR images: one object per degradation, found by name.

A config's ``degradation.name`` picks one; the trainer, the data pipeline
and evaluation ask it for what they need (its config checks, host-side
transform, device-side function and state, whole-image LR) and never test
the name themselves.
"""
import importlib

from jaxsr import errors

# Built-in degradations by name -> (module, class), imported on first use: the
# Real-ESRGAN one brings jax kernels and scipy, which inference (bicubic
# baseline only) never needs at start-up.
_BUILTIN = {"bicubic": ("jaxsr.degradations.bicubic", "Bicubic"),
            "realesrgan": ("jaxsr.degradations.realesrgan", "RealESRGAN")}
REGISTRY = {}
NAMES = tuple(_BUILTIN)


def get(name: str):
  """The degradation called ``name``; a ConfigError naming the choices otherwise."""
  if name not in REGISTRY and name in _BUILTIN:
    module, cls = _BUILTIN[name]
    REGISTRY[name] = getattr(importlib.import_module(module), cls)()
  if name not in REGISTRY:
    names = dict.fromkeys([*_BUILTIN, *REGISTRY])
    raise errors.ConfigError(f"degradation.name='{name}': use one of {', '.join(names)}")
  return REGISTRY[name]


def register(degradation) -> None:
  """Adds a degradation object (with the methods of `Bicubic`) under its ``name``."""
  REGISTRY[degradation.name] = degradation
