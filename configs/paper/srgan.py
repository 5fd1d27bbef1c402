"""Paper stage 2 of 6: SRGAN, started from the SRResNet stage (``init_from``).

Ledig et al.'s losses: content + 1e-3 x adversarial (-log D(G(x))), one D
update per G update, BasicSR's VGG-style 128x128 discriminator (64 features
with ``:full``, PAPER_DISC_FEAT on a CPU); Adam 1e-4 with betas (0.9, 0.999)
for G and D, divided by 10 half-way (the paper's 10^5 + 10^5 updates scaled to
the stage's steps); no EMA. Content: with ``:vgg``, the paper's VGG54 (VGG19
conv5_4 after ReLU, MSE, features / 12.75); otherwise MSE on pixels, the
paper's SRGAN-MSE.

  python -m jaxsr.main --config=configs/paper/srgan.py --workdir=runs/paper/srgan \\
      --config.init_from=runs/paper/srresnet \\
      --config.data.train_dir=../shared/data/xray/png,../shared/data/xray_train
"""
from jaxsr import config as base


def get_config(arg: str = ""):
  c, options, steps = base.paper_stage("SRGAN", arg, base.model("srresnet", num_feat=64,
                                                              num_block=16))
  c.discriminator.name = "vgg_style"
  c.loss.pixel_type = "mse"
  base.paper_content(c, options, pixel_weight=0.0, perceptual_weight=1.0,
                     layers={"conv5_4": 1.0}, before_activation=False, criterion="l2",
                     feature_scale=1.0 / 12.75)
  c.loss.gan_type = "vanilla"
  c.loss.gan_weight = 1e-3
  for opt in (c.optim_g, c.optim_d):
    opt.lr = 1e-4
    opt.b2 = 0.999
    opt.schedule = "multistep"
    opt.milestones = (steps // 2,)
    opt.gamma = 0.1
  c.train.ema_decay = 0.0
  return base.paper_finish(c, options)
