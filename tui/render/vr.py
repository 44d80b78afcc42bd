"""Volume rendering: ray casting of a loaded volume, and shaded MIP, from any direction.

The camera is orthographic and looks at the centre of the volume's bounding box (patient
LPS mm). Azimuth 0, elevation 0 sees the patient from the front (image right = patient
left, up = head, as the coronal view); azimuth turns the camera about the head-foot axis
toward the patient's left (90: from the left, as the sagittal view); elevation raises it
toward the head (+90: from above; -90: from the feet, as the axial view). At zoom 1 the
image's shorter side spans the bounding box's diagonal.

Rays are cast in voxel index space through the inverse of the volume's affine, so any
orientation renders without a resampled copy (oblique, gantry-tilted: the shear is in
the affine). Along each ray, samples every ``step`` mm (about half a pixel, not finer
than the smallest voxel) are interpolated trilinearly, classified by the transfer
function (opacity of 1 mm, corrected to the step: ``1 - (1 - opacity) ** step``), lit
by Phong shading with a headlight (normal: the gradient by central differences, two-
sided) and composited front to back until the ray is 99 % opaque. Blocks of 8 voxels
that the transfer function leaves clear are skipped unsampled. A shaded MIP keeps each
ray's maximum, windowed to grey, and lights it by the normal of the structure holding it,
taken where the ray enters that structure (the gradient at the maximum itself is noise).

Each ray starts at a fixed, per-pixel pseudo-random place within its pixel and its
first step (interleaved gradient noise): regular rays alias with the voxel grid's
staircase on smooth surfaces into rings (wood grain); jittered ones leave a fine grain,
and the same request still gives the same image. A small picture (below 128 x 128
pixels, e.g. a terminal pane of half blocks) casts 2 x 2 rays a pixel and averages them,
where a single ray's grain would be the size of a pixel.

The loops are compiled (``raycast_kernel``, numba; imported on the first render, so
importing this module stays cheap) and run on two threads, a band of a few rows at a
time so a superseded frame stops within milliseconds. Memory beyond the volume: the
image and a few tables per volume (block ranges, transfer tables: a few MB).
"""

from __future__ import annotations

import itertools
import math
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from tui.render.lut import Window, apply_window, auto_window
from tui.render.transfer import Transfer
from tui.render.volume import Volume, VolumeError

MODES = ("vr", "smip")
THREADS = 2  # threads per frame, each taking the next band of rows
_BAND_RAYS = 1024  # rays per band (4 rows of 256): cancel is checked between bands
_TERMINATE = 0.99  # a ray stops at this opacity
_SUPERSAMPLE_BELOW = 128 * 128  # pixels: smaller pictures cast 2 x 2 rays a pixel
_RAN = threading.Event()  # set once the compiled loops have rendered a frame (loaded())


@dataclass(frozen=True)
class Camera:
    """Where the camera looks from: degrees about the head-foot axis toward the patient's
    left, degrees up toward the head, and magnification."""

    azimuth: float = 0.0
    elevation: float = 0.0
    zoom: float = 1.0


@dataclass
class Picture:
    """A rendered image with its orientation in the patient."""

    image: np.ndarray  # uint8 (rows, columns, 3)
    right: np.ndarray  # patient unit vector toward image right
    down: np.ndarray  # patient unit vector toward image bottom
    pixel_mm: float  # size of one (square) pixel in mm
    description: str  # e.g. "VR bone, azimuth 30°, elevation 15°"


def camera_axes(camera: Camera) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(forward, right, down) patient unit vectors of ``camera``: the view direction, and
    the image's right and down (right = forward x up)."""
    a, e = math.radians(camera.azimuth), math.radians(camera.elevation)
    level = np.array([-math.sin(a), math.cos(a), 0.0])  # the view direction at elevation 0
    head = np.array([0.0, 0.0, 1.0])
    forward = math.cos(e) * level - math.sin(e) * head
    up = math.cos(e) * head + math.sin(e) * level
    right = np.cross(forward, up)
    return forward, right / np.linalg.norm(right), -up


@dataclass(frozen=True)
class _Rays:
    """The rays of one frame in voxel indices: pixel (row, column)'s sample t is at
    ``origin + column * across + row * along + t * step``."""

    origin: np.ndarray
    across: np.ndarray
    along: np.ndarray
    step: np.ndarray
    samples: int  # per ray, from the front of the bounding sphere to its back
    step_mm: float
    shape: tuple[int, int]  # (rows, columns) cast
    pixel_mm: float  # of the cast pixels

    def packed(self) -> np.ndarray:
        return np.array([self.origin, self.across, self.along, self.step], dtype=np.float64)


def _rays(
    shape: tuple[int, ...], affine: np.ndarray, camera: Camera, size: tuple[int, int],
    coarse: bool,
) -> _Rays:  # fmt: skip
    forward, right, down = camera_axes(camera)
    k, j, i = shape
    corners = np.array(
        [affine @ [c, r, s, 1] for c in (0, i - 1) for r in (0, j - 1) for s in (0, k - 1)]
    )[:, :3]
    low, high = corners.min(axis=0), corners.max(axis=0)
    centre, diagonal = (low + high) / 2, float(np.linalg.norm(high - low))
    width, height = size
    pixel = diagonal / max(camera.zoom, 1e-6) / min(width, height)
    voxel = float(np.linalg.norm(affine[:3, :3], axis=0).min())
    step = max(pixel / 2, voxel)
    start = centre - diagonal / 2 * forward
    start = start - (width - 1) / 2 * pixel * right - (height - 1) / 2 * pixel * down
    if coarse:  # half the rays each way, twice the step: an eighth of the samples
        start = start + pixel / 2 * (right + down)  # the centre of each 2 x 2 block
        pixel, step = 2 * pixel, 2 * step
        width, height = -(-width // 2), -(-height // 2)
    inverse = np.linalg.inv(affine)
    turn = inverse[:3, :3]
    return _Rays(
        origin=turn @ start + inverse[:3, 3],
        across=turn @ (right * pixel),
        along=turn @ (down * pixel),
        step=turn @ (forward * step),
        samples=int(diagonal / step) + 2,
        step_mm=step,
        shape=(height, width),
        pixel_mm=pixel,
    )


@dataclass
class _Tables:
    """What a volume's frames share: each block's lowest and highest stored value, and
    the transfer functions' tables (a few, the latest kept)."""

    data: weakref.ref[np.ndarray]
    low: np.ndarray
    high: np.ndarray
    lookups: dict[tuple[Transfer, float], tuple[np.ndarray, float, float]]
    clear: dict[Transfer, np.ndarray]


# Per volume's data, from its first render; weakly held, so a volume dropped from the
# cache takes its tables with it.
_TABLES: dict[int, _Tables] = {}
_TABLES_LOCK = threading.Lock()
_KEEP = 4  # transfer tables kept per volume (presets flipped through, full and coarse)
_Key = TypeVar("_Key")
_Value = TypeVar("_Value")


def _tables(kernel: Any, data: np.ndarray, cancel: threading.Event | None) -> _Tables:
    with _TABLES_LOCK:
        for key in [key for key, entry in _TABLES.items() if entry.data() is None]:
            del _TABLES[key]
        held = _TABLES.get(id(data))
        if held is not None and held.data() is data:
            return held
        shape = kernel.block_shape(data.shape)
        low, high = np.empty(shape), np.empty(shape)
        slabs = [np.array([k], np.int64) for k in range(shape[0])]
        _share(lambda part: kernel.block_range(data, part, low, high), slabs, cancel)
        held = _TABLES[id(data)] = _Tables(weakref.ref(data), low, high, {}, {})
        return held


def _classified(
    tables: _Tables, data: np.ndarray, slope: float, intercept: float, transfer: Transfer,
    step_mm: float,
) -> tuple[np.ndarray, float, float, np.ndarray]:  # fmt: skip
    """The lookup table (see :func:`_lookup`) and the clear blocks, made once per volume,
    transfer and step (the clear blocks do not depend on the step)."""
    with _TABLES_LOCK:
        lookup = tables.lookups.get((transfer, step_mm))
        empty = tables.clear.get(transfer)
    if lookup is None:
        lookup = _lookup(data, slope, intercept, transfer, step_mm, tables.low, tables.high)
    if empty is None:
        empty = _clear_blocks(lookup[0][:, 0], lookup[1], lookup[2], tables.low, tables.high)
    with _TABLES_LOCK:
        _remember(tables.lookups, (transfer, step_mm), lookup)
        _remember(tables.clear, transfer, empty)
    return lookup[0], lookup[1], lookup[2], empty


def _remember(cache: dict[_Key, _Value], key: _Key, value: _Value) -> None:
    """Put ``key`` last in ``cache`` (insertion order: the oldest first), dropping the
    oldest beyond ``_KEEP``."""
    cache.pop(key, None)
    cache[key] = value
    while len(cache) > _KEEP:
        del cache[next(iter(cache))]


def _check(volume: Volume, mode: str, size: tuple[int, int]) -> None:
    if mode not in MODES:
        raise VolumeError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")
    if min(size) < 1:
        raise VolumeError(f"cannot render {size[0]} x {size[1]} pixels")
    if min(volume.data.shape) < 2:
        raise VolumeError("volume rendering needs at least two slices, rows and columns")
    if abs(np.linalg.det(volume.affine[:3, :3])) < 1e-9:
        raise VolumeError(
            "the slices share one position (a cine or time series, not a volume): nothing"
            " to render in 3D"
        )


def render_volume(
    volume: Volume,
    transfer: Transfer,
    camera: Camera,
    size: tuple[int, int] = (256, 256),
    coarse: bool = False,
    mode: str = "vr",
    window: Window | None = None,
    cancel: threading.Event | None = None,
) -> Picture:
    """Render ``volume`` through ``transfer`` (mode ``vr``) or as a shaded MIP (``smip``,
    grey through ``window``, default automatic) seen by ``camera``, ``size`` = (width,
    height) pixels. ``coarse``: a quick frame (half the rays each way, a longer step),
    the same size.

    Raises
    ------
    VolumeError
        For an unknown mode, a volume with no depth, or when ``cancel`` is set
        ("rendering cancelled"; it is checked between bands of a few rows).
    """
    _check(volume, mode, size)
    return _render(
        volume.data, volume.affine, volume.slope, volume.intercept, transfer, camera, size,
        coarse, mode, window, cancel,
    )  # fmt: skip


def _render(
    data: np.ndarray, affine: np.ndarray, slope: float, intercept: float, transfer: Transfer,
    camera: Camera, size: tuple[int, int], coarse: bool, mode: str, window: Window | None,
    cancel: threading.Event | None,
) -> Picture:  # fmt: skip
    from tui.render import raycast_kernel as kernel  # numba: loaded on the first render

    forward, right, down = camera_axes(camera)
    # A small picture (a terminal pane) is four rays a pixel, averaged: one ray's grain is
    # the size of a pixel there, and the frame still costs less than a 256 x 256 one.
    fine = 1 if coarse or size[0] * size[1] >= _SUPERSAMPLE_BELOW else 2
    rays = _rays(data.shape, affine, camera, (size[0] * fine, size[1] * fine), coarse)
    tables = _tables(kernel, data, cancel)
    inverse = np.linalg.inv(affine)[:3, :3]
    to_patient = np.ascontiguousarray(inverse.T)
    shading = np.array(
        [transfer.ambient, transfer.diffuse, transfer.specular, transfer.shininess], np.float64
    )
    height, width = rays.shape
    packed = rays.packed()
    bands = _bands(height, width)
    if mode == "vr":
        lut, lut_low, lut_scale, empty = _classified(
            tables, data, slope, intercept, transfer, rays.step_mm
        )
        rgb = np.zeros((height, width, 3), np.float32)
        _share(
            lambda rows: kernel.composite(
                data, rows, packed, rays.samples, empty, lut, lut_low, lut_scale, to_patient,
                forward, shading, slope, rgb,
            ),
            bands,
            cancel,
        )  # fmt: skip
        image = np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)
        what = f"VR {transfer.name}"
    else:
        if window is None:
            window = _auto_window(data, slope, intercept)
        floor = ((window.center - window.width / 2) - intercept) / (slope or 1.0)
        highest = np.zeros((height, width), np.float64)
        light = np.zeros((height, width), np.float32)
        _share(
            lambda rows: kernel.maximum(
                data, rows, packed, rays.samples, tables.high, to_patient, forward, shading,
                slope, floor, highest, light,
            ),
            bands,
            cancel,
        )  # fmt: skip
        image = _shaded_grey(slope, intercept, highest, light, window)
        what = "shaded MIP"
    if coarse:
        image = image.repeat(2, axis=0).repeat(2, axis=1)[: size[1], : size[0]]
    if fine > 1:
        blocks = image.reshape(size[1], fine, size[0], fine, 3).astype(np.float32)
        image = np.rint(blocks.mean(axis=(1, 3))).astype(np.uint8)
    _RAN.set()
    view = f"{what}, azimuth {_degrees(camera.azimuth % 360) % 360:g}°"
    view += f", elevation {_degrees(camera.elevation):g}°"
    zoom = round(camera.zoom, 2) + 0.0  # "zoom 1.5", not the 1.50000001 of many key presses
    if zoom != 1:
        view += f", zoom {zoom:g}"
    pixel_mm = rays.pixel_mm * fine / (2 if coarse else 1)
    return Picture(np.ascontiguousarray(image), right, down, pixel_mm, view)


def _degrees(angle: float) -> float:
    """``angle`` to a tenth of a degree, for reading (no "-0", no "29.9999999")."""
    return round(angle, 1) + 0.0


def _bands(height: int, width: int) -> list[np.ndarray]:
    """The image's rows in bands of about ``_BAND_RAYS`` rays (a few milliseconds of work:
    cancel is checked between bands, and idle threads take the next band)."""
    rows = max(1, _BAND_RAYS // max(width, 1))
    return [
        np.arange(first, min(first + rows, height), dtype=np.int64)
        for first in range(0, height, rows)
    ]


def _share(
    work: Callable[[np.ndarray], object], parts: list[np.ndarray], cancel: threading.Event | None
) -> None:
    """Run ``work`` on every part, on ``THREADS`` threads (this one and short-lived
    helpers) that take the next part as they finish one; ``cancel`` is checked before
    each part.

    Plain Python threads calling the compiled loops, which release the GIL: a waiting
    thread sleeps rather than spins (an OpenMP pool's idle threads spin, which doubled
    the CPU time and the wall time whenever the other core was busy), a thread that the
    system sets aside holds back only its current part, and the loops compile in half
    the time of parallel ones. The helper threads end with the frame.
    """
    claimed = itertools.count()  # next() is atomic under the GIL
    stop = threading.Event()
    failed: list[BaseException] = []

    def take() -> None:
        while not stop.is_set():
            n = next(claimed)
            if n >= len(parts):
                return
            if cancel is not None and cancel.is_set():
                raise VolumeError("rendering cancelled")
            work(parts[n])

    def helper() -> None:
        try:
            take()
        except BaseException as error:  # handed to the caller
            failed.append(error)
            stop.set()

    helpers = [
        threading.Thread(target=helper, name="vr-helper", daemon=True)
        for _ in range(min(THREADS, len(parts)) - 1)
    ]
    for thread in helpers:
        thread.start()
    try:
        take()
    finally:
        stop.set()
        for thread in helpers:
            thread.join()
    if failed:
        raise failed[0]


def _lookup(
    data: np.ndarray, slope: float, intercept: float, transfer: Transfer, step_mm: float,
    low: np.ndarray, high: np.ndarray,
) -> tuple[np.ndarray, float, float]:  # fmt: skip
    """The transfer function over the volume's stored values: (entries, 4) of the step's
    alpha and r, g, b, with the stored value of entry 0 and entries per stored unit."""
    lowest, highest = float(low.min()), float(high.max())
    span = max(highest - lowest, 1e-6)
    integer = data.dtype.kind in "iu"
    entries = int(span) + 1 if integer and span < 65536 else 4096
    scale = (entries - 1) / span if entries > 1 else 1.0
    stored = lowest + np.arange(entries) / scale
    opacity, rgb = transfer.classify(stored * slope + intercept)
    alpha = 1.0 - (1.0 - np.clip(opacity, 0.0, 1.0)) ** step_mm
    table = np.empty((entries, 4), np.float32)
    table[:, 0], table[:, 1:] = alpha, rgb
    return table, lowest, scale


def _clear_blocks(
    alpha: np.ndarray, lut_low: float, scale: float, low: np.ndarray, high: np.ndarray
) -> np.ndarray:
    """True for the blocks whose every value is clear (alpha 0 over their range)."""
    seen = np.concatenate([[0], np.cumsum(alpha > 0)])
    last = len(alpha) - 1
    first = np.clip(np.rint((low - lut_low) * scale), 0, last).astype(np.intp)
    final = np.clip(np.rint((high - lut_low) * scale), 0, last).astype(np.intp)
    return np.asarray(seen[final + 1] == seen[first])


def _auto_window(data: np.ndarray, slope: float, intercept: float) -> Window:
    """The automatic window of the volume's modality values (from about a million voxels)."""
    flat = data.reshape(-1)
    sample = flat[:: max(1, flat.size // 1_000_000)].astype(np.float32)
    return auto_window(sample * np.float32(slope) + np.float32(intercept))


def _shaded_grey(
    slope: float, intercept: float, highest: np.ndarray, light: np.ndarray, window: Window
) -> np.ndarray:
    """The rays' maxima windowed to grey and lit; black where a ray missed the volume."""
    missed = np.isnan(highest)
    values = np.where(missed, 0.0, highest) * slope + intercept
    grey = apply_window(values.astype(np.float32), window).astype(np.float32) * light
    grey[missed] = 0
    image = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
    return np.repeat(image[:, :, None], 3, axis=2)


def loaded() -> bool:
    """Has the compiled renderer run in this process? True from the end of the first
    rendering (or :func:`warm_up`) that ran the compiled loops, never before: importing
    them is not enough (numba compiles or loads its cached code on the first call). Until
    then the next rendering first loads them: about a second, or half a minute where they
    were never compiled on this machine."""
    return _RAN.is_set()


def warm_up() -> float:
    """Compile the loops for each data type volumes come in (int16, uint16, float32,
    uint8) on a tiny volume, so the first real render does not wait for it; seconds taken.

    The first time on a machine this takes about 25 s (numba compiles, then caches the
    code on disk); afterwards 1 to 2 s (loading numba and the cached code).
    """
    started = time.perf_counter()
    white = (1.0, 1.0, 1.0)
    transfer = Transfer("warm-up", ((0.0, 0.0, *white), (1.0, 1.0, *white)))
    for dtype in (np.int16, np.uint16, np.float32, np.uint8):
        data = np.zeros((4, 4, 4), dtype)
        data[1:3, 1:3, 1:3] = 1
        for mode in MODES:
            _render(data, np.eye(4), 1.0, 0.0, transfer, Camera(), (4, 4), False, mode, None, None)
    return time.perf_counter() - started


def rotation(
    volume: Volume,
    transfer: Transfer,
    frames: int = 36,
    elevation: float = 0.0,
    size: tuple[int, int] = (256, 256),
    mode: str = "vr",
    window: Window | None = None,
) -> list[Picture]:
    """``frames`` pictures turning once round the head-foot axis (azimuth 0 to 360)."""
    return [
        render_volume(
            volume, transfer, Camera(360 * n / frames, elevation), size, mode=mode, window=window
        )
        for n in range(frames)
    ]
