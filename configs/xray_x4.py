"""xray_x4: the shipped PSNR-oriented x4 radiograph model (SRVGGNetCompact, grey).

SRVGGNetCompact (64 features, 10 convs, PReLU; Real-ESRGAN's compact
network, 1.5 MB in float32; He init with a near-zero last conv, see
jaxsr.config.srvgg), one grey channel, L1 loss on bicubic pairs (antialiased
bicubic LR rounded to the image's own bit depth, so 8-bit and 10-16-bit
radiographs are both seen as they are stored), Adam 1e-3 with
betas (0.9, 0.99) and one cosine decay to 1e-6, batch 16 of 128x128 HR
patches, seed 0. Held-out patients: jaxsr.config.XRAY_HELDOUT. The shipped
weights are the final ones, not the EMA (0.999 from step 0, without the
train.ema_warmup the later radiograph configs use): after 4500 steps the EMA
still holds the random init and the early high-learning-rate phase and
scores 0.2 dB lower on the held-out set.

  python -m jaxsr.main --config=configs/xray_x4.py --workdir=runs/xray_x4 \\
      --config.data.train_dir=../shared/data/xray/png \\
      --config.data.eval_dir=../shared/data/xray/png
"""
from jaxsr import config as base

NUM_STEPS = 4500


def get_config(arg: str = ""):
  model = base.srvgg(num_feat=64, num_conv=10, act_type="prelu")
  c = base.radiograph_psnr("xray_x4", scale=4, model=model, patch_size=128,
                           num_steps=NUM_STEPS)
  c.eval.use_ema = False  # The final weights are shipped; see above.
  if base.is_tiny(arg):
    base.make_tiny(c)
    c.model.num_conv = 2
  return c
