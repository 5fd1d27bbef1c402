"""xray_x4_gan: the shipped Real-ESRGAN-style x4 radiograph model (grey).

Fine-tunes xray_x4 (``--config.init_from``; same generator) on Real-ESRGAN's
second-order degradation with milder, radiograph-like ranges (blur sigma up
to 1.5/1.0, Gaussian noise sigma up to 10/8 grey levels of 255, Poisson
scale up to 1.0, JPEG quality 60-95, LR kept at 12 bits), against a U-Net
discriminator with spectral norm (16 features, skip connections). Losses: L1
1.0 on the unsharp-masked target, vanilla GAN 0.1 on the plain target; G and
D Adam 1e-4, betas (0.9, 0.99); batch 8 of 128x128 HR patches cut from
256x256 crops, pool of 64 pairs; EMA 0.999 with warm-up (train.ema_warmup);
seed 0. Departure from Real-ESRGAN: no perceptual loss, since the VGG19
ImageNet weights it needs are not bundled (set loss.perceptual_weight=1.0 and
loss.vgg_weights to torchvision's vgg19-dcbb9e9d.pth to add it).

A quarter of the pairs are left clean (degradation.clean_prob 0.25, bicubic
LR only), so that the model keeps the detail of clean inputs.

Variants (``configs/xray_x4_gan.py:NAME``) change one thing each, for the
comparison in the model card; ``VARIANTS`` lists them:
  degraded    every pair degraded (clean_prob 0), the earlier recipe
  mild        milder degradations (blur <= 1.2/0.8, noise <= 6/5, JPEG 70-95)
  grad        plus a gradient L1 term (loss.gradient_weight 1.0)
  gan05       GAN weight 0.05 instead of 0.1
  nogan       no discriminator: L1 only (Real-ESRNet-style)

  python -m jaxsr.main --config=configs/xray_x4_gan.py --workdir=runs/xray_x4_gan \\
      --config.init_from=xray_x4 \\
      --config.data.train_dir=../shared/data/xray/png,../shared/data/xray_train \\
      --config.data.eval_dir=../shared/data/xray/png,../shared/data/xray_train
"""
from jaxsr import config as base

NUM_STEPS = 1500


# Each variant's overrides of the recipe below (flattened config keys).
VARIANTS = {
    "base": {},
    "degraded": {"degradation.clean_prob": 0.0},
    "mild": {"degradation.blur_sigma": (0.2, 1.2),
             "degradation.blur_sigma2": (0.2, 0.8), "degradation.noise_range": (1.0, 6.0),
             "degradation.noise_range2": (1.0, 5.0), "degradation.poisson_scale_range": (0.05, 0.6),
             "degradation.poisson_scale_range2": (0.05, 0.6), "degradation.jpeg_range": (70.0, 95.0),
             "degradation.jpeg_range2": (70.0, 95.0)},
    "grad": {"loss.gradient_weight": 1.0},
    "gan05": {"loss.gan_weight": 0.05},
    "nogan": {"loss.gan_weight": 0.0, "discriminator.name": ""},
}
DEFAULT = "base"


def _options(arg: str) -> tuple[str, bool]:
  options = [a for a in (arg or "").split(",") if a]
  names = [a for a in options if a != "tiny"] or [DEFAULT]
  if len(names) != 1 or names[0] not in VARIANTS:
    raise ValueError(f"configs/xray_x4_gan.py:[NAME][,tiny], NAME one of {sorted(VARIANTS)}")
  return names[0], "tiny" in options


def get_config(arg: str = ""):
  variant, tiny = _options(arg)
  c = base.base_config()
  c.name = "xray_x4_gan"
  c.scale = 4
  c.model = base.srvgg(num_feat=64, num_conv=10, act_type="prelu")
  base.radiograph_split(c)
  c.data.eval_include = base.XRAY_VALIDATION + base.XRAY_HELDOUT
  c.eval.groups = base.XRAY_GROUPS
  d = base.realesrgan_degradation()
  d.crop_size = 256
  d.queue_size = 64
  d.blur_sigma = (0.2, 1.5)
  d.blur_sigma2 = (0.2, 1.0)
  d.noise_range = (1.0, 10.0)
  d.noise_range2 = (1.0, 8.0)
  d.poisson_scale_range = (0.05, 1.0)
  d.poisson_scale_range2 = (0.05, 1.0)
  d.jpeg_range = (60.0, 95.0)
  d.jpeg_range2 = (60.0, 95.0)
  d.lr_bits = 12
  d.clean_prob = 0.25
  c.degradation = d
  c.data.patch_size = 128
  c.data.batch_size = 8
  c.data.use_rot = False
  c.data.cache_images = True
  c.discriminator.name = "unet_disc"
  c.discriminator.num_feat = 16
  c.discriminator.skip_connection = True
  c.loss.pixel_type = "l1"
  c.loss.pixel_weight = 1.0
  c.loss.perceptual_weight = 0.0
  c.loss.gan_type = "vanilla"
  c.loss.gan_weight = 0.1
  c.loss.pixel_on_usm = True
  c.loss.gan_on_usm = False
  for opt in (c.optim_g, c.optim_d):
    opt.lr = 1e-4
  c.train.num_steps = NUM_STEPS
  c.train.ema_warmup = True
  c.train.log_every = 50
  c.train.checkpoint_every = 250
  c.train.eval_every = 0
  for key, value in VARIANTS[variant].items():
    section, name = key.split(".")
    c[section][name] = value
  if variant != DEFAULT:
    c.name = f"xray_x4_gan_{variant}"
  if tiny:
    base.make_tiny(c)
    c.model.num_conv = 2
  return c
