"""Defaults shared by every experiment config in ``configs/``.

An experiment file starts from :func:`base_config` and changes what its
recipe changes. Every key exists here, so a mistyped key on the command line
(``--config.data.trian_dir=...``) is refused instead of silently ignored.
"""
import ml_collections

from jaxsr import degradations
from jaxsr.degradations import config as degradation_config
from jaxsr.io import image


def optimizer(lr: float) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      lr=lr, b1=0.9, b2=0.99,
      schedule="constant",     # 'constant' | 'multistep' | 'cosine_restart'
      milestones=(),           # multistep: steps at which lr *= gamma
      gamma=0.5,
      periods=(1,),            # cosine_restart: lengths of the cosine periods
      eta_min=1e-7,
  ))


def model(name: str, **kwargs) -> ml_collections.ConfigDict:
  """A ``model`` section: the architecture's name and kwargs, plus how to run it.

  ``conv_algorithm`` ('auto' | 'direct' | 'winograd') and ``pack_batch``
  ('auto' | 'true' | 'false') are CPU speed-ups that leave the numbers as
  they are (float32 rounding apart); 'auto' turns them on when the step runs
  on one CPU device, Winograd where the network's maps are small enough for
  it to pay (see jaxsr.models.execution_kwargs).
  """
  return ml_collections.ConfigDict(dict(name=name, **kwargs, conv_algorithm="auto",
                                        pack_batch="auto"))


def rrdbnet() -> ml_collections.ConfigDict:
  """BasicSR's RRDBNet as ESRGAN and Real-ESRGAN use it."""
  return model("rrdbnet", num_feat=64, num_block=23, num_grow_ch=32)


def srvgg(num_feat: int = 64, num_conv: int = 16, act_type: str = "prelu",
          init_scale: float = 1.0, out_init_scale: float = 0.01):
  """Real-ESRGAN's SRVGGNetCompact (realesr-animevideov3 size by default).

  He init for the body and a near-zero last conv rather than PyTorch's
  default init, with which this plain stack stalls near the nearest-neighbour
  upscale when trained from scratch on smooth radiographs.
  """
  return model("srvgg", num_feat=num_feat, num_conv=num_conv, act_type=act_type,
               init_scale=init_scale, out_init_scale=out_init_scale)


def realesrgan_degradation() -> ml_collections.ConfigDict:
  """Real-ESRGAN's second-order degradation with its reference defaults.

  Its scale is the config's ``scale`` and its HR training patch the config's
  ``data.patch_size``; flips and rotations are ``data.use_flip/use_rot``.
  """
  return degradation_config.default_config()


# Held-out patients of the shipped radiograph models (configs/xray_*.py): six
# NIH ChestX-ray14 patients (one image each) and one 12-bit DX chest, matched
# by file name so that any folder holding these files splits the same way.
XRAY_HELDOUT = (
    "nih_00018999_*", "nih_00021038_*", "nih_00026068_*", "nih_00026757_*",
    "nih_00028582_*", "nih_00029236_*", "*pydicom966_chest_DX*",
)


# The validation split of the radiograph models, by patient, in the larger
# training set (nih/ and mhh/ folders; no model trains on these): 20 NIH
# ChestX-ray14 images (one patient each) and every image of 8 Hannover (MHH)
# patients, drawn once with random.Random(19) from the sorted names (MHH: 8
# patients holding 24-30 images, none with more than 8).
XRAY_VALIDATION_NIH = (
    "nih_00000846_000.png", "nih_00001511_000.png", "nih_00004840_000.png",
    "nih_00005213_000.png", "nih_00006072_000.png", "nih_00008947_000.png",
    "nih_00011811_000.png", "nih_00012567_000.png", "nih_00013368_000.png",
    "nih_00014648_000.png", "nih_00015293_000.png", "nih_00015891_000.png",
    "nih_00017753_000.png", "nih_00018427_000.png", "nih_00022182_000.png",
    "nih_00022668_000.png", "nih_00023521_000.png", "nih_00026569_000.png",
    "nih_00026815_000.png", "nih_00028744_000.png",
)
# MHH patient id -> its images (PATIENTS.txt of the data).
XRAY_VALIDATION_MHH = {
    "042f06a9": ("53c9be49", "b343e657", "c9280a30"),
    "14d9761b": ("a38e1877",),
    "327d82ca": ("441c9cdd", "5359825d", "6f7008af", "add529f3"),
    "969dd2e0": ("1052b0fe", "8da14fff", "ada8c494"),
    "a3e9f0ce": ("8fc103ca",),
    "c62c878a": ("0a7faa2a", "48b98ca2", "5782ae15", "5cc1a119", "b39f5cf9"),
    "d039b079": ("436a6348", "48c4542c", "865336ed"),
    "e5c29e19": ("5b324cc7", "5f001e0b", "c873402e", "e9877113"),
}
XRAY_VALIDATION = XRAY_VALIDATION_NIH + tuple(
    f"mhh_{image}.png" for images in XRAY_VALIDATION_MHH.values() for image in images)

# Source groups of the radiograph evaluations (jaxsr evaluate --groups; the
# trainer's eval.groups): the two sources of the training set by folder, and
# the older held-out set's 8-bit NIH and 12-bit DX images by name.
XRAY_GROUPS = "nih=nih/*,mhh=mhh/*,heldout_nih=nih_*,heldout_dx=*pydicom966_chest_DX*"


def radiograph_split(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Train on everything but XRAY_HELDOUT and XRAY_VALIDATION; evaluate on XRAY_HELDOUT only."""
  c.data.train_exclude = XRAY_HELDOUT + XRAY_VALIDATION
  c.data.eval_include = XRAY_HELDOUT
  return c


def radiograph_psnr(name: str, scale: int, model: ml_collections.ConfigDict, patch_size: int,
                    num_steps: int) -> ml_collections.ConfigDict:
  """The shared recipe of the shipped PSNR-oriented radiograph models (configs/xray_x*.py).

  L1 on bicubic pairs, batch 16, decoded images cached, Adam 1e-3 with one
  cosine decay to 1e-6 over ``num_steps``. Trains on every image but
  XRAY_HELDOUT and XRAY_VALIDATION and scores both at the end, whole images,
  with means per source group (XRAY_GROUPS): point data.train_dir and
  eval_dir at the folders holding them (several, comma-separated).
  """
  c = radiograph_split(base_config())
  c.data.eval_include = XRAY_VALIDATION + XRAY_HELDOUT
  c.eval.groups = XRAY_GROUPS
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
  return c


def volume_psnr(name: str, train_slices: tuple[int, int], eval_slices: tuple[int, int],
                num_steps: int) -> ml_collections.ConfigDict:
  """The shared recipe of configs/ct_x2.py and mr_x2.py: xray_x2's network and weights
  fine-tuned with L1 on bicubic pairs cut from slices of volumes.

  Each volume is split by slice ranges; slices with under 20 % foreground are
  skipped; Adam 2e-4 with one cosine decay, EMA with warm-up, whole slices scored.
  """
  c = radiograph_psnr(name, scale=2, model=srvgg(num_feat=48, num_conv=10, act_type="prelu"),
                      patch_size=96, num_steps=num_steps)
  c.data.train_exclude = c.data.eval_include = ()
  c.eval.groups = ""
  c.data.source = "volumes"
  c.data.train_slices, c.data.eval_slices = train_slices, eval_slices
  c.data.min_foreground = 0.2
  c.init_from = "xray_x2"
  c.optim_g.lr = 2e-4
  c.train.ema_warmup = True
  c.train.eval_every = 500
  c.eval.center_crop = 0
  return c


def make_tiny_volume(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """:func:`make_tiny` for the volume recipes: a fresh tiny network (no init_from)."""
  make_tiny(c)
  c.model.num_conv = 2
  c.init_from = ""
  return c


def base_config() -> ml_collections.ConfigDict:
  """Every key with its default; what each means is in KEY_HELP (--show_config)."""
  c = ml_collections.ConfigDict()
  c.name = "model"
  c.seed = 0
  c.scale = 4
  c.num_channels = 1
  c.init_from = ""

  c.model = model("msrresnet", num_feat=64, num_block=16)
  # How training LR inputs are made: 'bicubic' (from data.patch_size crops) or
  # 'realesrgan' (see realesrgan_degradation()); jaxsr.degradations.
  c.degradation = ml_collections.ConfigDict(dict(name="bicubic"))
  c.discriminator = ml_collections.ConfigDict(dict(name="", num_feat=64))

  c.data = ml_collections.ConfigDict(dict(
      train_dir="",
      eval_dir="",
      # Glob patterns on file paths relative to the folder (or on file names):
      # one folder can hold both splits, e.g. eval_include=train_exclude=("nih_0002*",).
      train_include=(),
      train_exclude=(),
      eval_include=(),
      eval_exclude=(),
      cache_images=False,
      source="images",
      train_slices=(0, 0),
      eval_slices=(0, 0),
      slice_axis=-1,
      all_axes=False,
      min_foreground=0.0,
      hu_range=image.DEFAULT_HU_RANGE,
      tfds_name="nih_chest_xray14_sample",
      tfds_data_dir="~/tensorflow_datasets",
      tfds_eval_split="validation",
      patch_size=128,
      batch_size=16,
      use_flip=True,
      use_rot=True,
      strict=False,
      num_workers=0,
      read_threads=2,
      prefetch=4,
  ))

  c.loss = ml_collections.ConfigDict(dict(
      pixel_type="l1",
      pixel_weight=1.0,
      gradient_weight=0.0,
      perceptual_weight=0.0,
      perceptual_layers={"conv5_4": 1.0},
      perceptual_criterion="l1",
      perceptual_before_activation=True,
      perceptual_feature_scale=1.0,
      vgg_weights="~/.cache/jaxsr/vgg19-dcbb9e9d.pth",
      gan_type="vanilla",
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
      ema_decay=0.999,
      ema_warmup=False,
      log_every=100,
      checkpoint_every=5000,
      keep_checkpoints=3,
      eval_every=5000,
      num_devices=0,
      max_bad_steps=20,
      # FSDP: state leaves whose path matches are split over the devices, e.g.
      # '(g|d|ema)_(params|opt).*' for a generator too big to replicate.
      fsdp_regex="",
      fsdp_min_size=2 ** 18,
  ))

  c.eval = ml_collections.ConfigDict(dict(
      max_images=0,
      center_crop=0,
      crop_border=4,
      use_ema=True,
      degradation="bicubic",
      tile=512,
      tile_overlap=32,
      figure_crop=128,
      num_samples=3,
      groups="",
  ))
  return c


# What every key means, for ``jaxsr train --config=... --show_config``: the
# keys of base_config(), the model kwargs the shipped configs use, and the
# shared meaning of optim_g.*/optim_d.* (as ``optim.*``). The degradation's
# keys are in jaxsr.degradations.config.KEY_HELP; see key_help().
KEY_HELP = {
    "name": "the model's name in evaluation tables",
    "seed": "seed of the initial weights, the data order and every random draw",
    "scale": "upscaling factor",
    "num_channels": "image channels: 1 for grey radiographs; 3 repeats the grey channel",
    "init_from": "generator this run starts from: a previous stage's workdir, a shipped "
                 "model's name (xray_x2) or a weights file; '': random init",
    # Generator.
    "model.name": "generator: 'srresnet' (BN + PReLU), 'msrresnet' (BasicSR's, no BN), "
                  "'rrdbnet' (ESRGAN) or 'srvgg' (Real-ESRGAN's compact)",
    "model.num_feat": "generator: feature channels of its convolutions",
    "model.num_block": "generator: residual blocks (srresnet, msrresnet) or RRDB blocks "
                       "(rrdbnet)",
    "model.num_grow_ch": "rrdbnet: growth channels of each dense block",
    "model.num_conv": "srvgg: body convolutions",
    "model.act_type": "srvgg: activation, 'prelu', 'relu' or 'leakyrelu'",
    "model.init_scale": "srvgg: He init times this for the body (training from scratch "
                        "only); None: PyTorch's default init",
    "model.out_init_scale": "srvgg: init scale of the last conv; small starts training at "
                            "the nearest-neighbour upscale",
    "model.conv_algorithm": "'auto', 'direct' or 'winograd' trunk convolutions; same "
                            "results, 'auto' picks winograd on one CPU device where it pays",
    "model.pack_batch": "'auto', 'true' or 'false': pack the batch into the width for "
                        "faster CPU convolutions; same results, 'auto' on one CPU device",
    "degradation.name": "how training LR inputs are made: 'bicubic' (from data.patch_size "
                        "crops) or 'realesrgan' (second-order degradation; adds the "
                        "degradation.* keys)",
    # Discriminator.
    "discriminator.name": "discriminator: '' (none, PSNR-oriented training), 'vgg_style' "
                          "(128x128 input) or 'unet_disc' (U-Net with spectral norm)",
    "discriminator.num_feat": "discriminator: feature channels of its first convolution",
    "discriminator.skip_connection": "unet_disc: skip connections between its encoder and "
                                     "decoder",
    # Data.
    "data.train_dir": "folder of training radiographs (searched recursively), or several "
                      "separated by commas; '': the tensorflow-datasets data.tfds_name",
    "data.eval_dir": "folder of evaluation radiographs (searched recursively), or several "
                     "separated by commas",
    "data.train_include": "glob patterns on relative paths or names: train only on the "
                          "images matching one; (): every image",
    "data.train_exclude": "glob patterns on relative paths or names: never train on these",
    "data.eval_include": "glob patterns on relative paths or names: evaluate only on the "
                         "images matching one; (): every image",
    "data.eval_exclude": "glob patterns on relative paths or names: never evaluate on these",
    "data.cache_images": "keep decoded training images in memory (small sets)",
    "data.source": "'images': one 2-D image per file (radiographs); 'volumes': every slice "
                   "of the DICOM series, multi-frame files and NIfTI volumes in the folders",
    "data.train_slices": "volumes: (start, stop) slice indices of each volume, in slice order, "
                         "trained on (Python slicing; (0, 0): all)",
    "data.eval_slices": "volumes: (start, stop) slice indices evaluated on; leave a gap to "
                        "data.train_slices when both come from one patient",
    "data.slice_axis": "volumes: NIfTI axis slices are taken along; -1: the axis with the "
                       "largest voxel spacing, ties to the last",
    "data.all_axes": "volumes: also train on slices along the other two axes of "
                     "near-isotropic volumes (voxel sizes within 25%); needs data.train_slices "
                     "(0, 0): split such sets by patient (folders or include/exclude)",
    "data.min_foreground": "volumes: skip slices with less than this share of pixels above "
                           "background (-500 HU for CT, 5% of the range otherwise)",
    "data.hu_range": "CT: the HU range (low, high) mapped to [0, 1] for the network; other "
                     "modalities are mapped by their stored range",
    "data.tfds_name": "tensorflow-datasets dataset used when data.train_dir is empty",
    "data.tfds_data_dir": "tensorflow-datasets folder (downloads, prepared data)",
    "data.tfds_eval_split": "split of data.tfds_name evaluated on",
    "data.patch_size": "side of the HR training patches; the LR's is patch_size // scale",
    "data.batch_size": "global batch, split over devices and processes",
    "data.use_flip": "random horizontal flips of training crops",
    "data.use_rot": "random vertical flips and transposes (90-degree rotations) of "
                    "training crops",
    "data.strict": "stop at the first unreadable or too small file instead of skipping it",
    "data.num_workers": "grain worker processes reading training data; 0: the main process",
    "data.read_threads": "threads reading training images in each process",
    "data.prefetch": "training samples read ahead",
    # Losses.
    "loss.pixel_type": "pixel loss: 'l1', 'mse' or 'charbonnier'",
    "loss.pixel_weight": "weight of the pixel loss; 0: off",
    "loss.gradient_weight": "weight of an L1 loss on horizontal and vertical pixel "
                            "differences (edges, grain) against the pixel loss's target; "
                            "0: off (BasicSR has none)",
    "loss.perceptual_weight": "weight of the VGG19 perceptual loss; 0: off",
    "loss.perceptual_layers": "VGG19 layers of the perceptual loss and their weights",
    "loss.perceptual_criterion": "distance of VGG features: 'l1', 'l2' or 'fro' (Frobenius)",
    "loss.perceptual_before_activation": "take VGG features before the ReLU (ESRGAN) "
                                         "rather than after (SRGAN)",
    "loss.perceptual_feature_scale": "VGG features are multiplied by this first (SRGAN: "
                                     "1/12.75)",
    "loss.vgg_weights": "torchvision's VGG19 ImageNet weights (.pth); 'random' for tests only",
    "loss.gan_type": "adversarial loss: 'vanilla' (-log D) or 'ragan' (relativistic average)",
    "loss.gan_weight": "weight of the adversarial loss in G's loss; 0: off",
    "loss.pixel_on_usm": "pixel loss against the unsharp-masked HR (realesrgan "
                         "degradation only)",
    "loss.perceptual_on_usm": "perceptual loss against the unsharp-masked HR (realesrgan "
                              "degradation only)",
    "loss.gan_on_usm": "adversarial loss against the unsharp-masked HR (realesrgan "
                       "degradation only)",
    # Optimisers (optim_g.* for the generator, optim_d.* for the discriminator).
    "optim.lr": "Adam learning rate",
    "optim.b1": "Adam beta1",
    "optim.b2": "Adam beta2",
    "optim.schedule": "learning-rate schedule: 'constant', 'multistep' or 'cosine_restart'",
    "optim.milestones": "multistep: steps at which the learning rate is multiplied by gamma",
    "optim.gamma": "multistep: factor applied at each milestone",
    "optim.periods": "cosine_restart: lengths in steps of the cosine periods",
    "optim.eta_min": "cosine_restart: learning rate at the end of each period",
    # Training.
    "train.num_steps": "total training steps, counting those of a resumed run",
    "train.ema_decay": "decay of the EMA copy of G, which is evaluated and exported; 0: "
                       "no EMA",
    "train.ema_warmup": "use decay min(ema_decay, (1+t)/(10+t)) at step t, for short runs",
    "train.log_every": "steps between progress lines (averaged losses, speed, ETA)",
    "train.checkpoint_every": "steps between checkpoints",
    "train.keep_checkpoints": "checkpoints kept (the latest ones)",
    "train.eval_every": "steps between evaluations, also done at the end; 0: at the end only",
    "train.num_devices": "devices to train on; 0: all",
    "train.max_bad_steps": "stop after this many non-finite losses in a row (each is "
                           "skipped)",
    "train.fsdp_regex": "state leaves whose path matches are split over the devices "
                        "(FSDP), e.g. '(g|d|ema)_(params|opt).*'; '': all replicated",
    "train.fsdp_min_size": "leaves with fewer elements stay replicated under fsdp_regex",
    # Evaluation.
    "eval.max_images": "evaluate on the first N images of the eval set; 0: all",
    "eval.center_crop": "evaluate on a central HR crop of this side; 0: whole images",
    "eval.crop_border": "pixels removed at each edge before the metrics",
    "eval.use_ema": "score the EMA generator where the run keeps one",
    "eval.degradation": "how eval LR inputs are made: 'bicubic' or 'realesrgan' (draws "
                        "seeded by seed)",
    "eval.tile": "tile side in LR pixels (bounded memory); 0: whole images",
    "eval.tile_overlap": "overlap of neighbouring tiles in LR pixels",
    "eval.figure_crop": "side of the central HR region in the crop figures",
    "eval.num_samples": "LR/SR/HR crops of the first N eval images in TensorBoard",
    "eval.groups": "source groups of the summary's means, NAME=GLOB,... (first match wins; "
                   "a name may repeat); '': each image's top folder",
}
# ConfigDict values that are one setting (a mapping), shown whole, not key by key.
MAPPING_KEYS = ("loss.perceptual_layers",)
_OPTIMIZERS = {"optim_g": "generator", "optim_d": "discriminator"}


def key_help(key: str) -> str | None:
  """The meaning of the dotted config ``key``, or None if none is written down."""
  if key in KEY_HELP:
    return KEY_HELP[key]
  section, _, rest = key.partition(".")
  if section in _OPTIMIZERS and f"optim.{rest}" in KEY_HELP:
    return f"{KEY_HELP[f'optim.{rest}']} ({_OPTIMIZERS[section]})"
  if section == "degradation":
    return degradation_config.KEY_HELP.get(rest)
  return None


def flat_items(c: ml_collections.ConfigDict, prefix: str = "") -> list[tuple[str, object]]:
  """Every setting of ``c`` as (dotted key, value), sorted by key as ConfigDict lists them."""
  items = []
  for name, value in c.items():
    key = f"{prefix}{name}"
    if isinstance(value, ml_collections.ConfigDict) and key not in MAPPING_KEYS:
      items.extend(flat_items(value, f"{key}."))
    else:
      items.append((key, value))
  return items


def show(c: ml_collections.ConfigDict) -> str:
  """``key = value  # meaning``, one line per setting: what a run would use, and why."""
  lines = []
  for key, value in flat_items(c):
    if isinstance(value, ml_collections.ConfigDict):
      value = value.to_dict()
    lines.append(f"{key} = {value!r}  # {key_help(key) or '(no description)'}")
  return "\n".join(lines)


def is_tiny(arg: str) -> bool:
  options = [a for a in (arg or "").split(",") if a]
  unknown = set(options) - {"tiny"}
  if unknown:
    raise ValueError(f"unknown config argument(s) {sorted(unknown)}; the only one is 'tiny'")
  return "tiny" in options


def make_tiny(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A few hundred steps of a small network: minutes on a 2-core CPU.

  Tiny runs check that data, training, checkpoints and evaluation work end to
  end; they are far too short to learn anything, and score below bicubic.
  """
  c.model.num_feat = 16
  c.model.num_block = 2
  if "num_grow_ch" in c.model:
    c.model.num_grow_ch = 8
  if c.discriminator.name:
    c.discriminator.num_feat = 8
  c.data.batch_size = 4
  degradations.get(c.degradation.name).make_tiny(c)
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


# The seed paper's experiment (configs/paper/, tools/reproduce_paper.sh,
# docs/paper.md): three two-stage recipes trained alike.
# The CPU variant is sized so that all six stages and both scorings finish in
# one sitting of under two hours on a 2-core CPU: at the reference sizes the
# GAN stages' discriminators alone make a step take tens of seconds there.
# ``full`` is the accelerator variant; docs/paper.md gives each stage's time.
PAPER_STEPS = 160
PAPER_BATCH = 4
PAPER_DISC_FEAT = 32
PAPER_OPTIONS = ("tiny", "full", "vgg")


def paper_options(arg: str) -> set[str]:
  """The options of ``configs/paper/STAGE.py:OPTION[,OPTION]``."""
  options = {a for a in (arg or "").split(",") if a}
  unknown = options - set(PAPER_OPTIONS)
  if unknown:
    raise ValueError(f"unknown config argument(s) {sorted(unknown)}; choose from "
                     f"{', '.join(PAPER_OPTIONS)}")
  if {"tiny", "full"} <= options:
    raise ValueError("'tiny' and 'full' are alternatives")
  return options


def paper_stage(name: str, arg: str, model: ml_collections.ConfigDict
                ) -> tuple[ml_collections.ConfigDict, set[str], int]:
  """What the six stages of configs/paper/ share, and the options they were given.

  x4, one grey channel, the radiograph split by patient (XRAY_HELDOUT and
  XRAY_VALIDATION never trained on), 128x128 HR patches (the VGG-style
  discriminator's input), flips and rotations, decoded images cached.
  Without options: batch PAPER_BATCH, PAPER_STEPS steps, RRDBNet with 6
  blocks and discriminators of PAPER_DISC_FEAT features, so that the whole
  experiment runs on a CPU in one sitting. ``full``: the references' sizes
  (batch 16, 50,000 steps, 23 RRDB blocks, 64-feature discriminators), for
  an accelerator. Returns (config, options, steps): the stages scale their
  reference schedules to ``steps``. No evaluation while training:
  tools/reproduce_paper.sh scores every stage at the end, on the held-out
  patients.
  """
  options = paper_options(arg)
  c = radiograph_split(base_config())
  c.name = name
  c.scale = 4
  c.model = model
  if c.model.name == "rrdbnet" and "full" not in options:
    c.model.num_block = 6
  c.data.patch_size = 128
  c.data.batch_size = 16 if "full" in options else PAPER_BATCH
  c.discriminator.num_feat = 64 if "full" in options else PAPER_DISC_FEAT
  c.data.cache_images = True
  steps = 50_000 if "full" in options else PAPER_STEPS
  c.train.num_steps = steps
  c.train.log_every = 500 if "full" in options else 10
  c.train.checkpoint_every = 5000 if "full" in options else 40
  c.train.eval_every = 0
  return c, options, steps


def paper_content(c: ml_collections.ConfigDict, options: set[str], pixel_weight: float,
                  perceptual_weight: float, layers: dict, before_activation: bool,
                  criterion: str, feature_scale: float = 1.0) -> ml_collections.ConfigDict:
  """A GAN stage's content terms: the reference's VGG19 loss with option ``vgg``;
  without it (the weights are not bundled) the VGG term's weight moves to the
  pixel loss, as in SRGAN-MSE."""
  c.loss.pixel_weight = pixel_weight
  if "vgg" in options:
    c.loss.perceptual_weight = perceptual_weight
    c.loss.perceptual_layers = layers
    c.loss.perceptual_before_activation = before_activation
    c.loss.perceptual_criterion = criterion
    c.loss.perceptual_feature_scale = feature_scale
  else:
    c.loss.pixel_weight = pixel_weight + perceptual_weight
  return c


def paper_finish(c: ml_collections.ConfigDict, options: set[str]) -> ml_collections.ConfigDict:
  """``tiny``: make_tiny with a tiny RRDBNet, for tests of the whole experiment."""
  if "tiny" in options:
    make_tiny(c)
    c.train.num_steps = 10
    c.train.checkpoint_every = 5
    c.train.log_every = 5
  return c
