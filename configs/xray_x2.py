"""xray_x2: the shipped PSNR-oriented x2 radiograph model (SRVGGNetCompact, grey).

xray_x4's recipe at x2 (configs/xray_x4.py) with SRVGGNetCompact of 48
features, 10 convs, PReLU (0.8 MB in float32; kept at 48 features because
ct_x2 and mr_x2 fine-tune this network): L1 loss on bicubic pairs
(antialiased bicubic LR rounded to the image's own bit depth, low-bit 16-bit
containers stretched as at inference), Adam 1e-3 with betas (0.9, 0.99) and
one cosine decay to 1e-6, batch 16 of 96x96 HR patches, EMA 0.999 with
warm-up (train.ema_warmup), seed 0, on the radiographs of both folders but
the held-out and validation patients.

  python -m jaxsr.main --config=configs/xray_x2.py --workdir=runs/xray_x2 \\
      --config.data.train_dir=../shared/data/xray/png,../shared/data/xray_train \\
      --config.data.eval_dir=../shared/data/xray/png,../shared/data/xray_train
"""
from jaxsr import config as base

NUM_STEPS = 4000


def get_config(arg: str = ""):
  model = base.srvgg(num_feat=48, num_conv=10, act_type="prelu")
  c = base.radiograph_psnr("xray_x2", scale=2, model=model, patch_size=96,
                           num_steps=NUM_STEPS)
  c.train.ema_warmup = True
  c.train.eval_every = 2000
  if base.is_tiny(arg):
    base.make_tiny(c)
    c.model.num_conv = 2
  return c
