"""The import dialog: a path, in place or copied, or just a look (ephemeral, for CDs and
USB sticks: nothing about those patients is written). Runs in a worker with progress;
Esc stops it after the current batch."""

from __future__ import annotations

import threading
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, ProgressBar, RadioButton, RadioSet

from tui.app.context import pacs
from tui.app.keys import OrderedInput
from tui.archive.importer import ImportSummary, import_paths
from tui.archive.index import Archive
from tui.errors import UserError


def summary_text(summary: ImportSummary) -> str:
    """What an import did, in one notice."""
    stopped = " (stopped: import again to finish)" if summary.interrupted else ""
    counts = (
        f"{summary.new} new, {summary.updated} updated, {summary.unchanged} unchanged,"
        f" {len(summary.skipped)} skipped, {len(summary.duplicates)} duplicates"
    )
    return counts + stopped


class ImportScreen(ModalScreen[ImportSummary | None]):
    """Ask for a path and a mode, import with progress, return the summary."""

    BINDINGS = [Binding("escape", "stop", "Cancel", id="import.cancel")]
    CSS_PATH = Path(__file__).with_name("importing.tcss")

    def __init__(self) -> None:
        super().__init__()
        self.cancel = threading.Event()
        self.running = False

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Import files, a folder or a DICOMDIR")
            yield OrderedInput(placeholder="/media/cdrom or ~/Downloads/study", id="import-path")
            with RadioSet(id="import-mode"):
                yield RadioButton("index in place", value=True, id="in-place")
                yield RadioButton("copy into the archive", id="copy")
                yield RadioButton("just look: nothing is written (CDs, USB sticks)", id="ephemeral")
            yield ProgressBar(total=None, id="import-progress", show_eta=False)
            yield Button("Import", variant="primary", id="import-go")

    def on_mount(self) -> None:
        self.query_one("#import-path", Input).focus()

    @on(Input.Submitted, "#import-path")
    @on(Button.Pressed, "#import-go")
    def start(self) -> None:
        if self.running:
            return
        path = self.query_one("#import-path", Input).value.strip()
        if not path:
            self.notify("type a path first", severity="warning")
            return
        pressed = self.query_one(RadioSet).pressed_button
        mode = pressed.id if pressed is not None else "in-place"
        self.running = True
        self.run_import(path, mode or "in-place")

    @work(thread=True, exclusive=True, group="import")
    def run_import(self, path: str, mode: str) -> None:
        bar = self.query_one("#import-progress", ProgressBar)

        def progress(done: int, total: int) -> None:
            self.app.call_from_thread(bar.update, total=max(total, 1), progress=done)

        app = pacs(self)
        try:
            if mode == "ephemeral":
                archive = Archive(None)
                summary = import_paths(archive, [path], progress=progress, cancel=self.cancel)
                app.call_from_thread(app.use_archive, archive, True)
            else:
                summary = app.read(
                    import_paths, [path], copy=mode == "copy", progress=progress, cancel=self.cancel
                )
        except UserError as exc:
            app.call_from_thread(self.notify, str(exc), severity="error")
            self.running = False
            return
        app.call_from_thread(self.dismiss, summary)

    def action_stop(self) -> None:
        if self.running:
            self.cancel.set()  # stops after the current batch; what was read is kept
        else:
            self.dismiss(None)
