"""A stack (or the time points of one) to a NIfTI-1 file and a BIDS sidecar, as dcm2niix
writes the same series, so a researcher's pipeline sees no difference.

dcm2niix's layout (v1.0.20220720, its defaults), matched here:

* voxel (i, j, k) = DICOM (column, row, slice), slices in order along the slice normal;
  the rows flipped (``j`` runs from the last DICOM row), so the image is not upside down
  in tools that ignore the affine;
* a 3D MR acquisition (MRAcquisitionType 3D, not EPI, one time point, even slices) is
  instead turned to the orthogonal layout nearest RAS (its ``nii_setOrtho``);
* qform and sform both the scanner affine (code 1), in RAS; ``pixdim[4]`` = TR in seconds;
  units mm and s; ``dim_info`` from InPlanePhaseEncodingDirection; ``descrip`` TE and time;
* the stored integer type with ``scl_slope``/``scl_inter`` = the rescale (uint16 that fits
  becomes int16, losslessly, as dcm2niix does);
* a gantry tilt is resampled onto the de-sheared grid (dcm2niix's ``_Tilt`` file);
* the sidecar: the keys dcm2niix writes from standard attributes, in its order, units
  (seconds) and number formats, anonymised as its default (``-ba y``): no patient, study
  or UID keys and no acquisition date.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset

from tui.errors import UserError
from tui.render.decode import display_header
from tui.render.gzip_writer import GzipWriter
from tui.render.pipeline import volume_of
from tui.render.views import Grid, resample
from tui.render.volume import Progress, Stack, Volume, VolumeCache, VolumeError
from tui.tables import printable

log = logging.getLogger(__name__)

SUFFIXES = (".nii", ".nii.gz")
SOFTWARE = "pacs-tui"
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_GZIP_LEVEL = 6  # as dcm2niix (pigz): a third smaller than level 1 on MR
# dcm2niix's names for manufacturers (it writes none for others).
_MAKERS = {
    "SIEMENS": "Siemens", "GE": "GE", "PHILIPS": "Philips", "TOSHIBA": "Toshiba",
    "CANON": "Canon", "HITACHI": "Hitachi", "UIH": "UIH", "BRUKER": "Bruker",
    "MEDISO": "Mediso", "MRSOLUTIONS": "MRSolutions", "HYPERFINE": "Hyperfine",
}  # fmt: skip


def write_nifti(
    stacks: list[Stack],
    output: Path,
    cache: VolumeCache | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    sidecar: bool = True,
) -> list[Path]:
    """Write ``stacks`` to ``output`` (``.nii`` or ``.nii.gz``) and, if ``sidecar``, the
    BIDS sidecar beside it (``X.json``).

    Parameters
    ----------
    stacks
        One stack (3D), or the time points of one in time order (4D; see
        :func:`tui.render.pipeline.time_points`).
    output
        The file to write: never overwritten. Written under a temporary name beside it
        and renamed, so a failure or ``cancel`` leaves nothing behind.
    cache
        Where loaded volumes are kept (the app's), or None.
    progress, cancel
        Reported and checked while loading the volumes.

    Returns
    -------
    list of Path
        The files written: the NIfTI file, then the sidecar.

    Raises
    ------
    UserError
        For a wrong suffix, an existing file, stacks of different shapes, or a write error.
    """
    output = Path(output)
    name = output.name.lower()
    if not name.endswith(SUFFIXES):
        raise UserError(f"{printable(str(output))}: a NIfTI file ends .nii or .nii.gz")
    if not stacks:
        raise VolumeError("the series has no images")
    if any(s.shape != stacks[0].shape for s in stacks):
        raise VolumeError("the time points differ in size: export one stack (--stack N)")
    stem = output.name[: -len(".nii.gz")] if name.endswith(".gz") else output.name[:-4]
    targets = [output] + ([output.with_name(stem + ".json")] if sidecar else [])
    for target in targets:
        if target.exists():
            raise UserError(f"{printable(str(target))} exists: choose another name")
    for problem in stacks[0].problems:  # a tilt is resampled; gaps are not filled
        if not problem.startswith("gantry tilt"):
            log.warning(
                "%s: the NIfTI spaces its slices evenly (as dcm2niix does), so its geometry"
                " is wrong there; are images missing?", problem,
            )  # fmt: skip
    header = display_header(stacks[0].slices[0].source.path)
    tag = f"{os.getpid()}-{secrets.token_hex(4)}"
    temporary = [t.with_name(f".{t.name}.{tag}.part") for t in targets]
    renamed: list[Path] = []
    try:
        volumes = _Volumes(stacks, cache, progress, cancel)
        with open(temporary[0], "xb") as raw:
            _write_image(volumes, header, raw, name.endswith(".gz"))
        if sidecar:
            text = json.dumps(_bids(stacks, header), indent="\t", ensure_ascii=False)
            temporary[1].write_text(text + "\n", encoding="utf-8")
        for part, target in zip(temporary, targets, strict=True):
            _rename_new(part, target)
            renamed.append(target)
    except BaseException as error:
        for target in renamed:  # all the files or none
            target.unlink(missing_ok=True)
        if isinstance(error, OSError):
            message = error.strerror or str(error)
            raise UserError(f"cannot write {printable(str(output))}: {message}") from None
        raise
    finally:
        for part in temporary:
            part.unlink(missing_ok=True)
    return targets


def _rename_new(part: Path, target: Path) -> None:
    """Move ``part`` to ``target`` unless something took that name meanwhile."""
    try:
        os.link(part, target)  # fails if the target exists: no overwrite, even in a race
    except FileExistsError:
        raise UserError(f"{printable(str(target))} exists: choose another name") from None
    except OSError:  # no hard links here (FAT, some network shares)
        if target.exists():
            raise UserError(f"{printable(str(target))} exists: choose another name") from None
        os.replace(part, target)


class _Volumes:
    """The stacks' volumes, loaded one at a time (a 4D series need not fit in memory
    twice), with the progress of all of them as one."""

    def __init__(
        self,
        stacks: list[Stack],
        cache: VolumeCache | None,
        progress: Progress | None,
        cancel: threading.Event | None,
    ) -> None:
        self.stacks, self.cache, self.progress, self.cancel = stacks, cache, progress, cancel

    def __iter__(self) -> Iterator[Volume]:
        per = len(self.stacks[0].slices)
        total = per * len(self.stacks)
        for number, stack in enumerate(self.stacks):

            def report(done: int, _: int, before: int = number * per) -> None:
                if self.progress:
                    self.progress(before + done, total)

            yield volume_of(stack, self.cache, report, self.cancel)


def _write_image(volumes: _Volumes, header: Dataset, raw: BinaryIO, compress: bool) -> None:
    stacks = volumes.stacks
    first = stacks[0]
    layout = _layout(first, header, len(stacks))
    voxels = iter(volumes)
    volume = next(voxels)
    scale, kind = (volume.slope, volume.intercept), volume.data.dtype.kind
    dtype, slope, intercept = _stored_type(volume, len(stacks))
    hdr = nib.Nifti1Header()
    shape = layout.shape + ((len(stacks),) if len(stacks) > 1 else ())
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(dtype)
    hdr.set_xyzt_units("mm", "sec")
    zooms = list(hdr.get_zooms())
    zooms[:3] = np.linalg.norm(layout.affine[:3, :3], axis=0)
    hdr.set_zooms(zooms)
    hdr.set_sform(layout.affine, code=1)
    hdr.set_qform(layout.affine, code=1)
    hdr["pixdim"][4] = _number(header, "RepetitionTime") / 1000.0
    hdr["pixdim"][5:] = 0  # as dcm2niix (nibabel's default is 1)
    hdr["scl_slope"], hdr["scl_inter"] = slope, intercept
    hdr["vox_offset"] = 352
    hdr["dim_info"] = _dim_info(header)
    hdr["descrip"] = _description(header).encode("ascii", "replace")[:79]
    out: BinaryIO | GzipWriter = GzipWriter(raw, _GZIP_LEVEL) if compress else raw
    try:
        out.write(hdr.binaryblock)
        out.write(b"\0\0\0\0")  # no extensions
        for index in range(len(stacks)):
            if index:
                volume = next(voxels)
                if (volume.slope, volume.intercept) != scale or volume.data.dtype.kind != kind:
                    raise VolumeError("the time points are scaled differently: export one stack")
            ijk = layout.voxels(volume)
            for k in range(ijk.shape[2]):  # one slice at a time: no second copy of the volume
                out.write(np.asarray(ijk[:, :, k], dtype=dtype).tobytes(order="F"))
    except BaseException:
        if isinstance(out, GzipWriter):
            out.discard()  # the file is removed: no need to finish it
        raise
    if isinstance(out, GzipWriter):
        out.close()


def _stored_type(volume: Volume, count: int) -> tuple[np.dtype, float, float]:
    """The type written and its rescale: the stored one; uint16 as int16 when it fits
    (dcm2niix checks every voxel; for time points not loaded yet, BitsStored says)."""
    data = volume.data
    bits = int(_number(volume.header, "BitsStored")) or 16
    fits = bits <= 15 or (count == 1 and int(data.max(initial=0)) <= 32767)
    if data.dtype == np.uint16 and fits:
        return np.dtype(np.int16), volume.slope, volume.intercept
    if data.dtype.kind == "f":
        return np.dtype(np.float32), 1.0, 0.0
    return data.dtype, volume.slope, volume.intercept


class _Layout:
    """Where each NIfTI voxel comes from: axes of the (slice, row, column) data, in
    NIfTI's (i, j, k) order, each maybe reversed, and the RAS affine of the result."""

    def __init__(self, stack: Stack, tilted: bool) -> None:
        self.stack, self.tilted = stack, tilted
        lps, (slices, rows, columns) = _untilted(stack) if tilted else (stack.affine, stack.shape)
        self.affine = _LPS_TO_RAS @ lps  # voxel (column, row, slice)
        self.axes = [2, 1, 0]  # the data axis behind i, j, k
        self.flips = [False, False, False]
        self.shape = (columns, rows, slices)

    def flip(self, axis: int) -> None:
        """Reverse NIfTI axis ``axis`` (the affine keeps every voxel where it was)."""
        step = self.affine[:3, axis].copy()
        self.affine[:3, 3] += step * (self.shape[axis] - 1)
        self.affine[:3, axis] = -step
        self.flips[axis] = not self.flips[axis]

    def voxels(self, volume: Volume) -> np.ndarray:
        """The volume as an (i, j, k) view (no copy, unless tilted)."""
        data = _resampled(volume) if self.tilted else volume.data
        ijk = np.transpose(data, self.axes)
        return ijk[tuple(slice(None, None, -1) if f else slice(None) for f in self.flips)]


def _layout(stack: Stack, header: Dataset, time_points: int) -> _Layout:
    layout = _Layout(stack, stack.tilted)
    if _reoriented(stack, header, time_points):
        _set_ortho(layout)
    else:
        layout.flip(1)  # dcm2niix's flipY
    return layout


def _reoriented(stack: Stack, header: Dataset, time_points: int) -> bool:
    """Does dcm2niix turn this series to the nearest orthogonal layout?"""
    kind = str(header.get("MRAcquisitionType", "")).upper()
    epi = "EP" in str(header.get("ScanningSequence", "")).split("\\")
    steps = np.diff(stack.offsets)
    even = not steps.size or bool(np.all(np.abs(steps - steps[0]) <= abs(steps[0]) * 0.1))
    return kind.startswith("3D") and not epi and time_points == 1 and len(stack.slices) > 1 and even


def _set_ortho(layout: _Layout) -> None:
    """dcm2niix's ``nii_setOrtho``: permute and flip the axes so the affine is closest to a
    positive diagonal, voxel 0 at the corner nearest the left-posterior-inferior one."""
    affine, dims = layout.affine, layout.shape
    if np.all(np.diag(affine[:3, :3]) > 0) and np.count_nonzero(affine[:3, :3]) == 3:
        return  # already canonical
    corners = []
    for n in range(8):  # in dcm2niix's order: the first nearest corner wins
        flips = [bool(n & (1 << a)) for a in range(3)]
        index = [dims[a] - 1 if flips[a] else 0 for a in range(3)]
        corners.append((flips, affine[:3, :3] @ index + affine[:3, 3]))
    low = np.min([c for _, c in corners], axis=0)
    distances = [float(np.linalg.norm(c - low)) for _, c in corners]
    flips, _ = corners[distances.index(min(distances))]
    signs = [-1.0 if f else 1.0 for f in flips]
    best, perm = 0.0, (0, 1, 2)
    for candidate in ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)):
        # dcm2niix's residual: old axis a taken to patient axis candidate[a], flipped or not
        residual = sum(signs[a] * affine[candidate[a], a] for a in range(3))
        if residual > best:
            best, perm = residual, candidate
    if perm == (0, 1, 2) and not any(flips):
        return
    for axis in range(3):
        if flips[axis]:
            layout.flip(axis)
    # old axis a becomes new axis perm[a]
    order = [perm.index(new) for new in range(3)]
    layout.affine[:3, :3] = layout.affine[:3, order]
    layout.axes = [layout.axes[a] for a in order]
    layout.flips = [layout.flips[a] for a in order]
    layout.shape = tuple(layout.shape[a] for a in order)  # type: ignore[assignment]


def _untilted(stack: Stack) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The de-sheared grid of a tilted stack: its LPS affine and (slices, rows, columns).

    Slices step along the normal by the measured spacing; rows and columns grow by the
    shear's whole extent (as dcm2niix's ``_Tilt`` file), so no voxel is cut off.
    """
    affine = stack.affine.copy()
    affine[:3, 2] = stack.normal * stack.spacing
    travel = np.array([s.position for s in stack.slices]) - stack.slices[0].position
    shape = list(stack.shape)
    for axis, size in ((0, 2), (1, 1)):  # columns, rows: shifts in voxels
        step = affine[:3, axis]
        shifts = travel @ step / float(step @ step)
        low, high = min(0.0, float(shifts.min())), max(0.0, float(shifts.max()))
        pad = int(np.ceil(high - low - 1e-3))
        shape[size] += pad
        if low < 0:
            affine[:3, 3] -= pad * step
    return affine, (shape[0], shape[1], shape[2])


def _resampled(volume: Volume) -> np.ndarray:
    affine, shape = _untilted(volume.stack)
    grid = Grid(affine[:3, 3], affine[:3, 1], affine[:3, 0], affine[:3, 2], shape)
    return resample(volume, grid)


def _dim_info(header: Dataset) -> int:
    direction = _phase(header)
    if direction == "ROW":
        return (3 << 4) + (1 << 2) + 2
    if direction == "COL":
        return (3 << 4) + (2 << 2) + 1
    return 0


def _phase(header: Dataset) -> str:
    """InPlanePhaseEncodingDirection as dcm2niix names it (enhanced files say COLUMN)."""
    return {"ROW": "ROW", "COL": "COL", "COLUMN": "COL"}.get(
        _text(header, "InPlanePhaseEncodingDirection").upper(), ""
    )


def _description(header: Dataset) -> str:
    time = _time(header)
    seconds = float(time) if time else 0.0
    if str(header.get("Modality", "")) == "MR":
        return f"TE={_number(header, 'EchoTime'):.2g};Time={seconds:.3f}"
    return f"Time={seconds:.3f}"


def sidecar(stacks: list[Stack]) -> dict[str, Any]:
    """The BIDS sidecar dcm2niix writes for these stacks, from their standard attributes.

    Keys in dcm2niix's order, times in seconds, numbers as its ``%g`` gives them; no
    patient, study, UID or acquisition-date keys (dcm2niix's default, ``-ba y``).
    """
    return _bids(stacks, display_header(stacks[0].slices[0].source.path))


def _bids(stacks: list[Stack], ds: Dataset) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def put(key: str, value: Any) -> None:
        if value not in (None, "", []):
            out[key] = value

    modality = _text(ds, "Modality")
    xray = modality in ("CT", "CR", "DX", "MG", "XA", "RF", "PX", "IO")
    put("Modality", modality if modality in ("CR", "CT", "MR", "PT", "US") else None)
    put("MagneticFieldStrength", _g(_number(ds, "MagneticFieldStrength")))
    frequency = _number(ds, "ImagingFrequency")
    put("ImagingFrequency", _g(frequency) if 0 < frequency < 9e6 else None)
    maker = _text(ds, "Manufacturer").upper().replace(" ", "")
    put("Manufacturer", next((v for k, v in _MAKERS.items() if maker.startswith(k)), None))
    for key in (
        "ManufacturerModelName", "InstitutionName", "InstitutionalDepartmentName",
        "InstitutionAddress", "DeviceSerialNumber", "StationName", "BodyPartExamined",
        "PatientPosition", "PerformedProcedureStepDescription", "SoftwareVersions",
    ):  # fmt: skip
        name = {
            "ManufacturerModelName": "ManufacturersModelName",
            "PerformedProcedureStepDescription": "ProcedureStepDescription",
        }.get(key, key)
        put(name, _text(ds, key))
    put("MRAcquisitionType", _text(ds, "MRAcquisitionType").upper()[:2] or None)
    for key in ("SeriesDescription", "ProtocolName", "ScanningSequence", "SequenceVariant"):
        put(key, _text(ds, key))
    put("ScanOptions", _text(ds, "ScanOptions"))
    put("SequenceName", _text(ds, "SequenceName"))
    put("PulseSequenceName", _text(ds, "PulseSequenceName"))
    image_type = [v for v in _text(ds, "ImageType").split("\\") if v]
    put("ImageType", image_type)
    joined = "_" + "_".join(image_type)
    if "_DIS2D" in joined or "_DIS3D" in joined:
        out["NonlinearGradientCorrection"] = True
    if "_ND" in joined:
        out["NonlinearGradientCorrection"] = False
    series = int(_number(ds, "SeriesNumber"))
    put("SeriesNumber", series if series > 0 else None)
    time, date = _time(ds), _text(ds, "AcquisitionDate") or _text(ds, "AcquisitionDateTime")[:8]
    if time and date and float(time) > 0:
        seconds = float(time)
        hours, minutes = int(seconds) // 10000, int(seconds) // 100 % 100
        # dcm2niix's "%02.6f": the seconds are not zero-padded
        out["AcquisitionTime"] = f"{hours:02d}:{minutes:02d}:{seconds % 100:.6f}"
    acquisition = int(_number(ds, "AcquisitionNumber"))
    put("AcquisitionNumber", acquisition if acquisition > 0 else None)
    put("ConvolutionKernel", _text(ds, "ConvolutionKernel") if xray else None)
    put("ExposureTime", _g(_number(ds, "ExposureTime") / 1000.0))
    put("XRayTubeCurrent", _g(_number(ds, "XRayTubeCurrent")))
    put("XRayExposure", _g(_number(ds, "Exposure")) if xray else None)
    if not xray:
        put("SliceThickness", _g(_number(ds, "SliceThickness")))
        put("SpacingBetweenSlices", _g(_number(ds, "SpacingBetweenSlices")))
    put("SAR", _g(_number(ds, "SAR")))
    if not xray:
        put("EchoTime", _g(_number(ds, "EchoTime") / 1000.0))
    put("RepetitionTime", _g(_number(ds, "RepetitionTime") / 1000.0))
    put("InversionTime", _g(_number(ds, "InversionTime") / 1000.0))
    put("FlipAngle", _g(_number(ds, "FlipAngle")))
    put("PercentPhaseFOV", _g(_number(ds, "PercentPhaseFieldOfView")))
    put("PercentSampling", _g(_number(ds, "PercentSampling")))
    echoes = int(_number(ds, "EchoTrainLength"))
    put("EchoTrainLength", echoes if echoes > 1 else None)
    put("PixelBandwidth", _g(_number(ds, "PixelBandwidth")))
    put("ImageOrientationPatientDICOM", [_g(v, zero=True) for v in stacks[0].slices[0].orientation])
    put("InPlanePhaseEncodingDirectionDICOM", _phase(ds))
    out["ConversionSoftware"] = SOFTWARE
    out["ConversionSoftwareVersion"] = _version()
    return out


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pacs-tui")
    except PackageNotFoundError:
        return "unknown"


def _g(value: float, digits: int = 6, zero: bool = False) -> int | float | None:
    """``value`` as C's ``%g`` prints it (``digits`` significant), as a JSON number; None
    for zero, negative or NaN values unless ``zero`` (dcm2niix leaves those out)."""
    if value != value or (value <= 0 and not zero):
        return None
    rounded = float(f"{value:.{digits}g}")
    return int(rounded) if rounded.is_integer() else rounded


# Enhanced multi-frame files keep these in functional groups, some under another name.
_ENHANCED = {"EchoTime": "EffectiveEchoTime", "ImagingFrequency": "TransmitterFrequency"}


def _find(ds: Dataset, keyword: str) -> Any:
    """An attribute's value: at the top, else in the first frame's functional groups."""
    for name in (keyword, _ENHANCED.get(keyword)):
        if name and name in ds and ds[name].value not in (None, ""):
            return ds[name].value
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for item in (ds.get(groups) or [])[:1]:
            for element in item:
                for inner in element.value if element.VR == "SQ" else []:
                    value = _find_flat(inner, keyword)
                    if value is not None:
                        return value
    return None


def _find_flat(ds: Dataset, keyword: str) -> Any:
    for name in (keyword, _ENHANCED.get(keyword)):
        if name and name in ds and ds[name].value not in (None, ""):
            return ds[name].value
    return None


def _text(ds: Dataset, keyword: str) -> str:
    value = _find(ds, keyword)
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value).strip()
    return str(value).strip()


def _number(ds: Dataset, keyword: str) -> float:
    value = _find(ds, keyword)
    try:
        return float(value[0] if isinstance(value, list | tuple) else value)
    except (TypeError, ValueError, IndexError):
        return 0.0


def _time(ds: Dataset) -> str:
    """AcquisitionTime (HHMMSS.ffffff), or the time in AcquisitionDateTime."""
    time = _text(ds, "AcquisitionTime")
    if not time:
        time = _text(ds, "AcquisitionDateTime")[8:].split("+")[0].split("-")[0]
    try:
        float(time)
    except ValueError:
        return ""
    return time
