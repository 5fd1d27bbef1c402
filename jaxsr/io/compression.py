"""Lossless transfer syntaxes for DICOM outputs: which one, and a bit-exact check.

An upscaled radiograph is s² times the pixels of its source; stored
uncompressed a ×4 mammogram is over 100 MB. Archives accept the lossless
DICOM syntaxes, so outputs can be 2–4 times smaller with nothing lost:

* ``jpeg-ls``: JPEG-LS Lossless (1.2.840.10008.1.2.4.80), pydicom's
  ``pyjpegls`` plugin: the smallest files of the three on radiographs and CT,
  and fast;
* ``jpeg2000``: JPEG 2000 Lossless (1.2.840.10008.1.2.4.90), the ``pylibjpeg``
  plugin with ``pylibjpeg-openjpeg``; written without the colour transform,
  so RGB stays RGB;
* ``rle``: RLE Lossless (1.2.840.10008.1.2.5), built into pydicom; larger
  and slower, but every archive reads it;
* ``uncompressed``: Explicit VR Little Endian.

``auto`` takes the first of JPEG-LS, JPEG 2000 and RLE whose encoder is
installed and allowed for the image (JPEG 2000 is not used for YBR_FULL
colour, which PS3.5 does not list for it), and falls back to uncompressed
when none is. Every encoded image is decoded again and compared with what
was meant to be stored: a mismatch is never written (``auto`` tries the next
syntax; a syntax asked for by name is an error).
"""
from typing import Optional

import numpy as np
import pydicom
from pydicom import uid as dicom_uid
from pydicom.pixels import decoders, encoders, pixel_array

from jaxsr import errors

SYNTAXES = {
    "jpeg-ls": dicom_uid.JPEGLSLossless,
    "jpeg2000": dicom_uid.JPEG2000Lossless,
    "rle": dicom_uid.RLELossless,
    "uncompressed": dicom_uid.ExplicitVRLittleEndian,
}
CHOICES = ("auto",) + tuple(SYNTAXES)
_ENCODERS = {
    "jpeg-ls": encoders.JPEGLSLosslessEncoder,
    "jpeg2000": encoders.JPEG2000LosslessEncoder,
    "rle": encoders.RLELosslessEncoder,
}
# The plugin package each needs, for messages.
_PACKAGES = {"jpeg-ls": "pyjpegls", "jpeg2000": "pylibjpeg and pylibjpeg-openjpeg", "rle": "pydicom"}
_OPTIONS = {"jpeg2000": {"use_mct": False}}
# JPEG-LS decoding (lossless and near-lossless) is exact by the standard, so every
# conformant decoder returns the same samples. pydicom tries pylibjpeg's libjpeg
# first, which decodes several times slower than CharLS (benchmarks/README.md,
# bench_dicom_syntax.py); lossy JPEG is left to pydicom's order, since its
# decoders may differ by a level.
_FAST_DECODERS = {dicom_uid.JPEGLSLossless: "pyjpegls",
                  dicom_uid.JPEGLSNearLossless: "pyjpegls"}


class CompressionError(errors.UserError):
  """A transfer syntax that cannot be written here or that did not round-trip; one line."""


def available(name: str) -> bool:
  """Whether ``name``'s encoder is installed (uncompressed always is)."""
  return name == "uncompressed" or _ENCODERS[name].is_available


def decoding_plugin(syntax) -> str:
  """The pydicom decoding plugin to ask for on ``syntax``'s pixel data ("": pydicom's choice,
  also for no syntax at all)."""
  plugin = _FAST_DECODERS.get(syntax)
  if plugin is None:
    return ""
  try:
    installed = decoders.base.get_decoder(syntax).available_plugins
  except NotImplementedError:
    return ""
  return plugin if plugin in installed else ""


def check_choice(choice: str) -> None:
  """Refuses a named syntax whose encoder is missing, before any work is done."""
  if choice not in CHOICES:
    raise CompressionError(f"--dicom_transfer_syntax={choice}: choose one of {', '.join(CHOICES)}")
  if choice != "auto" and not available(choice):
    raise CompressionError(f"--dicom_transfer_syntax={choice}: its encoder is not installed "
                           f"(needs {_PACKAGES[choice]}); choose auto or another")


def allowed(name: str, ds: pydicom.Dataset) -> bool:
  """Whether PS3.5 allows ``name`` for this image's photometric interpretation."""
  photometric = str(ds.get("PhotometricInterpretation") or "")
  return not (name == "jpeg2000" and photometric.startswith("YBR"))


def auto_order(ds: pydicom.Dataset) -> list[str]:
  return [n for n in ("jpeg-ls", "jpeg2000", "rle") if available(n) and allowed(n, ds)]


def compress(ds: pydicom.Dataset, choice: str, stored: Optional[np.ndarray] = None) -> str:
  """Encodes ``ds``'s uncompressed Pixel Data in place with ``choice``; returns the syntax
  name used. ``stored``: the samples the file must decode to (default: its own)."""
  check_choice(choice)
  if choice == "uncompressed":
    return choice
  if choice != "auto" and not allowed(choice, ds):
    raise CompressionError(f"{choice} cannot hold {ds.PhotometricInterpretation} pixels; "
                           "choose auto or another")
  names = auto_order(ds) if choice == "auto" else [choice]
  expected = pixel_array(ds, raw=True) if stored is None else stored
  kept = {k: ds.get(k) for k in ("PixelData", "PhotometricInterpretation", "PlanarConfiguration")}
  syntax = ds.file_meta.TransferSyntaxUID
  problems = []
  for name in names:
    try:
      ds.compress(SYNTAXES[name], encoding_plugin="", **_OPTIONS.get(name, {}))
      decoded = pixel_array(ds, raw=True, decoding_plugin=decoding_plugin(SYNTAXES[name]))
      if np.array_equal(decoded.reshape(expected.shape), expected):
        return name
      problems.append(f"{name}: decoded pixels differ from the written ones")
    except Exception as error:  # pylint: disable=broad-except
      problems.append(f"{name}: {error}")
    _restore(ds, kept, syntax)
  if choice == "auto":
    return "uncompressed"
  raise CompressionError("; ".join(problems))


def _restore(ds: pydicom.Dataset, kept: dict, syntax) -> None:
  for keyword, value in kept.items():
    if value is None:
      if keyword in ds:
        delattr(ds, keyword)
    else:
      setattr(ds, keyword, value)
  ds.file_meta.TransferSyntaxUID = syntax
  element = ds["PixelData"]
  element.VR = "OB" if int(ds.get("BitsAllocated") or 8) <= 8 else "OW"
  element.is_undefined_length = False
