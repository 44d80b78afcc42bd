"""Series to volumes: group slices into stacks, sort them in space, measure, load.

A stack is a set of parallel slices of one size at one time point. Slices are
sorted by their position along the slice normal (never by file name or
InstanceNumber). Several time points at the same positions (fMRI, perfusion, DTI)
become several stacks. Geometry is an affine from voxel indices (column, row,
slice) to patient coordinates (LPS, mm).

Gantry tilt: a stack whose slices are sheared (the step between slices is not along
the normal) keeps its true sheared affine. Its acquired plane is shown as stored; views
in other planes resample it onto an orthogonal patient grid through that affine, which
removes the shear (as dcm2niix does), and say so.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from tui.errors import UserError
from tui.parallel import process_pool
from tui.render.decode import PixelSource, display_header, read_frame, read_into

Progress = Callable[[int, int], None]
_TILT_DEGREES = 0.5  # steeper than this, slices are sheared
_DEFLATED = "1.2.840.10008.1.2.1.99"  # pixels cannot be located without inflating
_PARALLEL_FROM = 16  # compressed slices decoded in worker processes from this many


class VolumeError(UserError):
    """A series cannot be made into the volume asked for; the message says why."""


@dataclass(frozen=True)
class Slice:
    """One frame placed in space."""

    source: PixelSource
    frame: int
    position: tuple[float, float, float]
    orientation: tuple[float, ...]
    spacing: tuple[float, float]  # (between rows, between columns), mm
    slope: float
    intercept: float
    acquisition: int
    temporal: int
    number: int
    window: tuple[float, float] | None = None  # per-frame VOI (enhanced files), centre/width


@dataclass
class Stack:
    """Parallel slices of one size at one time point, sorted along their normal."""

    slices: list[Slice]
    label: str = ""
    problems: list[str] = field(default_factory=list)

    @cached_property
    def shape(self) -> tuple[int, int, int]:
        first = self.slices[0].source
        return len(self.slices), first.rows, first.columns

    @cached_property
    def normal(self) -> np.ndarray:
        o = np.array(self.slices[0].orientation)
        return np.cross(o[:3], o[3:])

    @cached_property
    def offsets(self) -> np.ndarray:
        """Each slice's position along the normal, mm."""
        return np.array([s.position for s in self.slices]) @ self.normal

    @cached_property
    def spacing(self) -> float:
        """Median distance between slices along the normal (0 for one slice)."""
        steps = np.diff(self.offsets)
        return float(np.median(steps)) if steps.size else 0.0

    @cached_property
    def tilt(self) -> float:
        """Angle in degrees between the slice normal and the direction slices step in."""
        if len(self.slices) < 2:
            return 0.0
        travel = np.subtract(self.slices[-1].position, self.slices[0].position)
        length = np.linalg.norm(travel)
        if length == 0:
            return 0.0
        cosine = abs(float(np.dot(travel / length, self.normal)))
        return float(np.degrees(np.arccos(min(1.0, cosine))))

    @cached_property
    def affine(self) -> np.ndarray:
        """4x4 from voxel (column, row, slice, 1) to patient LPS mm."""
        o = np.array(self.slices[0].orientation)
        row_spacing, column_spacing = self.slices[0].spacing
        affine = np.eye(4)
        affine[:3, 0] = o[:3] * column_spacing
        affine[:3, 1] = o[3:] * row_spacing
        if len(self.slices) > 1:
            travel = np.subtract(self.slices[-1].position, self.slices[0].position)
            affine[:3, 2] = travel / (len(self.slices) - 1)
        else:
            affine[:3, 2] = self.normal
        affine[:3, 3] = self.slices[0].position
        return affine

    @cached_property
    def mpr_refusal(self) -> str | None:
        """Why this stack cannot be resliced, or None."""
        if len(self.slices) < 2:
            return "a single slice has no volume to reslice"
        if self.spacing <= 0:
            return "the slices share one position (a cine or time series, not a volume)"
        return None

    @property
    def tilted(self) -> bool:
        """Are the slices sheared (a gantry tilt), so reslices are resampled?"""
        return self.tilt > _TILT_DEGREES


def slices_of(rows: list[dict[str, Any]]) -> list[Slice]:
    """Every frame of a series' instances, placed in space (multi-frame files read their
    per-frame functional groups)."""
    out: list[Slice] = []
    for row in rows:
        source = PixelSource.from_row(row)
        no_pixels = row["pixel_offset"] is None and row["transfer_syntax"] != _DEFLATED
        if source.rows == 0 or no_pixels:
            continue  # no pixel data: not an image
        if source.frames > 1:
            out += _frames(row, source)
            continue
        position = _floats(row["position"], 3) or (0.0, 0.0, 0.0)
        out.append(
            Slice(
                source=source,
                frame=0,
                position=position,  # type: ignore[arg-type]
                orientation=_floats(row["orientation"], 6) or (1.0, 0, 0, 0, 1.0, 0),
                spacing=_floats(row["pixel_spacing"], 2) or (1.0, 1.0),  # type: ignore[arg-type]
                slope=row["rescale_slope"] if row["rescale_slope"] is not None else 1.0,
                intercept=row["rescale_intercept"] or 0.0,
                acquisition=row["acquisition_number"] or 0,
                temporal=row["temporal_position"] or 0,
                number=row["instance_number"] or 0,
            )
        )
    return out


def _frames(row: dict[str, Any], source: PixelSource) -> list[Slice]:
    ds = display_header(source.path)
    shared = _first(ds, "SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    out = []
    for frame in range(source.frames):
        groups = [per_frame[frame]] if frame < len(per_frame) else []
        if shared is not None:
            groups.append(shared)
        position = _group(groups, "PlanePositionSequence", "ImagePositionPatient", 3)
        orientation = _group(groups, "PlaneOrientationSequence", "ImageOrientationPatient", 6)
        spacing = _group(groups, "PixelMeasuresSequence", "PixelSpacing", 2)
        slope = _group(groups, "PixelValueTransformationSequence", "RescaleSlope", 1)
        intercept = _group(groups, "PixelValueTransformationSequence", "RescaleIntercept", 1)
        temporal = _group(groups, "FrameContentSequence", "TemporalPositionIndex", 1)
        center = _group(groups, "FrameVOILUTSequence", "WindowCenter", 1)
        width = _group(groups, "FrameVOILUTSequence", "WindowWidth", 1)
        out.append(
            Slice(
                source=source,
                frame=frame,
                position=position or _floats(row["position"], 3) or (0.0, 0.0, 0.0),  # type: ignore[arg-type]
                orientation=orientation or _floats(row["orientation"], 6) or (1.0, 0, 0, 0, 1.0, 0),
                spacing=spacing or _floats(row["pixel_spacing"], 2) or (1.0, 1.0),  # type: ignore[arg-type]
                slope=slope[0] if slope else (row["rescale_slope"] or 1.0),
                intercept=intercept[0] if intercept else (row["rescale_intercept"] or 0.0),
                acquisition=row["acquisition_number"] or 0,
                temporal=int(temporal[0]) if temporal else 0,
                number=frame + 1,
                window=(center[0], width[0]) if center and width and width[0] > 0 else None,
            )
        )
    return out


def _first(ds: Dataset, keyword: str) -> Dataset | None:
    try:
        return ds[keyword][0]
    except (KeyError, IndexError, TypeError):
        return None


def _group(groups: list[Dataset], sequence: str, keyword: str, count: int) -> tuple[float, ...]:
    for group in groups:
        item = _first(group, sequence)
        if item is not None and keyword in item:
            try:  # pydicom converts the value now: a broken one (an unknown VR) is absent
                value = item[keyword].value
                values = value if isinstance(value, MultiValue | list) else [value]
                numbers = tuple(float(v) for v in values)
            except Exception:
                continue
            if len(numbers) == count:
                return numbers
    return ()


def _floats(text: str | None, count: int) -> tuple[float, ...]:
    if not text:
        return ()
    try:
        values = tuple(float(v) for v in text.split("\\"))
    except ValueError:
        return ()
    return values if len(values) == count else ()


def assemble(slices: list[Slice]) -> list[Stack]:
    """Group slices into stacks and check each one's geometry.

    Slices group by orientation, size and temporal position; within a group, slices
    that repeat a position are split by acquisition and time into further stacks.
    """
    groups: dict[tuple[Any, ...], list[Slice]] = defaultdict(list)
    for s in slices:
        key = (
            tuple(round(v, 3) for v in s.orientation),
            s.source.rows,
            s.source.columns,
            s.temporal,
        )
        groups[key].append(s)
    stacks: list[Stack] = []
    for key, members in groups.items():
        normal = np.cross(members[0].orientation[:3], members[0].orientation[3:])
        members.sort(key=lambda s: (s.acquisition, s.temporal, s.number, s.frame))
        occurrence: dict[float, int] = defaultdict(int)
        split: dict[int, list[Slice]] = defaultdict(list)
        for s in members:
            offset = round(float(np.dot(normal, s.position)), 2)
            split[occurrence[offset]].append(s)
            occurrence[offset] += 1
        for number, part in sorted(split.items()):
            part.sort(key=lambda s: float(np.dot(normal, s.position)))
            label = _label(key, number, len(split), len(groups))
            stack = Stack(part, label)
            stack.problems = _problems(stack)
            stacks.append(stack)
    # The largest first; stacks of one size in time order (the time points of 4D series).
    stacks.sort(key=lambda st: (-len(st.slices), st.slices[0].temporal))
    return stacks


def _label(key: tuple[Any, ...], number: int, parts: int, groups: int) -> str:
    words = []
    if groups > 1:
        words.append(f"{key[1]}x{key[2]}" + (f" t{key[3]}" if key[3] else ""))
    if parts > 1:
        words.append(f"repeat {number + 1}")
    return ", ".join(words)


def _problems(stack: Stack) -> list[str]:
    problems = []
    steps = np.diff(stack.offsets)
    if steps.size:
        median = float(np.median(steps))
        if median > 0:
            gaps = int(np.sum(steps > 1.5 * median))
            if gaps:
                problems.append(f"{gaps} gap(s) between slices (median spacing {median:.3g} mm)")
            if float(steps.max() - steps.min()) > 0.01 * median + 1e-3:
                problems.append(f"non-uniform spacing: {steps.min():.3g} to {steps.max():.3g} mm")
    if stack.tilted:
        problems.append(f"gantry tilt {stack.tilt:.1f}° (resampled for reslices)")
    return problems


@dataclass
class Volume:
    """A stack's voxels (slice, row, column), as stored, with the rescale to modality units.

    ``data`` keeps the stored type (int16 for most CT: half the memory of float32);
    ``values()`` gives modality values. When slices rescale differently, ``data`` is
    float32 modality values and slope/intercept are 1/0.
    """

    stack: Stack
    data: np.ndarray
    slope: float
    intercept: float
    header: Dataset
    # An oblique volume resampled onto the patient-aligned grid (see views.prepare).
    resampled: np.ndarray | None = field(default=None, repr=False, compare=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @cached_property
    def affine(self) -> np.ndarray:
        return self.stack.affine

    def values(self, stored: np.ndarray) -> np.ndarray:
        """Stored values (of any part of ``data``) to modality values, float32."""
        values = stored.astype(np.float32)
        if self.slope != 1.0:
            values *= self.slope
        if self.intercept:
            values += self.intercept
        return values

    @property
    def nbytes(self) -> int:
        """Bytes held: the voxels and any resampled copy (the cache's budget counts both)."""
        extra = self.resampled.nbytes if self.resampled is not None else 0
        return int(self.data.nbytes + extra)

    @cached_property
    def minimum(self) -> float:
        """The smallest stored value (what lies outside the volume when reslicing)."""
        return float(self.data.min()) if self.data.size else 0.0


def load(
    stack: Stack,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    workers: int = 2,
) -> Volume:
    """Read every slice of ``stack`` into one preallocated array.

    Uncompressed slices are read straight into the array at their recorded offsets;
    compressed ones are decoded in worker processes. ``cancel`` stops between slices.

    Raises
    ------
    VolumeError
        If cancelled, or slices differ in type.
    DecodeError
        If a slice cannot be read.
    """
    slices = stack.slices
    first = slices[0]
    uniform = all(s.slope == first.slope and s.intercept == first.intercept for s in slices)
    done = 0

    def progressed() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, len(slices))
        if cancel is not None and cancel.is_set():
            raise VolumeError("loading cancelled")

    if (
        uniform
        and all(s.source.direct for s in slices)
        and len({s.source.dtype for s in slices}) == 1
    ):
        data = np.empty(stack.shape, dtype=first.source.dtype)
        for index, s in enumerate(slices):
            read_into(s.source, data[index], s.frame)
            progressed()
        return Volume(stack, data, first.slope, first.intercept, display_header(first.source.path))

    frames = _decoded_frames(slices, workers)
    pixels = next(frames)
    # Integer slices sharing one rescale stay in their stored type (int16 CT: half of float32).
    keep = uniform and pixels.dtype.kind in "iu"
    data = np.empty(stack.shape, dtype=pixels.dtype if keep else np.float32)
    for index, s in enumerate(slices):
        if index:
            pixels = next(frames)
        if pixels.ndim != 2:
            raise VolumeError("colour images do not make a volume")
        if keep:
            data[index] = pixels
        else:
            np.multiply(pixels, np.float32(s.slope), out=data[index], casting="unsafe")
            data[index] += np.float32(s.intercept)
        progressed()
    slope, intercept = (first.slope, first.intercept) if keep else (1.0, 0.0)
    return Volume(stack, data, slope, intercept, display_header(first.source.path))


# Codecs slow enough that worker processes pay for sending frames back through a pipe.
_SLOW_CODECS = ("1.2.840.10008.1.2.4.",)  # JPEG, JPEG-LS, JPEG 2000 (not RLE, not native)


def _decoded_frames(slices: list[Slice], workers: int) -> Iterator[np.ndarray]:
    """Decode frames in order: in worker processes for many slices of a slow codec."""
    slow = all(s.source.transfer_syntax.startswith(_SLOW_CODECS) for s in slices)
    if slow and workers > 1 and len(slices) >= _PARALLEL_FROM:
        with process_pool(workers, preload=__name__) as pool:
            yield from pool.map(
                read_frame, [s.source for s in slices], [s.frame for s in slices], chunksize=4
            )
        return
    for s in slices:
        yield read_frame(s.source, s.frame)


class VolumeCache:
    """Loaded volumes, least recently used dropped first once over ``max_mb``.

    Thread-safe; :meth:`load` loads a volume once however many threads ask for it at once.
    """

    def __init__(self, max_mb: float = 1024) -> None:
        self.max_bytes = int(max_mb * 2**20)
        self._volumes: OrderedDict[Any, Volume] = OrderedDict()
        self._loading: dict[Any, _Loading] = {}
        self._lock = threading.Lock()

    def get(self, key: Any) -> Volume | None:
        with self._lock:
            return self._get(key)

    def _get(self, key: Any) -> Volume | None:
        volume = self._volumes.get(key)
        if volume is not None:
            self._volumes.move_to_end(key)
        return volume

    def put(self, key: Any, volume: Volume) -> None:
        with self._lock:
            self._volumes[key] = volume
            self._volumes.move_to_end(key)
            while (
                sum(v.nbytes for v in self._volumes.values()) > self.max_bytes
                and len(self._volumes) > 1
            ):
                self._volumes.popitem(last=False)

    def load(
        self,
        key: Any,
        loader: Callable[[Progress, threading.Event | None], Volume],
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> Volume:
        """The volume under ``key``, from the cache or loaded by ``loader(progress, cancel)``
        and kept.

        A caller asking while another thread loads the same key waits for that load and
        sees its progress; it loads the volume itself only if that load failed or was
        cancelled. Its own ``cancel`` stops its wait.

        Raises
        ------
        VolumeError
            If ``cancel`` is set while waiting (the loader raises it while loading).
        """
        while True:
            with self._lock:
                volume = self._get(key)
                if volume is not None:
                    return volume
                loading = self._loading.get(key)
                mine = loading is None
                if loading is None:
                    loading = self._loading[key] = _Loading()
                if progress is not None:
                    loading.listeners.append(progress)
            if mine:
                try:
                    loading.volume = loader(loading.progress, cancel)
                    self.put(key, loading.volume)
                    return loading.volume
                finally:
                    with self._lock:
                        del self._loading[key]
                    loading.done.set()
            try:
                while not loading.done.wait(0.05):
                    if cancel is not None and cancel.is_set():
                        raise VolumeError("loading cancelled")
            finally:
                if progress is not None:
                    with self._lock:
                        loading.listeners.remove(progress)
            if loading.volume is not None:
                return loading.volume


class _Loading:
    """A volume being loaded: its progress goes to everyone waiting for it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.volume: Volume | None = None  # None once done: the load failed
        self.listeners: list[Progress] = []

    def progress(self, done: int, total: int) -> None:
        for listener in list(self.listeners):
            listener(done, total)
