"""The archive's managed store: files copied in by ``import --copy`` or received.

A stored file's name is a hash of its SOP Instance UID, never the UID or any
other tag text, so hostile values cannot escape the store. Files arrive as a
temporary file and are then linked into place, so a partial file never has a
store name (a full disk removes the temporary file and raises :class:`StoreFull`).
"""

from __future__ import annotations

import errno
import filecmp
import hashlib
import os
import shutil
import tempfile
from enum import Enum
from pathlib import Path


class StoreError(Exception):
    """A file could not be written into the store (disk full, permissions)."""


class StoreFull(StoreError):
    """The store's file system is full (or the user's quota used up): the files after
    this one will not fit either."""


class Placed(Enum):
    """What :func:`place` did."""

    COPIED = "copied"  # a new file in the store
    SAME = "same"  # the store already held these exact bytes under this UID
    DIFFERENT = "different"  # the store already held other bytes under this UID


def store_path(store: Path, sop_uid: str) -> Path:
    """Where the instance ``sop_uid`` lives in ``store``."""
    digest = hashlib.sha256(sop_uid.encode("utf-8", "surrogateescape")).hexdigest()[:40]
    return store / digest[:2] / digest[2:4] / f"{digest}.dcm"


def place(source: str, store: Path, sop_uid: str, replace: bool = False) -> tuple[Placed, Path]:
    """Copy ``source`` into ``store`` under ``sop_uid``'s name, atomically.

    An existing file is overwritten only with ``replace`` (the source it was
    copied from has changed).
    """
    dest = store_path(store, sop_uid)
    if dest.exists() and not replace:
        same = filecmp.cmp(source, dest, shallow=False)
        return (Placed.SAME if same else Placed.DIFFERENT), dest
    try:
        return _copy(source, dest, replace)
    except OSError as exc:
        error = StoreFull if exc.errno in (errno.ENOSPC, errno.EDQUOT) else StoreError
        raise error(f"cannot copy into the store: {exc.strerror or exc}") from None


def _copy(source: str, dest: Path, replace: bool) -> tuple[Placed, Path]:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".incoming-", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
        try:
            if replace:
                os.replace(tmp, dest)
                return Placed.COPIED, dest
            os.link(tmp, dest)  # fails rather than overwrite if another copy won the race
        except FileExistsError:
            same = filecmp.cmp(source, dest, shallow=False)
            return (Placed.SAME if same else Placed.DIFFERENT), dest
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return Placed.COPIED, dest
