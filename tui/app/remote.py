"""The remote screen: query a PACS, watch the answers arrive, retrieve what you mark.

Nodes come from config.toml (``pacs-tui node add``). Queries, series look-ups, echoes and
retrieves run in thread workers through :mod:`tui.net`, so the screen never waits on the
network: a query's results are collected by its worker and drawn by a 20 Hz timer, so 10,000
answers arrive as a few hundred tree updates, not 10,000 messages. Each batch drawn is looked
up in the local archive by another worker (one SQL statement), so studies already here are
marked as such. The screen is installed once (:func:`open_remote`): going back to the browser
keeps the results, the marks and the transfers still running.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Label, OptionList, Static, Tree
from textual.widgets.option_list import Option
from textual.widgets.tree import TreeNode, UnknownNodeID

from tui.app.keys import type_into
from tui.app.labels import Fitted, FittedTree, iso_date, line, patient_label, plural
from tui.app.messages import ArchiveChanged
from tui.errors import UserError
from tui.net.nodes import RECEIVE_PORT, Node, load_nodes, receiver_settings
from tui.net.typed import date_range, modalities
from tui.privacy import mask, shown

if TYPE_CHECKING:
    from tui.archive.index import Archive
    from tui.net.scu import Transfer

log = logging.getLogger(__name__)

NO_NODES = (
    "No PACS configured yet.\n\n"
    "Add one from the shell, then come back here:\n\n"
    "  pacs-tui node add NAME AET HOST PORT\n"
    "  (for example: pacs-tui node add pacs ORTHANC pacs.example.org 4242)\n\n"
    "pacs-tui demo starts a small PACS holding the demo data and configures a node for it."
)
# What `?` (F1 in a field, where `?` is a wildcard) shows above the keys: the query syntax is
# not guessable from the form. Short: the help panel has half of 80 columns (pacs.tcss).
HELP = """\
**Query**: Enter in a field runs it.\\
Name `smi` finds SMITH…\\
Date `2024` `today` `yesterday`, the last `7d` `4w` `6m` `1y`, \
`20240131`, `20240101-20240331`, `20240101-`\\
Mod `CT`, or several: `CT,MR`\\
`*` and `?` are wildcards (Name, ID, Acc)

`● here` the archive has it all, `◐ 26/301 here` a part
"""
_DRAIN_SECONDS = 0.05  # how often arrived results are drawn: often enough to look live
_PROGRESS_SECONDS = 0.1  # the least time between two progress updates of a transfer
_UIDS_PER_STATEMENT = 500  # under SQLite's oldest limit of 999 variables per statement
_NODES_WIDTH = 18  # the node pane at least: an IPv4 address fits its detail box on one line
_FINAL = ("done", "failed", "stopped")


def open_remote(app: App[Any]) -> None:
    """Show the remote screen, installed once so its state outlives a visit to the browser."""
    if not app.is_screen_installed("remote"):
        app.install_screen(RemoteScreen(), "remote")
    app.push_screen("remote")


# -- the query form ---------------------------------------------------------------------------


def query_keys(
    name: str = "", patient_id: str = "", dates: str = "", modality: str = "", accession: str = ""
) -> dict[str, str]:
    """C-FIND keys for the form: the study level's usual return keys, narrowed by what was
    typed. A name without wildcards matches as a prefix (``smi`` finds ``SMITH^JOHN``)."""
    from tui.net.find import default_keys

    name = name.strip()
    if name and not any(c in name for c in "*?"):
        name += "*"
    filters = {
        "PatientName": name,
        "PatientID": patient_id.strip(),
        "StudyDate": date_range(dates),
        "ModalitiesInStudy": modalities(modality),
        "AccessionNumber": accession.strip(),
    }
    return {**default_keys("study"), **{k: v for k, v in filters.items() if v}}


# -- what the local archive holds already ----------------------------------------------------


def local_studies(archive: Archive, studies: list[str]) -> dict[str, int]:
    """How many instances of each of ``studies`` the archive holds, for those it holds at all:
    one statement per 500 UIDs (an index look-up each: ``study_uid`` is unique), so a batch of
    results costs one query, not one per row."""
    found: dict[str, int] = {}
    try:
        for start in range(0, len(studies), _UIDS_PER_STATEMENT):
            chunk = studies[start : start + _UIDS_PER_STATEMENT]
            found.update(
                archive.conn.execute(
                    "SELECT study_uid, num_instances FROM study"
                    f" WHERE study_uid IN ({', '.join('?' * len(chunk))})",
                    chunk,
                )
            )
    except sqlite3.Error as exc:
        raise archive.error(exc) from None
    return found


def local_series(archive: Archive, study: str) -> dict[str, int]:
    """How many instances of each series of ``study`` the archive holds."""
    try:
        return dict(
            archive.conn.execute(
                "SELECT se.series_uid, se.num_instances FROM series se"
                " JOIN study st USING (study_pk) WHERE st.study_uid = ?",
                (study,),
            )
        )
    except sqlite3.Error as exc:
        raise archive.error(exc) from None


# -- labels -----------------------------------------------------------------------------------


def _mark(data: dict[str, Any]) -> tuple[str, str]:
    return ("✔ ", "bold") if data.get("marked") else ("", "")


def _here(data: dict[str, Any], total_key: str) -> tuple[str, str]:
    """``● here`` when the archive holds all of it, ``◐ 26/301 here`` when part of it (the
    PACS's count; just ``◐ 26 here`` when it gave none)."""
    here = data.get("here", 0)
    if not here:
        return ("", "")
    total = str(data["row"].get(total_key, ""))
    if total.isdigit() and here >= int(total):
        return ("● here  ", "green")
    return (f"◐ {here}/{total} here  " if total.isdigit() else f"◐ {here} here  ", "yellow")


def study_label(data: dict[str, Any], private: bool) -> Fitted:
    """Date, modalities, what is here already, description, accession, counts: the
    description is cut first when the line is narrow."""
    row = data["row"]
    accession = row.get("AccessionNumber", "")
    counts = [
        plural(row[key], word, words)
        for key, word, words in (("NumberOfStudyRelatedSeries", "series", "series"),
                                 ("NumberOfStudyRelatedInstances", "image", "images"))
        if row.get(key)
    ]  # fmt: skip
    modalities = row.get("ModalitiesInStudy", "")
    return line(
        _mark(data),
        iso_date(row.get("StudyDate", "")),
        "  " + (modalities + "  " if modalities else ""),
        _here(data, "NumberOfStudyRelatedInstances"),
        row.get("StudyDescription") or "(no description)",
        ("  acc " + (mask(accession) if private else accession) if accession else "", "dim"),
        ("  " + ", ".join(counts) if counts else "", "dim"),
        cut=4,
    )


def series_label(data: dict[str, Any]) -> Fitted:
    row = data["row"]
    images = row.get("NumberOfSeriesRelatedInstances", "")
    return line(
        _mark(data),
        f"{row.get('Modality', '')} {row.get('SeriesNumber', '')}".strip() + "  ",
        _here(data, "NumberOfSeriesRelatedInstances"),
        row.get("SeriesDescription") or "(no description)",
        ("  " + plural(images, "image") if images else "", "dim"),
        cut=3,
    )


# -- queries and transfers, shared between the UI and the workers --------------------------------


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


@dataclass(eq=False)
class Job:
    """One retrieve in the transfer queue: a study, or one series of it."""

    node: Node
    root: Path  # the archive it files into, as it was when queued
    study: str
    series: str | None
    label: Text  # what it is, masked under --privacy
    batch: int = 0  # the `g` that queued it: one notice per batch
    state: str = "queued"  # running, done, failed, stopped
    transfer: Transfer | None = None
    error: str = ""
    summary: str = ""  # the final counts, frozen (a live rate keeps falling)
    cancel: threading.Event = field(default_factory=threading.Event)
    posted: float = 0.0
    reported: bool = False  # the screen has shown its final state (UI thread only)

    def progress(self) -> str:
        """``[####------] 12/40  1.2 MB  3.4 MB/s``, or the final counts."""
        if self.summary:
            return self.summary
        t = self.transfer
        if self.state == "running" and self.cancel.is_set():
            return "stopping…"
        if t is None:
            return "asking…" if self.state == "running" else "queued"
        tally = t.tally
        bar = ""
        if t.expected:
            filled = min(10, 10 * t.done // t.expected)
            bar = "[" + "#" * filled + "-" * (10 - filled) + "] "
        expected = "?" if t.expected is None else t.expected
        rate = f"{tally.bytes / 1e6:.1f} MB  {tally.megabytes_per_second:.1f} MB/s"
        return f"{bar}{t.done}/{expected}  {rate}"

    def finish(self) -> None:
        """Freeze the outcome: new, present and failed instances, bytes and rate."""
        t = self.transfer
        counts = ""
        if t is not None:
            present = t.skipped + t.tally.present
            failed = t.tally.failed + t.failed_remote
            counts = f"{t.tally.new} new"
            counts += f", {present} here already" if present else ""
            counts += f", {failed} failed" if failed else ""
            if t.tally.bytes:
                counts += (
                    f", {t.tally.bytes / 1e6:.1f} MB at {t.tally.megabytes_per_second:.1f} MB/s"
                )
        outcomes = {"failed": self.error, "stopped": f"stopped: {counts or 'nothing arrived'}"}
        self.summary = outcomes.get(self.state, counts)


def batch_summary(jobs: list[Job]) -> tuple[str, str]:
    """One notice for a whole batch of retrieves, and its severity: a batch of 40 studies
    must not pile up 40 notices."""
    if len(jobs) == 1:
        job = jobs[0]
        if job.state == "failed":
            return job.error, "error"
        return Text.assemble(job.label, ": ", job.summary).plain, "information"
    states = [job.state for job in jobs]
    transfers = [job.transfer for job in jobs if job.transfer is not None]
    new = sum(t.tally.new for t in transfers)
    present = sum(t.skipped + t.tally.present for t in transfers)
    text = f"{states.count('done')} of {len(jobs)} retrieved: {plural(new, 'new image')}"
    text += f", {present} here already" if present else ""
    text += f"; {states.count('stopped')} stopped" if "stopped" in states else ""
    failed = [job for job in jobs if job.state == "failed"]
    if failed:
        text += f"; {len(failed)} failed ({failed[0].error})"
    return text, "error" if failed else "information"


_ICONS = {"queued": "·", "running": "⇣", "done": "✔", "failed": "✘", "stopped": "■"}


class TransferRow(Static):
    """One job of the transfer queue, redrawn on each (throttled) progress report."""

    def __init__(self, job: Job) -> None:
        super().__init__(classes=f"transfer {job.state}")
        self.job = job

    def on_mount(self) -> None:
        self.show()

    def show(self) -> None:
        job = self.job
        self.set_classes(f"transfer {job.state}")
        self.update(Text.assemble(f"{_ICONS[job.state]} {job.progress()}  ", job.label))


class ResultTree(FittedTree):
    """The results: space marks (a study, a series, or all studies of a patient).

    Built for 10,000 answers: labels are one-line :class:`Text` already (no markup to parse),
    widths are measured without rendering, and a batch of nodes is added with one
    invalidation instead of one per node. Lines are fitted to the width as they are drawn
    (the description gives way first), so the tree never scrolls sideways.
    """

    BINDINGS = [Binding("space", "screen.mark", "Mark", id="remote.mark")]
    _quiet = False

    def _invalidate(self) -> None:
        if not self._quiet:
            super()._invalidate()

    @contextmanager
    def adding(self) -> Iterator[None]:
        """Add many nodes, then lay the tree out once."""
        self._quiet = True
        try:
            yield
        finally:
            self._quiet = False
            self._invalidate()


class QueryDone(Message):
    def __init__(self, run: Run) -> None:
        super().__init__()
        self.run = run


class TransferChanged(Message):
    def __init__(self, job: Job) -> None:
        super().__init__()
        self.job = job


class LocalFound(Message):
    """What the archive holds of some studies (and of the series of one, after a retrieve)."""

    def __init__(
        self,
        run: Run,
        studies: dict[str, int],
        study: str = "",
        series: dict[str, int] | None = None,
    ) -> None:
        super().__init__()
        self.run, self.studies, self.study, self.series = run, studies, study, series


# -- the screen -------------------------------------------------------------------------------


class RemoteScreen(Screen[None]):
    """Nodes on the left; the query form, its results and the transfer queue on the right."""

    AUTO_FOCUS = "#nodes"  # choose a node, Enter to the form, Enter to the results
    HELP = HELP
    # The footer shows them in this order (after the focused widget's): at 80 columns only the
    # first few fit, so retrieving and stopping come first.
    BINDINGS = [
        Binding("g", "retrieve", "Retrieve", id="remote.retrieve"),
        Binding("x", "stop_transfer", "Stop transfer", id="remote.stop"),
        Binding("slash", "form", "Query", id="remote.form", priority=True),
        Binding("e", "echo", "Echo", id="remote.echo"),
        Binding("escape", "cancel_or_back", "Stop/back", id="remote.back"),
        Binding("a", "mark_all", "Mark all", id="remote.mark_all"),
        Binding("c", "clear_finished", "Clear finished", id="remote.clear"),
        Binding("ctrl+r", "query", "Run query", show=False, id="remote.query"),
        Binding("X", "stop_all", "Stop all transfers", show=False, id="remote.stop_all"),
        # `?` types a wildcard in a field: F1 shows the help from anywhere.
        Binding("f1", "app.toggle_help", "Help", show=False, id="remote.help"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.nodes: dict[str, Node] = {}
        self.echoes: dict[str, str] = {}  # node name: the last echo's outcome
        self._echoing: dict[str, threading.Event] = {}  # node name: its echo's stop flag
        self.run: Run | None = None
        self.jobs: list[Job] = []
        self._jobs_lock = threading.Lock()
        self._draining = False  # a transfer worker is running the queue
        self._batches: dict[int, list[Job]] = {}  # batches not yet reported
        self._batch = 0
        self._patients: dict[tuple[str, str], TreeNode[dict[str, Any]]] = {}
        self._by_uid: dict[str, TreeNode[dict[str, Any]]] = {}  # StudyInstanceUID: study
        self._here: set[str] = set()  # studies the archive holds some of
        self._studies = 0
        self._hold_until = 0.0  # no drawing of results before then (see _drain)
        self._form_error = ""  # what is wrong with the form, shown until it is edited

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="remote"):
            with Vertical(id="remote-nodes"):
                yield OptionList(id="nodes")
                yield Static("", id="node-status")
            with Vertical(id="remote-main"):
                # Placeholders read "e.g. …" and are dim and italic: a bare "CT" was taken for
                # a value already typed.
                with Vertical(id="form"):
                    with Horizontal(classes="form-row"):
                        yield Label("Name")
                        yield Input(placeholder="e.g. smi, *son", id="q-name", compact=True)
                        yield Label("ID")
                        yield Input(placeholder="e.g. 1234*", id="q-id", compact=True)
                    with Horizontal(classes="form-row"):
                        yield Label("Date")
                        yield Input(placeholder="e.g. 7d, 2024", id="q-date", compact=True)
                        yield Label("Mod")
                        yield Input(placeholder="e.g. CT,MR", id="q-mod", compact=True)
                        yield Label("Acc")
                        yield Input(placeholder="e.g. A12*", id="q-acc", compact=True)
                yield Static("", id="count")
                yield Static(NO_NODES, id="empty")
                tree = ResultTree("Results", id="results")
                tree.show_root = False
                tree.guide_depth = 3  # not 4: a column more for the description of each level
                yield tree
                with Vertical(id="queue"):
                    yield Static("", id="queue-head")
                    yield VerticalScroll(id="queue-rows")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "remote"
        self._timer = self.set_interval(_DRAIN_SECONDS, self._drain, pause=True)
        self._show_count()

    def on_screen_resume(self) -> None:
        """Nodes are read each time the screen shows: one added in a shell meanwhile is there."""
        self.load_node_list()

    def on_resize(self, event: events.Resize) -> None:
        self._size_nodes()

    def on_unmount(self) -> None:
        """The app is closing: stop the network work, so no thread holds the exit up."""
        if self.run is not None:
            self.run.cancel.set()
        for job in self.jobs:
            job.cancel.set()
        for stop in self._echoing.values():
            stop.set()

    @property
    def private(self) -> bool:
        return bool(getattr(self.app, "privacy", False))

    # -- nodes -------------------------------------------------------------------------------

    def load_node_list(self) -> None:
        config_dir = getattr(self.app, "config_dir", None)
        options = self.query_one("#nodes", OptionList)
        current = self.node.name if self.node is not None else None
        try:
            self.nodes = load_nodes(config_dir / "config.toml") if config_dir else {}
        except UserError as exc:
            self.nodes = {}
            self.notify(str(exc), severity="error")
        options.clear_options()
        options.add_options(  # names only: the AE title and address are in the box below
            Option(Text(name, style="bold"), id=name) for name in sorted(self.nodes)
        )
        self.set_class(not self.nodes, "no-nodes")
        if self.nodes:
            names = sorted(self.nodes)
            options.highlighted = names.index(current) if current in names else 0
        self._size_nodes()
        self._show_node()

    def _size_nodes(self) -> None:
        """As wide as the longest name or host, within a quarter of the screen: at 80 columns
        the results need the room more (a longer name ends in "…", a longer host wraps)."""
        # Beside a name: its padding (2), the focus bar and the rule on the right (1 each);
        # beside a host in the box below: a padding of 1, the bar and the rule.
        needed = max(
            [cell_len(name) + 4 for name in self.nodes]
            + [cell_len(node.host) + 3 for node in self.nodes.values()],
            default=0,
        )
        widest = max(_NODES_WIDTH, self.size.width // 4)
        pane = self.query_one("#remote-nodes", Vertical)
        pane.styles.width = min(max(needed, _NODES_WIDTH), widest)

    @property
    def node(self) -> Node | None:
        """The highlighted node: queries go to it."""
        options = self.query_one("#nodes", OptionList)
        if options.highlighted is None or not self.nodes:
            return None
        option = options.get_option_at_index(options.highlighted)
        return self.nodes.get(option.id or "")

    @on(OptionList.OptionHighlighted, "#nodes")
    def _show_node(self) -> None:
        node = self.node
        status = self.query_one("#node-status", Static)
        if node is None:
            status.update("")
            return
        how = "C-GET" if node.method == "get" else f"C-MOVE to {node.destination}"
        # The host alone on its line: a long one wraps whole, not cut at its port.
        status.update(
            Text.assemble(
                (node.aet, "bold"),
                f"\n{node.host}\nport {node.port}\n",
                how + (" · TLS" if node.tls else ""),
                "\n" + self.echoes.get(node.name, "e: echo"),
            )
        )

    @on(OptionList.OptionSelected, "#nodes")
    def _node_chosen(self) -> None:
        self.action_form()

    def action_echo(self) -> None:
        node = self.node
        if node is None:
            self.notify("no node to echo: pacs-tui node add NAME AET HOST PORT", severity="warning")
            return
        if node.name in self._echoing:
            return  # one echo at a time per node: it answers or times out
        stop = self._echoing[node.name] = threading.Event()
        self.echoes[node.name] = "echo… Esc stops"
        self._show_node()
        self.echo_node(node, stop)

    @work(thread=True, group="echo")
    def echo_node(self, node: Node, stop: threading.Event) -> None:
        from tui.net.scu import echo

        try:
            total, _ = echo(node)
        except UserError as exc:
            self.app.call_from_thread(self._echoed, node, stop, "✘ no echo", str(exc), "error")
            return
        except Exception as exc:  # pynetdicom's surprises: a notice, never a traceback
            log.debug("echo failed", exc_info=True)
            self.app.call_from_thread(
                self._echoed, node, stop, "✘ no echo", f"echo failed: {exc}", "error"
            )
            return
        ms = f"{total * 1000:.0f} ms"
        self.app.call_from_thread(
            self._echoed,
            node,
            stop,
            f"echo {ms}",
            f"{node.name} ({node.address}): echo {ms}",
            "information",
        )

    def _echoed(
        self, node: Node, stop: threading.Event, status: str, message: str, severity: Any
    ) -> None:
        if stop.is_set():
            return  # stopped with Esc: the user has moved on, a late answer is no news
        self._echoing.pop(node.name, None)
        self.echoes[node.name] = status
        self._show_node()
        self.notify(message, severity=severity, timeout=8 if severity == "error" else 4)

    def _stop_echoes(self) -> None:
        """Esc: every echo still waiting shows stopped at once (the worker waits out its
        timeout; its answer is dropped)."""
        for name, stop in self._echoing.items():
            stop.set()
            self.echoes[name] = "echo stopped"
        self._echoing.clear()
        self._show_node()

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
        values = [
            self.query_one(f"#q-{key}", Input).value for key in ("name", "id", "date", "mod", "acc")
        ]
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
                    self._by_uid[uid] = study
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
            count.update(self._form_error)
            return
        run = self.run
        if run is None:
            count.update("Enter in a field runs the query · F1 explains the fields")
            return
        text = plural(self._studies + pending, "study", "studies")
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
        Transfers go on in the background (``x`` stops one)."""
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
        if self._echoing:
            self._stop_echoes()
            return
        self.app.pop_screen()

    # -- what is here already ----------------------------------------------------------------

    @work(thread=True, group="local")
    def look_local(self, run: Run, studies: list[str], series_of: str = "") -> None:
        """Which of ``studies`` the archive holds (one statement for the batch), and after a
        retrieve, which series of ``series_of``: off the UI thread, the index may be busy."""
        read = self.app.read  # type: ignore[attr-defined]
        try:
            found = read(local_studies, studies)
            series = read(local_series, series_of) if series_of else None
        except UserError:  # locked by an import, say: the badges are a help, not a must
            log.debug("local look-up failed", exc_info=True)
            return
        self.post_message(
            LocalFound(run, {uid: found.get(uid, 0) for uid in studies}, series_of, series)
        )

    @on(LocalFound)
    def _local_found(self, event: LocalFound) -> None:
        if event.run is not self.run:
            return
        changed = []
        for uid, here in event.studies.items():
            study = self._by_uid.get(uid)
            if study is None or study.data is None:
                continue
            if here:
                self._here.add(uid)
            else:
                self._here.discard(uid)
            if study.data.get("here", 0) != here:
                study.data["here"] = here
                changed.append(study)
            if uid == event.study and event.series is not None:
                for series in study.children:
                    data = series.data or {}
                    if data.get("level") == "series":
                        here = event.series.get(data["row"].get("SeriesInstanceUID", ""), 0)
                        if data.get("here", 0) != here:
                            data["here"] = here
                            changed.append(series)
        if changed:
            with self.query_one(ResultTree).adding():  # the widths change: one layout
                for node in changed:
                    self._relabel(node)
        self._show_count()

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
            here = self.app.read(local_series, uid)  # type: ignore[attr-defined]
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

    # -- marks -----------------------------------------------------------------------------------

    def _relabel(self, node: TreeNode[dict[str, Any]]) -> None:
        data = node.data or {}
        if data.get("level") == "study":
            node.set_label(study_label(data, self.private))
        elif data.get("level") == "series":
            node.set_label(series_label(data))

    def action_mark(self) -> None:
        """Space: a study (whole), a series (alone), or every study of a patient."""
        tree = self.query_one(ResultTree)
        node = tree.cursor_node
        data = (node.data or {}) if node is not None else {}
        level = data.get("level")
        if node is None or level not in ("patient", "study", "series"):
            return
        if level == "patient":
            marked = not all((child.data or {}).get("marked") for child in node.children)
            for child in node.children:
                self._mark_study(child, marked)
            return
        if level == "study":
            self._mark_study(node, not data["marked"])
        else:
            study = node.parent
            assert study is not None and study.data is not None
            if study.data["marked"]:  # the whole study was marked: all of it but this one
                self._mark_study(study, False)
                for sibling in study.children:
                    sibling.data["marked"] = sibling is not node  # type: ignore[index]
                    self._relabel(sibling)
            else:
                data["marked"] = not data["marked"]
                self._relabel(node)
        tree.action_cursor_down()

    def _mark_study(self, study: TreeNode[dict[str, Any]], marked: bool) -> None:
        """A study marked whole: its series show no marks of their own."""
        assert study.data is not None
        study.data["marked"] = marked
        self._relabel(study)
        for series in study.children:
            if series.data and series.data.get("level") == "series" and series.data["marked"]:
                series.data["marked"] = False
                self._relabel(series)

    def action_mark_all(self) -> None:
        studies = [s for p in self.query_one(ResultTree).root.children for s in p.children]
        marked = not all(s.data["marked"] for s in studies)  # type: ignore[index]
        for study in studies:
            self._mark_study(study, marked)

    # -- retrieving ------------------------------------------------------------------------------

    def action_retrieve(self) -> None:
        """``g``: the marked studies and series, else the highlighted one, into the queue, as
        one batch (one notice when all of it is over)."""
        root = self.app.archive.root  # type: ignore[attr-defined]
        if root is None:
            self.notify(
                "this archive lives in memory (a CD opened for a look): open your own archive "
                "to retrieve into it",
                severity="error",
            )
            return
        tree = self.query_one(ResultTree)
        picked = self._marked(tree.root) or self._highlighted(tree.cursor_node)
        if not picked:
            self.notify("mark studies or series (space), or highlight one, to retrieve")
            return
        self.action_clear_finished()  # a new batch: the outcome of the last is in its notice
        busy = {(j.study, j.series) for j in self.jobs}
        self._batch += 1
        new = []
        for node in picked:
            job = self._job(node, Path(root), self._batch)
            if (job.study, job.series) not in busy:
                new.append(job)
                busy.add((job.study, job.series))
            if node.data and node.data.get("marked"):
                node.data["marked"] = False
                self._relabel(node)
        if not new:
            self.notify("already in the transfer queue")
            return
        self._batches[self._batch] = new
        rows = self.query_one("#queue-rows", VerticalScroll)
        self.query_one("#queue").add_class("shown")
        rows.mount_all(TransferRow(job) for job in new)
        rows.scroll_end(animate=False)
        with self._jobs_lock:
            self.jobs += new
            start = not self._draining
            self._draining = True
        self._show_queue()
        if start:
            self.run_transfers()

    def _marked(self, root: TreeNode[dict[str, Any]]) -> list[TreeNode[dict[str, Any]]]:
        picked = []
        for patient in root.children:
            for study in patient.children:
                if study.data["marked"]:  # type: ignore[index]
                    picked.append(study)
                    continue
                picked += [s for s in study.children if (s.data or {}).get("marked")]
        return picked

    def _highlighted(self, node: TreeNode[dict[str, Any]] | None) -> list[TreeNode[dict[str, Any]]]:
        level = (node.data or {}).get("level") if node is not None else None
        if node is None or level not in ("patient", "study", "series"):
            return []
        return list(node.children) if level == "patient" else [node]

    def _job(self, node: TreeNode[dict[str, Any]], root: Path, batch: int) -> Job:
        data = node.data or {}
        study: dict[str, Any]
        if data["level"] == "series":
            study = node.parent.data if node.parent and node.parent.data else {}
            label = Text.assemble(self._who(study["row"]), "  ", series_label({"row": data["row"]}))
            series: str | None = data["row"]["SeriesInstanceUID"]
        else:
            study, series = data, None
            row = study["row"]
            label = Text.assemble(
                self._who(row), "  ", iso_date(row.get("StudyDate", "")), "  ",
                row.get("StudyDescription") or row.get("ModalitiesInStudy", ""),
            )  # fmt: skip
        return Job(study["node"], root, study["row"]["StudyInstanceUID"], series, label, batch)

    def _who(self, row: dict[str, str]) -> str:
        return shown(row, "PatientName", self.private) or shown(row, "PatientID", self.private)

    @work(thread=True, group="transfers")
    def run_transfers(self) -> None:
        """The queue, one retrieve after another (one association at a time per PACS is what
        most PACS administrators expect)."""
        from tui.net.scu import retrieve

        while True:
            with self._jobs_lock:
                job = next((j for j in self.jobs if j.state == "queued"), None)
                if job is None:
                    self._draining = False
                    return
                job.state = "running"
            self.post_message(TransferChanged(job))

            def progress(transfer: Transfer, job: Job = job) -> None:
                job.transfer = transfer
                now = time.monotonic()
                if now - job.posted >= _PROGRESS_SECONDS:
                    job.posted = now
                    self.post_message(TransferChanged(job))

            try:
                job.transfer = retrieve(
                    job.node, job.root, job.study, job.series, progress=progress,
                    cancel=job.cancel, receive_port=self._receive_port(),
                )  # fmt: skip
                job.state = "stopped" if job.cancel.is_set() else "done"
            except UserError as exc:
                job.state, job.error = "failed", str(exc)
            except Exception as exc:  # pynetdicom's surprises: a notice, never a traceback
                log.debug("retrieve failed", exc_info=True)
                job.state, job.error = "failed", f"{job.node.name}: the retrieve failed: {exc}"
            job.finish()
            self.post_message(TransferChanged(job))

    def _receive_port(self) -> int:
        """Where our storage SCP listens for a C-MOVE: ``[receiver] port``, as for ``get``."""
        config_dir = getattr(self.app, "config_dir", None)
        if config_dir is None:
            return RECEIVE_PORT
        return int(receiver_settings(config_dir / "config.toml")["port"])

    @on(TransferChanged)
    def _transfer_changed(self, event: TransferChanged) -> None:
        job = event.job
        for row in self.query(TransferRow):
            if row.job is job:
                row.show()
        if job.state not in _FINAL or job.reported:
            return
        job.reported = True
        self._show_queue()
        if job.transfer is not None and job.transfer.tally.new:
            self.app.post_message(ArchiveChanged())  # the browser shows them at once
            if self.run is not None and job.study in self._by_uid:  # its badge, up to date
                self.look_local(self.run, [job.study], series_of=job.study)
        batch = self._batches.get(job.batch, [])
        if batch and all(j.reported for j in batch):
            del self._batches[job.batch]
            text, severity = batch_summary(batch)
            self.notify(text, severity=severity, timeout=10 if severity == "error" else 5)  # type: ignore[arg-type]

    def _show_queue(self) -> None:
        """The queue's first line: how many are where, and the keys that act on them."""
        states = [job.state for job in self.jobs]
        counts = [
            f"{states.count(state)} {state}"
            for state in ("running", "queued", "done", "stopped", "failed")
            if state in states
        ]
        keys = [
            key
            for key, wanted in (("x stops", ("running", "queued")), ("c clears finished", _FINAL))
            if set(wanted) & set(states)
        ]
        head = Text.assemble(
            ("Transfers: ", "bold"), ", ".join(counts), ("  " + " · ".join(keys), "dim")
        )
        self.query_one("#queue-head", Static).update(head)

    def action_clear_finished(self) -> None:
        """``c``: done, failed and stopped transfers leave the queue (a stopped one retrieved
        again shows once, as it ends this time)."""
        with self._jobs_lock:
            gone = {job for job in self.jobs if job.reported}
            self.jobs = [job for job in self.jobs if job not in gone]
        for row in self.query(TransferRow):
            if row.job in gone:
                row.remove()
        self.query_one("#queue").set_class(bool(self.jobs), "shown")
        self._show_queue()

    def action_stop_transfer(self) -> None:
        """``x``: the running transfer (or the next, if the queue is just starting) stops;
        what arrived is kept, and a later retrieve resumes from there."""
        with self._jobs_lock:
            current = next((j for j in self.jobs if j.state == "running"), None)
            current = current or next((j for j in self.jobs if j.state == "queued"), None)
            if current is not None and current.state == "queued":
                current.state = "stopped"
                current.finish()
        if current is None:
            self.notify("no transfer is running")
            return
        current.cancel.set()  # the retrieve sends a C-CANCEL
        self.post_message(TransferChanged(current))

    def action_stop_all(self) -> None:
        stopped = []
        with self._jobs_lock:
            for job in self.jobs:
                if job.state == "queued":
                    job.state = "stopped"
                    job.finish()
                    stopped.append(job)
                job.cancel.set()
        for row in self.query(TransferRow):
            row.show()
        for job in stopped:  # the running one reports when its worker is done
            self.post_message(TransferChanged(job))
