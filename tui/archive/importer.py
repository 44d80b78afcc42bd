"""Import files into the archive: walk, read headers on all cores, index in batches.

Import is incremental: a file whose size and modification time the index
already holds is only stat'ed; a changed file is read again; a file that
vanished from under an imported folder leaves the index. Each batch is one
transaction, so an interruption leaves the index as it was after the last batch.

Duplicate SOP Instance UIDs: the first file indexed keeps the UID. A later
file with the same UID is not indexed; it is reported (and listed by
``pacs-tui ls --duplicates``) with the path of the file that holds the UID.

A full disk while copying stops the import: the files copied whole before it are
indexed, and :class:`ArchiveError` says so in one line.

A series belongs to one study: a file whose SeriesInstanceUID the index files
under another StudyInstanceUID is skipped with the reason, and read again at the
next import (it is indexed once the other study's series is gone). A file whose
identifiers are not UIDs is skipped with the reason (``header.uid_problem``).
"""

from __future__ import annotations

import filecmp
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tui.archive.dicomdir import DicomdirError, referenced_files
from tui.archive.header import HeaderError, InstanceRecord, read_record, without_controls
from tui.archive.index import Archive, ArchiveError, Duplicate, Known
from tui.archive.store import Placed, StoreError, StoreFull, place
from tui.errors import UserError
from tui.parallel import process_pool

_CHUNK = 100  # files per worker task and per transaction
_PARALLEL_FROM = 200  # fewer files are read in this process: workers cost more to start

Progress = Callable[[int, int], None]
_TRANSIENT = ("unreadable", "cannot copy")  # skip reasons that may go away by themselves


@dataclass
class ImportSummary:
    """What an import did."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    unchanged_other: int = 0  # of those, files that hold no instance (not DICOM, DICOMDIRs)
    vanished: int = 0
    dicomdirs: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    duplicates: list[Duplicate] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)  # (path, DICOMDIR)
    found_dicomdirs: list[str] = field(default_factory=list)
    followed_dicomdirs: set[str] = field(
        default_factory=set
    )  # whose references were read, or tried
    conflicts: list[str] = field(default_factory=list)  # patient differs from their study's
    seconds: float = 0.0
    interrupted: bool = False
    full: str = ""  # why a copy failed for lack of space: the import stopped there

    @property
    def files_read(self) -> int:
        return self.new + self.updated + len(self.skipped) + len(self.duplicates)

    @property
    def instances_found(self) -> int:
        """DICOM instances the paths hold: new, updated, already indexed, or duplicates."""
        known = self.unchanged - self.unchanged_other
        return self.new + self.updated + len(self.duplicates) + known

    def _count_unchanged(self, entry: Known) -> None:
        self.unchanged += 1
        self.unchanged_other += entry.kind in ("skipped", "dicomdir")

    def to_json(self) -> dict[str, Any]:
        reasons = Counter(reason for _, reason in self.skipped)
        return {
            "new": self.new,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "vanished": self.vanished,
            "skipped": len(self.skipped),
            "skipped_reasons": dict(reasons.most_common()),
            "skipped_files": [{"path": p, "reason": r} for p, r in self.skipped],
            "duplicates": len(self.duplicates),
            "duplicate_files": [
                {
                    "path": d.path,
                    "SOPInstanceUID": d.sop_uid,
                    "indexed_path": d.indexed_path,
                    "identical": d.identical,
                }
                for d in self.duplicates
            ],
            "patient_conflicts": self.conflicts,
            "dicomdirs": self.dicomdirs,
            "missing": [{"path": p, "dicomdir": d} for p, d in self.missing],
            "seconds": round(self.seconds, 3),
            "interrupted": self.interrupted,
        }


@dataclass(frozen=True)
class _Candidate:
    path: str
    size: int
    mtime_ns: int
    replace: bool = False  # copy mode: the source changed, replace its stored copy


def import_paths(
    archive: Archive,
    paths: Sequence[str | os.PathLike[str]],
    copy: bool = False,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    workers: int | None = None,
) -> ImportSummary:
    """Import files and folders into ``archive``.

    Parameters
    ----------
    copy
        Copy files into the archive's managed store instead of indexing them in place.
    progress
        Called with (files done, files to read) after each batch.
    cancel
        Set it to stop after the current batch; the summary says ``interrupted``.
    workers
        Reader processes; default one per core.

    Raises
    ------
    UserError
        If a path does not exist, or ``copy`` is asked of an ephemeral archive.
    ArchiveError
        If the archive's disk fills (what was copied whole before is indexed).
    """
    started = time.perf_counter()
    if copy and archive.store is None:
        raise UserError("--copy needs an archive on disk (not --ephemeral)")
    archive.require_writable()
    roots = [_root(p) for p in paths]
    summary = ImportSummary()
    to_read, covered = _plan(archive, roots, copy, summary)
    if progress:
        progress(0, len(to_read))
    try:
        _read_and_index(archive, to_read, copy, summary, progress, cancel, workers)
        # DICOMDIRs recognised by content rather than name (DICOMDIR-implicit, dicomdir.dcm)
        # reference files of their own: read those the walk did not cover.
        later = _referenced_by(archive, summary.found_dicomdirs, covered, copy, summary)
        if later and not summary.interrupted and not summary.full:
            _read_and_index(archive, later, copy, summary, progress, cancel, workers)
    except KeyboardInterrupt:
        summary.interrupted = True
        raise
    finally:
        summary.seconds = time.perf_counter() - started
    if summary.full:
        raise ArchiveError(
            f"archive {archive.root}: disk full ({summary.full}); the {summary.new} new file(s)"
            " copied before are indexed, the rest are not: free space and import again"
        )
    return summary


def _root(path: str | os.PathLike[str]) -> str:
    """An import root as an absolute path with symlinks resolved (one file, one path)."""
    text = os.fspath(path)
    if not text.strip():
        raise UserError("an empty path was given: name a file or folder")
    root = os.path.realpath(text)
    if not _encodable(root):
        raise UserError(f"{_printable(root)}: the path is not valid UTF-8; rename it")
    if not os.path.exists(root):
        raise UserError(f"no such file or folder: {root}")
    return root


def _encodable(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(path: str) -> str:
    """A path with undecodable bytes shown as escapes, safe to print and to store."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _plan(
    archive: Archive, roots: list[str], copy: bool, summary: ImportSummary
) -> tuple[list[_Candidate], set[str]]:
    """Walk the roots, drop vanished files; return the files to read and every path found."""
    to_read: dict[str, _Candidate] = {}
    covered: set[str] = set()
    for root in roots:
        known = archive.known_files(root)
        found: dict[str, tuple[int, int]] = {}
        if os.path.isdir(root):
            found.update(_walk(root, summary))
        elif os.path.basename(root).upper() == "DICOMDIR":
            found[root] = _stat(root)
            found.update(_from_dicomdir(root, summary))
        else:
            found[root] = _stat(root)
        for path in [p for p in found if os.path.basename(p).upper() == "DICOMDIR"]:
            # Found while walking: its files were walked too, so it is only read when new
            # or changed (to follow references and report missing files).
            if path != root and _changed(known.get(path), *found[path], copy):
                for ref, stat in _from_dicomdir(path, summary).items():
                    found.setdefault(ref, stat)
        vanished = [p for p in known if p not in found]
        if vanished:
            with archive.transaction():
                count, freed = archive.drop_files(vanished)
            summary.vanished += count
            for path in freed:  # duplicates of a vanished file: one of them takes its place
                known.pop(path, None)
                if path not in found and os.path.isfile(path):
                    to_read[path] = _Candidate(path, *_stat(path))
        for path, (size, mtime_ns) in found.items():
            entry = known.get(path)
            if entry is None or _changed(entry, size, mtime_ns, copy):
                replace = copy and entry is not None and entry.kind == "copied"
                to_read[path] = _Candidate(path, size, mtime_ns, replace)
            else:
                summary._count_unchanged(entry)
        covered.update(found)
    return sorted(to_read.values(), key=lambda c: c.path), covered


def _referenced_by(
    archive: Archive, dicomdirs: list[str], covered: set[str], copy: bool, summary: ImportSummary
) -> list[_Candidate]:
    later: dict[str, _Candidate] = {}
    for dicomdir in dicomdirs:
        if dicomdir in summary.followed_dicomdirs:
            continue  # found by name while planning, or nested in a DICOMDIR followed then
        for path, (size, mtime_ns) in _from_dicomdir(dicomdir, summary).items():
            if path in covered or path in later:
                continue
            covered.add(path)
            entry = archive.known_files(path).get(path)
            if entry is None or _changed(entry, size, mtime_ns, copy):
                later[path] = _Candidate(path, size, mtime_ns)
            else:
                summary._count_unchanged(entry)
    return sorted(later.values(), key=lambda c: c.path)


def _changed(entry: Known | None, size: int, mtime_ns: int, copy: bool) -> bool:
    if entry is None or entry.size != size or entry.mtime_ns != mtime_ns:
        return True
    # A file indexed in place and now imported with --copy must be read to be copied.
    return copy and entry.kind == "instance" and not entry.managed


def _walk(root: str, summary: ImportSummary) -> Iterator[tuple[str, tuple[int, int]]]:
    """Every regular file under ``root`` with its (size, mtime_ns); symlinked folders are not
    followed (no loops)."""
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif not _encodable(entry.path):
                            reason = "the file name is not valid UTF-8: rename it to import it"
                            summary.skipped.append((_printable(entry.path), reason))
                        elif entry.is_file():
                            st = entry.stat()
                            yield entry.path, (st.st_size, st.st_mtime_ns)
                    except OSError as exc:
                        summary.skipped.append((entry.path, f"unreadable: {exc.strerror}"))
        except OSError as exc:
            summary.skipped.append((folder, f"unreadable folder: {exc.strerror}"))


def _from_dicomdir(path: str, summary: ImportSummary) -> dict[str, tuple[int, int]]:
    try:
        found = referenced_files(path)
    except DicomdirError as exc:
        summary.skipped.append((path, without_controls(str(exc))))
        summary.followed_dicomdirs.add(path)  # tried: not again, and reported once
        return {}
    summary.followed_dicomdirs.update(found.dicomdirs)
    summary.missing += [(p, path) for p in found.missing]
    return {p: _stat(p) for p in found.present}


def _stat(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


# -- reading, in worker processes --------------------------------------------------------


def _read_chunk(chunk: list[_Candidate], store: str | None) -> list[tuple[Any, ...]]:
    """Read a chunk of files. Runs in a worker process: returns plain tuples.

    ('record', record, candidate, placed), ('seen', candidate, kind, reason), or, last,
    ('full', candidate, reason) when the store's disk is full.
    """
    results: list[tuple[Any, ...]] = []
    for candidate in chunk:
        try:
            record = read_record(candidate.path)
            placed = None
            if store is not None:
                placed, dest = place(candidate.path, Path(store), record.sop_uid, candidate.replace)
                st = os.stat(dest)
                record.path, record.size, record.mtime_ns = str(dest), st.st_size, st.st_mtime_ns
            results.append(("record", record, candidate, placed))
        except HeaderError as exc:
            kind = "dicomdir" if str(exc) == "DICOMDIR" else "skipped"
            results.append(("seen", candidate, kind, str(exc)))
        except StoreFull as exc:  # the rest would not fit either: read them next time
            results.append(("full", candidate, str(exc)))
            break
        except StoreError as exc:
            results.append(("seen", candidate, "skipped", str(exc)))
        except OSError as exc:
            if exc.errno is None:  # pydicom's word for a broken file, not the disk's
                results.append(("seen", candidate, "skipped", _malformed(exc)))
            else:
                reason = f"unreadable: {exc.strerror or exc}"
                results.append(("seen", candidate, "skipped", reason))
        except Exception as exc:  # a malformed file must never stop the import
            results.append(("seen", candidate, "skipped", _malformed(exc)))
    return results


def _malformed(exc: Exception) -> str:
    """One printable line: parsers quote the file's bytes in their messages."""
    reason = f"malformed: {type(exc).__name__}: {exc}".splitlines()[0][:200]
    return without_controls(reason)


def _read_and_index(
    archive: Archive,
    to_read: list[_Candidate],
    copy: bool,
    summary: ImportSummary,
    progress: Progress | None,
    cancel: threading.Event | None,
    workers: int | None,
) -> None:
    chunks = [to_read[i : i + _CHUNK] for i in range(0, len(to_read), _CHUNK)]
    store = str(archive.store) if copy else None
    workers = workers or os.cpu_count() or 1
    done = 0
    with ExitStack() as stack:
        batches: Iterator[list[tuple[Any, ...]]]
        if workers > 1 and len(to_read) >= _PARALLEL_FROM:
            pool = stack.enter_context(process_pool(workers, preload=__name__))
            stack.callback(pool.shutdown, wait=True, cancel_futures=True)  # on cancel, too
            batches = pool.map(_read_chunk, chunks, [store] * len(chunks))
        else:
            batches = (_read_chunk(chunk, store) for chunk in chunks)
        for results in batches:
            _index(archive, results, copy, summary)
            done += len(results)
            if progress:
                progress(done, len(to_read))
            if summary.full:
                break  # what the store holds whole is indexed; the rest waits for space
            if cancel is not None and cancel.is_set():
                summary.interrupted = True
                break


def _index(
    archive: Archive, results: list[tuple[Any, ...]], copy: bool, summary: ImportSummary
) -> None:
    """Index one batch of read results in one transaction."""
    records: list[InstanceRecord] = []
    sources: dict[str, _Candidate] = {}
    seen: list[tuple[str, int, int, str, str, str]] = []
    discard: list[str] = []
    placements: dict[str, Placed] = {}  # what placing each store file did
    for result in results:
        if result[0] == "full":
            summary.full = result[2]
            continue
        if result[0] == "seen":
            _, c, kind, reason = result
            seen.append((c.path, c.size, c.mtime_ns, kind, reason if kind == "skipped" else "", ""))
            if kind == "dicomdir":
                summary.dicomdirs += 1
                summary.found_dicomdirs.append(c.path)
            else:
                summary.skipped.append((c.path, reason))
                if reason.startswith(_TRANSIENT):
                    seen.pop()  # not remembered: tried again next time, and reported again
            continue
        _, record, c, placed = result
        if copy and placed is Placed.SAME and record.path in sources:
            summary.unchanged += 1  # the same bytes twice in one batch: one copy is enough
            seen.append((c.path, c.size, c.mtime_ns, "copied", "", record.sop_uid))
            continue
        sources[record.path] = c
        placements[record.path] = placed
        if copy:
            seen.append((c.path, c.size, c.mtime_ns, "copied", "", record.sop_uid))
            if placed is Placed.DIFFERENT:
                seen.pop()
                _report_duplicate(Duplicate(c.path, record.sop_uid, record.path), c, seen, summary)
                continue
            if placed is Placed.SAME and archive.indexed_path(record.sop_uid) == record.path:
                summary.unchanged += 1
                continue
        records.append(record)
    with archive.transaction():
        origins = {path: c.path for path, c in sources.items()} if copy else {}
        added = archive.add(records, managed=copy, origins=origins)
        for duplicate in added.duplicates:
            c = sources[duplicate.path]
            if copy:  # the copy in the store is not indexed: remove it if this import made it
                if placements.get(duplicate.path) is Placed.COPIED:  # (an edit's original stays)
                    discard.append(duplicate.path)
                duplicate = Duplicate(c.path, duplicate.sop_uid, duplicate.indexed_path)
                seen = [row for row in seen if row[0] != c.path]
            _report_duplicate(duplicate, c, seen, summary)
        for path, reason in added.refused:  # not remembered: read again next time
            c = sources[path]
            if copy:
                if placements.get(path) is Placed.COPIED:
                    discard.append(path)
                seen = [row for row in seen if row[0] != c.path]
            summary.skipped.append((c.path, reason))
        archive.record_seen(seen)
    for path in discard:
        os.unlink(path)
    summary.new += added.new
    summary.updated += added.updated
    summary.conflicts += [sources[path].path for path in added.conflicts]


def _report_duplicate(
    duplicate: Duplicate,
    c: _Candidate,
    seen: list[tuple[str, int, int, str, str, str]],
    summary: ImportSummary,
) -> None:
    """Count and remember a file not indexed because another file holds its UID."""
    try:
        identical = filecmp.cmp(c.path, duplicate.indexed_path, shallow=False)
    except OSError:
        identical = False
    holder = duplicate.indexed_path
    reason = f"identical copy of {holder}" if identical else f"same SOPInstanceUID as {holder}"
    seen.append((c.path, c.size, c.mtime_ns, "duplicate", reason, duplicate.sop_uid))
    summary.duplicates.append(replace(duplicate, identical=identical))
