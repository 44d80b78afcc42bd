"""The demo archive: realistic synthetic patients, built once and deterministically.

Three patients with CT and MR studies, among them a contrast CT of the chest,
abdomen and pelvis with 240 slices of 512 x 512 (air, fat, soft tissue,
contrast-filled vessels, organs and bone in HU), so that MIP, MPR and volume
rendering show something meaningful; a head CT acquired with gantry tilt; an MR
perfusion series of 30 time points. UIDs, noise and dates are fixed, so two builds give the
same files. Files are written into the archive's managed store and indexed.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

from tui.archive import phantom
from tui.archive.importer import import_paths
from tui.archive.index import INDEX_NAME, Archive
from tui.archive.store import store_path
from tui.errors import UserError

DEMO_VERSION = 2  # 2: the head CT is tilted, a perfusion series (time points) added
MARKER = "demo.json"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
AXIAL = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
SAGITTAL = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]
CORONAL = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]


def _uid(*parts: object) -> str:
    return generate_uid(entropy_srcs=["pacs-tui demo", *map(str, parts)])


@dataclass(frozen=True)
class _Patient:
    name: str
    patient_id: str
    birth_date: str
    sex: str
    charset: str = "ISO_IR 192"


@dataclass(frozen=True)
class _Study:
    patient: _Patient
    key: str
    date: str
    time: str
    accession: str
    description: str
    modality: str
    body_part: str

    @property
    def uid(self) -> str:
        return _uid(self.patient.patient_id, self.key)


ALICE = _Patient("Demo^Alice", "DEMO001", "19610412", "F")
JURGEN = _Patient("Müller^Jürgen", "DEMO002", "19480130", "M")
HANAKO = _Patient("Yamada^Hanako=山田^花子", "DEMO003", "19790721", "F")

CAP = _Study(
    ALICE,
    "cap",
    "20240312",
    "093512",
    "A24031201",
    "CT Chest Abdomen Pelvis with contrast",
    "CT",
    "CHEST",
)
ALICE_MR = _Study(
    ALICE, "mrbrain", "20231102", "141003", "A23110207", "MR Brain without contrast", "MR", "HEAD"
)
JURGEN_CT = _Study(
    JURGEN,
    "cthead",
    "20250120",
    "021744",
    "B25012003",
    "CT Head without contrast (stroke)",
    "CT",
    "HEAD",
)
JURGEN_MR = _Study(
    JURGEN, "mrbrain", "20250122", "103015", "B25012211", "MR Brain stroke protocol", "MR", "HEAD"
)
HANAKO_CT = _Study(
    HANAKO, "ctchest", "20220730", "160221", "C22073004", "CT Chest low dose", "CT", "CHEST"
)
# Only on the demo PACS (``pacs-tui demo`` serves it): something to query and retrieve.
HANAKO_FOLLOW_UP = _Study(
    HANAKO, "ctchest2", "20230802", "111500", "C23080211", "CT Chest low dose follow-up", "CT",
    "CHEST",
)  # fmt: skip

Progress = Callable[[int, int], None]


def build_demo(root: Path, rebuild: bool = False, progress: Progress | None = None) -> Archive:
    """Build the demo archive in ``root`` unless it is already there; return it open.

    Raises
    ------
    UserError
        If ``root`` holds an archive that is not a demo archive (it is never overwritten).
    """
    marker = root / MARKER
    state = _read_marker(marker)
    if state == {"demo_version": DEMO_VERSION, "complete": True} and not rebuild:
        return Archive(root)
    if state is None and ((root / INDEX_NAME).exists() or (root / "store").exists()):
        raise UserError(f"{root} holds an archive that is not the demo: choose another folder")
    root.mkdir(parents=True, exist_ok=True)
    # Marked as a demo before anything is written, so an interrupted build is rebuilt.
    marker.write_text(json.dumps({"demo_version": DEMO_VERSION, "complete": False}))
    if (root / "store").is_dir():
        shutil.rmtree(root / "store")
    for suffix in ("", "-wal", "-shm"):
        (root / f"{INDEX_NAME}{suffix}").unlink(missing_ok=True)
    archive = Archive(root)
    assert archive.store is not None
    writers = [
        lambda: _cap_ct(CAP, archive.store),
        lambda: _mr_head(ALICE_MR, archive.store),
        lambda: _ct_head(JURGEN_CT, archive.store),
        lambda: _mr_head(JURGEN_MR, archive.store),
        lambda: _mr_perfusion(JURGEN_MR, archive.store),
        lambda: _chest_low_dose(HANAKO_CT, archive.store),
    ]
    total, done = _TOTAL_FILES, 0
    for writer in writers:
        for _ in writer():
            done += 1
            if progress:
                progress(done, total)
    import_paths(archive, [archive.store])
    marker.write_text(json.dumps({"demo_version": DEMO_VERSION, "complete": True}))
    return archive


def build_demo_pacs(root: Path) -> Path:
    """The demo PACS's archive, built once in ``root/pacs`` beside the demo archive in
    ``root``: every demo study (indexed in place, not copied) plus a follow-up study that
    only the PACS has, so a new user has something to query and retrieve."""
    pacs = root / "pacs"
    marker = pacs / MARKER
    if _read_marker(marker) == {"demo_version": DEMO_VERSION, "complete": True}:
        return pacs
    if pacs.exists():
        shutil.rmtree(pacs)
    pacs.mkdir(parents=True)
    with Archive(pacs) as archive:
        assert archive.store is not None
        for _ in _chest_low_dose(HANAKO_FOLLOW_UP, archive.store):
            pass
        # Its own follow-up first: copies a demo retrieved into root/store (forgotten by the
        # next demo, see forget_retrieved) are then duplicates, never the files it serves.
        import_paths(archive, [archive.store, root / "store"])
    marker.write_text(json.dumps({"demo_version": DEMO_VERSION, "complete": True}))
    return pacs


def forget_retrieved(archive: Archive) -> int:
    """Take the study only the demo PACS has out of the demo archive again (an earlier
    demo retrieved it), so that every demo has a study to query and retrieve. Returns the
    number of its instances forgotten (0: it was not here)."""
    with archive.transaction():
        count, managed = archive.forget("study", [HANAKO_FOLLOW_UP.uid])
    for path in managed:
        Path(path).unlink(missing_ok=True)
    return count


def _read_marker(marker: Path) -> dict[str, object] | None:
    """The demo marker's content; None if there is none (not a demo archive)."""
    try:
        state = json.loads(marker.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # damaged: still ours, so it is rebuilt
    return state if isinstance(state, dict) else {}


# -- writing --------------------------------------------------------------------------


class _SeriesWriter:
    """Writes the instances of one series into the store, sharing one header."""

    def __init__(
        self,
        store: Path,
        study: _Study,
        number: int,
        description: str,
        sop_class: str,
        extra: dict[str, object],
    ) -> None:
        self.store = store
        self.study = study
        self.uid = _uid(study.uid, number)
        ds = Dataset()
        patient = study.patient
        ds.SpecificCharacterSet = patient.charset
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SOPClassUID = sop_class
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = study.date
        series_time = dt.datetime.strptime(study.time, "%H%M%S") + dt.timedelta(minutes=number)
        ds.StudyTime = study.time
        ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = series_time.strftime("%H%M%S")
        ds.AccessionNumber = study.accession
        ds.Modality = study.modality
        ds.Manufacturer = "pacs-tui"
        ds.InstitutionName = "pacs-tui Demo Hospital"
        ds.ReferringPhysicianName = "Referrer^Rita^^Dr."
        ds.StudyDescription = study.description
        ds.SeriesDescription = description
        ds.ManufacturerModelName = "Synthetic phantom"
        ds.PatientName = patient.name
        ds.PatientID = patient.patient_id
        ds.PatientBirthDate = patient.birth_date
        ds.PatientSex = patient.sex
        ds.PatientAge = f"{int(study.date[:4]) - int(patient.birth_date[:4]):03d}Y"
        ds.BodyPartExamined = study.body_part
        ds.PatientPosition = "HFS"
        ds.StudyInstanceUID = study.uid
        ds.SeriesInstanceUID = self.uid
        ds.StudyID = study.accession[-4:]
        ds.SeriesNumber = number
        ds.AcquisitionNumber = 1
        ds.FrameOfReferenceUID = _uid(study.uid, "frame of reference")
        ds.PositionReferenceIndicator = ""
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        for keyword, value in extra.items():
            setattr(ds, keyword, value)
        self.ds = ds
        self.count = 0

    def write(
        self,
        pixels: np.ndarray,
        position: list[float],
        orientation: list[float],
        spacing: list[float],
        thickness: float,
    ) -> None:
        ds = self.ds
        self.count += 1
        ds.SOPInstanceUID = _uid(self.uid, self.count)
        ds.InstanceNumber = self.count
        ds.ImagePositionPatient = [round(v, 4) for v in position]
        ds.ImageOrientationPatient = orientation
        ds.PixelSpacing = spacing
        ds.SliceThickness = thickness
        normal = np.cross(orientation[:3], orientation[3:])
        ds.SliceLocation = round(float(np.dot(normal, position)), 4)
        ds.Rows, ds.Columns = pixels.shape
        ds.PixelData = pixels.astype("<u2").tobytes()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        meta.ImplementationVersionName = "PACS_TUI_DEMO"
        ds.file_meta = meta
        path = store_path(self.store, ds.SOPInstanceUID)
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)


def _ct_extra(kernel: str, centers: list[float], widths: list[float], names: list[str]) -> dict:
    return {
        "KVP": 120,
        "ConvolutionKernel": kernel,
        "RescaleIntercept": -1024,
        "RescaleSlope": 1,
        "RescaleType": "HU",
        "WindowCenter": centers,
        "WindowWidth": widths,
        "WindowCenterWidthExplanation": names,
    }


def _stored_ct(hu: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(hu) + 1024, 0, 4095).astype(np.uint16)


def _cap_ct(study: _Study, store: Path) -> Iterator[None]:
    """Scout, 240 axial 1.25 mm slices of 512 x 512, and 5 mm slabs averaged from them."""
    size, pixel, step, count = 512, 0.7, 1.25, 240
    x, y = phantom.grid(size, pixel)
    first = -(size - 1) / 2 * pixel
    extra = _ct_extra("B30f", [40, -600], [400, 1500], ["SOFT TISSUE", "LUNG"])
    thin = _SeriesWriter(store, study, 2, "Axial 1.25mm soft tissue", CT_IMAGE, extra)
    thick = _SeriesWriter(store, study, 3, "Axial 5mm soft tissue", CT_IMAGE, extra)
    rng = np.random.default_rng(20240312)
    slab: list[np.ndarray] = []
    projection = np.zeros((count, size), dtype=np.float64)
    for k in range(count):
        z = -298.75 + k * step
        hu = phantom.body_ct(x, y, z, rng)
        thin.write(_stored_ct(hu), [first, first, z], AXIAL, [pixel, pixel], step)
        yield
        projection[count - 1 - k] = np.clip(hu + 1000, 0, None).sum(axis=0)
        slab.append(hu)
        if len(slab) == 4:
            mean = np.mean(slab, axis=0)
            thick.write(
                _stored_ct(mean), [first, first, z - 1.5 * step], AXIAL, [pixel, pixel], 5.0
            )
            slab.clear()
            yield
    scout_extra = {
        **_ct_extra("B30f", [0], [2000], ["SCOUT"]),
        "ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"],
    }
    scout = _SeriesWriter(store, study, 1, "Topogram 0.6 AP", CT_IMAGE, scout_extra)
    image = projection / projection.max() * 2500 - 1000
    top = -298.75 + (count - 1) * step
    scout.write(_stored_ct(image), [first, 0.0, top], CORONAL, [step, pixel], 1.0)
    yield


def _ct_head(study: _Study, store: Path) -> Iterator[None]:
    """32 slices of a head, acquired as head CTs often are: with the gantry tilted (12°,
    along the skull base), the table moving straight, so the stack is sheared."""
    size, pixel, step, count, tilt = 512, 0.45, 5.0, 32, np.radians(12.0)
    x, y = phantom.grid(size, pixel)  # y: along the tilted rows, from the image centre
    first = -(size - 1) / 2 * pixel
    extra = _ct_extra("H31s", [40, 80, 600], [80, 200, 2800], ["BRAIN", "SUBDURAL", "BONE"])
    extra["GantryDetectorTilt"] = 12.0
    series = _SeriesWriter(store, study, 2, "Head 5mm brain", CT_IMAGE, extra)
    rng = np.random.default_rng(20250120)
    tilted = [1.0, 0.0, 0.0, 0.0, float(np.cos(tilt)), float(np.sin(tilt))]
    for k in range(count):
        z = -60.0 + k * step
        hu = phantom.head(x, y * np.cos(tilt), z + y * np.sin(tilt), rng)
        corner = [first, first * np.cos(tilt), z + first * np.sin(tilt)]
        series.write(_stored_ct(hu), corner, tilted, [pixel, pixel], step)
        yield


def _mr_perfusion(study: _Study, store: Path) -> Iterator[None]:
    """A DSC perfusion series: 12 axial slices imaged at 30 time points 1.5 s apart while a
    contrast bolus passes (the signal dips, later and less in a left MCA territory)."""
    size, pixel, step, slices, phases = 128, 1.8, 5.0, 12, 30
    x, y = phantom.grid(size, pixel)
    first = -(size - 1) / 2 * pixel
    rng = np.random.default_rng(int(study.date) + 5)
    extra = {
        "MagneticFieldStrength": 3, "ScanningSequence": "EP", "SequenceVariant": "NONE",
        "RepetitionTime": 1500, "EchoTime": 30, "NumberOfTemporalPositions": phases,
        "WindowCenter": 700, "WindowWidth": 1400,
    }  # fmt: skip
    series = _SeriesWriter(store, study, 5, "Perfusion DSC 30 phases", MR_IMAGE, extra)
    baseline = [
        phantom.head(x, y, np.full_like(x, -10.0 + k * step), rng, phantom.HEAD_T2)
        for k in range(slices)
    ]
    brain = np.sqrt((x / 62) ** 2 + (y / 82) ** 2) <= 1.0
    deficit = brain & (x > 15) & (y > -40) & (y < 30)  # patient left (+x), mid-brain

    def bolus(seconds: np.ndarray | float, arrival: float, depth: float) -> np.ndarray:
        after = np.clip(np.asarray(seconds) - arrival, 0, None)  # a gamma variate
        return depth * (after / 4.0) ** 3 * np.exp(3 * (1 - after / 4.0))

    start = dt.datetime.strptime(series.ds.SeriesTime, "%H%M%S")
    for t in range(phases):
        seconds = t * 1.5
        drop = np.where(
            deficit, bolus(seconds, 12.0, 0.2), np.where(brain, bolus(seconds, 9.0, 0.5), 0)
        )
        series.ds.TemporalPositionIdentifier = t + 1
        series.ds.AcquisitionTime = (start + dt.timedelta(seconds=seconds)).strftime("%H%M%S.%f")[
            :13
        ]
        for k in range(slices):
            signal = baseline[k] * (1 - np.clip(drop, 0, 0.9))
            signal += rng.normal(0, 6, signal.shape)
            position = [first, first, -10.0 + k * step]
            series.write(
                np.rint(np.clip(signal, 0, 4095)).astype(np.uint16),
                position,
                AXIAL,
                [pixel, pixel],
                step,
            )
            yield


def _mr_head(study: _Study, store: Path) -> Iterator[None]:
    """A sagittal 3D T1 (120 x 256 x 256) and an axial T2 (24 slices)."""
    rng = np.random.default_rng(int(study.date))
    mr = {"MagneticFieldStrength": 3, "ScanningSequence": "GR", "SequenceVariant": "SP"}
    size, pixel = 256, 1.0
    a, b = phantom.grid(size, pixel)  # a along columns, b along rows
    first = -(size - 1) / 2 * pixel
    t1 = _SeriesWriter(
        store, study, 3, "Sag T1 MPRAGE 1.2mm", MR_IMAGE,
        {**mr, "RepetitionTime": 2300, "EchoTime": 2.98, "WindowCenter": 450, "WindowWidth": 900},
    )  # fmt: skip
    for k in range(120):
        x = -71.4 + k * 1.2
        signal = phantom.head(np.full_like(a, x), a, -b + 10, rng, phantom.HEAD_T1)
        t1.write(
            np.rint(signal).astype(np.uint16),
            [x, first, -first + 10],
            SAGITTAL,
            [pixel, pixel],
            1.2,
        )
        yield
    t2 = _SeriesWriter(
        store, study, 4, "Ax T2 TSE 5mm", MR_IMAGE,
        {**mr, "RepetitionTime": 5000, "EchoTime": 96, "WindowCenter": 800, "WindowWidth": 1600},
    )  # fmt: skip
    for k in range(24):
        z = -45.0 + k * 5.0
        signal = phantom.head(a, b, np.full_like(a, z), rng, phantom.HEAD_T2)
        t2.write(np.rint(signal).astype(np.uint16), [first, first, z], AXIAL, [pixel, pixel], 5.0)
        yield


def _chest_low_dose(study: _Study, store: Path) -> Iterator[None]:
    size, pixel, step, count = 256, 1.4, 5.0, 38
    x, y = phantom.grid(size, pixel)
    first = -(size - 1) / 2 * pixel
    extra = _ct_extra("B50f", [-600, 40], [1500, 400], ["LUNG", "MEDIASTINUM"])
    series = _SeriesWriter(store, study, 2, "Thorax 5mm lung", CT_IMAGE, extra)
    rng = np.random.default_rng(int(study.date))  # the same noise for the same study
    for k in range(count):
        z = -180.0 + k * step
        hu = phantom.body_ct(x, y, z, rng)
        series.write(_stored_ct(hu), [first, first, z], AXIAL, [pixel, pixel], step)
        yield


_TOTAL_FILES = (240 + 60 + 1) + (120 + 24) * 2 + 12 * 30 + 32 + 38
