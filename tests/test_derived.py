"""What an upscaled DICOM says about itself (jaxsr.inference.derived), on small files:
derivation codes, source references, equipment, lossy history, spacings."""
import datetime
import io

import numpy as np
import pydicom
from pydicom import uid as dicom_uid
from pydicom.sequence import Sequence as DicomSequence
import pytest

from jaxsr.inference import derived, writers
from jaxsr.io import images

SCALE = 2


def _source(path, frames=1, **attributes):
  ds = pydicom.Dataset()
  ds.file_meta = pydicom.dataset.FileMetaDataset()
  ds.file_meta.TransferSyntaxUID = dicom_uid.ExplicitVRLittleEndian
  ds.SOPClassUID, ds.SOPInstanceUID = dicom_uid.SecondaryCaptureImageStorage, dicom_uid.generate_uid()
  ds.StudyInstanceUID, ds.SeriesInstanceUID = dicom_uid.generate_uid(), dicom_uid.generate_uid()
  ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "OT", 3, 7
  ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
  for keyword, value in attributes.items():
    setattr(ds, keyword, value)
  data = (np.arange(frames * 12 * 16) % 4096).reshape(frames, 12, 16).astype(np.uint16)
  ds.set_pixel_data(data if frames > 1 else data[0], "MONOCHROME2", 12)
  if frames > 1:
    ds.NumberOfFrames = frames
  ds.save_as(path, enforce_file_format=True)
  return ds


def _upscaled(source_path, target):
  image = images.read_image(source_path)
  output = writers.open_output(image, [target], scale=SCALE, model="m")
  for index in range(image.num_frames):
    output.put(index, np.kron(image.frames[index], np.ones((SCALE, SCALE), np.float32)))
  output.close()
  return pydicom.dcmread(target)


def test_derivation_source_and_equipment_are_stated(tmp_path):
  earlier = pydicom.Dataset()
  earlier.Manufacturer = "scanner"
  earlier.PurposeOfReferenceCodeSequence = DicomSequence([derived.code_item(
      ("109101", "DCM", "Acquisition Equipment"))])
  before = _source(tmp_path / "in.dcm", frames=3, ContributingEquipmentSequence=DicomSequence(
      [earlier]), BurnedInAnnotation="NO", SeriesDescription="chest")
  after = _upscaled(tmp_path / "in.dcm", tmp_path / "out.dcm")
  assert list(after.ImageType) == ["DERIVED", "SECONDARY", "AXIAL"]
  assert after.DerivationDescription == f"jaxsr {derived.version()} super-resolution x2, model m"
  assert after.DerivationCodeSequence[0].CodeValue == "113085"
  source = after.SourceImageSequence[0]
  assert (source.ReferencedSOPClassUID, source.ReferencedSOPInstanceUID) == (
      before.SOPClassUID, before.SOPInstanceUID)
  assert list(source.ReferencedFrameNumber) == [1, 2, 3]
  assert source.PurposeOfReferenceCodeSequence[0].CodeMeaning == (
      "Source image for image processing operation")
  # The scanner's item stays first; ours is added after it.
  assert [e.Manufacturer for e in after.ContributingEquipmentSequence] == ["scanner", "jaxsr"]
  ours = after.ContributingEquipmentSequence[1]
  assert ours.PurposeOfReferenceCodeSequence[0].CodeValue == "109102"
  assert abs(datetime.datetime.strptime(ours.ContributionDateTime, "%Y%m%d%H%M%S")
             - datetime.datetime.now()) < datetime.timedelta(minutes=5)
  assert (after.InstanceNumber, after.BurnedInAnnotation) == (7, "NO")
  assert after.SeriesNumber == 1003 and after.SeriesDescription == "chest SR x2 m"
  assert "LossyImageCompression" not in after


def test_lossy_history_is_kept_and_completed(tmp_path):
  # Recorded by the source: carried over as it was, never reset.
  _source(tmp_path / "a.dcm", LossyImageCompression="01", LossyImageCompressionRatio=["8", "2"],
          LossyImageCompressionMethod=["ISO_10918_1", "ISO_15444_1"])
  after = _upscaled(tmp_path / "a.dcm", tmp_path / "a_out.dcm")
  assert after.LossyImageCompression == "01"
  assert list(after.LossyImageCompressionRatio) == [8, 2]
  assert list(after.LossyImageCompressionMethod) == ["ISO_10918_1", "ISO_15444_1"]
  # Stored in a lossy syntax without saying so: the output says it, ratio from the data.
  ds = _source(tmp_path / "b.dcm")
  ds.compress(dicom_uid.JPEGLSNearLossless, jls_error=3)
  ds.save_as(tmp_path / "b.dcm", enforce_file_format=True)
  stored, raw = len(ds.PixelData), 12 * 16 * 2
  after = _upscaled(tmp_path / "b.dcm", tmp_path / "b_out.dcm")
  assert after.LossyImageCompression == "01"
  assert after.LossyImageCompressionMethod == "ISO_14495_1"
  assert float(after.LossyImageCompressionRatio) == pytest.approx(raw / stored, rel=1e-3)


def test_spatial_resolution_is_divided_and_a_zero_spacing_stays(tmp_path):
  _source(tmp_path / "in.dcm", SpatialResolution="0.2", PixelSpacing=["0", "0"],
          ImagerPixelSpacing=["0.3", "0.3"])
  after = _upscaled(tmp_path / "in.dcm", tmp_path / "out.dcm")
  assert float(after.SpatialResolution) == pytest.approx(0.1)
  assert [float(v) for v in after.PixelSpacing] == [0.0, 0.0]
  assert [float(v) for v in after.ImagerPixelSpacing] == [0.15, 0.15]


def test_private_elements_of_unknown_vr_keep_their_vr_and_bytes(tmp_path, monkeypatch):
  ds = _source(tmp_path / "in.dcm")
  ds.add_new(0x00090010, "LO", "SOME CREATOR")
  ds.add_new(0x00091001, "UN", b"\x01\x02\x03\x04")
  ds.save_as(tmp_path / "in.dcm", enforce_file_format=True)
  _upscaled(tmp_path / "in.dcm", tmp_path / "out.dcm")
  monkeypatch.setattr(pydicom.config, "replace_un_with_known_vr", False)
  after = pydicom.dcmread(tmp_path / "out.dcm")
  assert (after[0x00091001].VR, after[0x00091001].value) == ("UN", b"\x01\x02\x03\x04")
  buffer = io.BytesIO((tmp_path / "out.dcm").read_bytes())
  assert b"\x09\x00\x01\x10UN" in buffer.getvalue()
