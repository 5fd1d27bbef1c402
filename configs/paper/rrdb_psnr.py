"""Paper stage 3 of 6: the PSNR-oriented RRDBNet, ESRGAN's first stage.

RRDBNet (6 RRDB blocks here, 23 with ``:full``; 64 features, growth 32), L1
loss, Adam 2e-4 with betas (0.9, 0.99), cosine annealing restarted every
quarter of the steps down to 1e-7 (BasicSR's 4 x 250k of 10^6 scaled), EMA
0.999 with warm-up (train.ema_warmup: a short run's EMA would otherwise
still lean on the init).

  python -m jaxsr.main --config=configs/paper/rrdb_psnr.py --workdir=runs/paper/rrdb_psnr \\
      --config.data.train_dir=../shared/data/xray/png,../shared/data/xray_train
"""
from jaxsr import config as base


def get_config(arg: str = ""):
  c, options, steps = base.paper_stage("RRDB-PSNR", arg, base.rrdbnet())
  c.loss.pixel_type = "l1"
  c.optim_g.lr = 2e-4
  c.optim_g.schedule = "cosine_restart"
  c.optim_g.periods = (steps // 4,) * 4
  c.optim_g.eta_min = 1e-7
  c.train.ema_warmup = True
  return base.paper_finish(c, options)
