"""The print dialog: a series on a DICOM printer (Basic Grayscale Print Management), as a
sheet of its planes, or from the viewer the view on screen.

The work is :mod:`tui.net.printing`'s (the print SCU) and
:func:`tui.render.print_images.print_images`'s (the images, as the command line's ``print``
makes them), in a worker: each progress line and printer event shows as it comes, then the
printer's answer (films printed, copies, bits, film size as it took them, warnings) or the
error in words. Esc stops a running job (nothing is resent: the error says what may have
printed) and Esc again closes the dialog. What it prints is fixed when it opens: the title
names it, and the viewer, MPR or browser behind it moving on changes nothing.

Nothing prints on a printer the user did not see chosen: the dialog opens with the focus on
the printer list (Enter opens it), on the printer this app run printed on last (else the
first); only the Print button (Enter on it) or ctrl+s prints, Enter in a box goes on to the
next one.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, RadioButton, RadioSet, Select, Static

from tui.app.context import pacs
from tui.app.keys import OrderedInput
from tui.app.labels import line, plain, plural
from tui.errors import UserError
from tui.net.printing.job import parse_layout
from tui.privacy import shown

if TYPE_CHECKING:
    from tui.net.nodes import Node
    from tui.net.printing import PrinterEvent, PrintResult
    from tui.render.pipeline import Request

ADD_PRINTER = (
    "no printer configured: add one from a shell, pacs-tui node add NAME AET HOST PORT --printer"
)
LOG_LINES = 8  # progress lines and events shown (the latest)


def parse_copies(text: str) -> int:
    """The number of copies (1..99); UserError for anything else."""
    try:
        copies = int(text.strip() or "1")
    except ValueError:
        raise UserError(f"copies {text.strip()!r}: a number, 1 to 99") from None
    if not 1 <= copies <= 99:
        raise UserError(f"copies {copies}: 1 to 99")
    return copies


def result_text(result: PrintResult, printer: str, film_size: str) -> str:
    """The printer's answer, in words: what it printed and how it took the job."""
    session, boxes = result.session or {}, result.film_boxes or []
    took = next((str(b["FilmSizeID"]) for b in boxes if b.get("FilmSizeID")), "") or film_size
    copies = session.get("NumberOfCopies") or result.copies
    films = plural(result.films, "film")
    if result.cancelled:
        films = f"{result.films} of {plural(result.total, 'film')} (stopped)"
    text = (
        f"{printer} printed {films}, {plural(copies, 'copy', 'copies')}"
        f" each, {result.bits} bits, film size {took or 'the printer default'}"
    )
    formats = [str(b["ImageDisplayFormat"]) for b in boxes if b.get("ImageDisplayFormat")]
    if formats:
        text += f", {', '.join(dict.fromkeys(formats))}"
    text += ", Presentation LUT sent" if result.presentation_lut else ", no Presentation LUT"
    if result.printer is not None:
        text += f"; the printer {result.printer.words or result.printer.status}"
    for warning in result.warnings:
        text += f"\nwarning: {warning}"
    return text


def sheet_of_plane(request: Request) -> bool:
    """Whether "a sheet of this plane" means something for ``request``: not for a volume
    rendering, an oblique plane (the MPR's: one image) nor a projection through the whole
    volume (every plane the same)."""
    if request.mode in ("vr", "smip") or request.normal is not None:
        return False
    return request.mode == "slice" or request.slab is not None


class PrintScreen(ModalScreen[None]):
    """Print one series (a sheet) or a view (the viewer's, an MPR pane's) on a DICOM printer."""

    BINDINGS = [
        Binding("escape", "stop", "Cancel", id="print.cancel", tooltip="Stop the job, or close"),
        Binding("ctrl+s", "go", "Print", id="print.go", tooltip="Print now"),
    ]
    CSS_PATH = Path(__file__).with_name("printing.tcss")

    def __init__(
        self,
        series: dict[str, Any],
        label: Text,
        request: Request | None = None,
        view: str = "",
    ) -> None:
        super().__init__()
        self.series = dict(series)  # what the dialog prints: fixed when it opened
        self.label = label.copy()
        self.request = request  # the view (its plane index set), or None: a sheet of the series
        self.view = view  # the view in words (the title names it)
        self.cancel = threading.Event()
        self.running = False
        self.printers: dict[str, Node] | None = None  # None until config.toml is read
        self.log_lines: list[str] = []
        self.answer = ""  # the printer's answer or the error, as shown

    @property
    def title_text(self) -> Text:
        """What the dialog prints, as text (tag values are never markup)."""
        patient = shown(self.series, "PatientName", pacs(self).privacy) or "(no name)"
        title = line(("Print series: ", "bold"))
        title.append_text(self.label)
        title.append_text(line(("  of ", "dim"), patient))
        if self.request is not None and self.view:
            title.append("\n")
            title.append_text(line(("view: ", "dim"), self.view))
        return title

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="print"):
            yield Label(self.title_text, id="print-title")
            yield Select[str]([], prompt="the printer", id="print-printer")
            with RadioSet(id="print-what"):
                if self.request is not None:
                    yield RadioButton("this view, as shown", value=True, id="what-view")
                    yield RadioButton("a sheet of this plane", id="what-plane")
                else:
                    yield RadioButton("a sheet of the series", value=True, id="what-series")
            with Horizontal(id="print-row"):  # one line: the log and answer need the room
                yield Label("copies", classes="print-label")
                yield OrderedInput("1", id="print-copies")
                yield Label("film size", classes="print-label")
                yield OrderedInput(placeholder="the printer's default", id="print-film-size")
                yield Label("layout", classes="print-label")
                yield OrderedInput("auto", placeholder="auto, or C,R", id="print-layout")
            yield Checkbox(
                "no patient text on the film (no PHI)", pacs(self).privacy, id="print-no-phi"
            )
            yield Static("", id="print-log")
            yield Static("", id="print-status")
            with Horizontal(id="print-buttons"):
                yield Button("Print", variant="primary", id="print-go")

    def on_mount(self) -> None:
        plane = self.query("#what-plane")
        if plane and self.request is not None and not sheet_of_plane(self.request):
            plane.first().display = False  # no planes to lay out: one image
        # The printer first: Enter opens the list, it never prints on one not seen chosen.
        self.query_one("#print-printer", Select).focus()
        self.load_printers()

    @work(thread=True, group="print-nodes")
    def load_printers(self) -> None:
        """The printer nodes of config.toml (read off the event loop)."""
        from tui.net.nodes import load_nodes

        config_dir = pacs(self).config_dir
        try:
            nodes = load_nodes(config_dir / "config.toml") if config_dir else {}
        except UserError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        printers = {name: node for name, node in sorted(nodes.items()) if node.printer}
        self.app.call_from_thread(self._show_printers, printers)

    def _show_printers(self, printers: dict[str, Node]) -> None:
        if not self.is_attached:
            return  # closed meanwhile
        self.printers = printers
        select = self.query_one("#print-printer", Select)
        select.set_options((name, name) for name in printers)
        if not printers:
            self._status(ADD_PRINTER)
            self.notify(ADD_PRINTER, severity="warning")
            return
        last = pacs(self).last_printer  # this run's last: its defaults fill the form
        select.value = last if last in printers else next(iter(printers))

    @on(Select.Changed, "#print-printer")
    def printer_changed(self, event: Select.Changed) -> None:
        """The printer's own defaults: its copies and film size."""
        printers = self.printers or {}
        node = printers.get(event.value) if isinstance(event.value, str) else None
        if node is None:
            return
        self.query_one("#print-copies", Input).value = str(node.copies or 1)
        self.query_one("#print-film-size", Input).value = node.film_size

    # -- running -----------------------------------------------------------------------------

    @property
    def what(self) -> str:
        """``view``, ``plane`` or ``series``."""
        pressed = self.query_one("#print-what", RadioSet).pressed_button
        default = "view" if self.request is not None else "series"
        return (pressed.id or "").removeprefix("what-") if pressed else default

    @on(Input.Submitted)
    def next_box(self, event: Input.Submitted) -> None:
        """Enter in a box goes on to the next (only Print, or ctrl+s, prints)."""
        event.stop()
        self.focus_next()

    @on(Button.Pressed, "#print-go")
    def action_go(self) -> None:
        """Check what the form says, then print in a worker."""
        if self.running:
            return
        try:
            name = self.query_one("#print-printer", Select).value
            if self.printers is None:
                raise UserError("reading the printers of config.toml: a moment")
            if not self.printers:
                raise UserError(ADD_PRINTER)
            if not isinstance(name, str) or name not in self.printers:
                raise UserError("choose the printer")
            copies = parse_copies(self.query_one("#print-copies", Input).value)
            layout = parse_layout(self.query_one("#print-layout", Input).value)
        except UserError as exc:
            self._status(str(exc))
            self.notify(str(exc), severity="error")
            return
        film_size = self.query_one("#print-film-size", Input).value.strip().upper()
        no_phi = self.query_one("#print-no-phi", Checkbox).value
        self.running = True
        pacs(self).last_printer = name  # the next dialog of this run opens on it
        self.cancel = threading.Event()  # a new one: a stopped job left the last one set
        self.log_lines = []
        self._show_log()
        self._status(f"printing on {name}… (Esc stops)")
        self.run_print(self.printers[name], self.what, copies, film_size, layout, no_phi)

    def _request(self, what: str) -> Request:
        """What to render: the view as shown, every plane of its plane, or the series'."""
        from tui.render.pipeline import Request

        if what == "view" and self.request is not None:
            return replace(self.request, coarse=False)
        if what == "plane" and self.request is not None:
            return replace(self.request, index=None, position=None, coarse=False)
        return Request()

    @work(thread=True, exclusive=True, group="print")
    def run_print(
        self,
        node: Node,
        what: str,
        copies: int,
        film_size: str,
        layout: tuple[int, int] | None,
        no_phi: bool,
    ) -> None:
        app = pacs(self)
        try:
            result, taken = self._print(node, what, copies, film_size, layout, no_phi)
        except UserError as exc:
            app.call_from_thread(self._failed, str(exc), self.cancel.is_set())
            return
        app.call_from_thread(self._done, result_text(result, node.name, taken), result)

    def _print(
        self,
        node: Node,
        what: str,
        copies: int,
        film_size: str,
        layout: tuple[int, int] | None,
        no_phi: bool,
    ) -> tuple[PrintResult, str]:
        """Render the images and print them (worker thread); (the answer, the film size
        asked)."""
        from tui.net.printing import PrintImage, lay_out, print_films, settings_for
        from tui.render.pipeline import VR_MODES, pick_stack, time_points
        from tui.render.print_images import annotation_lines, print_images

        app = pacs(self)
        overrides: dict[str, Any] = {"copies": copies, "label": "pacs-tui"}
        if film_size:
            overrides["film_size"] = film_size
        if node.annotation_format:  # the printer's text boxes, as the command line fills them
            overrides["annotation_format"] = node.annotation_format
        settings = settings_for(node, **overrides)
        request = self._request(what)
        self._say("rendering the images…")
        uid = str(self.series["SeriesInstanceUID"])
        stacks = app.stacks(uid)
        stack = pick_stack(stacks, request.stack)
        over = time_points(stacks, request.stack) if request.over_time else ()
        rendered, pictures = print_images(
            stack,
            request,
            app.presets,
            app.cache,
            bits=8 if settings.bits == 8 else 12,
            time_points=over,
            transfers=app.transfers if request.mode in VR_MODES else None,
        )
        images = [PrintImage(grey8, grey12, aspect) for grey8, grey12, aspect in pictures]
        films = lay_out(images, annotation_lines(rendered, no_phi), layout)
        self._say(f"{plural(len(images), 'image')} on {plural(len(films), 'film')}")
        if self.cancel.is_set():
            raise UserError("nothing was sent: nothing printed")
        result = print_films(
            node, films, settings, progress=self._say, on_event=self._event, cancel=self.cancel
        )
        return result, settings.film_size

    def _say(self, text: str) -> None:
        """A progress line (from the worker)."""
        self.app.call_from_thread(self._log, text)

    def _event(self, event: PrinterEvent) -> None:
        """A printer event, as it comes (from the worker)."""
        words = event.words or f"the {event.source} says {event.event} {event.info}".strip()
        self.app.call_from_thread(self._log, words)

    def _log(self, text: str) -> None:
        if not self.is_attached:
            return
        self.log_lines.append(text)
        self._show_log()

    def _show_log(self) -> None:
        self.query_one("#print-log", Static).update(plain("\n".join(self.log_lines[-LOG_LINES:])))

    def _status(self, text: str) -> None:
        self.answer = text
        self.query_one("#print-status", Static).update(plain(text))

    def _failed(self, message: str, stopped: bool) -> None:
        self.running = False
        if not self.is_attached:
            return
        if stopped:
            message = f"stopped: {message}"
        self._status(message)
        self.query_one("#print-status").set_class(True, "error")
        self.query_one("#print-buttons").scroll_visible()
        self.notify(message.splitlines()[0], severity="warning" if stopped else "error")

    def _done(self, text: str, result: PrintResult) -> None:
        self.running = False
        if not self.is_attached:
            return
        self._status(text + "\n(Esc closes)")
        self.query_one("#print-status").set_class(False, "error")
        self.query_one("#print-buttons").scroll_visible()  # the answer above the button
        self.app.notify(
            text.splitlines()[0],
            severity="warning" if result.warnings else "information",
            timeout=10,
        )

    def action_stop(self) -> None:
        """Esc: stop the job that runs (and say so), or close the dialog."""
        if self.running:
            self.cancel.set()
            self._status("stopping… (nothing is resent; Esc again once it has stopped)")
        else:
            self.dismiss(None)
