"""A terminal image widget that sends as few bytes as it can.

Images are encoded to half-block cells off the UI thread (``tui.term``); only the rows
whose cells changed since the last frame are refreshed, so Textual's compositor only
redraws those lines. Frames arriving faster than they can be encoded are coalesced: the
latest wins, stale frames are dropped, never queued. Resizes re-encode the current image.
Orientation labels and overlays live in ordinary widgets around the image
(``ImagePanel``), never inside it.

With a graphics protocol (kitty, iTerm2, sixel) the widget's cells stay blank and the
picture, reduced to the pixel size of its cell box, is written over them; kitty images
are deleted when another screen comes on top, and all are drawn again when it leaves.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import TYPE_CHECKING, Any

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.app import App, ComposeResult
from textual.containers import Horizontal, Vertical
from textual.driver import Driver
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Static

from tui.term.modes import DEFAULT_CELL, NORMAL, PROTOCOLS, Mode

if TYPE_CHECKING:  # numpy and the encoder load with the first image: a faster start
    import numpy as np

    from tui.term.halfblock import CellImage

UPPER = "▀"

_TRUE = 1 << 24
_image_ids = itertools.count(1)  # one kitty image id per widget: frames replace their own


def _color(code: int) -> Color:
    if code & _TRUE:
        return Color.from_rgb((code >> 16) & 255, (code >> 8) & 255, code & 255)
    return Color.from_ansi(code)


def terminal_driver(app: App[Any]) -> Driver | None:
    """The driver of a real terminal (None headless or before it starts).

    The one private attribute of Textual this app uses: Textual has no public way to write
    to the terminal past its compositor (textual-image reads it too). tests/test_image_view.py
    fails if it goes, so an upgrade of Textual says so at once.
    """
    driver = getattr(app, "_driver", None)
    return None if driver is None or app.is_headless else driver


def write_to_terminal(app: App[Any], text: str) -> bool:
    """``text`` straight to the terminal (a picture, changed half-block runs); False
    where there is no real terminal."""
    driver = terminal_driver(app)
    if driver is None:
        return False
    driver.write(text)
    driver.flush()
    return True


class ImageView(Widget):
    """Shows an 8-bit image (grey or RGB) centred at its aspect, as half-block cells or,
    with ``graphics`` kitty, iterm or sixel, as a picture the terminal draws."""

    DEFAULT_CSS = """
    ImageView { width: 1fr; height: 1fr; }
    """

    def __init__(
        self,
        mode: Mode = NORMAL,
        pixel_aspect: float = 1.0,
        fps: float = 30.0,
        graphics: str = "halfblock",
        cell: tuple[int, int] = DEFAULT_CELL,
        tmux: bool = False,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.mode = mode
        self.interval = 1.0 / fps  # frames closer than this wait: the link never queues them
        self._last_frame = 0.0
        self.pixel_aspect = pixel_aspect
        self.graphics, self.cell, self.tmux = graphics, cell, tmux
        self.image_id = next(_image_ids)
        self.cells: CellImage | None = None
        self.picture: str | None = None  # the protocol sequence of the current frame
        self.placement: Region | None = None  # where the image is, in the widget's content
        self.encodes = 0  # how many frames were actually encoded (the rest were coalesced)
        self._image: np.ndarray | None = None
        self._lock = threading.Lock()
        self._pending: tuple[np.ndarray, tuple[int, int], int] | None = None
        self._busy = False
        self._generation = 0  # bumped by clear(): frames encoded before it are dropped

    @property
    def uses_protocol(self) -> bool:
        return self.graphics in PROTOCOLS

    def on_mount(self) -> None:
        if self.uses_protocol:
            self.app.screen_change_signal.subscribe(self, self._screen_changed)

    def on_unmount(self) -> None:
        self._hide_picture()

    def show(self, image: np.ndarray, pixel_aspect: float | None = None) -> None:
        """Show ``image`` soon; if frames come faster than they encode, only the latest shows."""
        if pixel_aspect is not None:
            self.pixel_aspect = pixel_aspect
        self._image = image
        self._request(image)

    def clear(self) -> None:
        """Show nothing, at once; frames still being encoded are dropped."""
        with self._lock:
            self._image = None
            self._pending = None
            self._generation += 1
        if self.cells is not None or self.picture is not None:
            self._hide_picture()
            self.cells = self.picture = self.placement = None
            self.refresh()

    def _request(self, image: np.ndarray) -> None:
        size = (self.size.width, self.size.height)
        if size[0] <= 0 or size[1] <= 0:
            return  # not laid out yet: on_resize will ask again
        with self._lock:
            self._pending = (image, size, self._generation)
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
                image, (width, height), generation = self._pending
                self._pending = None
            wait = self._last_frame + self.interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # newer frames that arrive meanwhile replace this one
                with self._lock:
                    if self._pending is not None:
                        image, (width, height), generation = self._pending
                        self._pending = None
            self._last_frame = time.monotonic()
            from tui.term.show import fit_box

            columns, rows = fit_box(
                image, self.graphics, width, height, self.pixel_aspect, self.cell
            )
            placement = Region((width - columns) // 2, (height - rows) // 2, columns, rows)
            self.encodes += 1
            if self.uses_protocol:
                from tui.term.show import picture

                sequence = picture(
                    image, self.graphics, columns, rows, self.cell, self.tmux, self.image_id
                )
                self.app.call_from_thread(self._apply_picture, sequence, placement, generation)
            else:
                from tui.term.halfblock import to_cells

                cells = to_cells(image, columns, rows, self.mode)
                self.app.call_from_thread(self._apply, cells, placement, generation)

    def _apply_picture(self, sequence: str, placement: Region, generation: int) -> None:
        if generation != self._generation:
            return  # cleared since: this frame belongs to what was shown before
        moved = placement != self.placement
        self.picture, self.placement = sequence, placement
        if moved:
            self.refresh()  # blank the old place first, then draw on top
            self.call_after_refresh(self._write_picture)
        else:
            self._write_picture()

    def _write_picture(self) -> None:
        if not self._on_top() or self.picture is None or self.placement is None:
            return
        region = self.content_region
        x, y = region.x + self.placement.x, region.y + self.placement.y
        # save the cursor, draw at the image's place, restore: Textual keeps its cursor
        write_to_terminal(self.app, f"\x1b7\x1b[{y + 1};{x + 1}H{self.picture}\x1b8")

    def _hide_picture(self) -> None:
        """Kitty images float above the text: take ours away while it is not on top."""
        if self.graphics != "kitty":
            return
        from tui.term.protocols import tmux_passthrough

        delete = f"\x1b_Ga=d,d=I,i={self.image_id},q=2\x1b\\"
        write_to_terminal(self.app, tmux_passthrough(delete) if self.tmux else delete)

    def _screen_changed(self, screen: object) -> None:
        if screen is self.screen:
            self.call_after_refresh(self._write_picture)  # after Textual repainted it
        else:
            self._hide_picture()

    def _on_top(self) -> bool:
        """Is this widget's screen on top of a real terminal (so we may draw on it)?"""
        return terminal_driver(self.app) is not None and self.screen is self.app.screen

    def _apply(self, cells: CellImage, placement: Region, generation: int) -> None:
        if generation != self._generation:
            return  # cleared since: this frame belongs to what was shown before
        previous, old_placement = self.cells, self.placement
        self.cells, self.placement = cells, placement
        offset = (placement.x, placement.y)
        if previous is None or previous.shape != cells.shape or old_placement != placement:
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
        if not self._on_top() or self.placement is None:
            return False
        if self.app.console.color_system not in ("256", "truecolor"):
            return False  # 16 colours: Textual maps the palette's onto the terminal's
        from tui.term.halfblock import encode

        region = self.content_region
        origin = (region.x + self.placement.x, region.y + self.placement.y)
        text = encode(cells, previous, origin)
        if text:
            write_to_terminal(self.app, text)
        return True

    def on_resize(self) -> None:
        if self._image is not None:
            self._request(self._image)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        cells, placement = self.cells, self.placement
        if cells is None or placement is None or not 0 <= y - placement.y < cells.shape[0]:
            return Strip.blank(width, self.rich_style)  # with a protocol, the picture goes here
        row, left = y - placement.y, placement.x
        # the widget's own background either side of the picture: unstyled cells show the
        # terminal's default background instead (xterm's is white)
        background = self.rich_style
        segments = [Segment(" " * left, background)] if left > 0 else []
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
        return Strip(segments).adjust_cell_length(width, background)


class ImagePanel(Vertical):
    """An :class:`ImageView` with orientation letters as text on its four edges."""

    DEFAULT_CSS = """
    ImagePanel { width: 1fr; height: 1fr; }
    ImagePanel .edge { width: 1fr; height: 1; content-align: center middle; }
    ImagePanel .side { width: 2; height: 1fr; content-align: center middle; }
    ImagePanel Horizontal { height: 1fr; }
    """

    def __init__(self, view: ImageView, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.view = view
        self.key: object = None  # what the image shows, as its caller names it

    def compose(self) -> ComposeResult:
        yield Static("", classes="edge", id="label-top")
        with Horizontal():
            yield Static("", classes="side", id="label-left")
            yield self.view
            yield Static("", classes="side", id="label-right")
        yield Static("", classes="edge", id="label-bottom")

    def show(
        self,
        image: np.ndarray,
        labels: dict[str, str],
        pixel_aspect: float = 1.0,
        key: object = None,
    ) -> None:
        """Show ``image`` with its orientation ``labels``; ``key`` names what it is."""
        self.key = key
        for edge in ("top", "bottom", "left", "right"):
            self.query_one(f"#label-{edge}", Static).update(labels.get(edge, ""))
        self.view.show(image, pixel_aspect)

    def clear(self) -> None:
        """No image and no labels, at once."""
        self.key = None
        for edge in ("top", "bottom", "left", "right"):
            self.query_one(f"#label-{edge}", Static).update("")
        self.view.clear()
