"""The remote screen: nodes on the left; the query form, its results and the transfer queue
on the right. Its parts live beside it: :mod:`.nodes`, :mod:`.form`, :mod:`.results`,
:mod:`.transfers`, :mod:`.worklist` (``w``: the node's worklist in place of the query); this
module runs the query and puts the parts together.

A query's results are collected by its worker and drawn by a 20 Hz timer, so 10,000 answers
arrive as a few hundred tree updates, not 10,000 messages. Each batch drawn is looked up in
the local archive by another worker (one SQL statement), so studies already here are marked
as such. The screen is installed once (:func:`open_remote`): going back to the browser keeps
the results, the marks and the transfers still running.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, OptionList, Static, Tree
from textual.widgets.tree import TreeNode, UnknownNodeID

from tui.app.context import pacs
from tui.app.keys import type_into
from tui.app.labels import iso_date, line, patient_label, plural
from tui.app.messages import ArchiveChanged
from tui.app.remote.form import HELP, QueryForm, query_keys
from tui.app.remote.nodes import NodePane
from tui.app.remote.results import ResultTree, series_label, study_label
from tui.app.remote.transfers import Job, Retrieved, TransferQueue
from tui.app.remote.worklist import WorklistView
from tui.archive.holdings import held_series, held_studies
from tui.errors import UserError
from tui.net.nodes import Node
from tui.privacy import shown

log = logging.getLogger(__name__)

NO_NODES = (
    "No PACS configured yet.\n\n"
    "Add one from the shell, then come back here:\n\n"
    "  pacs-tui node add NAME AET HOST PORT\n"
    "  (for example: pacs-tui node add pacs ORTHANC pacs.example.org 4242)\n\n"
    "pacs-tui demo starts a small PACS holding the demo data and configures a node for it."
)
_DRAIN_SECONDS = 0.05  # how often arrived results are drawn: often enough to look live


def open_remote(app: App[Any]) -> None:
    """Show the remote screen, installed once so its state outlives a visit to the browser."""
    if not app.is_screen_installed("remote"):
        app.install_screen(RemoteScreen(), "remote")
    app.push_screen("remote")


# -- a query, shared between the UI and its worker -----------------------------------------------


@dataclass(eq=False)
class Run:
    """One query: its worker fills ``inbox``, the screen's timer empties it into the tree."""

    node: Node
    cancel: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    inbox: list[dict[str, str]] = field(default_factory=list)
    finished: bool = False  # its worker is done
    error: str = ""
    # Esc: the screen shows it stopped at once, although its worker may be stuck in a
    # connect or an association for its timeout; what that worker brings later is dropped.
    stopped: bool = False

    def take(self) -> list[dict[str, str]]:
        with self.lock:
            rows, self.inbox = self.inbox, []
        return rows


class QueryDone(Message):
    """A query's worker is done (its last answers may still wait in the inbox)."""

    def __init__(self, run: Run) -> None:
        super().__init__()
        self.run = run


class LocalFound(Message):
    """What the archive holds of some studies (and of the series of one, after a retrieve)."""

    def __init__(
        self,
        run: Run,
        studies: dict[str, tuple[int, str]],  # UID: (instances here, under which PatientID)
        study: str = "",
        series: dict[str, int] | None = None,
    ) -> None:
        super().__init__()
        self.run, self.studies, self.study, self.series = run, studies, study, series


class RemoteScreen(Screen[None]):
    """Nodes on the left; the query form, its results and the transfer queue on the right."""

    AUTO_FOCUS = "#nodes"  # choose a node, Enter to the form, Enter to the results
    HELP = HELP
    # The footer shows them in this order (after the focused widget's): at 80 columns only the
    # first few fit, so retrieving and stopping come first.
    BINDINGS = [
        Binding("g", "retrieve", "Retrieve", id="remote.retrieve"),
        Binding("x", "stop_transfer", "Stop", tooltip="Stop transfer", id="remote.stop"),
        Binding("slash", "form", "Query", id="remote.form", priority=True),
        Binding("e", "echo", "Echo", id="remote.echo"),
        Binding(
            "escape", "cancel_or_back", "Back", tooltip="Stop a query, or back", id="remote.back"
        ),
        Binding("a", "mark_all", "Mark all", id="remote.mark_all"),
        Binding("c", "clear_finished", "Clear", tooltip="Clear finished", id="remote.clear"),
        # Not in the footer, full at 80 columns: F1 lists it.
        Binding("w", "worklist", "Today's worklist", show=False, id="remote.worklist"),
        Binding("v", "preview", "Server preview of a series", show=False, id="remote.preview"),
        Binding("ctrl+r", "query", "Run query", show=False, id="remote.query"),
        Binding("X", "stop_all", "Stop all transfers", show=False, id="remote.stop_all"),
        # `?` types a wildcard in a field: F1 shows the help from anywhere.
        Binding("f1", "app.toggle_help", "Help", show=False, id="remote.help"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.run: Run | None = None
        self._patients: dict[tuple[str, str], TreeNode[dict[str, Any]]] = {}
        # StudyInstanceUID: its rows (a PACS may file one study under two patients)
        self._by_uid: dict[str, list[TreeNode[dict[str, Any]]]] = {}
        self._here: set[str] = set()  # studies the archive holds some of
        self._studies = 0
        self._hold_until = 0.0  # no drawing of results before then (see _drain)
        self._form_error = ""  # what is wrong with the form, shown until it is edited

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="remote"):
            yield NodePane(id="remote-nodes")
            with Vertical(id="remote-main"):
                yield QueryForm(id="form")
                yield Static("", id="count")
                yield Static(NO_NODES, id="empty")
                tree = ResultTree("Results", id="results")
                tree.show_root = False
                tree.guide_depth = 3  # not 4: a column more for the description of each level
                yield tree
                yield WorklistView(id="worklist")  # hidden until ``w``
                yield TransferQueue(id="queue")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.sub_title = "remote"
        self._timer = self.set_interval(_DRAIN_SECONDS, self._drain, pause=True)
        self._show_count()

    def on_screen_resume(self) -> None:
        """Nodes are read each time the screen shows: one added in a shell meanwhile is there."""
        self.nodes_pane.load()

    def on_resize(self, event: events.Resize) -> None:
        self.nodes_pane.fit()

    def on_unmount(self) -> None:
        """The app is closing: stop the query, so no thread holds the exit up (the node pane
        and the queue stop their own)."""
        if self.run is not None:
            self.run.cancel.set()

    @property
    def private(self) -> bool:
        return bool(getattr(self.app, "privacy", False))

    @property
    def nodes_pane(self) -> NodePane:
        return self.query_one(NodePane)

    @property
    def queue(self) -> TransferQueue:
        return self.query_one(TransferQueue)

    @property
    def node(self) -> Node | None:
        """The highlighted node: queries go to it."""
        return self.nodes_pane.node

    @property
    def echoes(self) -> dict[str, str]:
        """Node name: its last echo's outcome."""
        return self.nodes_pane.echoes

    @property
    def jobs(self) -> list[Job]:
        """The transfer queue, in order."""
        return self.queue.jobs

    @on(OptionList.OptionSelected, "#nodes")
    def _node_chosen(self) -> None:
        self.action_form()

    def action_echo(self) -> None:
        self.nodes_pane.echo()

    def action_preview(self) -> None:
        """``v``: a DICOMweb node's rendering and tags of the highlighted series, without
        retrieving it (:mod:`.preview`)."""
        from tui.app.remote.preview import open_preview

        open_preview(self, self.query_one(ResultTree).cursor_node, self.private)

    def action_worklist(self) -> None:
        """``w``: the highlighted node's worklist of today in place of the query, or back."""
        view = self.query_one(WorklistView)
        view.display = showing = not view.display
        for part in ("#form", "#count", "#results"):
            if showing:
                self.query_one(part).display = False
            else:
                self.query_one(part).styles.clear_rule("display")  # the stylesheet's again
        if showing:
            view.show(self.node)
            view.query_one("#worklist-table").focus()
        else:
            self.query_one(ResultTree).focus()

    @on(OptionList.OptionHighlighted, "#nodes")
    def _node_highlighted(self) -> None:
        view = self.query_one(WorklistView)
        if view.display:
            view.follow(self.node)  # what the view shows is the highlighted node's

    # -- querying ------------------------------------------------------------------------------

    def action_form(self) -> None:
        type_into(self.query_one("#q-name", Input))

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_query()

    @on(Input.Changed)
    def _edited(self) -> None:
        if self._form_error:
            self._form_error = ""
            self.query_one("#q-date", Input).remove_class("error")
            self._show_count()

    def action_query(self) -> None:
        node = self.node
        if node is None:
            self.notify(
                "no node to query: pacs-tui node add NAME AET HOST PORT", severity="warning"
            )
            return
        values = self.query_one(QueryForm).values()
        try:
            keys = query_keys(*values)
        except UserError as exc:  # only the date can be wrong: to it, to put it right
            self._form_error = str(exc)
            date = self.query_one("#q-date", Input)
            date.add_class("error")
            date.focus()
            self._show_count()
            return
        if self.run is not None:
            self.run.cancel.set()  # its worker sends the C-CANCEL; its results are dropped
        self.run = Run(node)
        tree = self.query_one(ResultTree)
        tree.clear()
        self._patients, self._by_uid, self._here = {}, {}, set()
        self._studies, self._hold_until = 0, 0.0
        self.find_studies(self.run, keys)
        self._timer.resume()
        self._show_count()
        tree.focus()

    @work(thread=True, group="query")
    def find_studies(self, run: Run, keys: dict[str, str]) -> None:
        from tui.net.find import find

        try:
            for row in find(run.node, "study", keys, cancel=run.cancel):
                if run.cancel.is_set():
                    continue  # stopped: the PACS may send a few more before the C-CANCEL
                with run.lock:
                    run.inbox.append(row)
        except UserError as exc:
            run.error = str(exc)
        except Exception as exc:  # pynetdicom's surprises: a notice, never a traceback
            log.debug("query failed", exc_info=True)
            run.error = f"{run.node.name}: the query failed: {exc}"
        finally:
            run.finished = True
            self.post_message(QueryDone(run))

    def _drain(self, final: bool = False) -> None:
        """Draw the results that arrived since the last tick.

        Textual lays a tree out again, whole, after nodes are added (about 0.1 s at 20,000
        lines): with many lines the drawing spaces out (0.5 s apart at 10,000), so a long
        answer costs a few layouts, not hundreds, and keys stay quick while it streams. The
        counter follows every tick.
        """
        run = self.run
        if run is None or run.stopped:
            return
        lines = self._studies + len(self._patients)
        if not final and time.monotonic() < self._hold_until:
            self._show_count(pending=len(run.inbox))
            return
        self._hold_until = time.monotonic() + min(1.0, lines / 20_000)
        rows = run.take()
        if not rows:
            return
        tree = self.query_one(ResultTree)
        private = self.private
        grown = set()  # patients with a study more: their labels count them
        uids = []
        with tree.adding():
            for row in rows:
                key = (row.get("PatientID", ""), row.get("PatientName", ""))
                patient = self._patients.get(key)
                if patient is None:
                    label = patient_label(row, 1, private)
                    patient = tree.root.add(label, {"level": "patient", "row": row}, expand=True)
                    self._patients[key] = patient
                else:
                    grown.add(key)
                data = {"level": "study", "row": row, "node": run.node, "marked": False}
                study = patient.add(study_label(data, private), data)
                if uid := row.get("StudyInstanceUID", ""):
                    self._by_uid.setdefault(uid, []).append(study)
                    uids.append(uid)
                self._studies += 1
            for key in grown:
                patient = self._patients[key]
                row = patient.data["row"]  # type: ignore[index]
                patient.set_label(patient_label(row, len(patient.children), private))
        if tree.cursor_line < 0:
            tree.cursor_line = 0
        self._show_count()
        if uids:
            self.look_local(run, uids)

    @on(QueryDone)
    def _query_done(self, event: QueryDone) -> None:
        if event.run is not self.run or event.run.stopped:
            return  # an earlier query, replaced; or one stopped, already shown so
        self._drain(final=True)
        self._timer.pause()
        self._show_count()
        if event.run.error:
            self.notify(event.run.error, severity="error", timeout=10)

    def _show_count(self, pending: int = 0) -> None:
        count = self.query_one("#count", Static)
        count.set_class(bool(self._form_error), "error")
        if self._form_error:
            count.update(line(self._form_error))  # it quotes what was typed
            return
        run = self.run
        if run is None:
            count.update("Enter in a field runs the query · F1 explains the fields")
            return
        # Which node answered: another may be highlighted by now (names are [A-Za-z0-9_-]).
        text = plural(self._studies + pending, "study", "studies") + f" from {run.node.name}"
        if not pending:
            text += " · " + plural(len(self._patients), "patient")
        if self._here:
            text += f" · {len(self._here)} here"
        if run.stopped:
            text += " · stopped"
        elif run.error:
            text += " · failed"
        elif run.cancel.is_set():
            text += " · stopping…"
        elif not run.finished:
            text += " · querying… (Esc stops)"
        count.update(text)

    def action_cancel_or_back(self) -> None:
        """Esc, one step at a time: out of a form field (to the results, or the nodes if there
        are none); else it stops a running query or echo, at once on screen (C-CANCEL; a
        PACS that never answers is left to time out unseen); else back to the browser.
        Transfers go on in the background (``x`` stops one). From the worklist: back to the
        query."""
        if self.query_one(WorklistView).display:
            self.action_worklist()
            return
        if isinstance(self.focused, Input):
            tree = self.query_one(ResultTree)
            if tree.root.children:
                tree.focus()
            else:
                self.query_one("#nodes", OptionList).focus()
            return
        run = self.run
        if run is not None and not run.finished and not run.stopped:
            run.cancel.set()
            self._drain(final=True)  # what came before the stop is kept
            run.stopped = True
            self._timer.pause()
            self._show_count()
            return
        if self.nodes_pane.stop_echoes():
            return
        self.app.pop_screen()

    # -- what is here already ----------------------------------------------------------------

    @work(thread=True, group="local")
    def look_local(self, run: Run, studies: list[str], series_of: str = "") -> None:
        """Which of ``studies`` the archive holds (one statement for the batch), and after a
        retrieve, which series of ``series_of``: off the UI thread, the index may be busy."""
        read = pacs(self).read
        try:
            found = read(held_studies, studies)
            series = read(held_series, series_of) if series_of else None
        except UserError:  # locked by an import, say: the badges are a help, not a must
            log.debug("local look-up failed", exc_info=True)
            return
        self.post_message(
            LocalFound(run, {uid: found.get(uid, (0, "")) for uid in studies}, series_of, series)
        )

    @on(LocalFound)
    def _local_found(self, event: LocalFound) -> None:
        if event.run is not self.run:
            return
        changed = []
        for uid, (count, patient) in event.studies.items():
            for study in self._by_uid.get(uid, []):
                if study.data is None:
                    continue
                # The same study UID under another patient at the PACS is not what is here.
                here = count if study.data["row"].get("PatientID", patient) == patient else 0
                if study.data.get("here", 0) != here:
                    study.data["here"] = here
                    changed.append(study)
                if uid == event.study and event.series is not None and here:
                    changed += self._series_here(study, event.series)
            if count:
                self._here.add(uid)
            else:
                self._here.discard(uid)
        if changed:
            with self.query_one(ResultTree).adding():  # the widths change: one layout
                for node in changed:
                    self.query_one(ResultTree).relabel(node)
        self._show_count()

    @staticmethod
    def _series_here(
        study: TreeNode[dict[str, Any]], held: dict[str, int]
    ) -> list[TreeNode[dict[str, Any]]]:
        """The series of ``study`` whose count here changed, set to ``held``'s."""
        changed = []
        for series in study.children:
            data = series.data or {}
            if data.get("level") == "series":
                here = held.get(data["row"].get("SeriesInstanceUID", ""), 0)
                if data.get("here", 0) != here:
                    data["here"] = here
                    changed.append(series)
        return changed

    # -- series, on demand ------------------------------------------------------------------------

    @on(Tree.NodeExpanded, "#results")
    def _expanded(self, event: Tree.NodeExpanded[dict[str, Any]]) -> None:
        data = event.node.data or {}
        if data.get("level") != "study" or data.get("loaded"):
            return
        data["loaded"] = True
        event.node.add_leaf(Text("loading series…", style="dim"), {"level": "loading"})
        self.find_series(event.node, data["node"], data["row"]["StudyInstanceUID"])

    @work(thread=True, group="series")
    def find_series(self, study: TreeNode[dict[str, Any]], node: Node, uid: str) -> None:
        from tui.net.find import default_keys, find

        try:
            rows = list(find(node, "series", {**default_keys("series"), "StudyInstanceUID": uid}))
        except Exception as exc:  # a NetError most likely: a notice either way
            message = str(exc) if isinstance(exc, UserError) else f"series query failed: {exc}"
            self.app.call_from_thread(self._add_series, study, [], {}, message)
            return
        try:
            here = pacs(self).read(held_series, uid)
        except UserError:
            log.debug("local look-up failed", exc_info=True)
            here = {}
        self.app.call_from_thread(self._add_series, study, rows, here, "")

    def _add_series(
        self,
        study: TreeNode[dict[str, Any]],
        rows: list[dict[str, str]],
        here: dict[str, int],
        error: str,
    ) -> None:
        if study.tree is not self.query_one(ResultTree) or study.data is None:
            return
        try:
            study.tree.get_node_by_id(study.id)
        except UnknownNodeID:
            return  # the results were replaced meanwhile
        study.remove_children()
        if error:
            study.data["loaded"] = False  # expand again to try again
            self.notify(error, severity="error", timeout=10)
            return

        def number(row: dict[str, str]) -> tuple[int, str]:
            text = row.get("SeriesNumber", "")
            return (int(text) if text.lstrip("-").isdigit() else 1 << 30, text)

        for row in sorted(rows, key=number):
            data = {
                "level": "series",
                "row": row,
                "marked": False,
                "here": here.get(row.get("SeriesInstanceUID", ""), 0),
            }
            study.add_leaf(series_label(data), data)

    # -- marks and retrieving -----------------------------------------------------------------

    def action_mark(self) -> None:
        self.query_one(ResultTree).mark()

    def action_mark_all(self) -> None:
        self.query_one(ResultTree).mark_all()

    def action_retrieve(self) -> None:
        """``g``: the marked studies and series, else the highlighted one, into the queue, as
        one batch (one notice when all of it is over)."""
        root = pacs(self).archive.root
        if root is None:
            self.notify(
                "this archive lives in memory (a CD opened for a look): open your own archive "
                "to retrieve into it",
                severity="error",
            )
            return
        tree = self.query_one(ResultTree)
        picked = tree.marked() or tree.highlighted()
        if not picked:
            self.notify("mark studies or series (space), or highlight one, to retrieve")
            return
        queue = self.queue
        batch = queue.new_batch()
        busy = queue.busy()
        new = []
        for node in picked:
            job = self._job(node, Path(root), batch)
            if (job.study, job.series) not in busy:
                new.append(job)
                busy.add((job.study, job.series))
            if node.data and node.data.get("marked"):
                node.data["marked"] = False
                tree.relabel(node)
        if not new:
            self.notify("already in the transfer queue")
            return
        queue.add(batch, new)

    def _job(self, node: TreeNode[dict[str, Any]], root: Path, batch: int) -> Job:
        data = node.data or {}
        study: dict[str, Any]
        if data["level"] == "series":
            study = node.parent.data if node.parent and node.parent.data else {}
            who = line(self._who(study["row"]), "  ")
            label = Text.assemble(who, series_label({"row": data["row"]}))
            series: str | None = data["row"]["SeriesInstanceUID"]
        else:
            study, series = data, None
            row = study["row"]
            label = line(
                self._who(row), "  ", iso_date(row.get("StudyDate", "")), "  ",
                row.get("StudyDescription") or row.get("ModalitiesInStudy", ""),
            )  # fmt: skip
        return Job(study["node"], root, study["row"]["StudyInstanceUID"], series, label, batch)

    def _who(self, row: dict[str, str]) -> str:
        return shown(row, "PatientName", self.private) or shown(row, "PatientID", self.private)

    @on(Retrieved)
    def _retrieved(self, event: Retrieved) -> None:
        """New instances arrived: the browser shows them at once, and the badges follow."""
        self.app.post_message(ArchiveChanged())
        job = event.job
        if self.run is not None and job.study in self._by_uid:  # its badge, up to date
            self.look_local(self.run, [job.study], series_of=job.study)

    def action_clear_finished(self) -> None:
        """``c``: done, failed and stopped transfers leave the queue."""
        self.queue.clear_finished()

    def action_stop_transfer(self) -> None:
        """``x``: the running transfer (or the next, if the queue is just starting) stops."""
        self.queue.stop()

    def action_stop_all(self) -> None:
        self.queue.stop_all()
