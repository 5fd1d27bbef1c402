"""ESRGAN stage 2: RRDBNet + relativistic GAN (BasicSR train_ESRGAN_x4.yml).

Starts from the PSNR model (``--config.init_from``). VGG-style discriminator
(64 features, 128x128 input); L1 1e-2 + VGG19 conv5_4 (before ReLU, L1) 1.0 +
relativistic average GAN 5e-3; G and D Adam 1e-4, betas (0.9, 0.99), halved at
50k, 100k, 200k and 300k; 400k steps; EMA 0.999. (The paper uses beta2 0.999;
BasicSR's recipe, followed here, 0.99.)

  python -m jaxsr.main --config=configs/esrgan.py --workdir=runs/esrgan \
      --config.data.train_dir=DIR --config.data.eval_dir=DIR2 \
      --config.init_from=runs/esrgan_psnr --config.loss.vgg_weights=PATH
"""
from jaxsr import config as base


def get_config(arg: str = ""):
  c = base.base_config()
  c.name = "esrgan"
  c.model = base.rrdbnet()
  c.discriminator.name = "vgg_style"
  c.loss.pixel_type = "l1"
  c.loss.pixel_weight = 1e-2
  c.loss.perceptual_weight = 1.0
  c.loss.perceptual_layers = {"conv5_4": 1.0}
  c.loss.perceptual_before_activation = True
  c.loss.perceptual_criterion = "l1"
  c.loss.gan_type = "ragan"
  c.loss.gan_weight = 5e-3
  for opt in (c.optim_g, c.optim_d):
    opt.lr = 1e-4
    opt.schedule = "multistep"
    opt.milestones = (50_000, 100_000, 200_000, 300_000)
    opt.gamma = 0.5
  c.train.num_steps = 400_000
  if base.is_tiny(arg):
    base.make_tiny(c)
  return c
