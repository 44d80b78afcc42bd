"""The 3-D keys with Textual's pilot: volume rendering in the viewer, the double-oblique MPR
with its slabs and VR pane, and a 4-D series stepped, played and projected through time.

What the screens show is checked against a fresh render of the same request through the
pipeline, so a stale frame (an older key's coarse or full frame coming late) would fail."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from textual.widgets import Static

from tests.synthetic import AXIAL, write_series
from tests.test_app import _open_viewer, _settle
from tui.app.app import PacsApp
from tui.app.camera import VR_ZOOM, panel_pixels
from tui.app.image_view import ImagePanel
from tui.archive.importer import import_paths
from tui.archive.index import Archive
from tui.render.pipeline import Request, pick_stack, render
from tui.term.detect import BANDWIDTH

TIMES = 4


@pytest.fixture
def ct(tmp_path: Path) -> Archive:
    archive = Archive(tmp_path / "archive")
    write_series(tmp_path / "ct", AXIAL, count=40)
    import_paths(archive, [tmp_path / "ct"])
    return archive


def _at_time(t: int) -> Callable[[np.ndarray], np.ndarray]:
    """The box brighter at every time point (100 HU a step) and a sphere moving along x."""

    def values(points: np.ndarray) -> np.ndarray:
        inside = np.all(np.abs(points) < 60, axis=-1)
        hu = np.where(inside, 100.0 * t, -1000.0)
        centre = np.array([-30.0 + 20.0 * (t - 1), 0.0, 0.0])
        return np.where(np.linalg.norm(points - centre, axis=-1) < 10, 1000.0, hu)

    return values


@pytest.fixture
def four_d(tmp_path: Path) -> Archive:
    """One series of TIMES time points at the same 20 positions (TemporalPositionIdentifier)."""
    archive = Archive(tmp_path / "archive")
    uid = "1.2.826.0.1.3680043.8.498.77"
    for t in range(1, TIMES + 1):
        write_series(
            tmp_path / f"t{t}", AXIAL, size=48, count=20, temporal=t, series_uid=uid,
            values=_at_time(t),
        )  # fmt: skip
    import_paths(archive, [tmp_path / f"t{t}" for t in range(1, TIMES + 1)])
    return archive


def _fresh(app: PacsApp, uid: str, request: Request) -> object:
    """``request`` rendered now, straight through the pipeline (not the screen's worker)."""
    stacks = app.stacks(uid)
    from tui.render.pipeline import time_points

    over = time_points(stacks, request.stack) if request.over_time else ()
    stack = pick_stack(stacks, request.stack)
    return render(stack, request, app.presets, app.cache, None, None, over, app.transfers)


def _bottom(screen) -> str:
    return str(screen.query_one("#overlay-bottom", Static).render())


def _label(panel: ImagePanel, edge: str) -> str:
    return str(panel.query_one(f"#label-{edge}", Static).render())


async def _shown_full(app, pilot, viewer) -> np.ndarray:
    """Settle, then the VR image on screen, checked to be the full frame of the current
    request (a fresh render of it, at the panel's size, is the same picture)."""
    await _settle(app, pilot)
    panel = viewer.query_one(ImagePanel)
    assert viewer._shown_request is viewer.request
    request = replace(viewer.request, size=panel_pixels(panel.view))
    fresh = _fresh(app, viewer.series["SeriesInstanceUID"], request)
    image = viewer._shown.image
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    assert image.shape == fresh.image.shape and np.array_equal(image, fresh.image)
    assert panel.view._image is image  # what the panel draws
    return image


async def test_volume_rendering_turns_zooms_and_picks_presets(ct: Archive) -> None:
    app = PacsApp(ct, BANDWIDTH["normal"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_viewer(app, pilot)
        viewer = app.screen
        await pilot.press("v")
        front = await _shown_full(app, pilot, viewer)
        assert viewer.request.mode == "vr" and front.any()
        panel = viewer.query_one(ImagePanel)
        # from the front: patient right on the image's left, head up (radiological)
        assert (_label(panel, "left"), _label(panel, "right")) == ("R", "L")
        assert (_label(panel, "top"), _label(panel, "bottom")) == ("H", "F")
        await pilot.press("l")  # 15° toward the patient's left
        turned = await _shown_full(app, pilot, viewer)
        assert viewer.request.azimuth == 15 and not np.array_equal(turned, front)
        assert "azimuth 15" in _bottom(viewer)
        await pilot.press("k", "k")  # up toward the head, twice
        await _shown_full(app, pilot, viewer)
        assert viewer.request.elevation == 30 and "elevation 30" in _bottom(viewer)
        await pilot.press("shift+right")  # a fine turn
        await _shown_full(app, pilot, viewer)
        assert viewer.request.azimuth == 20
        names = list(app.transfers["CT"])
        await pilot.press("2")
        preset = await _shown_full(app, pilot, viewer)
        assert viewer.request.preset == names[1] and names[1] in _bottom(viewer)
        await pilot.press("z")  # the camera zooms: the same size, a closer picture
        zoomed = await _shown_full(app, pilot, viewer)
        assert viewer.request.zoom == round(VR_ZOOM * 1.5, 2) and zoomed.shape == preset.shape
        assert not np.array_equal(zoomed, preset)
        await pilot.press("m")  # shaded MIP
        await _shown_full(app, pilot, viewer)
        assert viewer.request.mode == "smip"
        await pilot.press("v")  # back to the slices, where the arrows step again
        await _settle(app, pilot)
        assert viewer.request.mode == "slice" and viewer._shown.image.ndim == 2
        index = viewer._index()
        await pilot.press("down")
        await _settle(app, pilot)
        assert viewer._index() == index + 1 and viewer.request.azimuth == 0
    ct.close()


async def test_a_late_frame_never_replaces_a_newer_one(ct: Archive) -> None:
    """Keys faster than frames: what stays is the last request's full frame; a frame of an
    earlier request handed to the screen late is dropped."""
    app = PacsApp(ct, BANDWIDTH["normal"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_viewer(app, pilot)
        viewer = app.screen
        await pilot.press("v")
        await _settle(app, pilot)
        old_request, old_rendered = viewer._shown_request, viewer._shown
        await pilot.press("l", "l", "k", "3", "h", "z", "l", "j", "m", "m", "right")
        final = await _shown_full(app, pilot, viewer)
        assert (viewer.request.azimuth, viewer.request.elevation) == (45, 0)
        assert viewer.request.preset == list(app.transfers["CT"])[2]
        viewer._show(old_rendered, viewer.count, old_request)  # an old key's frame, late
        assert viewer._shown.image is final and viewer._shown_request is viewer.request
        assert viewer.query_one(ImagePanel).view._image is final
    ct.close()


async def test_double_oblique_mpr(ct: Archive) -> None:
    from tui.app.mpr import MPRScreen, plane_axes

    app = PacsApp(ct, BANDWIDTH["normal"])
    async with app.run_test(size=(140, 50)) as pilot:
        await _open_viewer(app, pilot)
        await pilot.press("g")
        await _settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, MPRScreen)
        status = screen.query_one("#mpr-status", Static)
        assert "normal (0.000, 0.000, 1.000)" in str(status.render())
        assert str(screen.shown["axial"].window) in str(status.render())  # after the full VR
        assert set(screen.views) == {"axial", "coronal", "sagittal"}
        volume = screen.shown["volume"].image  # the fourth pane: a volume rendering
        assert volume.ndim == 3 and screen.shown["volume"].view is None
        before = {name: screen.views[name] for name in screen.views}
        images = {name: screen.shown[name].image.copy() for name in screen.views}
        await pilot.press("right_square_bracket")  # the axial plane about its row axis
        await _settle(app, pilot)
        normal = plane_axes(screen.frame, "axial")[0]
        assert abs(normal[2]) == pytest.approx(np.cos(np.radians(5)), abs=1e-6)
        across = ", ".join(f"{v:.3f}" for v in normal)
        assert f"normal ({across})" in str(status.render())
        sagittal = screen.views["sagittal"]
        e0 = plane_axes(screen.frame, "sagittal")[0]
        assert abs(float(sagittal.row_step @ e0)) < 1e-6  # the sagittal turned with it
        assert abs(float(sagittal.column_step @ e0)) < 1e-6
        assert not np.allclose(sagittal.row_step, before["sagittal"].row_step)  # e0 turned
        for name in ("axial", "coronal"):  # the sagittal's cut misses the box's edges
            assert not np.array_equal(screen.shown[name].image, images[name]), name
        for name in ("axial", "coronal", "sagittal"):
            view = screen.views[name]  # each pane the plane through the point
            fresh = _fresh(app, screen.series["SeriesInstanceUID"], _pane_request(screen, name))
            assert np.array_equal(view.values, fresh.view.values), name
        await pilot.press("tab", "left_curly_bracket")  # now the coronal, about its columns
        await _settle(app, pilot)
        coronal = plane_axes(screen.frame, "coronal")[0]
        assert abs(coronal[1]) < 0.999 and "coronal" in str(status.render())
        await pilot.press("m", "plus")  # a MIP slab of 15 mm
        await _settle(app, pilot)
        assert "MIP slab 15 mm" in str(status.render())
        assert "MIP" in screen.views["axial"].description
        fresh = _fresh(app, screen.series["SeriesInstanceUID"], _pane_request(screen, "axial"))
        assert np.array_equal(screen.views["axial"].values, fresh.view.values)
        # keys faster than redraws: every pane ends as a fresh render of the last state
        frame = screen.frame.copy()
        await pilot.press("right_square_bracket", "right_square_bracket", "right_curly_bracket")
        await pilot.press("tab", "left_square_bracket", "j", "shift+tab", "left_curly_bracket")
        await pilot.press("k", "right")
        await _settle(app, pilot)
        assert not np.allclose(screen.frame, frame)
        for name in ("axial", "coronal", "sagittal", "volume"):
            fresh = _fresh(app, screen.series["SeriesInstanceUID"], _pane_request(screen, name))
            assert np.array_equal(screen.shown[name].image, fresh.image), name
        await pilot.press("r")
        await _settle(app, pilot)
        assert np.allclose(screen.frame, np.eye(3))
        assert "normal (0.000, 1.000, 0.000)" in str(status.render())
        await pilot.press("v")  # the fourth pane: the coronal MIP again
        await _settle(app, pilot)
        assert (
            screen.shown["volume"].view is not None
            and "coronal" in screen.shown["volume"].view.description
        )
    ct.close()


def _pane_request(screen, name: str) -> Request:
    """The request the MPR made for pane ``name`` (the state it shows)."""
    from tui.app.camera import panel_pixels

    view = screen.query_one("#mpr-volume", ImagePanel).view
    return screen._requests(panel_pixels(view), panel_pixels(view, 0))[name]


def _time_shown(viewer) -> int:
    """The time point (1-based) the overlay names."""
    text = _bottom(viewer)
    assert f"/{TIMES}" in text, text
    return int(text.split(" t ")[1].split("/")[0])


def _box_value(viewer) -> float:
    """The value of the shown slice in the box, away from the sphere."""
    values = viewer._shown.view.values
    return float(values[4, values.shape[1] // 2])  # y about -39 mm: the spheres are at y 0


async def test_time_points_step_play_in_order_and_project(four_d: Archive) -> None:
    app = PacsApp(four_d, BANDWIDTH["normal"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_viewer(app, pilot)
        viewer = app.screen
        assert len(viewer._times) == TIMES
        start = _time_shown(viewer)
        assert _box_value(viewer) == pytest.approx(100 * start)
        await pilot.press("full_stop")
        await _settle(app, pilot)
        assert _time_shown(viewer) == start % TIMES + 1
        assert _box_value(viewer) == pytest.approx(100 * (start % TIMES + 1))
        await pilot.press("j")  # another slice, the same time point
        await _settle(app, pilot)
        assert _time_shown(viewer) == start % TIMES + 1
        seen = [_time_shown(viewer)]
        await pilot.press("T")  # the cine through time
        for _ in range(150):
            await pilot.pause(0.02)
            t = _time_shown(viewer)
            if t != seen[-1]:
                assert _box_value(viewer) == pytest.approx(100 * t)
                seen.append(t)
            if len(seen) > 2 * TIMES:
                break
        await pilot.press("T")
        steps = [(b - a) % TIMES for a, b in pairwise(seen)]
        assert len(seen) > TIMES and all(step == 1 for step in steps), seen
        await pilot.press("M")  # the maximum over time at this slice
        await _settle(app, pilot)
        assert f"MIP over {TIMES} time points" in _bottom(viewer)
        uid = viewer.series["SeriesInstanceUID"]
        each = [
            _fresh(app, uid, replace(viewer.request, over_time=False, stack=n)).view.values
            for n in viewer._times
        ]
        assert np.array_equal(viewer._shown.view.values, np.maximum.reduce(each))
        assert _box_value(viewer) == pytest.approx(100 * TIMES)
    four_d.close()


async def test_time_keys_on_a_series_with_one_time_point(ct: Archive) -> None:
    app = PacsApp(ct, BANDWIDTH["normal"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_viewer(app, pilot)
        viewer = app.screen
        request = viewer.request
        await pilot.press("full_stop", "M")
        await _settle(app, pilot)
        assert viewer.request is request
        assert any("one time point" in str(n.message) for n in app._notifications)
    ct.close()


async def test_volume_rendering_of_a_tilted_stack_says_it_was_resampled(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "archive")
    write_series(tmp_path / "tilt", AXIAL, count=20, shear=(0.0, 0.35, 0.0))
    import_paths(archive, [tmp_path / "tilt"])
    app = PacsApp(archive, BANDWIDTH["normal"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_viewer(app, pilot)
        viewer = app.screen
        await pilot.press("v")
        await _shown_full(app, pilot, viewer)
        assert "gantry tilt 9.9° resampled" in _bottom(viewer)
    archive.close()


def test_the_vr_pane_sees_each_plane_from_its_panes_side() -> None:
    """The MPR's VR camera looks the way each pane shows its plane (the renderer's own
    camera axes agree), and camera_towards inverts the renderer's camera."""
    from tui.app.camera import camera_towards
    from tui.app.mpr import plane_axes, seen_from
    from tui.render.vr import Camera, camera_axes

    frame = np.eye(3)
    assert seen_from(frame, "axial") == pytest.approx((0.0, -90.0))  # from the feet
    assert seen_from(frame, "coronal") == pytest.approx((0.0, 0.0))  # from the front
    assert seen_from(frame, "sagittal") == pytest.approx((90.0, 0.0))  # from the left
    for plane in ("axial", "coronal", "sagittal"):  # the picture's right and down are the pane's
        _, row, column = plane_axes(frame, plane)
        _, right, down = camera_axes(Camera(*seen_from(frame, plane)))
        assert np.allclose(right, column) and np.allclose(down, row)
    for azimuth, elevation in [(0, 0), (30, 15), (200, -40), (359, 89)]:
        forward = camera_axes(Camera(azimuth, elevation))[0]
        assert camera_towards(forward) == pytest.approx((azimuth, elevation))


def _notices(app: PacsApp, text: str) -> int:
    return sum(text in str(n.message) for n in app._notifications)


async def _back_to_the_viewer(app, pilot) -> None:
    """Settle; from the browser (an Esc came before the MPR) open the series again."""
    from tui.app.mpr import MPRScreen
    from tui.app.viewer import ViewerScreen

    await _settle(app, pilot)
    if isinstance(app.screen, MPRScreen):
        await pilot.press("escape")
        await _settle(app, pilot)
    if not isinstance(app.screen, ViewerScreen):
        await pilot.press("v")
        await _settle(app, pilot)
    assert isinstance(app.screen, ViewerScreen)


async def test_g_then_escape_at_once_never_stops_the_app(ct: Archive) -> None:
    """g then Esc before the MPR's frames came, from the slices and from VR, and the viewer
    left while its VR frames render: a worker's result arriving after its screen closed
    is dropped, the app runs on."""
    from tui.app.mpr import MPRScreen
    from tui.app.viewer import ViewerScreen

    app = PacsApp(ct, BANDWIDTH["normal"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_viewer(app, pilot)
        for vr in (False, True):
            for delay in (0.0, 0.0, 0.01, 0.02, 0.04, 0.06, 0.1, 0.15, 0.2, 0.3):
                await _back_to_the_viewer(app, pilot)
                if vr and app.screen.request.mode != "vr":
                    await pilot.press("v")
                await pilot.press("g")
                for _ in range(400):  # the MPR comes on screen, its frames not yet
                    if isinstance(app.screen, MPRScreen):
                        break
                    await pilot.pause(0.005)
                await pilot.pause(delay)
                await pilot.press("escape")
                await pilot.pause(0.05)
        for delay in (0.0, 0.02, 0.05, 0.1, 0.2):  # the viewer left while VR renders
            await _back_to_the_viewer(app, pilot)
            await pilot.press("v")
            await pilot.pause(delay)
            await pilot.press("escape", "escape")
            await pilot.pause(0.05)
        await _settle(app, pilot)
        assert app.is_running and app.return_code is None
        # the same, made certain: results handed to the screens after they closed
        await _back_to_the_viewer(app, pilot)
        viewer = app.screen
        await pilot.press("g")
        await _settle(app, pilot)
        mpr = app.screen
        assert isinstance(mpr, MPRScreen) and mpr.shown
        await pilot.press("escape", "escape")  # the MPR, then the viewer closed
        await _settle(app, pilot)
        assert not isinstance(app.screen, (MPRScreen, ViewerScreen))
        images = {name: r.image for name, r in mpr.shown.items()}
        made = dict.fromkeys(mpr.shown, Request())
        mpr._show(mpr._generation, dict(mpr.shown), made, images, "late", None)
        mpr._started(np.zeros(3), np.ones(3), [0], 0.0)
        viewer._show(viewer._shown, viewer.count, viewer.request)
        viewer._refused(viewer.request, "late")
        viewer._open_mpr(None)  # the MPR check's answer: no MPR over the browser
        await _settle(app, pilot)
        assert not isinstance(app.screen, (MPRScreen, ViewerScreen))
    ct.close()


async def test_the_mpr_shows_and_steps_the_viewers_time_point(four_d: Archive) -> None:
    from tui.app.mpr import MPRScreen

    app = PacsApp(four_d, BANDWIDTH["normal"])
    async with app.run_test(size=(140, 50)) as pilot:
        await _open_viewer(app, pilot)
        viewer = app.screen
        await pilot.press("M")  # the MIP over time says so once
        await _settle(app, pilot)
        assert _bottom(viewer).count("time points") == 1, _bottom(viewer)
        await pilot.press("M", "full_stop")
        await _settle(app, pilot)
        t = _time_shown(viewer)
        await pilot.press("g")
        await _settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, MPRScreen) and screen.stack == viewer.request.stack
        status = screen.query_one("#mpr-status", Static)
        uid = screen.series["SeriesInstanceUID"]
        for expected in (t, t % TIMES + 1):
            assert f"t {expected}/{TIMES}" in str(status.render())
            values = screen.views["axial"].values  # the box away from the sphere
            box = values[(values > -900) & (values < 900)]
            assert float(np.median(box)) == pytest.approx(100 * expected, abs=1)
            for name in ("axial", "coronal", "sagittal", "volume"):
                fresh = _fresh(app, uid, _pane_request(screen, name))
                assert np.array_equal(screen.shown[name].image, fresh.image), name
            await pilot.press("full_stop")  # the next time point, here too
            await _settle(app, pilot)
    four_d.close()


async def test_a_small_tilt_turns_the_vr_pane_only_a_little(ct: Archive) -> None:
    app = PacsApp(ct, BANDWIDTH["normal"])
    async with app.run_test(size=(140, 50)) as pilot:
        await _open_viewer(app, pilot)
        await pilot.press("g")
        await _settle(app, pilot)
        screen = app.screen
        panel = screen.query_one("#mpr-volume", ImagePanel)
        before = screen.shown["volume"]
        letters = (_label(panel, "top"), _label(panel, "left"))
        await pilot.press("right_square_bracket")  # the axial plane 5° about its rows
        await _settle(app, pilot)
        after = screen.shown["volume"]
        assert (_label(panel, "top"), _label(panel, "left")) == letters
        assert after.labels["top"] == before.labels["top"]
        assert after.labels["left"] == before.labels["left"]
        a, b = (r.image.astype(float).mean(axis=2).ravel() for r in (before, after))
        assert not np.array_equal(a, b) and np.corrcoef(a, b)[0, 1] > 0.8
    ct.close()


async def test_window_keys_leave_the_transfer_preset_in_vr(ct: Archive) -> None:
    app = PacsApp(ct, BANDWIDTH["normal"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_viewer(app, pilot)
        viewer = app.screen
        await pilot.press("v", "3")
        await _settle(app, pilot)
        preset, request = viewer.request.preset, viewer.request
        assert preset == list(app.transfers["CT"])[2]
        await pilot.press("w", "W", "c", "C", "f")
        await _settle(app, pilot)
        assert viewer.request is request and viewer.request.preset == preset
        assert _notices(app, "VR uses its preset") >= 1
        await pilot.press("m", "w")  # the shaded MIP: its grey's window narrows
        await _settle(app, pilot)
        assert viewer.request.mode == "smip" and viewer.request.window is not None
        await pilot.press("m")
        await _settle(app, pilot)
        assert viewer.request.mode == "vr" and viewer.request.preset == preset
    ct.close()


async def test_the_mpr_of_a_tilted_stack_says_it_was_resampled(tmp_path: Path) -> None:
    from tui.app.mpr import MPRScreen

    archive = Archive(tmp_path / "archive")
    write_series(tmp_path / "tilt", AXIAL, count=20, shear=(0.0, 0.35, 0.0))
    import_paths(archive, [tmp_path / "tilt"])
    app = PacsApp(archive, BANDWIDTH["normal"])
    async with app.run_test(size=(140, 50)) as pilot:
        await _open_viewer(app, pilot)
        await pilot.press("g")
        await _settle(app, pilot)
        assert isinstance(app.screen, MPRScreen)
        status = str(app.screen.query_one("#mpr-status", Static).render())
        assert "gantry tilt 9.9° resampled" in status
    archive.close()


def _keys(screen) -> dict[str, str]:
    """What the footer and ? offer now: key -> description."""
    return {key: active.binding.description for key, active in screen.active_bindings.items()}


async def test_vr_mode_offers_vr_keys_and_esc_goes_back_to_the_slices(ct: Archive) -> None:
    from tui.app.browser import BrowserScreen
    from tui.app.viewer import ViewerScreen

    app = PacsApp(ct, BANDWIDTH["normal"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_viewer(app, pilot)
        viewer = app.screen
        flat = _keys(viewer)
        assert flat["j"] == "Next" and flat["w"] == "Width" and flat["p"] == "Plane"
        await pilot.press("v")
        await _settle(app, pilot)
        keys = _keys(viewer)
        shown = {d for k, d in keys.items() if viewer.active_bindings[k].binding.show}
        assert {"Turn", "Shaded MIP", "Spin", "Slices", "Zoom", "Back"} <= shown, shown
        assert not {"Next", "Prev", "Width", "Plane", "MIP", "Cine"} & set(keys.values())
        assert keys["left"].startswith("Turn") and "Pan" not in keys.values()
        # the overlay says each thing once; a zoom in and out is the zoom before
        assert viewer.request.zoom == VR_ZOOM
        await pilot.press("z")
        await _settle(app, pilot)
        assert _bottom(viewer).count("zoom") == 1, _bottom(viewer)
        await pilot.press("Z")
        await _settle(app, pilot)
        assert viewer.request.zoom == VR_ZOOM and "zoom 1.2500" not in _bottom(viewer)
        await pilot.press("escape")  # VR off first
        await _settle(app, pilot)
        assert isinstance(app.screen, ViewerScreen) and viewer.request.mode == "slice"
        assert _keys(viewer)["j"] == "Next"
        await pilot.press("escape")  # then out of the viewer
        await _settle(app, pilot)
        assert isinstance(app.screen, BrowserScreen)
    ct.close()


async def test_the_loading_notice_only_when_the_first_frame_is_slow(ct: Archive) -> None:
    from tui.app import camera

    app = PacsApp(ct, BANDWIDTH["normal"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_viewer(app, pilot)
        viewer = app.screen
        uid = viewer.series["SeriesInstanceUID"]
        _fresh(app, uid, Request(mode="vr", size=(64, 64)))  # the renderer loaded
        camera._said.clear()
        camera._first.clear()
        await pilot.press("v")  # the first frame comes within a second: no notice
        await _settle(app, pilot)
        await pilot.pause(camera.SLOW + 0.3)
        assert _notices(app, "loading the volume renderer") == 0
        camera._first.clear()  # a first frame that does not come: the notice, once
        await asyncio.to_thread(camera.starting, viewer)
        await asyncio.to_thread(camera.starting, viewer)
        await pilot.pause(camera.SLOW + 0.3)
        await asyncio.to_thread(camera.starting, viewer)
        await pilot.pause(camera.SLOW + 0.3)
        assert _notices(app, "loading the volume renderer") == 1
        camera._first.set()
    ct.close()


async def test_vr_starts_big_and_renders_small_panes_at_256(ct: Archive) -> None:
    app = PacsApp(ct, BANDWIDTH["normal"])
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_viewer(app, pilot)
        viewer = app.screen
        await pilot.press("v")
        image = await _shown_full(app, pilot, viewer)
        assert viewer.request.zoom == VR_ZOOM and max(image.shape[:2]) == 256
        view = viewer.query_one(ImagePanel).view
        pane = (view.size.width, view.size.height * 2)
        assert max(pane) < 256 and image.shape[1] / image.shape[0] == pytest.approx(
            pane[0] / pane[1], rel=0.05
        )
        await pilot.press("m")  # the shaded MIP shows the whole box (bone shows its sphere)
        image = await _shown_full(app, pilot, viewer)
        uid = viewer.series["SeriesInstanceUID"]
        one = _fresh(app, uid, replace(viewer.request, zoom=1.0, size=image.shape[1::-1])).image

        def extent(picture: np.ndarray) -> int:
            rows = np.flatnonzero(picture.max(axis=(1, 2)) > 0)
            return int(rows[-1] - rows[0] + 1)

        assert extent(image) / extent(one) == pytest.approx(VR_ZOOM, rel=0.08)
    ct.close()


async def test_after_any_burst_the_settled_frame_is_the_full_one(tmp_path: Path) -> None:
    """Keys faster than frames, Esc among them (what Esc stops, a load, is not the frame
    under way): what stays is always the full frame of the last request. A volume big
    enough that the full frame takes a while after the coarse one."""
    ct = Archive(tmp_path / "archive")
    write_series(tmp_path / "ct", AXIAL, size=200, count=120, spacing=0.64, step=1.0)
    import_paths(ct, [tmp_path / "ct"])
    app = PacsApp(ct, BANDWIDTH["normal"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_viewer(app, pilot)
        viewer = app.screen
        await pilot.press("v")
        await _settle(app, pilot)
        for burst in (["l"], ["l", "l", "k"], ["z", "h", "2"], ["v", "v", "right", "down"]):
            await pilot.press(*burst)
            viewer.stop_loads()  # what Esc does first (a load under way stops)
            await _shown_full(app, pilot, viewer)
        # A key whose load Esc stopped comes back refused: the screen goes back to the
        # request shown, whose full frame that key had superseded while its coarse one
        # was on screen. The moment made certain: the next key and its refusal come right
        # as the coarse frame shows.
        show = viewer._show

        def then_a_refused_key(rendered, *args) -> None:
            before = viewer._shown_request
            show(rendered, *args)
            if viewer._shown is rendered and viewer._shown_request is not before:  # coarse
                viewer._show = show
                viewer._turn(0.0, 15.0)
                viewer._refused(viewer.request, "loading cancelled")

        viewer._show = then_a_refused_key
        await pilot.press("l")
        await _shown_full(app, pilot, viewer)
        assert viewer._show is show and viewer.request.elevation == 0
        await pilot.press("v", "v", "right", "right", "escape", "down", "v", "v", "v")
        await _settle(app, pilot)
        assert viewer.request.mode == "vr"
        await _shown_full(app, pilot, viewer)
    ct.close()
