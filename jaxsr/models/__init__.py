"""Network registry: configs name architectures, this module builds them.

Generators describe themselves (``scale``, ``num_in_ch``/``num_out_ch`` and
``input_multiple``, the side multiple a pixel-unshuffling input needs), so
callers never look at class names. Execution options that change speed but
not results (``conv_algorithm``, ``pack_batch``) are not part of an
architecture: :func:`execution_kwargs` decides them from the devices the
network will run on, and checkpoints and weight files never carry them.
"""
import dataclasses

import ml_collections

from jaxsr import errors
from jaxsr.models.discriminators import VGGStyleDiscriminator
from jaxsr.models.rrdbnet import RRDBNet
from jaxsr.models.srresnet import MSRResNet, SRResNet
from jaxsr.models.srvgg import SRVGGNetCompact
from jaxsr.models.unet_discriminator import UNetDiscriminatorSN

GENERATORS = {
    "srresnet": SRResNet,
    "msrresnet": MSRResNet,
    "rrdbnet": RRDBNet,
    "srvgg": SRVGGNetCompact,
}
DISCRIMINATORS = {
    "vgg_style": VGGStyleDiscriminator,
    "unet_disc": UNetDiscriminatorSN,
}
# Config keys of the model section that choose how, not what, it computes.
EXECUTION_KEYS = ("conv_algorithm", "pack_batch")
CONV_ALGORITHM_CHOICES = ("auto", "direct", "winograd")
PACK_BATCH_CHOICES = ("auto", "true", "false")


def register_generator(name, cls):
  GENERATORS[name] = cls


def register_discriminator(name, cls):
  DISCRIMINATORS[name] = cls


def _fields(cls) -> set:
  return {f.name for f in dataclasses.fields(cls)}


def single_cpu(devices) -> bool:
  """Whether ``devices`` (a mesh's, or the one inference runs on) is one CPU device."""
  devices = list(devices)
  return len(devices) == 1 and devices[0].platform == "cpu"


def execution_kwargs(cls, devices, conv_algorithm: str = "auto",
                     pack_batch: str = "auto") -> dict:
  """Constructor kwargs for ``cls``'s CPU speed-ups on ``devices``.

  ``auto`` turns both on where the network runs on one CPU device, where
  XLA's convolutions are at their slowest relative to the arithmetic and no
  batch sharding would be lost by packing; accelerators and batches split
  over several devices keep plain convolutions. Options a class lacks are
  refused unless left at ``auto``.
  """
  conv_algorithm, pack_batch = str(conv_algorithm).lower(), str(pack_batch).lower()
  if conv_algorithm not in CONV_ALGORITHM_CHOICES:
    raise errors.ConfigError(f"model.conv_algorithm='{conv_algorithm}': use one of "
                             f"{', '.join(CONV_ALGORITHM_CHOICES)}")
  if pack_batch not in PACK_BATCH_CHOICES:
    raise errors.ConfigError(f"model.pack_batch='{pack_batch}': use one of "
                             f"{', '.join(PACK_BATCH_CHOICES)}")
  on_cpu = single_cpu(devices)
  fields, out = _fields(cls), {}
  for key, value, auto in (("conv_algorithm", conv_algorithm, "auto" if on_cpu else "direct"),
                           ("pack_batch", pack_batch, on_cpu)):
    if key not in fields:
      if value != "auto":
        raise errors.ConfigError(f"model.{key}='{value}' is not an option of {cls.__name__}")
      continue
    if value == "auto":
      out[key] = auto
    elif key == "pack_batch":
      out[key] = value == "true"
    else:
      out[key] = value
  return out


def split_model_kwargs(model: dict) -> tuple[str, dict, dict]:
  """(name, architecture kwargs, execution options) of a model config section."""
  model = dict(model)
  name = model.pop("name")
  execution = {k: model.pop(k) for k in EXECUTION_KEYS if k in model}
  return name, model, execution


def generator_class(name: str):
  if name not in GENERATORS:
    raise errors.ConfigError(f"unknown generator '{name}'; choose one of {sorted(GENERATORS)}")
  return GENERATORS[name]


def build_generator(cfg, num_channels: int, scale: int, devices):
  """The generator a config's ``model`` section names, for running on ``devices``."""
  values = cfg.to_dict() if isinstance(cfg, ml_collections.ConfigDict) else dict(cfg)
  name, arch, execution = split_model_kwargs(values)
  cls = generator_class(name)
  unknown = set(arch) - _fields(cls)
  if unknown:
    raise errors.ConfigError(f"model.{sorted(unknown)[0]}: not a parameter of {cls.__name__} "
                             f"(model.name='{name}')")
  return cls(num_in_ch=num_channels, num_out_ch=num_channels, upscale=scale, **arch,
             **execution_kwargs(cls, devices, **execution))


def build_discriminator(cfg: ml_collections.ConfigDict, num_channels: int, patch_size: int):
  if not cfg.name:
    return None
  if cfg.name not in DISCRIMINATORS:
    raise errors.ConfigError(
        f"unknown discriminator '{cfg.name}'; choose one of {sorted(DISCRIMINATORS)}")
  kwargs = {k: v for k, v in cfg.to_dict().items() if k != "name"}
  cls = DISCRIMINATORS[cfg.name]
  if "input_size" in _fields(cls):
    kwargs["input_size"] = patch_size  # VGG-style: one fixed patch side.
  return cls(num_in_ch=num_channels, **kwargs)
