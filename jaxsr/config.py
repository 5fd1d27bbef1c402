"""Defaults shared by every experiment config in ``configs/``.

An experiment file starts from :func:`base_config` and changes what its
recipe changes. Every key exists here, so a mistyped key on the command line
(``--config.data.trian_dir=...``) is refused instead of silently ignored.
"""
import ml_collections


def optimizer(lr: float) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      lr=lr, b1=0.9, b2=0.99,
      schedule="constant",     # 'constant' | 'multistep' | 'cosine_restart'
      milestones=(),           # multistep: steps at which lr *= gamma
      gamma=0.5,
      periods=(1,),            # cosine_restart: lengths of the cosine periods
      eta_min=1e-7,
  ))


def rrdbnet() -> ml_collections.ConfigDict:
  """BasicSR's RRDBNet as ESRGAN and Real-ESRGAN use it."""
  return ml_collections.ConfigDict(dict(name="rrdbnet", num_feat=64, num_block=23,
                                        num_grow_ch=32))


def srvgg(num_feat: int = 64, num_conv: int = 16, act_type: str = "prelu",
          init_scale: float = 1.0, out_init_scale: float = 0.01):
  """Real-ESRGAN's SRVGGNetCompact (realesr-animevideov3 size by default).

  He init for the body and a near-zero last conv rather than PyTorch's
  default init, with which this plain stack stalls near the nearest-neighbour
  upscale when trained from scratch on smooth radiographs.
  """
  return ml_collections.ConfigDict(dict(name="srvgg", num_feat=num_feat, num_conv=num_conv,
                                        act_type=act_type, init_scale=init_scale,
                                        out_init_scale=out_init_scale))


def realesrgan_degradation(scale: int = 4) -> ml_collections.ConfigDict:
  """Real-ESRGAN's second-order degradation with its reference defaults."""
  from jaxsr.degradations.config import default_config  # pylint: disable=g-import-not-at-top
  d = default_config()
  d.name = "realesrgan"
  d.scale = scale
  return d


# Held-out patients of the shipped radiograph models (configs/xray_*.py): six
# NIH ChestX-ray14 patients (one image each) and one 12-bit DX chest, matched
# by file name so that any folder holding these files splits the same way.
XRAY_HELDOUT = (
    "nih_00018999_*", "nih_00021038_*", "nih_00026068_*", "nih_00026757_*",
    "nih_00028582_*", "nih_00029236_*", "*pydicom966_chest_DX*",
)


def radiograph_split(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Train on everything but XRAY_HELDOUT; evaluate on XRAY_HELDOUT only."""
  c.data.train_exclude = XRAY_HELDOUT
  c.data.eval_include = XRAY_HELDOUT
  return c


def radiograph_psnr(name: str, scale: int, model: ml_collections.ConfigDict, patch_size: int,
                    num_steps: int) -> ml_collections.ConfigDict:
  """The shared recipe of the shipped PSNR-oriented radiograph models (configs/xray_x*.py).

  L1 on bicubic pairs from the XRAY_HELDOUT split, batch 16, decoded images
  cached, Adam 1e-3 with one cosine decay to 1e-6 over ``num_steps``.
  """
  c = radiograph_split(base_config())
  c.name = name
  c.scale = scale
  c.model = model
  c.data.patch_size = patch_size
  c.data.batch_size = 16
  c.data.cache_images = True
  c.loss.pixel_type = "l1"
  c.optim_g.lr = 1e-3
  c.optim_g.schedule = "cosine_restart"
  c.optim_g.periods = (num_steps,)
  c.optim_g.eta_min = 1e-6
  c.train.num_steps = num_steps
  c.train.log_every = 100
  c.train.checkpoint_every = 500
  c.train.eval_every = 1000
  c.eval.center_crop = 512
  return c


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = "model"             # Used as the model's name in evaluation tables.
  c.seed = 0
  c.scale = 4
  c.num_channels = 1           # Radiographs are grey; 3 repeats the channel.
  c.init_from = ""             # Workdir of a previous stage to start G from.

  c.model = ml_collections.ConfigDict(dict(name="msrresnet", num_feat=64, num_block=16))
  # How LR inputs are made: 'bicubic' (from data.patch_size crops) or
  # 'realesrgan' (see realesrgan_degradation()).
  c.degradation = ml_collections.ConfigDict(dict(name="bicubic"))
  c.discriminator = ml_collections.ConfigDict(dict(name="", num_feat=64))

  c.data = ml_collections.ConfigDict(dict(
      train_dir="",            # Folder of training radiographs (recursive).
      eval_dir="",             # Folder of evaluation radiographs.
      # Glob patterns on file paths relative to the folder (or on file names):
      # one folder can hold both splits, e.g. eval_include=train_exclude=("nih_0002*",).
      train_include=(),        # Empty: every image.
      train_exclude=(),
      eval_include=(),
      eval_exclude=(),
      cache_images=False,      # Keep decoded training images in memory (small sets).
      tfds_name="nih_chest_xray14_sample",   # Used when train_dir is empty.
      tfds_data_dir="~/tensorflow_datasets",
      tfds_eval_split="validation",
      patch_size=128,          # HR patch side; LR is patch_size // scale.
      batch_size=16,           # Global batch, split over devices and processes.
      use_flip=True,
      use_rot=True,
      strict=False,            # True: stop at the first bad file instead of skipping it.
      num_workers=0,           # grain worker processes (0: read in the main process).
      read_threads=2,
      prefetch=4,
  ))

  c.loss = ml_collections.ConfigDict(dict(
      pixel_type="l1",         # 'l1' | 'mse' | 'charbonnier'
      pixel_weight=1.0,
      perceptual_weight=0.0,
      perceptual_layers={"conv5_4": 1.0},
      perceptual_criterion="l1",           # 'l1' | 'l2' | 'fro'
      perceptual_before_activation=True,
      perceptual_feature_scale=1.0,
      vgg_weights="~/.cache/jaxsr/vgg19-dcbb9e9d.pth",   # or 'random' (tests only)
      gan_type="vanilla",      # 'vanilla' | 'ragan'
      gan_weight=0.0,
      # Real-ESRGAN: compare with the unsharp-masked target (realesrgan degradation only).
      pixel_on_usm=False,
      perceptual_on_usm=False,
      gan_on_usm=False,
  ))

  c.optim_g = optimizer(2e-4)
  c.optim_d = optimizer(1e-4)

  c.train = ml_collections.ConfigDict(dict(
      num_steps=1_000_000,
      ema_decay=0.999,         # 0 turns the EMA copy of G off.
      ema_warmup=False,        # True: decay min(ema_decay, (1+t)/(10+t)), for short runs.
      log_every=100,
      checkpoint_every=5000,
      keep_checkpoints=3,
      eval_every=5000,         # 0: only at the end.
      num_devices=0,           # 0: all devices.
      max_bad_steps=20,        # Stop after this many non-finite losses in a row.
      # FSDP: state leaves whose path matches are split over the devices, e.g.
      # '(g|d|ema)_(params|opt).*' for a generator too big to replicate.
      fsdp_regex="",
      fsdp_min_size=2 ** 18,   # Leaves with fewer elements stay replicated.
  ))

  c.eval = ml_collections.ConfigDict(dict(
      max_images=0,            # 0: every image of the eval folder.
      center_crop=0,           # >0: evaluate on a central HR crop of this side.
      crop_border=4,           # Pixels removed at each edge before the metrics.
      use_ema=True,
  ))
  return c


def is_tiny(arg: str) -> bool:
  options = [a for a in (arg or "").split(",") if a]
  unknown = set(options) - {"tiny"}
  if unknown:
    raise ValueError(f"unknown config argument(s) {sorted(unknown)}; the only one is 'tiny'")
  return "tiny" in options


def make_tiny(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A few hundred steps of a small network: minutes on a 2-core CPU."""
  c.model.num_feat = 16
  c.model.num_block = 2
  if "num_grow_ch" in c.model:
    c.model.num_grow_ch = 8
  if c.discriminator.name:
    c.discriminator.num_feat = 8
  c.data.batch_size = 4
  if c.degradation.name == "realesrgan":
    # Smaller crops and pool: the same pipeline, a fraction of the work.
    c.degradation.crop_size = 128
    c.degradation.gt_size = 128
    c.degradation.queue_size = 16
    c.data.patch_size = 128
  c.train.num_steps = 300
  c.train.log_every = 20
  c.train.checkpoint_every = 100
  c.train.eval_every = 0
  if c.train.ema_decay > 0:
    c.train.ema_decay = 0.9  # 0.999 would leave the EMA near init in 300 steps.
  c.eval.max_images = 4
  c.eval.center_crop = 256
  for opt in (c.optim_g, c.optim_d):
    opt.schedule = "constant"
  if c.loss.perceptual_weight > 0:
    # A random VGG truncated after its second conv keeps tiny runs to minutes;
    # the loss's code path is the same as with the recipe's layers.
    c.loss.vgg_weights = "random"
    c.loss.perceptual_layers = {"conv1_2": 1.0}
  return c
