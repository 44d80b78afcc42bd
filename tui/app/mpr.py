"""A 2 x 2 MPR layout: axial, coronal and sagittal planes through one point, and a coronal
MIP, with linked crosshairs. Tab picks the panel; arrows move the point in its plane, j/k
through it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.screen import Screen
from textual.widgets import Footer, Static

from tui.app.context import pacs
from tui.app.image_view import ImagePanel
from tui.app.labels import line
from tui.errors import UserError
from tui.render.lut import Window
from tui.render.pipeline import Request
from tui.render.views import View

PANELS = ("axial", "coronal", "sagittal", "mip")
_AXIS = {"axial": 2, "coronal": 1, "sagittal": 0}


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


class MPRScreen(Screen[None]):
    BINDINGS = [
        Binding("tab", "panel(1)", "Next panel", id="mpr.next_panel"),
        Binding("shift+tab", "panel(-1)", "Previous panel", show=False, id="mpr.prev_panel"),
        Binding("j", "through(1)", "Deeper", id="mpr.deeper"),
        Binding("k", "through(-1)", "Back", id="mpr.back_up"),
        Binding("left", "move(0,-1)", "Move", show=False, id="mpr.left"),
        Binding("right", "move(0,1)", "Move", show=False, id="mpr.right"),
        Binding("up", "move(-1,0)", "Move", show=False, id="mpr.up"),
        Binding("down", "move(1,0)", "Move", show=False, id="mpr.down"),
        Binding("escape,q", "app.pop_screen", "Back", id="mpr.close"),
    ]
    CSS_PATH = Path(__file__).with_name("mpr.tcss")

    def __init__(self, series: dict[str, Any], window: Window | None = None) -> None:
        super().__init__()
        self.series = series
        self.window = window
        self.active = 0
        self.point: np.ndarray | None = None
        self.step = np.ones(3)
        self.views: dict[str, View] = {}

    def compose(self) -> ComposeResult:
        with Grid():
            for name in PANELS:
                yield pacs(self).image_panel(f"mpr-{name}")
        yield Static("", id="mpr-status")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#mpr-axial").add_class("active")
        self.redraw()

    @work(thread=True, exclusive=True, group="mpr")
    def redraw(self) -> None:
        """The three planes through the point and the coronal MIP, each rendered as every
        view is (pipeline.render): the viewer's window, else the series'; the MIP its own."""
        app, uid = pacs(self), self.series["SeriesInstanceUID"]
        try:
            if self.point is None:
                volume = app.volume(uid)
                affine = volume.affine
                centre = np.floor((np.array(volume.data.shape[::-1]) - 1) / 2)  # a voxel centre
                self.point = (affine @ np.append(centre, 1))[:3]
                self.step = np.abs(np.diag(affine[:3, :3])).clip(min=0.5)
            point = self.point
            requests = {
                plane: Request(plane=plane, position=float(point[_AXIS[plane]]), window=self.window)
                for plane in ("axial", "coronal", "sagittal")
            }
            requests["mip"] = Request(mode="mip", plane="coronal")
            rendered = {name: app.render_series(uid, r) for name, r in requests.items()}
        except UserError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="warning")
            return
        views = {name: r.view for name, r in rendered.items()}
        images = {name: crosshair(r.image, r.view, point) for name, r in rendered.items()}
        self.app.call_from_thread(self._show, views, images, rendered["axial"].window)

    def _show(self, views: dict[str, View], images: dict[str, np.ndarray], window: Any) -> None:
        self.views = views
        for name, view in views.items():
            aspect = view.pixel_spacing[0] / view.pixel_spacing[1]
            self.query_one(f"#mpr-{name}", ImagePanel).show(images[name], view.labels, aspect)
        where = ", ".join(f"{v:.1f}" for v in self.point) if self.point is not None else ""
        self.query_one("#mpr-status", Static).update(  # a window's name is a tag value
            line(f"{PANELS[self.active]} panel  point ({where}) mm  {window}")
        )

    def action_panel(self, step: int) -> None:
        self.query_one(f"#mpr-{PANELS[self.active]}").remove_class("active")
        self.active = (self.active + step) % len(PANELS)
        self.query_one(f"#mpr-{PANELS[self.active]}").add_class("active")

    def _plane(self) -> str:
        return "coronal" if PANELS[self.active] == "mip" else PANELS[self.active]

    def action_through(self, step: int) -> None:
        if self.point is None:
            return
        axis = _AXIS[self._plane()]
        self.point[axis] += step * self.step[axis]
        self.redraw()

    def action_move(self, down: int, right: int) -> None:
        view = self.views.get(self._plane())
        if self.point is None or view is None:
            return
        self.point = self.point + down * view.row_step + right * view.column_step
        self.redraw()
