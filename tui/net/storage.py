"""Filing instances that arrive over the network into the archive's managed store.

Every arriving instance is written to a temporary file beside its final place, then
linked into place under a hash of its SOP Instance UID (``tui.archive.store``), then
indexed: a partial file is never indexed, and a name built from a UID never escapes the
store. Received files are indexed as they arrive, so the browser shows them at once.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from tui.archive.header import HeaderError, read_record
from tui.archive.index import Archive, ArchiveError
from tui.archive.store import store_path

# C-STORE response statuses (PS3.4 B.2.3)
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000


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

    def file(self, encoded: bytes, tally: Tally | None = None) -> tuple[Filed, int]:
        """File one instance, given as a DICOM file's bytes (preamble and meta included).

        Returns what happened and the C-STORE status to answer with.
        """
        tally = tally if tally is not None else Tally()
        try:
            outcome = self._file(encoded)
        except OSError as exc:
            with self._lock:
                tally.failed += 1
                tally.errors.append(f"cannot write into the store: {exc.strerror or exc}")
            return Filed.FAILED, OUT_OF_RESOURCES
        except (HeaderError, ArchiveError, ValueError) as exc:
            with self._lock:
                tally.failed += 1
                tally.errors.append(f"not filed: {exc}")
            return Filed.FAILED, CANNOT_UNDERSTAND
        with self._lock:
            tally.bytes += len(encoded)
            if outcome is Filed.NEW:
                tally.new += 1
            else:
                tally.present += 1
        return outcome, SUCCESS

    def _file(self, encoded: bytes) -> Filed:
        fd, tmp = tempfile.mkstemp(prefix=".incoming-", dir=self.incoming)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(encoded)
            record = read_record(tmp)  # the UID comes from the file, never from the peer
            dest = store_path(self.store, record.sop_uid)
            if dest.parent not in self._folders:
                dest.parent.mkdir(parents=True, exist_ok=True)
                self._folders.add(dest.parent)
            with self._lock:
                if self.archive.indexed_path(record.sop_uid) is not None:
                    return Filed.PRESENT
                try:
                    os.link(tmp, dest)
                except FileExistsError:  # a file of a failed earlier transfer: ours now
                    os.replace(tmp, dest)
                st = os.stat(dest)
                record.path, record.size, record.mtime_ns = str(dest), st.st_size, st.st_mtime_ns
                with self.archive.transaction():
                    self.archive.add([record], managed=True)
            return Filed.NEW
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
