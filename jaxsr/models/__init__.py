"""Network registry: configs name architectures, this module builds them."""
import ml_collections

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


def register_generator(name, cls):
  GENERATORS[name] = cls


def register_discriminator(name, cls):
  DISCRIMINATORS[name] = cls


def _kwargs(cfg: ml_collections.ConfigDict) -> dict:
  return {k: v for k, v in cfg.to_dict().items() if k != "name"}


def build_generator(cfg: ml_collections.ConfigDict, num_channels: int, scale: int):
  if cfg.name not in GENERATORS:
    raise ValueError(f"unknown generator '{cfg.name}'; choose one of {sorted(GENERATORS)}")
  return GENERATORS[cfg.name](num_in_ch=num_channels, num_out_ch=num_channels, upscale=scale,
                              **_kwargs(cfg))


def build_discriminator(cfg: ml_collections.ConfigDict, num_channels: int, patch_size: int):
  if not cfg.name:
    return None
  if cfg.name not in DISCRIMINATORS:
    raise ValueError(
        f"unknown discriminator '{cfg.name}'; choose one of {sorted(DISCRIMINATORS)}")
  kwargs = _kwargs(cfg)
  if cfg.name == "vgg_style":
    kwargs["input_size"] = patch_size
  return DISCRIMINATORS[cfg.name](num_in_ch=num_channels, **kwargs)
