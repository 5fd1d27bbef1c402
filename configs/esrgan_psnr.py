"""ESRGAN stage 1: the PSNR-oriented RRDBNet (BasicSR train_RRDBNet_PSNR_x4.yml).

RRDBNet (23 RRDB, 64 features, growth 32), L1 loss, Adam 2e-4 with betas
(0.9, 0.99), cosine annealing with restarts every 250k steps down to 1e-7,
10^6 steps, batch 16 of 128x128 HR patches, EMA 0.999. Departure: one grey
channel.

  python -m jaxsr.main --config=configs/esrgan_psnr.py --workdir=runs/esrgan_psnr \
      --config.data.train_dir=DIR --config.data.eval_dir=DIR2
"""
from jaxsr import config as base


def get_config(arg: str = ""):
  c = base.base_config()
  c.name = "esrgan_psnr"
  c.model = base.rrdbnet()
  c.loss.pixel_type = "l1"
  c.optim_g.lr = 2e-4
  c.optim_g.schedule = "cosine_restart"
  c.optim_g.periods = (250_000,) * 4
  c.optim_g.eta_min = 1e-7
  c.train.num_steps = 1_000_000
  if base.is_tiny(arg):
    base.make_tiny(c)
  return c
