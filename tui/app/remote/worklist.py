"""The remote screen's worklist view: today's scheduled procedure steps of the highlighted
node (``w`` on the remote screen shows it in place of the query results).

The query runs in a thread worker (:func:`tui.net.worklist.worklist`); its answer comes
back as a message stamped with the load it answers, so an answer for a node no longer
highlighted (or an earlier load) is dropped, never shown as the current node's. Cells are
:class:`~rich.text.Text`, never markup (a name like ``[red]X`` shows as typed), their control
characters shown as "?".
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.timer import Timer
from textual.widgets import DataTable, Static

from tui.app.labels import one_line, plural
from tui.errors import UserError
from tui.net.nodes import Node
from tui.privacy import shown

log = logging.getLogger(__name__)

# Column heading, the keyword it shows.
COLUMNS = [
    ("Time", "ScheduledProcedureStepStartTime"), ("Mod", "Modality"),
    ("Station", "ScheduledStationAETitle"), ("Patient", "PatientName"), ("ID", "PatientID"),
    ("Accession", "AccessionNumber"), ("Step", "ScheduledProcedureStepID"),
    ("Description", "ScheduledProcedureStepDescription"),
]  # fmt: skip
_FOLLOW_DELAY = 0.3  # seconds a node stays highlighted before its worklist is asked for


class WorklistLoaded(Message):
    """A worklist query's answer (``error``: what went wrong, in words)."""

    def __init__(self, load: int, node: Node, rows: list[dict[str, str]], error: str) -> None:
        super().__init__()
        self.load, self.node, self.rows, self.error = load, node, rows, error


def _time(text: str) -> str:
    """``093000`` as ``09:30`` (DICOM TM); anything else as it came."""
    digits = text.split(".")[0]
    if len(digits) >= 4 and digits[:4].isdigit():
        return f"{digits[:2]}:{digits[2:4]}"
    return text


def _when(row: dict[str, str]) -> tuple[str, str]:
    return (
        row.get("ScheduledProcedureStepStartDate", ""),
        row.get("ScheduledProcedureStepStartTime", ""),
    )


class WorklistView(Vertical):
    """A status line naming the node and the day, and a table of its scheduled steps."""

    BINDINGS = [
        Binding("r", "reload", "Reload", tooltip="Ask for the worklist again", id="remote.reload"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.node: Node | None = None  # the node whose worklist is shown (or asked for)
        self.rows: list[dict[str, str]] = []  # what the table shows, in its order
        self.error = ""
        self.loading = False
        self._load = 0  # which load an answer must carry to be shown
        self._cancel = threading.Event()
        self._follow: Timer | None = None
        self.display = False  # the remote screen shows it on ``w``

    def compose(self) -> ComposeResult:
        yield Static("", id="worklist-status")
        yield DataTable(id="worklist-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for heading, keyword in COLUMNS:
            table.add_column(heading, key=keyword)
        self._status()

    def on_unmount(self) -> None:
        self._cancel.set()  # the app is closing: no worker holds the exit up

    @property
    def private(self) -> bool:
        return bool(getattr(self.app, "privacy", False))

    # -- loading -------------------------------------------------------------------------------

    def show(self, node: Node | None) -> None:
        """Show ``node``'s worklist: asked for now (again, when it is the one shown)."""
        if self._follow is not None:
            self._follow.stop()
            self._follow = None
        self._cancel.set()  # an earlier query stops; its answer would be dropped anyway
        self._cancel = threading.Event()
        self._load += 1
        self.node, self.rows, self.error = node, [], ""
        self.query_one(DataTable).clear()
        self.loading = node is not None
        self._status()
        if node is not None:
            self._ask(self._load, node, self._cancel)

    def follow(self, node: Node | None) -> None:
        """The highlighted node changed: its worklist replaces the shown one at once (the
        table is cleared now), asked for once the highlight rests on it."""
        if node == self.node:
            return
        self.show(None)
        self.node = node
        if node is not None:
            self._follow = self.set_timer(_FOLLOW_DELAY, lambda: self.show(node))
        self._status()

    def action_reload(self) -> None:
        self.show(self.node)

    @work(thread=True, group="worklist")
    def _ask(self, load: int, node: Node, cancel: threading.Event) -> None:
        from tui.net.worklist import worklist, worklist_keys

        rows: list[dict[str, str]] = []
        error = ""
        try:
            for row in worklist(node, worklist_keys(), cancel=cancel):
                rows.append(row)
        except UserError as exc:  # NetError included: its text says what to do
            error = str(exc)
        except Exception as exc:  # a surprise: a line in the view, never a traceback
            log.debug("worklist query failed", exc_info=True)
            error = f"{node.name}: the worklist query failed: {exc}"
        if not cancel.is_set():
            self.post_message(WorklistLoaded(load, node, rows, error))

    @on(WorklistLoaded)
    def _loaded(self, event: WorklistLoaded) -> None:
        event.stop()
        if event.load != self._load or event.node != self.node:
            return  # an earlier load's, or another node's: never shown as this one's
        self.loading = False
        self.error = event.error
        self.rows = sorted(event.rows, key=_when)
        private = self.private
        table = self.query_one(DataTable)
        table.clear()
        for row in self.rows:
            cells = [Text(one_line(shown(row, keyword, private))) for _, keyword in COLUMNS]
            cells[0] = Text(one_line(_time(row.get("ScheduledProcedureStepStartTime", ""))))
            table.add_row(*cells)
        self._status()

    def _status(self) -> None:
        status = self.query_one("#worklist-status", Static)
        node = self.node
        if node is None:
            status.update("No node: add one with pacs-tui node add NAME AET HOST PORT")
            return
        day = f"{dt.date.today():%Y-%m-%d}"
        text = Text.assemble(("Worklist of ", "dim"), (node.name, "bold"), f" ({node.address})")
        text.append(f" · today {day} · ", "dim")
        if self.error:
            text.append(self.error, "red")
        elif self.loading:
            text.append("asking…", "dim")
        elif self._follow is not None:
            text.append("r: load", "dim")
        else:
            text.append(plural(len(self.rows), "scheduled step") + " · r reloads")
        status.update(text)
