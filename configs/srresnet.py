"""SRResNet (MSE) pre-training: the PSNR-oriented first stage of SRGAN.

Ledig et al. 2017, section 3.2: SRResNet with BatchNorm and PReLU, MSE loss,
Adam (beta1 0.9) at 1e-4 for 10^6 updates, 16 random 96x96 HR crops per batch.
Departures: 128x128 crops (so the same data feed the 128x128 discriminator of
the SRGAN stage), one grey channel, images in [0, 1], an EMA copy of G.

  python -m jaxsr.main --config=configs/srresnet.py --workdir=runs/srresnet \
      --config.data.train_dir=DIR --config.data.eval_dir=DIR2
"""
from jaxsr import config as base


def get_config(arg: str = ""):
  c = base.base_config()
  c.name = "srresnet"
  c.model.name = "srresnet"
  c.loss.pixel_type = "mse"
  c.optim_g.lr = 1e-4
  c.optim_g.b2 = 0.999
  c.train.num_steps = 1_000_000
  if base.is_tiny(arg):
    base.make_tiny(c)
  return c
