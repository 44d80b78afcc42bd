"""The viewer: one series, slice by slice or projected, in any plane, windowed by keys;
volume rendered (``v``) and turned by keys; a 4-D series stepped and played through time.

One module past 600 lines: every key changes the one request the viewer shows, and the
VR and time keys are modes of the same keys (arrows turn, numbers pick a transfer preset),
so splitting them would split the request's state."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer, ProgressBar, Static
from textual.worker import get_current_worker

from tui.app.camera import VR_ZOOM
from tui.app.context import pacs
from tui.app.dialogs import NoteScreen
from tui.app.image_view import ImagePanel
from tui.app.labels import line
from tui.app.messages import OpenMpr, OpenPrint, OpenTags
from tui.errors import UserError
from tui.privacy import shown
from tui.render.lut import Window
from tui.render.pipeline import Request

PLANES = ("acquired", "axial", "coronal", "sagittal")
MODES = ("slice", "mip", "minip", "avg")
VR_MODES = ("vr", "smip")  # volume rendering, shaded MIP: ``m`` switches in VR
TURN, FINE = 15.0, 5.0  # degrees a VR turn key (arrows, h/j/k/l) and shift+arrow turn
SPIN = 10.0  # degrees a cine frame in VR turns the volume
# Actions of VR's own keys, and of the slice view's keys they replace (or that mean
# nothing in VR): either set is hidden (footer, ?) and off while the other mode is on.
_VR_ONLY = {
    "turn", "tip", "fine", "vr_mode", "spin", "slices", "vr_window", "vr_level", "vr_preset",
}  # fmt: skip
_FLAT_ONLY = {
    "step", "mode", "plane", "width", "level", "own_window", "slab", "first", "last", "pan",
    "preset", "cine", "vr", "over_time", "invert",
}  # fmt: skip


class ViewerScreen(Screen[None]):
    """A series in the image widget; every key re-renders in a worker, the latest wins."""

    # Footer order: what 80 columns show first (the rest is in ?). Descriptions are short
    # so that 120 columns show every key the footer offers; tooltips are the long names
    # (the command palette and ? use them).
    BINDINGS = [
        # VR's turn keys first (keys the slice view has not: the footer's order is that
        # of each key's first binding, so VR's footer starts with them)
        Binding("h,left", "turn(-1)", "Turn", tooltip="VR: turn left 15°", id="viewer.turn_left"),
        Binding("l,right", "turn(1)", "VR: turn right", show=False, id="viewer.turn_right"),
        # the slice view's keys (hidden in VR where VR has its own, below)
        Binding("j,down", "step(1)", "Next", id="viewer.next"),
        Binding("k,up", "step(-1)", "Prev", id="viewer.previous"),
        Binding("m", "mode", "MIP", tooltip="MIP/MinIP/avg", id="viewer.mode"),
        Binding("p", "plane", "Plane", id="viewer.plane"),
        Binding("w", "width(0.8)", "Width", tooltip="Narrower window", id="viewer.narrower"),
        Binding("i", "invert", "Invert", id="viewer.invert"),
        Binding("g", "mpr", "MPR", tooltip="MPR 2x2", id="viewer.mpr"),
        Binding("e", "export", "Export", tooltip="Export view", id="viewer.export"),
        Binding("escape,q", "back", "Back", id="viewer.back"),
        Binding("t", "tags", "Tags", id="viewer.tags"),
        Binding("space", "cine", "Cine", tooltip="Play/pause", id="viewer.cine"),
        Binding("z", "zoom(1.5)", "Zoom", tooltip="Zoom in", id="viewer.zoom_in"),
        Binding("o", "overlay", "Overlay", id="viewer.overlay"),
        Binding("v", "vr", "VR", tooltip="Volume rendering on/off", id="viewer.vr"),
        Binding(
            "P",
            "print",
            "Print",
            tooltip="Print this view, or a sheet of this plane, on a DICOM printer",
            id="viewer.print",
        ),
        Binding("full_stop", "time(1)", "Next time point", show=False, id="viewer.time_next"),
        Binding("comma", "time(-1)", "Previous time point", show=False, id="viewer.time_prev"),
        Binding("T", "time_cine", "Cine through time", show=False, id="viewer.time_cine"),
        Binding("M", "over_time", "MIP over time", show=False, id="viewer.time_mip"),
        Binding("pagedown", "step(10)", "+10", show=False, id="viewer.next10"),
        Binding("pageup", "step(-10)", "-10", show=False, id="viewer.previous10"),
        Binding("home", "first", "First", show=False, id="viewer.first"),
        Binding("end", "last", "Last", show=False, id="viewer.last"),
        Binding("W", "width(1.25)", "Wider", show=False, id="viewer.wider"),
        Binding("c", "level(-0.05)", "Lower", show=False, id="viewer.lower"),
        Binding("C", "level(0.05)", "Higher", show=False, id="viewer.higher"),
        Binding("f", "own_window", "Image's own window", show=False, id="viewer.own_window"),
        Binding("plus", "slab(2)", "Slab+", show=False, id="viewer.slab_more"),
        Binding("minus", "slab(-2)", "Slab-", show=False, id="viewer.slab_less"),
        Binding("greater_than_sign", "fps(1.5)", "Faster", show=False, id="viewer.faster"),
        Binding("less_than_sign", "fps(0.67)", "Slower", show=False, id="viewer.slower"),
        Binding("Z", "zoom(0.6667)", "Zoom out", show=False, id="viewer.zoom_out"),
        Binding("shift+left", "pan(0,-1)", "Pan", show=False, id="viewer.pan_left"),
        Binding("shift+right", "pan(0,1)", "Pan", show=False, id="viewer.pan_right"),
        Binding("shift+up", "pan(-1,0)", "Pan", show=False, id="viewer.pan_up"),
        Binding("shift+down", "pan(1,0)", "Pan", show=False, id="viewer.pan_down"),
        *[
            Binding(str(n), f"preset({n - 1})", f"Preset {n}", show=False, id=f"viewer.preset{n}")
            for n in range(1, 10)
        ],
        # VR's other keys, only while it is on (the slice keys on the same keys are hidden)
        Binding("k,up", "tip(1)", "VR: turn up", show=False, id="viewer.turn_up"),
        Binding("j,down", "tip(-1)", "VR: turn down", show=False, id="viewer.turn_down"),
        Binding("shift+left", "fine(-1,0)", "VR: turn left 5°", show=False, id="viewer.fine_left"),
        Binding("shift+right", "fine(1,0)", "VR: turn right 5°", show=False, id="viewer.fine_rt"),
        Binding("shift+up", "fine(0,1)", "VR: turn up 5°", show=False, id="viewer.fine_up"),
        Binding("shift+down", "fine(0,-1)", "VR: turn down 5°", show=False, id="viewer.fine_down"),
        Binding("m", "vr_mode", "Shaded MIP", tooltip="VR / shaded MIP", id="viewer.vr_mode"),
        Binding("space", "spin", "Spin", tooltip="VR: turn it round", id="viewer.spin"),
        Binding("v", "slices", "Slices", tooltip="VR off: back to the slices", id="viewer.slices"),
        Binding("w", "vr_window(0.8)", "Narrower", show=False, id="viewer.vr_narrower"),
        Binding("W", "vr_window(1.25)", "Wider", show=False, id="viewer.vr_wider"),
        Binding("c", "vr_level(-0.05)", "Lower", show=False, id="viewer.vr_lower"),
        Binding("C", "vr_level(0.05)", "Higher", show=False, id="viewer.vr_higher"),
        *[
            Binding(
                str(n),
                f"vr_preset({n - 1})",
                f"Transfer preset {n}",
                show=False,
                id=f"viewer.vr_preset{n}",
            )
            for n in range(1, 10)
        ],
    ]

    def __init__(self, series: dict[str, Any]) -> None:
        super().__init__()
        self.series = series
        self.fps = 8.0
        self._cine: Any = None
        self._shown: Any = None  # the Rendered on screen: for lookups and export
        self._shown_request: Request | None = None  # the request that made it
        self._coarse = False  # what is shown is VR's coarse frame (its full one is owed)
        self.zoom = 1.0
        self.centre = (0.5, 0.5)  # the zoomed window's centre, as fractions of the image
        self._crop = (0, 0, 1, 1)  # rows and columns of the image on screen: r0, c0, h, w
        self._drag: tuple[int, int, Window] | None = None
        # One cancel token per load this viewer started: Esc and leaving stop them all.
        self._loads: set[threading.Event] = set()
        self._loads_lock = threading.Lock()
        self.request = Request()
        self.count = 1  # planes in the current plane (slices, or reslices)
        self._early_steps = 0
        self.window: Window | None = None
        # The newest request's frame token: the next request sets it, so a VR frame still
        # rendering for an older key stops, and a late one is never shown.
        self._frame = threading.Event()
        self._flat: Request | None = None  # the 2-D request to come back to from VR
        # VR's last camera and preset, kept across toggles
        self._camera = Request(mode="vr", zoom=VR_ZOOM)
        self._transfers: dict[str, Any] | None = None  # VR presets, read in a worker
        # VR's transfer preset and shaded MIP's window, kept while the other mode is on
        self._presets_kept: dict[str, tuple[str | None, Window | None]] = {}
        self._times: list[int] | None = None  # the stack numbers of the time points, in order
        self._cine_time = False  # the cine plays through time, not through the slices

    def compose(self) -> ComposeResult:
        yield ProgressBar(total=None, id="loading", show_eta=False)
        yield Static("", id="overlay-top")
        yield pacs(self).image_panel("viewer")
        yield Static("", id="overlay-bottom")
        yield Footer(compact=True, show_command_palette=False)  # 80 columns: the keys first

    def on_mount(self) -> None:
        self.redraw()
        self.prepare_projections()

    @work(thread=True, group="prepare")
    def prepare_projections(self) -> None:
        """An oblique stack is resampled onto the patient grid once, in the background, so
        the first MIP or reformat in a patient plane comes in milliseconds, not seconds."""
        from tui.render.views import is_oblique, prepare

        app: Any = self.app
        uid, number = self.series["SeriesInstanceUID"], self.request.stack
        try:
            stack = app.stacks(uid)[number]
            if is_oblique(stack.affine) and stack.mpr_refusal is None:
                with self._load() as cancel:
                    prepare(app.volume(uid, number, cancel=cancel))
        except (UserError, IndexError):
            return  # the viewer says why when the user asks for the view

    @contextmanager
    def _load(self, cancel: threading.Event | None = None) -> Iterator[threading.Event]:
        """A cancel token for one load (or ``cancel``), set by :meth:`stop_loads` while the
        load runs."""
        cancel = cancel or threading.Event()
        with self._loads_lock:
            self._loads.add(cancel)
        try:
            yield cancel
        finally:
            with self._loads_lock:
                self._loads.discard(cancel)

    def stop_loads(self) -> None:
        """Stop every volume load this viewer started (a wait for another's load too)."""
        with self._loads_lock:
            for cancel in self._loads:
                cancel.set()

    def redraw(self) -> None:
        """Render the current request in a worker; the request before it is superseded:
        its VR frame stops rendering, and whatever of it comes late is not shown."""
        self._frame.set()
        self._frame = threading.Event()
        size = None
        if self.request.mode in VR_MODES:
            from tui.app.camera import panel_pixels

            size = panel_pixels(self.query_one(ImagePanel).view)
        self.draw_request(self.request, self._frame, size)

    def _progress(self) -> tuple[Any, Any]:
        """A progress callback for a volume load (from a worker) and what hides the bar."""
        try:
            bar = self.query_one("#loading", ProgressBar)
        except NoMatches:  # the screen closed while the worker started: nothing to show
            return (lambda done, total: None), (lambda: None)
        shown = False

        def progress(done: int, total: int) -> None:
            nonlocal shown
            self.app.call_from_thread(bar.update, total=total, progress=done)
            if not shown:  # from the first report: one joining a load under way starts midway
                shown = True
                self.app.call_from_thread(bar.add_class, "shown")

        return progress, lambda: self.app.call_from_thread(bar.remove_class, "shown")

    @work(thread=True, exclusive=True, group="view")
    def draw_request(
        self, request: Request, frame: threading.Event, size: tuple[int, int] | None
    ) -> None:
        if request.mode in VR_MODES:
            self._render_volume(request, frame, size)
            return
        progress, hide = self._progress()
        try:
            with self._load() as cancel:
                rendered, count = pacs(self).render_series(
                    self.series["SeriesInstanceUID"],
                    request,
                    with_count=True,
                    progress=progress,
                    cancel=cancel,
                )
            times = self._time_stacks(request)
        except UserError as exc:
            self.app.call_from_thread(self._refused, request, str(exc))
            return
        finally:
            hide()
        if get_current_worker().is_cancelled:
            return
        self.app.call_from_thread(self._show, rendered, count, request, times)

    def _render_volume(
        self, request: Request, frame: threading.Event, size: tuple[int, int] | None
    ) -> None:
        """Progressive VR: the volume loaded (with the bar, stopped by Esc), then a coarse
        frame shown at once and the full one after, each dropped once a newer key came."""
        from tui.app.camera import rendered as came
        from tui.app.camera import starting
        from tui.render.pipeline import pick_stack, volume_of

        app, uid = pacs(self), self.series["SeriesInstanceUID"]
        progress, hide = self._progress()
        try:
            with self._load() as cancel:
                volume_of(pick_stack(app.stacks(uid), request.stack), app.cache, progress, cancel)
            self._transfers = app.transfers  # for the number keys (read here: a file)
            times = self._time_stacks(request)
        except UserError as exc:
            self.app.call_from_thread(self._refused, request, str(exc))
            return
        finally:
            hide()
        starting(self)
        for coarse in (True, False):
            try:  # the frame token stops a superseded frame; it is not a load Esc stops
                rendered = app.render_series(
                    uid, replace(request, coarse=coarse, size=size), cancel=frame
                )
            except UserError as exc:
                if not frame.is_set():  # a superseded frame stops quietly
                    self.app.call_from_thread(self._refused, request, str(exc))
                return
            finally:
                came()  # done or refused: the renderer is loaded
            if frame.is_set() or get_current_worker().is_cancelled:
                return
            self.app.call_from_thread(
                self._show, rendered, self.count, request, times, frame, coarse
            )

    def _time_stacks(self, request: Request) -> list[int]:
        """The numbers of the stacks at the time points of ``request``'s stack (same
        geometry), in time order (in a worker: the series' stacks may be read)."""
        if self._times is not None:
            return self._times
        from tui.render.pipeline import time_points

        stacks = pacs(self).stacks(self.series["SeriesInstanceUID"])
        group = time_points(stacks, request.stack)
        numbers = {id(stack): n for n, stack in enumerate(stacks)}
        return [numbers[id(stack)] for stack in group if id(stack) in numbers]

    def _refused(self, request: Request, reason: str) -> None:
        """Say why the view cannot be shown and keep the one on screen: the next key
        starts from what is shown, not from the refused request (a tilted stack's MIP
        after a refused plane)."""
        if not self.is_attached:
            return  # the screen closed while the worker ran
        self.notify(reason, severity="warning")
        if self.request is request and self._shown_request is not None:
            self.request = self._shown_request
            self.refresh_bindings()  # back from a refused VR: the arrows step again
            if self._coarse:  # its full frame was dropped for the refused key: owed still
                self.redraw()

    def _show(
        self,
        rendered: Any,
        count: int,
        request: Request | None = None,
        times: list[int] | None = None,
        frame: threading.Event | None = None,
        coarse: bool = False,
    ) -> None:
        """Show ``rendered``, made for ``request``: only while that is still the current
        request (a frame of an older key, coarse or full, arriving late is dropped);
        without one, what is shown again (zoom, pan). ``coarse``: VR's quick frame, the
        full one to come."""
        if request is not None and (request is not self.request or (frame and frame.is_set())):
            return
        if not self.is_attached:
            return  # a worker's frame after the screen closed
        if request is not None:
            self._coarse = coarse
        try:
            self._put(rendered, count, request, times)
        except NoMatches:
            return  # the screen is closing: its widgets go before it is detached

    def _put(
        self, rendered: Any, count: int, request: Request | None, times: list[int] | None
    ) -> None:
        """Show ``rendered`` (see :meth:`_show`) in the panel and the overlays."""
        first = self._shown is None
        self._shown = rendered
        if request is not None:
            self._shown_request = request
        if times is not None:
            self._times = times
        self.count = count
        if first and self._early_steps:
            steps, self._early_steps = self._early_steps, 0
            self.action_step(steps)
        self.window = rendered.window
        view = rendered.view
        volume = self._vr(self._shown_request)
        aspect = view.pixel_spacing[0] / view.pixel_spacing[1] if view is not None else 1.0
        image = rendered.image if volume else self._zoomed(rendered.image)  # VR zooms its camera
        self.query_one(ImagePanel).show(image, rendered.labels, aspect)
        private = pacs(self).privacy
        ds = rendered.header
        top = [
            shown({"PatientName": ds.get("PatientName", "")}, "PatientName", private),
            shown({"PatientID": ds.get("PatientID", "")}, "PatientID", private),
            str(ds.get("StudyDate", "")),
            f"{self.series.get('Modality', '')} {self.series.get('SeriesNumber') or ''}"
            f" {self.series.get('SeriesDescription', '')}",
        ]
        self.query_one("#overlay-top", Static).update(line("  ".join(t for t in top if t)))
        self.query_one("#overlay-bottom", Static).update(line("  ".join(self._bottom(rendered))))

    def _bottom(self, rendered: Any) -> list[str]:
        """The bottom overlay: what the view is, its window, slab, camera and time point."""
        request = self._shown_request or self.request
        bottom = [rendered.description]
        if self._vr(request):
            if "azimuth" not in rendered.description:
                bottom.append(f"azimuth {request.azimuth:g}° elevation {request.elevation:g}°")
            if request.zoom != 1 and "zoom" not in rendered.description:
                bottom.append(f"zoom {request.zoom:.3g}")
        if request.mode != "vr":
            bottom.append(str(rendered.window or ""))
        if request.slab and request.mode in MODES[1:]:
            bottom.append(f"slab {request.slab:g} mm")
        times = self._times or []
        if len(times) > 1:
            if request.over_time and "time points" not in rendered.description:
                bottom.append(f"MIP over {len(times)} time points")
            elif request.stack in times:
                bottom.append(f"t {times.index(request.stack) + 1}/{len(times)}")
        return [b for b in bottom if b]

    @staticmethod
    def _vr(request: Request | None) -> bool:
        return request is not None and request.mode in VR_MODES

    def _update(self, **changes: Any) -> None:
        self.request = replace(self.request, **changes)
        self.redraw()

    def _index(self) -> int:
        return self.count // 2 if self.request.index is None else self.request.index

    def action_step(self, delta: int) -> None:
        if self._vr(self.request):  # up/k turns the camera up toward the head
            self._turn(0.0, -delta * TURN)
            return
        if self._shown is None:  # keys pressed before the first frame count once it is here
            self._early_steps += delta
            return
        self._update(index=max(0, min(self.count - 1, self._index() + delta)), position=None)

    def action_first(self) -> None:
        self._update(index=0, position=None)

    def action_last(self) -> None:
        self._update(index=self.count - 1, position=None)

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        if self._vr(self.request):  # in VR the wheel zooms the camera
            self.action_zoom(0.8)
        else:
            self.action_step(1)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        if self._vr(self.request):
            self.action_zoom(1.25)
        else:
            self.action_step(-1)

    def _current_window(self) -> Window:
        return self.request.window or self.window or Window(40, 400)

    def action_vr_window(self, factor: float) -> None:
        """In the shaded MIP its grey's window; the rendering is coloured by its preset."""
        if self._vr_window_says():
            self.action_width(factor)

    def action_vr_level(self, fraction: float) -> None:
        if self._vr_window_says():
            self.action_level(fraction)

    def _vr_window_says(self) -> bool:
        """May a window key act (the shaded MIP)? If not, say why, once a key."""
        if self.request.mode == "smip":
            return True
        self.notify("the window sets the shaded MIP's grey (m); VR uses its preset", timeout=2)
        return False

    def action_vr_preset(self, number: int) -> None:
        self.action_preset(number)

    def action_width(self, factor: float) -> None:
        w = self._current_window()
        self._update(window=Window(w.center, max(1.0, w.width * factor), w.function), preset=None)

    def action_level(self, fraction: float) -> None:
        w = self._current_window()
        self._update(window=Window(w.center + fraction * w.width, w.width, w.function), preset=None)

    def action_preset(self, number: int) -> None:
        """A window preset by number; in VR a transfer preset (shaded MIP: a window)."""
        modality = str(self.series.get("Modality", "")).upper()
        vr = self.request.mode == "vr"
        presets = (self._transfers or {}) if vr else pacs(self).presets
        names = list(presets.get(modality, {}) or (presets.get("MR", {}) if vr else {}))
        if number < len(names):
            self._update(preset=names[number], window=None)
            self.notify(f"{'transfer' if vr else 'window'}: {names[number]}", timeout=1.5)
        elif names:
            offered = ", ".join(f"{n + 1} {name}" for n, name in enumerate(names))
            self.notify(f"no preset {number + 1} for {modality}: {offered}", severity="warning")
        else:
            self.notify(
                f"no window presets for {modality or 'this modality'} (add some in presets.toml)",
                severity="warning",
            )

    def action_own_window(self) -> None:
        """Each image's own window (as the files suggest it), or one for the whole series."""
        own = self.request.file_window is None
        self._update(file_window=0 if own else None, window=None, preset=None)
        self.notify("each image's own window" if own else "one window for the series", timeout=1.5)

    def action_invert(self) -> None:
        self._update(invert=not self.request.invert)

    def action_vr_mode(self) -> None:
        self.action_mode()

    def action_mode(self) -> None:
        if self._vr(self.request):  # VR and shaded MIP: each keeps its kind of preset
            request = self.request
            mode = VR_MODES[1 - VR_MODES.index(request.mode)]
            self._presets_kept[request.mode] = (request.preset, request.window)
            preset, window = self._presets_kept.get(mode, (None, None))
            self._update(mode=mode, preset=preset, window=window)
            return
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

    @work(thread=True, group="tags")
    def action_tags(self) -> None:
        """The header of the slice on screen (acquired plane) or of the series' first
        (in a worker: the series' stacks may have to be read from the index)."""
        try:
            stack = pacs(self).stacks(self.series["SeriesInstanceUID"])[self.request.stack]
        except UserError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="warning")
            return
        paths = list(dict.fromkeys(s.source.path for s in stack.slices))
        index = self._index() if (self.request.plane or "acquired") == "acquired" else 0
        self.app.post_message(OpenTags(paths, min(index, len(paths) - 1)))

    def _zoomed(self, image: Any) -> Any:
        """The part of the image the zoom and pan show (pixels are only cropped: the
        encoder's area averaging does the magnifying)."""
        h, w = image.shape[:2]
        ch, cw = max(1, round(h / self.zoom)), max(1, round(w / self.zoom))
        r0 = min(max(0, round(self.centre[0] * h - ch / 2)), h - ch)
        c0 = min(max(0, round(self.centre[1] * w - cw / 2)), w - cw)
        self._crop = (r0, c0, ch, cw)
        return image[r0 : r0 + ch, c0 : c0 + cw]

    def action_zoom(self, factor: float) -> None:
        if self._vr(self.request):  # the camera zooms: a sharper picture, not a crop
            # rounded: a zoom in and out is the zoom before (not 1.00005)
            self._update(zoom=round(max(0.5, min(8.0, self.request.zoom * factor)), 2))
            return
        self.zoom = max(1.0, min(8.0, self.zoom * factor))
        if self._shown is not None:
            self._show(self._shown, self.count)

    def action_pan(self, down: int, right: int) -> None:
        if self._vr(self.request):  # shift+arrows: fine turns
            self._turn(right * FINE, -down * FINE)
            return
        step = 0.1 / self.zoom
        row = min(1.0, max(0.0, self.centre[0] + down * step))
        column = min(1.0, max(0.0, self.centre[1] + right * step))
        self.centre = (row, column)
        if self._shown is not None:
            self._show(self._shown, self.count)

    def action_back(self) -> None:
        """Esc while a volume loads stops the loading; in VR back to the slices; otherwise
        back to the browser (stopping what loads in the background)."""
        self.stop_loads()
        if self.query_one("#loading").has_class("shown"):
            return
        if self._vr(self.request):
            self.action_vr()
            return
        self.app.pop_screen()

    def on_unmount(self) -> None:
        """Whatever still runs for this screen stops, and shows nothing when it ends; a
        file opened to view (not in the archive) is closed with it: its scratch copy goes."""
        self.stop_loads()
        self._frame.set()
        if self._cine is not None:
            self._cine.stop()
            self._cine = None
        pacs(self).close_file(self.series["SeriesInstanceUID"])

    def on_mouse_down(self, event: events.MouseDown) -> None:
        self._drag = (event.screen_x, event.screen_y, self._current_window())

    def on_mouse_up(self, event: events.MouseUp) -> None:
        self._drag = None

    def _drag_window(self, event: events.MouseMove) -> bool:
        """Dragging with a button down sets the window: right wider, down brighter."""
        if not event.button or self._drag is None or self.request.mode == "vr":
            return False  # a rendering has no window (its transfer preset colours it)
        x, y, start = self._drag
        width = max(1.0, start.width * (1.02 ** (event.screen_x - x)))
        centre = start.center - (event.screen_y - y) * start.width / 100
        self._update(window=Window(centre, width, start.function), preset=None)
        return True

    @work(thread=True, group="mpr-check")
    def action_mpr(self) -> None:
        """The 2x2 MPR, or why this stack cannot be resliced (said before, not in it)."""
        try:
            stacks = pacs(self).stacks(self.series["SeriesInstanceUID"])
        except UserError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="warning")
            return
        refusal = stacks[self.request.stack].mpr_refusal if stacks else "no images"
        if refusal:
            self.app.call_from_thread(self.notify, f"no MPR: {refusal}", severity="warning")
            return
        window = self.request.window or (self.window if self.request.preset else None)
        self.app.call_from_thread(self._open_mpr, window)

    def _open_mpr(self, window: Window | None) -> None:
        """The MPR at this time point, unless the viewer closed meanwhile (g then Esc)."""
        if self.is_attached and self.app.screen is self:
            self.app.post_message(OpenMpr(self.series, window, self.request.stack))

    def action_cine(self, time: bool = False) -> None:
        """Play through the slices (wrapping; in VR: turn the volume round), or through the
        time points with ``time``, at most at the bandwidth's frame rate; while one plays,
        either key stops it."""
        if self._cine is not None:
            self._cine.stop()
            self._cine = None
            return
        self._cine_time = time
        limit = pacs(self).bandwidth.fps
        self._cine = self.set_interval(1 / min(self.fps, limit), self._next_frame)

    def _next_frame(self) -> None:
        if self._shown_request is not self.request:
            return  # the last frame is not on screen yet: wait for it, never skip one
        if self._cine_time:
            self.action_time(1)
        elif self._vr(self.request):
            self._turn(SPIN, 0.0)
        else:
            self._update(index=(self._index() + 1) % max(self.count, 1), position=None)

    # -- volume rendering ---------------------------------------------------------------------

    def action_vr(self) -> None:
        """Volume rendering of the series' volume (this time point), or back to the view
        that was shown before it; the camera and preset are kept for the next time."""
        if self._vr(self.request):
            self._camera = self.request
            flat = self._flat or Request()
            self.request = replace(flat, stack=self.request.stack)
        else:
            self._flat = self.request
            self.request = replace(self._camera, stack=self.request.stack, over_time=False)
        self.refresh_bindings()
        self.redraw()

    def action_slices(self) -> None:
        self.action_vr()

    def action_spin(self) -> None:
        self.action_cine()

    def action_turn(self, steps: int) -> None:
        self._turn(steps * TURN, 0.0)

    def action_tip(self, steps: int) -> None:
        """Turn the camera up toward the head (or down toward the feet)."""
        self._turn(0.0, steps * TURN)

    def action_fine(self, right: int, up: int) -> None:
        self._turn(right * FINE, up * FINE)

    def _turn(self, azimuth: float, elevation: float) -> None:
        """Turn the VR camera: azimuth round the head-foot axis (wrapping), elevation
        toward the head (from the feet at -90 to above the head at +90)."""
        request = self.request
        self._update(
            azimuth=(request.azimuth + azimuth) % 360.0,
            elevation=max(-90.0, min(90.0, request.elevation + elevation)),
        )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """VR's keys only in VR, the slice keys they replace only outside (hidden from the
        footer and ? while off)."""
        if action in _VR_ONLY:
            return self._vr(self.request)
        if action in _FLAT_ONLY:
            return not self._vr(self.request)
        return True

    # -- time ---------------------------------------------------------------------------------

    def _time_points(self) -> list[int] | None:
        """The stack numbers of the time points, or None (and why) with fewer than two."""
        times = self._times or []
        if len(times) > 1:
            return times
        known = self._times is not None
        self.notify(
            "one time point: no time keys" if known else "wait for the first image",
            timeout=2,
        )
        return None

    def action_time(self, delta: int) -> None:
        """The next or previous time point at the same slice (or camera), wrapping."""
        times = self._time_points()
        if times is None:
            return
        now = times.index(self.request.stack) if self.request.stack in times else 0
        self._update(stack=times[(now + delta) % len(times)], over_time=False)

    def action_time_cine(self) -> None:
        if self._time_points() is not None:
            self.action_cine(time=True)

    def action_over_time(self) -> None:
        """The maximum over every time point at this view (on/off)."""
        if self._time_points() is not None:
            self._update(over_time=not self.request.over_time)

    def action_fps(self, factor: float) -> None:
        self.fps = max(1.0, min(60.0, self.fps * factor))
        self.notify(f"cine: {self.fps:.0f} frames per second", timeout=1.5)
        if self._cine is not None:  # stop, and start again at the new rate
            self.action_cine(self._cine_time)
            self.action_cine(self._cine_time)

    def action_export(self) -> None:
        """Save what is shown: a file name's extension picks a still (.png .jpg .tif), a
        cine through the plane (.gif .webp), a contact sheet (.pdf) or the series' volume
        as NIfTI (.nii .nii.gz: this stack, or its time points as 4-D)."""
        if self._shown is None:
            return
        number = self.series.get("SeriesNumber") or 0
        what = "".join(c if c.isalnum() else "_" for c in self._shown.description)
        default = f"pacs-tui-series{number}-{what}.png"  # never built from tag text

        def chosen(name: str | None) -> None:
            if name:
                self.export_view(self._shown, name.strip())

        self.app.push_screen(
            NoteScreen(default, "file name: .png .jpg .tif .gif .webp .pdf .nii.gz"), chosen
        )

    @work(thread=True, group="export")
    def export_view(self, rendered: Any, name: str) -> None:
        from pathlib import Path

        from tui.render.series_export import write_any

        path = Path(name).expanduser()
        path = path if path.is_absolute() else Path.cwd() / path
        from tui.render.pipeline import time_points

        app = pacs(self)
        request = self.request
        try:
            stacks = app.stacks(self.series["SeriesInstanceUID"])
            if path.name.lower().endswith((".nii", ".nii.gz")):
                from tui.render.nifti import write_nifti

                # the time points of the stack shown (a 4-D file), or the stack alone
                written = write_nifti(time_points(stacks, request.stack), path, app.cache)
                self.app.call_from_thread(self.notify, f"saved {written[0]}")
                return
            over = time_points(stacks, request.stack) if request.over_time else ()
            write_any(
                path, rendered, stacks[request.stack], request, app.presets, app.cache,
                no_phi=app.privacy, transfers=app.transfers, time_points=over,
            )  # fmt: skip
        except UserError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.app.call_from_thread(self.notify, f"saved {path}")

    def action_print(self) -> None:
        """Print the view on screen (the rendered view, not the terminal's picture of it:
        its plane, window, invert, slab, camera), or a sheet of its plane (the print
        dialog; what it prints is fixed as it opens)."""
        rendered, request = self._shown, self._shown_request
        if rendered is None or request is None:
            self.notify("wait for the first image", timeout=2)
            return
        if not self._vr(request) and request.index is None and request.position is None:
            request = replace(request, index=self.count // 2)  # the middle plane, as shown
        series = self.series
        number = "" if series.get("SeriesNumber") is None else series["SeriesNumber"]
        label = line(
            f"{series.get('Modality') or '?'} {number}  ",
            str(series.get("SeriesDescription") or "(no description)"),
        )
        what = " ".join(t for t in self._bottom(rendered) if t)
        self.app.post_message(OpenPrint(series, label, replace(request, coarse=False), what))

    def on_mouse_move(self, event: events.MouseMove) -> None:
        """The value under the mouse (HU for CT) and where it is, in the bottom overlay."""
        if self._drag_window(event):
            return
        rendered = self._shown
        panel_view = self.query_one(ImagePanel).view
        placement = panel_view.placement
        if rendered is None or rendered.view is None or placement is None:
            return
        offset = event.get_content_offset(panel_view)
        if offset is None:
            return
        rows, columns = placement.height, placement.width
        cx, cy = offset.x - placement.x, offset.y - placement.y
        if not (0 <= cx < columns and 0 <= cy < rows):
            return
        r0, c0, h, w = self._crop
        row = r0 + int((cy + 0.5) / rows * h)
        column = c0 + int((cx + 0.5) / columns * w)
        point = rendered.view.patient_at(row, column)
        value = rendered.view.value_at(row, column)
        where = ", ".join(f"{v:.1f}" for v in point)
        unit = " HU" if str(self.series.get("Modality", "")) == "CT" else ""
        text = f"{rendered.description}  {rendered.window or ''}  {value:g}{unit} at ({where}) mm"
        self.query_one("#overlay-bottom", Static).update(line(text))  # a window's name is a tag

    def action_overlay(self) -> None:
        for overlay in self.query("#overlay-top, #overlay-bottom"):
            overlay.toggle_class("hidden")

    @on(events.Resize)
    def resized(self) -> None:
        pass  # the image widget follows resizes itself
