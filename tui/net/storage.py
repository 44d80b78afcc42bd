"""Filing instances that arrive over the network into the archive's managed store.

Every arriving instance is written to a temporary file in the store, then renamed into
place under a hash of its SOP Instance UID (``tui.archive.store``), then indexed: a partial
file is never indexed, and a name built from a UID never escapes the store. Received files
are indexed as they arrive, so the browser shows them at once.

A C-GET indexes in batches (``Filer(root, batch=0.05)``): each arrival is read, checked
against the index (already there, or its series filed under another study) and put in its
place before it is answered, and committed with the others that came within the same 50 ms.
Indexing one at a time cost ten times as much (``benchmarks/bench_get.py``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from tui.archive.index import Archive, ArchiveError
from tui.archive.record import HeaderError, InstanceRecord, read_whole
from tui.archive.store import store_path
from tui.net.status import CANNOT_UNDERSTAND, OUT_OF_RESOURCES, SUCCESS

Buffer = bytes | bytearray | memoryview
_ANOTHER_STUDY = "its SeriesInstanceUID is filed under another StudyInstanceUID"


def _iov_max() -> int:
    """How many buffers one ``os.writev`` may take (POSIX promises 16; Linux has 1024)."""
    try:
        return max(16, min(os.sysconf("SC_IOV_MAX"), 1024))
    except (AttributeError, ValueError, OSError):
        return 16


_IOV_MAX = _iov_max()


class Filed(Enum):
    """What became of one arriving instance."""

    NEW = "new"
    PRESENT = "present"  # the archive already held this instance: the new copy is dropped
    FAILED = "failed"


@dataclass
class Tally:
    """Counts for a transfer, updated as instances arrive (from pynetdicom's threads)."""

    new: int = 0
    present: int = 0
    failed: int = 0
    bytes: int = 0
    started: float = field(default_factory=time.monotonic)
    errors: list[str] = field(default_factory=list)
    full: str = ""  # why the archive's disk took no more, once it did not

    @property
    def received(self) -> int:
        return self.new + self.present

    @property
    def megabytes_per_second(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.bytes / 1e6 / elapsed if elapsed > 0 else 0.0


class Filer:
    """Files encoded instances into the archive at ``root``; safe to call from threads.

    ``batch``: seconds an arrival may wait, indexed but not committed, for the next ones
    to be committed with it (0: each on its own, at once); :meth:`flush` and :meth:`close`
    commit what waits. Batches are for one thread's arrivals (a C-GET's).
    """

    def __init__(self, root: Path, batch: float = 0.0) -> None:
        self.batch = batch
        self._pending: list[tuple[InstanceRecord, Tally, int]] = []  # (record, tally, bytes)
        self._pending_uids: set[str] = set()
        self._pending_series: dict[str, str] = {}  # series UID: study UID, of the pending
        self._due = 0.0  # when the pending must be committed (monotonic)
        self.archive = Archive(root)
        self.archive.require_writable()  # before anything is asked for or accepted
        store = self.archive.store
        if store is None:
            raise ArchiveError("an in-memory archive cannot receive files")
        self.store: Path = store
        self.spool_dir = store / "incoming"  # arrivals are written here until whole
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        _drop_stale(self.spool_dir)
        self._folders: set[Path] = set()  # store folders known to exist: one mkdir each
        self._lock = threading.Lock()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.archive.close()

    def flush(self) -> None:
        """Commit the arrivals waiting to be indexed. Should that fail (a full disk, the
        index locked too long), they count as failed and leave the store: each was
        answered as stored already, but a file is never in the store unindexed."""
        with self._lock:
            pending, self._pending = self._pending, []
            self._pending_uids.clear()
            self._pending_series.clear()
            if not pending:
                return
            try:
                with self.archive.transaction():
                    added = self.archive.add([record for record, _, _ in pending], managed=True)
                refused = {path: _ANOTHER_STUDY for path, _ in added.refused}
            except BaseException as exc:
                if not isinstance(exc, ArchiveError | sqlite3.Error):  # Ctrl-C: they wait for
                    self._pending = pending  # the next flush (close() makes one)
                    for record, _, _ in pending:
                        self._pending_uids.add(record.sop_uid)
                        self._pending_series[record.series_uid] = record.study_uid
                    raise
                why = f"the archive cannot take it now: {exc}"
                refused = {record.path: why for record, _, _ in pending}
                for _, tally, _ in pending:
                    if "full" in str(exc):  # the next arrival is refused at once
                        tally.full = "the index cannot grow"
            for record, tally, size in pending:
                if record.path in refused:
                    with contextlib.suppress(OSError):
                        os.unlink(record.path)
                    tally.new -= 1
                    tally.bytes -= size
                    tally.failed += 1
                    tally.errors.append(f"not filed: {refused[record.path]}")

    def _flush_due(self) -> None:
        """Commit the waiting arrivals once the oldest has waited ``batch`` seconds."""
        if self._pending and time.monotonic() >= self._due:
            self.flush()

    def file(self, encoded: Buffer | Sequence[Buffer], tally: Tally | None = None) -> int:
        """File one instance, given whole as a DICOM file's bytes (preamble and meta included).

        Parameters
        ----------
        encoded
            The file's bytes, whole or as parts to write one after the other.
        tally
            Counts to update.

        Returns
        -------
        int
            The C-STORE status to answer with.
        """
        incoming = self.incoming(tally)
        incoming.write(
            *([encoded] if isinstance(encoded, bytes | bytearray | memoryview) else encoded)
        )
        return incoming.finish()

    def incoming(
        self, tally: Tally | None = None, filed: Callable[[], None] | None = None
    ) -> Incoming:
        """A temporary file in the store for one instance whose bytes are still arriving;
        ``filed`` is called once :meth:`Incoming.finish` has filed it (or failed to)."""
        return Incoming(self, tally if tally is not None else Tally(), filed)

    def _place(self, tmp: str, st: os.stat_result, tally: Tally) -> Filed:
        """Index the whole file ``tmp`` and move it into its place in the store."""
        # The UID comes from the file, never from the peer.
        record = read_whole(tmp)  # without pydicom, where the walker can
        if record is None:
            from tui.archive.header import read_arrival  # pydicom: what the walker cannot read

            record = read_arrival(tmp)
        dest = store_path(self.store, record.sop_uid)
        if dest.parent not in self._folders:
            dest.parent.mkdir(parents=True, exist_ok=True)
            self._folders.add(dest.parent)
        with self._lock:
            if (
                record.sop_uid in self._pending_uids
                or self.archive.indexed_path(record.sop_uid) is not None
            ):
                return Filed.PRESENT
            if self.batch:  # what add() would refuse is refused now, while it can be answered
                owner = self._pending_series.get(record.series_uid)
                if owner is None:
                    owner = self.archive.study_of_series(record.series_uid)
                if owner not in (None, record.study_uid):
                    raise HeaderError(_ANOTHER_STUDY)
            # Atomic: the store name holds a whole file or none. A file left there by a
            # failed earlier transfer (never indexed) is replaced.
            os.replace(tmp, dest)
            record.path, record.size, record.mtime_ns = str(dest), st.st_size, st.st_mtime_ns
            if self.batch:
                if not self._pending:
                    self._due = time.monotonic() + self.batch
                self._pending.append((record, tally, st.st_size))
                self._pending_uids.add(record.sop_uid)
                self._pending_series[record.series_uid] = record.study_uid
                return Filed.NEW
            with self.archive.transaction():
                added = self.archive.add([record], managed=True)
            if added.refused:  # its series is filed under another study: not silently there
                os.unlink(dest)
                raise HeaderError(_ANOTHER_STUDY)
        return Filed.NEW


class Incoming:
    """One instance arriving over the network, written to a temporary file in the store's
    ``incoming`` folder as its bytes come (so memory stays flat whatever its size), then
    filed whole by :meth:`finish` or dropped by :meth:`discard`: never indexed in part.

    A write that fails (a full disk) is remembered, not raised: the rest of the instance
    still has to be read off the wire, and :meth:`finish` answers "out of resources".
    """

    def __init__(self, filer: Filer, tally: Tally, filed: Callable[[], None] | None) -> None:
        self._filer = filer
        self.tally = tally
        self._filed = filed
        self._size = 0
        self._error: OSError | None = None
        self._fd = -1
        self._tmp = ""
        try:
            self._fd, self._tmp = tempfile.mkstemp(prefix=".incoming-", dir=filer.spool_dir)
        except OSError as exc:
            self._error = exc

    def write(self, *parts: Buffer) -> None:
        """Append ``parts`` to the file."""
        self._filer._flush_due()  # the arrivals before this one, while this one comes
        if self._error is not None:
            return
        try:
            _write_all(self._fd, parts)
        except OSError as exc:
            self._error = exc
        self._size += sum(len(part) for part in parts)

    def discard(self) -> None:
        """Drop the file: the instance will never be whole."""
        self._close()
        if self._tmp:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp)
            self._tmp = ""

    def finish(self) -> int:
        """File the instance, now whole; return the C-STORE status to answer with."""
        status = self._finish()
        if self._filed is not None:
            self._filed()
        return status

    def _finish(self) -> int:
        tally, filer = self.tally, self._filer
        try:
            if self._error is not None:
                raise self._error
            st = os.fstat(self._fd)  # a rename keeps size and mtime: no stat of the placed file
            self._close()
            outcome = filer._place(self._tmp, st, tally)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                tally.full = exc.strerror or str(exc)
            return self._failed(f"cannot write into the store: {exc.strerror or exc}",
                                OUT_OF_RESOURCES)  # fmt: skip
        except (ArchiveError, sqlite3.Error) as exc:  # locked by an import, or full: not
            # the instance's fault, so "out of resources" (the sender may try again)
            if "full" in str(exc):
                tally.full = "the index cannot grow"
            return self._failed(f"the archive cannot take it now: {exc}", OUT_OF_RESOURCES)
        except (HeaderError, ValueError) as exc:
            return self._failed(f"not filed: {exc}", CANNOT_UNDERSTAND)
        except Exception as exc:  # what else a peer's bytes provoke in a reader (a deflated
            # stream cut short, sequences nested a thousand deep): the instance's fault
            return self._failed(f"not filed: unreadable ({type(exc).__name__})", CANNOT_UNDERSTAND)
        finally:
            self.discard()  # once placed, the name is gone and this unlinks nothing
        with filer._lock:
            tally.bytes += self._size
            if outcome is Filed.NEW:
                tally.new += 1
            else:
                tally.present += 1
        return SUCCESS

    def _failed(self, why: str, status: int) -> int:
        with self._filer._lock:
            self.tally.failed += 1
            self.tally.errors.append(why)
        return status

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


_STALE = 3600.0  # seconds: a spool file untouched this long belongs to no live transfer


def _drop_stale(spool_dir: Path) -> None:
    """Remove arrivals a killed process left half-written (a live one writes as bytes come,
    so its file is never an hour old; another process's fresh file is left alone)."""
    now = time.time()
    for leftover in spool_dir.glob(".incoming-*"):
        with contextlib.suppress(OSError):
            if now - leftover.stat().st_mtime > _STALE:
                leftover.unlink()


def _write_all(fd: int, parts: Sequence[Buffer]) -> None:
    """Write ``parts`` one after the other, with as few system calls as the OS allows.

    ``os.writev`` takes up to ``IOV_MAX`` buffers at once (where there is no ``writev``,
    one at a time) and may write less than asked (a full disk, a signal): what is left goes
    out in the next round. No part is copied to join them first.
    """
    views = [memoryview(part).cast("B") for part in parts if len(part)]
    writev = getattr(os, "writev", None)
    first = 0
    while first < len(views):
        if writev is not None:
            written = writev(fd, views[first : first + _IOV_MAX])
        else:
            written = os.write(fd, views[first])
        if written == 0:
            raise OSError("no room left to write")
        while written:
            size = views[first].nbytes
            if written < size:
                views[first] = views[first][written:]
                break
            written -= size
            first += 1
