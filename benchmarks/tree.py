"""Generate a tree of DICOM files for the import benchmarks.

Files are copies of real headers from ``../shared/dicom`` (a CT, a GE MR, a
Siemens MR with large private headers, an enhanced-less small MR) with new UIDs:
``studies`` studies of ``series`` series of ``per_series`` instances.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

from pydicom import dcmread
from pydicom.uid import generate_uid

SHARED = Path(__file__).resolve().parents[2] / "shared" / "dicom"
TEMPLATES = [
    "pydicom_test_files/grayscale_transfer_syntaxes/CT_small.dcm",
    "pydicom_test_files/grayscale_transfer_syntaxes/MR_small.dcm",
    "neurolabusc_dcm_qa_ge/MR_GE_SIGNA-Pioneer_3D_Ax_T1_MPRAGE",
    "neurolabusc_dcm_qa_xa30i/MR_Siemens_PrismaFit_XA30_5001_anat-T1w_acq-tfl",
]


def _template_files() -> list[Path]:
    files = []
    for rel in TEMPLATES:
        path = SHARED / rel
        files.append(
            path if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())[0]
        )
    return files


def generate(root: Path, files: int, per_series: int = 50, series_per_study: int = 4) -> int:
    """Write ``files`` DICOM files under ``root``; return how many were written."""
    templates = [dcmread(p) for p in _template_files()]
    written = 0
    study = series = None
    while written < files:
        if written % (per_series * series_per_study) == 0:
            study = generate_uid()
            patient = f"BENCH{written // (per_series * series_per_study):05d}"
        if written % per_series == 0:
            series = generate_uid()
            ds = copy.deepcopy(templates[(written // per_series) % len(templates)])
            folder = root / patient / study[-8:] / series[-8:]
            folder.mkdir(parents=True, exist_ok=True)
        ds.PatientID = patient
        ds.PatientName = f"Bench^Patient{patient[-5:]}"
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = written % per_series + 1
        ds.save_as(folder / f"IM{written % per_series:04d}.dcm")
        written += 1
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", type=Path)
    parser.add_argument("--files", type=int, default=10_000)
    args = parser.parse_args()
    print(generate(args.root, args.files))
