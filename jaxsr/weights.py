"""Network weights in and out: PyTorch state dicts, .safetensors, workdirs.

Published SR weights (ESRGAN, Real-ESRGAN, BasicSR) are PyTorch state dicts,
and users want our results back in their PyTorch tools. Our flax modules use
the reference's parameter names (``body.N`` written ``body_N``), so one name
rule plus a layout rule converts every architecture:

* conv kernels HWIO <-> OIHW, dense kernels (in, out) <-> (out, in);
* BatchNorm ``scale``/``mean``/``var`` <-> ``weight``/``running_mean``/
  ``running_var`` (+ ``num_batches_tracked``, written as 0);
* a spectral-norm conv's ``kernel`` <-> ``weight_orig``, its ``weight_u``/
  ``weight_v`` (kept in 'batch_stats') keep their names.

The conversion walks the flax variable tree of a module built for the
weights, so a missing, extra or misshapen tensor is reported by name.

Our .safetensors files hold the same PyTorch-named, PyTorch-laid-out tensors
(so torch users can read them too) plus metadata naming the architecture,
scale, channel count and constructor kwargs: any jaxsr command loads them
without further flags. Official .pth files carry no such metadata, so the
architecture is read off their key names and shapes.
"""
import json
import os
import pathlib
import re

import flax
import jax
import jax.numpy as jnp
import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file

from jaxsr import compile_cache, errors, models, pretrained
from jaxsr.io import files, torch_checkpoint

# Names accepted on the command line -> registry names.
ARCH_ALIASES = {"vgg_disc": "vgg_style", "esrgan": "rrdbnet", "srvggnetcompact": "srvgg"}
FORMAT_VERSION = "1"


class WeightsError(errors.UserError):
  """Weights that cannot be loaded or do not fit; the message is one line."""


def canonical_arch(arch: str | None) -> str | None:
  if arch is None:
    return None
  arch = ARCH_ALIASES.get(arch.lower(), arch.lower())
  if arch not in models.GENERATORS and arch not in models.DISCRIMINATORS:
    known = sorted(set(models.GENERATORS) | set(models.DISCRIMINATORS) | set(ARCH_ALIASES))
    raise WeightsError(f"unknown architecture '{arch}'; choose one of {known}")
  return arch


def is_generator(arch: str) -> bool:
  return arch in models.GENERATORS


def build(arch: str, scale: int | None, num_channels: int, arch_kwargs: dict | None = None):
  """The flax module for an architecture, built as the trainer builds it."""
  arch, kwargs = canonical_arch(arch), dict(arch_kwargs or {})
  if is_generator(arch):
    return models.GENERATORS[arch](num_in_ch=num_channels, num_out_ch=num_channels,
                                   upscale=scale, **kwargs)
  return models.DISCRIMINATORS[arch](num_in_ch=num_channels, **kwargs)


def _dummy_input(module, num_channels):
  side = getattr(module, "input_size", 16)  # 16: divisible by every unshuffle/stride.
  return jnp.zeros((1, side, side, num_channels), jnp.float32)


def abstract_variables(module, num_channels: int) -> dict:
  """Shapes and dtypes of the module's variables, without computing them.

  Tracing the module's init is most of a warm start-up for a deep network,
  so the shapes are kept in the compilation cache's folder
  (:func:`jaxsr.compile_cache.stored`, keyed by the module).
  """
  def trace():
    tree = jax.eval_shape(module.init, jax.random.key(0), _dummy_input(module, num_channels))
    return [[list(path), list(leaf.shape), str(leaf.dtype)]
            for path, leaf in flax.traverse_util.flatten_dict(tree).items()]

  flat = compile_cache.stored("variables", [repr(module), num_channels], trace)
  return flax.traverse_util.unflatten_dict(
      {tuple(path): jax.ShapeDtypeStruct(tuple(shape), jnp.dtype(dtype))
       for path, shape, dtype in flat})


# ----------------------------------------------------------------------------
# Flax tree <-> PyTorch state dict.

_LIST_MODULE = re.compile(r"body_(\d+)")
_PARAM_NAMES = {"bias": "bias", "scale": "weight", "weight": "weight"}
_STAT_NAMES = {"mean": "running_mean", "var": "running_var",
               "weight_u": "weight_u", "weight_v": "weight_v"}


def _module_name(path: tuple[str, ...]) -> str:
  return ".".join(f"body.{m[1]}" if (m := _LIST_MODULE.fullmatch(p)) else p for p in path)


def _torch_key(collection: str, path: tuple[str, ...], spectral: bool) -> str:
  *module, leaf = path
  if collection == "params":
    name = ("weight_orig" if spectral else "weight") if leaf == "kernel" else _PARAM_NAMES.get(leaf)
  else:
    name = _STAT_NAMES.get(leaf)
  if name is None:
    raise WeightsError(f"no PyTorch name for {collection}/{'/'.join(path)}")
  return f"{_module_name(tuple(module))}.{name}"


def _to_torch_layout(leaf: str, value: np.ndarray) -> np.ndarray:
  if leaf == "kernel" and value.ndim == 4:
    return np.transpose(value, (3, 2, 0, 1))
  if leaf == "kernel" and value.ndim == 2:
    return value.T
  return value


def _from_torch_layout(leaf: str, value: np.ndarray) -> np.ndarray:
  if leaf == "kernel" and value.ndim == 4:
    return np.transpose(value, (2, 3, 1, 0))
  if leaf == "kernel" and value.ndim == 2:
    return value.T
  return value


def _flat(variables: dict, collection: str) -> dict:
  tree = variables.get(collection) or {}
  return flax.traverse_util.flatten_dict(flax.core.unfreeze(tree))


def _spectral_modules(variables: dict) -> set:
  return {path[:-1] for path in _flat(variables, "batch_stats") if path[-1] == "weight_u"}


def to_state_dict(variables: dict) -> dict[str, np.ndarray]:
  """Flax variables -> PyTorch state dict (name -> float32 array), module by module."""
  params, stats = _flat(variables, "params"), _flat(variables, "batch_stats")
  spectral = _spectral_modules(variables)
  modules = list(dict.fromkeys(path[:-1] for path in list(params) + list(stats)))
  state = {}
  for module in modules:
    for collection, flat in (("params", params), ("batch_stats", stats)):
      for path, value in flat.items():
        if path[:-1] == module:
          key = _torch_key(collection, path, module in spectral)
          array = np.asarray(value, np.float32)
          state[key] = np.ascontiguousarray(_to_torch_layout(path[-1], array))
    if (*module, "mean") in stats:  # BatchNorm: torch also counts batches.
      state[f"{_module_name(module)}.num_batches_tracked"] = np.zeros((), np.int64)
  return state


def from_state_dict(state: dict, template: dict, what: str = "weights") -> dict:
  """PyTorch state dict -> flax variables shaped like ``template``.

  Strict like ``load_state_dict(strict=True)``: every tensor must be used
  and fit (``num_batches_tracked`` is dropped; flax does not keep it).
  """
  spectral = _spectral_modules(template)
  out, used, missing = {}, set(), []
  for collection in ("params", "batch_stats"):
    flat = {}
    for path, spec in _flat(template, collection).items():
      key = _torch_key(collection, path, path[:-1] in spectral)
      if key not in state:
        missing.append(key)
        continue
      value = _from_torch_layout(path[-1], np.asarray(state[key], np.float32))
      if value.shape != tuple(spec.shape):
        raise WeightsError(f"{what}: {key} has shape {np.shape(state[key])}, the network needs "
                           f"{tuple(_to_torch_layout(path[-1], np.empty(spec.shape)).shape)}")
      flat[path] = jnp.asarray(value)
      used.add(key)
    if flat:
      out[collection] = flax.traverse_util.unflatten_dict(flat)
  unexpected = [k for k in state if k not in used and not k.endswith(".num_batches_tracked")]
  if missing or unexpected:
    parts = []
    if missing:
      parts.append(f"missing {len(missing)} tensor(s) e.g. {missing[:3]}")
    if unexpected:
      parts.append(f"unexpected {len(unexpected)} tensor(s) e.g. {unexpected[:3]}")
    raise WeightsError(f"{what}: does not fit the network: {'; '.join(parts)}")
  return out


# ----------------------------------------------------------------------------
# Reading the architecture off an official state dict.

def _indices(state, pattern):
  return sorted({int(m[1]) for k in state if (m := re.fullmatch(pattern, k))})


def infer_arch(state: dict) -> tuple[str, int | None, int, dict]:
  """(arch, scale, num_channels, arch_kwargs) from key names and shapes.

  Assumes as many output channels as input channels, like our builders.
  Activations without parameters cannot be seen: an SRVGGNetCompact without
  PReLU weights is taken as 'relu' (pass act_type to say 'leakyrelu').
  """
  shape = lambda k: tuple(np.shape(state[k]))
  if "body.0.rdb1.conv1.weight" in state:
    nf, cin = shape("conv_first.weight")[:2]
    cout = shape("conv_last.weight")[0]
    scale = {1: 4, 4: 2, 16: 1}.get(cin // cout) if cin % cout == 0 else None
    if scale is None:
      raise WeightsError(f"RRDBNet with {cin} input and {cout} output channels fits no scale")
    return "rrdbnet", scale, cout, dict(
        num_feat=nf, num_block=len(_indices(state, r"body\.(\d+)\.rdb1\.conv1\.weight")),
        num_grow_ch=shape("body.0.rdb1.conv1.weight")[0])
  if "body.0.weight" in state and "conv_first.weight" not in state:
    convs = [i for i in _indices(state, r"body\.(\d+)\.weight") if len(shape(f"body.{i}.weight")) == 4]
    nf, cin = shape("body.0.weight")[:2]
    total = shape(f"body.{convs[-1]}.weight")[0]
    scale = int(round((total / cin) ** 0.5))
    if scale * scale * cin != total:
      raise WeightsError(f"SRVGGNetCompact's last conv has {total} channels, not C*s*s for C={cin}")
    act = "prelu" if "body.1.weight" in state else "relu"
    return "srvgg", scale, cin, dict(num_feat=nf, num_conv=len(convs) - 2, act_type=act)
  if "upconv1.weight" in state and "body.0.conv1.weight" in state:
    nf, cin = shape("conv_first.weight")[:2]
    scale = 4 if "upconv2.weight" in state else int(round((shape("upconv1.weight")[0] / nf) ** 0.5))
    arch = "srresnet" if "bn_body.weight" in state else "msrresnet"
    return arch, scale, cin, dict(num_feat=nf,
                                  num_block=len(_indices(state, r"body\.(\d+)\.conv1\.weight")))
  if "conv0_0.weight" in state and "linear1.weight" in state:
    nf, cin = shape("conv0_0.weight")[:2]
    return "vgg_style", None, cin, dict(num_feat=nf,
                                        input_size=256 if "conv5_0.weight" in state else 128)
  if "conv0.weight" in state and "conv1.weight_orig" in state:
    nf, cin = shape("conv0.weight")[:2]
    return "unet_disc", None, cin, dict(num_feat=nf)
  raise WeightsError("cannot tell the architecture from the tensor names "
                     f"(first keys: {list(state)[:3]}); pass --arch")


# ----------------------------------------------------------------------------
# Files.

def save_safetensors(path, params: dict, batch_stats: dict | None, arch: str, scale: int | None,
                     num_channels: int, arch_kwargs: dict | None = None) -> None:
  """Writes PyTorch-named tensors plus the metadata to rebuild the network."""
  arch = canonical_arch(arch)
  state = to_state_dict({"params": params, "batch_stats": batch_stats or {}})
  metadata = {"format": "pt", "jaxsr_format": FORMAT_VERSION, "arch": arch,
              "scale": "" if scale is None else str(int(scale)),
              "num_channels": str(int(num_channels)),
              "arch_kwargs": json.dumps(dict(arch_kwargs or {}), sort_keys=True)}
  files.write_atomically(path, lambda tmp: save_file(state, tmp, metadata=metadata),
                         suffix=".safetensors")


def save_pth(path, params: dict, batch_stats: dict | None = None) -> None:
  """Writes {'params': state_dict}, loadable by BasicSR and RealESRGANer strictly."""
  state = to_state_dict({"params": params, "batch_stats": batch_stats or {}})
  torch_checkpoint.save_state_dict(state, path, wrap_key="params")


def _read_safetensors(path) -> tuple[dict, dict]:
  try:
    with safe_open(os.fspath(path), framework="numpy") as f:
      metadata = f.metadata() or {}
    return load_file(os.fspath(path)), metadata
  except (SafetensorError, OSError, ValueError) as e:
    raise WeightsError(f"{path}: not a readable .safetensors file ({' '.join(str(e).split())})")


def _check(given, found, what, source):
  if given is not None and found is not None and given != found:
    raise WeightsError(f"{source}: {what} mismatch: asked for {given}, the weights are {found}")


def load_weights(source, arch: str | None = None, scale: int | None = None,
                 num_channels: int | None = None, arch_kwargs: dict | None = None,
                 use_ema: bool = True):
  """Loads any network's weights: (module, variables, info).

  ``source`` is a jaxsr .safetensors, a PyTorch .pth (BasicSR/Real-ESRGAN:
  params_ema, else params, else a bare state dict) or a training workdir
  (latest checkpoint, EMA weights where kept), or the name of a model
  shipped with jaxsr (``xray_x4``; see jaxsr.pretrained). ``arch``, ``scale``,
  ``num_channels`` and ``arch_kwargs`` are only needed where the source
  cannot tell; given ones must agree with what it says. ``use_ema=False``
  takes a workdir's final weights instead of its EMA. ``info`` holds
  arch, scale, num_channels, arch_kwargs, source and kind (+ step).
  """
  try:
    source = pretrained.resolve(source)
  except pretrained.PretrainedError as e:
    raise WeightsError(str(e)) from None
  arch = canonical_arch(arch)
  if source.is_dir():
    return _load_workdir(source, arch, scale, num_channels, arch_kwargs, use_ema)
  if not source.is_file():
    raise WeightsError(f"{source}: no such file or training workdir")
  if source.suffix == ".safetensors":
    state, meta = _read_safetensors(source)
    kind = "safetensors"
  else:
    try:
      state = torch_checkpoint.select_params(torch_checkpoint.load_state_dict(source))
    except ValueError as e:  # TorchCheckpointError is one too.
      raise WeightsError(str(e) if str(source) in str(e) else f"{source}: {e}") from None
    meta, kind = {}, "pth"
  if meta.get("jaxsr_format"):
    found = (meta["arch"], int(meta["scale"]) if meta.get("scale") else None,
             int(meta["num_channels"]), json.loads(meta.get("arch_kwargs") or "{}"))
  else:
    try:
      found = infer_arch(state)
    except WeightsError:
      if arch is None or num_channels is None or (scale is None and is_generator(arch)):
        raise
      found = (arch, scale, num_channels, dict(arch_kwargs or {}))  # As the caller says.
  _check(arch, found[0], "architecture", source)
  found_arch, found_scale, found_channels, found_kwargs = found
  if is_generator(found_arch):
    _check(scale, found_scale, "scale", source)
  _check(num_channels, found_channels, "channel count", source)
  kwargs = {**found_kwargs, **(arch_kwargs or {})}
  module = build(found_arch, found_scale if is_generator(found_arch) else None,
                 found_channels, kwargs)
  variables = from_state_dict(state, abstract_variables(module, found_channels), str(source))
  info = dict(arch=found_arch, scale=found_scale if is_generator(found_arch) else None,
              num_channels=found_channels, arch_kwargs=kwargs, source=str(source), kind=kind)
  return module, variables, info


def _load_workdir(path, arch, scale, num_channels, arch_kwargs, use_ema=True):
  # Imported here: orbax and grain (the checkpoint's readers) take a good part
  # of a command's start-up, and most inference reads a weights file instead.
  from jaxsr import workdir  # pylint: disable=import-outside-toplevel
  try:
    saved = workdir.read_generator(path, prefer_ema=use_ema)
  except (workdir.CheckpointError, FileNotFoundError, ValueError) as e:
    raise WeightsError(errors.one_line(e)) from None
  config = saved.config
  name, model_kwargs, _ = models.split_model_kwargs(config["model"])  # Execution options are not weights.
  found_arch = canonical_arch(name)
  _check(arch, found_arch, "architecture", path)
  _check(scale, config["scale"], "scale", path)
  _check(num_channels, config["num_channels"], "channel count", path)
  kwargs = {**model_kwargs, **(arch_kwargs or {})}
  module = build(found_arch, config["scale"], config["num_channels"], kwargs)
  variables = {"params": saved.params, **({"batch_stats": saved.batch_stats}
                                          if saved.batch_stats else {})}
  # A round trip through the state dict checks every name and shape.
  variables = from_state_dict(to_state_dict(variables),
                              abstract_variables(module, config["num_channels"]), str(path))
  info = dict(arch=found_arch, scale=config["scale"], num_channels=config["num_channels"],
              arch_kwargs=kwargs, source=str(path), kind="workdir", step=saved.step,
              ema=saved.ema, name=config.get("name", ""))
  return module, variables, info


def load_generator(source, arch: str | None = None, scale: int | None = None,
                   num_channels: int | None = None, arch_kwargs: dict | None = None,
                   use_ema: bool = True):
  """:func:`load_weights` for generators: (module, variables, info).

  Run it as ``module.apply(variables, lr_nhwc)``.
  """
  module, variables, info = load_weights(source, arch, scale, num_channels, arch_kwargs, use_ema)
  if not is_generator(info["arch"]):
    raise WeightsError(f"{source}: holds a '{info['arch']}' discriminator, not a generator")
  return module, variables, info


def save(path, variables: dict, info: dict) -> None:
  """Writes ``variables`` as .safetensors (with metadata) or .pth, by suffix."""
  path = pathlib.Path(path)
  if path.suffix == ".safetensors":
    save_safetensors(path, variables["params"], variables.get("batch_stats"), info["arch"],
                     info["scale"], info["num_channels"], info["arch_kwargs"])
  elif path.suffix == ".pth":
    save_pth(path, variables["params"], variables.get("batch_stats"))
  else:
    raise WeightsError(f"{path}: output must end in .safetensors or .pth")


def interpolate(variables_a: dict, variables_b: dict, alpha: float) -> dict:
  """Network interpolation (ESRGAN's DNI): (1 - alpha) * a + alpha * b, leaf by leaf."""
  flat_a, flat_b = (flax.traverse_util.flatten_dict(flax.core.unfreeze(v))
                    for v in (variables_a, variables_b))
  if flat_a.keys() != flat_b.keys():
    raise WeightsError("the two networks have different layers")
  out = {}
  for key, a in flat_a.items():
    b = flat_b[key]
    if np.shape(a) != np.shape(b):
      raise WeightsError(f"{'/'.join(key)}: shapes differ, {np.shape(a)} vs {np.shape(b)}")
    out[key] = (1.0 - alpha) * jnp.asarray(a, jnp.float32) + alpha * jnp.asarray(b, jnp.float32)
  return flax.traverse_util.unflatten_dict(out)
