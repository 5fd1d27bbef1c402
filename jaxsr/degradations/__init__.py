"""How LR inputs are made from HR images: one object per degradation, found by name.

A config's ``degradation.name`` picks one; the trainer, the data pipeline
and evaluation ask it for what they need (its config checks, host-side
transform, device-side function and state, whole-image LR) and never test
the name themselves.
"""
from jaxsr import errors
from jaxsr.degradations.bicubic import Bicubic
from jaxsr.degradations.realesrgan import RealESRGAN

REGISTRY = {d.name: d for d in (Bicubic(), RealESRGAN())}
NAMES = tuple(REGISTRY)


def get(name: str):
  """The degradation called ``name``; a ConfigError naming the choices otherwise."""
  if name not in REGISTRY:
    raise errors.ConfigError(f"degradation.name='{name}': use one of {', '.join(REGISTRY)}")
  return REGISTRY[name]


def register(degradation) -> None:
  """Adds a degradation object (with the methods of `Bicubic`) under its ``name``."""
  REGISTRY[degradation.name] = degradation
