"""The ``jaxsr`` command, shipped config names, --show_config and the packaging.

Dispatch is checked in-process with the commands' entry points replaced
(cheap); the console script, --show_config and the installs run as
subprocesses, as a user runs them.
"""
import importlib
import importlib.util
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tomllib

import pytest

from jaxsr import cli, errors, huge_pages
from jaxsr import config as base
from jaxsr import main as jaxsr_main
from jaxsr.degradations import config as degradation_config

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.stem for p in (REPO / "configs").glob("*.py") if not p.name.startswith("_"))
SCRIPT = pathlib.Path(sys.executable).parent / "jaxsr"
SHOW_LINE = re.compile(r"^(?P<key>[a-z0-9_.]+) = (?P<value>.*?)  # (?P<meaning>.+)$")


def _env(**extra):
  env = dict(os.environ, JAXSR_HUGE_PAGES="0", **extra)  # No re-exec: one process to time.
  env.pop("XLA_FLAGS", None)
  return env


def _run(cmd, cwd=REPO, timeout=300, **env):
  return subprocess.run([str(c) for c in cmd], cwd=cwd, env=_env(**env), capture_output=True,
                        text=True, timeout=timeout, check=False)


def _exit_code(call):
  try:
    call()
  except SystemExit as e:
    return e.code
  return None


def _load_config(name: str, arg: str = ""):
  spec = importlib.util.spec_from_file_location(f"config_{name}", REPO / "configs" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


# ----------------------------------------------------------------------------
# Dispatch.

@pytest.fixture
def calls(monkeypatch):
  """Records the restart, the Ctrl-C watcher and each command's entry point, in order."""
  log = []
  monkeypatch.setattr(huge_pages, "restart_with_huge_pages", lambda: log.append(("restart",)))
  monkeypatch.setattr(errors, "install_interrupt_watcher", lambda: log.append(("watcher",)))
  for command, (module_name, _) in cli.COMMANDS.items():
    module = importlib.import_module(module_name)
    if module_name == "jaxsr.main":
      monkeypatch.setattr(module, "run", lambda argv: log.append(("run", list(argv))) or 0)
    else:
      monkeypatch.setattr(module, "main",
                          lambda argv, c=command: log.append((c, list(argv))) or 3)
  return log


@pytest.mark.parametrize("command, expected", [
    ("train", ("run", ["jaxsr train", "--config=srgan", "--workdir=w"])),
    ("eval", ("run", ["jaxsr eval", "--mode=eval", "--config=srgan", "--workdir=w"])),
    ("upscale", ("upscale", ["--config=srgan", "--workdir=w"])),
    ("evaluate", ("evaluate", ["--config=srgan", "--workdir=w"])),
    ("export", ("export", ["--config=srgan", "--workdir=w"])),
    ("convert", ("convert", ["--config=srgan", "--workdir=w"])),
    ("interpolate", ("interpolate", ["--config=srgan", "--workdir=w"])),
    ("preview", ("preview", ["--config=srgan", "--workdir=w"])),
])
def test_each_command_runs_its_entry_point_with_its_flags(calls, command, expected):
  code = _exit_code(lambda: cli.main([command, "--config=srgan", "--workdir=w"]))
  assert calls == [("watcher",), expected]  # No restart: argv was given, not the command line.
  assert code == (0 if command in ("train", "eval") else 3)  # The command's status.


def test_the_console_call_restarts_first_and_watches_ctrl_c_once(calls, monkeypatch):
  monkeypatch.setattr(sys, "argv", ["jaxsr", "upscale", "--input=x"])
  assert _exit_code(cli.main) == 3
  assert calls == [("restart",), ("watcher",), ("upscale", ["--input=x"])]


def test_importing_the_cli_leaves_jax_for_after_the_restart():
  result = _run([sys.executable, "-c",
                 "import sys, jaxsr.cli; "
                 "sys.exit(any(m == 'jax' or m.startswith(('jax.', 'jaxlib')) for m in sys.modules))"])
  assert result.returncode == 0, "jaxsr.cli imports jax before the huge-pages restart"


@pytest.mark.parametrize("argv", [["trian"], ["--config=srgan", "train"]])
def test_unknown_command_is_one_line_and_exit_2(calls, capsys, argv):
  assert _exit_code(lambda: cli.main(argv)) == 2
  err = capsys.readouterr().err
  assert err.startswith(f"jaxsr: error: unknown command '{argv[0]}'") and err.count("\n") == 1
  assert all(name in err for name in cli.COMMANDS)
  assert calls == []


def test_no_command_prints_the_commands_and_exits_2(calls, capsys):
  assert _exit_code(lambda: cli.main([])) == 2
  assert "commands:" in capsys.readouterr().err


# ----------------------------------------------------------------------------
# Help.

def test_console_script_help_lists_every_command_with_its_purpose():
  assert SCRIPT.exists(), f"{SCRIPT} missing: pip install -e '.[dev]'"
  result = _run([SCRIPT, "--help"], cwd="/")
  assert result.returncode == 0, result.stderr
  for name, (_, about) in cli.COMMANDS.items():
    assert re.search(rf"^  {name} +{re.escape(about)}$", result.stdout, re.M), result.stdout


def test_console_script_command_help_shows_flags_and_defaults():
  result = _run([SCRIPT, "upscale", "--help"], cwd="/")
  assert result.returncode == 0, result.stderr
  assert result.stdout.startswith("usage: jaxsr upscale")
  assert "Upscales medical images" in result.stdout
  assert "--hu_range HU_RANGE" in result.stdout and "(default: -1024,3071)" in result.stdout
  assert re.search(r"--tile TILE\s+tile side in input pixels, 0: whole images\s+\(default\s+auto:\s+"
                   r"from\s+--max_memory\)", result.stdout), result.stdout
  assert "--max_memory MAX_MEMORY" in result.stdout


@pytest.mark.parametrize("command, purpose, default", [
    ("evaluate", "Scores super-resolution models", "(default: bicubic)"),
    ("export", "Exports a generator", "(default: cpu,cuda)"),
    ("convert", "Converts network weights", "(default: False)"),
    ("interpolate", "Network interpolation", "(default: False)"),
    ("preview", "Writes a labelled PNG grid", "(default: 6)"),
    ("train", "Trains a super-resolution generator", "(default: 'train')"),
    ("eval", "Evaluates the latest checkpoint", "(default: 'false')"),
])
def test_each_command_help_says_what_it_is_for_with_defaults(capsys, command, purpose, default):
  assert _exit_code(lambda: cli.main([command, "--help"])) == 0
  out = capsys.readouterr().out
  assert out.startswith(f"usage: jaxsr {command}"), out[:200]
  assert purpose in out and default in out, out
  if command in ("train", "eval"):
    assert "--show_config" in out and all(name in out for name in CONFIGS)


# ----------------------------------------------------------------------------
# Shipped config names.

def test_shipped_configs_are_the_repository_configs():
  assert jaxsr_main.shipped_configs() == CONFIGS
  assert "srresnet" in CONFIGS and "realesrgan" in CONFIGS


@pytest.mark.parametrize("argv, config", [
    (["--config=realesrgan"], "realesrgan.py"),
    (["--config=realesrgan:tiny"], "realesrgan.py:tiny"),
    (["-config=srgan:tiny"], "srgan.py:tiny"),
    (["--config", "xray_x4"], "xray_x4.py"),
])
def test_a_bare_config_name_becomes_the_shipped_file(argv, config):
  resolved = jaxsr_main.resolve_config_names(["jaxsr train", "--workdir=w", *argv, "--x=1"])
  assert resolved[:2] == ["jaxsr train", "--workdir=w"] and resolved[-1] == "--x=1"
  value = resolved[2].partition("=")[2] if "=" in resolved[2] else resolved[3]
  path, _, arg = value.partition(":")
  assert pathlib.Path(path).samefile(REPO / "configs" / config.partition(":")[0])
  assert arg == config.partition(":")[2]


@pytest.mark.parametrize("value", ["configs/srresnet.py:tiny", "configs/srresnet.py",
                                   "srresnet.py", "/abs/srgan.py:tiny", "./srgan"])
def test_config_paths_are_left_as_given(value):
  argv = ["jaxsr train", f"--config={value}", "--", "--config=srgan"]
  assert jaxsr_main.resolve_config_names(argv) == argv


def test_an_unknown_config_name_is_one_line_listing_the_shipped_ones(capsys):
  code = _exit_code(lambda: jaxsr_main.resolve_config_names(["p", "--config=esrgam:tiny"]))
  err = capsys.readouterr().err
  assert code == 2 and err.startswith("jaxsr: error: --config=esrgam:tiny") and err.count("\n") == 1
  assert all(name in err for name in CONFIGS)


@pytest.mark.slow
def test_an_unknown_config_name_exits_2_from_the_command_line():
  result = _run([sys.executable, "-m", "jaxsr.cli", "train", "--config=nope", "--show_config"])
  assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
  assert "no shipped config 'nope'" in result.stderr and "srresnet" in result.stderr


# ----------------------------------------------------------------------------
# --show_config and the meaning of every key.

def _shown(stdout: str) -> dict[str, tuple[str, str]]:
  shown = {}
  for line in stdout.splitlines():
    match = SHOW_LINE.match(line)
    assert match, f"not 'key = value  # meaning': {line!r}"
    shown[match["key"]] = (match["value"], match["meaning"])
  return shown


@pytest.mark.slow
def test_show_config_prints_every_key_its_value_and_meaning_without_a_workdir(tmp_path):
  result = _run([sys.executable, "-m", "jaxsr.cli", "train", "--config=realesrgan:tiny",
                 "--show_config", "--config.data.batch_size=8",
                 "--config.degradation.noise_range=(1, 20)"], cwd=tmp_path)
  assert result.returncode == 0, result.stderr
  shown = _shown(result.stdout)
  config = _load_config("realesrgan", "tiny")
  assert list(shown) == [key for key, _ in base.flat_items(config)]
  for key, value in base.flat_items(config):
    expected = ({"data.batch_size": 8, "degradation.noise_range": (1, 20)}.get(key, value))
    if hasattr(expected, "to_dict"):
      expected = expected.to_dict()
    assert shown[key] == (repr(expected), base.key_help(key)), key
  assert shown["data.batch_size"][0] == "8" and shown["model.name"][0] == "'rrdbnet'"
  assert shown["loss.perceptual_layers"][0] == "{'conv1_2': 1.0}"
  assert shown["optim_g.lr"][1].startswith(base.KEY_HELP["optim.lr"])
  assert not list(tmp_path.iterdir())  # Nothing written: no workdir.


@pytest.mark.slow
def test_show_config_of_a_path_and_of_the_name_are_the_same():
  by_path = _run([sys.executable, "-m", "jaxsr.main", "--config=configs/srresnet.py:tiny",
                  "--show_config"])
  by_name = _run([SCRIPT, "train", "--config=srresnet:tiny", "--show_config"])
  assert by_path.returncode == by_name.returncode == 0, by_path.stderr + by_name.stderr
  assert by_path.stdout == by_name.stdout
  assert _shown(by_path.stdout)["model.name"][0] == "'srresnet'"


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("arg", ["", "tiny"])
def test_every_key_of_every_shipped_config_has_a_meaning(name, arg):
  missing = [key for key, _ in base.flat_items(_load_config(name, arg))
             if not (base.key_help(key) or "").strip()]
  assert not missing, f"configs/{name}.py:{arg}: no KEY_HELP for {missing}"


def test_the_meanings_name_only_keys_that_exist():
  keys = {key for name in CONFIGS for arg in ("", "tiny")
          for key, _ in base.flat_items(_load_config(name, arg))}
  shared = {f"optim.{key.partition('.')[2]}" for key in keys if key.startswith("optim_g.")}
  assert not set(base.KEY_HELP) - keys - shared, "KEY_HELP names keys no config has"
  assert set(degradation_config.KEY_HELP) == set(degradation_config.default_config())


# ----------------------------------------------------------------------------
# Packaging.

def test_pyproject_ships_every_package_the_configs_and_the_script():
  project = tomllib.loads((REPO / "pyproject.toml").read_text())
  setuptools = project["tool"]["setuptools"]
  packages = {".".join(p.relative_to(REPO).parent.parts) for p in (REPO / "jaxsr").rglob("__init__.py")}
  assert set(setuptools["packages"]) == packages | {"jaxsr.configs"}
  assert setuptools["package-dir"] == {"jaxsr.configs": "configs"}
  assert project["project"]["scripts"] == {"jaxsr": "jaxsr.cli:main"}
  markers = project["tool"]["pytest"]["ini_options"]["markers"]
  assert {m.partition(":")[0] for m in markers} >= {"slow", "reference"}


@pytest.mark.slow
def test_a_non_editable_install_ships_the_configs_models_and_script(tmp_path):
  # Built from a copy, so the build's egg-info and build/ stay out of the checkout.
  source, target, cwd = tmp_path / "src", tmp_path / "install", tmp_path / "elsewhere"
  source.mkdir()
  cwd.mkdir()
  for name in ("pyproject.toml", "README.md"):
    shutil.copy(REPO / name, source / name)
  for name in ("jaxsr", "configs"):
    shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
  result = _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile",
                 "--target", target, source], cwd=cwd, timeout=600)
  if result.returncode and "No matching distribution found for setuptools" in result.stderr:
    pytest.skip("no index to fetch the build backend (setuptools) from")
  assert result.returncode == 0, result.stderr[-3000:]
  assert sorted(p.stem for p in (target / "jaxsr" / "configs").glob("*.py")
                if p.name != "__init__.py") == CONFIGS
  shipped = sorted(p.name for p in (REPO / "jaxsr" / "pretrained").glob("*.safetensors"))
  assert shipped and sorted(p.name for p in (target / "jaxsr" / "pretrained").glob(
      "*.safetensors")) == shipped
  env = dict(PYTHONPATH=str(target))
  where = _run([sys.executable, "-c", "import jaxsr.configs, jaxsr.main as m, jaxsr.pretrained as p; "
                "print(jaxsr.configs.__file__, m._configs_folder(), p.weights_path('xray_x4'))"],
               cwd=cwd, **env)
  assert where.returncode == 0, where.stderr
  assert all(pathlib.Path(path).is_relative_to(target) for path in where.stdout.split()), where.stdout
  shown = _run([sys.executable, "-m", "jaxsr.cli", "train", "--config=srresnet:tiny",
                "--show_config"], cwd=cwd, **env)
  assert shown.returncode == 0, shown.stderr
  assert _shown(shown.stdout)["model.name"][0] == "'srresnet'"
  helped = _run([target / "bin" / "jaxsr", "--help"], cwd=cwd, **env)
  assert helped.returncode == 0 and all(name in helped.stdout for name in cli.COMMANDS), helped.stderr


def test_every_gan_variant_changes_only_its_own_keys():
  default = dict(base.flat_items(_load_config("xray_x4_gan", "")))
  variants = importlib.import_module("configs.xray_x4_gan").VARIANTS
  for name, overrides in variants.items():
    config = dict(base.flat_items(_load_config("xray_x4_gan", name)))
    changed = {k for k in default if default[k] != config[k]} - {"name"}
    assert changed == {k for k, v in overrides.items() if default[k] != v}, name
    for key, value in overrides.items():
      assert config[key] == (tuple(value) if isinstance(value, (list, tuple)) else value), key
