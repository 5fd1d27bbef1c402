"""Tile planning: memory budgets, the overlap from the receptive field, exact tiles."""
import jax
import numpy as np
import pytest

from jaxsr import errors, pretrained
from jaxsr.inference import model as model_lib
from jaxsr.inference import tiling
from jaxsr.models.rrdbnet import RRDBNet
from jaxsr.models.srresnet import MSRResNet, SRResNet
from jaxsr.models.srvgg import SRVGGNetCompact

IMAGE = np.random.default_rng(0).random((150, 170)).astype(np.float32)
ROUNDING = 2e-6  # float32 sums of a few hundred products; outputs are in [0, 1].
# Small tiles of the compact networks run Winograd trunks on CPU, the whole
# image direct convolutions (conv_algorithm 'auto'): Winograd's rounding.
WINOGRAD_ROUNDING = 1e-5


def _tiled_budget(model, side=90):
  """A budget that holds tiles of about ``side`` pixels of ``model``: several per image."""
  return int(model.bytes_per_pixel() * side * side)


def _random(module, gain=2.0):
  x = np.zeros((1, 16, 16, module.num_in_ch), np.float32)
  variables = module.init(jax.random.PRNGKey(0), x)
  # Random init is near identity (kernels x0.1); a gain makes the far layers matter.
  variables = jax.tree.map(lambda a: a * gain if a.ndim == 4 else a, variables)
  return model_lib.from_module(module, variables, {"arch": type(module).__name__})


@pytest.mark.parametrize("name", sorted(pretrained.MODELS))
def test_every_shipped_network_tiled_at_the_planned_overlap_equals_untiled(name):
  model = model_lib.load(name)
  budget = _tiled_budget(model)
  plan = model.plan(IMAGE.shape, max_memory=budget)
  assert plan.tiles >= 4 and plan.margin == model.receptive_radius
  assert plan.overlap == tiling.exact_overlap(model.receptive_radius, model.input_multiple)
  whole = model.upscale(IMAGE, tile=0)
  assert np.abs(model.upscale(IMAGE, max_memory=budget) - whole).max() < WINOGRAD_ROUNDING


def test_a_margin_short_of_the_receptive_radius_shows_at_the_cuts():
  """The compact network's bound is exact: one pixel less and the tiles differ.

  (Trained weights reach that far only faintly; random ones with a gain do not.)
  """
  model = _random(SRVGGNetCompact(1, 1, upscale=4, num_feat=8, num_conv=4), gain=2.0)
  plan = model.plan(IMAGE.shape, max_memory=_tiled_budget(model, 60))
  whole = model.predict(IMAGE[None])[0]
  exact = tiling.upscale(model.predict, IMAGE, 4, tile=plan.tile, overlap=plan.overlap,
                         margin=plan.margin)
  short = tiling.upscale(model.predict, IMAGE, 4, tile=plan.tile, overlap=plan.overlap,
                         margin=plan.margin - 1)
  assert np.abs(exact - whole).max() < ROUNDING
  assert np.abs(short - whole).max() > 100 * ROUNDING


@pytest.mark.parametrize("module", [
    RRDBNet(1, 1, upscale=4, num_feat=8, num_block=1, num_grow_ch=4),
    RRDBNet(1, 1, upscale=2, num_feat=8, num_block=1, num_grow_ch=4),
    MSRResNet(1, 1, num_feat=8, num_block=2, upscale=4),
    MSRResNet(1, 1, num_feat=8, num_block=1, upscale=3),
    SRResNet(1, 1, num_feat=8, num_block=1, upscale=2),
    SRVGGNetCompact(1, 1, upscale=2, num_feat=8, num_conv=3),
], ids=lambda m: f"{type(m).__name__}_x{m.upscale}")
def test_every_architecture_states_a_radius_that_makes_tiles_exact(module):
  model = _random(module)
  image = np.random.default_rng(1).random((200, 230)).astype(np.float32) * 0.5
  side = max(2 * tiling.exact_overlap(model.receptive_radius, model.input_multiple), 60)
  plan = model.plan(image.shape, max_memory=_tiled_budget(model, side))
  assert plan.tiles > 1
  whole = model.upscale(image, tile=0)
  tiled = model.upscale(image, max_memory=_tiled_budget(model, side))
  # Winograd convolutions (RRDBNet on CPU) round differently where tiles shift their grid.
  assert np.abs(tiled - whole).max() < 4 * ROUNDING


def test_plan_runs_whole_when_the_image_fits_and_in_the_fewest_even_tiles_otherwise():
  whole = tiling.plan(1024, 1024, bytes_per_pixel=600, max_memory=1024 * 1024 * 600, radius=12)
  assert (whole.tile, whole.tiles) == (0, 1)
  assert whole.describe() == "whole image"
  split = tiling.plan(1024, 1024, bytes_per_pixel=600, max_memory=600 * 600 * 600, radius=12)
  # 600 px tiles would need two per axis; two even tiles of 525 px cover 1024 with overlap 26.
  assert (split.tile, split.overlap, split.tiles) == (525, 26, 4)
  assert split.tile ** 2 * 600 <= 600 * 600 * 600
  batched = tiling.plan(1024, 1024, bytes_per_pixel=600, max_memory=1024 * 1024 * 600,
                        radius=12, batch=2)
  assert batched.tiles > 1  # Two tiles at once need twice the memory.
  aligned = tiling.plan(1000, 998, bytes_per_pixel=600, max_memory=500 * 500 * 600, radius=21,
                        align=4)
  assert aligned.tile % 4 == 0 and aligned.overlap % 4 == 0 and aligned.overlap >= 44


def test_plan_keeps_what_the_user_gives():
  kept = tiling.plan(1024, 1024, bytes_per_pixel=600, max_memory=1, radius=12, tile=256,
                     overlap=40)
  assert (kept.tile, kept.overlap, kept.margin) == (256, 40, 12)
  small = tiling.plan(1024, 1024, bytes_per_pixel=600, max_memory=1, radius=12, tile=256,
                      overlap=16)
  assert small.margin is None  # Too little overlap for the radius: a quarter of it, as before.
  assert tiling.plan(300, 200, bytes_per_pixel=600, max_memory=1, radius=12, tile=512).tile == 0


def test_a_budget_too_small_for_the_overlap_is_a_clear_error():
  with pytest.raises(errors.UserError, match=r"--max_memory=.*overlap of 26 px.*at least"):
    tiling.plan(1024, 1024, bytes_per_pixel=600, max_memory=600 * 20 * 20, radius=12)


def test_memory_sizes_parse_as_a_user_writes_them():
  assert tiling.parse_memory("auto") is None
  assert tiling.parse_memory("8G") == 8 * 2 ** 30
  assert tiling.parse_memory("512m") == 512 * 2 ** 20
  assert tiling.parse_memory("1.5GiB") == int(1.5 * 2 ** 30)
  assert tiling.parse_memory("4096") == 4096
  for bad in ("lots", "-1G", "0", "8X"):
    with pytest.raises(ValueError, match="not a memory size"):
      tiling.parse_memory(bad)


def test_the_default_budget_is_a_share_of_free_memory():
  device = jax.devices("cpu")[0]
  free = tiling.free_memory(device)
  assert free > 0
  assert tiling.default_max_memory(device) == pytest.approx(free * tiling.DEFAULT_MEMORY_SHARE,
                                                            rel=0.2)


def test_a_batch_is_never_filled_beyond_the_frames_or_tiles_there_are():
  """--batch=8 on a folder of single images must not run each one eight times."""
  model = model_lib.load("xray_x2")
  calls = []
  predict = model.predict

  def counting(tiles):
    calls.append(tiles.shape[0])
    return predict(tiles)

  object.__setattr__(model, "predict", counting)
  image = IMAGE[:40, :50]
  assert model.plan(image.shape, batch=8, frames=1).tile == 0
  list(model.upscale_frames(image[None], batch=8))
  model.upscale(image, tile=32, overlap=8, batch=8)  # 2 x 2 tiles.
  assert calls == [1, 4]
  # Memory for tiles counts the tiles of a batch, for whole frames the frames.
  tight = int(model.bytes_per_pixel() * 12000)  # One frame or eight 38-px tiles, not eight frames.
  assert model.plan(image.shape, batch=8, frames=1, max_memory=tight).tile == 0
  assert model.plan(image.shape, batch=8, frames=8, max_memory=tight).tile > 0
