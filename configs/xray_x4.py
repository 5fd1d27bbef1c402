"""xray_x4: the shipped PSNR-oriented x4 radiograph model (SRVGGNetCompact, grey).

SRVGGNetCompact (64 features, 10 convs, PReLU; Real-ESRGAN's compact
network, 1.5 MB in float32; He init with a near-zero last conv, see
jaxsr.config.srvgg), chosen by the equal-time comparison of
configs/xray_arch.py (see the model card), one grey channel, L1 loss on
bicubic pairs (antialiased bicubic LR rounded to the image's own bit depth;
images using only the low bits of a 16-bit container stretched to full range
at that depth, as inference shows them), Adam 1e-3 with betas (0.9, 0.99) and
one cosine decay to 1e-6, batch 16 of 128x128 HR patches, EMA 0.999 with
warm-up (train.ema_warmup), seed 0. Trained on the radiographs of both folders
but the held-out (XRAY_HELDOUT) and validation (XRAY_VALIDATION) patients;
the end-of-run evaluation scores both, by source group.

  python -m jaxsr.main --config=configs/xray_x4.py --workdir=runs/xray_x4 \\
      --config.data.train_dir=../shared/data/xray/png,../shared/data/xray_train \\
      --config.data.eval_dir=../shared/data/xray/png,../shared/data/xray_train
"""
from jaxsr import config as base

NUM_STEPS = 6000


def get_config(arg: str = ""):
  model = base.srvgg(num_feat=64, num_conv=10, act_type="prelu")
  c = base.radiograph_psnr("xray_x4", scale=4, model=model, patch_size=128,
                           num_steps=NUM_STEPS)
  c.train.ema_warmup = True
  c.train.eval_every = 3000
  if base.is_tiny(arg):
    base.make_tiny(c)
    c.model.num_conv = 2
  return c
