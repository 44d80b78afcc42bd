"""Benchmark volume rendering (issue 15) against VTK's CPU ray caster on the same picture.

On the demo archive's contrast CT (512 x 512 x 240, 0.7 x 0.7 x 1.25 mm, axial; built with
``build_demo`` in ``--archive DIR``, or reused from there), with the CT transfer preset
``--preset`` (default ``bone``) into a ``--size`` square view (default 256 x 256):

* ours: ``tui.render.vr.render_volume(volume, transfer, Camera(azimuth, elevation))``: the
  first call of the process (one-time work: compilation, precomputed tables), then the full
  frame and the coarse frame (best and median of ``--runs``), and a rotation step (a full
  frame at a new azimuth each run, 10 degrees apart: nothing cached from the last view);
  for context the full frame on one thread too (``vr.THREADS``); and a small frame
  (``PANE``, 128 x 72: a terminal pane of half blocks), which casts 2 x 2 rays a pixel
  and averages them: it should cost no more than the full frame;
* anchor: VTK's ``vtkFixedPointVolumeRayCastMapper`` (PyPI ``vtk``, ``pip install
  'pacs-tui[bench]'``) in an offscreen render window (EGL or OSMesa; where neither works,
  run the benchmark under ``xvfb-run``) with ``--vtk-threads`` threads, on the same voxels
  in modality units (int16 when they fit), the same transfer function (opacity per 1 mm:
  ``ScalarOpacityUnitDistance`` 1; trilinear; Phong shading with the preset's
  coefficients and a white headlight whose ambient colour is white too, as VTK's default
  black would drop the ambient term), the same orthographic camera (the contract's
  azimuth/elevation convention, focal point at the bounding box's centre, the shorter side
  spanning its diagonal) and the same ray step (half an output pixel or the smallest
  voxel, whichever is larger; its coarse frame: half the rays each way, twice the step).
  Its first render (building its gradient tables) is reported apart, not timed with the
  others; for context its full frame on one thread too;
* agreement: Pearson correlation of the two images' luminance (all pixels; scale-free, so no
  scaling is needed; the least-squares scale of ours over VTK's and the correlation over the
  pixels that either image lights are reported too) at azimuth 0 and at azimuth 30,
  elevation 15. ``--images DIR`` saves both pictures of each view as PNG;
* memory, in a fresh process that first renders a tiny volume (its one-time work: the
  kernel compiled, or loaded from numba's cache; timed with an empty cache and with the
  usual one), then loads the CT: peak RSS (``VmHWM``, reset through
  ``/proc/self/clear_refs``) while rendering over the RSS before the load, minus the
  volume's bytes; and the tracemalloc peak (numpy buffers only) over the traced volume;
  for the first render of the volume and for later ones (full and coarse) separately.
  Including the process's one-time work (numba and its compiled code): the peak RSS while
  rendering over the RSS at the process's start (``rss_increase_over_volume_mb``) and the
  private memory after rendering (``Private_Clean + Private_Dirty`` of
  ``/proc/self/smaps_rollup``: without the shared code pages of libllvmlite.so) over the
  start's (``private_increase_over_volume_mb``), both minus the volume's bytes;

Each time is the wall time (best and median) with the process's CPU time (every thread's)
beside it: other work on the machine stretches the one, hardly the other; the load average
before and after is reported.

Targets (issue 15, 2 cores): full frame <= 150 ms, coarse frame <= 40 ms, a rotation step
<= 200 ms (the render only: the app's key-to-frame time adds drawing), each the median of
``--runs``; memory while rendering <= the volume's bytes + 100 MB (peak RSS);
the two images' correlation >= 0.95 in both views (so the times compare the same picture).

Prints one JSON object on stdout; progress goes to stderr. Without ``--archive`` the demo
archive is built in a temporary folder under /tmp and removed at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata, util
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from benchmarks.bench_render import PROC_STATUS, ms  # noqa: E402
from tui.archive.demo import build_demo  # noqa: E402
from tui.archive.query import series_instances  # noqa: E402
from tui.render import vr  # noqa: E402
from tui.render.transfer import Transfer, find_transfer, load_transfers  # noqa: E402
from tui.render.volume import Volume, assemble, load, slices_of  # noqa: E402
from tui.render.vr import Camera, camera_axes, render_volume  # noqa: E402

FULL_MS_TARGET = 150.0
COARSE_MS_TARGET = 40.0
ROTATE_MS_TARGET = 200.0
MEMORY_MB_TARGET = 100.0  # over the volume's bytes
CORRELATION_TARGET = 0.95
VIEWS = {"az0": (0.0, 0.0), "az30_el15": (30.0, 15.0)}  # name: (azimuth, elevation)
ROTATE_STEP = 10.0  # degrees between the rotation steps' azimuths
PANE = (128, 72)  # a half-block terminal pane (width, height): supersampled 2 x 2
SERIES = "Axial 1.25%"  # the demo's 512 x 512 x 240 CT (series description)
VTK_MISSING = "vtk is not installed: pip install 'pacs-tui[bench]' (or pip install vtk)"

MEMORY_SCRIPT = (
    PROC_STATUS
    + """
import json, sys, time, tracemalloc
from pathlib import Path
from tui.archive.index import Archive
from tui.archive.query import series_instances
from tui.render.transfer import find_transfer, load_transfers
from tui.render.volume import Volume, assemble, load, slices_of
from tui.render.vr import Camera, render_volume

def private():
    # Private_Clean + Private_Dirty: memory this process alone holds (anonymous pages and
    # its own copies), not the shared code pages of libraries such as libllvmlite.so.
    total = 0
    with open("/proc/self/smaps_rollup") as fp:
        for line in fp:
            key, _, value = line.partition(":")
            if key in ("Private_Clean", "Private_Dirty"):
                total += int(value.split()[0]) * 1024
    return total

root, uid, preset, width = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
size = (width, width)
archive = Archive(Path(root), create=False)
transfer = find_transfer(load_transfers(), "CT", preset)
stack = assemble(slices_of(series_instances(archive, uid)))[0]
volume = load(stack)
small = Volume(stack, volume.data[:8, :32, :32].copy(), volume.slope, volume.intercept,
               volume.header)
del volume
# The one-time work of the process (compiling or loading the kernel) on a tiny volume.
start = status()
start_private = private()
started = time.perf_counter()
render_volume(small, transfer, Camera(), size=size)
render_volume(small, transfer, Camera(), size=size, coarse=True)
warmup_s = time.perf_counter() - started
warm = status()
del small
tracemalloc.start()
volume = load(stack)
volume_traced = tracemalloc.get_traced_memory()[0]
loaded = status()
was_reset = reset_peak()
tracemalloc.reset_peak()
render_volume(volume, transfer, Camera(), size=size)
first = {"status": status(), "traced_peak": tracemalloc.get_traced_memory()[1]}
reset_peak()
tracemalloc.reset_peak()
for azimuth in (0.0, 40.0):
    render_volume(volume, transfer, Camera(azimuth, 15.0), size=size)
    render_volume(volume, transfer, Camera(azimuth), size=size, coarse=True)
later = {"status": status(), "traced_peak": tracemalloc.get_traced_memory()[1],
         "private": private()}
print(json.dumps({
    "reset": was_reset, "start": start, "start_private": start_private, "warm": warm,
    "warmup_s": warmup_s, "loaded": loaded,
    "first": first, "later": later, "nbytes": volume.data.nbytes,
    "volume_traced": volume_traced,
}))
"""
)


def note(message: str) -> None:
    print(f"[bench_vr] {message}", file=sys.stderr, flush=True)


# --- the volume ---------------------------------------------------------------------------


def demo_volume(root: Path) -> tuple[Volume, str]:
    """The demo CT (the archive built in ``root`` first if it is not there) and its UID."""
    started = time.perf_counter()
    with build_demo(root) as archive:
        note(f"demo archive ready in {time.perf_counter() - started:.1f} s")
        row = archive.conn.execute(
            "SELECT series_uid FROM series WHERE description LIKE ?", (SERIES,)
        ).fetchone()
        if row is None:
            raise SystemExit(f"{root}: no series like {SERIES!r} (not a demo archive?)")
        uid = str(row[0])
        volume = load(assemble(slices_of(series_instances(archive, uid)))[0])
    return volume, uid


def box(volume: Volume) -> tuple[np.ndarray, float]:
    """The centre and diagonal (mm) of the box through the corner voxels' centres."""
    k, j, i = volume.data.shape
    corners = np.array([[a, b, c, 1.0] for a in (0, i - 1) for b in (0, j - 1) for c in (0, k - 1)])
    points = (volume.affine @ corners.T)[:3].T
    low, high = points.min(axis=0), points.max(axis=0)
    return (low + high) / 2, float(np.linalg.norm(high - low))


def step_mm(volume: Volume, size: tuple[int, int], zoom: float = 1.0) -> float:
    """The full-quality ray step of the contract: half an output pixel or the smallest
    voxel, whichever is larger."""
    _, diagonal = box(volume)
    voxel = float(np.linalg.norm(volume.affine[:3, :3], axis=0).min())
    return max(diagonal / zoom / min(size) / 2, voxel)


def axes(azimuth: float, elevation: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forward, right and down (patient LPS unit vectors) of the contract's camera: azimuth
    turns it about +z toward the patient's left, elevation toward the head; (0, 0) looks
    along +y with +z up and +x to the right."""
    a, e = math.radians(azimuth), math.radians(elevation)
    horizontal = np.array([-math.sin(a), math.cos(a), 0.0])
    head = np.array([0.0, 0.0, 1.0])
    forward = math.cos(e) * horizontal - math.sin(e) * head
    up = math.sin(e) * horizontal + math.cos(e) * head
    return forward, np.cross(forward, up), -up


# --- the anchor: VTK ----------------------------------------------------------------------


class VtkAnchor:
    """VTK's fixed-point CPU ray caster set up for the contract's picture of one volume."""

    def __init__(self, volume: Volume, transfer: Transfer, size: tuple[int, int], threads: int):
        import vtk
        from vtk.util import numpy_support

        self.vtk = vtk
        vtk.vtkLogger.SetStderrVerbosity(vtk.vtkLogger.VERBOSITY_ERROR)  # the X probe's warning
        self.size = size
        self.voxels, origin, spacing = self._voxels(volume)
        image = vtk.vtkImageData()
        image.SetDimensions(*self.voxels.shape[::-1])
        image.SetOrigin(*origin)
        image.SetSpacing(*spacing)
        scalars = numpy_support.numpy_to_vtk(self.voxels.ravel(), deep=False)
        image.GetPointData().SetScalars(scalars)

        opacity, colour = vtk.vtkPiecewiseFunction(), vtk.vtkColorTransferFunction()
        for value, alpha, red, green, blue in transfer.points:
            opacity.AddPoint(value, alpha)
            colour.AddRGBPoint(value, red, green, blue)
        opacity.ClampingOn()
        colour.ClampingOn()
        prop = vtk.vtkVolumeProperty()
        prop.SetScalarOpacity(opacity)
        prop.SetColor(colour)
        prop.SetScalarOpacityUnitDistance(1.0)  # transfer opacities are per 1 mm
        prop.SetInterpolationTypeToLinear()
        prop.ShadeOn()
        prop.SetAmbient(transfer.ambient)
        prop.SetDiffuse(transfer.diffuse)
        prop.SetSpecular(transfer.specular)
        prop.SetSpecularPower(transfer.shininess)

        mapper = vtk.vtkFixedPointVolumeRayCastMapper()
        mapper.SetInputData(image)
        mapper.SetBlendModeToComposite()
        mapper.AutoAdjustSampleDistancesOff()  # else it trades quality for a frame rate
        mapper.LockSampleDistanceToInputSpacingOff()
        mapper.SetImageSampleDistance(1.0)  # one ray per pixel
        self.step = step_mm(volume, size)
        mapper.SetSampleDistance(self.step)
        mapper.SetNumberOfThreads(threads)
        self.threads = mapper.GetNumberOfThreads()
        actor = vtk.vtkVolume()
        actor.SetMapper(mapper)
        actor.SetProperty(prop)

        self.renderer = vtk.vtkRenderer()
        self.renderer.SetBackground(0, 0, 0)
        self.renderer.AddVolume(actor)
        light = vtk.vtkLight()
        light.SetLightTypeToHeadlight()
        light.SetColor(1, 1, 1)
        light.SetAmbientColor(1, 1, 1)  # VTK's default (black) would drop the ambient term
        light.SetIntensity(1.0)
        self.renderer.AddLight(light)
        self.renderer.TwoSidedLightingOn()
        self.window = vtk.vtkRenderWindow()
        self.window.SetOffScreenRendering(1)
        self.window.SetSize(*size)
        self.window.SetMultiSamples(0)
        self.window.AddRenderer(self.renderer)
        self.grab = vtk.vtkWindowToImageFilter()
        self.grab.SetInput(self.window)
        self.grab.SetInputBufferTypeToRGB()
        self.grab.ReadFrontBufferOff()
        self.centre, self.diagonal = box(volume)
        self.mapper = mapper

    @staticmethod
    def _voxels(volume: Volume) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Modality values (slice, row, column) with positive spacing along +x, +y, +z, the
        origin and spacing (mm); only for a volume whose axes are the patient's."""
        affine = volume.affine
        linear = affine[:3, :3]
        if not np.allclose(linear, np.diag(np.diag(linear)), atol=1e-6 * np.abs(linear).max()):
            raise SystemExit("the VTK anchor needs a volume aligned with the patient axes")
        values = volume.values(volume.data)  # float32 modality values
        integral = np.array_equal(values, np.round(values))
        fits = values.min() >= -32768 and values.max() <= 32767
        voxels = values.astype(np.int16) if integral and fits else values
        del values
        origin = affine[:3, 3].copy()
        spacing = np.diag(linear).copy()
        for axis in range(3):  # array axis 2 - axis runs along patient axis ``axis``
            if spacing[axis] < 0:
                voxels = np.flip(voxels, axis=2 - axis)
                origin[axis] += spacing[axis] * (voxels.shape[2 - axis] - 1)
                spacing[axis] = -spacing[axis]
        return np.ascontiguousarray(voxels), origin, spacing

    def look(self, azimuth: float, elevation: float, zoom: float = 1.0) -> None:
        forward, _, down = axes(azimuth, elevation)
        camera = self.renderer.GetActiveCamera()
        camera.ParallelProjectionOn()
        camera.SetFocalPoint(*self.centre)
        camera.SetPosition(*(self.centre - forward * self.diagonal * 2))
        camera.SetViewUp(*(-down))
        # Half the view's height in mm: the shorter side spans diagonal / zoom.
        width, height = self.size
        camera.SetParallelScale(self.diagonal / zoom / 2 * height / min(width, height))
        self.renderer.ResetCameraClippingRange()

    def coarse(self, on: bool) -> None:
        """Our coarse frame's settings: half the rays each way, twice the step."""
        self.mapper.SetImageSampleDistance(2.0 if on else 1.0)
        self.mapper.SetSampleDistance(self.step * (2 if on else 1))

    def render(self) -> None:
        self.window.Render()

    def image(self) -> np.ndarray:
        """The last frame, RGB uint8 (rows top to bottom)."""
        from vtk.util import numpy_support

        self.grab.Modified()
        self.grab.Update()
        output = self.grab.GetOutput()
        width, height, _ = output.GetDimensions()
        pixels = numpy_support.vtk_to_numpy(output.GetPointData().GetScalars())
        return pixels.reshape(height, width, -1)[::-1, :, :3].copy()


# --- the steps ----------------------------------------------------------------------------


def luminance(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def agreement(ours: np.ndarray, theirs: np.ndarray) -> dict[str, Any]:
    a, b = luminance(ours).ravel(), luminance(theirs).ravel()
    lit = (a > 0) | (b > 0)
    scale = float(a @ b / (b @ b)) if b.any() else float("nan")
    return {
        "correlation": round(float(np.corrcoef(a, b)[0, 1]), 4),
        "correlation_lit_pixels": round(float(np.corrcoef(a[lit], b[lit])[0, 1]), 4),
        "lit_pixels": int(lit.sum()),
        "scale_ours_over_vtk": round(scale, 4),
        "mean_abs_difference_after_scale": round(float(np.abs(a - scale * b).mean()), 2),
        "mean_luminance": {"ours": round(float(a.mean()), 2), "vtk": round(float(b.mean()), 2)},
    }


def timed(action: Callable[[], object], runs: int) -> dict[str, Any]:
    """Wall time (best and median of ``runs``) and the median CPU time of the process
    (every thread's: with other work on the machine it shows what the wall time hides)."""
    cpu = []
    wall = []
    for _ in range(runs):
        started, used = time.perf_counter(), time.process_time()
        action()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - used)
    return {**ms(wall), "cpu_median_ms": round(statistics.median(cpu) * 1000, 1)}


def bench_ours(
    volume: Volume, transfer: Transfer, size: tuple[int, int], runs: int
) -> dict[str, Any]:
    def frame(camera: Camera | None = None, coarse: bool = False) -> None:
        render_volume(volume, transfer, camera or Camera(), size=size, coarse=coarse)

    first = timed(frame, 1)["best_ms"]
    first_coarse = timed(lambda: frame(coarse=True), 1)["best_ms"]
    note(f"ours: first call {first:.0f} ms, first coarse {first_coarse:.0f} ms")
    full = timed(frame, runs)
    coarse = timed(lambda: frame(coarse=True), runs)
    azimuths = iter(ROTATE_STEP * (n + 1) for n in range(runs))
    rotate = timed(lambda: frame(Camera(next(azimuths), 15.0)), runs)
    pane = timed(lambda: render_volume(volume, transfer, Camera(30.0, 15.0), size=PANE), runs)
    note(
        f"ours: full {full['median_ms']:.0f} ms, coarse {coarse['median_ms']:.0f} ms,"
        f" rotation step {rotate['median_ms']:.0f} ms, {PANE[0]} x {PANE[1]} pane"
        f" {pane['median_ms']:.0f} ms (medians)"
    )
    out = {
        "first_call_ms": first,
        "first_coarse_call_ms": first_coarse,
        "full": full,
        "coarse": coarse,
        "rotation_step": {**rotate, "azimuths": f"{ROTATE_STEP:g} degrees apart, elevation 15"},
        "small_supersampled": {
            **pane,
            "size": list(PANE),
            "how": "a half-block pane: 2 x 2 rays a pixel, averaged (azimuth 30, elevation 15)",
            "under_full_frame": pane["median_ms"] <= full["median_ms"],
        },
        "threads": getattr(vr, "THREADS", None),
    }
    if hasattr(vr, "THREADS"):  # context: what the second thread gives under this load
        threads = vr.THREADS
        vr.THREADS = 1
        try:
            out["full_one_thread"] = timed(frame, runs)
        finally:
            vr.THREADS = threads
    return out


def bench_anchor(anchor: VtkAnchor, runs: int) -> dict[str, Any]:
    anchor.look(0.0, 0.0)
    first = timed(anchor.render, 1)["best_ms"]
    full = timed(anchor.render, runs)
    anchor.coarse(True)
    coarse = timed(anchor.render, runs)
    anchor.coarse(False)
    azimuths = iter(ROTATE_STEP * (n + 1) for n in range(runs))

    def turn() -> None:
        anchor.look(next(azimuths), 15.0)
        anchor.render()

    rotate = timed(turn, runs)
    anchor.look(0.0, 0.0)
    anchor.mapper.SetNumberOfThreads(1)
    one = timed(anchor.render, runs)
    anchor.mapper.SetNumberOfThreads(anchor.threads)
    note(f"VTK: first {first:.0f} ms, then {full['median_ms']:.0f} ms")
    return {
        "first_render_ms": first,
        "full": full,
        "coarse": {**coarse, "how": "half the rays each way, twice the step"},
        "rotation_step": rotate,
        "full_one_thread": one,
        "threads": anchor.threads,
        "window": anchor.window.GetClassName(),
        "input": f"{anchor.voxels.dtype} modality values",
        "sample_distance_mm": round(anchor.mapper.GetSampleDistance(), 3),
    }


def compare(
    volume: Volume, transfer: Transfer, anchor: VtkAnchor, size: tuple[int, int], out: Path | None
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, (azimuth, elevation) in VIEWS.items():
        picture = render_volume(volume, transfer, Camera(azimuth, elevation), size=size)
        anchor.look(azimuth, elevation)
        anchor.render()
        theirs = anchor.image()
        forward, right, down = axes(azimuth, elevation)
        theirs_axes = camera_axes(Camera(azimuth, elevation))
        result[name] = {
            "azimuth": azimuth,
            "elevation": elevation,
            **agreement(picture.image, theirs),
            "pixel_mm": {"ours": round(picture.pixel_mm, 4), "vtk": round(
                anchor.renderer.GetActiveCamera().GetParallelScale() * 2 / size[1], 4)},
            "axes_agree": bool(
                all(np.allclose(a, b, atol=1e-6) for a, b in
                    zip((forward, right, down), theirs_axes, strict=True))
                and np.allclose(picture.right, right, atol=1e-6)
                and np.allclose(picture.down, down, atol=1e-6)
            ),
        }  # fmt: skip
        result[name]["met"] = result[name]["correlation"] >= CORRELATION_TARGET
        note(f"{name}: correlation {result[name]['correlation']}")
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            Image.fromarray(picture.image).save(out / f"ours_{name}.png")
            Image.fromarray(theirs).save(out / f"vtk_{name}.png")
    result["target_min"] = CORRELATION_TARGET
    result["met"] = all(result[name]["met"] for name in VIEWS)
    return result


def probe(root: Path, uid: str, preset: str, width: int, cache: Path | None) -> dict[str, Any]:
    """Run MEMORY_SCRIPT in a fresh process (numba's cache in ``cache`` when given)."""
    env = dict(os.environ)
    if cache is not None:
        env["NUMBA_CACHE_DIR"] = str(cache)
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(root), uid, preset, str(width)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"memory probe failed:\n{done.stderr}")
    return dict(json.loads(done.stdout))


def memory(root: Path, uid: str, preset: str, width: int, scratch: Path) -> dict[str, Any]:
    """Peak memory of a fresh process rendering the volume, and its one-time cost with an
    empty compilation cache and with the usual one."""
    cold = probe(root, uid, preset, width, scratch / "numba-cache")
    got = probe(root, uid, preset, width, None)
    nbytes, base = got["nbytes"], got["warm"]["VmRSS"]
    mb = 1024 * 1024

    def over(part: dict[str, Any]) -> dict[str, Any]:
        return {
            "peak_rss_over_volume_mb": round((part["status"]["VmHWM"] - base - nbytes) / mb, 1),
            "tracemalloc_peak_over_volume_mb": round(
                (part["traced_peak"] - got["volume_traced"]) / mb, 1
            ),
        }

    first, later = over(got["first"]), over(got["later"])
    peak = max(first["peak_rss_over_volume_mb"], later["peak_rss_over_volume_mb"])
    return {
        "how": "a fresh process renders a tiny volume first (the process's one-time work:"
        " the kernel compiled or loaded from numba's cache), then loads the CT; peak RSS"
        " (VmHWM, reset after the load and after the first render) over the RSS before the"
        " load, minus the volume's bytes; tracemalloc (numpy buffers only) likewise",
        "volume_bytes": nbytes,
        "hwm_reset": got["reset"],
        "one_time": {
            "empty_cache_ms": round(cold["warmup_s"] * 1000, 1),
            "empty_cache_rss_mb": round((cold["warm"]["VmRSS"] - cold["start"]["VmRSS"]) / mb, 1),
            "usual_cache_ms": round(got["warmup_s"] * 1000, 1),
            "usual_cache_rss_mb": round((got["warm"]["VmRSS"] - got["start"]["VmRSS"]) / mb, 1),
        },
        "loaded_rss_over_volume_mb": round((got["loaded"]["VmRSS"] - base - nbytes) / mb, 1),
        # From the process's start (numba not yet imported): everything rendering adds.
        "rss_increase_over_volume_mb": round(
            (got["later"]["status"]["VmHWM"] - got["start"]["VmRSS"] - nbytes) / mb, 1
        ),
        "private_increase_over_volume_mb": round(
            (got["later"]["private"] - got["start_private"] - nbytes) / mb, 1
        ),
        "first_render": first,
        "later_renders": later,
        "target_mb_over_volume_max": MEMORY_MB_TARGET,
        "met": peak <= MEMORY_MB_TARGET,
    }


def target(what: str, ours: float, anchor: float | None, limit: float) -> dict[str, Any]:
    return {
        "what": what,
        "ours_ms": round(ours * 1000, 1),
        "anchor_ms": round(anchor * 1000, 1) if anchor else None,
        "ratio": round(ours / anchor, 3) if anchor else None,
        "target_ms": limit,
        "met": ours * 1000 <= limit,
    }


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("numpy", "numba", "vtk"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def run(args: argparse.Namespace, root: Path, scratch: Path) -> dict[str, Any]:
    load_before = os.getloadavg()
    volume, uid = demo_volume(root)
    note(f"volume {volume.data.shape} {volume.data.dtype}, {volume.data.nbytes / 1e6:.0f} MB")
    transfer = find_transfer(load_transfers(), "CT", args.preset)
    size = (args.size, args.size)
    ours = bench_ours(volume, transfer, size, args.runs)
    anchor = VtkAnchor(volume, transfer, size, args.vtk_threads)
    vtk_result = bench_anchor(anchor, args.runs)
    agree = compare(volume, transfer, anchor, size, args.images)
    del anchor
    mem = memory(root, uid, args.preset, args.size, scratch)
    note(f"memory: {mem['later_renders']['peak_rss_over_volume_mb']} MB over the volume")

    vtk_full = vtk_result["full"]["median_ms"] / 1000
    vtk_coarse = vtk_result["coarse"]["median_ms"] / 1000
    vtk_rotate = vtk_result["rotation_step"]["median_ms"] / 1000
    median = {key: ours[key]["median_ms"] / 1000 for key in ("full", "coarse", "rotation_step")}
    targets = {
        "full": target("full frame, median", median["full"], vtk_full, FULL_MS_TARGET),
        "coarse": target("coarse frame, median", median["coarse"], vtk_coarse,
                         COARSE_MS_TARGET),
        "rotation_step": target("a full frame at a new azimuth, median", median["rotation_step"],
                                vtk_rotate, ROTATE_MS_TARGET),
    }  # fmt: skip
    met = {name: t["met"] for name, t in targets.items()}
    met.update(memory=mem["met"], agreement=agree["met"])
    return {
        "benchmark": "vr",
        "series": f"demo CT {list(volume.data.shape)} {volume.data.dtype}",
        "spacing_mm": [round(float(s), 3) for s in np.linalg.norm(volume.affine[:3, :3], axis=0)],
        "preset": transfer.name,
        "size": list(size),
        "step_mm": round(step_mm(volume, size), 3),
        "runs": args.runs,
        "cpu_count": os.cpu_count(),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "ours": ours,
        "vtk": vtk_result,
        "agreement": agree,
        "memory": mem,
        "targets": targets,
        "met": met,
        "all_met": all(met.values()),
        "versions": versions(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--archive", type=Path, help="the demo archive's folder (built there if absent)"
    )
    parser.add_argument("--preset", default="bone", help="the CT transfer preset")
    parser.add_argument("--size", type=int, default=256, help="the square view's side, pixels")
    parser.add_argument("--runs", type=int, default=10, help="best and median of N renders")
    parser.add_argument("--vtk-threads", type=int, default=2, help="VTK's ray-cast threads")
    parser.add_argument("--images", type=Path, help="save both pictures of each view here")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.size < 8:
        parser.error("--runs must be at least 1 and --size at least 8")
    if args.archive is not None and args.archive.resolve().is_relative_to(REPO):
        parser.error(f"--archive {args.archive}: keep benchmark data out of the repository")
    if util.find_spec("vtk") is None:
        raise SystemExit(VTK_MISSING)
    scratch = Path(tempfile.mkdtemp(prefix="pacs-bench-vr-", dir="/tmp"))
    try:
        result = run(args, args.archive or scratch / "demo", scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
