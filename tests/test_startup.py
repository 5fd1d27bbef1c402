"""Inference commands start without the training stack.

Start-up of `jaxsr upscale` on one image is dominated by imports once the
compilation cache is warm; grain and orbax (data loading and checkpoints)
and matplotlib (figures) are imported only by the code paths that use them.
"""
import subprocess
import sys

import pytest

TRAINING_ONLY = ("grain", "orbax.checkpoint", "matplotlib")


@pytest.mark.parametrize("module", ["jaxsr.upscale", "jaxsr.evaluate", "jaxsr.interpolate",
                                    "jaxsr.convert", "jaxsr.export"])
def test_inference_commands_import_no_training_stack(module):
  code = (f"import sys, {module}; "
          f"print(','.join(m for m in {TRAINING_ONLY!r} if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "", f"{module} imports {out.stdout.strip()} at start-up"

