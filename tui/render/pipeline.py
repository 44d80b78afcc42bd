"""From a series and what the user asked for to an 8-bit image with its geometry.

The CLI's ``render`` and ``export`` and the app's viewer all come through here, so
they show the same pixels.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from pydicom.dataset import Dataset

from tui.render.decode import DecodeError, display_header, read_frame
from tui.render.lut import (
    Window,
    auto_window,
    file_windows,
    modality_values,
    to_display,
    values_to_display,
)
from tui.render.presets import find_preset
from tui.render.views import (
    MODES,
    PLANES,
    View,
    acquired,
    letters,
    oblique,
    orthogonal,
    orthogonal_count,
    tilt_note,
    volume_centre,
)
from tui.render.volume import Progress, Slice, Stack, Volume, VolumeCache, VolumeError, load
from tui.tables import printable

if TYPE_CHECKING:
    from tui.render.transfer import Transfer

PLANE_CHOICES = (*PLANES, "acquired")
VR_MODES = ("vr", "smip")  # volume rendering and shaded MIP (tui.render.vr)


@dataclass(frozen=True)
class Request:
    """What to show. ``plane`` None means acquired for a slice, axial for a projection."""

    stack: int = 0
    mode: str = "slice"
    plane: str | None = None
    index: int | None = None
    position: float | None = None
    slab: float | None = None
    window: Window | None = None
    preset: str | None = None
    file_window: int | None = None  # the file's own window number (0-based)
    invert: bool = False
    # Volume rendering (mode "vr", with ``preset`` a transfer preset; or "smip"): the
    # camera, and ``coarse`` for the quick first frame of a progressive redraw.
    azimuth: float = 0.0
    elevation: float = 0.0
    zoom: float = 1.0
    coarse: bool = False
    # VR output (width, height); for an oblique plane, the pixels across the volume.
    size: tuple[int, int] | None = None
    # An oblique plane through ``point`` across ``normal`` (patient mm), with the image's
    # (row, column) directions if given: ``mode`` and ``slab`` apply as in other planes.
    normal: tuple[float, float, float] | None = None
    point: tuple[float, float, float] | None = None
    axes: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None
    over_time: bool = False  # the maximum over the series' time points (``time_points``)


@dataclass
class Rendered:
    """An 8-bit image (grey or RGB) and what it shows."""

    image: np.ndarray
    view: View | None  # geometry, labels and values; None for colour frames and VR
    window: Window | None
    header: Dataset
    description: str
    labels: dict[str, str] = field(default_factory=dict)  # orientation letters by edge

    def __post_init__(self) -> None:
        if not self.labels and self.view is not None:
            self.labels = self.view.labels


def pick_stack(stacks: list[Stack], number: int) -> Stack:
    if not stacks:
        raise VolumeError("the series has no images")
    if not 0 <= number < len(stacks):
        if len(stacks) > 6:  # time points: say how many, not each one
            sizes = sorted({len(s.slices) for s in stacks})
            each = " or ".join(str(n) for n in sizes[:3])
            listing = f"{len(stacks)} stacks, 0 to {len(stacks) - 1}, of {each} slices"
        else:
            listing = "; ".join(
                f"{n}: {len(s.slices)} slices {s.label}".strip() for n, s in enumerate(stacks)
            )
        raise VolumeError(f"no stack {number}: the series has {listing}")
    return stacks[number]


def render(
    stack: Stack,
    request: Request,
    presets: dict[str, dict[str, Window]],
    cache: VolumeCache | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    time_points: Sequence[Stack] = (),
    transfers: dict[str, dict[str, Transfer]] | None = None,
) -> Rendered:
    """Render ``request`` from ``stack``; a single acquired slice reads only its frame.

    A volume that must be loaded first reports ``progress`` and stops on ``cancel``.
    ``time_points`` are the stacks a MIP over time reduces (see :func:`time_points`);
    ``transfers`` the volume rendering presets (default: the shipped ones).
    """
    if request.mode in VR_MODES:
        return _volume_rendering(stack, request, presets, transfers, cache, progress, cancel)
    if request.mode not in MODES:
        modes = ", ".join((*MODES, *VR_MODES))
        raise VolumeError(f"unknown mode {request.mode!r}: choose one of {modes}")
    plane = _plane(request)
    if plane not in (*PLANE_CHOICES, "oblique"):
        raise VolumeError(f"unknown plane {plane!r}: choose one of {', '.join(PLANE_CHOICES)}")
    if request.over_time:
        if len(time_points) < 2:
            raise VolumeError("the series has one time point: no MIP over time")
        return _over_time(time_points, request, presets, cache, progress, cancel)
    if plane == "acquired" and request.mode == "slice":
        return _one_slice(stack, request, presets)
    volume = volume_of(stack, cache, progress, cancel)
    view = _view(volume, plane, request)
    if request.mode == "slice":
        default: Callable[[], Window] = lambda: series_window(stack)  # noqa: E731
    else:
        default = lambda: projection_window(volume, plane, request)  # noqa: E731
    window = _window(volume.header, request, presets, stack.slices[0].window, default)
    image = values_to_display(view.values, volume.header, window, request.invert)
    return Rendered(image, view, window, volume.header, view.description)


def _plane(request: Request) -> str:
    if request.normal is not None:
        return "oblique"
    return request.plane or ("acquired" if request.mode == "slice" else "axial")


def _view(volume: Volume, plane: str, request: Request) -> View:
    if plane == "oblique":
        assert request.normal is not None
        point = request.point if request.point is not None else volume_centre(volume)
        size = max(request.size) if request.size else None
        return oblique(
            volume, np.asarray(point, float), np.asarray(request.normal, float), size,
            mode=request.mode, slab=request.slab, axes=request.axes,
        )  # fmt: skip
    if plane == "acquired":
        return acquired(volume, request.index, request.mode, request.slab)
    return orthogonal(volume, plane, request.mode, request.position, request.index, request.slab)


def time_points(stacks: list[Stack], number: int) -> list[Stack]:
    """The stacks at the same places as stack ``number``: the time points of a 4D series
    (fMRI, perfusion, cardiac phases), in time order (one stack: no time)."""
    chosen = pick_stack(stacks, number)
    same = [
        s for s in stacks
        if s.shape == chosen.shape and np.allclose(s.affine, chosen.affine, atol=0.01)
    ]  # fmt: skip
    return sorted(same, key=lambda s: s.slices[0].temporal)  # stable: else as assembled


def _over_time(
    stacks: Sequence[Stack],
    request: Request,
    presets: dict[str, dict[str, Window]],
    cache: VolumeCache | None,
    progress: Progress | None,
    cancel: threading.Event | None,
) -> Rendered:
    """The maximum of one view over every time point (where contrast arrives, what moves)."""
    # Each time point's values only: a fixed window skips working one out per stack.
    one = replace(request, over_time=False, window=Window(0, 1), preset=None, file_window=None)
    views: list[View] = []
    header: Dataset | None = None
    for stack in stacks:
        rendered = render(stack, one, presets, cache, progress, cancel)
        if rendered.view is None:
            raise VolumeError("a MIP over time needs grey images")
        if views and rendered.view.values.shape != views[0].values.shape:
            raise VolumeError("the time points differ in size: no MIP over time")
        views.append(rendered.view)
        header = header or rendered.header
    assert header is not None
    values = np.maximum.reduce([v.values for v in views])
    first = views[0]
    view = replace(
        first, values=values, description=f"time MIP of {len(views)}, {first.description}"
    )
    window = _window(
        header, request, presets, None,
        lambda: replace(auto_window(values), name="time MIP"),
    )  # fmt: skip
    image = values_to_display(values, header, window, request.invert)
    return Rendered(image, view, window, header, view.description)


def _volume_rendering(
    stack: Stack,
    request: Request,
    presets: dict[str, dict[str, Window]],
    transfers: dict[str, dict[str, Transfer]] | None,
    cache: VolumeCache | None,
    progress: Progress | None,
    cancel: threading.Event | None,
) -> Rendered:
    """A volume rendering (``vr``, coloured by a transfer preset) or a shaded MIP (``smip``,
    greyed by a window) seen by the request's camera."""
    from tui.render import vr  # its kernel is loaded only when a volume is rendered
    from tui.render.transfer import find_transfer, load_transfers

    if request.over_time:
        raise VolumeError("a MIP over time is for slices and projections, not volume rendering")
    volume = volume_of(stack, cache, progress, cancel)
    modality = str(volume.header.get("Modality", ""))
    transfers = transfers if transfers is not None else load_transfers()
    window = None
    if request.mode == "vr":
        transfer = find_transfer(transfers, modality, request.preset)
    else:
        transfer = find_transfer(transfers, modality, None)  # its shading only
        mip = Request(mode="mip", plane="coronal")
        window = _window(
            volume.header, request, presets, None,
            lambda: projection_window(volume, "coronal", mip),
        )  # fmt: skip
    camera = vr.Camera(request.azimuth, request.elevation, request.zoom)
    picture = vr.render_volume(
        volume, transfer, camera, request.size or (256, 256), request.coarse, request.mode,
        window, cancel,
    )  # fmt: skip
    labels = {
        "left": letters(-picture.right),
        "right": letters(picture.right),
        "top": letters(-picture.down),
        "bottom": letters(picture.down),
    }
    description = picture.description + tilt_note(stack)
    return Rendered(picture.image, None, window, volume.header, description, labels)


def _one_slice(stack: Stack, request: Request, presets: dict[str, dict[str, Window]]) -> Rendered:
    count = len(stack.slices)
    index = count // 2 if request.index is None else request.index
    if request.position is not None:
        index = int(np.argmin(np.abs(stack.offsets - request.position)))
    if not 0 <= index < count:
        raise VolumeError(f"no slice {index + 1} (the stack has {count})")
    chosen = stack.slices[index]
    header = display_header(chosen.source.path)
    stored = read_frame(chosen.source, chosen.frame)
    description = f"acquired slice {index + 1}/{count}"
    if stored.ndim == 3:  # colour
        image = _with_luts(chosen, lambda: to_display(stored, header, invert=request.invert))
        return Rendered(image, None, None, header, description)
    values = _frame_values(chosen, stored, header)
    window = _window(header, request, presets, chosen.window, lambda: series_window(stack))
    affine = stack.affine
    origin = np.asarray(chosen.position, float)
    view = View(values, origin, affine[:3, 1], affine[:3, 0], description)
    image = values_to_display(values, header, window, request.invert)
    return Rendered(image, view, window, header, description)


def _frame_values(chosen: Slice, stored: np.ndarray, header: Dataset) -> np.ndarray:
    """A grey frame's modality values (HU for CT)."""
    if chosen.slope != 1.0 or chosen.intercept:  # per-frame rescale of enhanced files
        return stored.astype(np.float32) * chosen.slope + chosen.intercept
    return _with_luts(chosen, lambda: modality_values(stored, header))


def _with_luts(chosen: Slice, apply: Callable[[], np.ndarray]) -> np.ndarray:
    """``apply()``, which reads the file's LUTs (modality, palette) as it goes: a broken
    one is refused in one line."""
    try:
        return apply()
    except Exception as exc:  # pydicom's LUT code raises many types for broken items
        message = printable(" ".join(str(exc).split())) or type(exc).__name__
        raise DecodeError(f"{chosen.source.path}: cannot apply its LUT: {message}") from None


def plane_count(stack: Stack, request: Request, cache: VolumeCache | None = None) -> int:
    """How many planes ``request``'s plane has (slices to step through in a cine); one
    for an oblique plane and a volume rendering, which move by their point and camera."""
    plane = _plane(request)
    if request.mode in VR_MODES or plane == "oblique":
        return 1
    if plane == "acquired":
        return len(stack.slices)
    return orthogonal_count(volume_of(stack, cache), plane)


def _window(
    header: Dataset,
    request: Request,
    presets: dict[str, dict[str, Window]],
    frame_window: tuple[float, float] | None,
    default: Callable[[], Window],
) -> Window:
    """What the user chose (a preset, a window, or each image's own window: ``file_window``,
    the frame's own for enhanced files), else ``default``: one window for the whole view."""
    if request.preset:
        return find_preset(presets, str(header.get("Modality", "")), request.preset)
    if request.window is not None:
        return request.window
    if request.file_window is not None:
        if request.file_window == 0 and frame_window is not None:
            return Window(*frame_window, name="FRAME")
        windows = file_windows(header)
        if not 0 <= request.file_window < len(windows):
            offered = ", ".join(f"{n + 1}: {w}" for n, w in enumerate(windows)) or "none"
            raise VolumeError(f"no window {request.file_window + 1} in the file (it has {offered})")
        return windows[request.file_window]
    return default()


# Windows computed once per stack (and per projection): the view keeps one window while
# the user steps through it, so the brightness does not pump from slice to slice.
_WINDOWS: OrderedDict[tuple[Any, ...], Window] = OrderedDict()
_WINDOWS_KEPT = 256
_WINDOWS_LOCK = threading.Lock()


def _remembered(key: tuple[Any, ...], compute: Callable[[], Window]) -> Window:
    with _WINDOWS_LOCK:
        window = _WINDOWS.get(key)
    if window is None:
        window = compute()  # outside the lock: it may read a file; two threads agree anyway
        with _WINDOWS_LOCK:
            window = _WINDOWS.setdefault(key, window)
            while len(_WINDOWS) > _WINDOWS_KEPT:
                _WINDOWS.popitem(last=False)
    return window


def _stack_key(stack: Stack) -> tuple[Any, ...]:
    return (stack.slices[0].source.sop_uid, len(stack.slices), stack.label)


def series_window(stack: Stack) -> Window:
    """The one window of a stack's slices and reslices: its middle slice's own (the frame's
    for enhanced files, else the file's first), else automatic from that slice's values.

    Files often carry a window per slice (scanners compute one per image); using each
    would change the brightness at every step, and reslices would use yet another."""

    def compute() -> Window:
        middle = stack.slices[len(stack.slices) // 2]
        if middle.window is not None:
            return Window(*middle.window, name="FRAME")
        header = display_header(middle.source.path)
        windows = file_windows(header)
        if windows:
            return windows[0]
        return auto_window(_frame_values(middle, read_frame(middle.source, middle.frame), header))

    return _remembered(("series", *_stack_key(stack)), compute)


def projection_window(volume: Volume, plane: str, request: Request) -> Window:
    """A projection's own window (MIP, MinIP and average each): automatic, from the same
    projection through the middle of the volume, so every position of one plane, mode and
    slab shares it. A slice's window would blow a MIP out to white and a MinIP to black."""

    def compute() -> Window:
        middle = replace(request, index=None, position=None)
        window = auto_window(_view(volume, plane, middle).values)
        return replace(window, name=request.mode.upper())

    key = (
        "projection", *_stack_key(volume.stack), plane, request.mode, request.slab,
        request.normal, request.axes,
    )  # fmt: skip
    return _remembered(key, compute)


def volume_of(
    stack: Stack,
    cache: VolumeCache | None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> Volume:
    """The stack's volume from ``cache``, or loaded (and cached): once, however many
    threads ask for it at once."""
    if cache is None:
        return load(stack, progress, cancel)
    return cache.load(_stack_key(stack), partial(load, stack), progress, cancel)
