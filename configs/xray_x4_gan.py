"""xray_x4_gan: the shipped Real-ESRGAN-style x4 radiograph model (grey).

Fine-tunes xray_x4 (``--config.init_from``; same SRVGGNetCompact, 64
features, 10 convs) on Real-ESRGAN's second-order degradation with milder,
radiograph-like ranges (blur sigma up to 1.5/1.0, Gaussian noise sigma up to
10/8 grey levels of 255, Poisson scale up to 1.0, JPEG quality 60-95, LR kept
at 12 bits), against a U-Net discriminator with spectral norm (16 features,
skip connections). Losses: L1 1.0 on the unsharp-masked target, vanilla GAN
0.1 on the plain target; G and D Adam 1e-4, betas (0.9, 0.99); batch 8 of
128x128 HR patches cut from 256x256 crops, pool of 64 pairs; EMA 0.999 with
warm-up (train.ema_warmup); seed 0. Departure from Real-ESRGAN: no perceptual loss, since the VGG19
ImageNet weights it needs are not bundled (set loss.perceptual_weight=1.0 and
loss.vgg_weights to torchvision's vgg19-dcbb9e9d.pth to add it).

  python -m jaxsr.main --config=configs/xray_x4_gan.py --workdir=runs/xray_x4_gan \\
      --config.init_from=runs/xray_x4 \\
      --config.data.train_dir=../shared/data/xray/png \\
      --config.data.eval_dir=../shared/data/xray/png
"""
from jaxsr import config as base

NUM_STEPS = 1000


def get_config(arg: str = ""):
  c = base.base_config()
  c.name = "xray_x4_gan"
  c.scale = 4
  c.model = base.srvgg(num_feat=64, num_conv=10, act_type="prelu")
  base.radiograph_split(c)
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
  c.eval.center_crop = 512
  if base.is_tiny(arg):
    base.make_tiny(c)
    c.model.num_conv = 2
  return c
