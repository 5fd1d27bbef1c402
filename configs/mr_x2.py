"""mr_x2: a first x2 MR model, fine-tuned from the shipped radiograph model xray_x2.

The same network as xray_x2 (SRVGGNetCompact, 48 features, 10 convs, PReLU,
one grey channel), started from its weights (init_from="xray_x2"), trained
with L1 on bicubic pairs cut from MR slices (data.source="volumes"), each
mapped by its stored range and the LR rounded to the stored levels. The
ICBM152 2009a T1 template (an average of many brains, 1 mm isotropic) is
cut into axial slices (its last axis): slices 0..109 train, 118..188
validate (a gap of 8); the single abdominal MR slice of the folder only
trains. Slices with less than 20 % of their pixels above 5 % of the range
are skipped. Adam 2e-4 with one cosine decay to 1e-6, batch 16 of 96x96 HR
patches, EMA 0.999 with warm-up, seed 0.

  python -m jaxsr.main --config=configs/mr_x2.py --workdir=runs/mr_x2 \\
      --config.data.train_dir=../shared/data/mr --config.data.eval_dir=../shared/data/mr
"""
from jaxsr import config as base

NUM_STEPS = 1500


def get_config(arg: str = ""):
  c = base.volume_psnr("mr_x2", train_slices=(0, 110), eval_slices=(118, 189),
                       num_steps=NUM_STEPS)
  c.data.train_exclude = ("emri_small*",)  # 64x64: smaller than a patch.
  c.data.eval_include = ("mni_icbm152*",)
  return base.make_tiny_volume(c) if base.is_tiny(arg) else c
