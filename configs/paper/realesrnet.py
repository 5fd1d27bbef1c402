"""Paper stage 5 of 6: Real-ESRNet, started from the RRDB-PSNR stage (``init_from``).

As Real-ESRGAN's train_realesrnet_x4plus (which starts from ESRGAN's PSNR
model): the same RRDBNet trained with L1 against the unsharp-masked HR on
pairs made by the second-order degradation with the reference's ranges and
8-bit LR (jaxsr.degradations.config), Adam 2e-4 with betas (0.9, 0.99),
constant (the reference halves it only at its last step), EMA 0.999 with
warm-up. Scaled to the shared batch and patch: 256x256 crops (400 in the
reference, for 256 patches), a pool of 64 pairs, no rotations (as the
reference).

  python -m jaxsr.main --config=configs/paper/realesrnet.py --workdir=runs/paper/realesrnet \\
      --config.init_from=runs/paper/rrdb_psnr \\
      --config.data.train_dir=../shared/data/xray/png,../shared/data/xray_train
"""
from jaxsr import config as base


def get_config(arg: str = ""):
  c, options, _ = base.paper_stage("Real-ESRNet", arg, base.rrdbnet())
  c.degradation = base.realesrgan_degradation()
  c.degradation.crop_size = 256
  c.degradation.queue_size = 8 * c.data.batch_size
  c.data.use_rot = False
  c.loss.pixel_type = "l1"
  c.loss.pixel_on_usm = True
  c.optim_g.lr = 2e-4
  c.train.ema_warmup = True
  return base.paper_finish(c, options)
