"""A terminal image widget that sends as few bytes as it can.

Images are encoded to half-block cells off the UI thread (``tui.term``); only the rows
whose cells changed since the last frame are refreshed, so Textual's compositor only
redraws those lines. Frames arriving faster than they can be encoded are coalesced: the
latest wins, stale frames are dropped, never queued. Resizes re-encode the current image.
Orientation labels and overlays live in ordinary widgets around the image
(``ImagePanel``), never inside it.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Static

from tui.term.modes import NORMAL, Mode

if TYPE_CHECKING:  # numpy and the encoder load with the first image: a faster start
    import numpy as np

    from tui.term.halfblock import CellImage

UPPER = "▀"

_TRUE = 1 << 24


def _color(code: int) -> Color:
    if code & _TRUE:
        return Color.from_rgb((code >> 16) & 255, (code >> 8) & 255, code & 255)
    return Color.from_ansi(code)


class ImageView(Widget):
    """Shows an 8-bit image (grey or RGB) as half-block cells, centred, at its aspect."""

    DEFAULT_CSS = """
    ImageView { width: 1fr; height: 1fr; }
    """

    def __init__(
        self, mode: Mode = NORMAL, pixel_aspect: float = 1.0, fps: float = 30.0, **kwargs: object
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.mode = mode
        self.interval = 1.0 / fps  # frames closer than this wait: the link never queues them
        self._last_frame = 0.0
        self.pixel_aspect = pixel_aspect
        self.cells: CellImage | None = None
        self.encodes = 0  # how many frames were actually encoded (the rest were coalesced)
        self._offset = (0, 0)
        self._image: np.ndarray | None = None
        self._lock = threading.Lock()
        self._pending: tuple[np.ndarray, tuple[int, int]] | None = None
        self._busy = False

    def show(self, image: np.ndarray, pixel_aspect: float | None = None) -> None:
        """Show ``image`` soon; if frames come faster than they encode, only the latest shows."""
        if pixel_aspect is not None:
            self.pixel_aspect = pixel_aspect
        self._image = image
        self._request(image)

    def _request(self, image: np.ndarray) -> None:
        size = (self.size.width, self.size.height)
        if size[0] <= 0 or size[1] <= 0:
            return  # not laid out yet: on_resize will ask again
        with self._lock:
            self._pending = (image, size)
            if self._busy:
                return
            self._busy = True
        self.run_worker(self._encode_latest, thread=True, group="image-encode")

    def _encode_latest(self) -> None:
        while True:
            with self._lock:
                if self._pending is None:
                    self._busy = False
                    return
                image, (width, height) = self._pending
                self._pending = None
            wait = self._last_frame + self.interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # newer frames that arrive meanwhile replace this one
                with self._lock:
                    if self._pending is not None:
                        image, (width, height) = self._pending
                        self._pending = None
            self._last_frame = time.monotonic()
            from tui.term.cells import fit_cells
            from tui.term.halfblock import to_cells

            h, w = image.shape[:2]
            columns, rows = fit_cells(w, h, width, height, self.pixel_aspect)
            cells = to_cells(image, columns, rows, self.mode)
            self.encodes += 1
            offset = ((width - columns) // 2, (height - rows) // 2)
            self.app.call_from_thread(self._apply, cells, offset)

    def _apply(self, cells: CellImage, offset: tuple[int, int]) -> None:
        previous, old_offset = self.cells, self._offset
        self.cells, self._offset = cells, offset
        if previous is None or previous.shape != cells.shape or old_offset != offset:
            self.refresh()  # a new size or place: Textual repaints the whole widget
            return
        if self._write_direct(cells, previous):
            return
        from tui.term.halfblock import changed_runs

        changed = (cells.top != previous.top) | (cells.bottom != previous.bottom)
        for row in changed.any(axis=1).nonzero()[0].tolist():
            for start, end in changed_runs(changed[row]):
                self.refresh(Region(offset[0] + start, offset[1] + row, end - start, 1))

    def _write_direct(self, cells: CellImage, previous: CellImage) -> bool:
        """Send only the changed runs of a frame to the terminal ourselves.

        Textual's compositor repaints refreshed regions from the line start, in 24-bit
        colour with a reset after every segment: several times the bytes of our encoder.
        So while this widget's screen is on top, frames go straight to the driver (there
        is no public API for raw output; textual-image does the same); ``render_line``
        gives the same cells whenever Textual repaints by itself (resizes, screens).
        """
        driver = getattr(self.app, "_driver", None)
        if driver is None or self.app.is_headless or self.screen is not self.app.screen:
            return False
        from tui.term.halfblock import encode

        region = self.content_region
        origin = (region.x + self._offset[0], region.y + self._offset[1])
        text = encode(cells, previous, origin)
        if text:
            driver.write(text)
            driver.flush()
        return True

    def on_resize(self) -> None:
        if self._image is not None:
            self._request(self._image)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        cells = self.cells
        row = y - self._offset[1]
        if cells is None or not 0 <= row < cells.shape[0]:
            return Strip.blank(width)
        left = self._offset[0]
        segments = [Segment(" " * left)] if left > 0 else []
        top, bottom = cells.top[row].tolist(), cells.bottom[row].tolist()
        run_text, run_style = "", None
        for t, b in zip(top, bottom, strict=True):
            if t == b:
                char, style = " ", Style(bgcolor=_color(t))
            else:
                char, style = UPPER, Style(color=_color(t), bgcolor=_color(b))
            if style == run_style:
                run_text += char
            else:
                if run_text:
                    segments.append(Segment(run_text, run_style))
                run_text, run_style = char, style
        if run_text:
            segments.append(Segment(run_text, run_style))
        return Strip(segments).adjust_cell_length(width)


class ImagePanel(Vertical):
    """An :class:`ImageView` with orientation letters as text on its four edges."""

    DEFAULT_CSS = """
    ImagePanel { width: 1fr; height: 1fr; }
    ImagePanel .edge { width: 1fr; height: 1; content-align: center middle; }
    ImagePanel .side { width: 2; height: 1fr; content-align: center middle; }
    ImagePanel Horizontal { height: 1fr; }
    """

    def __init__(self, mode: Mode = NORMAL, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.view = ImageView(mode)

    def compose(self) -> ComposeResult:
        yield Static("", classes="edge", id="label-top")
        with Horizontal():
            yield Static("", classes="side", id="label-left")
            yield self.view
            yield Static("", classes="side", id="label-right")
        yield Static("", classes="edge", id="label-bottom")

    def show(self, image: np.ndarray, labels: dict[str, str], pixel_aspect: float = 1.0) -> None:
        for edge in ("top", "bottom", "left", "right"):
            self.query_one(f"#label-{edge}", Static).update(labels.get(edge, ""))
        self.view.show(image, pixel_aspect)
