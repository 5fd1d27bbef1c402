"""Paper stage 4 of 6: ESRGAN, started from the RRDB-PSNR stage (``init_from``).

BasicSR's train_ESRGAN_x4 losses: L1 1e-2, VGG19 conv5_4 (before ReLU, L1)
1.0, relativistic average GAN 5e-3, against the VGG-style 128x128
discriminator (64 features with ``:full``, PAPER_DISC_FEAT on a CPU); G and D
Adam 1e-4 with betas (0.9, 0.99), halved at 1/8, 1/4, 1/2 and 3/4 of the
steps (50k, 100k, 200k, 300k of 400k); EMA 0.999 with warm-up. Without
``:vgg`` the VGG term's weight goes to the L1 (1.01 in all).

  python -m jaxsr.main --config=configs/paper/esrgan.py --workdir=runs/paper/esrgan \\
      --config.init_from=runs/paper/rrdb_psnr \\
      --config.data.train_dir=../shared/data/xray/png,../shared/data/xray_train
"""
from jaxsr import config as base


def get_config(arg: str = ""):
  c, options, steps = base.paper_stage("ESRGAN", arg, base.rrdbnet())
  c.discriminator.name = "vgg_style"
  c.loss.pixel_type = "l1"
  base.paper_content(c, options, pixel_weight=1e-2, perceptual_weight=1.0,
                     layers={"conv5_4": 1.0}, before_activation=True, criterion="l1")
  c.loss.gan_type = "ragan"
  c.loss.gan_weight = 5e-3
  for opt in (c.optim_g, c.optim_d):
    opt.lr = 1e-4
    opt.schedule = "multistep"
    opt.milestones = (steps // 8, steps // 4, steps // 2, 3 * steps // 4)
    opt.gamma = 0.5
  c.train.ema_warmup = True
  return base.paper_finish(c, options)
