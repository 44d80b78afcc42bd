"""Use a DICOMDIR (the index of a CD or USB stick) to find the files it references."""

from __future__ import annotations

import os
import warnings

from pydicom import dcmread


class DicomdirError(Exception):
    """The DICOMDIR cannot be read; the message says why."""


def referenced_files(path: str) -> tuple[list[str], list[str]]:
    """Return (present, missing) paths of the files ``path``'s records reference.

    Records are read directly (not through ``pydicom.fileset.FileSet``, which
    drops records whose file is missing), so every missing file is reported.
    A reference with components that would lead outside the DICOMDIR's folder
    is reported missing rather than followed; a file whose name differs only
    in case (CDs copied to case-sensitive file systems) is found.
    """
    root = os.path.dirname(os.path.abspath(path))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            records = dcmread(path).DirectoryRecordSequence
            file_ids = [r.ReferencedFileID for r in records if "ReferencedFileID" in r]
    except Exception as exc:  # pydicom raises many types for malformed files
        raise DicomdirError(f"unreadable DICOMDIR: {exc}") from None
    present, missing = [], []
    for file_id in file_ids:
        parts = [file_id] if isinstance(file_id, str) else list(file_id)
        found = _resolve(root, parts)
        if found is None:
            missing.append(os.path.join(root, *(p for p in parts if _safe(p))))
        else:
            present.append(found)
    return present, missing


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
