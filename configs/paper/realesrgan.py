"""Paper stage 6 of 6: Real-ESRGAN, started from the Real-ESRNet stage (``init_from``).

As Real-ESRGAN's train_realesrgan_x4plus: the degradation of the Real-ESRNet
stage; U-Net discriminator with spectral norm and skip connections (64
features with ``:full``, PAPER_DISC_FEAT on a CPU); L1 1.0 and VGG19
perceptual 1.0 (conv1_2 0.1, conv2_2 0.1, conv3_4 1, conv4_4 1, conv5_4 1,
before ReLU, L1) on the unsharp-masked HR, vanilla GAN 0.1 on the plain HR; G
and D Adam 1e-4 with betas (0.9, 0.99), constant (halved only at the
reference's last step); EMA 0.999 with warm-up. Without ``:vgg`` the
perceptual weight goes to the L1 (2.0 in all).

  python -m jaxsr.main --config=configs/paper/realesrgan.py --workdir=runs/paper/realesrgan \\
      --config.init_from=runs/paper/realesrnet \\
      --config.data.train_dir=../shared/data/xray/png,../shared/data/xray_train
"""
from jaxsr import config as base


def get_config(arg: str = ""):
  c, options, _ = base.paper_stage("Real-ESRGAN", arg, base.rrdbnet())
  c.degradation = base.realesrgan_degradation()
  c.degradation.crop_size = 256
  c.degradation.queue_size = 8 * c.data.batch_size
  c.data.use_rot = False
  c.discriminator.name = "unet_disc"
  c.discriminator.skip_connection = True
  c.loss.pixel_type = "l1"
  base.paper_content(c, options, pixel_weight=1.0, perceptual_weight=1.0,
                     layers={"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0,
                             "conv5_4": 1.0}, before_activation=True, criterion="l1")
  c.loss.gan_type = "vanilla"
  c.loss.gan_weight = 0.1
  c.loss.pixel_on_usm = True
  c.loss.perceptual_on_usm = True
  c.loss.gan_on_usm = False
  for opt in (c.optim_g, c.optim_d):
    opt.lr = 1e-4
  c.train.ema_warmup = True
  return base.paper_finish(c, options)
