"""jaxsr: SRGAN, ESRGAN and Real-ESRGAN in JAX/Flax for medical images.

From Python::

  import jaxsr
  model = jaxsr.load_model("xray_x4")          # a shipped model, workdir, .safetensors or .pth
  sr = model.upscale(pixels, bits=12)          # float32 (H, W) in [0, 1] -> (4H, 4W)

``pixels`` are stored levels divided by ``2**bits - 1`` (what
``jaxsr.io.read_image`` returns); data in the low bits of a deeper
container are stretched for the network and back, large images go through
tiles, and the output is clipped to the data's range. The command line is
``jaxsr --help``.
"""

import importlib.metadata

try:
  __version__ = importlib.metadata.version("jaxsr")  # pyproject.toml is the one place.
except importlib.metadata.PackageNotFoundError:  # A checkout on PYTHONPATH, not installed.
  __version__ = "unknown"


def load_model(source, use_ema: bool = True, dtype: str = "float32"):
  """A generator ready for inference (:class:`jaxsr.inference.model.Model`).

  ``source``: a shipped model's name (``xray_x4``, ``xray_x2``,
  ``xray_x4_gan``), a training workdir (its latest checkpoint; EMA weights
  where kept, unless ``use_ema=False``), a jaxsr ``.safetensors`` export or
  an official ``.pth`` (ESRGAN, Real-ESRGAN, BasicSR). ``dtype``:
  ``"bfloat16"`` runs the network in bfloat16 (faster on GPUs and TPUs).
  """
  # Imported here so that ``import jaxsr`` stays light for the command line,
  # which may restart the process before jax starts (jaxsr.huge_pages).
  from jaxsr.inference import model  # pylint: disable=import-outside-toplevel
  return model.load(source, use_ema=use_ema, dtype=dtype)
