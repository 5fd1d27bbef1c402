"""Reference outputs of BasicSR / Real-ESRGAN for the parity tests.

Runs in the PyTorch reference environment (torch, basicsr 1.4.2,
realesrgan 0.3.0), never in the tests:

  REF=~/.cache/jaxsr/ref-venv/bin/python
  $REF tools/make_parity_fixtures.py                    # tests/fixtures/parity
  $REF tools/make_parity_fixtures.py --full_size --out=/tmp/parity_full
  python tools/check_parity.py --dir=/tmp/parity_full
  python tools/check_parity.py --export_dir=/tmp/parity_export
  $REF tools/make_parity_fixtures.py --check_exports=/tmp/parity_export

Each network fixture is NAME.pth (the state dict, as torch.save writes it)
plus NAME.npz: the input ``x`` and output ``y`` (NCHW) and ``spec`` (JSON:
arch, scale, channels, kwargs). Weights are random but He-scaled, so every
layer matters to the output, and rounded to float16 (stored so) to keep the
repository small; the reference runs in float32 on the rounded values.
The spectral-norm discriminator is run once in train mode (``y``, and its
``weight_u``/``weight_v`` after one power iteration as ``after:KEY``), then
in eval mode (``y_eval``). losses.npz holds GAN and perceptual losses.
"""
import argparse
import json
import pathlib
import tempfile

import numpy as np
import torch

from basicsr.archs.discriminator_arch import UNetDiscriminatorSN, VGGStyleDiscriminator
from basicsr.archs.rrdbnet_arch import RRDBNet
from basicsr.archs.srresnet_arch import MSRResNet
from basicsr.losses.gan_loss import GANLoss
from realesrgan.archs.srvgg_arch import SRVGGNetCompact

REPO = pathlib.Path(__file__).resolve().parents[1]
VGG_SEED = 1234


def random_vgg19_features(seed):
  """torchvision vgg19 'features.N.{weight,bias}' arrays drawn from ``seed``.

  tests/test_parity.py draws the same; keep the two in step.
  """
  cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
         512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
  rng = np.random.default_rng(seed)
  state, index, cin = {}, 0, 3
  for item in cfg:
    if item == "M":
      index += 1
      continue
    w = rng.standard_normal((item, cin, 3, 3), dtype=np.float32) * np.float32(np.sqrt(2 / (cin * 9)))
    state[f"features.{index}.weight"] = w
    state[f"features.{index}.bias"] = rng.standard_normal(item, dtype=np.float32) * np.float32(0.01)
    index, cin = index + 2, item
  return state


def build(arch, scale, c, kwargs):
  if arch == "rrdbnet":
    return RRDBNet(c, c, scale=scale, **kwargs)
  if arch == "srvgg":
    return SRVGGNetCompact(c, c, upscale=scale, **kwargs)
  if arch == "msrresnet":
    return MSRResNet(c, c, upscale=scale, **kwargs)
  if arch == "vgg_style":
    return VGGStyleDiscriminator(c, **kwargs)
  if arch == "unet_disc":
    return UNetDiscriminatorSN(c, **kwargs)
  raise ValueError(arch)


def randomize(net, gen, half):
  """He-scaled random weights (BN: random affine and running stats)."""
  with torch.no_grad():
    for name, p in net.named_parameters():
      if p.ndim >= 2:
        fan_in = p[0].numel()
        p.copy_(torch.randn(p.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
      elif name.endswith("bias"):
        p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
      else:  # PReLU slopes, BN scales.
        p.copy_(torch.rand(p.shape, generator=gen) * 0.5 + (0.75 if "bn" in name else 0.0))
      if half:
        p.copy_(p.half().float())
    for name, b in net.named_buffers():
      if name.endswith("running_mean"):
        b.copy_(torch.randn(b.shape, generator=gen) * 0.1)
      elif name.endswith("running_var"):
        b.copy_(torch.rand(b.shape, generator=gen) + 0.5)


def state_for_file(net, half):
  params = {n for n, _ in net.named_parameters()}
  return {k: (v.half() if half and k in params else v.clone())
          for k, v in net.state_dict().items()}


def make_net(out, name, arch, scale, c, kwargs, lr_side, seed, half=True, batch=1):
  gen = torch.Generator().manual_seed(seed)
  torch.manual_seed(seed)
  net = build(arch, scale, c, kwargs)
  if half:  # Small nets: He-scaled weights so that every layer shows.
    randomize(net, gen, half)
  x = torch.rand((batch, c, lr_side, lr_side), generator=gen)
  if half:
    x = x.half().float()
  spec = dict(arch=arch, scale=scale, num_channels=c, arch_kwargs=kwargs)
  arrays = dict(x=x.numpy().astype(np.float16 if half else np.float32),
                spec=np.array(json.dumps(spec)))
  state = state_for_file(net, half)
  if arch == "unet_disc":
    net.train()
    with torch.no_grad():
      arrays["y"] = net(x).numpy()
    for k, v in net.state_dict().items():
      if k.endswith(("weight_u", "weight_v")):
        arrays[f"after:{k}"] = v.numpy()
    net.eval()
  else:
    net.eval()
  with torch.no_grad():
    arrays["y_eval" if arch == "unet_disc" else "y"] = net(x).numpy()
  wrapped = {"params_ema": state} if arch not in ("vgg_style", "unet_disc") else state
  torch.save(wrapped, out / f"{name}.pth")
  np.savez_compressed(out / f"{name}.npz", **arrays)


def small_fixtures(out):
  for c, rrdb in ((3, dict(num_feat=16, num_block=2, num_grow_ch=8)),
                  (1, dict(num_feat=8, num_block=2, num_grow_ch=4))):
    for scale, side in ((4, 8), (2, 12), (1, 16)):
      make_net(out, f"rrdbnet_x{scale}_c{c}", "rrdbnet", scale, c, rrdb, side, 10 * scale + c)
  for scale in (4, 2):
    make_net(out, f"srvgg_x{scale}", "srvgg", scale, 3,
             dict(num_feat=16, num_conv=4, act_type="prelu"), 10, 100 + scale)
  make_net(out, "srvgg_x4_c1_lrelu", "srvgg", 4, 1,
           dict(num_feat=8, num_conv=2, act_type="leakyrelu"), 8, 110)
  make_net(out, "msrresnet_x4", "msrresnet", 4, 3, dict(num_feat=16, num_block=2), 10, 200)
  make_net(out, "msrresnet_x3_c1", "msrresnet", 3, 1, dict(num_feat=16, num_block=2), 8, 201)
  make_net(out, "vgg_disc_128", "vgg_style", None, 3, dict(num_feat=4, input_size=128), 128, 300)
  make_net(out, "unet_disc", "unet_disc", None, 3, dict(num_feat=8), 32, 400, batch=2)
  make_losses(out)


def make_losses(out):
  gen = torch.Generator().manual_seed(500)
  real, fake = torch.randn((2, 1, 8, 8), generator=gen), torch.randn((2, 1, 8, 8), generator=gen)
  gan = GANLoss("vanilla", loss_weight=1.0)
  values = {
      "vanilla_g": gan(fake, True, is_disc=False),
      "vanilla_d_real": gan(real, True, is_disc=True),
      "vanilla_d_fake": gan(fake, False, is_disc=True),
      # ESRGANModel.optimize_parameters, relativistic average GAN.
      "ragan_g": (gan(real - torch.mean(fake), False, is_disc=False)
                  + gan(fake - torch.mean(real), True, is_disc=False)) / 2,
      "ragan_d_real": gan(real - torch.mean(fake), True, is_disc=True) * 0.5,
      "ragan_d_fake": gan(fake - torch.mean(real), False, is_disc=True) * 0.5,
  }
  sr = torch.rand((2, 3, 32, 32), generator=gen)
  hr = torch.rand((2, 3, 32, 32), generator=gen)
  values["perceptual"] = perceptual(sr, hr)
  np.savez_compressed(out / "losses.npz", real=real.numpy(), fake=fake.numpy(), sr=sr.numpy(),
                      hr=hr.numpy(), vgg_seed=np.array(VGG_SEED),
                      **{k: np.array(float(v)) for k, v in values.items()})


def perceptual(sr, hr):
  """BasicSR's PerceptualLoss (Real-ESRGAN's layer weights) on seeded VGG weights.

  VGGFeatureExtractor reads VGG_PRETRAIN_PATH when that file exists (else it
  downloads ImageNet weights), so point it at a file with the seeded weights.
  """
  import torchvision  # pylint: disable=import-outside-toplevel
  from basicsr.archs import vgg_arch  # pylint: disable=import-outside-toplevel
  from basicsr.losses.basic_loss import PerceptualLoss  # pylint: disable=import-outside-toplevel
  state = torchvision.models.vgg19(weights=None).state_dict()
  state.update({k: torch.from_numpy(v) for k, v in random_vgg19_features(VGG_SEED).items()})
  with tempfile.TemporaryDirectory() as tmp:
    vgg_arch.VGG_PRETRAIN_PATH = str(pathlib.Path(tmp) / "vgg19.pth")
    torch.save(state, vgg_arch.VGG_PRETRAIN_PATH)
    loss = PerceptualLoss({"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1, "conv4_4": 1,
                           "conv5_4": 1}, vgg_type="vgg19", use_input_norm=True,
                          range_norm=False, perceptual_weight=1.0, style_weight=0.0,
                          criterion="l1")
  with torch.no_grad():
    value, style = loss(sr, hr)
  assert style is None
  return value


def full_size_fixtures(out):
  """Real-ESRGAN's published shapes with the reference's own random init.

  Float32 weights, not for the repository. The init keeps outputs at image
  scale (He-scaled weights through 23 blocks would reach the hundreds).
  """
  rrdb = dict(num_feat=64, num_block=23, num_grow_ch=32)
  make_net(out, "RealESRGAN_x4plus", "rrdbnet", 4, 3, rrdb, 32, 1, half=False)
  make_net(out, "RealESRGAN_x2plus", "rrdbnet", 2, 3, rrdb, 32, 2, half=False)
  make_net(out, "RealESRGAN_x4plus_anime_6B", "rrdbnet", 4, 3, dict(rrdb, num_block=6), 32, 3,
           half=False)
  make_net(out, "RRDBNet_x4_grey", "rrdbnet", 4, 1, rrdb, 32, 4, half=False)
  make_net(out, "realesr-general-x4v3", "srvgg", 4, 3,
           dict(num_feat=64, num_conv=32, act_type="prelu"), 32, 5, half=False)
  make_net(out, "realesr-animevideov3", "srvgg", 4, 3,
           dict(num_feat=64, num_conv=16, act_type="prelu"), 32, 6, half=False)
  make_net(out, "MSRResNet_x4", "msrresnet", 4, 3, dict(num_feat=64, num_block=16), 32, 7,
           half=False)
  make_net(out, "VGGStyleDiscriminator_128", "vgg_style", None, 3,
           dict(num_feat=64, input_size=128), 128, 8, half=False)
  make_net(out, "UNetDiscriminatorSN", "unet_disc", None, 3, dict(num_feat=64), 64, 9,
           half=False)


def check_exports(folder):
  """Loads our exported .pth files into the reference nets with strict=True."""
  for npz in sorted(pathlib.Path(folder).glob("*.npz")):
    data = np.load(npz)
    spec = json.loads(str(data["spec"]))
    net = build(spec["arch"], spec["scale"], spec["num_channels"], spec["arch_kwargs"])
    loaded = torch.load(npz.with_suffix(".pth"), map_location="cpu", weights_only=True)
    net.load_state_dict(loaded["params"], strict=True)
    net.eval()
    with torch.no_grad():
      y = net(torch.from_numpy(data["x"]).float()).numpy()
    diff = np.abs(y - data["y"]).max()
    print(f"export {npz.stem}: strict load ok, max |torch - jax| = {diff:.3g} "
          f"(|y| max {np.abs(y).max():.3g})")


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", default=str(REPO / "tests" / "fixtures" / "parity"))
  parser.add_argument("--full_size", action="store_true")
  parser.add_argument("--check_exports")
  args = parser.parse_args()
  if args.check_exports:
    check_exports(args.check_exports)
    return
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  torch.use_deterministic_algorithms(True)
  (full_size_fixtures if args.full_size else small_fixtures)(out)
  total = sum(p.stat().st_size for p in out.iterdir())
  print(f"wrote {len(list(out.iterdir()))} files, {total / 1e6:.2f} MB, to {out}")


if __name__ == "__main__":
  main()
