"""The persistent compilation cache: where it goes, and that a second process reuses it."""
import dataclasses
import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
from PIL import Image
import pytest

from jaxsr import compile_cache

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

# Runs `jaxsr upscale` in a fresh process and prints how many compilations asked the
# persistent cache and how many it answered (JAX's monitoring events).
_RUN = """
import collections, json, sys
import jax
from jaxsr import upscale
counts = collections.Counter()
jax.monitoring.register_event_listener(lambda event, **kw: counts.update([event]))
status = upscale.main(sys.argv[1:])
print(json.dumps({"status": status,
                  "asked": counts["/jax/compilation_cache/compile_requests_use_cache"],
                  "hits": counts["/jax/compilation_cache/cache_hits"]}))
"""


@pytest.fixture()
def jax_cache_setting():
  """Restores the process's JAX cache settings that enable() changes."""
  keys = ("jax_compilation_cache_dir", "jax_enable_compilation_cache",
          "jax_persistent_cache_min_compile_time_secs", "jax_persistent_cache_min_entry_size_bytes")
  saved = {key: getattr(jax.config, key) for key in keys}
  yield
  for key, value in saved.items():
    jax.config.update(key, value)


def test_the_folder_is_the_flag_then_jax_setting_then_the_user_cache(monkeypatch, tmp_path,
                                                                    jax_cache_setting):
  assert compile_cache.resolve(str(tmp_path / "mine")) == tmp_path / "mine"
  assert compile_cache.resolve("none") is None and compile_cache.resolve("NONE") is None
  jax.config.update("jax_enable_compilation_cache", False)  # JAX's own switch: off.
  assert compile_cache.resolve(None) is None
  assert compile_cache.resolve(str(tmp_path / "mine")) == tmp_path / "mine"  # The flag wins.
  jax.config.update("jax_enable_compilation_cache", True)
  jax.config.update("jax_compilation_cache_dir", str(tmp_path / "jax_own"))
  assert compile_cache.resolve(None) == tmp_path / "jax_own"
  jax.config.update("jax_compilation_cache_dir", None)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  assert compile_cache.resolve(None) == tmp_path / "xdg" / "jaxsr" / "xla"
  monkeypatch.delenv("XDG_CACHE_HOME")
  assert compile_cache.resolve(None) == pathlib.Path.home() / ".cache" / "jaxsr" / "xla"


def test_an_unusable_folder_turns_the_cache_off_with_a_warning(tmp_path, caplog,
                                                              jax_cache_setting):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a folder")
  assert compile_cache.enable(str(blocker / "cache")) is None
  assert "compilation cache off" in caplog.text
  assert jax.config.jax_enable_compilation_cache is False
  assert compile_cache.enable(str(tmp_path / "ok")) == tmp_path / "ok"
  assert (tmp_path / "ok").is_dir() and jax.config.jax_compilation_cache_dir == str(tmp_path / "ok")


def _upscale_in_a_new_process(image, output, cache, extra=()):
  env = dict(os.environ)
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  env.pop("JAX_ENABLE_COMPILATION_CACHE", None)
  env["PYTHONPATH"] = str(REPO_ROOT)
  result = subprocess.run(
      [sys.executable, "-c", _RUN, f"--input={image}", f"--output={output}",
       "--weights=xray_x2", f"--compilation_cache={cache}", *extra],
      capture_output=True, text=True, env=env, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_second_process_loads_every_executable_from_the_cache(tmp_path):
  image = tmp_path / "in.png"
  Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 40), np.uint8)).save(image)
  cache = tmp_path / "cache"
  first = _upscale_in_a_new_process(image, tmp_path / "out1", cache)
  assert first["status"] == 0 and first["asked"] > 0 and first["hits"] == 0
  assert any(cache.iterdir())  # The first run wrote its executables.
  facts = sorted(p.name.split("-")[0] for p in (cache / compile_cache.STORE).iterdir())
  assert facts == ["bytes_per_pixel", "forward", "variables"]  # What the first run traced.
  second = _upscale_in_a_new_process(image, tmp_path / "out2", cache)
  # Every compilation of the second run is a hit, and fewer are asked for: the
  # memory probe and the small ops of tracing the variables are not needed again.
  assert second["status"] == 0 and second["hits"] == second["asked"] < first["asked"]
  assert (np.asarray(Image.open(tmp_path / "out1" / "in.png"))
          == np.asarray(Image.open(tmp_path / "out2" / "in.png"))).all()
  off = _upscale_in_a_new_process(image, tmp_path / "out3", "none")
  assert off["status"] == 0 and off["hits"] == 0


def test_stored_facts_are_computed_once_per_key_and_never_trusted_when_broken(
    tmp_path, jax_cache_setting):
  calls = []
  def compute(value):
    return lambda: calls.append(value) or value
  compile_cache.enable(str(tmp_path))
  assert compile_cache.stored("probe", ["a", 1], compute(5)) == 5
  assert compile_cache.stored("probe", ["a", 1], compute(6)) == 5  # kept
  assert compile_cache.stored("probe", ["a", 2], compute(7)) == 7  # another key
  assert calls == [5, 7]
  kept = sorted((tmp_path / compile_cache.STORE).glob("probe-*.json"))
  assert len(kept) == 2
  for path in kept:
    path.write_text('{"value": ')  # a damaged file
  assert compile_cache.stored("probe", ["a", 1], compute(8)) == 8  # computed again
  assert compile_cache.stored("probe", ["a", 1], compute(9)) == 8  # and kept again
  assert calls == [5, 7, 8]
  compile_cache.enable("none")
  assert compile_cache.stored("probe", ["a", 1], compute(10)) == 10  # off: nothing kept


def test_abstract_variables_come_back_the_same_from_the_store(tmp_path, jax_cache_setting):
  from jaxsr import weights  # pylint: disable=import-outside-toplevel
  module = weights.build("rrdbnet", 4, 1, {"num_block": 1, "num_feat": 8, "num_grow_ch": 4})
  compile_cache.enable("none")
  want = weights.abstract_variables(module, 1)
  compile_cache.enable(str(tmp_path))
  first = weights.abstract_variables(module, 1)
  second = weights.abstract_variables(module, 1)  # read back from the file
  assert any((tmp_path / compile_cache.STORE).glob("variables-*.json"))
  assert jax.tree.structure(second) == jax.tree.structure(want) == jax.tree.structure(first)
  for got, ref in zip(jax.tree.leaves(second), jax.tree.leaves(want)):
    assert got.shape == ref.shape and got.dtype == ref.dtype


def test_a_kept_forward_graph_runs_without_tracing_the_network_and_gives_the_same_pixels(
    tmp_path, jax_cache_setting):
  from jaxsr import weights  # pylint: disable=import-outside-toplevel
  from jaxsr.inference import model as model_lib  # pylint: disable=import-outside-toplevel
  module = weights.build("rrdbnet", 2, 1, {"num_block": 1, "num_feat": 8, "num_grow_ch": 4})
  variables = module.init(jax.random.key(0), np.zeros((1, 16, 16, 1), np.float32))
  tiles = np.random.default_rng(0).random((2, 12, 16), np.float32)
  compile_cache.enable("none")
  want = model_lib.from_module(module, variables).predict(tiles)
  compile_cache.enable(str(tmp_path))
  first = model_lib.from_module(module, variables).predict(tiles)
  assert list((tmp_path / compile_cache.STORE).glob("forward-*.json"))

  def untraceable(*_):
    raise AssertionError("the network was traced again")

  again = model_lib.from_module(module, variables)
  again = dataclasses.replace(again, forward=untraceable)
  np.testing.assert_array_equal(again.predict(tiles), first)
  np.testing.assert_allclose(first, want, rtol=1e-6, atol=1e-7)  # same graph, same sums
