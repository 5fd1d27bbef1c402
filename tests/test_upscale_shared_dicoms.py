"""Every shared DICOM goes through ``jaxsr.upscale`` into a valid, faithful DICOM.

The network is MSRResNet with all weights zero, which is exactly bilinear x2
upsampling (its residual branch vanishes and the bilinear skip remains). So
the written pixels must equal bilinear upsampling of the input, rounded to the
file's levels: this checks the modality LUT being undone, MONOCHROME1 being
re-inverted and the bit depth being kept, on every encoding in the folder.
"""
import hashlib

import jax
import jax.numpy as jnp
import numpy as np
import pydicom
import pytest

from jaxsr import upscale, weights
from jaxsr.io import compression, images
from jaxsr.models.srresnet import MSRResNet

pytestmark = pytest.mark.slow  # Every shared DICOM through the upscaler, whole.

SCALE = 2


@pytest.fixture(scope="module")
def bilinear_weights(tmp_path_factory):
  module = MSRResNet(1, 1, num_feat=4, num_block=1, upscale=SCALE)
  shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)))
  params = jax.tree.map(lambda s: np.zeros(s.shape, np.float32), shapes["params"])
  path = tmp_path_factory.mktemp("weights") / "bilinear_x2.safetensors"
  weights.save_safetensors(path, params, None, "msrresnet", SCALE, 1,
                           {"num_feat": 4, "num_block": 1})
  return path


def _sha(path):
  return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_shared_dicom_round_trips(xray_dir, bilinear_weights, tmp_path):
  inputs = sorted((xray_dir / "dicom").glob("*.dcm"))
  assert len(inputs) >= 10
  before = {p: _sha(p) for p in inputs}
  out = tmp_path / "out"
  status = upscale.main([f"--weights={bilinear_weights}", f"--input={xray_dir / 'dicom'}",
                         f"--output={out}", "--tile=1024", "--tile_overlap=16"])
  assert status == 0
  for src in inputs:
    assert _sha(src) == before[src], f"{src.name} was modified"
    dst = out / src.name
    ds_in = pydicom.dcmread(src, stop_before_pixels=True)
    ds = pydicom.dcmread(dst)
    assert ds.Rows == ds_in.Rows * SCALE and ds.Columns == ds_in.Columns * SCALE, src.name
    for key in ("BitsStored", "BitsAllocated", "PixelRepresentation",
                "PhotometricInterpretation", "PatientID", "StudyInstanceUID"):
      if key in ds_in:
        assert ds[key].value == ds_in[key].value, (src.name, key)
    assert ds.SOPInstanceUID != ds_in.SOPInstanceUID
    assert ds.SeriesInstanceUID != ds_in.SeriesInstanceUID
    assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert "jaxsr" in ds.DerivationDescription
    assert ds.file_meta.TransferSyntaxUID in compression.SYNTAXES.values()  # Lossless.
    for key in ("PixelSpacing", "ImagerPixelSpacing"):
      if key in ds_in:
        np.testing.assert_allclose([float(v) for v in ds[key].value],
                                   [float(v) / SCALE for v in ds_in[key].value], rtol=1e-6)
    assert ds.pixel_array.shape == (ds.Rows, ds.Columns)

    # The stored values mean what the input's meant: read back through the
    # same reader, they are bilinear x2 of the input, to within one level.
    rad_in, rad_out = images.read_image(src), images.read_image(dst)
    assert rad_out.bits == rad_in.bits
    h, w = rad_in.pixels.shape
    expected = np.asarray(jax.image.resize(jnp.asarray(rad_in.pixels), (h * SCALE, w * SCALE),
                                           "linear", antialias=False))
    level = 1.0 / (2 ** rad_in.bits - 1)
    np.testing.assert_allclose(rad_out.pixels, np.clip(expected, 0, 1), atol=level * 1.01,
                               err_msg=src.name)
