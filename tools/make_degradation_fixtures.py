"""Writes tests/fixtures/degradations/*.npz: BasicSR/Real-ESRGAN outputs for parity tests.

Runs in the PyTorch reference venv only (CI has no torch; the tests read the
stored arrays):

  ~/.cache/jaxsr/ref-venv/bin/python tools/make_degradation_fixtures.py

Inputs are small synthetic images so the fixtures stay well under 3 MB.
Each file holds the inputs, the parameters (draws) and the reference outputs.
"""
import argparse
import json
import math
import pathlib
import random

import numpy as np
import torch
from torch.nn import functional as F

from basicsr.data import degradations as bd
from basicsr.utils import DiffJPEG, USMSharp
from basicsr.utils import img_process_util
from realesrgan.models import realesrgan_model
from realesrgan.models.realesrgan_model import RealESRGANModel

OUT = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "degradations"


def test_image(rng, n, h, w, c):
  """Smooth shading plus edges and texture: exercises blur, USM and JPEG."""
  yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
  out = np.empty((n, c, h, w), np.float32)
  for i in range(n):
    for ch in range(c):
      a, b, f = rng.uniform(0.2, 0.8, 3)
      img = 0.5 + 0.3 * np.sin(2 * np.pi * (a * 3 * xx + b * 2 * yy)) * f
      img += 0.25 * ((xx - a) ** 2 + (yy - b) ** 2 < 0.05)
      img += 0.05 * rng.standard_normal((h, w))
      out[i, ch] = np.clip(img, 0, 1)
  return np.round(out * 255) / 255  # 8-bit content, as decoded images are


def kernels():
  cases = []
  for size in (7, 13, 21):
    for kind in ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso",
                 "plateau_aniso"):
      p = {"kind": kind, "size": size, "sigma_x": 0.2 + 0.4 * size / 7, "sigma_y": 1.1,
           "theta": 0.7, "beta": 0.6 if "generalized" in kind else 1.7}
      iso = "aniso" not in kind
      sx, sy, th = p["sigma_x"], (p["sigma_x"] if iso else p["sigma_y"]), (0 if iso else p["theta"])
      if kind in ("iso", "aniso"):
        k = bd.bivariate_Gaussian(size, sx, sy, th, isotropic=iso)
      elif "generalized" in kind:
        k = bd.bivariate_generalized_Gaussian(size, sx, sy, th, p["beta"], isotropic=iso)
      else:
        k = bd.bivariate_plateau(size, sx, sy, th, p["beta"], isotropic=iso)
      cases.append((p, k))
    for cutoff in (math.pi / 5, math.pi / 2, math.pi):
      cases.append(({"kind": "sinc", "size": size, "cutoff": cutoff},
                    bd.circular_lowpass_kernel(cutoff, size, pad_to=0)))
  arrays = {f"k{i}": np.asarray(k, np.float64) for i, (_, k) in enumerate(cases)}
  np.savez_compressed(OUT / "kernels.npz", params=json.dumps([p for p, _ in cases]), **arrays)


def ops(rng):
  img = test_image(rng, 2, 48, 48, 3)
  t = torch.from_numpy(img)
  out = {"img": np.round(img * 255).astype(np.uint8)}
  kern = np.stack([bd.random_mixed_kernels(["aniso"], [1.0], 21, (0.5, 3), (0.5, 3), (-3, 3),
                                           None, None), bd.circular_lowpass_kernel(1.0, 21)])
  out["blur_kernels"] = kern.astype(np.float32)
  out["blur"] = img_process_util.filter2D(t, torch.from_numpy(out["blur_kernels"])).numpy()
  resizes = []
  for mode in ("area", "bilinear", "bicubic"):
    for spec in (("scale", 0.37), ("scale", 1.3), ("scale", 0.15), ("size", 23), ("size", 100),
                 ("size", 48)):
      kw = ({"scale_factor": spec[1]} if spec[0] == "scale" else {"size": (spec[1], spec[1])})
      r = F.interpolate(t[:, :1], mode=mode, **kw).numpy()
      out[f"resize_{len(resizes)}"] = r
      resizes.append({"mode": mode, "kind": spec[0], "value": spec[1]})
  out["resize_specs"] = json.dumps(resizes)
  out["usm"] = USMSharp()(t).numpy()
  jpeger = DiffJPEG(differentiable=False)
  q = torch.tensor([35.0, 80.0])
  out["jpeg_quality"] = q.numpy()
  out["jpeg_rgb"] = jpeger(t, quality=q.clone()).numpy()
  odd = t[:, :, :40, :]  # 40 x 48: not multiples of 16
  out["jpeg_rgb_odd"] = jpeger(odd.contiguous(), quality=q.clone()).numpy()
  gray = t[:, :1].repeat(1, 3, 1, 1)
  out["jpeg_gray"] = jpeger(gray, quality=q.clone()).numpy().mean(axis=1, keepdims=True)
  # Gaussian noise with the fields recorded (re-seeded and redrawn in the same order).
  sigma, grayflag = torch.tensor([5.0, 20.0]), torch.tensor([0.0, 1.0])
  torch.manual_seed(3)
  out["gauss_noise"] = bd.generate_gaussian_noise_pt(t, sigma, grayflag).numpy()
  torch.manual_seed(3)
  out["gauss_gray_field"] = torch.randn(48, 48).numpy()
  out["gauss_color_field"] = torch.randn(2, 3, 48, 48).numpy()
  out["gauss_sigma"], out["gauss_gray"] = sigma.numpy(), grayflag.numpy()
  # Poisson: flat images with a known number of levels; compare statistics.
  levels = np.stack([np.full((3, 64, 64), 0.5, np.float32), np.full((3, 64, 64), 0.2, np.float32)])
  levels[0, 0, :5, :10] = np.arange(50).reshape(5, 10) / 255.0  # 51 levels -> vals 64
  levels[1, 1, :10, :20] = np.arange(200).reshape(10, 20) / 255.0  # -> vals 256
  out["poisson_img"] = levels
  scale = torch.tensor([1.0, 2.0])
  torch.manual_seed(4)
  out["poisson_noise"] = bd.generate_poisson_noise_pt(torch.from_numpy(levels), scale, 0).numpy()
  out["poisson_scale"] = scale.numpy()
  np.savez_compressed(OUT / "ops.npz", **out)


class _Recorder:
  """Wraps the module attributes feed_data uses so every draw is logged."""

  def __init__(self):
    self.events = []

  def install(self, model):
    rec = self
    orig_interp, orig_gauss = F.interpolate, bd.generate_gaussian_noise_pt
    orig_randint = random.randint

    class _F:
      def __getattr__(self, name):
        return getattr(F, name)

      @staticmethod
      def interpolate(x, size=None, scale_factor=None, mode="nearest"):
        rec.events.append(("resize", size[0] if size else None, scale_factor, mode))
        return orig_interp(x, size=size, scale_factor=scale_factor, mode=mode)

    def gauss(img, sigma, gray_noise):
      seed = len(rec.events) + 100
      torch.manual_seed(seed)
      noise = orig_gauss(img, sigma, gray_noise)
      torch.manual_seed(seed)
      b, c, h, w = img.shape
      gray_field = torch.randn(h, w) if gray_noise.sum() > 0 else torch.zeros(h, w)
      color = torch.randn(b, c, h, w)
      rec.events.append(("noise", sigma.view(-1).numpy().copy(), gray_noise.view(-1).numpy().copy(),
                         color.numpy(), gray_field.numpy()))
      return noise

    def blur(img, k):
      rec.events.append(("blur",))
      return img_process_util.filter2D(img.contiguous(), k)

    jpeger = model.jpeger

    def jpeg(x, quality):
      rec.events.append(("jpeg", quality.numpy().copy()))
      return jpeger(x, quality)

    def randint(a, b):
      v = orig_randint(a, b)
      rec.events.append(("randint", v))
      return v

    realesrgan_model.F = _F()
    bd.generate_gaussian_noise_pt = gauss
    realesrgan_model.filter2D = blur
    model.jpeger = jpeg
    random.randint = randint
    return lambda: (setattr(realesrgan_model, "F", F),
                    setattr(bd, "generate_gaussian_noise_pt", orig_gauss),
                    setattr(realesrgan_model, "filter2D", img_process_util.filter2D),
                    setattr(random, "randint", orig_randint))


def reference_model(opt):
  """RealESRGANModel without __init__ (which moves modules to CUDA)."""
  model = RealESRGANModel.__new__(RealESRGANModel)
  model.opt, model.is_train, model.device = opt, True, torch.device("cpu")
  model.jpeger, model.usm_sharpener = DiffJPEG(differentiable=False), USMSharp()
  model.queue_size = opt["queue_size"]
  lq, gt = opt["gt_size"] // opt["scale"], opt["gt_size"]
  model.queue_lr, model.queue_gt = torch.zeros(model.queue_size, 3, lq, lq), torch.zeros(
      model.queue_size, 3, gt, gt)
  model.queue_ptr = 0
  return model


def pipeline_case(rng, seed, second_blur_prob):
  opt = {"scale": 4, "gt_size": 64, "queue_size": 4,
         "resize_prob": [0.2, 0.7, 0.1], "resize_range": [0.15, 1.5],
         "gaussian_noise_prob": 1.0, "noise_range": [1, 30], "poisson_scale_range": [0.05, 3],
         "gray_noise_prob": 0.4, "jpeg_range": [30, 95], "second_blur_prob": second_blur_prob,
         "resize_prob2": [0.3, 0.4, 0.3], "resize_range2": [0.3, 1.2],
         "gaussian_noise_prob2": 1.0, "noise_range2": [1, 25],
         "poisson_scale_range2": [0.05, 2.5], "gray_noise_prob2": 0.4, "jpeg_range2": [30, 95]}
  gt = test_image(rng, 2, 96, 96, 3)
  np.random.seed(seed)
  random.seed(seed)
  torch.manual_seed(seed)
  ks = lambda: np.stack([np.pad(bd.random_mixed_kernels(
      ["iso", "aniso", "generalized_aniso", "plateau_aniso"], [0.25] * 4, 13, (0.5, 2), (0.5, 2),
      (-math.pi, math.pi), (0.5, 4), (1, 2)), 4) for _ in range(2)]).astype(np.float32)
  k1, k2 = ks(), ks()
  sinc = np.stack([np.pad(bd.circular_lowpass_kernel(2.0, 11), 5),
                   np.pad(np.ones((1, 1)), 10)]).astype(np.float32)
  model = reference_model(opt)
  rec = _Recorder()
  restore = rec.install(model)
  try:
    model.feed_data({"gt": torch.from_numpy(gt), "kernel1": torch.from_numpy(k1),
                     "kernel2": torch.from_numpy(k2), "sinc_kernel": torch.from_numpy(sinc)})
  finally:
    restore()
  ev = rec.events
  resizes = [e for e in ev if e[0] == "resize"]
  noises = [e for e in ev if e[0] == "noise"]
  jpegs = [e for e in ev if e[0] == "jpeg"]
  kinds = [e[0] for e in ev]
  modes = {"area": 0, "bilinear": 1, "bicubic": 2}
  draws = {
      "scale1": resizes[0][2], "mode1": modes[resizes[0][3]],
      "n2": resizes[1][1], "mode2": modes[resizes[1][3]], "mode3": modes[resizes[2][3]],
      "blur2": kinds.count("blur") == 3,
      "resize_first": kinds.index("resize", kinds.index("noise", kinds.index("noise") + 1))
                      < len(kinds) - 1 - kinds[::-1].index("jpeg"),
      "top": [e[1] for e in ev if e[0] == "randint"][0],
      "left": [e[1] for e in ev if e[0] == "randint"][1],
  }
  out = {"gt": np.round(gt * 255).astype(np.uint8), "kernel1": k1, "kernel2": k2, "sinc_kernel": sinc,
         "draws": json.dumps(draws), "lq": model.lq.numpy(), "gt_crop": model.gt.numpy(),
         "gt_usm": model.gt_usm.numpy()}
  for i, n in enumerate(noises, 1):
    out[f"noise_sigma{i}"], out[f"gray_noise{i}"] = n[1], n[2]
    out[f"color_field{i}"], out[f"gray_field{i}"] = n[3], n[4]
  for i, j in enumerate(jpegs, 1):
    out[f"jpeg_quality{i}"] = j[1]
  np.savez_compressed(OUT / f"pipeline_{seed}.npz", **out)
  return draws


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.parse_args()
  OUT.mkdir(parents=True, exist_ok=True)
  torch.set_num_threads(2)
  torch.set_grad_enabled(False)
  rng = np.random.default_rng(0)
  kernels()
  ops(rng)
  for seed, blur2 in ((1, 1.0), (2, 0.0), (5, 1.0)):
    print(seed, pipeline_case(rng, seed, blur2))
  for seed in range(100, 200):  # first seed whose first resize enlarges
    draws = pipeline_case(rng, seed, 1.0)
    if draws["scale1"] > 1:
      print(seed, draws)
      break
    (OUT / f"pipeline_{seed}.npz").unlink()
  total = sum(p.stat().st_size for p in OUT.iterdir())
  print(f"wrote {OUT} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
  main()
