"""Batched degradation ops in JAX, on (N, C, H, W) float32 images in [0, 1].

Real-ESRGAN resizes by a random factor drawn once per batch, so the image
size inside the pipeline changes from step to step. To keep one compiled
function for every draw, images live on a fixed *canvas* (the largest size a
stage can reach) and carry a traced valid size ``n`` (square images): the
top-left n x n pixels are the image, the rest is ignored. Every op here is
written for that layout:

- resize is a matrix product ``R_h @ x @ R_w^T`` whose weight matrices are
  built inside the jitted function from the traced sizes; rows beyond the
  output size and columns beyond the input size are zero. The weights follow
  PyTorch's ``F.interpolate`` without antialiasing (area = adaptive average
  pooling, bilinear/bicubic with half-pixel centres, cubic a = -0.75, edge
  taps clamped), so jax.image.resize (whose options differ between JAX
  versions) is not needed;
- blur reflect-pads at the valid size by a gather, then convolves by FFT (a
  21x21 per-sample kernel on a 600-pixel canvas is >10x faster than XLA's
  grouped convolution on CPU);
- JPEG zeroes the canvas outside the image, as DiffJPEG's zero padding does.
"""
import numpy as np
import jax
import jax.numpy as jnp

AREA, BILINEAR, BICUBIC = 0, 1, 2
RESIZE_MODES = ("area", "bilinear", "bicubic")
_CUBIC_A = -0.75


# ------------------------------------------------------------------ resize

def _cubic_weights(t):
  """PyTorch's cubic convolution weights for taps at -1, 0, 1, 2 (a = -0.75)."""
  a = _CUBIC_A
  def near(x):  # |x| <= 1
    return ((a + 2) * x - (a + 3)) * x * x + 1
  def far(x):  # 1 < |x| < 2
    return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
  return far(t + 1), near(t), near(1 - t), far(2 - t)


def resize_matrix(out_canvas: int, in_canvas: int, n_in, n_out, inv_scale, mode):
  """(out_canvas, in_canvas) interpolation weights for one axis.

  n_in/n_out are the valid sizes, inv_scale the source step per output pixel
  (1/scale_factor when PyTorch is given one, else n_in/n_out), mode one of
  AREA/BILINEAR/BICUBIC; all may be traced.
  """
  n_in = jnp.asarray(n_in, jnp.int32)
  n_out = jnp.asarray(n_out, jnp.int32)
  inv_scale = jnp.asarray(inv_scale, jnp.float32)
  i = jnp.arange(out_canvas, dtype=jnp.int32)
  j = jnp.arange(in_canvas, dtype=jnp.int32)[None, :]
  fi = i.astype(jnp.float32)
  last = n_in - 1

  def onehot(idx):
    return (j == idx[:, None]).astype(jnp.float32)

  # area: adaptive average pooling bins [floor(i*in/out), ceil((i+1)*in/out)).
  start = (i * n_in) // n_out
  end = ((i + 1) * n_in + n_out - 1) // n_out
  inside = (j >= start[:, None]) & (j < end[:, None])
  area = inside.astype(jnp.float32) / jnp.maximum(end - start, 1)[:, None].astype(jnp.float32)

  # bilinear: source clamped at 0, second tap dropped at the last pixel.
  src = jnp.maximum(inv_scale * (fi + 0.5) - 0.5, 0.0)
  i0 = jnp.minimum(jnp.floor(src).astype(jnp.int32), last)
  lam = jnp.clip(src - i0.astype(jnp.float32), 0.0, 1.0)
  i1 = i0 + (i0 < last).astype(jnp.int32)
  bilinear = (1 - lam)[:, None] * onehot(i0) + lam[:, None] * onehot(i1)

  # bicubic: four taps around floor(src), indices clamped to the image.
  src = inv_scale * (fi + 0.5) - 0.5
  i0 = jnp.minimum(jnp.floor(src).astype(jnp.int32), last)
  t = jnp.clip(src - i0.astype(jnp.float32), 0.0, 1.0)
  bicubic = sum(w[:, None] * onehot(jnp.clip(i0 - 1 + k, 0, last))
                for k, w in enumerate(_cubic_weights(t)))

  weights = jnp.where(mode == AREA, area, jnp.where(mode == BILINEAR, bilinear, bicubic))
  return jnp.where((i < n_out)[:, None], weights, 0.0)


def resize(x, out_canvas: int, n_in, n_out, inv_scale, mode):
  """Resize the valid n_in x n_in image of x to n_out x n_out on an out_canvas."""
  m = resize_matrix(out_canvas, x.shape[-1], n_in, n_out, inv_scale, mode)
  return jnp.einsum("oh,nchw,pw->ncop", m, x, m, precision=jax.lax.Precision.HIGHEST)


# ------------------------------------------------------------------ blur

def reflect_index(length: int, n, pad: int):
  """Indices that reflect-pad (no edge repeat) a valid size n by pad on each side."""
  q = jnp.arange(length + 2 * pad, dtype=jnp.int32) - pad
  q = jnp.where(q < 0, -q, q)
  q = jnp.where(q > n - 1, 2 * (n - 1) - q, q)
  return jnp.clip(q, 0, length - 1)


def reflect_pad(x, n, pad: int):
  """Reflect-pad the valid n x n image of x (N, C, S, S) to (S + 2 pad) square."""
  idx = reflect_index(x.shape[-1], n, pad)
  return x[:, :, idx, :][:, :, :, idx]


def _fft_size(n: int) -> int:
  return -(-n // 32) * 32


def conv_valid_fft(xp, kernels):
  """Per-sample 'valid' cross-correlation of (N, C, P, P) with (N, k, k) by FFT."""
  k = kernels.shape[-1]
  size = _fft_size(xp.shape[-1])
  kf = jnp.fft.rfft2(kernels[:, None, ::-1, ::-1], s=(size, size))
  y = jnp.fft.irfft2(jnp.fft.rfft2(xp, s=(size, size)) * kf, s=(size, size))
  out = xp.shape[-1] - k + 1
  return y[..., k - 1:k - 1 + out, k - 1:k - 1 + out]


def blur(x, kernels, n=None):
  """BasicSR's filter2D: reflect padding, one kernel per sample over all channels."""
  pad = kernels.shape[-1] // 2
  n = x.shape[-1] if n is None else n
  return conv_valid_fft(reflect_pad(x, n, pad), kernels)


# ------------------------------------------------------------------ USM

def gaussian_taps(ksize: int, sigma: float = 0.0) -> np.ndarray:
  """OpenCV's getGaussianKernel (sigma <= 0 derives sigma from the size)."""
  if sigma <= 0:
    sigma = 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8
  x = np.arange(ksize) - (ksize - 1) / 2.0
  g = np.exp(-x ** 2 / (2 * sigma ** 2))
  return g / g.sum()


def reflect_blur_matrix(size: int, taps: np.ndarray) -> np.ndarray:
  """(size, size) matrix of a 1-D correlation with reflect padding folded in."""
  pad = len(taps) // 2
  m = np.zeros((size, size))
  rows = np.arange(size)
  for t, w in enumerate(taps):
    q = rows + t - pad
    q = np.where(q < 0, -q, q)
    q = np.where(q > size - 1, 2 * (size - 1) - q, q)
    np.add.at(m, (rows, q), w)
  return m.astype(np.float32)


def separable_blur(x, m):
  """Blur rows and columns with the same reflect-folded (S, S) matrix."""
  return jnp.einsum("oh,nchw,pw->ncop", m, x, m, precision=jax.lax.Precision.HIGHEST)


def usm_sharp(x, m, weight: float = 0.5, threshold: float = 10.0):
  """BasicSR's USMSharp: sharpen by `weight` where the residual exceeds threshold/255.

  The hard mask is blurred into a soft one so sharpening fades in smoothly.
  """
  residual = x - separable_blur(x, m)
  mask = (jnp.abs(residual) * 255 > threshold).astype(jnp.float32)
  soft = separable_blur(mask, m)
  sharp = jnp.clip(x + weight * residual, 0.0, 1.0)
  return soft * sharp + (1 - soft) * x


# ------------------------------------------------------------------ noise

def gaussian_noise(shape_x, sigma, gray, color_field, gray_field):
  """Noise sigma/255 * field; samples with gray=1 use one field for all channels."""
  s = (sigma / 255.0)[:, None, None, None]
  g = gray[:, None, None, None]
  return s * (g * gray_field + (1 - g) * color_field)


def to_gray(x):
  """torchvision's rgb_to_grayscale weights; a single channel is already gray."""
  if x.shape[1] == 1:
    return x
  w = jnp.asarray([0.2989, 0.587, 0.114], jnp.float32)
  return jnp.einsum("nchw,c->nhw", x, w)[:, None]


def poisson_levels(q, n, levels: int = 255):
  """2**ceil(log2(#distinct levels)) per sample over the valid n x n area.

  BasicSR counts distinct 8-bit values to set how many photons a unit of
  intensity stands for; q holds the levels (integers 0..levels) as float.
  """
  size = q.shape[-1]
  valid = (jnp.arange(size) < n)
  mask = (valid[:, None] & valid[None, :])[None, None]
  nb = q.shape[0]
  # One scatter over the whole batch (sample i's bins at i*(levels+1)...).
  idx = q.astype(jnp.int32) + (levels + 1) * jnp.arange(nb, dtype=jnp.int32)[:, None, None, None]
  weight = jnp.broadcast_to(mask, q.shape).astype(jnp.float32)
  hist = jnp.zeros(nb * (levels + 1), jnp.float32).at[idx.ravel()].add(weight.ravel())
  hist = hist.reshape(nb, levels + 1)
  count = jnp.maximum(jnp.sum(hist > 0, axis=-1), 1).astype(jnp.float32)
  return 2.0 ** jnp.ceil(jnp.log2(count))


def poisson_sample(key, lam, small_terms: int = 32, rounds: int = 3):
  """Poisson draws for lam in [0, ~1000] with a fixed amount of work.

  jax.random.poisson loops until every element is accepted, which on CPU
  costs seconds for a batch of canvases. Here lam < 10 uses inversion over
  `small_terms` terms (tail mass < 1e-7) and lam >= 10 Hormann's PTRS
  transformed rejection with `rounds` fixed tries (each accepts > 88%); the
  rare element rejected every time takes the normal approximation.
  """
  u = jax.random.uniform(key, (1 + 2 * rounds,) + lam.shape, jnp.float32,
                         minval=1e-7, maxval=1.0)
  # Inversion for small lam.
  small = jnp.minimum(lam, 10.0)
  p = jnp.exp(-small)
  cdf = p
  k_small = jnp.zeros_like(lam)
  for j in range(1, small_terms):
    k_small = k_small + (u[0] > cdf)
    p = p * small / j
    cdf = cdf + p
  # PTRS for large lam.
  big = jnp.maximum(lam, 10.0)
  slam, loglam = jnp.sqrt(big), jnp.log(big)
  b = 0.931 + 2.53 * slam
  a = -0.059 + 0.02483 * b
  inv_alpha = 1.1239 + 1.1328 / (b - 3.4)
  vr = 0.9277 - 3.6224 / (b - 2)
  k_big = None
  for r in range(rounds):
    uu, v = u[1 + 2 * r] - 0.5, u[2 + 2 * r]
    us = 0.5 - jnp.abs(uu)
    k = jnp.floor((2 * a / us + b) * uu + big + 0.43)
    fast = (us >= 0.07) & (v <= vr)
    ok = (k >= 0) & ~((us < 0.013) & (v > us))
    log_ratio = (jnp.log(v) + jnp.log(inv_alpha) - jnp.log(a / (us * us) + b)
                 - (-big + k * loglam - jax.lax.lgamma(k + 1.0)))
    accept = fast | (ok & (log_ratio <= 0))
    k_big = jnp.where(accept, k, jnp.nan) if k_big is None else jnp.where(
        jnp.isnan(k_big) & accept, k, k_big)
  z = jnp.sqrt(-2 * jnp.log(u[2])) * jnp.cos(2 * jnp.pi * u[1])
  k_big = jnp.where(jnp.isnan(k_big), jnp.maximum(jnp.round(big + slam * z), 0.0), k_big)
  return jnp.where(lam < 10.0, k_small, k_big)


def poisson_noise(key, x, scale, gray, n):
  """BasicSR's Poisson noise on the 8-bit-rounded image, scaled per sample."""
  def one(k, img):
    q = jnp.clip(jnp.round(img * 255.0), 0, 255)
    vals = poisson_levels(q, n)[:, None, None, None]
    img = q / 255.0
    return poisson_sample(k, img * vals) / vals - img
  kc, kg = jax.random.split(key)
  noise = one(kc, x)
  if x.shape[1] > 1:
    g = gray[:, None, None, None]
    noise = jax.lax.cond(jnp.any(gray > 0),
                         lambda v: (1 - g) * v + g * one(kg, to_gray(x)), lambda v: v, noise)
  return noise * scale[:, None, None, None]


# ------------------------------------------------------------------ JPEG

# Standard JPEG tables (ITU T.81 Annex K), transposed as DiffJPEG stores them.
_Y_TABLE = np.array(
    [[16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
     [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
     [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
     [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]],
    np.float32).T
_C_TABLE = np.full((8, 8), 99, np.float32)
_C_TABLE[:4, :4] = np.array([[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99],
                             [47, 66, 99, 99]], np.float32).T
_DCT = np.array([[np.cos((2 * x + 1) * u * np.pi / 16) for x in range(8)] for u in range(8)],
                np.float32)
_ALPHA = np.array([1 / np.sqrt(2)] + [1] * 7)
_ALPHA2 = np.outer(_ALPHA, _ALPHA).astype(np.float32)


def quality_to_factor(quality):
  """libjpeg's quality scaling of the tables (as a fraction, not percent)."""
  return jnp.where(quality < 50, 5000.0 / quality, 200.0 - 2 * quality) / 100.0


def _jpeg_plane(p, table):
  """Blockwise DCT, quantise with rounding, dequantise, inverse DCT on (N, H, W) in [0, 255]."""
  nb, h, w = p.shape
  d = jnp.asarray(_DCT)
  hi = jax.lax.Precision.HIGHEST
  blocks = p.reshape(nb, h // 8, 8, w // 8, 8) - 128.0
  coef = 0.25 * _ALPHA2[:, None, :] * jnp.einsum("ux,nixjy,vy->niujv", d, blocks, d, precision=hi)
  t = table[:, None, :, None, :]
  coef = jnp.round(coef / t) * t
  out = 0.25 * jnp.einsum("ux,niujv,vy->nixjy", d, coef * _ALPHA2[:, None, :], d, precision=hi)
  return (out + 128.0).reshape(nb, h, w)


def jpeg(x, quality, n=None):
  """DiffJPEG(differentiable=False) on the valid n x n image of x.

  One channel is treated as luminance only (what a gray image repeated to
  RGB gives, with no colour round trip); three channels go through YCbCr
  with 2x2 chroma subsampling. Zero-pads to multiples of 16 like DiffJPEG.
  """
  h, w = x.shape[-2:]
  x = jnp.pad(x, ((0, 0), (0, 0), (0, -h % 16), (0, -w % 16)))
  if n is not None:
    valid = jnp.arange(x.shape[-1]) < n
    x = jnp.where((valid[:x.shape[-2], None] & valid[None, :])[None, None], x, 0.0)
  x = x * 255.0
  factor = quality_to_factor(quality.astype(jnp.float32))[:, None, None]
  ytab = jnp.asarray(_Y_TABLE)[None] * factor
  if x.shape[1] == 1:
    out = _jpeg_plane(x[:, 0], ytab)[:, None]
  else:
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128.0
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128.0
    ctab = jnp.asarray(_C_TABLE)[None] * factor
    def sub(c):
      nb, h, w = c.shape
      c = c.reshape(nb, h // 2, 2, w // 2, 2).mean(axis=(2, 4))
      c = _jpeg_plane(c, ctab)
      return jnp.repeat(jnp.repeat(c, 2, axis=1), 2, axis=2)
    y, cb, cr = _jpeg_plane(y, ytab), sub(cb) - 128.0, sub(cr) - 128.0
    out = jnp.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], axis=1)
  return jnp.clip(out, 0.0, 255.0)[..., :h, :w] / 255.0

