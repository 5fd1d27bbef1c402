"""The device mesh and how arrays are laid out on it.

One code path for 1 CPU, 8 virtual CPU devices or many hosts: the batch is
split over the 'data' axis, parameters and optimizer state are replicated.
Axes are ``Auto`` so XLA may reshape sharded activations freely (the pixel
shuffle would otherwise need explicit output shardings).
"""
import re

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(num_devices: int | None = None) -> Mesh:
  devices = jax.devices()
  if num_devices:
    devices = devices[:num_devices]
  return Mesh(np.asarray(devices), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def data_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def put_batch(batch: dict, mesh: Mesh) -> dict:
  """Process-local numpy batch -> global arrays split over the 'data' axis."""
  sharding = data_sharded(mesh)

  def put(x):
    x = np.asarray(x)
    global_shape = (x.shape[0] * jax.process_count(),) + x.shape[1:]
    return jax.make_array_from_process_local_data(sharding, x, global_shape)

  return jax.tree.map(put, batch)


def check_batch_divisible(global_batch: int, mesh: Mesh):
  n = mesh.shape[DATA_AXIS]
  if global_batch % n:
    raise ValueError(f"data.batch_size={global_batch} must divide by the number of devices "
                     f"on the mesh ({n})")


def fsdp_spec(shape, num_shards: int, min_size: int) -> P:
  """Splits the largest axis that divides evenly over the 'data' axis (FSDP).

  Small arrays (under ``min_size`` elements) stay replicated: gathering them
  would cost more than it saves.
  """
  if int(np.prod(shape, dtype=np.int64)) < min_size or num_shards == 1:
    return P()
  for axis in sorted(range(len(shape)), key=lambda a: -shape[a]):
    if shape[axis] % num_shards == 0:
      spec = [None] * len(shape)
      spec[axis] = DATA_AXIS
      return P(*spec)
  return P()


def state_shardings(abstract_state, mesh: Mesh, fsdp_regex: str = "", min_size: int = 2 ** 18):
  """A sharding for every leaf of the train state.

  Leaves whose path (e.g. ``g_params/body_0/conv1/kernel`` or
  ``g_opt/0/mu/...``) matches ``fsdp_regex`` are split over the devices,
  FSDP-style, to fit large generators; everything else is replicated. XLA
  gathers the shards where the step needs whole arrays, so the result is
  the same as with replicated parameters.
  """
  pattern = re.compile(fsdp_regex) if fsdp_regex else None
  n = mesh.shape[DATA_AXIS]

  def one(path, leaf):
    name = "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))))
                    for k in path)
    if pattern is not None and pattern.fullmatch(name):
      return NamedSharding(mesh, fsdp_spec(leaf.shape, n, min_size))
    return NamedSharding(mesh, P())

  return jax.tree_util.tree_map_with_path(one, abstract_state)
