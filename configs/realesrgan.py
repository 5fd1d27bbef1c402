"""Real-ESRGAN: RRDBNet + U-Net discriminator on the degradations (train_realesrgan_x4plus.yml).

Starts from Real-ESRNet (``--config.init_from``). UNetDiscriminatorSN
(64 features, skip connections); L1 1.0 and perceptual 1.0 (VGG19 conv1_2 0.1,
conv2_2 0.1, conv3_4 1, conv4_4 1, conv5_4 1, before ReLU, L1) against the
unsharp-masked target, vanilla GAN 0.1 against the plain target; G and D Adam
1e-4, betas (0.9, 0.99), halved at 400k; 400k steps; batch 48; EMA 0.999.
Departures as in configs/realesrnet.py.

  python -m jaxsr.main --config=configs/realesrgan.py --workdir=runs/realesrgan \
      --config.data.train_dir=DIR --config.data.eval_dir=DIR2 \
      --config.init_from=runs/realesrnet --config.loss.vgg_weights=PATH
"""
from jaxsr import config as base


def get_config(arg: str = ""):
  c = base.base_config()
  c.name = "realesrgan"
  c.model = base.rrdbnet()
  c.degradation = base.realesrgan_degradation()
  c.data.patch_size = 256  # Real-ESRGAN's gt_size: HR pairs cut from the degraded crops.
  c.data.batch_size = 48
  c.data.use_rot = False
  c.discriminator.name = "unet_disc"
  c.discriminator.skip_connection = True
  c.loss.pixel_type = "l1"
  c.loss.pixel_weight = 1.0
  c.loss.perceptual_weight = 1.0
  c.loss.perceptual_layers = {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0,
                              "conv5_4": 1.0}
  c.loss.perceptual_before_activation = True
  c.loss.perceptual_criterion = "l1"
  c.loss.gan_type = "vanilla"
  c.loss.gan_weight = 0.1
  c.loss.pixel_on_usm = True
  c.loss.perceptual_on_usm = True
  c.loss.gan_on_usm = False
  for opt in (c.optim_g, c.optim_d):
    opt.lr = 1e-4
    opt.schedule = "multistep"
    opt.milestones = (400_000,)
    opt.gamma = 0.5
  c.train.num_steps = 400_000
  if base.is_tiny(arg):
    base.make_tiny(c)
  return c
