"""A 2 x 2 MPR layout: three planes at right angles through one point, double oblique, and
a volume rendering (or a coronal MIP), with linked crosshairs.

The planes are cut from an orthonormal frame ``e0, e1, e2`` (patient unit vectors, at
first x, y, z): the axial pane across e2 (rows e1, columns e0), the coronal across e1
(rows -e2, columns e0), the sagittal across e0 (rows -e2, columns e1). Tilting the active
pane turns the whole frame about that pane's row or column axis, so the other panes turn
with it and their crosshairs (each pane's rows and columns through the point) stay where
the other planes cut it. Tab picks the pane; arrows move the point in its plane, j/k
through it; a 4-D series' time point is the viewer's, ``.``/``,`` step it. ``P`` prints the
active pane's view as rendered (the print dialog, as the viewer's ``P``)."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from tui.app.camera import VR_ZOOM, camera_towards, orthonormal, panel_pixels, rotation, starting
from tui.app.camera import rendered as came
from tui.app.context import pacs
from tui.app.image_view import ImagePanel
from tui.app.labels import line
from tui.app.messages import OpenPrint
from tui.errors import UserError
from tui.render.lut import Window
from tui.render.pipeline import Request
from tui.render.views import View

PLANES = ("axial", "coronal", "sagittal")
PANELS = (*PLANES, "volume")  # the fourth: a volume rendering, or a coronal MIP
MODES = ("slice", "mip", "minip", "avg")  # the planes: a slice or a slab projection
TILT = 5.0  # degrees a tilt key turns the frame
SLAB = 10.0  # mm: the first slab thickness, and +/- steps of half of it

CROSSHAIR = (255, 200, 0)  # amber: seen on any grey, unlike a grey dotted line


def crosshair(image: np.ndarray, view: View, point: np.ndarray) -> np.ndarray:
    """``image`` (grey) in colour with a solid cross through ``point`` (patient mm), if it
    lies in view."""
    offset = point - view.origin
    row = round(float(offset @ view.row_step) / float(view.row_step @ view.row_step))
    column = round(float(offset @ view.column_step) / float(view.column_step @ view.column_step))
    out = np.repeat(image[:, :, None], 3, axis=2)
    if 0 <= row < out.shape[0]:
        out[row, :] = CROSSHAIR
    if 0 <= column < out.shape[1]:
        out[:, column] = CROSSHAIR
    return out


def plane_axes(frame: np.ndarray, plane: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(normal, row, column) of ``plane`` in ``frame`` (columns e0, e1, e2): with the
    identity frame, the radiological axial, coronal and sagittal views."""
    e0, e1, e2 = frame.T
    if plane == "axial":
        return e2, e1, e0
    if plane == "coronal":
        return e1, -e2, e0
    return e0, -e2, e1


def seen_from(frame: np.ndarray, plane: str) -> tuple[float, float]:
    """The VR camera (azimuth, elevation) that sees the volume from the side ``plane``'s
    pane shows it: looking along column x row (the axial from the feet, the coronal from
    the front, the sagittal from the patient's left, as their panes)."""
    _, row, column = plane_axes(frame, plane)
    return camera_towards(np.cross(column, row), down=row)


def _vector(v: np.ndarray) -> tuple[float, float, float]:
    return float(v[0]), float(v[1]), float(v[2])


class MPRScreen(Screen[None]):
    BINDINGS = [
        Binding("tab", "panel(1)", "Next panel", id="mpr.next_panel"),
        Binding("shift+tab", "panel(-1)", "Previous panel", show=False, id="mpr.prev_panel"),
        Binding("j", "through(1)", "Deeper", id="mpr.deeper"),
        Binding("k", "through(-1)", "Back", id="mpr.back_up"),
        Binding(
            "left_square_bracket", "tilt(0,-1)", "Tilt", tooltip="Tilt left", id="mpr.tilt_left"
        ),
        Binding("right_square_bracket", "tilt(0,1)", "Tilt right", show=False, id="mpr.tilt_right"),
        Binding("left_curly_bracket", "tilt(-1,0)", "Tilt up", show=False, id="mpr.tilt_up"),
        Binding("right_curly_bracket", "tilt(1,0)", "Tilt down", show=False, id="mpr.tilt_down"),
        Binding("r", "reset", "Reset", tooltip="Planes at right angles again", id="mpr.reset"),
        Binding("m", "mode", "MIP", tooltip="Slice/MIP/MinIP/avg slab", id="mpr.mode"),
        Binding("v", "fourth", "VR/MIP", tooltip="Fourth pane: VR or coronal MIP", id="mpr.fourth"),
        Binding("plus", "slab(1)", "Slab+", show=False, id="mpr.slab_more"),
        Binding("minus", "slab(-1)", "Slab-", show=False, id="mpr.slab_less"),
        Binding("left", "move(0,-1)", "Move", show=False, id="mpr.left"),
        Binding("right", "move(0,1)", "Move", show=False, id="mpr.right"),
        Binding("up", "move(-1,0)", "Move", show=False, id="mpr.up"),
        Binding("down", "move(1,0)", "Move", show=False, id="mpr.down"),
        Binding("full_stop", "time(1)", "Next time point", show=False, id="mpr.time_next"),
        Binding("comma", "time(-1)", "Previous time point", show=False, id="mpr.time_prev"),
        Binding(
            "P",
            "print",
            "Print",
            show=False,
            tooltip="Print the active pane's view on a DICOM printer",
            id="mpr.print",
        ),
        Binding("escape,q", "app.pop_screen", "Back", id="mpr.close"),
    ]
    CSS_PATH = Path(__file__).with_name("mpr.tcss")

    def __init__(
        self, series: dict[str, Any], window: Window | None = None, stack: int = 0
    ) -> None:
        super().__init__()
        self.series = series
        self.stack = stack  # the stack shown: a 4-D series' time point
        self.times = [stack]  # the stack numbers of its time points, in order
        self.tilt = 0.0  # the stack's gantry tilt in degrees (resampled), or 0
        self.window = window
        self.active = 0
        self.plane = "axial"  # the plane the keys tilt and move: the active pane's, or the last
        self.point: np.ndarray | None = None
        self.step = np.ones(3)
        self.frame = np.eye(3)  # columns e0, e1, e2: the planes' axes in the patient
        self.mode = "slice"
        self.slab = SLAB
        self.fourth = "vr"
        self.views: dict[str, View] = {}
        self.shown: dict[str, Any] = {}  # the Rendered each pane shows
        self._made: dict[str, Request] = {}  # the request each shown Rendered was made for
        self._frame_cancel = threading.Event()  # set by the next redraw: a stale VR stops
        self._generation = 0  # of the redraws: a late result of an older one is dropped

    def compose(self) -> ComposeResult:
        with Grid():
            for name in PANELS:
                yield pacs(self).image_panel(f"mpr-{name}")
        yield Static("", id="mpr-status")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#mpr-axial").add_class("active")
        self.start()

    def on_unmount(self) -> None:
        self._frame_cancel.set()  # a volume rendering under way stops
        self._generation += 1  # and whatever of it comes late is dropped

    @work(thread=True, group="mpr-start")
    def start(self) -> None:
        """The point at the volume's middle voxel, then the first redraw."""
        from tui.render.pipeline import time_points

        app, uid = pacs(self), self.series["SeriesInstanceUID"]
        try:
            volume = app.volume(uid, self.stack)
            stacks = app.stacks(uid)
        except UserError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="warning")
            return
        stack = stacks[self.stack]
        numbers = {id(s): n for n, s in enumerate(stacks)}
        times = [numbers[id(s)] for s in time_points(stacks, self.stack) if id(s) in numbers]
        affine = volume.affine
        centre = np.floor((np.array(volume.data.shape[::-1]) - 1) / 2)  # a voxel centre
        point = (affine @ np.append(centre, 1))[:3]
        step = np.abs(np.diag(affine[:3, :3])).clip(min=0.5)
        tilt = stack.tilt if stack.tilted else 0.0
        self.app.call_from_thread(self._started, point, step, times or [self.stack], tilt)

    def _started(self, point: np.ndarray, step: np.ndarray, times: list[int], tilt: float) -> None:
        if not self.is_attached:
            return  # closed while the volume loaded (g then Esc)
        self.point, self.step, self.times, self.tilt = point, step, times, tilt
        try:
            self.redraw()
        except NoMatches:
            return  # closing: its widgets go before it is detached

    def redraw(self) -> None:
        """Render what the state says now, in a worker; the redraw before is superseded
        (its VR frame stops, its results are not shown)."""
        if self.point is None:
            return
        self._frame_cancel.set()
        self._frame_cancel = threading.Event()
        self._generation += 1
        view = self.query_one("#mpr-volume", ImagePanel).view
        requests, status = self._requests(panel_pixels(view), panel_pixels(view, 0)), self._status()
        # panes whose request is unchanged (Tab, the fourth pane's key) are not rendered again
        kept = {n: self.shown[n] for n, r in requests.items() if self._made.get(n) == r}
        self.draw_panes(
            self._generation, requests, kept, self.point.copy(), status, self._frame_cancel
        )

    def _requests(
        self, size: tuple[int, int], shown: tuple[int, int] | None = None
    ) -> dict[str, Request]:
        """The panes' requests: the three planes through the point (``shown``: a pane's
        pixels), and the fourth (rendered at ``size``)."""
        side = max(shown or size)
        assert self.point is not None
        requests = {}
        for plane in PLANES:
            normal, row, column = plane_axes(self.frame, plane)
            requests[plane] = Request(
                mode=self.mode,
                slab=self.slab if self.mode != "slice" else None,
                window=self.window if self.mode == "slice" else None,  # projections: their own
                normal=_vector(normal),
                point=_vector(self.point),
                axes=(_vector(row), _vector(column)),
                size=(side, side),  # the pane's pixels: slabs stay quick
                stack=self.stack,
            )
        if self.fourth == "vr":
            azimuth, elevation = seen_from(self.frame, self.plane)
            requests["volume"] = Request(
                mode="vr", azimuth=azimuth, elevation=elevation, zoom=VR_ZOOM, size=size,
                stack=self.stack,
            )  # fmt: skip
        else:
            requests["volume"] = Request(mode="mip", plane="coronal", stack=self.stack)
        return requests

    @work(thread=True, exclusive=True, group="mpr")
    def draw_panes(
        self,
        generation: int,
        requests: dict[str, Request],
        kept: dict[str, Any],
        point: np.ndarray,
        status: str,
        cancel: threading.Event,
    ) -> None:
        """The panes, each rendered as every view is (pipeline.render), or ``kept`` as shown;
        the planes first, then a volume rendering coarse, then full."""
        app, uid = pacs(self), self.series["SeriesInstanceUID"]
        worker = get_current_worker()
        vr = requests["volume"].mode == "vr" and "volume" not in kept
        # The planes first, then the rendering coarse, then full: each shown as it comes.
        planes = [name for name in requests if not (vr and name == "volume")]
        passes = [planes, ["volume"], ["volume"]] if vr else [planes]
        window = None  # the planes' (from the first pass), for the status
        for number, names in enumerate(passes):
            full = number == 2
            try:
                rendered = {}
                for name in names:
                    request = requests[name]
                    if name in kept:
                        rendered[name] = kept[name]
                        continue
                    if name == "volume" and vr:
                        request = replace(request, coarse=not full)
                        starting(self)
                    rendered[name] = app.render_series(uid, request, cancel=cancel)
                    if name == "volume" and vr:
                        came()  # the renderer is loaded: no notice
            except UserError as exc:
                if not cancel.is_set():
                    self.app.call_from_thread(self.notify, str(exc), severity="warning")
                return
            if cancel.is_set() or worker.is_cancelled:
                return
            images = {
                name: crosshair(r.image, r.view, point) if r.view is not None else r.image
                for name, r in rendered.items()
            }
            window = rendered["axial"].window if "axial" in rendered else window
            made = {name: requests[name] for name in rendered}
            if vr and number == 1:
                made.pop("volume")  # a coarse frame: not kept for the next redraw
            self.app.call_from_thread(
                self._show, generation, rendered, made, images, status, window
            )

    def _show(
        self,
        generation: int,
        rendered: dict[str, Any],
        made: dict[str, Request],
        images: dict[str, np.ndarray],
        status: str,
        window: Window | None,
    ) -> None:
        if generation != self._generation or not self.is_attached:
            return  # a newer key's redraw is under way (or the screen closed): an older state
        try:
            self._put(rendered, made, images, status, window)
        except NoMatches:
            return  # the screen is closing: its widgets go before it is detached

    def _put(
        self,
        rendered: dict[str, Any],
        made: dict[str, Request],
        images: dict[str, np.ndarray],
        status: str,
        window: Window | None,
    ) -> None:
        """The panes and the status line (see :meth:`_show`)."""
        for name, r in rendered.items():
            self.shown[name] = r
            if name in made:
                self._made[name] = made[name]
            else:
                self._made.pop(name, None)
            if r.view is not None:
                self.views[name] = r.view
                aspect = r.view.pixel_spacing[0] / r.view.pixel_spacing[1]
            else:
                self.views.pop(name, None)
                aspect = 1.0
            self.query_one(f"#mpr-{name}", ImagePanel).show(images[name], r.labels, aspect)
        if window is not None:
            status += f"  {window}"
        self.query_one("#mpr-status", Static).update(line(status))  # a window's name is a tag

    def _status(self) -> str:
        """The point, the active plane's normal, the mode and slab (as the redraw has them)."""
        assert self.point is not None
        normal = plane_axes(self.frame, self.plane)[0]
        where = ", ".join(f"{v:.1f}" for v in self.point)
        across = ", ".join(f"{v:.3f}" for v in normal)
        mode = self.mode if self.mode == "slice" else f"{self.mode.upper()} slab {self.slab:g} mm"
        pane = PANELS[self.active] if self.active < len(PLANES) else f"{self.fourth} ({self.plane})"
        status = f"{pane} panel  point ({where}) mm  normal ({across})  {mode}"
        if len(self.times) > 1 and self.stack in self.times:
            status += f"  t {self.times.index(self.stack) + 1}/{len(self.times)}"
        if self.tilt:
            status += f"  gantry tilt {self.tilt:.1f}° resampled"
        return status

    def action_panel(self, step: int) -> None:
        self.query_one(f"#mpr-{PANELS[self.active]}").remove_class("active")
        self.active = (self.active + step) % len(PANELS)
        self.query_one(f"#mpr-{PANELS[self.active]}").add_class("active")
        if self.active < len(PLANES):
            self.plane = PLANES[self.active]
        self.redraw()  # the status names the pane; the VR camera looks as it does

    def action_through(self, step: int) -> None:
        """Move the point along the active plane's normal, a voxel at a time."""
        if self.point is None:
            return
        normal = plane_axes(self.frame, self.plane)[0]
        self.point = self.point + step * float(np.abs(normal) @ self.step) * normal
        self.redraw()

    def action_move(self, down: int, right: int) -> None:
        """Move the point in the active plane, a pixel at a time."""
        view = self.views.get(self.plane)
        if self.point is None or view is None:
            return
        self.point = self.point + down * view.row_step + right * view.column_step
        self.redraw()

    def action_tilt(self, about_column: int, about_row: int) -> None:
        """Tilt the active plane about its row axis (``[``/``]``) or its column axis
        (``{``/``}``): the frame turns, and with it the other two planes."""
        _, row, column = plane_axes(self.frame, self.plane)
        axis, sign = (row, about_row) if about_row else (column, about_column)
        self.frame = orthonormal(rotation(axis, sign * TILT) @ self.frame)
        self.redraw()

    def action_reset(self) -> None:
        """The planes at right angles to the patient axes again (the point stays)."""
        self.frame = np.eye(3)
        self.redraw()

    def action_mode(self) -> None:
        self.mode = MODES[(MODES.index(self.mode) + 1) % len(MODES)]
        self.redraw()

    def action_slab(self, steps: int) -> None:
        self.slab = max(2.0, self.slab + steps * SLAB / 2)
        if self.mode == "slice":
            self.notify("the slab is for MIP, MinIP and average (m)", timeout=2)
            return
        self.redraw()

    def action_time(self, delta: int) -> None:
        """The next or previous time point of a 4-D series, at the same point and planes."""
        if len(self.times) < 2:
            self.notify("one time point: no time keys", timeout=2)
            return
        now = self.times.index(self.stack) if self.stack in self.times else 0
        self.stack = self.times[(now + delta) % len(self.times)]
        self.redraw()

    def action_fourth(self) -> None:
        self.fourth = "mip" if self.fourth == "vr" else "vr"
        self.redraw()

    def action_print(self) -> None:
        """Print the active pane's view as rendered (its plane, point, slab and mode, window;
        the fourth pane's rendering or MIP), not the terminal's picture of it nor the
        crosshair: the print dialog, as the viewer's P opens it."""
        name = PANELS[self.active]
        rendered, request = self.shown.get(name), self._made.get(name)
        if rendered is None or request is None:  # not drawn yet, or a coarse frame
            self.notify("wait for the pane's image", timeout=2)
            return
        if request.mode == "mip" and request.normal is None and request.index is None:
            request = replace(request, index=0)  # through the whole volume: one image
        series = self.series
        number = "" if series.get("SeriesNumber") is None else series["SeriesNumber"]
        label = line(
            f"{series.get('Modality') or '?'} {number}  ",
            str(series.get("SeriesDescription") or "(no description)"),
        )
        pane = f"{name} pane"
        if name == "volume":
            pane = (
                f"rendering seen from the {self.plane} side" if self.fourth == "vr" else "MIP pane"
            )
        words = [pane, rendered.description]
        if request.mode == "vr" and "azimuth" not in rendered.description:
            words.append(f"azimuth {request.azimuth:g}° elevation {request.elevation:g}°")
        if request.mode != "vr":
            words.append(str(rendered.window or ""))
        if len(self.times) > 1 and self.stack in self.times:
            words.append(f"t {self.times.index(self.stack) + 1}/{len(self.times)}")
        what = "  ".join(w for w in words if w)
        self.app.post_message(OpenPrint(series, label, replace(request, coarse=False), what))
