"""The transfer queue: retrieves run one after another in a worker, each line shows its
progress, and one notice tells how a whole batch went."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Static

from tui.app.labels import plural
from tui.errors import UserError
from tui.net.nodes import RECEIVE_PORT, Node, receiver_settings

if TYPE_CHECKING:
    from tui.net.scu import Transfer

log = logging.getLogger(__name__)

_PROGRESS_SECONDS = 0.1  # the least time between two progress updates of a transfer
FINAL = ("done", "failed", "stopped")
_ICONS = {"queued": "·", "running": "⇣", "done": "✔", "failed": "✘", "stopped": "■"}


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
            present, failed = t.present, t.failed
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
    present = sum(t.present for t in transfers)
    text = f"{states.count('done')} of {len(jobs)} retrieved: {plural(new, 'new image')}"
    text += f", {present} here already" if present else ""
    text += f"; {states.count('stopped')} stopped" if "stopped" in states else ""
    failed = [job for job in jobs if job.state == "failed"]
    if failed:
        text += f"; {len(failed)} failed ({failed[0].error})"
    return text, "error" if failed else "information"


class TransferChanged(Message):
    """A job started, progressed or ended (posted by the worker, throttled)."""

    def __init__(self, job: Job) -> None:
        super().__init__()
        self.job = job


class Retrieved(Message):
    """A job ended with new instances in the archive: the screen updates its badges."""

    def __init__(self, job: Job) -> None:
        super().__init__()
        self.job = job


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


class TransferQueue(Vertical):
    """The queue under the results: a heading with the counts and keys, a line per job. It
    shows once something is queued (class ``shown``)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.jobs: list[Job] = []
        self._jobs_lock = threading.Lock()
        self._draining = False  # a transfer worker is running the queue
        self._batches: dict[int, list[Job]] = {}  # batches not yet reported
        self._batch = 0

    def compose(self) -> ComposeResult:
        yield Static("", id="queue-head")
        yield VerticalScroll(id="queue-rows")

    def on_unmount(self) -> None:
        """The app is closing: stop the transfers, so no thread holds the exit up."""
        for job in self.jobs:
            job.cancel.set()

    def new_batch(self) -> int:
        """A new `g`: the outcome of the last batch is in its notice, its lines go."""
        self.clear_finished()
        self._batch += 1
        return self._batch

    def busy(self) -> set[tuple[str, str | None]]:
        """The studies and series queued or running already (or finished, not cleared)."""
        return {(job.study, job.series) for job in self.jobs}

    def add(self, batch: int, new: list[Job]) -> None:
        """Queue a batch of jobs and start the worker if it is not running."""
        self._batches[batch] = new
        rows = self.query_one("#queue-rows", VerticalScroll)
        self.add_class("shown")
        rows.mount_all(TransferRow(job) for job in new)
        rows.scroll_end(animate=False)
        with self._jobs_lock:
            self.jobs += new
            start = not self._draining
            self._draining = True
        self.show_head()
        if start:
            self.run_transfers()

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
        event.stop()
        job = event.job
        for row in self.query(TransferRow):
            if row.job is job:
                row.show()
        if job.state not in FINAL or job.reported:
            return
        job.reported = True
        self.show_head()
        if job.transfer is not None and job.transfer.tally.new:
            self.post_message(Retrieved(job))
        batch = self._batches.get(job.batch, [])
        if batch and all(j.reported for j in batch):
            del self._batches[job.batch]
            text, severity = batch_summary(batch)
            self.notify(text, severity=severity, timeout=10 if severity == "error" else 5)  # type: ignore[arg-type]

    def show_head(self) -> None:
        """The queue's first line: how many are where, and the keys that act on them."""
        states = [job.state for job in self.jobs]
        counts = [
            f"{states.count(state)} {state}"
            for state in ("running", "queued", "done", "stopped", "failed")
            if state in states
        ]
        keys = [
            key
            for key, wanted in (("x stops", ("running", "queued")), ("c clears finished", FINAL))
            if set(wanted) & set(states)
        ]
        head = Text.assemble(
            ("Transfers: ", "bold"), ", ".join(counts), ("  " + " · ".join(keys), "dim")
        )
        self.query_one("#queue-head", Static).update(head)

    def clear_finished(self) -> None:
        """Done, failed and stopped transfers leave the queue (a stopped one retrieved again
        shows once, as it ends this time)."""
        with self._jobs_lock:
            gone = {job for job in self.jobs if job.reported}
            self.jobs = [job for job in self.jobs if job not in gone]
        for row in self.query(TransferRow):
            if row.job in gone:
                row.remove()
        self.set_class(bool(self.jobs), "shown")
        self.show_head()

    def stop(self) -> None:
        """The running transfer (or the next, if the queue is just starting) stops; what
        arrived is kept, and a later retrieve resumes from there."""
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

    def stop_all(self) -> None:
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
