"""The device mesh and how arrays are laid out on it.

One code path for 1 CPU, 8 virtual CPU devices or many hosts: the batch is
split over the 'data' axis, parameters and optimizer state are replicated.
Axes are ``Auto`` so XLA may reshape sharded activations freely (the pixel
shuffle would otherwise need explicit output shardings).
"""
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
