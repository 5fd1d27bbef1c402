"""xray_x2: the shipped PSNR-oriented x2 radiograph model (SRVGGNetCompact, grey).

SRVGGNetCompact (48 features, 10 convs, PReLU; 0.8 MB in float32; He init
with a near-zero last conv, see jaxsr.config.srvgg), one grey channel, L1
loss on bicubic pairs (antialiased bicubic LR rounded to the image's own bit
depth: 8-bit and 10-16-bit radiographs are both seen as they are stored),
Adam 1e-3 with betas (0.9, 0.99) and one cosine decay to 1e-6, batch 16 of
96x96 HR patches, EMA 0.999 with warm-up (train.ema_warmup), seed 0.
Held-out patients: jaxsr.config.XRAY_HELDOUT.

  python -m jaxsr.main --config=configs/xray_x2.py --workdir=runs/xray_x2 \\
      --config.data.train_dir=../shared/data/xray/png \\
      --config.data.eval_dir=../shared/data/xray/png
"""
from jaxsr import config as base

NUM_STEPS = 3000


def get_config(arg: str = ""):
  model = base.srvgg(num_feat=48, num_conv=10, act_type="prelu")
  c = base.radiograph_psnr("xray_x2", scale=2, model=model, patch_size=96,
                           num_steps=NUM_STEPS)
  c.train.ema_warmup = True
  if base.is_tiny(arg):
    base.make_tiny(c)
    c.model.num_conv = 2
  return c
