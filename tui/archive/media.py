"""Export instances as DICOM files: to a folder, to a ZIP, or as removable media (a folder
with a DICOMDIR, PS3.10/PS3.11 General Purpose CD-R and USB: 8-character upper-case file
IDs, one PATIENT/STUDY/SERIES/leaf record tree, built with ``pydicom.fileset``).

Every kind names its files the same way, by position and never by UID or tag text:
``PT000000/ST000000/SE000000/IM000000`` (patient, study, series, instance, from 0).

The user's files are never overwritten and the source is never touched: the output is
written into a hidden temporary sibling of the target, read back whole (the self-check:
every file parses and carries the UIDs it should, the DICOMDIR lists the same tree), and
only then renamed into place; on any failure, Ctrl-C or ``cancel`` the partial output is
removed. Without a ``transform`` files are copied byte for byte (the kernel copies them);
with one (the de-identifier's ``apply``) each is read, transformed and written again.

One module past 600 lines: writing, the self-check and the DICOMDIR share the layout of
file IDs and the record tree, and each is only correct beside the others.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from tui.archive.holdings import export_rows
from tui.archive.index import Archive
from tui.errors import UserError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset
    from pydicom.fileset import FileSet, RecordNode

    from tui.archive.query import Filters

Kind = Literal["folder", "zip", "media"]
KINDS: tuple[Kind, ...] = ("folder", "zip", "media")

# A per-instance change made before writing (the de-identifier's apply); it may raise an
# exception with a ``reason`` attribute to refuse the instance (skipped and reported).
Transform = Callable[["Dataset"], None]
# Looks for what must not be in a written file (given its bytes): problems found, each a
# dict of strings.
Check = Callable[[bytes], list[dict[str, str]]]
# Given a source dataset before its transform, the check its written file must pass.
Audit = Callable[["Dataset"], Check]
Progress = Callable[[int, int, int], None]  # instances done, of total, bytes written

DICOMDIR = "DICOMDIR"
_TREE = ("PATIENT", "STUDY", "SERIES")  # the record types above the leaves
_LEVELS = ("PT", "ST", "SE", "IM")
_MAX_PER_LEVEL = 1_000_000  # six decimal digits after the two-letter prefix
# Transfer syntaxes whose pixel data is compressed already: stored in a ZIP as they are.
_NATIVE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}
# Type 1 keys of the PATIENT, STUDY, SERIES and IMAGE records (PS3.3 F.5) that files may
# lack: the record gets a stand-in (the file is not changed), as dcmmkdir's --invent does.
_STAND_INS: dict[str, Callable[[tuple[int, ...]], object]] = {
    "PatientID": lambda at: f"UNKNOWN{at[0] + 1}",
    "StudyDate": lambda at: "19000101",
    "StudyTime": lambda at: "000000",
    "StudyID": lambda at: str(at[1] + 1),
    "Modality": lambda at: "OT",
    "SeriesNumber": lambda at: at[2] + 1,
    "InstanceNumber": lambda at: at[3] + 1,
}


class MediaError(UserError):
    """The export failed: nothing was left in the target's place, the source is as it was."""


class Cancelled(MediaError):
    """The export was stopped (``cancel`` set): its partial output is removed."""


class CheckFailed(MediaError):
    """The written output, read back, is not what was meant to be written."""


class VerificationFailed(MediaError):
    """A written file still holds an identifying value of its source; ``report.hits``
    lists every one found."""

    def __init__(self, message: str, report: Report) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class Report:
    """What an export wrote (or, failed, what it found)."""

    output: str
    kind: Kind
    patients: int = 0
    studies: int = 0
    series: int = 0
    instances: int = 0
    bytes: int = 0  # of the DICOM files, uncompressed
    seconds: float = 0.0
    refused: list[tuple[str, str]] = field(default_factory=list)  # (SOPInstanceUID, reason)
    hits: list[dict[str, str]] = field(default_factory=list)  # identifying values found
    transformed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "kind": self.kind,
            "patients": self.patients,
            "studies": self.studies,
            "series": self.series,
            "instances": self.instances,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "transformed": self.transformed,
            "refused": [{"SOPInstanceUID": uid, "reason": why} for uid, why in self.refused],
            "hits": self.hits,
        }


def select(
    archive: Archive, uids: list[str], filters: Filters | None = None
) -> list[dict[str, Any]]:
    """The instances to export: those the Study, Series or SOP Instance UIDs name, and
    every instance of the series ``filters`` match (as ``ls --level series`` lists them),
    each once, by patient, study, series and instance (rows of
    :func:`tui.archive.holdings.export_rows`).

    Raises
    ------
    UserError
        For a UID the archive does not hold, or nothing to export.
    """
    from tui.archive.query import search

    wanted = list(uids)
    if filters is not None:
        wanted += [str(row["SeriesInstanceUID"]) for row in search(archive, "series", filters)]
    if not wanted:
        raise UserError("nothing matches: no instance to export")
    return export_rows(archive, list(dict.fromkeys(wanted)))


def kind_of(target: Path, dicomdir: bool) -> Kind:
    """``zip`` for a ``.zip`` target, ``media`` with a DICOMDIR, else ``folder``."""
    if target.suffix.lower() == ".zip":
        if dicomdir:
            raise UserError("a DICOMDIR goes with a folder: give -o FOLDER, not a .zip")
        return "zip"
    return "media" if dicomdir else "folder"


def export(
    rows: list[dict[str, Any]],
    target: Path,
    kind: Kind,
    transform: Transform | None = None,
    audit: Audit | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> Report:
    """Write the instances of ``rows`` (from :func:`select`) to ``target`` as ``kind``.

    ``transform`` changes each dataset before it is written; one that raises an exception
    with a ``reason`` skips that instance (listed in ``Report.refused``). ``audit`` (with a
    transform) is given each source dataset before its transform and returns the check
    its written file must pass; what the checks find is listed in the report and fails
    the export once every file has been looked at.

    Raises
    ------
    MediaError
        The target exists (a folder that is not empty, any file for a ZIP), a source file
        changed or vanished since it was indexed, the self-check found the output wrong
        (:class:`CheckFailed`), identifying values were found (:class:`VerificationFailed`)
        or ``cancel`` was set (:class:`Cancelled`). Nothing is left in the target's place.
    """
    started = time.monotonic()
    target = Path(os.path.abspath(target))
    _check_target(target, kind)
    report = Report(output=str(target), kind=kind, transformed=transform is not None)
    # Written beside the target, or inside it when it is an empty folder already (a USB
    # stick's mount point: another file system than its parent's, and not to be replaced).
    inside = kind != "zip" and target.is_dir()
    try:
        partial = Path(
            tempfile.mkdtemp(prefix=".partial-", dir=target)
            if inside
            else tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent)
        )
    except OSError as exc:
        raise MediaError(f"{target}: cannot write there ({exc.strerror or exc})") from None
    writer: _Writer | None = None
    try:
        writer = _ZipWriter(partial) if kind == "zip" else _FolderWriter(partial)
        written, layout = _write(rows, writer, transform, audit, progress, cancel, report)
        writer.close()
        if not written:
            uid, why = report.refused[0] if report.refused else ("", "")
            raise MediaError(
                f"nothing written: every instance was refused ({uid}: {why}"
                + (f"; and {len(report.refused) - 1} more)" if len(report.refused) > 1 else ")")
                if report.refused
                else "nothing to write"
            )
        if cancel is not None and cancel.is_set():
            raise Cancelled("export cancelled: nothing was written")
        _self_check(writer, written, layout if kind == "media" else None)
        if kind == "media":
            _write_dicomdir(partial, layout)
            _check_dicomdir(partial, written, layout)
        report.patients, report.studies, report.series = layout.counts()
        report.instances = len(written)
        if report.hits:
            raise VerificationFailed(
                f"{_described(report.hits[0])}"
                + (f" (and {len(report.hits) - 1} more)" if len(report.hits) > 1 else "")
                + ": identifying values survived; nothing was written",
                report,
            )
        _into_place(partial, writer, target, kind, inside)
    except OSError as exc:  # a full disk, a folder made read-only meanwhile
        _discard(partial, writer)
        raise MediaError(f"{target}: cannot write there ({exc.strerror or exc})") from None
    except BaseException:
        _discard(partial, writer)
        raise
    report.seconds = time.monotonic() - started
    return report


def _described(hit: dict[str, str]) -> str:
    """Where a hit is, never the identifying value itself (that is for ``--json`` only)."""
    return f"{hit.get('file', '?')}: {hit.get('path', 'an attribute')}"


def _check_target(target: Path, kind: Kind) -> None:
    if not target.parent.is_dir():
        raise MediaError(f"{target.parent}: no such folder")
    if kind == "zip":
        if os.path.lexists(target):
            raise MediaError(f"{target} exists: give a new name (nothing is overwritten)")
    elif target.is_dir():
        if any(target.iterdir()):
            raise MediaError(f"{target} is not empty: give a new or empty folder")
    elif os.path.lexists(target):
        raise MediaError(f"{target} exists and is not a folder")


def _discard(partial: Path, writer: _Writer | None) -> None:
    """Remove a partial output (a ZIP closed first: its file handle would otherwise try to
    finish the archive when collected, on a full disk too)."""
    if isinstance(writer, _ZipWriter):
        with contextlib.suppress(Exception):
            writer.zip.close()
    shutil.rmtree(partial, ignore_errors=True)


def _into_place(partial: Path, writer: _Writer, target: Path, kind: Kind, inside: bool) -> None:
    """Rename the checked output to ``target``, never over something that appeared there
    meanwhile: a folder only replaces an empty folder (rename(2) refuses a full one), a
    ZIP is linked (which refuses any existing name) where links exist; written inside the
    target, its files move up into it, each only where nothing is."""
    try:
        if inside:
            for entry in sorted(os.listdir(partial)):
                if os.path.lexists(target / entry):
                    raise FileExistsError(target / entry)
                os.rename(partial / entry, target / entry)
            os.rmdir(partial)
            return
        if kind == "zip":
            made = writer.root / _ZipWriter.NAME
            try:
                os.link(made, target)
            except FileExistsError:
                raise
            except OSError:  # no hard links here (FAT on a USB stick)
                if os.path.lexists(target):
                    raise FileExistsError(target) from None
                os.rename(made, target)
            shutil.rmtree(partial, ignore_errors=True)
        else:
            os.rename(partial, target)
    except OSError as exc:
        raise MediaError(f"{target}: cannot put the output there ({exc.strerror or exc})") from None


# -- writing ---------------------------------------------------------------------------


@dataclass
class _Written:
    """One instance written, and what its file must carry."""

    file_id: tuple[str, ...]
    sop_uid: str
    study_uid: str
    series_uid: str
    patient_id: str | None  # checked when the file was written from a dataset
    size: int | None  # the file's size (a byte copy's, its source's)
    at: tuple[int, int, int, int]  # (patient, study, series, instance) positions
    header: Dataset | None = None  # read back by the worker that wrote it (not for a ZIP)
    read_size: int = -1  # the size it was read back with


class _Layout:
    """Positions and file IDs: a study stays under the patient of its first instance, as
    the index files it, so one study is one STUDY record."""

    def __init__(self) -> None:
        self.patients: dict[str, int] = {}
        self.studies: dict[str, tuple[int, int]] = {}  # study UID -> (patient, study)
        self.series: dict[str, tuple[int, int, int]] = {}
        self.per_study: dict[int, int] = {}  # patient -> studies so far
        self.per_series: dict[tuple[int, int], int] = {}
        self.per_instance: dict[tuple[int, int, int], int] = {}
        self.nodes: dict[tuple[int, ...], RecordNode] = {}  # DICOMDIR records, media only
        self._file_set: FileSet | None = None
        self.leaf_types: dict[tuple[tuple[int, ...], str], str] = {}  # (series, SOP class)

    @property
    def file_set(self) -> FileSet:
        """The ``FileSet`` whose record creators and encoder make the DICOMDIR."""
        if self._file_set is None:
            from pydicom.fileset import FileSet

            self._file_set = FileSet()
        return self._file_set

    def place(self, patient_id: str, study: str, series: str) -> tuple[int, int, int, int]:
        if study not in self.studies:
            p = self.patients.setdefault(patient_id, len(self.patients))
            self.studies[study] = (p, _next(self.per_study, p))
        p, s = self.studies[study]
        if series not in self.series or self.series[series][:2] != (p, s):
            self.series[series] = (p, s, _next(self.per_series, (p, s)))
        key = self.series[series]
        return (*key, _next(self.per_instance, key))

    def counts(self) -> tuple[int, int, int]:
        return len(self.patients), len(self.studies), len(self.series)


def _next(counters: dict[Any, int], key: Any) -> int:
    n = counters.get(key, 0)
    if n >= _MAX_PER_LEVEL:
        raise MediaError(f"more than {_MAX_PER_LEVEL} entries in one level: export in parts")
    counters[key] = n + 1
    return n


def _file_id(at: tuple[int, ...]) -> tuple[str, ...]:
    return tuple(f"{prefix}{n:06d}" for prefix, n in zip(_LEVELS, at, strict=True))


class _Writer:
    """Where files go: a folder (the output itself) or a ZIP being written."""

    root: Path

    def destination(self, file_id: tuple[str, ...]) -> Path | None:
        """The path a worker writes this file to itself; None: hand the bytes to :meth:`add`."""
        raise NotImplementedError

    def add(self, file_id: tuple[str, ...], data: bytes | str, native: bool) -> None:
        """Add a file: its bytes, or the path of a source to copy as it is."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def names(self) -> set[str]:
        """Every file the output holds, as ``/``-joined file IDs."""
        raise NotImplementedError

    @contextlib.contextmanager
    def opened(self, file_id: tuple[str, ...]) -> Iterator[tuple[BinaryIO, int]]:
        """A written file to read back, and its size."""
        raise NotImplementedError
        yield


class _FolderWriter(_Writer):
    def __init__(self, root: Path) -> None:
        self.root = root

    def destination(self, file_id: tuple[str, ...]) -> Path:
        return self.root.joinpath(*file_id)

    def names(self) -> set[str]:
        found: set[str] = set()
        for folder, _dirs, files in os.walk(self.root):
            relative = Path(folder).relative_to(self.root)
            found.update((relative / name).as_posix() for name in files)
        return found

    @contextlib.contextmanager
    def opened(self, file_id: tuple[str, ...]) -> Iterator[tuple[BinaryIO, int]]:
        with open(self.root.joinpath(*file_id), "rb") as fp:
            yield fp, os.fstat(fp.fileno()).st_size


class _ZipWriter(_Writer):
    """Streams into ``export.zip`` in the partial folder, one file at a time (constant
    memory; ZIP64 when the sizes or the count need it)."""

    NAME = "export.zip"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.zip = zipfile.ZipFile(root / self.NAME, "x", allowZip64=True)
        self.reader: zipfile.ZipFile | None = None

    def destination(self, file_id: tuple[str, ...]) -> None:
        return None

    def add(self, file_id: tuple[str, ...], data: bytes | str, native: bool) -> None:
        # Deflate what it shrinks (uncompressed pixels), at its fastest level; store what
        # is compressed already.
        method = zipfile.ZIP_DEFLATED if native else zipfile.ZIP_STORED
        name = "/".join(file_id)
        if isinstance(data, str):
            self.zip.write(data, name, compress_type=method, compresslevel=1)
        else:
            self.zip.writestr(name, data, compress_type=method, compresslevel=1)

    def close(self) -> None:
        self.zip.close()

    def names(self) -> set[str]:
        with zipfile.ZipFile(self.root / self.NAME) as readable:
            return set(readable.namelist())

    @contextlib.contextmanager
    def opened(self, file_id: tuple[str, ...]) -> Iterator[tuple[BinaryIO, int]]:
        if self.reader is None:
            self.reader = zipfile.ZipFile(self.root / self.NAME)
        info = self.reader.getinfo("/".join(file_id))
        with self.reader.open(info) as fp:
            yield fp, info.file_size  # type: ignore[misc]


# -- one instance, in a worker process -------------------------------------------------


@dataclass
class _Task:
    source: str
    sop_uid: str
    destination: str | None  # None: the bytes come back (a ZIP is written by one writer)


@dataclass
class _Outcome:
    data: bytes | None = None  # written from a dataset, for a ZIP
    length: int = 0  # of the bytes written from a dataset
    refused: str | None = None
    hits: list[dict[str, str]] = field(default_factory=list)
    meant: tuple[str, str, str, str] = ("", "", "", "")  # SOP, study, series UIDs, patient ID
    header: Dataset | None = None  # the written file read back, up to its pixel data
    size: int = -1  # the written file's size, read back


# What every task of one export does to its instance: set before the worker processes
# fork, so the de-identifier and the audit reach them without being pickled.
_job: tuple[Transform | None, Audit | None] = (None, None)


def _export_one(task: _Task) -> _Outcome:
    """Write one instance (copied, or read, transformed and encoded), then read its file
    back up to the pixel data for the self-check; an instance refused by the transform
    is not written."""
    transform, audit = _job
    outcome = _Outcome()
    if transform is None:
        if task.destination is None:
            return outcome  # copied into the ZIP by the writer
        _mkdir(task.destination)
        shutil.copyfile(task.source, task.destination)  # sendfile/copy_file_range on Linux
        outcome.header, outcome.size = _read_back(task.destination)
        return outcome
    from tui.archive.encode import encode

    ds = _read_source(task)
    check = audit(ds) if audit is not None else None
    try:
        transform(ds)
    except Exception as exc:
        reason = getattr(exc, "reason", None)
        if reason is None:
            raise
        outcome.refused = str(reason)
        return outcome
    data = encode(ds)
    if check is not None:
        outcome.hits = check(data)
    outcome.length = len(data)
    outcome.meant = tuple(  # type: ignore[assignment]
        str(ds.get(k, ""))
        for k in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "PatientID")
    )
    if task.destination is None:
        outcome.data = data
        return outcome
    _mkdir(task.destination)
    with open(task.destination, "wb") as out:
        out.write(data)
    outcome.header, outcome.size = _read_back(task.destination)
    return outcome


def _read_source(task: _Task) -> Dataset:
    from pydicom import dcmread

    try:
        ds = dcmread(task.source)
    except Exception as exc:  # pydicom raises many types for a damaged file
        raise MediaError(
            f"{task.source}: unreadable ({type(exc).__name__}): import again"
        ) from None
    if str(ds.get("SOPInstanceUID", "")) != task.sop_uid:
        raise MediaError(f"{task.source} changed since it was indexed: import it again")
    return ds


def _read_back(path: str) -> tuple[Dataset | None, int]:
    """The written file's header (None if it does not parse) and its size."""
    with open(path, "rb") as fp:
        return _header_of(fp), os.fstat(fp.fileno()).st_size


def _header_of(fp: BinaryIO) -> Dataset | None:
    from pydicom import dcmread

    try:
        ds = dcmread(fp, stop_before_pixels=True)
        ds.file_meta  # noqa: B018 (parsed now: a broken meta fails here, not later)
        return ds
    except Exception:  # pydicom raises many types for a damaged file
        return None


def _mkdir(path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)


def _outcomes(
    tasks: list[_Task], transform: Transform | None, audit: Audit | None,
    cancel: threading.Event | None,
) -> Generator[_Outcome, None, None]:  # fmt: skip
    """Each task's outcome, in order: in worker processes (one per core) when this process
    may fork (the command line), else here (the app's threads)."""
    global _job
    _job = (transform, audit)
    workers = min(os.cpu_count() or 1, 4)
    try:
        if workers < 2 or len(tasks) < 8 or threading.active_count() > 1:
            for task in tasks:
                if cancel is not None and cancel.is_set():
                    raise Cancelled("export cancelled: nothing was written")
                yield _export_one(task)
            return
        from tui.parallel import process_pool

        _warm_up(tasks[0].source)
        pool = process_pool(workers, __name__)
        finished = False
        try:
            ahead = 4 * workers  # bounded: a ZIP's bytes come back through memory
            pending = [pool.submit(_export_one, task) for task in tasks[:ahead]]
            for i in range(len(tasks)):
                if cancel is not None and cancel.is_set():
                    raise Cancelled("export cancelled: nothing was written")
                outcome = pending[i].result()
                if i + ahead < len(tasks):
                    pending.append(pool.submit(_export_one, tasks[i + ahead]))
                pending[i] = None  # type: ignore[call-overload]
                yield outcome
            finished = True
        finally:  # also when the caller stops (Ctrl-C): no worker writes after this
            if not finished:
                # Their work is thrown away. Killed rather than waited for: a Ctrl-C that
                # lands inside the executor's queue handling can leave a worker waiting
                # on its pipe for ever.
                processes = getattr(pool, "_processes", None) or {}
                for process in list(processes.values()):
                    process.kill()
            pool.shutdown(wait=True, cancel_futures=True)
    finally:
        _job = (None, None)


def _warm_up(path: str) -> None:
    """Import what reading and encoding need, here, before the workers fork: each would
    otherwise import pydicom (and the modules it loads on first use) itself, in parallel,
    a second's start on two cores."""
    import tui.archive.encode  # noqa: F401

    with open(path, "rb") as fp:
        _header_of(fp)


def _write(
    rows: list[dict[str, Any]],
    writer: _Writer,
    transform: Transform | None,
    audit: Audit | None,
    progress: Progress | None,
    cancel: threading.Event | None,
    report: Report,
) -> tuple[list[_Written], _Layout]:
    # Workers write to the places planned here; an instance refused leaves a gap, which
    # the files after it in its series close (pydicom names the records by position).
    planned, layout = _Layout(), _Layout()
    destinations: list[Path | None] = []
    tasks: list[_Task] = []
    for row in rows:
        _check_unchanged(row)
        at = planned.place(row["PatientID"], row["StudyInstanceUID"], row["SeriesInstanceUID"])
        destination = writer.destination(_file_id(at))
        destinations.append(destination)
        tasks.append(_Task(str(row["path"]), str(row["SOPInstanceUID"]),
                           str(destination) if destination is not None else None))  # fmt: skip
    written: list[_Written] = []
    total = len(rows)
    outcomes = contextlib.closing(_outcomes(tasks, transform, audit, cancel))
    with outcomes as each:
        for done, (row, was, outcome) in enumerate(zip(rows, destinations, each, strict=True), 1):
            if outcome.refused is not None:
                report.refused.append((row["SOPInstanceUID"], outcome.refused))
                continue
            at = layout.place(row["PatientID"], row["StudyInstanceUID"], row["SeriesInstanceUID"])
            file_id = _file_id(at)
            if was is not None and was != writer.destination(file_id):
                os.makedirs(writer.root.joinpath(*file_id[:-1]), exist_ok=True)
                os.rename(was, writer.root.joinpath(*file_id))
            if transform is None:
                if writer.destination(file_id) is None:
                    writer.add(file_id, str(row["path"]), str(row["TransferSyntaxUID"]) in _NATIVE)
                item = _Written(
                    file_id, row["SOPInstanceUID"], row["StudyInstanceUID"],
                    row["SeriesInstanceUID"], None, int(row["size"]), at,
                )  # fmt: skip
            else:
                if outcome.data is not None:
                    native = _syntax(_header_of(BytesIO(outcome.data))) in _NATIVE
                    writer.add(file_id, outcome.data, native)
                item = _Written(file_id, *outcome.meant, outcome.length, at)
                report.hits += [{"file": "/".join(file_id), **hit} for hit in outcome.hits]
            item.header, item.read_size = outcome.header, outcome.size
            report.bytes += item.size or 0
            written.append(item)
            if progress is not None:
                progress(done, total, report.bytes)
    if report.refused and writer.destination(("x",)) is not None:
        for folder, _dirs, _files in os.walk(writer.root, topdown=False):
            if folder != str(writer.root):
                with contextlib.suppress(OSError):  # only empty ones go: left by moved files
                    os.rmdir(folder)
    return written, layout


def _syntax(header: Dataset | None) -> str:
    meta = getattr(header, "file_meta", None)
    return str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""


def _check_unchanged(row: dict[str, Any]) -> None:
    """A file that vanished or changed since it was indexed may hold another instance."""
    try:
        found = os.stat(row["path"])
    except OSError:
        raise MediaError(f"{row['path']} is gone since it was indexed: import again") from None
    changed = found.st_size != row["size"] or (
        row["mtime_ns"] >= 0 and found.st_mtime_ns != row["mtime_ns"]
    )  # -1: to be read again at the next import, whatever its time
    if changed:
        raise MediaError(f"{row['path']} changed since it was indexed: import it again")


# -- the self-check and the DICOMDIR ---------------------------------------------------


def _self_check(writer: _Writer, written: list[_Written], records: _Layout | None) -> None:
    """Every written file read back (by the worker that wrote it; a ZIP's here) parses up
    to its pixel data, carries the UIDs (and, written from a dataset, the patient) it
    should, and has the size written (a byte copy, its source's: so nothing is cut
    short); the output holds these files and no other. With ``records`` (media), the
    DICOMDIR's records are made from what was read back, into that layout."""
    expected = {"/".join(item.file_id) for item in written}
    found = writer.names()
    if found != expected:
        extra = sorted(found - expected) or sorted(expected - found)
        raise CheckFailed(f"self-check: the output holds {len(found)} files, expected "
                          f"{len(expected)} (e.g. {extra[0]}); nothing was written")  # fmt: skip
    for item in written:
        name = "/".join(item.file_id)
        ds, size = item.header, item.read_size
        if ds is None and writer.destination(item.file_id) is None:
            with writer.opened(item.file_id) as (fp, size):
                ds = _header_of(fp)
        if ds is None:
            raise CheckFailed(f"self-check: {name} does not read back; nothing was written")
        if item.size is not None and size != item.size:
            raise CheckFailed(f"self-check: {name} has {size} bytes, its source {item.size}")
        wanted = [
            ("SOPInstanceUID", item.sop_uid), ("StudyInstanceUID", item.study_uid),
            ("SeriesInstanceUID", item.series_uid), ("PatientID", item.patient_id),
        ]  # fmt: skip
        for keyword, value in wanted:
            if value is not None and str(ds.get(keyword, "")) != value:
                raise CheckFailed(
                    f"self-check: {name} has another {keyword} than the instance meant to be"
                    " written there; nothing was written"
                )
        meta = str(ds.file_meta.get("MediaStorageSOPInstanceUID", ""))
        if meta != item.sop_uid and item.patient_id is not None:  # a copy keeps its source's
            raise CheckFailed(f"self-check: {name}'s file meta names another instance")
        if records is not None:
            _add_records(records, ds, item)


def _add_records(layout: _Layout, ds: Dataset, item: _Written) -> None:
    """The directory records of one instance, made as ``FileSet.add`` makes them (its
    record creators), joined to the tree; missing Type 1 keys get stand-ins."""
    from pydicom.fileset import DIRECTORY_RECORDERS, RecordNode

    for keyword, stand_in in _STAND_INS.items():
        if not str(ds.get(keyword, "")).strip():
            setattr(ds, keyword, stand_in(item.at))  # in memory, for the record only
    name = "/".join(item.file_id)
    series = layout.nodes.get(item.at[:3])
    leaf_type = layout.leaf_types.get((item.at[:3], str(ds.SOPClassUID)))
    try:
        if series is None or leaf_type is None:
            records = list(layout.file_set._recordify(ds))
        else:  # the series' records are made: only the leaf's, as _recordify makes it
            records = [DIRECTORY_RECORDERS[leaf_type](ds)]
            fixed = {
                "OffsetOfTheNextDirectoryRecord": 0, "RecordInUseFlag": 0xFFFF,
                "OffsetOfReferencedLowerLevelDirectoryEntity": 0,
                "DirectoryRecordType": leaf_type,
                "ReferencedSOPClassUIDInFile": ds.SOPClassUID,
                "ReferencedSOPInstanceUIDInFile": ds.SOPInstanceUID,
                "ReferencedTransferSyntaxUIDInFile": ds.file_meta.TransferSyntaxUID,
            }  # fmt: skip
            for keyword, value in fixed.items():
                setattr(records[0], keyword, value)
            if "SpecificCharacterSet" in ds:
                records[0].SpecificCharacterSet = ds.SpecificCharacterSet
    except ValueError as exc:
        raise MediaError(f"{name}: no DICOMDIR record ({exc})") from None
    if len(records) == 4:
        layout.leaf_types[item.at[:3], str(ds.SOPClassUID)] = str(records[3].DirectoryRecordType)
    elif len(records) == 1 and series is None:
        raise MediaError(
            f"{name}: its kind is listed outside the patient/study/series tree, which this "
            "DICOMDIR does not hold: export it without --dicomdir"
        )
    records[-1].ReferencedFileID = list(item.file_id)
    parent = layout.nodes.get(item.at[: 4 - len(records)]) if len(records) < 4 else None
    for depth, record in enumerate(records, 4 - len(records)):
        key = item.at[: depth + 1]
        node = layout.nodes.get(key)
        if node is None:
            node = layout.nodes[key] = RecordNode(record)
            if parent is not None:
                node.parent = parent
        parent = node


def _write_dicomdir(root: Path, layout: _Layout) -> None:
    """Write ``root/DICOMDIR`` from the records with ``pydicom.fileset``'s own encoder.

    The tree is joined to a new ``FileSet``'s root here rather than by ``FileSet.add``:
    ``add`` compares each new instance with all those added before (quadratic: seconds for
    a 300-slice series, minutes for thousands) and saves a copy of every file to a staging
    folder, which ``write`` copies again; the files are already where they belong.
    """
    from pydicom.filebase import DicomFileLike
    from pydicom.uid import UID

    from tui import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

    fs = layout.file_set
    fs.ID = "PACS_TUI"  # the File-set ID a reader shows for the disc
    dicomdir = fs._create_dicomdir()  # what _write_dicomdir would make, naming us as writer
    dicomdir.file_meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    dicomdir.file_meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    fs._ds = dicomdir
    for key, node in layout.nodes.items():
        if len(key) == 1:
            node.parent = fs._tree
    with open(root / DICOMDIR, "wb") as fp:
        fs._write_dicomdir(DicomFileLike(fp))


def _check_dicomdir(root: Path, written: list[_Written], layout: _Layout) -> None:
    """Read the DICOMDIR back and follow its records as a reader does (from the root's
    first record, by each record's offsets of its next and its first lower record): one
    leaf per instance at its file, under PATIENT, STUDY and SERIES records, and the same
    counts of patients, studies and series as the files make.

    pydicom's ``FileSet`` would read it too (the tests do), at ten times the cost.
    """
    from pydicom import dcmread

    try:
        ds = dcmread(root / DICOMDIR)
        records = {int(r.seq_item_tell): r for r in ds.DirectoryRecordSequence}
        first = int(ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity)
        listed: dict[str, str] = {}
        levels: list[int] = [0, 0, 0]
        seen: set[int] = set()

        def follow(offset: int, depth: int) -> None:
            while offset:
                if offset in seen or offset not in records:
                    raise CheckFailed("self-check: the DICOMDIR's records point astray")
                seen.add(offset)
                record = records[offset]
                kind = str(record.DirectoryRecordType)
                if depth < 3:
                    if kind != _TREE[depth]:
                        raise CheckFailed(f"self-check: a {kind} record where a {_TREE[depth]} is")
                    levels[depth] += 1
                    follow(int(record.OffsetOfReferencedLowerLevelDirectoryEntity), depth + 1)
                else:
                    file_id = record.ReferencedFileID
                    name = "/".join([file_id] if isinstance(file_id, str) else file_id)
                    listed[name] = str(record.ReferencedSOPInstanceUIDInFile)
                offset = int(record.OffsetOfTheNextDirectoryRecord)

        follow(first, 0)
    except CheckFailed:
        raise
    except Exception as exc:  # pydicom raises many types for a malformed DICOMDIR
        raise CheckFailed(f"self-check: the DICOMDIR does not read back ({exc})") from None
    at = {"/".join(item.file_id): item.sop_uid for item in written}
    if listed != at:
        raise CheckFailed(
            f"self-check: the DICOMDIR lists {len(listed)} instances, {len(at)} were "
            "written, or lists one at another file; nothing was written"
        )
    counts = tuple(levels)
    if counts != layout.counts():
        raise CheckFailed(
            f"self-check: the DICOMDIR lists {counts} patients/studies/series, the files "
            f"make {layout.counts()}; nothing was written"
        )
