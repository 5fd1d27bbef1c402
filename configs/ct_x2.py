"""ct_x2: a first x2 CT model, fine-tuned from the shipped radiograph model xray_x2.

The same network as xray_x2 (SRVGGNetCompact, 48 features, 10 convs, PReLU,
one grey channel), started from its weights (init_from="xray_x2"), trained
with L1 on bicubic pairs cut from CT slices: data.source="volumes" reads each
series or NIfTI volume in the folders, the HU range data.hu_range
(-1024..3071 HU) is mapped to [0, 1] and the LR is rounded to the stored HU
steps. One patient's volume gives both splits, by slice ranges with a gap of
8 slices: slices 28..107 train, 0..19 validate; slices with less than 20 %
of their pixels above -500 HU (air around the head) are skipped.
Adam 2e-4 with one cosine decay to 1e-6, batch 16 of 96x96 HR patches,
EMA 0.999 with warm-up, seed 0.

  python -m jaxsr.main --config=configs/ct_x2.py --workdir=runs/ct_x2 \\
      --config.data.train_dir=../shared/data/ct/invesalius_head_ct \\
      --config.data.eval_dir=../shared/data/ct/invesalius_head_ct
"""
from jaxsr import config as base

NUM_STEPS = 1500


def get_config(arg: str = ""):
  c = base.volume_psnr("ct_x2", train_slices=(28, 108), eval_slices=(0, 20), num_steps=NUM_STEPS)
  return base.make_tiny_volume(c) if base.is_tiny(arg) else c
