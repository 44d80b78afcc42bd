"""Reading NIfTI, NRRD and picture files: their voxels as (i, j, k, t) and their affine in
DICOM's patient axes (LPS), each format by its maintained library (nibabel, pynrrd,
Pillow), refused in one line before anything is read when a header asks for more than
the file holds or the memory has. :mod:`tui.render.foreign` makes a series of them.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tui.errors import UserError
from tui.tables import printable

_NIFTI = (".nii", ".nii.gz")
_NRRD = (".nrrd", ".nhdr")
_PICTURES = (".png", ".tif", ".tiff", ".jp2", ".j2k", ".jpg", ".jpeg", ".bmp")
SUFFIXES: tuple[str, ...] = (*_NIFTI, *_NRRD, *_PICTURES)

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
_DEFLATE_MAX = 1032  # deflate never expands more than this (258 bytes from 2 bits)
_TIME_UNITS = {"sec": 1000.0, "msec": 1.0, "usec": 0.001}  # a NIfTI's xyzt time unit to ms
# NRRD kinds of a non-space axis that open as time points ('none' and '???' say nothing,
# as a file without kinds, taken as domain axes).
_NRRD_TIME_KINDS = ("time", "list", "domain", "space", "none", "???")
# NRRD spaces: the signs that take their axes to LPS.
_SPACES = {
    "left-posterior-superior": (1, 1, 1),
    "right-anterior-superior": (-1, -1, 1),
    "left-anterior-superior": (1, -1, 1),
    "lps": (1, 1, 1),
    "ras": (-1, -1, 1),
    "las": (1, -1, 1),
}
_NRRD_ITEM_BYTES = {  # by 'type' (the rest: 8, an upper bound for the memory check)
    **dict.fromkeys(("signed char", "int8", "int8_t", "uchar", "unsigned char"), 1),
    **dict.fromkeys(("uint8", "uint8_t"), 1),
    **dict.fromkeys(("short", "short int", "signed short", "signed short int", "int16"), 2),
    **dict.fromkeys(("int16_t", "ushort", "unsigned short", "unsigned short int"), 2),
    **dict.fromkeys(("uint16", "uint16_t"), 2),
    **dict.fromkeys(("int", "signed int", "int32", "int32_t", "uint", "unsigned int"), 4),
    **dict.fromkeys(("uint32", "uint32_t", "float"), 4),
}


class ForeignError(UserError):
    """A file cannot be opened as an image; the message (one line) names it and says why."""


@dataclass
class Read:
    """A reader's result: voxels (i, j, k, t), or (i, j, k, t, 3) RGB, and an LPS affine;
    the voxels' values are ``data * slope + intercept`` (a NIfTI's scl_slope, scl_inter)."""

    data: np.ndarray
    affine: np.ndarray
    format: str
    notes: list[str] = field(default_factory=list)
    slope: float = 1.0
    intercept: float = 0.0
    timing: dict[str, float] = field(default_factory=dict)  # DICOM keyword: value (ms, deg)


def reader_for(path: Path) -> tuple[str, Callable[[Path], Read]] | None:
    """The format the name says and its reader."""
    lower = path.name.lower()
    for kind, suffixes, reader in (
        ("NIfTI", _NIFTI, _nifti), ("NRRD", _NRRD, _nrrd), ("picture", _PICTURES, _picture)
    ):  # fmt: skip
        if lower.endswith(suffixes):
            return kind, reader
    return None


def _check_memory(path: Path, nbytes: int) -> None:
    """Refuse before reading voxels that would not fit in the memory available now."""
    try:
        with open("/proc/meminfo") as fp:
            fields = dict(line.split(":", 1) for line in fp if ":" in line)
        available = int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return  # not Linux: the reader's MemoryError is the check
    if nbytes > available:
        raise ForeignError(
            f"{printable(str(path))}: its voxels need {nbytes / 2**30:.1f} GiB,"
            f" more than the {available / 2**30:.1f} GiB of memory available"
        )


def _nifti(path: Path) -> Read:
    import nibabel

    # nibabel logs the header fixes it makes to stderr, which would land over the app
    # (as pydicom's: tui.archive.pydicom_setup); what stops a file is raised, and said.
    logging.getLogger("nibabel").setLevel(logging.CRITICAL)
    img = nibabel.load(path)  # only the header: voxels are read below
    if not isinstance(img, nibabel.Nifti1Image):  # Nifti2Image is one too
        raise ForeignError(f"{printable(str(path))}: not a NIfTI file")
    header = img.header
    shape = tuple(int(n) for n in img.shape)
    if len(shape) > 4 and int(np.prod(shape[4:])) > 1:
        raise ForeignError(
            f"{printable(str(path))}: {len(shape)}-D data ({' x '.join(map(str, shape))}):"
            " only 3-D volumes and 4-D time series open"
        )
    dtype = header.get_data_dtype()
    proxy: Any = img.dataobj
    _check_size(path, int(proxy.offset), int(np.prod(shape)) * dtype.itemsize)  # where read
    scaled = proxy.slope != 1 or proxy.inter != 0
    # Scaled integers stay integers, with the scaling as the rescale (no float copy); those
    # of any type that fits int32 whole, so they are never quantised again
    keep = scaled and dtype.str[1:] in ("i1", "u1", "i2", "u2", "i4")
    _check_memory(path, int(np.prod(shape)) * (dtype.itemsize if keep or not scaled else 8))
    data = proxy.get_unscaled() if keep else np.asanyarray(proxy)
    if data.dtype.names:  # RGB24: a record per voxel
        data = np.stack([data[n] for n in data.dtype.names[:3]], axis=-1)
        data = data.reshape(*(data.shape[:-1] + (1,) * 4)[:4], 3)
    else:
        data = data.reshape((data.shape + (1,) * 4)[:4])
    sform, qform = int(header["sform_code"]), int(header["qform_code"])
    used = (  # nibabel's documented choice (img.affine)
        f"sform (code {sform}) used" if sform else
        f"qform (code {qform}) used" if qform else
        "no sform or qform: voxel sizes only"
    )  # fmt: skip
    version = "NIfTI-2" if isinstance(img, nibabel.Nifti2Image) else "NIfTI-1"
    notes = [used]
    if scaled:
        notes.append(f"scl_slope {proxy.slope:g}, scl_inter {proxy.inter:g} applied")
    timing: dict[str, float] = {}
    step, unit = float(header["pixdim"][4]), header.get_xyzt_units()[1]
    if data.shape[3] > 1 and unit in _TIME_UNITS and np.isfinite(step) and step > 0:
        timing["RepetitionTime"] = step * _TIME_UNITS[unit]
        notes.append(f"RepetitionTime {step * _TIME_UNITS[unit]:g} ms (pixdim[4] {step:g} {unit})")
    affine = _RAS_TO_LPS @ img.affine
    if keep:
        slope, inter = float(proxy.slope), float(proxy.inter)
        return Read(data, affine, version, notes, slope, inter, timing)
    return Read(data, affine, version, notes, timing=timing)


def _check_size(path: Path, offset: int, need: int) -> None:
    """Refuse at once a NIfTI whose header declares more voxels than the file holds: for a
    .nii.gz, by deflate's limit and the gzip trailer's size (mod 2**32) below 4 GiB."""
    size, name = path.stat().st_size, printable(str(path))
    if not path.name.lower().endswith(".gz"):
        if offset + need > size:
            raise ForeignError(
                f"{name}: declares {need} bytes of voxels, has {max(size - offset, 0)}"
            )
        return
    if need > size * _DEFLATE_MAX:
        raise ForeignError(
            f"{name}: declares {need} bytes of voxels, has {size} compressed"
            f" (at most {size * _DEFLATE_MAX} unpacked)"
        )
    with open(path, "rb") as fp:
        flags = fp.read(4)[3:]
        fp.seek(-4, os.SEEK_END)
        isize = int.from_bytes(fp.read(4), "little")
    # FEXTRA: blocked gzip (bgzip), many members, the trailer the last one's
    blocked = not flags or flags[0] & 4
    if offset + need < 2**32 and not blocked and isize < offset + need:
        raise ForeignError(
            f"{name}: declares {need} bytes of voxels, has {max(isize - offset, 0)}"
            " (truncated or inconsistent)"
        )


def _nrrd(path: Path) -> Read:
    import nrrd

    header = nrrd.read_header(str(path))
    sizes = [int(n) for n in header["sizes"]]
    ndim = len(sizes)
    notes: list[str] = []
    directions = header.get("space directions")
    kinds = [str(k).lower() for k in header.get("kinds", [])]
    kinds += ["domain"] * (ndim - len(kinds))
    if directions is not None:
        directions = np.asarray(directions, float)
        spatial = [a for a in range(ndim) if np.all(np.isfinite(directions[a]))]
    else:
        spatial = [a for a in range(ndim) if kinds[a] in ("domain", "space")][:3]
    others = [a for a in range(ndim) if a not in spatial and sizes[a] > 1]
    for axis in others:
        if kinds[axis] not in _NRRD_TIME_KINDS:
            raise ForeignError(
                f"{printable(str(path))}: axis {axis} is of kind {printable(kinds[axis])}:"
                " only a time or list axis opens beside space"
            )
    if not 2 <= len(spatial) <= 3 or len(others) > 1:
        raise ForeignError(
            f"{printable(str(path))}: {len(spatial)} space axes and {len(others)} other axes:"
            " only 2-D or 3-D space with at most one time or list axis opens"
        )
    _check_memory(path, int(np.prod(sizes)) * _NRRD_ITEM_BYTES.get(header["type"], 8))
    data, header = nrrd.read(str(path), index_order="F")
    if others:
        notes.append(f"axis {others[0]} ({kinds[others[0]]}): time points")
    single = [a for a in range(data.ndim) if a not in spatial and a not in others]
    data = data.transpose([*spatial, *others, *single])  # a view: (i, j[, k][, t], ones)
    data = data.reshape((*data.shape[: len(spatial)], *([1] * (3 - len(spatial))), -1))
    affine = np.eye(4)
    if directions is not None:
        for column, axis in enumerate(spatial):
            vector = directions[axis][:3]
            affine[: len(vector), column] = vector
    else:
        spacings = np.asarray(header.get("spacings", [1.0] * len(sizes)), float)
        for column, axis in enumerate(spatial):
            step = spacings[axis] if np.isfinite(spacings[axis]) else 1.0
            affine[column, column] = step
        notes.append("no space directions: an axis-aligned grid")
    if len(spatial) == 2:
        affine[:3, 2] = np.cross(affine[:3, 0], affine[:3, 1])
        affine[:3, 2] /= np.linalg.norm(affine[:3, 2]) or 1.0
    origin = header.get("space origin")
    if origin is not None and np.all(np.isfinite(origin)):
        affine[: len(origin[:3]), 3] = origin[:3]
    space = str(header.get("space", "")).lower().removesuffix("-time")
    signs = _SPACES.get(space)
    if signs is None:
        signs = (1, 1, 1)
        notes.append(f"space {printable(space) or 'not given'}: taken as LPS")
    affine = np.diag([*signs, 1.0]) @ affine
    return Read(data, affine, "NRRD", notes)


def _picture(path: Path) -> Read:
    from PIL import Image, ImageSequence

    with warnings.catch_warnings():
        # Past Pillow's limit it warns, past twice it refuses: refuse both.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as image:
            count = getattr(image, "n_frames", 1)
            bands = max(3, len(image.getbands()))
            _check_memory(path, image.width * image.height * count * bands * 4)
            frames = [_picture_array(page) for page in ImageSequence.Iterator(image)]
            kind = f"{image.format or 'picture'} {image.mode}"
    first = frames[0]
    if any(f.shape != first.shape for f in frames):
        raise ForeignError(f"{printable(str(path))}: its pages differ in size or colour")
    # (rows, columns[, 3]) pages to (i, j, k, 1[, 3])
    data = np.stack([f.swapaxes(0, 1) for f in frames], axis=2)[:, :, :, None]
    notes = [f"{kind}, {len(frames)} page(s)", "no geometry: 1 pixel = 1 mm"]
    return Read(data, np.eye(4), "picture", notes)


def _picture_array(page: Any) -> np.ndarray:
    """A page's values: grey as stored (8, 16 or 32-bit, float), anything else as RGB."""
    if page.mode == "1":
        page = page.convert("L")
    elif page.mode not in ("L", "I", "F", "RGB") and not page.mode.startswith("I;16"):
        page = page.convert("RGB")  # palette, alpha, CMYK...
    return np.asarray(page)
