"""Synthetic series with known geometry: a phantom defined in patient space (mm), written
as slices of any orientation, so every view can be checked against the truth."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

SPHERE = np.array([10.0, -20.0, 30.0])  # centre (LPS mm) of a bright sphere, radius 12
MARKER = np.array([-35.0, 25.0, 0.0])  # a small dense cube, off centre


def phantom(points: np.ndarray) -> np.ndarray:
    """HU at patient points (..., 3): air, a soft-tissue box, the sphere and the marker."""
    inside = np.all(np.abs(points) < 60, axis=-1)
    values = np.where(inside, 40.0, -1000.0)
    values = np.where(np.linalg.norm(points - SPHERE, axis=-1) < 12, 300.0, values)
    values = np.where(np.all(np.abs(points - MARKER) < 4, axis=-1), 1500.0, values)
    return values


def write_series(
    folder: Path,
    orientation: tuple[float, ...],
    size: int = 64,
    count: int = 64,
    spacing: float = 2.0,
    step: float = 2.0,
    shear: tuple[float, float, float] = (0.0, 0.0, 0.0),
    temporal: int | None = None,
    series_uid: str | None = None,
    values: Callable[[np.ndarray], np.ndarray] = phantom,
    sop_uid_root: str | None = None,
) -> str:
    """Write ``count`` slices of ``size`` x ``size`` centred on the origin; return the
    series UID. ``shear`` is added to each slice's position per slice (gantry tilt).
    With ``sop_uid_root`` the SOP Instance UIDs are ``root.1``, ``root.2``, … (the same
    every run, for snapshots), else random."""
    folder.mkdir(parents=True, exist_ok=True)
    row_dir = np.array(orientation[:3], float)
    column_dir = np.array(orientation[3:], float)
    normal = np.cross(row_dir, column_dir)
    series_uid = series_uid or generate_uid()
    study_uid = "1.2.826.0.1.3680043.8.498.1"
    half = (size - 1) / 2 * spacing
    r, c = np.mgrid[0:size, 0:size].astype(float)
    for k in range(count):
        offset = (k - (count - 1) / 2) * step
        position = -half * row_dir - half * column_dir + offset * normal + k * np.array(shear)
        points = position + c[..., None] * spacing * row_dir + r[..., None] * spacing * column_dir
        hu = values(points)
        ds = Dataset()
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = f"{sop_uid_root}.{k + 1}" if sop_uid_root else generate_uid()
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.Modality = "CT"
        ds.PatientName = "Synthetic^Phantom"
        ds.PatientID = "SYN1"
        ds.StudyDate = "20260101"
        ds.SeriesNumber = 1
        ds.InstanceNumber = count - k  # deliberately not in spatial order
        if temporal is not None:
            ds.TemporalPositionIdentifier = temporal
        ds.ImagePositionPatient = [float(v) for v in position]
        ds.ImageOrientationPatient = [float(v) for v in orientation]
        ds.PixelSpacing = [spacing, spacing]
        ds.SliceThickness = step
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = 0
        ds.RescaleSlope = 1
        ds.PixelData = np.rint(hu).astype("<i2").tobytes()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(folder / f"z{k:03d}_{ds.SOPInstanceUID[-6:]}.dcm", enforce_file_format=True)
    return series_uid


AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
_A = np.radians(20)
OBLIQUE = (np.cos(_A), np.sin(_A), 0.0, 0.0, 0.0, -1.0)  # a coronal turned 20° about z
