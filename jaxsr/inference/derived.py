"""What an upscaled DICOM says about itself and where it came from (PS3.3).

An image that goes back into an archive must tell a reader that it is not
the acquired image, how it was made and from which instance, so that a
viewer, a hanging protocol or an auditor can tell the two apart:

* the General Image module's derivation: ImageType DERIVED\\SECONDARY, a
  DerivationDescription naming jaxsr, its version, the model and the scale,
  and a Derivation Code Sequence with CID 7203 (113085, DCM, "Spatial
  resampling");
* a Source Image Sequence item per source instance, with its SOP Class and
  Instance UIDs, the frames used of a multi-frame source, and the purpose
  CID 7202 (121322, DCM, "Source image for image processing operation");
* a Contributing Equipment Sequence item (SOP Common) for the processing:
  CID 7005 (109102, DCM, "Processing Equipment"), jaxsr as manufacturer and
  model, its software version and the date and time of processing; items
  the source had are kept;
* lossy-compression history: once a source was lossily compressed, the
  output says so for ever (LossyImageCompression "01"), with the ratio and
  method the source recorded, or those of its own transfer syntax when it
  recorded none. The output itself is never lossily compressed.

Everything else the source said about the patient, the study, burned-in
annotation and recognisable features is kept as it was.
"""
import dataclasses
import datetime
from typing import Optional, Sequence

import pydicom
from pydicom import uid as dicom_uid
from pydicom.sequence import Sequence as DicomSequence

SPATIAL_RESAMPLING = ("113085", "DCM", "Spatial resampling")                 # CID 7203
SOURCE_FOR_PROCESSING = ("121322", "DCM",
                         "Source image for image processing operation")     # CID 7202
PROCESSING_EQUIPMENT = ("109102", "DCM", "Processing Equipment")            # CID 7005

# Enhanced MR attributes that describe the acquisition of ORIGINAL (or MIXED) images
# only (MR Pulse Sequence and Bulk Motion Synchronization modules, as dciodvfy checks
# their Type 1C conditions): a DERIVED image does not carry them.
_ORIGINAL_ONLY = (
    "PulseSequenceName", "MRAcquisitionType", "EchoPulseSequence", "MultipleSpinEcho",
    "MultiPlanarExcitation", "PhaseContrast", "VelocityEncodingAcquisitionSequence",
    "TimeOfFlightContrast", "ArterialSpinLabelingContrast", "SteadyStatePulseSequence",
    "EchoPlanarPulseSequence", "SaturationRecovery", "SpectrallySelectedSuppression",
    "OversamplingPhase", "GeometryOfKSpaceTraversal", "RectilinearPhaseEncodeReordering",
    "SegmentedKSpaceTraversal", "CoverageOfKSpace", "NumberOfKSpaceTrajectories",
    "BulkMotionCompensationTechnique", "BulkMotionSignalSource")

# Lossy transfer syntaxes and the method (LossyImageCompressionMethod defined terms).
LOSSY_METHODS = {
    dicom_uid.JPEGBaseline8Bit: "ISO_10918_1",
    dicom_uid.JPEGExtended12Bit: "ISO_10918_1",
    dicom_uid.JPEGLSNearLossless: "ISO_14495_1",
    dicom_uid.JPEG2000: "ISO_15444_1",
    dicom_uid.HTJ2K: "ISO_15444_15",
}


@dataclasses.dataclass
class Naming:
  """What the outputs say about how they were made."""
  scale: int
  model: str = ""
  transfer_syntax: str = "auto"  # jaxsr.io.compression.CHOICES
  # zlib level of PNG outputs (lossless at any level): 1, OpenCV's default,
  # writes a large radiograph several times faster than PIL's 6 for files
  # about a quarter larger; 9 for archives.
  png_compression: int = 1

  def description(self) -> str:
    """DerivationDescription (ST, up to 1024 characters)."""
    return (f"jaxsr {version()} super-resolution x{self.scale}"
            + (f", model {self.model}" if self.model else ""))[:1024]

  def series_suffix(self) -> str:
    """What SeriesDescription ends with; never cut (LO holds 64 characters)."""
    return (f"SR x{self.scale}" + (f" {self.model}" if self.model else ""))[:64]


def version() -> str:
  import jaxsr  # pylint: disable=import-outside-toplevel  # The package imports this module.
  return jaxsr.__version__


@dataclasses.dataclass(frozen=True)
class Origin:
  """What the source instance was, read before its dataset is rewritten."""
  sop_class: Optional[str]
  sop_instance: Optional[str]
  transfer_syntax: Optional[str]
  stored_bytes: int = 0       # Length of the source's encoded pixel data.
  raw_bytes: int = 0          # What those pixels take uncompressed.
  study_uid: Optional[str] = None
  series_uid: Optional[str] = None

  @classmethod
  def of(cls, ds: pydicom.Dataset) -> "Origin":
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    stored = len(ds.PixelData) if "PixelData" in ds and ds.PixelData is not None else 0
    frames = int(ds.get("NumberOfFrames") or 1)
    samples = int(ds.get("SamplesPerPixel") or 1)
    raw = (int(ds.get("Rows") or 0) * int(ds.get("Columns") or 0) * frames * samples
           * ((int(ds.get("BitsAllocated") or 8) + 7) // 8))
    return cls(ds.get("SOPClassUID"), ds.get("SOPInstanceUID"),
               str(syntax) if syntax else None, stored, raw,
               ds.get("StudyInstanceUID"), ds.get("SeriesInstanceUID"))


def code_item(code: tuple[str, str, str]) -> pydicom.Dataset:
  item = pydicom.Dataset()
  item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code
  return item


def describe(ds: pydicom.Dataset, origin: Origin, naming: Naming,
             frames: Optional[Sequence[int]] = None,
             now: Optional[datetime.datetime] = None) -> None:
  """Adds the derivation, source, equipment and lossy-history attributes to ``ds``.

  ``frames``: the 1-based frame numbers of a multi-frame source the output
  holds (None: a single-frame source).
  """
  now = now or datetime.datetime.now()
  enhanced = is_enhanced(ds)
  image_type = list(ds.get("ImageType") or [])
  # Enhanced IODs enumerate value 2 as PRIMARY only; the others say SECONDARY.
  second = (image_type[1] if len(image_type) > 1 else "PRIMARY") if enhanced else "SECONDARY"
  ds.ImageType = ["DERIVED", second] + image_type[2:]
  # Where the derivation is said: the General Image module, or for an Enhanced IOD the
  # Derivation Image functional group shared by all frames. An Enhanced file without
  # functional groups (already invalid) gets the General Image form: new groups would
  # need every macro its IOD requires.
  target = ds
  if enhanced:
    _derived_frame_types(ds)
    for keyword in _ORIGINAL_ONLY:
      if keyword in ds:
        delattr(ds, keyword)
  if enhanced and ds.get("SharedFunctionalGroupsSequence"):
    target = pydicom.Dataset()
    ds.SharedFunctionalGroupsSequence[0].DerivationImageSequence = DicomSequence([target])
    for keyword in ("DerivationDescription", "DerivationCodeSequence", "SourceImageSequence"):
      if keyword in ds:
        delattr(ds, keyword)
  target.DerivationDescription = naming.description()
  target.DerivationCodeSequence = DicomSequence([code_item(SPATIAL_RESAMPLING)])
  if origin.sop_class and origin.sop_instance:
    source = pydicom.Dataset()
    source.ReferencedSOPClassUID = origin.sop_class
    source.ReferencedSOPInstanceUID = origin.sop_instance
    if frames is not None:
      source.ReferencedFrameNumber = list(frames) if len(frames) > 1 else frames[0]
    source.PurposeOfReferenceCodeSequence = DicomSequence([code_item(SOURCE_FOR_PROCESSING)])
    target.SourceImageSequence = DicomSequence([source])
  elif "SourceImageSequence" in target:
    del target.SourceImageSequence  # It named the source's own sources, not the source.
  if target is not ds and origin.sop_instance and origin.study_uid and origin.series_uid:
    # Enhanced IODs list every instance their derivation items reference.
    ds.SourceImageEvidenceSequence = DicomSequence([_evidence(origin)])
  equipment = pydicom.Dataset()
  equipment.PurposeOfReferenceCodeSequence = DicomSequence([code_item(PROCESSING_EQUIPMENT)])
  equipment.Manufacturer = "jaxsr"
  equipment.ManufacturerModelName = "jaxsr"
  equipment.SoftwareVersions = version()
  equipment.ContributionDateTime = now.strftime("%Y%m%d%H%M%S")
  equipment.ContributionDescription = naming.description()[:64]
  earlier = list(ds.get("ContributingEquipmentSequence") or [])
  ds.ContributingEquipmentSequence = DicomSequence(earlier + [equipment])
  _lossy_history(ds, origin)


def is_enhanced(ds: pydicom.Dataset) -> bool:
  """Whether ``ds`` is a multi-frame functional-group IOD (Enhanced CT/MR and the like),
  by its functional groups or, where a file lacks them, its SOP Class."""
  if "SharedFunctionalGroupsSequence" in ds or "PerFrameFunctionalGroupsSequence" in ds:
    return True
  sop_class = ds.get("SOPClassUID")
  name = getattr(sop_class, "name", "") if sop_class else ""
  return "Enhanced" in name


def _evidence(origin: Origin) -> pydicom.Dataset:
  """A Hierarchical SOP Instance Reference item for the source (Source Image Evidence)."""
  instance = pydicom.Dataset()
  instance.ReferencedSOPClassUID, instance.ReferencedSOPInstanceUID = (
      origin.sop_class, origin.sop_instance)
  series = pydicom.Dataset()
  series.SeriesInstanceUID = origin.series_uid
  series.ReferencedSOPSequence = DicomSequence([instance])
  study = pydicom.Dataset()
  study.StudyInstanceUID = origin.study_uid
  study.ReferencedSeriesSequence = DicomSequence([series])
  return study


def derivation_item(ds: pydicom.Dataset) -> pydicom.Dataset:
  """The dataset holding the derivation attributes: ``ds``, or for an Enhanced IOD the
  Derivation Image Sequence item of its shared functional groups."""
  if is_enhanced(ds) and "SharedFunctionalGroupsSequence" in ds:
    shared = ds.SharedFunctionalGroupsSequence[0]
    if "DerivationImageSequence" in shared:
      return shared.DerivationImageSequence[0]
  return ds


def _derived_frame_types(ds: pydicom.Dataset) -> None:
  """FrameType value 1 DERIVED in every frame-type functional group, as ImageType says."""
  groups = list(ds.get("SharedFunctionalGroupsSequence") or []) + list(
      ds.get("PerFrameFunctionalGroupsSequence") or [])
  for group in groups:
    for element in group:
      if element.VR == "SQ" and element.keyword.endswith("FrameTypeSequence"):
        for item in element.value:
          frame_type = list(item.get("FrameType") or [])
          if frame_type:
            item.FrameType = ["DERIVED"] + frame_type[1:]


def _lossy_history(ds: pydicom.Dataset, origin: Origin) -> None:
  """LossyImageCompression '01' once lossy, with ratio and method; never reset."""
  method = LOSSY_METHODS.get(origin.transfer_syntax)
  said = str(ds.get("LossyImageCompression") or "").strip()
  if method is None and said != "01":
    return
  ds.LossyImageCompression = "01"
  methods = _values(ds.get("LossyImageCompressionMethod"))
  ratios = _values(ds.get("LossyImageCompressionRatio"))
  # Where the source left its own (last) compression half recorded, its transfer
  # syntax and pixel data say the rest.
  if method is not None and not methods and len(ratios) <= 1:
    methods = [method]
  if method is not None and origin.stored_bytes and not ratios and methods == [method]:
    ratios = [_ratio_text(origin.raw_bytes / origin.stored_bytes)]
  if ratios:
    ds.LossyImageCompressionRatio = ratios if len(ratios) > 1 else ratios[0]
  if methods:
    ds.LossyImageCompressionMethod = methods if len(methods) > 1 else methods[0]


def _values(value) -> list:
  if value is None or value == "":
    return []
  if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
    return [v for v in value]
  return [value]


def _ratio_text(ratio: float) -> str:
  """A DS of at most 16 characters."""
  return f"{ratio:.4g}"
