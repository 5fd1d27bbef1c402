"""Real-ESRNet: RRDBNet on Real-ESRGAN's degradations, L1 only (train_realesrnet_x4plus.yml).

Starts from the ESRGAN model (``--config.init_from``). Second-order
degradation with the reference's defaults (see jaxsr/degradations/config.py),
L1 against the unsharp-masked target, Adam 2e-4 with betas (0.9, 0.99),
halved at 10^6 steps, 10^6 steps, batch 48 (the reference's 12 per GPU x 4)
of 256x256 HR patches cut from 400x400 crops, training-pair pool of 180,
EMA 0.999. Departures: one grey channel; the LR is quantised to
``degradation.lr_bits`` (8, as in the reference; 12 or 16 for DICOM-grade LR).

  python -m jaxsr.main --config=configs/realesrnet.py --workdir=runs/realesrnet \
      --config.data.train_dir=DIR --config.data.eval_dir=DIR2 --config.init_from=runs/esrgan
"""
from jaxsr import config as base


def get_config(arg: str = ""):
  c = base.base_config()
  c.name = "realesrnet"
  c.model = base.rrdbnet()
  c.degradation = base.realesrgan_degradation()
  c.data.patch_size = 256  # Real-ESRGAN's gt_size: HR pairs cut from the degraded crops.
  c.data.batch_size = 48
  c.data.use_rot = False
  c.loss.pixel_type = "l1"
  c.loss.pixel_on_usm = True
  c.optim_g.lr = 2e-4
  c.optim_g.schedule = "multistep"
  c.optim_g.milestones = (1_000_000,)
  c.optim_g.gamma = 0.5
  c.train.num_steps = 1_000_000
  if base.is_tiny(arg):
    base.make_tiny(c)
  return c
