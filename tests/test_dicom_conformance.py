"""DICOM outputs a PACS accepts: every shared DICOM through ``jaxsr upscale``, then checked
by the validators archive administrators use and for what a derived image must say.

* dciodvfy (Debian dicom3tools): an output may not have an error or warning
  its input lacks (messages compared with file names and values of the
  attributes we are meant to change left out);
* dcmdump +E (Debian dcmtk): every output parses;
* the derivation, source, equipment and lossy-history attributes (PS3.3);
* the lossless transfer syntaxes decode bit-exactly.

.ci/run installs dicom3tools and dcmtk with apt-get; the tests that need
them skip, saying so, only on a machine where they are not installed.
"""
import re
import shutil
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pydicom
import pytest

from jaxsr import upscale, weights
from jaxsr.inference import derived
from jaxsr.models import SRVGGNetCompact

pytestmark = pytest.mark.slow  # Every shared DICOM through the upscaler.

SCALE = 2
NEEDS_DCIODVFY = pytest.mark.skipif(
    shutil.which("dciodvfy") is None,
    reason="dciodvfy (Debian dicom3tools) is not installed; .ci/run installs it with apt-get")
NEEDS_DCMDUMP = pytest.mark.skipif(
    shutil.which("dcmdump") is None,
    reason="dcmdump (Debian dcmtk) is not installed; .ci/run installs it with apt-get")


def _inputs(xray_dir, shared_data_dir):
  """(name, path) of every shared DICOM input: files, and the CT series folder."""
  found = [p for p in sorted((xray_dir / "dicom").glob("*.dcm"))]
  for folder in ("ct", "mr", "us"):
    found += sorted((shared_data_dir / folder).glob("*.dcm"))
  found.append(shared_data_dir / "ct" / "invesalius_head_ct")
  return found


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
  module = SRVGGNetCompact(1, 1, upscale=SCALE, num_feat=4, num_conv=1)
  shapes = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  rng = np.random.default_rng(0)
  params = jax.tree.map(lambda s: rng.standard_normal(s.shape, np.float32) * 0.01,
                        shapes["params"])
  path = tmp_path_factory.mktemp("weights") / "tiny_x2.safetensors"
  weights.save_safetensors(path, params, None, "srvgg", SCALE, 1,
                           {"num_feat": 4, "num_conv": 1})
  return path


@pytest.fixture(scope="module")
def outputs(xray_dir, shared_data_dir, tiny_weights, tmp_path_factory):
  """{input file: output file} for every shared DICOM (series: every slice)."""
  root = tmp_path_factory.mktemp("conformance")
  pairs = {}
  for source in _inputs(xray_dir, shared_data_dir):
    out = root / source.parent.name / source.name
    assert upscale.main([f"--weights={tiny_weights}", f"--input={source}",
                         f"--output={out.parent if source.is_file() else out}",
                         "--tile=256"]) == 0, source
    if source.is_dir():
      pairs.update({p: out / p.name for p in sorted(source.glob("*.dcm"))})
    else:
      pairs[source] = out.parent / source.name
  return pairs


def _dciodvfy(path) -> set[str]:
  run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True,
                       errors="replace", timeout=120, check=False)
  lines = set()
  for line in (run.stdout + run.stderr).splitlines():
    if not re.match(r"^(\(0x[0-9a-f]{4},0x[0-9a-f]{4}\).*- )?(Error|Warning)", line):
      continue
    # Values legitimately differ (UIDs, sizes, spacings): compare the message, not the value.
    line = line.replace(str(path), "FILE")
    line = re.sub(r"<[^<>]*>", "<>", line)
    line = re.sub(r"\[\d+\] = .*", "", line)
    lines.add(line.strip())
  return lines


_DERIVATION_TAGS = ("(0x0008,0x1150)", "(0x0008,0x1155)", "(0x0008,0x1160)", "(0x0008,0x2111)",
                    "(0x0008,0x2112)", "(0x0008,0x9215)", "(0x0040,0xa170)")


def _general_image_derivation(line: str) -> bool:
  return "not present in standard DICOM IOD" in line and any(t in line for t in _DERIVATION_TAGS)


@NEEDS_DCIODVFY
def test_dciodvfy_finds_nothing_in_an_output_that_its_input_lacks(outputs):
  series_checked = 0
  new = {}
  for source, output in outputs.items():
    if source.parent.name == "invesalius_head_ct":
      series_checked += 1
      if series_checked > 12:  # A dozen slices of the series say what all of them would.
        continue
    before = _dciodvfy(source)
    extra = _dciodvfy(output) - before
    header = pydicom.dcmread(source, stop_before_pixels=True)
    if derived.is_enhanced(header) and "SharedFunctionalGroupsSequence" not in header:
      # An Enhanced file without its functional groups: the derivation goes where a
      # non-enhanced image has it (jaxsr.inference.derived), which dciodvfy notes.
      extra = {line for line in extra if not _general_image_derivation(line)}
    if extra:
      new[source.name] = sorted(extra)
  assert not new, new


@NEEDS_DCMDUMP
def test_dcmdump_parses_every_output(outputs):
  bad = {}
  for output in list(outputs.values()):
    run = subprocess.run(["dcmdump", "+E", "-q", str(output)], capture_output=True, text=True,
                         errors="replace", timeout=120, check=False)
    if run.returncode != 0 or "E:" in run.stderr:
      bad[output.name] = (run.returncode, run.stderr.strip()[:300])
  assert not bad, bad


def test_outputs_say_what_they_are_and_where_they_came_from(outputs, monkeypatch):
  # VRs as the files state them: pydicom would otherwise fill in unknown (UN) ones.
  monkeypatch.setattr(pydicom.config, "replace_un_with_known_vr", False)
  for source, output in outputs.items():
    before = pydicom.dcmread(source, stop_before_pixels=True)
    after = pydicom.dcmread(output, stop_before_pixels=True)
    what = source.name
    assert list(after.ImageType)[0] == "DERIVED", what
    # Value 2: SECONDARY, except in Enhanced IODs whose value 2 is PRIMARY only.
    assert list(after.ImageType)[1] == ("PRIMARY" if derived.is_enhanced(before)
                                        else "SECONDARY"), what
    derivation = derived.derivation_item(after)
    assert derivation.DerivationDescription.startswith(f"jaxsr {derived.version()} "), what
    assert (f"x{SCALE}" in derivation.DerivationDescription
            and "tiny_x2" in derivation.DerivationDescription), what
    code = derivation.DerivationCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == \
        derived.SPATIAL_RESAMPLING, what
    item = derivation.SourceImageSequence[0]
    assert item.ReferencedSOPClassUID == before.SOPClassUID, what
    assert item.ReferencedSOPInstanceUID == before.SOPInstanceUID, what
    purpose = item.PurposeOfReferenceCodeSequence[0]
    assert purpose.CodeValue == derived.SOURCE_FOR_PROCESSING[0], what
    frames = int(before.get("NumberOfFrames") or 1)
    if frames > 1:
      assert list(item.ReferencedFrameNumber) == list(range(1, frames + 1)), what
    else:
      assert "ReferencedFrameNumber" not in item, what
    equipment = after.ContributingEquipmentSequence[-1]
    assert equipment.Manufacturer == "jaxsr" and equipment.SoftwareVersions == derived.version()
    assert equipment.PurposeOfReferenceCodeSequence[0].CodeValue == "109102", what
    assert len(equipment.ContributionDateTime) == 14, what
    assert int(after.SeriesNumber) != int(before.get("SeriesNumber") or 0), what
    assert "SR x2" in after.SeriesDescription, what
    for kept in ("InstanceNumber", "BurnedInAnnotation", "RecognizableVisualFeatures",
                 "PatientID", "StudyInstanceUID"):
      if kept in before:
        assert after[kept].value == before[kept].value, (what, kept)
    # Lossy once, lossy for ever, with the ratio and method of that compression.
    lossy_source = (before.get("LossyImageCompression") == "01"
                    or before.file_meta.TransferSyntaxUID in derived.LOSSY_METHODS)
    assert (after.get("LossyImageCompression") == "01") == lossy_source, what
    if lossy_source:
      assert after.get("LossyImageCompressionMethod") and after.get("LossyImageCompressionRatio")
      for keyword in ("LossyImageCompressionMethod", "LossyImageCompressionRatio"):
        if before.get(keyword):  # What the source recorded is carried over as it was.
          assert list(np.atleast_1d(after[keyword].value)) == list(
              np.atleast_1d(before[keyword].value)), (what, keyword)
    if "SpatialResolution" in before:
      assert float(after.SpatialResolution) == pytest.approx(
          float(before.SpatialResolution) / SCALE), what
    # Private elements of unknown VR keep their VR and bytes.
    for element in before:
      if element.tag.is_private and element.VR == "UN":
        assert after[element.tag].VR == "UN", (what, element.tag)
        assert after[element.tag].value == element.value, (what, element.tag)
    # Enhanced IODs hold the derivation in their shared functional groups.
    if derived.is_enhanced(before) and before.get("SharedFunctionalGroupsSequence"):
      assert "DerivationDescription" not in after, what
      assert after.SourceImageEvidenceSequence[0].StudyInstanceUID == before.StudyInstanceUID
