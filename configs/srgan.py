"""SRGAN (Ledig et al. 2017): SRResNet + adversarial training, started from SRResNet.

Loss of the paper's equation (3): content + 1e-3 x adversarial, the content
loss being the MSE of VGG19 conv5_4 features after activation (SRGAN-VGG54)
rescaled by 1/12.75; the adversarial term is -log D(G(x)). Adam (beta1 0.9)
at 1e-4 for 10^5 updates then 1e-5 for 10^5, one D update per G update.
Departure: the discriminator is BasicSR's VGG-style 128x128 network.

  python -m jaxsr.main --config=configs/srresnet.py --workdir=runs/srresnet \
      --config.data.train_dir=DIR --config.data.eval_dir=DIR2
  python -m jaxsr.main --config=configs/srgan.py --workdir=runs/srgan \
      --config.data.train_dir=DIR --config.data.eval_dir=DIR2 --config.init_from=runs/srresnet
"""
from jaxsr import config as base


def get_config(arg: str = ""):
  c = base.base_config()
  c.name = "srgan"
  c.model.name = "srresnet"
  c.discriminator.name = "vgg_style"
  c.loss.pixel_weight = 0.0
  c.loss.perceptual_weight = 1.0
  c.loss.perceptual_layers = {"conv5_4": 1.0}
  c.loss.perceptual_before_activation = False
  c.loss.perceptual_criterion = "l2"
  c.loss.perceptual_feature_scale = 1.0 / 12.75
  c.loss.gan_type = "vanilla"
  c.loss.gan_weight = 1e-3
  for opt in (c.optim_g, c.optim_d):
    opt.lr = 1e-4
    opt.b2 = 0.999
    opt.schedule = "multistep"
    opt.milestones = (100_000,)
    opt.gamma = 0.1
  c.train.num_steps = 200_000
  c.train.ema_decay = 0.0
  if base.is_tiny(arg):
    base.make_tiny(c)
  return c
