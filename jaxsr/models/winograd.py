"""Winograd F(4x4, 3x3) convolutions for CPU.

A 3x3 "same" convolution done as Lavin & Gray's minimal filtering: each 4x4
output tile comes from a 6x6 input window through 36 small matrix products
instead of 144 multiply-adds per channel pair, 4x fewer multiplications. On
a CPU that already runs direct convolutions near its peak, this is the way to
go faster. Results equal the direct convolution up to float32 rounding
(about 1e-5 relative).

Feature maps stay in a *tile layout*, ``[4, 4, N, H/4, W/4, C]`` (row and
column inside the tile first), between convolutions. In that layout the
overlapping windows are shifted slices, not strided gathers, so a chain of
convolutions (RRDBNet's trunk) pays for the NHWC round trip only once.
Elementwise ops (activations, residual sums) work on it unchanged.

The transforms and the product carry hand-written backward passes: autodiff
of the shifted slices would scatter every term into its own padded copy of
the map, and the product's own rule keeps less for the backward pass.
Winograd is not used on GPUs and TPUs, whose convolution kernels are better
than anything written here (see ``layers.use_winograd``).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

TILE = 4

# Lavin & Gray (2016), F(4, 3) with interpolation points 0, +-1, +-2.
_BT = np.array([[4, 0, -5, 0, 1, 0],
                [0, -4, -4, 1, 1, 0],
                [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0],
                [0, 4, 0, -5, 0, 1]], np.float64)
_G = np.array([[1 / 4, 0, 0],
               [-1 / 6, -1 / 6, -1 / 6],
               [-1 / 6, 1 / 6, -1 / 6],
               [1 / 24, 1 / 12, 1 / 6],
               [1 / 24, -1 / 12, 1 / 6],
               [0, 0, 1]], np.float64)
_AT = np.array([[1, 1, 1, 1, 1, 0],
                [0, 1, -1, 2, -2, 0],
                [0, 1, 1, 4, 4, 0],
                [0, 1, -1, 8, -8, 1]], np.float64)


def fits(height: int, width: int) -> bool:
  """Whether a map of this size splits into whole 4x4 tiles."""
  return height % TILE == 0 and width % TILE == 0


def to_tiles(x: jax.Array) -> jax.Array:
  """NHWC -> tile layout ``[4, 4, N, H/4, W/4, C]``."""
  n, h, w, c = x.shape
  return x.reshape(n, h // TILE, TILE, w // TILE, TILE, c).transpose(2, 4, 0, 1, 3, 5)


def from_tiles(t: jax.Array) -> jax.Array:
  """Tile layout -> NHWC."""
  _, _, n, th, tw, c = t.shape
  return t.transpose(2, 3, 0, 4, 1, 5).reshape(n, th * TILE, tw * TILE, c)


def _combine(matrix, arrays):
  """``[sum_k matrix[a, k] * arrays[k] for a]``, skipping zero terms."""
  out = []
  for row in matrix:
    total = None
    for coef, a in zip(row, arrays):
      if coef == 0:
        continue
      term = a if coef == 1 else -a if coef == -1 else a * float(coef)
      total = term if total is None else total + term
    out.append(total)
  return out


def _sandwich(matrix, x):
  """``matrix @ x @ matrix.T`` over ``x``'s first two axes, elementwise over the rest."""
  rows = jnp.stack(_combine(matrix, list(x)))
  return jnp.stack(_combine(matrix, [rows[:, j] for j in range(x.shape[1])]), axis=1)


def _shift(a, axis, step):
  """Shift along ``axis`` by one tile, zero-filled: step +1 gives out[i] = a[i-1]."""
  config = [(0, 0, 0)] * a.ndim
  config[axis] = (1, -1, 0) if step == 1 else (-1, 1, 0)
  return lax.pad(a, jnp.zeros((), a.dtype), config)


def _windows(t, axis):
  """The six rows (or columns) of every tile's 6x6 window, from one tile axis.

  ``t`` indexes the position inside the tile on its first axis; ``axis`` is
  the tile-index axis of ``t[i]``. Row 0 is the previous tile's last row and
  row 5 the next tile's first row (zeros at the border: the conv's padding).
  """
  return [_shift(t[3], axis, 1), t[0], t[1], t[2], t[3], _shift(t[0], axis, -1)]


def _fold(grads, axis):
  """Adjoint of :func:`_windows`: six window-row gradients -> four tile rows."""
  rows = list(grads[1:5])
  rows[3] = rows[3] + _shift(grads[0], axis, -1)
  rows[0] = rows[0] + _shift(grads[5], axis, 1)
  return rows


@jax.custom_vjp
def input_transform(t: jax.Array) -> jax.Array:
  """Tile layout ``[4, 4, N, th, tw, C]`` -> ``[36, N*th*tw, C]`` (B^T d B per window)."""
  _, _, n, th, tw, c = t.shape
  rows = jnp.stack(_combine(_BT, _windows(t, 2)))                    # [6, 4, N, th, tw, C]
  cols = _combine(_BT, _windows(jnp.moveaxis(rows, 1, 0), 3))        # 6 x [6, N, th, tw, C]
  return jnp.stack(cols, axis=1).reshape(36, n * th * tw, c)


def _input_transform_fwd(t):
  return input_transform(t), t.shape


def _input_transform_bwd(shape, g):
  _, _, n, th, tw, c = shape
  g = g.reshape(6, 6, n, th, tw, c)
  cols = _fold(_combine(_BT.T, [g[:, b] for b in range(6)]), 3)      # 4 x [6, N, th, tw, C]
  rows = _combine(_BT.T, list(jnp.stack(cols, axis=1)))              # 6 x [4, N, th, tw, C]
  return (jnp.stack(_fold(rows, 2)),)


input_transform.defvjp(_input_transform_fwd, _input_transform_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def output_transform(m: jax.Array, grid: tuple[int, int, int]) -> jax.Array:
  """``[36, N*th*tw, C]`` products -> tile layout (A^T m A); ``grid`` is (N, th, tw)."""
  return _sandwich(_AT, m.reshape(6, 6, *grid, m.shape[-1]))


def _output_transform_fwd(m, grid):
  return output_transform(m, grid), None


def _output_transform_bwd(grid, _, g):
  return (_sandwich(_AT.T, g).reshape(36, -1, g.shape[-1]),)


output_transform.defvjp(_output_transform_fwd, _output_transform_bwd)


def kernel_transform(kernel: jax.Array) -> jax.Array:
  """HWIO 3x3 kernel -> ``[36, I, O]`` (G g G^T), differentiable."""
  return _sandwich(_G, kernel).reshape(36, *kernel.shape[2:])


def multiply(v: jax.Array, u: jax.Array) -> jax.Array:
  """The 36 independent channel products of the transformed input and kernel."""
  return jnp.einsum("ptc,pcd->ptd", v, u, precision=lax.Precision.HIGHEST)


def kernel_transform_transpose(du: jax.Array) -> jax.Array:
  """Adjoint of :func:`kernel_transform`: ``[36, I, O]`` -> HWIO (G^T du G)."""
  return _sandwich(_G.T, du.reshape(6, 6, *du.shape[1:]))


def _offsets(pieces):
  """Where each piece's channels start and end in the concatenated input."""
  ends = np.cumsum([p.shape[-1] for p in pieces])
  return list(zip([0, *ends[:-1]], ends))


@jax.custom_vjp
def dense_conv(pieces: tuple[jax.Array, ...], kernel: jax.Array) -> jax.Array:
  """Products of a conv over the channel concatenation of transformed pieces.

  The transformed input of a dense block's conv is the concatenation of its
  earlier features' transforms, so each feature is transformed only once.
  The concatenation itself is never built: the product is the sum of each
  piece's product with its rows of the transformed kernel. On a large map
  the transformed pieces are far beyond the caches, and copying them into
  a concatenation for every conv moved more memory than the products need.
  The backward pass keeps the pieces and the 3x3 kernel, not the 4x larger
  transformed kernel: under ``lax.scan`` every kept array is copied into a
  per-iteration stack.
  """
  u = kernel_transform(kernel)
  terms = [multiply(piece, u[:, start:end])
           for piece, (start, end) in zip(pieces, _offsets(pieces))]
  return functools.reduce(jnp.add, terms)


def _dense_conv_fwd(pieces, kernel):
  return dense_conv(pieces, kernel), (pieces, kernel)


def _dense_conv_bwd(residuals, g):
  pieces, kernel = residuals
  u = kernel_transform(kernel)
  dv, du = [], []
  for piece, (start, end) in zip(pieces, _offsets(pieces)):
    dv.append(jnp.einsum("ptd,pcd->ptc", g, u[:, start:end], precision=lax.Precision.HIGHEST))
    # Produced as [36, O, I] and swapped afterwards: XLA:CPU runs this
    # contraction over tiles faster in that orientation.
    du.append(jnp.einsum("ptc,ptd->pdc", piece, g, precision=lax.Precision.HIGHEST))
  return tuple(dv), kernel_transform_transpose(jnp.concatenate(du, axis=-1).swapaxes(1, 2))


dense_conv.defvjp(_dense_conv_fwd, _dense_conv_bwd)


def conv_tiles(t: jax.Array, kernel: jax.Array, bias: jax.Array | None = None) -> jax.Array:
  """3x3 stride-1 "same" convolution, tile layout in and out."""
  grid = t.shape[2:5]
  out = output_transform(dense_conv((input_transform(t),), kernel), grid)
  return out if bias is None else out + bias


def conv3x3(x: jax.Array, kernel: jax.Array, bias: jax.Array | None = None) -> jax.Array:
  """3x3 stride-1 "same" convolution of an NHWC map whose sides are multiples of 4."""
  if not fits(*x.shape[1:3]):
    raise ValueError(f"Winograd convolution needs sides divisible by {TILE}, got {x.shape}")
  return from_tiles(conv_tiles(to_tiles(x), kernel, bias))
