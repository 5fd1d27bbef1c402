"""Shared test fixtures.

The development radiographs live outside the repository, in
``../shared/data/xray`` relative to the repository root; ``JAXSR_XRAY_DIR``
overrides that path. The CT, MR and ultrasound files beside them
(``../shared/data/{ct,mr,us}``, see MODALITIES.md there) are found through
``JAXSR_SHARED_DATA_DIR``, which overrides ``../shared/data``.
"""
import atexit
import os
import pathlib
import shutil
import tempfile

# Eight virtual CPU devices for the multi-device tests; set before JAX starts.
# (tests/test_single_device.py runs the model tests again on one device.)
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

# The commands' persistent compilation cache (jaxsr.compile_cache) is off in the tests
# and the processes they start (tests/test_compile_cache.py turns it on for its own), so
# that no test writes to the user's cache; a folder of this session in case one is used.
os.environ.setdefault("JAX_ENABLE_COMPILATION_CACHE", "false")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="jaxsr-test-xla-")
  atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], True)

import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
XRAY_DIR = pathlib.Path(
    os.environ.get("JAXSR_XRAY_DIR", REPO_ROOT.parent / "shared" / "data" / "xray"))
SHARED_DATA_DIR = pathlib.Path(
    os.environ.get("JAXSR_SHARED_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def xray_dir() -> pathlib.Path:
  if not XRAY_DIR.is_dir():
    raise FileNotFoundError(
        f"{XRAY_DIR}: development radiographs not found; set JAXSR_XRAY_DIR")
  return XRAY_DIR


@pytest.fixture(scope="session")
def xray_train_dir() -> pathlib.Path:
  """The larger radiograph training set (nih/, mhh/, PATIENTS.txt) beside xray/."""
  folder = pathlib.Path(os.environ.get("JAXSR_XRAY_TRAIN_DIR", SHARED_DATA_DIR / "xray_train"))
  if not (folder / "PATIENTS.txt").is_file():
    raise FileNotFoundError(f"{folder}: radiograph training set not found; set "
                            "JAXSR_XRAY_TRAIN_DIR")
  return folder


@pytest.fixture(scope="session")
def shared_data_dir() -> pathlib.Path:
  """The shared data folder (ct/, mr/, us/ beside xray/); a missing one is an error, not a skip."""
  if not (SHARED_DATA_DIR / "MODALITIES.md").is_file():
    raise FileNotFoundError(
        f"{SHARED_DATA_DIR}: shared CT/MR/US data not found; set JAXSR_SHARED_DATA_DIR")
  return SHARED_DATA_DIR
