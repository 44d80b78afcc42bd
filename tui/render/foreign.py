"""Files that are not DICOM (NIfTI, NRRD, pictures) opened as if they were one series
(their formats are read by :mod:`tui.render.readers`).

A foreign file becomes one temporary uncompressed DICOM file (explicit VR little endian,
every frame in one PixelData, a minimal header and no patient data) in a private scratch
folder, and slices we place ourselves from the file's affine point into it. Frames are read
at their offset like any uncompressed DICOM (``PixelSource.direct``), so every view,
projection, reslice, volume rendering and export works on them unchanged.

Voxel axes follow NIfTI: data indexed (i, j, k, t) is our (column, row, slice, time point);
frame k is ``data[:, :, k].T``. NIfTI and NRRD affines are converted to LPS. Before the copy is
written, i and j are swapped and reversed as needed (views of the data, the affine adjusted
to match: the geometry is unchanged) so the acquired plane looks as a DICOM series of that
plane does (:func:`_display`); k is kept (slices are sorted along their normal anyway).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import struct
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds

from tui.permissions import make_private, private_folder
from tui.render.decode import PixelSource
from tui.render.readers import SUFFIXES, ForeignError, Read, reader_for
from tui.render.views import letters
from tui.render.volume import Slice, Stack, assemble
from tui.tables import printable

_SCRATCH = re.compile(r"open-(\d+)-[0-9a-f]+\.dcm")
_MODALITY = re.compile(r"[A-Z0-9_ ]{1,16}")
_SIDECAR_MAX = 1 << 20  # a BIDS sidecar is a few kB; more is not one
_INT32 = 2**31 - 1
# BIDS sidecar keys put in the copy's header: the factor to DICOM's unit (ms, degrees).
_BIDS_ACQUISITION = (("RepetitionTime", 1000.0, "ms"), ("EchoTime", 1000.0, "ms"),
                     ("FlipAngle", 1.0, "deg"))  # fmt: skip
_SC = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture
_SOP_CLASSES = {  # the multi-frame SC classes by stored type; else plain SC
    "u1": "1.2.840.10008.5.1.4.1.1.7.2",  # grayscale byte
    "u2": "1.2.840.10008.5.1.4.1.1.7.3",  # grayscale word
    "i2": "1.2.840.10008.5.1.4.1.1.7.3",
    "rgb": "1.2.840.10008.5.1.4.1.1.7.4",  # true colour
}


@dataclass
class Opened:
    """A foreign file opened as one series.

    ``series`` is shaped as the browser's series rows; ``stacks`` are assembled as for a
    DICOM series (time points of a 4-D file are stacks of one size); ``scratch`` is the
    temporary DICOM file the slices read, removed by :meth:`close`.
    """

    path: Path
    series: dict[str, Any]
    stacks: list[Stack]
    notes: list[str]
    scratch: Path
    format: str = ""

    def close(self) -> None:
        """Remove the scratch file (again: nothing happens)."""
        self.scratch.unlink(missing_ok=True)

    def info(self) -> dict[str, Any]:
        """What ``--json`` prints: DICOM keywords where one fits, the first stack's geometry.

        ``AffineLPS`` takes voxel (column, row, slice, 1) to DICOM's patient axes (LPS, mm),
        as displayed and sorted along the normal, so it may differ from the file's affine
        by a swap or reversal of axes (the same voxels in the same places)."""
        first = self.stacks[0]
        slice0 = first.slices[0]
        source = slice0.source
        return {
            "SeriesInstanceUID": self.series["SeriesInstanceUID"],
            "SeriesDescription": self.series["SeriesDescription"],
            "Modality": self.series["Modality"],
            "Format": self.format,
            "Rows": source.rows,
            "Columns": source.columns,
            "SamplesPerPixel": source.samples,
            "NumberOfFrames": len(first.slices),
            "NumberOfTemporalPositions": len(self.stacks),
            "PixelSpacing": list(slice0.spacing),
            "SpacingBetweenSlices": first.spacing,
            "ImageOrientationPatient": list(slice0.orientation),
            "ImagePositionPatient": list(slice0.position),
            "AffineLPS": first.affine.tolist(),
            "Notes": list(self.notes),
        }


def is_foreign(path: str | Path) -> bool:
    """Is ``path`` named like a file :func:`open_foreign` reads? (Only the name is looked at.)"""
    return str(path).lower().endswith(SUFFIXES)


def open_foreign(path: str | Path, scratch_dir: Path, modality: str | None = None) -> Opened:
    """Open a NIfTI, NRRD or picture file as one series of stacks.

    Parameters
    ----------
    path
        The file (its name's suffix says the format: :data:`SUFFIXES`).
    scratch_dir
        A private folder for the temporary DICOM copy (made 0700 if missing); leftovers
        of killed runs in it are removed.
    modality
        The modality to show (CT gives CT's windows and volume rendering presets); by
        default the one a BIDS sidecar (``FILE.json`` beside it) names, else OT.

    Raises
    ------
    ForeignError
        One line naming the file, for anything that stops it opening; nothing is then left
        in ``scratch_dir``.
    """
    path, folder = Path(path), Path(scratch_dir)
    name = printable(str(path))
    try:
        private_folder(folder)
        make_private([folder])
    except OSError as exc:
        where = printable(str(folder))
        raise ForeignError(f"{where}: cannot make the scratch folder: {exc.strerror}") from None
    _sweep(folder)
    if modality is not None and not _MODALITY.fullmatch(modality.upper()):
        raise ForeignError(f"{printable(modality)}: not a modality (CT, MR, OT...)")
    if not path.exists():
        raise ForeignError(f"{name}: no such file")
    if path.is_dir():
        raise ForeignError(f"{name}: a folder, not a file")
    found = reader_for(path)
    if found is None:
        raise ForeignError(f"{name}: not a NIfTI, NRRD or picture file (by its name)")
    kind, reader = found
    try:
        if path.stat().st_size == 0:
            raise ForeignError(f"{name}: an empty file")
        read = reader(path)
    except ForeignError:
        raise
    except MemoryError:
        raise ForeignError(f"{name}: too large for the memory available") from None
    except Exception as exc:  # the readers raise many types for broken files
        message = " ".join(str(exc).replace(str(path), path.name).split()) or type(exc).__name__
        raise ForeignError(f"{name}: not a readable {kind} file: {printable(message)}") from None
    if read.data.dtype.kind == "c":
        raise ForeignError(f"{name}: complex voxels cannot be shown")
    _describe(read)
    read = _display(read)
    sidecar = _sidecar(path)
    _sidecar_acquisition(sidecar, read)
    plan = _plan(read.data, read.notes)
    if read.slope != 1.0 or read.intercept:  # stored integers rescaled, as DICOM does
        slope, intercept = plan.slope * read.slope, plan.intercept * read.slope + read.intercept
        plan = replace(plan, slope=slope, intercept=intercept)
    series_uid = generate_uid()
    series = {
        "SeriesInstanceUID": series_uid,
        "SeriesDescription": printable(path.name),
        "Modality": (modality or _sidecar_modality(sidecar) or "OT").upper(),
        "SeriesNumber": 0,
        "NumberOfSeriesRelatedInstances": 1,
    }
    scratch, source = _write(read, plan, series, folder, name)
    try:
        stacks = assemble(_slices(read, source, plan))
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise
    return Opened(path, series, stacks, read.notes, scratch, read.format)


@dataclass(frozen=True)
class _Plan:
    """How voxels are stored: the type, the rescale back to values, what replaces NaN,
    whether floats are quantised to the type (through the rescale)."""

    dtype: np.dtype
    slope: float = 1.0
    intercept: float = 0.0
    fill: float | None = None
    colour: bool = False
    quantised: bool = False


def _plan(data: np.ndarray, notes: list[str]) -> _Plan:
    """The smallest stored type that keeps the values (16 bits for most scans)."""
    if data.ndim == 5:
        return _Plan(np.dtype("u1"), colour=True)
    if data.dtype.kind == "b" or data.dtype == np.uint8:
        return _Plan(np.dtype("u1"))
    lo: float
    hi: float
    if data.dtype.kind in "iu":
        lo, hi = (int(data.min()), int(data.max())) if data.size else (0, 0)
        integer, bad = True, 0
    else:
        lo, hi, integer, bad = _float_range(data)
    for code in ("<i2", "<u2") + (("<i4",) if data.dtype.kind in "iu" else ()):
        info = np.iinfo(code)
        if integer and info.min <= lo and hi <= info.max:
            if bad:
                notes.append(f"{bad} NaN or infinite voxel(s) replaced by the minimum")
            return _Plan(np.dtype(code), fill=lo if data.dtype.kind == "f" else None)
    # Floats (and integers past int32): int32 over the range, with its rescale (DS text).
    intercept = float(format_number_as_ds((hi + lo) / 2))
    slope = float(format_number_as_ds((hi - lo) / (2 * _INT32 - 2))) if hi > lo else 1.0
    notes.append("float voxels stored as int32 with a rescale")
    if bad:
        notes.append(f"{bad} NaN or infinite voxel(s) replaced by the minimum")
    return _Plan(np.dtype("<i4"), slope or 1.0, intercept, lo, quantised=True)


def _float_range(data: np.ndarray) -> tuple[float, float, bool, int]:
    """Finite minimum and maximum, whether all are whole numbers, how many are not finite;
    a frame at a time (a memory-mapped NIfTI is never read whole)."""
    lo, hi, integer, bad = np.inf, -np.inf, True, 0
    for t in range(data.shape[3]):
        for k in range(data.shape[2]):
            plane = data[:, :, k, t]
            finite = np.isfinite(plane)
            values = plane[finite]
            bad += int(plane.size - values.size)
            if values.size:
                lo, hi = min(lo, float(values.min())), max(hi, float(values.max()))
                integer = integer and bool(np.all(values == np.round(values)))
    if lo > hi:  # nothing finite
        return 0.0, 0.0, True, bad
    return lo, hi, integer, bad


def _frame_bytes(plane: np.ndarray, plan: _Plan) -> bytes:
    """One frame (rows, columns[, 3]) as stored."""
    if plan.fill is not None and plane.dtype.kind == "f":
        plane = np.where(np.isfinite(plane), plane, plan.fill)
    if plan.quantised:  # in float64: float32 cannot hold 2**31 - 1
        scaled = (plane.astype(np.float64) - plan.intercept) / plan.slope
        plane = np.clip(np.rint(scaled), -_INT32, _INT32)
    return np.ascontiguousarray(plane, dtype=plan.dtype).tobytes()


def _sidecar(path: Path) -> dict[str, Any]:
    """The BIDS sidecar beside the file (``scan.nii.gz``: ``scan.json``), or {}."""
    lower = path.name.lower()
    suffix = next((s for s in SUFFIXES if lower.endswith(s)), "")
    sidecar = path.with_name(path.name[: len(path.name) - len(suffix)] + ".json")
    try:
        if sidecar.stat().st_size > _SIDECAR_MAX:
            return {}
        value = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _sidecar_modality(sidecar: dict[str, Any]) -> str | None:
    """The sidecar's ``Modality``, if one."""
    value = sidecar.get("Modality")
    if isinstance(value, str) and _MODALITY.fullmatch(value.upper()):
        return value.upper()
    return None


def _sidecar_acquisition(sidecar: dict[str, Any], read: Read) -> None:
    """The sidecar's RepetitionTime, EchoTime (s) and FlipAngle into ``read.timing`` in
    DICOM's units (ms, degrees); its RepetitionTime wins over a NIfTI's pixdim[4]."""
    for key, factor, unit in _BIDS_ACQUISITION:
        value = sidecar.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not np.isfinite(value) or value <= 0:
            continue
        read.timing[key] = float(value) * factor
        read.notes[:] = [n for n in read.notes if not n.startswith(f"{key} ")]
        read.notes.append(f"{key} {float(value) * factor:g} {unit} (the sidecar's)")


def _write(
    read: Read, plan: _Plan, series: dict[str, Any], folder: Path, name: str
) -> tuple[Path, PixelSource]:
    """Write the scratch DICOM file; return it and where its frames are."""
    columns, rows, count, times = read.data.shape[:4]
    bits = plan.dtype.itemsize * 8
    ds = Dataset()
    ds.SOPClassUID = _SOP_CLASSES.get("rgb" if plan.colour else plan.dtype.str[1:], _SC)
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = series["SeriesInstanceUID"]
    ds.Modality = series["Modality"]
    ds.SeriesDescription = series["SeriesDescription"].replace("\\", "/")[:64]
    ds.SeriesNumber = 0
    ds.InstanceNumber = 1
    ds.ConversionType = "WSD"
    # What was read and how (the tags screen shows it): format, shape, axes, sform/qform
    ds.ImageComments = "; ".join(read.notes)[:10240]
    ds.NumberOfFrames = count * times
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 3 if plan.colour else 1
    ds.PhotometricInterpretation = "RGB" if plan.colour else "MONOCHROME2"
    if plan.colour:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = int(plan.dtype.kind == "i")
    if not plan.colour:
        ds.RescaleSlope = format_number_as_ds(plan.slope)
        ds.RescaleIntercept = format_number_as_ds(plan.intercept)
    for keyword, value in read.timing.items():  # RepetitionTime, EchoTime, FlipAngle
        setattr(ds, keyword, format_number_as_ds(float(value)))
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    frame_bytes = rows * columns * ds.SamplesPerPixel * plan.dtype.itemsize
    length = frame_bytes * count * times
    scratch = folder / f"open-{os.getpid()}-{secrets.token_hex(8)}.dcm"
    try:
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fp:
            dcmwrite(fp, ds, enforce_file_format=True)
            vr = b"OB" if bits == 8 else b"OW"
            fp.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, vr, 0, length + length % 2))
            offset = fp.tell()
            for t in range(times):
                for k in range(count):
                    fp.write(_frame_bytes(read.data[:, :, k, t].swapaxes(0, 1), plan))
            fp.write(b"\0" * (length % 2))
    except OSError as exc:
        scratch.unlink(missing_ok=True)
        where = printable(str(folder))
        message = f"{name}: cannot write its copy in {where}: {exc.strerror or exc}"
        raise ForeignError(message) from None
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise
    source = PixelSource(
        path=str(scratch), sop_uid=ds.SOPInstanceUID, transfer_syntax=ExplicitVRLittleEndian,
        rows=rows, columns=columns, frames=count * times, samples=ds.SamplesPerPixel,
        photometric=ds.PhotometricInterpretation, bits_allocated=bits, bits_stored=bits,
        pixel_representation=ds.PixelRepresentation, pixel_offset=offset, pixel_length=length,
    )  # fmt: skip
    return scratch, source


def _sweep(folder: Path) -> None:
    """Remove scratch files of runs that are gone (killed before they could)."""
    for leftover in folder.glob("open-*.dcm"):
        match = _SCRATCH.fullmatch(leftover.name)
        if match is None:
            continue
        try:
            os.kill(int(match[1]), 0)
        except ProcessLookupError:
            with suppress(OSError):
                leftover.unlink()
        except (PermissionError, OverflowError):
            pass  # alive (another user's), or not a pid


def _usable(affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """The affine and its voxel sizes, or 1 mm voxels along LPS if it cannot place them."""
    steps = np.linalg.norm(affine[:3, :3], axis=0)
    if not np.all(np.isfinite(affine)) or np.any(steps[:2] <= 0):
        return np.eye(4), np.ones(3), False
    return affine, steps, True


def _describe(read: Read) -> None:
    """The file's own layout first in its notes (before :func:`_display` changes it)."""
    affine, steps, _ = _usable(read.affine)
    codes = "".join(letters(affine[:3, a])[:1] or "?" for a in range(3))
    read.notes[:0] = [
        f"{read.format} {' x '.join(map(str, read.data.shape[:4]))}, {read.data.dtype}",
        f"voxels {steps[0]:.4g} x {steps[1]:.4g} x {steps[2]:.4g} mm, axes toward {codes}",
    ]


def _display(read: Read) -> Read:
    """The acquired plane as a DICOM series of that plane shows it: i and j matched to
    their dominant patient axes, i along the lower-numbered one (x, y, z), j the other;
    columns and rows toward + along x and y (L, P), rows toward - along z (F: head at the
    top). The data are views (swapped, reversed), the affine moved to match: every voxel
    stays where it was. k is kept."""
    affine, _, usable = _usable(read.affine)
    if not usable:
        return read
    unit = np.abs(affine[:3, :2]) / np.linalg.norm(affine[:3, :2], axis=0)
    pairs = [(p, q) for p in range(3) for q in range(3) if p != q]
    p, q = max(pairs, key=lambda pq: unit[pq[0], 0] + unit[pq[1], 1])
    data, affine, done = read.data, affine.copy(), []
    if p > q:
        data = data.swapaxes(0, 1)
        affine[:, [0, 1]] = affine[:, [1, 0]]
        p, q = q, p
        done.append("i and j swapped")
    for axis, patient, name in ((0, p, "columns"), (1, q, "rows")):
        if (affine[patient, axis] > 0) != (patient < 2):
            data = np.flip(data, axis)
            end = np.zeros(4)
            end[axis], end[3] = data.shape[axis] - 1, 1.0
            affine[:3, 3] = affine[:3] @ end
            affine[:3, axis] = -affine[:3, axis]
            done.append(f"{name} reversed")
    plane = ("sagittal", "coronal", "axial")[3 - p - q]
    toward = f"columns toward {'LP'[p]}, rows toward {'LPF'[q]}"
    read.notes.append(
        f"shown as a DICOM {plane} series: {toward} ({', '.join(done) or 'as stored'})"
    )
    return replace(read, data=data, affine=affine)


def _slices(read: Read, source: PixelSource, plan: _Plan) -> list[Slice]:
    """One slice per (k, t), placed by the affine: frame t * K + k of the scratch file."""
    affine, steps, usable = _usable(read.affine)
    if not usable:
        read.notes.append("no usable geometry: 1 voxel = 1 mm")
    orientation = (*(affine[:3, 0] / steps[0]), *(affine[:3, 1] / steps[1]))
    count, times = read.data.shape[2:4]
    return [
        Slice(
            source=source,
            frame=t * count + k,
            position=tuple(float(v) for v in affine[:3] @ (0.0, 0.0, k, 1.0)),  # type: ignore[arg-type]
            orientation=tuple(float(v) for v in orientation),
            spacing=(float(steps[1]), float(steps[0])),
            slope=plan.slope,
            intercept=plan.intercept,
            acquisition=0,
            temporal=t + 1,
            number=k + 1,
        )
        for t in range(times)
        for k in range(count)
    ]
