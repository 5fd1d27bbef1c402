"""VGG19 feature extractor for perceptual losses.

The layer names are torchvision's ``vgg19().features`` read as conv1_1 ...
conv5_4 (as BasicSR names them). Weights come from torchvision's ImageNet
state dict (``vgg19-dcbb9e9d.pth``), read without PyTorch.
"""
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxsr.io import torch_checkpoint

# (block, number of convs, width) of VGG19's convolutional part.
_VGG19_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TORCHVISION_VGG19_FILE = "vgg19-dcbb9e9d.pth"
TORCHVISION_VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"


def layer_names() -> list[str]:
  return [f"conv{b}_{i}" for b, n, _ in _VGG19_BLOCKS for i in range(1, n + 1)]


def _torchvision_indices() -> dict[str, int]:
  """Index of each conv in torchvision's ``features`` Sequential."""
  index, out = 0, {}
  for block, n, _ in _VGG19_BLOCKS:
    for i in range(1, n + 1):
      out[f"conv{block}_{i}"] = index
      index += 2  # conv, relu
    index += 1  # max-pool
  return out


class VGG19Features(nn.Module):
  """Returns the requested VGG19 feature maps, before or after their ReLU.

  Input is NHWC in [0, 1]; a single grey channel is repeated to RGB (the
  usual answer for grey images) and ImageNet normalisation is applied.
  """
  layers: tuple[str, ...]
  before_activation: bool = True

  @nn.compact
  def __call__(self, x):
    if x.shape[-1] == 1:
      x = jnp.repeat(x, 3, axis=-1)
    x = (x - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)
    wanted = set(self.layers)
    last = max(layer_names().index(name) for name in self.layers)
    feats = {}
    for block, n, width in _VGG19_BLOCKS:
      for i in range(1, n + 1):
        name = f"conv{block}_{i}"
        x = nn.Conv(width, (3, 3), padding=((1, 1), (1, 1)), name=name)(x)
        if name in wanted and self.before_activation:
          feats[name] = x
        x = nn.relu(x)
        if name in wanted and not self.before_activation:
          feats[name] = x
        if layer_names().index(name) == last:
          return feats
      x = nn.max_pool(x, (2, 2), strides=(2, 2))
    return feats


def params_from_torchvision(state_dict: dict[str, np.ndarray]) -> dict:
  """Converts torchvision ``vgg19`` weights (OIHW) into flax params (HWIO)."""
  params = {}
  for name, idx in _torchvision_indices().items():
    w, b = state_dict.get(f"features.{idx}.weight"), state_dict.get(f"features.{idx}.bias")
    if w is None or b is None:
      raise ValueError(f"not a torchvision VGG19 state dict: features.{idx}.weight/bias missing")
    params[name] = {"kernel": np.ascontiguousarray(np.transpose(w, (2, 3, 1, 0)), np.float32),
                    "bias": np.asarray(b, np.float32)}
  return params


class VGGWeightsError(FileNotFoundError):
  """Raised when the ImageNet VGG19 weights cannot be found or read."""


def load_vgg19_params(path: str) -> dict:
  """Loads VGG19 params from a torchvision ``.pth`` (or a ``.npz`` of the same keys)."""
  p = pathlib.Path(path).expanduser()
  if not p.is_file():
    raise VGGWeightsError(
        f"{p}: VGG19 weights not found; the perceptual loss needs torchvision's ImageNet "
        f"VGG19 ({TORCHVISION_VGG19_FILE}, from {TORCHVISION_VGG19_URL}); "
        f"set --config.loss.vgg_weights=/path/to/{TORCHVISION_VGG19_FILE}")
  try:
    if p.suffix == ".npz":
      with np.load(p) as f:
        state = {k: f[k] for k in f.files}
    else:
      state = torch_checkpoint.load_state_dict(p)
    return params_from_torchvision(state)
  except VGGWeightsError:
    raise
  except Exception as e:  # A damaged or wrong file must not end in a traceback.
    raise VGGWeightsError(f"{p}: cannot read VGG19 weights ({e})") from None


def random_params(layers: tuple[str, ...], seed: int = 0) -> dict:
  """Random VGG19 params: only for tests and tiny configs, never for real training."""
  module = VGG19Features(layers=tuple(layer_names()))
  return jax.jit(module.init)(jax.random.PRNGKey(seed), jnp.zeros((1, 32, 32, 3)))["params"]
