"""The model, parity and API tests again in a process with one CPU device.

The rest of the suite runs with eight virtual devices; a user's laptop has
one, where the networks take their CPU path (Winograd trunk, packed batches)
by default. This runs those tests (their quick ones; the slow ones need no
second run for this) as that user's process would.
"""
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_model_tests_pass_on_one_cpu_device():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
  code = ("import jax, sys, pytest\n"
          "assert jax.device_count() == 1, jax.devices()\n"
          "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '-m', 'not slow',"
          " 'tests/test_models.py', 'tests/test_winograd.py', 'tests/test_parity.py',"
          " 'tests/test_api.py', 'tests/test_train_step.py']))\n")
  proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=1200, check=False)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
  assert " passed" in proc.stdout and "failed" not in proc.stdout
