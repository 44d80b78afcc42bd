"""The archive: an SQLite index of Patient > Study > Series > Instance, and its store.

One :class:`Archive` per process, usable from any thread: each thread gets its own
connection to the index (WAL lets readers run beside the one writer, so a browser never
waits for an import). Writers take the database lock with ``BEGIN IMMEDIATE`` (others wait
for it up to the busy timeout) and commit in batches, so an interrupted import leaves the
index as it was after the last whole batch.

One module past 600 lines: every writer (import, receiving, forget, edit) files rows through
the same private row builders and recount (``_refresh_series``), which keep the counts and
the patient, study and series rows consistent only if they stay in one class.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tui.archive import matching, schema
from tui.errors import UserError
from tui.permissions import private_file, private_folder

if TYPE_CHECKING:  # the header reader pulls in pydicom, which listing does not need
    from tui.archive.header import InstanceRecord

INDEX_NAME = "index.sqlite"
# Why a file is not indexed whose series the index already files under another study.
SERIES_OF_ANOTHER_STUDY = (
    "its SeriesInstanceUID is filed under another StudyInstanceUID: not indexed (tried again"
    " at the next import)"
)
STORE_NAME = "store"
# How long a writer waits for another's transaction. An import commits batch after batch,
# and SQLite's busy handler polls, so a second writer can miss every gap between them for a
# while on a loaded machine: two imports at once failed "locked" at 5 s (tests/test_faults.py).
_BUSY_TIMEOUT_S = 60.0
_INSERT_INSTANCE = f"INSERT INTO instance VALUES (NULL, {', '.join('?' * 31)})"


class ArchiveError(UserError):
    """The archive cannot be opened or written (locked, corrupt, full, not a folder)."""


@dataclass(frozen=True)
class Known:
    """What the index knows of a file path."""

    size: int
    mtime_ns: int
    kind: str  # 'instance' or a seen_file kind
    managed: bool = False


@dataclass(frozen=True)
class Duplicate:
    path: str
    sop_uid: str
    indexed_path: str
    identical: bool = False  # the same bytes as the indexed file (a second copy)


@dataclass
class Added:
    """What :meth:`Archive.add` did with a batch."""

    new: int = 0
    updated: int = 0
    duplicates: list[Duplicate] = field(default_factory=list)
    # Files filed under a study whose patient (ID, name, birth date) differs from theirs.
    conflicts: list[str] = field(default_factory=list)
    # Files not indexed, with the reason: (path, reason).
    refused: list[tuple[str, str]] = field(default_factory=list)


class Archive:
    """An archive folder (``index.sqlite`` and ``store/``), or an in-memory one.

    Parameters
    ----------
    root
        The archive folder; None for an ephemeral archive that lives in memory
        and writes nothing to disk.
    create
        Create the folder and index if missing. When False and there is no
        index, the archive is an empty in-memory one (listing an archive that
        was never written to shows nothing rather than creating files).
    """

    def __init__(self, root: Path | None, create: bool = True) -> None:
        self.root = root
        if root is not None and root.exists() and not root.is_dir():
            raise ArchiveError(f"archive {root} is not a folder")
        target = ":memory:"
        if root is not None and (create or (root / INDEX_NAME).exists()):
            try:
                private_folder(root)  # names, IDs and birth dates: for its user only
            except OSError as exc:
                raise ArchiveError(f"cannot create archive {root}: {exc.strerror}") from None
            with suppress(OSError):  # a read-only folder: SQLite says so below
                private_file(root / INDEX_NAME)
            target = str(root / INDEX_NAME)
        # True when the index can only be read (a CD, a read-only mount): writes are refused.
        self.read_only = False
        self._target = target  # what the first connection opened: a read-only URI after a fallback
        self._local = threading.local()  # this thread's _Held connection
        # Every thread's, for close(); a thread's goes (and closes) with the thread.
        self._opened: weakref.WeakSet[_Held] = weakref.WeakSet()
        self._opened_lock = threading.Lock()
        # An in-memory index is one connection's: threads share it, one at a time.
        self._shared_lock = threading.RLock() if target == ":memory:" else None
        self._shared = self._connect(target)
        self._local.held = self._hold(self._shared)
        self._patients: dict[tuple[str, str, str], int] = {}
        self._studies: dict[str, int] = {}
        self._series: dict[str, int] = {}
        self._study_patients: dict[str, tuple[str, str, str]] = {}
        self._store_prefix = None if self.store is None else str(self.store) + os.sep

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection to the index, opened on first use (an in-memory
        index has one connection, shared: see :meth:`exclusive`)."""
        if self._shared_lock is not None:
            return self._shared
        held: _Held | None = getattr(self._local, "held", None)
        if held is None:
            held = self._local.held = self._hold(self._connect_again())
        return held.conn

    def exclusive(self) -> AbstractContextManager[object]:
        """Hold while a thread uses the archive when threads share its connection (an
        in-memory index); a file's index gives each thread its own and needs nothing."""
        return self._shared_lock if self._shared_lock is not None else nullcontext()

    @property
    def store(self) -> Path | None:
        """The managed store folder; None for an ephemeral archive."""
        return None if self.root is None else self.root / STORE_NAME

    def _connect(self, target: str) -> sqlite3.Connection:
        conn = None
        try:
            conn = _sqlite(target)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            # SQLite opens a file it may not write read-only, without a word.
            self.read_only = target != ":memory:" and not os.access(target, os.W_OK)
            schema.migrate(conn, self.read_only)
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            if target == ":memory:" or not _may_be_read_only(exc):
                raise self.error(exc) from None
            conn = self._connect_read_only(target, exc)
        return self._prepared(conn)

    def _connect_again(self) -> sqlite3.Connection:
        """Another thread's connection to the index the first one opened (its schema is
        current, its journal mode set): the per-connection settings only."""
        try:
            conn = _sqlite(self._target)
            if not self.read_only:
                conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise self.error(exc) from None
        return self._prepared(conn)

    def _prepared(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        conn.create_function("name_matches", 2, matching.name_matches, deterministic=True)
        conn.create_function("wildcard_matches", 2, _wildcard_matches, deterministic=True)
        conn.create_function("fold", 1, matching.fold, deterministic=True)
        return conn

    def _hold(self, conn: sqlite3.Connection) -> _Held:
        held = _Held(conn)
        with self._opened_lock:
            self._opened.add(held)
        return held

    def _connect_read_only(self, target: str, first: sqlite3.Error) -> sqlite3.Connection:
        """Open an index that cannot be opened for writing (a read-only folder or mount).

        WAL mode needs the ``-shm`` file: ``mode=ro`` reads through it when it exists or
        can be created; otherwise, when no ``-wal`` file holds changes, ``immutable=1``
        reads the database file alone.
        """
        if not os.path.exists(target):
            why = first if os.access(os.path.dirname(target), os.W_OK) else "read-only folder"
            raise ArchiveError(f"cannot create archive {self.root}: {why}") from None
        wal = Path(f"{target}-wal")
        unsaved = wal.exists() and wal.stat().st_size > 0
        uri = Path(target).absolute().as_uri()
        for query in ["mode=ro"] + ([] if unsaved else ["mode=ro&immutable=1"]):
            conn = _sqlite(f"{uri}?{query}")
            try:
                conn.execute("PRAGMA foreign_keys = ON")
                schema.migrate(conn, read_only=True)
            except sqlite3.OperationalError:
                conn.close()
                continue
            self.read_only = True
            self._target = f"{uri}?{query}"
            return conn
        if unsaved:
            raise ArchiveError(
                f"archive {self.root} is read-only and its index has changes in {wal.name}"
                " that only a writable copy can read: copy the folder somewhere writable"
            )
        raise self.error(first)

    def require_writable(self) -> None:
        """Refuse, in one line, to write a read-only archive, before anything is done.

        Raises
        ------
        ArchiveError
            If the archive was opened read-only.
        """
        if self.read_only:
            raise self._read_only_error()

    def _read_only_error(self) -> ArchiveError:
        self.read_only = True
        return ArchiveError(
            f"archive {self.root} is read-only: it can be listed and viewed, not written"
        )

    def error(self, exc: sqlite3.Error) -> ArchiveError:
        """Turn an SQLite error into one line a user can act on."""
        where = self.root if self.root is not None else "the in-memory archive"
        text = str(exc)
        if "readonly" in text or "read-only" in text:
            return self._read_only_error()
        if "locked" in text or "busy" in text:
            return ArchiveError(f"archive {where} is locked by another pacs-tui; try again")
        if "full" in text:
            return ArchiveError(
                f"archive {where}: disk full ({text}); free space and run again,"
                " what was indexed before is kept"
            )
        if "not a database" in text or "malformed" in text or "corrupt" in text:
            return ArchiveError(f"archive index {where}/{INDEX_NAME} is corrupt: {text}")
        return ArchiveError(f"archive {where}: {text}")

    def close(self) -> None:
        """Close every thread's connection."""
        with self._opened_lock:
            opened = list(self._opened)
        for held in opened:
            held.conn.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: all of it commits, or none of it."""
        self.require_writable()
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self.error(exc) from None
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException as exc:
            if self.conn.in_transaction:  # SQLite may have rolled back already (disk full)
                self.conn.execute("ROLLBACK")
            self._forget_caches()
            if isinstance(exc, sqlite3.Error):
                raise self.error(exc) from None
            raise

    # -- what the index knows of files -------------------------------------------------

    def known_files(self, root: str) -> dict[str, Known]:
        """Every indexed or seen file whose path is ``root`` or under it."""
        lo, hi = root.rstrip(os.sep) + os.sep, root.rstrip(os.sep) + chr(ord(os.sep) + 1)
        known: dict[str, Known] = {}
        for query in (
            "SELECT path, size, mtime_ns, 'instance', managed FROM instance"
            " WHERE path = ? OR (path >= ? AND path < ?)",
            "SELECT path, size, mtime_ns, kind, 0 FROM seen_file"
            " WHERE path = ? OR (path >= ? AND path < ?)",
        ):
            for path, size, mtime_ns, kind, managed in self.conn.execute(query, (root, lo, hi)):
                known[path] = Known(size, mtime_ns, kind, bool(managed))
        return known

    def drop_files(self, paths: Iterable[str]) -> tuple[int, list[str]]:
        """Forget files that vanished (index rows only).

        Returns how many instances went, and the duplicates of those instances: they
        are forgotten too, so that the caller reads them again and one of them takes
        the vanished file's place.
        """
        paths = list(paths)
        rows = self._select_in("SELECT series_pk, sop_uid FROM instance WHERE path IN ({})", paths)
        uids = [uid for _, uid in rows]
        freed = [
            path
            for (path,) in self._select_in(
                "SELECT path FROM seen_file WHERE kind = 'duplicate' AND sop_uid IN ({})", uids
            )
        ]
        self._execute_in("DELETE FROM instance WHERE path IN ({})", paths)
        self._execute_in("DELETE FROM seen_file WHERE path IN ({})", paths + freed)
        self._refresh_series({pk for pk, _ in rows})
        return len(rows), freed

    def record_seen(self, rows: Iterable[tuple[str, int, int, str, str, str]]) -> None:
        """Remember files that are not instances: (path, size, mtime_ns, kind, reason, sop_uid)."""
        rows = list(rows)
        self._execute_in("DELETE FROM instance WHERE path IN ({})", [r[0] for r in rows])
        self.conn.executemany("INSERT OR REPLACE INTO seen_file VALUES (?, ?, ?, ?, ?, ?)", rows)

    def duplicates(self) -> list[dict[str, str]]:
        """Files not indexed because another file holds their SOP Instance UID."""
        rows = self.conn.execute(
            "SELECT s.path, s.sop_uid, i.path FROM seen_file s"
            " LEFT JOIN instance i USING (sop_uid) WHERE kind = 'duplicate' ORDER BY s.path"
        )
        return [
            {"path": path, "SOPInstanceUID": uid, "indexed_path": held or ""}
            for path, uid, held in rows
        ]

    def indexed_path(self, sop_uid: str) -> str | None:
        row = self.conn.execute(
            "SELECT path FROM instance WHERE sop_uid = ?", (sop_uid,)
        ).fetchone()
        return row[0] if row else None

    def study_of_series(self, series_uid: str) -> str | None:
        """The StudyInstanceUID the index files ``series_uid`` under (None: not indexed)."""
        row = self.conn.execute(
            "SELECT study_uid FROM series JOIN study USING (study_pk) WHERE series_uid = ?",
            (series_uid,),
        ).fetchone()
        return row[0] if row else None

    # -- adding instances --------------------------------------------------------------

    def add(
        self, records: list[InstanceRecord], managed: bool, origins: dict[str, str] | None = None
    ) -> Added:
        """Index ``records`` (call inside :meth:`transaction`).

        ``origins`` maps a managed copy's path to the file it was copied from: an
        instance indexed in place from that file moves to its copy.

        A record whose SOP Instance UID is already indexed from another file is not
        indexed: the first file indexed keeps the UID, the later one is returned as
        a duplicate for the caller to report and remember (:meth:`record_seen`).

        A record whose series the index files under another study is not indexed
        either (a series belongs to one study; filing it under the other would be
        silently wrong): it is returned as refused, for the caller to report and not
        remember, so that it is read again once the other study's series is gone.
        """
        by_uid = dict(
            self._select_in(
                "SELECT sop_uid, path FROM instance WHERE sop_uid IN ({})",
                [r.sop_uid for r in records],
            )
        )
        origins = origins or {}
        old_paths = [r.path for r in records] + list(origins.values())
        old_series = dict(
            self._select_in("SELECT path, series_pk FROM instance WHERE path IN ({})", old_paths)
        )
        # The files read again lose their rows first: what they say now decides where they
        # go (a series whose every file moved to another study moves with them).
        self._execute_in("DELETE FROM instance WHERE path IN ({})", list(old_series))
        self._refresh_series(set(old_series.values()))
        owners = dict(
            self._select_in(
                "SELECT series_uid, study_uid FROM series JOIN study USING (study_pk)"
                " WHERE series_uid IN ({})",
                [r.series_uid for r in records],
            )
        )
        fresh: list[InstanceRecord] = []
        duplicates: list[Duplicate] = []
        refused: list[tuple[str, str]] = []
        for record in records:
            holder = by_uid.get(record.sop_uid)
            if holder is not None and holder not in (record.path, origins.get(record.path)):
                duplicates.append(Duplicate(record.path, record.sop_uid, holder))
                continue
            if owners.setdefault(record.series_uid, record.study_uid) != record.study_uid:
                refused.append((record.path, SERIES_OF_ANOTHER_STUDY))
                continue
            by_uid[record.sop_uid] = record.path
            fresh.append(record)
        updated = sum(r.path in old_series or origins.get(r.path) in old_series for r in fresh)
        self._execute_in("DELETE FROM seen_file WHERE path IN ({})", [r.path for r in fresh])
        self.conn.executemany(
            _INSERT_INSTANCE,
            [self._instance_row(r, managed or self._in_store(r.path)) for r in fresh],
        )
        touched = {self._series[r.series_uid] for r in fresh}
        conflicts = [
            r.path
            for r in fresh
            if self._study_patient(r.study_uid) != (r.patient_id, r.patient_name, r.birth_date)
        ]
        self._refresh_series(touched)
        return Added(len(fresh) - updated, updated, duplicates, conflicts, refused)

    def _study_patient(self, study_uid: str) -> tuple[str, str, str]:
        """The patient a study is filed under: the first file of the study decides."""
        found = self._study_patients.get(study_uid)
        if found is None:
            found = self.conn.execute(
                "SELECT patient_id, patient_name, birth_date FROM study JOIN patient"
                " USING (patient_pk) WHERE study_uid = ?",
                (study_uid,),
            ).fetchone()
            self._study_patients[study_uid] = found
        return found

    def _in_store(self, path: str) -> bool:
        """Files already in the managed store are the archive's, however they were imported."""
        return self._store_prefix is not None and path.startswith(self._store_prefix)

    def _instance_row(self, r: InstanceRecord, managed: bool) -> tuple[object, ...]:
        pixels = r.pixels
        return (
            self._series_pk(r), r.sop_uid, r.sop_class, r.instance_number, r.transfer_syntax,
            r.rows, r.columns, r.frames, r.samples_per_pixel, r.photometric, r.bits_allocated,
            r.position, r.orientation, r.pixel_spacing, r.slice_thickness, r.acquisition_number,
            r.temporal_position,
            pixels.offset if pixels else None, pixels.length if pixels else None,
            pixels.fragments if pixels and pixels.fragments else None,
            pixels.offset_table if pixels and pixels.offset_table else None,
            r.path, r.size, r.mtime_ns, int(managed),
            r.bits_stored, r.pixel_representation, r.rescale_slope, r.rescale_intercept,
            r.window_center, r.window_width,
        )  # fmt: skip

    def _patient_pk(self, r: InstanceRecord) -> int:
        key = (r.patient_id, r.patient_name, r.birth_date)
        pk = self._patients.get(key)
        if pk is None:
            self.conn.execute(
                "INSERT OR IGNORE INTO patient VALUES (NULL, ?, ?, ?, ?, ?)",
                (*key[:2], matching.fold(r.patient_name), r.birth_date, r.sex),
            )
            (pk,) = self.conn.execute(
                "SELECT patient_pk FROM patient"
                " WHERE patient_id = ? AND patient_name = ? AND birth_date = ?",
                key,
            ).fetchone()
            self._patients[key] = pk
        return pk

    def _study_pk(self, r: InstanceRecord) -> int:
        pk = self._studies.get(r.study_uid)
        if pk is None:
            self.conn.execute(
                "INSERT OR IGNORE INTO study (patient_pk, study_uid, study_date, study_time,"
                " accession, description, referring_physician) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    self._patient_pk(r), r.study_uid, r.study_date, r.study_time, r.accession,
                    r.study_description, r.referring_physician,
                ),
            )  # fmt: skip
            (pk,) = self.conn.execute(
                "SELECT study_pk FROM study WHERE study_uid = ?", (r.study_uid,)
            ).fetchone()
            self._studies[r.study_uid] = pk
        return pk

    def _series_pk(self, r: InstanceRecord) -> int:
        pk = self._series.get(r.series_uid)
        if pk is None:
            self.conn.execute(
                "INSERT OR IGNORE INTO series (study_pk, series_uid, modality, series_number,"
                " description, body_part) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    self._study_pk(r), r.series_uid, r.modality, r.series_number,
                    r.series_description, r.body_part,
                ),
            )  # fmt: skip
            (pk,) = self.conn.execute(
                "SELECT series_pk FROM series WHERE series_uid = ?", (r.series_uid,)
            ).fetchone()
            self._series[r.series_uid] = pk
        return pk

    # -- editing -----------------------------------------------------------------------

    def supersede(
        self, records: list[InstanceRecord], expected: dict[str, str], reason: str
    ) -> None:
        """Index each record's file in place of the one its SOP Instance UID has now.

        For ``pacs-tui edit`` and its undo (call inside :meth:`transaction`). ``expected``
        maps each record's SOP Instance UID to the path indexed for it when the edit was
        planned. The instances are filed again from what their files say now, as
        :meth:`add` files them: patient, study and series rows follow the new values, and
        a series, study or patient left empty goes. A file no longer indexed is remembered
        as a duplicate, with ``reason``, so that importing its folder again neither reads
        it nor brings its values back (``ls --duplicates`` lists it); files in the store
        are not imported, and not remembered.

        Raises
        ------
        ArchiveError
            If an instance is no longer indexed at its expected path (another pacs-tui
            changed the archive meanwhile); the caller's transaction then changes nothing.
        """
        uids = [r.sop_uid for r in records]
        current = {
            uid: (path, pk)
            for uid, path, pk in self._select_in(
                "SELECT sop_uid, path, series_pk FROM instance WHERE sop_uid IN ({})", uids
            )
        }
        if any(current.get(uid, ("",))[0] != expected.get(uid) for uid in uids):
            raise ArchiveError(
                f"archive {self.root} changed while the edit was prepared (another pacs-tui?):"
                " nothing was changed; run the edit again"
            )
        self._execute_in("DELETE FROM instance WHERE sop_uid IN ({})", uids)
        self._refresh_series({pk for _, pk in current.values()})
        paths = {r.path for r in records}
        self._execute_in("DELETE FROM seen_file WHERE path IN ({})", list(paths))
        self.conn.executemany(
            _INSERT_INSTANCE, [self._instance_row(r, self._in_store(r.path)) for r in records]
        )
        self._refresh_series({self._series[r.series_uid] for r in records})
        superseded = []
        for uid, (path, _) in current.items():
            if path not in paths and not self._in_store(path):  # no import reads the store
                with suppress(OSError):  # a file gone is not remembered
                    st = os.stat(path)
                    superseded.append((path, st.st_size, st.st_mtime_ns, "duplicate", reason, uid))
        self.conn.executemany(
            "INSERT OR REPLACE INTO seen_file VALUES (?, ?, ?, ?, ?, ?)", superseded
        )

    # -- removing ----------------------------------------------------------------------

    def forget(self, level: str, uids: list[str]) -> tuple[int, list[str]]:
        """Remove patients (by PatientID), studies or series from the index.

        Call inside :meth:`transaction`. Returns the number of instances removed and
        the managed files that the caller should delete once the transaction commits.
        Files outside the store are the user's and are never listed.
        """
        where = {
            "patient": "series_pk IN (SELECT series_pk FROM series JOIN study USING (study_pk)"
            " JOIN patient USING (patient_pk) WHERE patient_id IN ({}))",
            "study": "series_pk IN (SELECT series_pk FROM series JOIN study USING (study_pk)"
            " WHERE study_uid IN ({}))",
            "series": "series_pk IN (SELECT series_pk FROM series WHERE series_uid IN ({}))",
        }[level]
        rows = self._select_in(
            f"SELECT series_pk, path, managed, sop_uid FROM instance WHERE {where}", uids
        )
        self._execute_in(f"DELETE FROM instance WHERE {where}", uids)
        # Files set aside as duplicates of these (an edit's originals among them) are read
        # again at the next import of their folder: forgotten, the UID is free again.
        self._execute_in(
            "DELETE FROM seen_file WHERE kind = 'duplicate' AND sop_uid IN ({})",
            [uid for *_, uid in rows],
        )
        self._refresh_series({pk for pk, *_ in rows})
        return len(rows), [path for _, path, managed, _ in rows if managed]

    def _refresh_series(self, series_pks: set[int]) -> None:
        """Recount the given series and their studies; drop what became empty."""
        if not series_pks:
            return
        c = self.conn
        c.execute("CREATE TEMP TABLE IF NOT EXISTS touched_series (pk INTEGER PRIMARY KEY)")
        c.execute("CREATE TEMP TABLE IF NOT EXISTS touched_study (pk INTEGER PRIMARY KEY)")
        c.execute("DELETE FROM temp.touched_series")
        c.execute("DELETE FROM temp.touched_study")
        c.executemany("INSERT INTO temp.touched_series VALUES (?)", ((pk,) for pk in series_pks))
        c.execute(
            "INSERT OR IGNORE INTO temp.touched_study SELECT study_pk FROM series"
            " WHERE series_pk IN temp.touched_series"
        )
        c.execute(
            "UPDATE series SET"
            " num_instances = (SELECT count(*) FROM instance i"
            "                  WHERE i.series_pk = series.series_pk),"
            " num_images = (SELECT count(*) FROM instance i"
            f"               WHERE i.series_pk = series.series_pk AND {schema.IS_IMAGE})"
            " WHERE series_pk IN temp.touched_series"
        )
        c.execute("DELETE FROM series WHERE num_instances = 0 AND series_pk IN temp.touched_series")
        c.execute(
            "UPDATE study SET"
            " num_series = (SELECT count(*) FROM series s WHERE s.study_pk = study.study_pk),"
            " num_instances = (SELECT coalesce(sum(num_instances), 0) FROM series s"
            "                  WHERE s.study_pk = study.study_pk),"
            " num_images = (SELECT coalesce(sum(num_images), 0) FROM series s"
            "               WHERE s.study_pk = study.study_pk),"
            " modalities = coalesce((SELECT group_concat(modality, '\\') FROM"
            "   (SELECT DISTINCT modality FROM series s"
            "    WHERE s.study_pk = study.study_pk AND modality != '' ORDER BY modality)), '')"
            " WHERE study_pk IN temp.touched_study"
        )
        c.execute("CREATE TEMP TABLE IF NOT EXISTS touched_patient (pk INTEGER PRIMARY KEY)")
        c.execute("DELETE FROM temp.touched_patient")
        c.execute(
            "INSERT OR IGNORE INTO temp.touched_patient SELECT patient_pk FROM study"
            " WHERE num_series = 0 AND study_pk IN temp.touched_study"
        )
        c.execute("DELETE FROM study WHERE num_series = 0 AND study_pk IN temp.touched_study")
        c.execute(
            "DELETE FROM patient WHERE patient_pk IN temp.touched_patient"
            " AND NOT EXISTS (SELECT 1 FROM study WHERE study.patient_pk = patient.patient_pk)"
        )
        self._forget_caches()

    def _forget_caches(self) -> None:
        self._patients.clear()
        self._studies.clear()
        self._study_patients.clear()
        self._series.clear()

    # -- helpers -----------------------------------------------------------------------

    def _select_in(self, sql: str, values: list[str]) -> list[tuple]:
        rows: list[tuple] = []
        for chunk in _chunks(values):
            rows += self.conn.execute(sql.format(", ".join("?" * len(chunk))), chunk).fetchall()
        return rows

    def _execute_in(self, sql: str, values: list[str]) -> None:
        for chunk in _chunks(values):
            self.conn.execute(sql.format(", ".join("?" * len(chunk))), chunk)


class _Held:
    """A thread's connection, in a weakly referenced box (connections take no weak
    references): the box goes with the thread's storage, and the connection with it."""

    __slots__ = ("__weakref__", "conn")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn


def _sqlite(target: str) -> sqlite3.Connection:
    # Not bound to its thread: close() closes every thread's, and threads share an
    # in-memory index's one connection (one at a time, see Archive.exclusive).
    return sqlite3.connect(
        target,
        timeout=_BUSY_TIMEOUT_S,
        isolation_level=None,
        check_same_thread=False,
        uri=target.startswith("file:"),
    )


def _may_be_read_only(exc: sqlite3.Error) -> bool:
    """Whether opening for writing failed in a way that reading alone may not."""
    text = str(exc)
    return "unable to open" in text or "readonly" in text or "read-only" in text


def _chunks(values: list[str], size: int = 500) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _wildcard_matches(pattern: str, value: str | None) -> bool:
    return bool(matching.compile_wildcards(pattern).fullmatch(value or ""))
