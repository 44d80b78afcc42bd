"""Views of a volume: a slice or a slab projection (MIP, MinIP, average) in a patient plane.

Orthogonal planes follow the radiological convention whatever the acquisition plane:
axial seen from the feet (patient right on image left, anterior up), coronal seen from
the front (right on the left, head up), sagittal seen from the patient's left
(anterior on the left, head up). Pixels keep their physical size (``pixel_spacing``);
an exporter stretches them to square. Every view can say where a pixel is in the
patient (mm) and the modality value there (HU for CT).

A volume whose axes run along the patient axes is cut by indexing (no interpolation,
no copy of the volume). An oblique acquisition, or a gantry-tilted (sheared) one, is
resampled once (trilinear, through its true affine, which removes the shear) onto the
patient-aligned grid the orthogonal planes use, and then cut the same way: ``prepare``
does it, and a projection does it on first use; until then a single orthogonal slice
is sampled on its own. Oblique planes (and their slabs) are always sampled trilinearly.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from tui.render.volume import Stack, Volume, VolumeError

PLANES = ("axial", "coronal", "sagittal")
RESAMPLED_MAX_BYTES = 1 << 30  # a larger resampled copy is not kept: planes are sampled
MODES = ("slice", "mip", "minip", "avg")
_ALIGNED = 0.9999  # |cosine| above which a voxel axis counts as a patient axis
_LETTERS = (("R", "L"), ("A", "P"), ("F", "H"))  # for -/+ x, y, z (LPS)


@dataclass
class View:
    """A 2-D image of modality values placed in the patient."""

    values: np.ndarray  # float32 (rows, columns)
    origin: np.ndarray  # patient position (mm) of pixel (0, 0)'s centre
    row_step: np.ndarray  # patient vector (mm) from one row to the next
    column_step: np.ndarray  # from one column to the next
    description: str

    @property
    def pixel_spacing(self) -> tuple[float, float]:
        return float(np.linalg.norm(self.row_step)), float(np.linalg.norm(self.column_step))

    @property
    def labels(self) -> dict[str, str]:
        """Orientation letters (A/P/R/L/H/F) for each edge of the image."""
        return {
            "left": letters(-self.column_step),
            "right": letters(self.column_step),
            "top": letters(-self.row_step),
            "bottom": letters(self.row_step),
        }

    def patient_at(self, row: float, column: float) -> np.ndarray:
        return self.origin + row * self.row_step + column * self.column_step

    def value_at(self, row: int, column: int) -> float:
        return float(self.values[row, column])


def letters(direction: np.ndarray) -> str:
    """Orientation letters of a direction, strongest first (``L``, ``LP``, ``HLA``...)."""
    unit = direction / (np.linalg.norm(direction) or 1.0)
    order = np.argsort(-np.abs(unit))
    return "".join(_LETTERS[a][int(unit[a] > 0)] for a in order if abs(unit[a]) > 0.3)


@dataclass(frozen=True)
class Grid:
    """A stack of planes in the patient: plane k, row r, column c is at
    ``origin + k * normal_step + r * row_step + c * column_step``."""

    origin: np.ndarray
    row_step: np.ndarray
    column_step: np.ndarray
    normal_step: np.ndarray
    shape: tuple[int, int, int]  # planes, rows, columns


def orthogonal(
    volume: Volume,
    plane: str,
    mode: str = "slice",
    position: float | None = None,
    index: int | None = None,
    slab: float | None = None,
) -> View:
    """A view in an orthogonal patient plane.

    Parameters
    ----------
    position
        Where along the plane's normal (mm, patient z, y or x); or
    index
        which plane of the volume's grid (default: the middle one).
    slab
        Thickness (mm) to project over for ``mip``/``minip``/``avg``; None projects
        over the whole volume. A ``slice`` with a slab averages nothing: it is one plane.

    Raises
    ------
    VolumeError
        For an unknown plane or mode, a position outside the volume, or a stack that
        cannot be resliced (a single slice: see ``Stack.mpr_refusal``).
    """
    if plane not in PLANES:
        raise VolumeError(f"unknown plane {plane!r}: choose one of {', '.join(PLANES)}")
    if mode not in MODES:
        raise VolumeError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")
    refusal = volume.stack.mpr_refusal
    if refusal:
        raise VolumeError(
            f"cannot show {'an' if plane[0] in 'aeiou' else 'a'} {plane} view: {refusal}"
        )
    grid = _orthogonal_grid(volume, plane)
    normal = grid.normal_step / np.linalg.norm(grid.normal_step)
    first = float(np.dot(normal, grid.origin))
    step = float(np.linalg.norm(grid.normal_step))
    planes = grid.shape[0]
    if index is None:
        index = planes // 2 if position is None else round((position - first) / step)
    if not 0 <= index < planes:
        where = f"{position:g} mm" if position is not None else f"plane {index}"
        raise VolumeError(
            f"{where} is outside the volume ({first:.1f} to {first + (planes - 1) * step:.1f} mm)"
        )
    low, high = _slab_range(mode, index, planes, slab, step)
    if high - low > 1:
        prepare(volume)  # a projection reads every plane: resample once, not per plane
    aligned = aligned_planes(volume, plane)
    stored = aligned[low:high] if aligned is not None else None
    if stored is not None:
        values = _project(volume, stored, mode)
    else:
        values = _project_sampled(volume, grid, low, high, mode)
    centre = first + (low + high - 1) / 2 * step
    return View(
        values=values,
        origin=grid.origin + grid.normal_step * index,
        row_step=grid.row_step,
        column_step=grid.column_step,
        description=f"{plane} {_what(mode, (high - low) * step)} at {centre:.1f} mm"
        + tilt_note(volume.stack),
    )


def _what(mode: str, thickness: float) -> str:
    return "slice" if mode == "slice" else f"{mode.upper()} {thickness:.3g} mm"


def tilt_note(stack: Stack) -> str:
    """Said in every resliced view of a sheared stack: its pixels are resampled."""
    return f" (gantry tilt {stack.tilt:.1f}° resampled)" if stack.tilted else ""


def volume_centre(volume: Volume) -> np.ndarray:
    """The patient position (mm) of the middle of the volume."""
    return _corners(volume).mean(axis=0)


def orthogonal_count(volume: Volume, plane: str) -> int:
    """How many planes the volume has along ``plane``'s normal."""
    return _orthogonal_grid(volume, plane).shape[0]


def oblique(
    volume: Volume,
    point: np.ndarray,
    normal: np.ndarray,
    size: int | None = None,
    spacing: float | None = None,
    mode: str = "slice",
    slab: float | None = None,
    axes: tuple[ArrayLike, ArrayLike] | None = None,
) -> View:
    """A plane through ``point`` perpendicular to ``normal`` (patient mm), sampled
    trilinearly; a slice, or a slab projection ``slab`` mm thick (None: through the whole
    volume) centred on the plane, its planes ``spacing`` apart.

    The image is ``size`` pixels square, ``spacing`` mm apart. Give either: the other is
    chosen so the image covers the volume whichever way the plane turns (a small ``size``
    is a quick, coarse view); neither: the finest voxel size, covering the volume.

    ``axes`` (row, column) are the image's down and right directions; they are made
    perpendicular to ``normal`` and kept (a double-oblique MPR turns them with its
    planes). Without them, columns run as close to patient left as the plane allows and
    rows toward the feet.

    Raises
    ------
    VolumeError
        For an unknown mode, a zero normal, or a stack that cannot be resliced.
    """
    if mode not in MODES:
        raise VolumeError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")
    refusal = volume.stack.mpr_refusal
    if refusal:
        raise VolumeError(f"cannot show an oblique view: {refusal}")
    n = np.array(normal, dtype=float)  # a copy: the caller's array stays as it was
    if not (np.all(np.isfinite(n)) and np.linalg.norm(n) > 1e-9):
        raise VolumeError("an oblique plane needs a normal that is not zero (nor infinite)")
    n /= np.linalg.norm(n)
    row, column = _in_plane_axes(n, axes)
    corners = _corners(volume)
    extent = float(np.linalg.norm(corners.max(axis=0) - corners.min(axis=0)))  # any turn
    if spacing is None:
        finest = float(min(np.linalg.norm(volume.affine[:3, :3], axis=0)))
        spacing = max(finest, extent / (size - 1)) if size and size > 1 else finest
    if size is None:
        size = max(2, min(2048, int(np.ceil(extent / spacing)) + 1))
    point = np.asarray(point, float)
    low, high = corners.min(axis=0), corners.max(axis=0)
    if (
        not np.all(np.isfinite(point))
        or np.any(point < low - spacing)
        or np.any(point > high + spacing)
    ):
        box = ", ".join(
            f"{a} {lo:.0f} to {hi:.0f}" for a, lo, hi in zip("xyz", low, high, strict=True)
        )
        where = ", ".join(f"{v:g}" for v in point)
        raise VolumeError(f"the point ({where}) mm is outside the volume ({box} mm)")
    corner = point - (size - 1) / 2 * spacing * (row + column)  # pixel (0, 0) in the plane
    half = 0  # planes each side of this one, ``spacing`` apart along the normal
    if mode != "slice":
        reach = np.abs((corners - point) @ n).max() if slab is None else slab / 2
        half = int(reach / spacing)
    grid = Grid(
        corner - half * spacing * n, row * spacing, column * spacing, n * spacing,
        (2 * half + 1, size, size),
    )  # fmt: skip
    values = _project(volume, resample(volume, grid), mode)
    centre = float(point @ n)
    description = (
        f"oblique {_what(mode, slab or (2 * half + 1) * spacing)} at {centre:.1f} mm along"
        f" ({n[0]:.3f}, {n[1]:.3f}, {n[2]:.3f})"
    )
    return View(
        values, corner, row * spacing, column * spacing, description + tilt_note(volume.stack)
    )


def _in_plane_axes(
    normal: np.ndarray, axes: tuple[ArrayLike, ArrayLike] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Unit (row, column) directions in the plane of ``normal``: ``axes`` made
    perpendicular to it, or columns toward patient left and rows toward the feet."""
    if axes is not None:
        column = np.asarray(axes[1], float)
        column = column - (column @ normal) * normal
        if np.linalg.norm(column) < 1e-6:
            raise VolumeError("the oblique plane's column axis lies along its normal")
        column /= np.linalg.norm(column)
        row = np.cross(normal, column)
        if row @ np.asarray(axes[0], float) < 0:
            row = -row  # the caller's row side, whichever hand the frame is
        return row, column
    helper = np.array([0.0, 0.0, 1.0]) if abs(normal[2]) < 0.9 else np.array([0.0, 1.0, 0.0])
    column = np.cross(helper, normal)
    column /= np.linalg.norm(column)
    if column[0] < 0:
        column = -column
    row = np.cross(normal, column)
    if row[2] > 0:
        row = -row  # rows run down (toward the feet) when they can
    return row, column


def acquired(
    volume: Volume, index: int | None = None, mode: str = "slice", slab: float | None = None
) -> View:
    """A view in the plane the stack was acquired in, exactly as stored (tilted stacks
    too); projections run along the stack."""
    if mode not in MODES:
        raise VolumeError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")
    count = volume.data.shape[0]
    index = count // 2 if index is None else index
    if not 0 <= index < count:
        raise VolumeError(f"no slice {index + 1} (the stack has {count})")
    low, high = _slab_range(mode, index, count, slab, abs(volume.stack.spacing) or 1.0)
    affine = volume.affine
    values = _project(volume, volume.data[low:high], mode)
    what = (
        f"slice {index + 1}/{count}" if mode == "slice" else f"{mode.upper()} {high - low} slices"
    )
    origin = affine[:3, 3] + affine[:3, 2] * index
    return View(values, origin, affine[:3, 1], affine[:3, 0], f"acquired {what}")


def _slab_range(
    mode: str, index: int, planes: int, slab: float | None, step: float
) -> tuple[int, int]:
    """The planes a view reduces over: one for a slice, ``slab`` mm centred on ``index``
    for a projection, or all of them when no slab is given."""
    if mode == "slice":
        return index, index + 1
    if slab is None:
        return 0, planes
    half = max(0, round(slab / step / 2 - 0.5))
    return max(0, index - half), min(planes, index + half + 1)


def _orthogonal_grid(volume: Volume, plane: str) -> Grid:
    """The patient-aligned grid covering the volume, planes stacked along ``plane``'s normal."""
    corners = _corners(volume)
    low, high = corners.min(axis=0), corners.max(axis=0)
    spacing = axis_spacing(volume)
    counts = np.maximum(np.rint((high - low) / spacing).astype(int) + 1, 1)
    high = low + (counts - 1) * spacing  # the far planes on the grid, as the resampled copy has
    x, y, z = np.eye(3) * spacing
    if plane == "axial":  # planes along +z; rows toward P, columns toward L
        return Grid(low, y, x, z, (counts[2], counts[1], counts[0]))
    top = np.array([low[0], low[1], high[2]])
    if plane == "coronal":  # planes along +y; rows toward F, columns toward L
        return Grid(top, -z, x, y, (counts[1], counts[2], counts[0]))
    return Grid(top, -z, y, x, (counts[0], counts[2], counts[1]))  # sagittal: along +x


def _corners(volume: Volume) -> np.ndarray:
    """The patient positions (8, 3) of the volume's corner voxels' centres."""
    affine = volume.affine
    k, j, i = volume.data.shape
    return np.array(
        [affine @ [c, r, s, 1] for c in (0, i - 1) for r in (0, j - 1) for s in (0, k - 1)]
    )[:, :3]


def axis_spacing(volume: Volume) -> np.ndarray:
    """Grid spacing along patient x, y, z: the voxel size along each, when aligned; the
    finest voxel size otherwise."""
    axes = volume.affine[:3, :3]
    sizes = np.linalg.norm(axes, axis=0)
    spacing = np.full(3, float(sizes.min()))
    for a in range(3):
        direction = axes[:, a] / sizes[a]
        p = int(np.argmax(np.abs(direction)))
        if abs(direction[p]) > _ALIGNED:
            spacing[p] = sizes[a]
    return spacing


def aligned_planes(volume: Volume, plane: str) -> np.ndarray | None:
    """The volume on the patient-aligned grid as (planes, rows, columns) for ``plane``: a
    view of the stored data when its axes run along the patient axes, else the resampled
    copy if ``prepare`` made it, else None."""
    zyx = _aligned_zyx(volume)
    if zyx is None:
        zyx = volume.resampled
    if zyx is None:
        return None
    if plane == "axial":
        return zyx
    if plane == "coronal":
        return np.transpose(zyx, (1, 0, 2))[:, ::-1, :]  # (y, -z, x)
    return np.transpose(zyx, (2, 0, 1))[:, ::-1, :]  # (x, -z, y)


def _aligned_zyx(volume: Volume) -> np.ndarray | None:
    """The stored data as a (z, y, x) view, or None for an oblique volume."""
    axes = volume.affine[:3, :3]
    order = [0, 0, 0]  # data axis (slice=0, row=1, column=2) for patient x, y, z
    flip = [False, False, False]
    for data_axis, voxel_axis in ((2, 0), (1, 1), (0, 2)):
        direction = axes[:, voxel_axis] / np.linalg.norm(axes[:, voxel_axis])
        p = int(np.argmax(np.abs(direction)))
        if abs(direction[p]) < _ALIGNED:
            return None
        order[p] = data_axis
        flip[p] = direction[p] < 0
    if sorted(order) != [0, 1, 2]:
        return None
    zyx = np.transpose(volume.data, (order[2], order[1], order[0]))
    return zyx[
        slice(None, None, -1 if flip[2] else 1),
        slice(None, None, -1 if flip[1] else 1),
        slice(None, None, -1 if flip[0] else 1),
    ]


def is_oblique(affine: np.ndarray) -> bool:
    """Do a stack's voxel axes (its 4x4 affine) leave the patient axes? Then projections
    in patient planes need :func:`prepare` (known before loading the volume)."""
    axes = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    return bool(np.abs(axes).max(axis=0).min() < _ALIGNED)


def prepare(volume: Volume) -> np.ndarray | None:
    """The volume on the patient-aligned (z, y, x) grid, resampling an oblique one once
    and keeping the copy on the volume (the app calls this in the background after a
    load, so projections and slices in every plane are cut by indexing).

    Thread-safe: a second caller waits for the first one's copy. Returns None for a
    volume that cannot be resliced or whose copy would pass ``RESAMPLED_MAX_BYTES``.
    """
    aligned = _aligned_zyx(volume)
    if aligned is not None or volume.stack.mpr_refusal:
        return aligned
    with volume.lock:
        if volume.resampled is None:
            grid = _orthogonal_grid(volume, "axial")
            dtype = volume.data.dtype if volume.data.dtype.kind in "iu" else np.float32
            if int(np.prod(grid.shape)) * np.dtype(dtype).itemsize > RESAMPLED_MAX_BYTES:
                return None
            volume.resampled = resample(volume, grid)
        return volume.resampled


def resample(volume: Volume, grid: Grid, threads: int = 2) -> np.ndarray:
    """Trilinear samples of the volume at every point of ``grid``, in the stored type
    (integers rounded), ``volume.minimum`` outside.

    One plane at a time (its arrays stay in the CPU cache: twice as fast as larger
    chunks), and only at the points inside the volume: along each grid row they form
    one run, found from the affine, so the half of the bounding grid that lies outside
    an oblique volume costs nothing. ``threads`` take every ``threads``-th plane each
    (numpy releases the GIL in these loops, so two cores nearly halve the time).
    """
    data = volume.data
    out = np.empty(grid.shape, data.dtype if data.dtype.kind in "iu" else np.float32)
    threads = max(1, min(threads, os.cpu_count() or 1, int(grid.shape[0])))
    if threads == 1:
        _resample_planes(volume, grid, out, range(int(grid.shape[0])))
        return out
    with ThreadPoolExecutor(threads, thread_name_prefix="resample") as pool:
        shares = [range(first, int(grid.shape[0]), threads) for first in range(threads)]
        for done in [pool.submit(_resample_planes, volume, grid, out, share) for share in shares]:
            done.result()  # an error in a thread is raised here
    return out


def _resample_planes(volume: Volume, grid: Grid, out: np.ndarray, planes: range) -> None:
    """:func:`resample` for the ``planes`` of ``grid`` (indices along its normal) into ``out``.

    Each plane is filled here, not all of ``out`` at once: its first touch of fresh memory
    (page faults) then runs in every thread, and the plane stays in the cache for its values.
    """
    data = volume.data
    integer = data.dtype.kind in "iu"
    _, rows, columns = grid.shape
    inverse = np.linalg.inv(volume.affine)
    origin = inverse[:3, :3] @ grid.origin + inverse[:3, 3]  # voxel (i, j, k) of point 0
    along = [inverse[:3, :3] @ step for step in (grid.normal_step, grid.row_step)]
    across = inverse[:3, :3] @ grid.column_step
    sizes = (data.shape[2], data.shape[1], data.shape[0])  # along i, j, k
    flat = data.reshape(-1)
    strides = (1, sizes[0], sizes[0] * sizes[1])
    corners = [flat[dk * strides[2] + dj * strides[1] + di :] for dk in (0, 1) for dj in (0, 1)
               for di in (0, 1)]  # fmt: skip
    column = np.arange(columns)
    rows_at = np.arange(rows, dtype=float)
    for k in planes:
        out[k].fill(volume.minimum)
        start_points = origin + along[0] * k + along[1] * rows_at[:, None]  # (rows, 3)
        start, stop = _inside_runs(start_points, across, sizes, columns)
        length = np.maximum(stop - start, 0)
        total = int(length.sum())
        if not total:
            continue
        first = np.cumsum(length) - length
        where = np.arange(total, dtype=np.float32)  # each point's column
        where += np.repeat((start - first).astype(np.float32), length)
        index: np.ndarray | None = None
        fractions = []
        for axis in range(3):
            coordinate = np.repeat(start_points[:, axis].astype(np.float32), length)
            coordinate += np.float32(across[axis]) * where
            base = np.floor(coordinate)
            np.clip(base, 0, sizes[axis] - 2, out=base)
            coordinate -= base  # the fraction (0 to 1) past the lower neighbour
            fractions.append(coordinate)
            part = base.astype(np.intp)
            if axis:
                part *= strides[axis]
            index = part if index is None else index + part
        assert index is not None
        fi, fj, fk = fractions
        g = [np.take(corner, index) for corner in corners]
        value = _lerp(
            _lerp(_lerp(g[0], g[1], fi), _lerp(g[2], g[3], fi), fj),
            _lerp(_lerp(g[4], g[5], fi), _lerp(g[6], g[7], fi), fj),
            fk,
        )
        if integer:
            np.rint(value, out=value)
        inside = (column >= start[:, None]) & (column < stop[:, None])
        out[k][inside] = value


def _inside_runs(
    points: np.ndarray, across: np.ndarray, sizes: tuple[int, int, int], columns: int
) -> tuple[np.ndarray, np.ndarray]:
    """For rows starting at voxel coordinates ``points`` and stepping ``across`` per
    column: the columns [start, stop) whose samples lie inside the volume."""
    low = np.zeros(len(points))
    high = np.full(len(points), columns - 1.0)
    for axis in range(3):
        at, step, last = points[:, axis], across[axis], sizes[axis] - 1
        if abs(step) > 1e-12:
            one, other = -at / step, (last - at) / step
            low = np.maximum(low, np.minimum(one, other))
            high = np.minimum(high, np.maximum(one, other))
        else:
            high = np.where((at < 0) | (at > last), -1.0, high)
    return np.ceil(low).astype(np.intp), np.floor(high).astype(np.intp) + 1


def _lerp(a: np.ndarray, b: np.ndarray, fraction: np.ndarray) -> np.ndarray:
    """``a + (b - a) * fraction`` in float32 with one temporary (stored integers too)."""
    out = np.subtract(b, a, dtype=np.float32)
    out *= fraction
    out += a
    return out


def _project(volume: Volume, stored: np.ndarray, mode: str) -> np.ndarray:
    """Reduce planes of stored values, then rescale (max commutes with a positive slope)."""
    if mode == "slice" or stored.shape[0] == 1:
        return volume.values(stored[0])
    flipped = volume.slope < 0
    if mode == "avg":
        return volume.values(stored.mean(axis=0, dtype=np.float32))
    use_max = (mode == "mip") != flipped
    return volume.values(stored.max(axis=0) if use_max else stored.min(axis=0))


def _project_sampled(volume: Volume, grid: Grid, low: int, high: int, mode: str) -> np.ndarray:
    _, rows, columns = grid.shape
    inverse = np.linalg.inv(volume.affine)
    r, c = np.mgrid[0:rows, 0:columns].astype(np.float32)
    out: np.ndarray | None = None
    for k in range(low, high):
        origin = grid.origin + k * grid.normal_step
        points = (
            origin[:, None, None]
            + grid.row_step[:, None, None] * r
            + grid.column_step[:, None, None] * c
        )
        voxel = np.tensordot(inverse[:3, :3], points, axes=1) + inverse[:3, 3, None, None]
        plane = sample(volume.data, voxel[2], voxel[1], voxel[0], volume.minimum)
        if out is None:
            out = plane if mode != "avg" else plane.astype(np.float32)
        elif mode == "mip":
            np.maximum(out, plane, out=out)
        elif mode == "minip":
            np.minimum(out, plane, out=out)
        else:
            out += plane
    assert out is not None
    if mode == "avg":
        out /= high - low
    return volume.values(out)


def sample(
    data: np.ndarray, k: np.ndarray, j: np.ndarray, i: np.ndarray, outside: float
) -> np.ndarray:
    """Trilinear interpolation of ``data[k, j, i]`` at fractional indices; ``outside`` the
    volume (the volume's minimum: air, background)."""
    shape = np.array(data.shape)
    coords = [np.asarray(a, np.float32) for a in (k, j, i)]
    inside = np.ones(coords[0].shape, bool)
    for axis, a in enumerate(coords):
        inside &= (a >= 0) & (a <= shape[axis] - 1)
    base = [
        np.clip(np.floor(a), 0, max(n - 2, 0)).astype(np.intp)
        for a, n in zip(coords, shape, strict=True)
    ]
    frac = [np.clip(a - b, 0, 1).astype(np.float32) for a, b in zip(coords, base, strict=True)]
    flat = data.reshape(-1)
    strides = (shape[1] * shape[2], shape[2], 1)
    index = base[0] * strides[0] + base[1] * strides[1] + base[2] * strides[2]
    out = np.zeros(coords[0].shape, np.float32)
    for dk in (0, 1):
        wk = frac[0] if dk else 1 - frac[0]
        for dj in (0, 1):
            wj = frac[1] if dj else 1 - frac[1]
            for di in (0, 1):
                wi = frac[2] if di else 1 - frac[2]
                offset = (
                    (dk * strides[0] if shape[0] > 1 else 0)
                    + (dj * strides[1] if shape[1] > 1 else 0)
                    + (di if shape[2] > 1 else 0)
                )
                out += wk * wj * wi * flat[index + offset]
    out[~inside] = outside
    return out
