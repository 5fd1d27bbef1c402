"""Paper stage 1 of 6: SRResNet, the PSNR stage of SRGAN (Ledig et al. 2017).

SRResNet (16 residual blocks with BatchNorm and PReLU, 64 features, 9x9 head
and tail), MSE loss, Adam 1e-4 with betas (0.9, 0.999), constant, as the
paper; no EMA. Shared with every paper stage (jaxsr.config.paper_stage): x4,
grey, 128x128 HR patches, batch PAPER_BATCH, PAPER_STEPS steps, the radiographs
split by patient. Options (``:tiny``, ``:full``, ``:vgg``): jaxsr.config.paper_stage.

  bash tools/reproduce_paper.sh ../shared/data runs/paper   # all six stages, then the scores
"""
from jaxsr import config as base


def get_config(arg: str = ""):
  c, options, _ = base.paper_stage("SRResNet", arg, base.model("srresnet", num_feat=64,
                                                                 num_block=16))
  c.loss.pixel_type = "mse"
  c.optim_g.lr = 1e-4
  c.optim_g.b2 = 0.999
  c.train.ema_decay = 0.0
  return base.paper_finish(c, options)
