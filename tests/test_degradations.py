"""Real-ESRGAN degradations against stored BasicSR/Real-ESRGAN outputs, plus properties.

The fixtures come from tools/make_degradation_fixtures.py (run in the PyTorch
reference venv); CI only reads them.
"""
import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsr.degradations import kernels, ops, pipeline, sampling
from jaxsr.training import sharding

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "degradations"
MODES = {"area": ops.AREA, "bilinear": ops.BILINEAR, "bicubic": ops.BICUBIC}


def _load(name):
  return dict(np.load(FIXTURES / name, allow_pickle=False))


@pytest.fixture(scope="module")
def ref_ops():
  d = _load("ops.npz")
  d["img"] = d["img"].astype(np.float32) / 255.0
  return d


def test_kernels_match_basicsr():
  d = _load("kernels.npz")
  params = json.loads(str(d["params"]))
  worst = 0.0
  for i, p in enumerate(params):
    p = dict(p)
    ours = kernels.build_kernel(p.pop("kind"), p.pop("size"), **p)
    worst = max(worst, float(np.abs(ours - d[f"k{i}"]).max()))
  assert worst <= 1e-6, worst


def test_kernel_sampler_frequencies():
  cfg = pipeline.default_params()
  rng = np.random.default_rng(0)
  n = 10_000
  kinds, sizes = [], []
  for _ in range(n):
    p = kernels.draw_blur_params(rng, cfg.kernel_list, cfg.kernel_prob, cfg.blur_sigma,
                                 cfg.betag_range, cfg.betap_range, cfg.sinc_prob)
    kinds.append(p["kind"])
    sizes.append(p["size"])
  expected = {"sinc": cfg.sinc_prob}
  expected.update({k: (1 - cfg.sinc_prob) * q for k, q in zip(cfg.kernel_list, cfg.kernel_prob)})
  for kind, prob in expected.items():
    freq = kinds.count(kind) / n
    assert abs(freq - prob) <= 4 * math.sqrt(prob * (1 - prob) / n), (kind, freq, prob)
  assert sorted(set(sizes)) == list(range(7, 22, 2))
  finals = [kernels.draw_final_sinc_params(rng, cfg.final_sinc_prob) for _ in range(2000)]
  assert abs(np.mean([f is not None for f in finals]) - 0.8) < 4 * math.sqrt(0.16 / 2000)


def test_sample_transform_shapes_and_determinism():
  cfg = pipeline.default_params()
  t = sampling.RealESRGANSample.from_config(cfg, num_channels=1)
  image = np.random.default_rng(1).random((300, 520), dtype=np.float32)  # smaller than 400
  a = t.random_map({"image": image, "bits": 8, "name": "x"}, np.random.default_rng(7))
  b = t.random_map({"image": image, "bits": 8, "name": "x"}, np.random.default_rng(7))
  assert a["hr"].shape == (400, 400, 1) and a["hr"].dtype == np.float32
  for key in ("kernel1", "kernel2", "sinc_kernel"):
    assert a[key].shape == (21, 21) and abs(a[key].sum() - 1) < 1e-5
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])
  assert 1 <= a["noise_sigma1"] <= 30 and 30 <= a["jpeg_quality2"] <= 95


def test_blur_matches_filter2d(ref_ops):
  ours = ops.blur(jnp.asarray(ref_ops["img"]), jnp.asarray(ref_ops["blur_kernels"]))
  assert float(jnp.abs(ours - ref_ops["blur"]).max()) <= 1e-4


def test_blur_on_canvas_equals_blur_of_crop(ref_ops):
  img = jnp.asarray(ref_ops["img"])
  k = jnp.asarray(ref_ops["blur_kernels"])
  small = ops.blur(img[..., :30, :30], k)
  canvas = ops.blur(img, k, n=30)[..., :30, :30]
  assert float(jnp.abs(small - canvas).max()) <= 1e-5


_resize = jax.jit(ops.resize, static_argnums=1)


def test_resize_matches_interpolate(ref_ops):
  img = jnp.asarray(ref_ops["img"][:, :1])
  n = img.shape[-1]
  canvas = 128
  for i, spec in enumerate(json.loads(str(ref_ops["resize_specs"]))):
    ref = ref_ops[f"resize_{i}"]
    if spec["kind"] == "scale":
      s = np.float32(spec["value"])
      n_out, inv = int(np.floor(n * s)), 1.0 / s
    else:
      n_out, inv = spec["value"], n / spec["value"]
    assert ref.shape[-1] == n_out, spec
    ours = _resize(img, canvas, n, n_out, np.float32(inv), MODES[spec["mode"]])
    assert float(jnp.abs(ours[..., n_out:, :]).max()) == 0.0
    err = float(jnp.abs(ours[..., :n_out, :n_out] - ref).max())
    assert err <= 1e-4, (spec, err)


def test_usm_matches_basicsr(ref_ops):
  img = jnp.asarray(ref_ops["img"])
  m = jnp.asarray(ops.reflect_blur_matrix(img.shape[-1], ops.gaussian_taps(51)))
  err = float(jnp.abs(ops.usm_sharp(img, m) - ref_ops["usm"]).max())
  assert err <= 1e-4, err


def test_gaussian_noise_with_fixed_fields(ref_ops):
  img = ref_ops["img"]
  gray = np.broadcast_to(ref_ops["gauss_gray_field"], (2, 1) + img.shape[2:])
  ours = ops.gaussian_noise(img.shape, jnp.asarray(ref_ops["gauss_sigma"]),
                            jnp.asarray(ref_ops["gauss_gray"]),
                            jnp.asarray(ref_ops["gauss_color_field"]), jnp.asarray(gray))
  assert float(jnp.abs(ours - ref_ops["gauss_noise"]).max()) <= 1e-4


@pytest.mark.slow
def test_poisson_noise_statistics(ref_ops):
  img = jnp.asarray(ref_ops["poisson_img"])
  q = jnp.clip(jnp.round(img * 255), 0, 255)
  np.testing.assert_array_equal(ops.poisson_levels(q, 64), [64.0, 256.0])
  scale = jnp.asarray(ref_ops["poisson_scale"])
  ref = ref_ops["poisson_noise"]
  ours = np.asarray(jax.jit(ops.poisson_noise, static_argnums=4)(
      jax.random.key(0), img, scale, jnp.zeros(2), 64))
  flat = (slice(None), slice(2, None), slice(20, None), slice(30, None))
  for i in range(2):
    r, o = ref[i][flat[1:]], ours[i][flat[1:]]
    assert abs(o.var() / r.var() - 1) < 0.1, (i, o.var(), r.var())
    assert abs(o.mean() - r.mean()) < 3 * r.std() / math.sqrt(r.size)


def test_poisson_sampler_moments():
  lam = jnp.repeat(jnp.asarray([0.3, 4.0, 9.9, 10.0, 37.0, 250.0]), 40_000).reshape(6, -1)
  k = np.asarray(jax.jit(ops.poisson_sample)(jax.random.key(1), lam))
  assert np.all(k == np.round(k)) and k.min() >= 0
  for row, l in zip(k, np.asarray(lam[:, 0])):
    se = math.sqrt(l / row.size)
    assert abs(row.mean() - l) < 4 * se, (l, row.mean())
    assert abs(row.var() / l - 1) < 0.05, (l, row.var())


@pytest.mark.slow
def test_jpeg_matches_diffjpeg(ref_ops):
  img = jnp.asarray(ref_ops["img"])
  q = jnp.asarray(ref_ops["jpeg_quality"])
  for ours, ref in ((ops.jpeg(img, q), ref_ops["jpeg_rgb"]),
                    (ops.jpeg(img[..., :40, :], q)[..., :40, :], ref_ops["jpeg_rgb_odd"]),
                    (ops.jpeg(img[:, :1], q), ref_ops["jpeg_gray"])):
    ours = np.asarray(ours)[..., :ref.shape[-2], :ref.shape[-1]]
    assert np.abs(ours - ref).mean() <= 1 / 255, np.abs(ours - ref).mean()


@pytest.mark.slow
def test_jpeg_on_canvas_equals_jpeg_of_crop(ref_ops):
  img = jnp.asarray(ref_ops["img"])
  q = jnp.asarray([40.0, 90.0])
  small = ops.jpeg(img[..., :27, :27], q)
  canvas = ops.jpeg(img, q, n=27)[..., :27, :27]
  assert float(jnp.abs(small - canvas).max()) <= 1e-5


def _pipeline_inputs(d, cfg):
  """Our batch, draws and noise fields from a reference run's recorded draws."""
  draws = json.loads(str(d["draws"]))
  n = d["gt"].shape[0]
  batch = {"hr": d["gt"].transpose(0, 2, 3, 1).astype(np.float32) / 255.0,
           "kernel1": d["kernel1"], "kernel2": d["kernel2"], "sinc_kernel": d["sinc_kernel"],
           "poisson_scale1": np.ones(n, np.float32), "poisson_scale2": np.ones(n, np.float32)}
  for i in (1, 2):
    batch[f"noise_sigma{i}"] = d[f"noise_sigma{i}"]
    batch[f"gray_noise{i}"] = d[f"gray_noise{i}"]
    batch[f"jpeg_quality{i}"] = d[f"jpeg_quality{i}"]
  crop = d["gt"].shape[-1]
  ours = {"scale1": np.float32(draws["scale1"]), "mode1": np.int32(draws["mode1"]),
          "gaussian1": np.bool_(True), "blur2": np.bool_(draws["blur2"]),
          "scale2": np.float32((draws["n2"] + 0.5) / (crop // 4)),
          "mode2": np.int32(draws["mode2"]), "gaussian2": np.bool_(True),
          "resize_first": np.bool_(draws["resize_first"]), "mode3": np.int32(draws["mode3"]),
          "top": np.full(n, draws["top"], np.int32), "left": np.full(n, draws["left"], np.int32)}
  s1, s2, _ = pipeline.canvas_sizes(cfg)
  fields = []
  for i, s in ((1, s1), (2, s2)):
    color, gray = d[f"color_field{i}"], d[f"gray_field{i}"]
    h = color.shape[-1]
    pad = ((0, 0), (0, 0), (0, s - h), (0, s - h))
    gray = np.broadcast_to(gray, (n, 1, h, h))
    fields.append((jnp.asarray(np.pad(color, pad)), jnp.asarray(np.pad(gray, pad))))
  return batch, ours, tuple(fields)


def _fixture_config():
  cfg = pipeline.default_params()
  cfg.crop_size, cfg.gt_size, cfg.queue_size = 96, 64, 4
  return cfg


# One compilation serves every fixture: the draws are traced, not static.
_degrade_with_draws = jax.jit(
    lambda *args: pipeline.degrade_with_draws(_fixture_config(), *args))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("pipeline_*.npz")))
def test_pipeline_matches_feed_data(name):
  d = _load(name)
  cfg = _fixture_config()
  batch, draws, fields = _pipeline_inputs(d, cfg)
  pool = pipeline.init_pool_state(cfg, 2, 3)
  out, pool = _degrade_with_draws(batch, draws, jax.random.key(0), pool, fields)
  nchw = lambda v: np.asarray(v).transpose(0, 3, 1, 2)
  np.testing.assert_allclose(nchw(out["hr"]), d["gt_crop"], atol=1e-6)
  # A pixel whose residual sits at the 10/255 threshold may flip its mask bit.
  assert np.abs(nchw(out["hr_usm"]) - d["gt_usm"]).max() <= 5e-4
  diff = np.abs(nchw(out["lr"]) - d["lq"])
  assert diff.mean() <= 1 / 255, diff.mean()
  assert np.mean(diff > 1.5 / 255) < 0.02, np.mean(diff > 1.5 / 255)


@pytest.mark.slow
def test_pool_fills_then_swaps():
  cfg = pipeline.default_params()
  cfg.gt_size, cfg.queue_size = 8, 4
  pool = pipeline.init_pool_state(cfg, 2, 1)
  outs = []
  for step in range(6):
    lr = jnp.full((2, 2, 2, 1), step, jnp.float32)
    pool, lr_out, hr_out = pipeline.pool_update(pool, lr, jnp.full((2, 8, 8, 1), step, jnp.float32),
                                               jax.random.key(step))
    outs.append(np.asarray(lr_out[:, 0, 0, 0]))
    np.testing.assert_array_equal(lr_out[:, 0, 0, 0], hr_out[:, 0, 0, 0])  # pairs stay paired
  np.testing.assert_array_equal(outs[0], [0, 0])
  np.testing.assert_array_equal(outs[1], [1, 1])
  seen = np.concatenate(outs[2:] + [np.asarray(pool["lr"][:, 0, 0, 0])])
  np.testing.assert_array_equal(np.sort(seen), np.repeat(np.arange(6), 2))  # nothing lost


@pytest.mark.slow
def test_degrade_is_pure_and_shaped():
  cfg = pipeline.default_params()
  cfg.crop_size, cfg.gt_size, cfg.queue_size, cfg.lr_bits = 96, 64, 4, 12
  t = sampling.RealESRGANSample.from_config(cfg)
  rng = np.random.default_rng(0)
  image = rng.random((120, 130), dtype=np.float32)
  recs = [t.random_map({"image": image}, np.random.default_rng(i)) for i in range(2)]
  batch = {k: np.stack([r[k] for r in recs]) for k in recs[0]}
  degrade = jax.jit(pipeline.make_degrade_fn(cfg))
  pool = pipeline.init_pool_state(cfg, 2, 1)
  for step in range(3):  # the draws cover Poisson and Gaussian noise across steps
    key = jax.random.fold_in(jax.random.key(3), step)
    a, pool_a = degrade(batch, key, pool)
    b, _ = degrade(batch, key, pool)
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])
    pool, last = pool_a, (key, pool)
  # The same on a batch split over devices (as the train step receives it).
  mesh = sharding.make_mesh(2)
  c, _ = degrade(jax.device_put(batch, sharding.data_sharded(mesh)), *last)
  for k in a:
    np.testing.assert_allclose(np.asarray(c[k]), np.asarray(a[k]), atol=1e-5)
  assert a["lr"].shape == (2, 16, 16, 1) and a["hr"].shape == a["hr_usm"].shape == (2, 64, 64, 1)
  for v in a.values():
    assert 0.0 <= float(v.min()) and float(v.max()) <= 1.0
  levels = np.asarray(a["lr"]) * 4095
  np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)  # 12-bit LR



def test_clean_lr_matrix_is_the_evaluation_bicubic_lr():
  """with_clean_samples makes exactly the LR jaxsr evaluate makes for clean inputs."""
  from jaxsr.degradations import bicubic  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(3)
  hr = rng.random((2, 1, 32, 32)).astype(np.float32)
  cfg = pipeline.default_params(scale=4, gt_size=32)
  cfg.lr_bits = 12
  fake = np.full((2, 1, 8, 8), 0.5, np.float32)
  out = np.asarray(pipeline.with_clean_samples(cfg, jnp.asarray(fake), jnp.asarray(hr),
                                               jnp.asarray([True, False])))
  np.testing.assert_allclose(out[0, 0], bicubic.make_lr(hr[0, 0], 4, 12), atol=1.5 / 4095)
  np.testing.assert_array_equal(out[1], fake[1])


def test_clean_prob_replaces_that_share_of_samples_and_leaves_the_other_draws():
  cfg = pipeline.default_params(scale=4, gt_size=64)
  cfg.crop_size = 96
  plain = pipeline.draw_batch(jax.random.key(0), cfg, 4000)
  cfg.clean_prob = 0.25
  mixed = pipeline.draw_batch(jax.random.key(0), cfg, 4000)
  assert not np.any(plain["clean"])
  assert abs(float(np.mean(mixed["clean"])) - 0.25) < 0.03
  for key in plain:
    if key != "clean":
      np.testing.assert_array_equal(plain[key], mixed[key])
