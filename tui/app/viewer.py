"""The viewer: one series, slice by slice or projected, in any plane, windowed by keys."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from tui.app.image_view import ImagePanel
from tui.app.privacy import shown
from tui.errors import UserError
from tui.render.lut import Window
from tui.render.pipeline import Request

PLANES = ("acquired", "axial", "coronal", "sagittal")
MODES = ("slice", "mip", "minip", "avg")


class ViewerScreen(Screen[None]):
    """A series in the image widget; every key re-renders in a worker, the latest wins."""

    BINDINGS = [
        Binding("j,down", "step(1)", "Next", id="viewer.next"),
        Binding("k,up", "step(-1)", "Previous", id="viewer.previous"),
        Binding("pagedown", "step(10)", "+10", show=False, id="viewer.next10"),
        Binding("pageup", "step(-10)", "-10", show=False, id="viewer.previous10"),
        Binding("home", "first", "First", show=False, id="viewer.first"),
        Binding("end", "last", "Last", show=False, id="viewer.last"),
        Binding("w", "width(0.8)", "Narrower", id="viewer.narrower"),
        Binding("W", "width(1.25)", "Wider", show=False, id="viewer.wider"),
        Binding("c", "level(-0.05)", "Lower", show=False, id="viewer.lower"),
        Binding("C", "level(0.05)", "Higher", show=False, id="viewer.higher"),
        Binding("i", "invert", "Invert", id="viewer.invert"),
        Binding("m", "mode", "MIP/MinIP/avg", id="viewer.mode"),
        Binding("plus", "slab(2)", "Slab+", show=False, id="viewer.slab_more"),
        Binding("minus", "slab(-2)", "Slab-", show=False, id="viewer.slab_less"),
        Binding("p", "plane", "Plane", id="viewer.plane"),
        Binding("o", "overlay", "Overlay", id="viewer.overlay"),
        Binding("t", "tags", "Tags", id="viewer.tags"),
        *[
            Binding(str(n), f"preset({n - 1})", f"Preset {n}", show=False, id=f"viewer.preset{n}")
            for n in range(1, 10)
        ],
        Binding("escape,q", "app.pop_screen", "Back", id="viewer.back"),
    ]

    def __init__(self, series: dict[str, Any]) -> None:
        super().__init__()
        self.series = series
        self.request = Request()
        self.count = 1  # planes in the current plane (slices, or reslices)
        self.window: Window | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="overlay-top")
        yield ImagePanel(self.app.bandwidth.mode, id="viewer")  # type: ignore[attr-defined]
        yield Static("", id="overlay-bottom")
        yield Footer()

    def on_mount(self) -> None:
        self.redraw()

    @work(thread=True, exclusive=True, group="view")
    def redraw(self) -> None:
        try:
            rendered, count = self.app.render_series(  # type: ignore[attr-defined]
                self.series["SeriesInstanceUID"], self.request, with_count=True
            )
        except UserError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="warning")
            return
        if get_current_worker().is_cancelled:
            return
        self.app.call_from_thread(self._show, rendered, count)

    def _show(self, rendered: Any, count: int) -> None:
        self.count = count
        self.window = rendered.window
        view = rendered.view
        labels = view.labels if view is not None else {}
        aspect = view.pixel_spacing[0] / view.pixel_spacing[1] if view is not None else 1.0
        self.query_one(ImagePanel).show(rendered.image, labels, aspect)
        private = self.app.privacy  # type: ignore[attr-defined]
        ds = rendered.header
        top = [
            shown({"PatientName": ds.get("PatientName", "")}, "PatientName", private),
            shown({"PatientID": ds.get("PatientID", "")}, "PatientID", private),
            str(ds.get("StudyDate", "")),
            f"{self.series.get('Modality', '')} {self.series.get('SeriesNumber') or ''}"
            f" {self.series.get('SeriesDescription', '')}",
        ]
        self.query_one("#overlay-top", Static).update("  ".join(t for t in top if t))
        bottom = [rendered.description, str(rendered.window or "")]
        if self.request.slab and self.request.mode != "slice":
            bottom.append(f"slab {self.request.slab:g} mm")
        self.query_one("#overlay-bottom", Static).update("  ".join(b for b in bottom if b))

    def _update(self, **changes: Any) -> None:
        self.request = replace(self.request, **changes)
        self.redraw()

    def _index(self) -> int:
        return self.count // 2 if self.request.index is None else self.request.index

    def action_step(self, delta: int) -> None:
        self._update(index=max(0, min(self.count - 1, self._index() + delta)), position=None)

    def action_first(self) -> None:
        self._update(index=0, position=None)

    def action_last(self) -> None:
        self._update(index=self.count - 1, position=None)

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        self.action_step(1)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.action_step(-1)

    def _current_window(self) -> Window:
        return self.request.window or self.window or Window(40, 400)

    def action_width(self, factor: float) -> None:
        w = self._current_window()
        self._update(window=Window(w.center, max(1.0, w.width * factor), w.function), preset=None)

    def action_level(self, fraction: float) -> None:
        w = self._current_window()
        self._update(window=Window(w.center + fraction * w.width, w.width, w.function), preset=None)

    def action_preset(self, number: int) -> None:
        modality = str(self.series.get("Modality", "")).upper()
        presets = self.app.presets.get(modality, {})  # type: ignore[attr-defined]
        names = list(presets)
        if number < len(names):
            self._update(preset=names[number], window=None)
            self.notify(f"window: {names[number]}", timeout=1.5)

    def action_invert(self) -> None:
        self._update(invert=not self.request.invert)

    def action_mode(self) -> None:
        mode = MODES[(MODES.index(self.request.mode) + 1) % len(MODES)]
        plane = self.request.plane
        if mode != "slice" and plane in (None, "acquired"):
            plane = "acquired"
        self._update(mode=mode, plane=plane)

    def action_slab(self, delta: float) -> None:
        slab = max(2.0, (self.request.slab or 10.0) + delta * 5)
        self._update(slab=slab)

    def action_plane(self) -> None:
        current = self.request.plane or "acquired"
        plane = PLANES[(PLANES.index(current) + 1) % len(PLANES)]
        self._update(plane=plane, index=None, position=None)

    def action_tags(self) -> None:
        """The header of the slice on screen (acquired plane) or of the series' first."""
        from tui.app.tags import TagScreen

        stack = self.app.stacks(self.series["SeriesInstanceUID"])[self.request.stack]  # type: ignore[attr-defined]
        paths = list(dict.fromkeys(s.source.path for s in stack.slices))
        index = self._index() if (self.request.plane or "acquired") == "acquired" else 0
        self.app.push_screen(TagScreen(paths, min(index, len(paths) - 1)))

    def action_overlay(self) -> None:
        for overlay in self.query("#overlay-top, #overlay-bottom"):
            overlay.toggle_class("hidden")

    @on(events.Resize)
    def resized(self) -> None:
        pass  # the image widget follows resizes itself
