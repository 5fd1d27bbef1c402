"""xray_arch: the x4 architecture comparison behind xray_x4 (issue: a stronger network).

Candidates, picked with ``configs/xray_arch.py:NAME``, share everything but
the generator: xray_x4's recipe (jaxsr.config.radiograph_psnr: L1 on
antialiased bicubic pairs, Adam 1e-3 with one cosine decay, batch 16 of
128x128 HR patches, EMA with warm-up) on the radiograph training split
(XRAY_HELDOUT and XRAY_VALIDATION excluded), scored on the validation split.
Each gets the same training time, not the same steps: ``STEPS`` is
``TRAIN_SECONDS`` divided by its step time on the 2-core CPU (``STEP_SECONDS``),
so the comparison does not depend on what else the machine ran meanwhile.

  python -m jaxsr.main --config=configs/xray_arch.py:srvgg_64x16 --workdir=runs/arch/srvgg_64x16 \\
      --config.data.train_dir=../shared/data/xray/png,../shared/data/xray_train \\
      --config.data.eval_dir=../shared/data/xray/png,../shared/data/xray_train
"""
from jaxsr import config as base

# The candidates' generators: SRVGGNetCompact at xray_x4's size, deeper ones
# (realesr-general-x4v3 has 64 features and 32 convs) and small RRDBNets.
CANDIDATES = {
    "srvgg_64x10": dict(name="srvgg", num_feat=64, num_conv=10),
    "srvgg_64x16": dict(name="srvgg", num_feat=64, num_conv=16),
    "srvgg_64x32": dict(name="srvgg", num_feat=64, num_conv=32),
    "rrdb_6x32": dict(name="rrdbnet", num_feat=32, num_block=6, num_grow_ch=16),
}
DEFAULT = "srvgg_64x10"  # Without a NAME.
TRAIN_SECONDS = 900
# Seconds per training step on the 2-core CPU (the rate logged over steps
# 20-80 of a run of each candidate, as Training time below, 2026-12-02).
STEP_SECONDS = {
    "srvgg_64x10": 0.54,
    "srvgg_64x16": 0.88,
    "srvgg_64x32": 1.60,
    "rrdb_6x32": 1.95,
}
STEPS = {name: int(round(TRAIN_SECONDS / seconds, -1)) for name, seconds in STEP_SECONDS.items()}


def generator(name: str):
  spec = dict(CANDIDATES[name])
  if spec.pop("name") == "srvgg":
    return base.srvgg(act_type="prelu", **spec)
  c = base.rrdbnet()
  c.update(spec)
  return c


def get_config(arg: str = ""):
  options = [a for a in (arg or "").split(",") if a]
  names = [a for a in options if a != "tiny"] or [DEFAULT]
  if len(names) != 1 or names[0] not in CANDIDATES:
    raise ValueError(f"configs/xray_arch.py:NAME[,tiny] with NAME one of {sorted(CANDIDATES)}")
  name = names[0]
  c = base.radiograph_psnr(f"xray_arch_{name}", scale=4, model=generator(name), patch_size=128,
                           num_steps=STEPS[name])
  c.train.ema_warmup = True
  c.train.eval_every = 0
  if "tiny" in options:
    base.make_tiny(c)
    if "num_conv" in c.model:
      c.model.num_conv = 2
  return c
