"""Use a DICOMDIR (the index of a CD or USB stick) to find the files it references."""

from __future__ import annotations

import os
import warnings

from pydicom import dcmread
from pydicom.fileset import FileSet


class DicomdirError(Exception):
    """The DICOMDIR cannot be read; the message says why."""


def referenced_files(path: str) -> tuple[list[str], list[str]]:
    """Return (present, missing) paths of the instances ``path`` references.

    References that would lead outside the DICOMDIR's own folder are reported
    as missing rather than followed.
    """
    root = os.path.dirname(os.path.abspath(path))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fileset = FileSet(dcmread(path))
            paths = [os.path.abspath(instance.path) for instance in fileset]
    except Exception as exc:  # pydicom raises many types for malformed records
        raise DicomdirError(f"unreadable DICOMDIR: {exc}") from None
    present, missing = [], []
    for referenced in paths:
        inside = os.path.commonpath([root, referenced]) == root
        (present if inside and os.path.isfile(referenced) else missing).append(referenced)
    return present, missing
