"""Small DICOM series for tests: CT slices written with names out of slice order."""
import numpy as np
import pydicom
from pydicom import uid


def write_ct_series(folder, hu_slices, spacing: float = 1.0, shuffle: int = 7):
  """A CT series of 12-bit stored HU + 1024 slices ``spacing`` mm apart, named
  ``im{(shuffle * k) % n:03d}.dcm`` so that name order is not slice order."""
  folder.mkdir(parents=True)
  series_uid = uid.generate_uid()
  for index, hu in enumerate(hu_slices):
    ds = pydicom.Dataset()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = uid.CTImageStorage, uid.generate_uid()
    ds.Modality, ds.SeriesInstanceUID = "CT", series_uid
    ds.ImagePositionPatient = [0, 0, spacing * index]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.5, 0.5]
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, -1024, "HU"
    ds.set_pixel_data(np.clip(hu + 1024, 0, 4095).astype(np.uint16), "MONOCHROME2", 12)
    ds.save_as(folder / f"im{(shuffle * index) % len(hu_slices):03d}.dcm",
               enforce_file_format=True)
