"""Use a DICOMDIR (the index of a CD or USB stick) to find the files it references."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

from pydicom import dcmread
from pydicom.dataset import Dataset

from tui.archive.header import MEDIA_STORAGE_DIRECTORY

# Names a directory file goes by when a DICOMDIR references it (Philips: S21570/S1000/DIRFILE).
_DIRECTORY_NAMES = ("DICOMDIR", "DIRFILE")


class DicomdirError(Exception):
    """The DICOMDIR cannot be read; the message says why."""


@dataclass
class References:
    """What a DICOMDIR's records reference, nested directory files included."""

    present: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    # The DICOMDIR and every nested directory file whose records were followed.
    dicomdirs: list[str] = field(default_factory=list)


def referenced_files(path: str) -> References:
    """The files ``path``'s records reference, present and missing.

    Records are read directly (not through ``pydicom.fileset.FileSet``, which
    drops records whose file is missing), so every missing file is reported.
    File IDs are relative to the root of the file-set (PS3.10 8.2), the
    DICOMDIR's folder: a referenced directory file (Philips nest them, as
    ``S21570/S1000/DIRFILE``) is followed with that same root. A reference with
    components that would lead outside the DICOMDIR's folder is reported missing
    rather than followed; a file whose name differs only in case (CDs copied to
    case-sensitive file systems) is found.

    Raises
    ------
    DicomdirError
        If ``path`` cannot be read as a DICOMDIR.
    """
    path = os.path.abspath(path)
    found = References()
    _follow(path, os.path.dirname(path), found, _records(path))
    return found


def _records(path: str) -> list[tuple[Dataset, list[str]]]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            records = dcmread(path).DirectoryRecordSequence
            # Each file ID read here, in the try: pydicom converts a value only when asked,
            # and a broken one raises then.
            return [(r, _file_id(r)) for r in records if "ReferencedFileID" in r]
    except Exception as exc:  # pydicom raises many types for malformed files
        raise DicomdirError(f"unreadable DICOMDIR: {exc}") from None


def _file_id(record: Dataset) -> list[str]:
    """A record's ReferencedFileID as its path components."""
    file_id = record.ReferencedFileID
    return [file_id] if isinstance(file_id, str) else [str(part) for part in file_id]


def _follow(
    path: str, root: str, found: References, records: list[tuple[Dataset, list[str]]]
) -> None:
    found.dicomdirs.append(path)
    folder = os.path.dirname(path)
    for record, parts in records:
        where = _locate(root, folder, parts)
        if where is None:
            found.missing.append(_missing_path(root, folder, parts))
            continue
        found.present.append(where)
        if _is_directory(record, where) and where not in found.dicomdirs:
            try:
                nested = _records(where)
            except DicomdirError:
                continue  # reported once, when the import reads it as a DICOMDIR of its own
            _follow(where, root, found, nested)


def _is_directory(record: Dataset, path: str) -> bool:
    sop_class = str(record.get("ReferencedSOPClassUIDInFile", ""))
    return sop_class == MEDIA_STORAGE_DIRECTORY or os.path.basename(path).upper() in (
        _DIRECTORY_NAMES
    )


def _locate(root: str, folder: str, parts: list[str]) -> str | None:
    """The file a file ID names: from the file-set root, else, for a directory file that
    is not at the root (found alone), from the root its own place implies."""
    found = _resolve(root, parts)
    if found is None:
        for rest in _below(folder, parts):
            found = _resolve(folder, rest)
            if found is not None:
                break
    return found


def _below(folder: str, parts: list[str]) -> list[list[str]]:
    """What is left of ``parts`` after leading components that name ``folder``'s own last
    folders (``S21570\\S1000\\I10`` seen from ``.../S21570/S1000``: ``I10``)."""
    tail = folder.split(os.sep)
    return [
        parts[k:]
        for k in range(1, len(parts))
        if [p.upper() for p in parts[:k]] == [t.upper() for t in tail[-k:]]
    ]


def _missing_path(root: str, folder: str, parts: list[str]) -> str:
    """Where a missing file should be: under the root its directory file's place implies."""
    base, rest = root, parts
    implied = _below(folder, parts)
    if root == folder and implied:
        base, rest = folder, implied[-1]
    return os.path.join(base, *(p for p in rest if _safe(p)))


def _safe(part: str) -> bool:
    return bool(part) and part not in (".", "..") and "/" not in part and "\\" not in part


def _resolve(root: str, parts: list[str]) -> str | None:
    """The file ``parts`` names under ``root``, matching names case-insensitively if needed."""
    if not parts or not all(_safe(p) for p in parts):
        return None
    current = root
    for part in parts:
        candidate = os.path.join(current, part)
        if not os.path.exists(candidate):
            try:
                names = {name.upper(): name for name in os.listdir(current)}
            except OSError:
                return None
            if part.upper() not in names:
                return None
            candidate = os.path.join(current, names[part.upper()])
        current = candidate
    return current if os.path.isfile(current) else None
