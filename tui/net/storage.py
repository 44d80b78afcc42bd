"""Filing instances that arrive over the network into the archive's managed store.

Every arriving instance is written to a temporary file in the store, then renamed into
place under a hash of its SOP Instance UID (``tui.archive.store``), then indexed: a partial
file is never indexed, and a name built from a UID never escapes the store. Received files
are indexed as they arrive, so the browser shows them at once.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from tui.archive.header import HeaderError, read_record
from tui.archive.index import Archive, ArchiveError
from tui.archive.store import store_path
from tui.net.status import CANNOT_UNDERSTAND, OUT_OF_RESOURCES, SUCCESS

Buffer = bytes | bytearray | memoryview


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

    @property
    def received(self) -> int:
        return self.new + self.present

    @property
    def megabytes_per_second(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.bytes / 1e6 / elapsed if elapsed > 0 else 0.0


class Filer:
    """Files encoded instances into the archive at ``root``; safe to call from threads."""

    def __init__(self, root: Path) -> None:
        self.archive = Archive(root)
        self.archive.require_writable()  # before anything is asked for or accepted
        store = self.archive.store
        if store is None:
            raise ArchiveError("an in-memory archive cannot receive files")
        self.store: Path = store
        self.incoming = store / "incoming"
        self.incoming.mkdir(parents=True, exist_ok=True)
        self._folders: set[Path] = set()  # store folders known to exist: one mkdir each
        self._lock = threading.Lock()

    def close(self) -> None:
        self.archive.close()

    def file(
        self, encoded: Buffer | Sequence[Buffer], tally: Tally | None = None
    ) -> tuple[Filed, int]:
        """File one instance, given as a DICOM file's bytes (preamble and meta included).

        Parameters
        ----------
        encoded
            The file's bytes, whole or as parts to write one after the other (a file meta
            and the fragments of a dataset as they came from the network, unjoined).
        tally
            Counts to update.

        Returns
        -------
        tuple
            What happened, and the C-STORE status to answer with.
        """
        tally = tally if tally is not None else Tally()
        parts = [encoded] if isinstance(encoded, bytes | bytearray | memoryview) else encoded
        try:
            outcome = self._file(parts)
        except OSError as exc:
            with self._lock:
                tally.failed += 1
                tally.errors.append(f"cannot write into the store: {exc.strerror or exc}")
            return Filed.FAILED, OUT_OF_RESOURCES
        except (ArchiveError, sqlite3.Error) as exc:  # locked by an import, or full: not
            # the instance's fault, so "out of resources" (the sender may try again)
            with self._lock:
                tally.failed += 1
                tally.errors.append(f"the archive cannot take it now: {exc}")
            return Filed.FAILED, OUT_OF_RESOURCES
        except (HeaderError, ValueError) as exc:
            with self._lock:
                tally.failed += 1
                tally.errors.append(f"not filed: {exc}")
            return Filed.FAILED, CANNOT_UNDERSTAND
        with self._lock:
            tally.bytes += sum(len(part) for part in parts)
            if outcome is Filed.NEW:
                tally.new += 1
            else:
                tally.present += 1
        return outcome, SUCCESS

    def _file(self, parts: Sequence[Buffer]) -> Filed:
        fd, tmp = tempfile.mkstemp(prefix=".incoming-", dir=self.incoming)
        placed = False
        try:
            try:
                _write_all(fd, parts)
                st = os.fstat(fd)  # a rename keeps size and mtime: no stat of the placed file
            finally:
                os.close(fd)
            record = read_record(tmp)  # the UID comes from the file, never from the peer
            dest = store_path(self.store, record.sop_uid)
            if dest.parent not in self._folders:
                dest.parent.mkdir(parents=True, exist_ok=True)
                self._folders.add(dest.parent)
            with self._lock:
                if self.archive.indexed_path(record.sop_uid) is not None:
                    return Filed.PRESENT
                # Atomic: the store name holds a whole file or none. A file left there by a
                # failed earlier transfer (never indexed) is replaced.
                os.replace(tmp, dest)
                placed = True
                record.path, record.size, record.mtime_ns = str(dest), st.st_size, st.st_mtime_ns
                with self.archive.transaction():
                    self.archive.add([record], managed=True)
            return Filed.NEW
        finally:
            if not placed:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)


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
