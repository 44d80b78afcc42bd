"""Files only their user may read: the archive's index holds names, IDs and birth dates,
and pacs-tui runs on shared servers. Folders are made 0700 and files 0600 whatever the umask
(the usual 022 leaves them readable by everyone); what is found open to others is closed
again on start, or reported when it is not ours to change.

What must be private is created through here (the archive folder and its index, the log;
config.toml and the de-identification key should be too: :func:`private_file` first, then
write it) and checked on every start (``tui.cli.common.keep_private``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path

_OTHERS = 0o077  # the group's and everyone else's permission bits


def private_folder(path: Path) -> None:
    """Create the folder ``path`` as 0700 if missing (its missing parents as usual)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def private_file(path: Path) -> None:
    """Create ``path`` empty as 0600 if missing (SQLite then gives its ``-wal``, ``-shm``
    and ``-journal`` files the same mode); an existing file is left as it is.

    Raises
    ------
    OSError
        If the file is missing and cannot be created.
    """
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def make_private(paths: Iterable[Path]) -> list[str]:
    """Take the group's and others' access from each of ``paths`` that exists.

    Only our own files are changed: another user's (an archive shared read-only) is
    reported, as is one that cannot be changed (a read-only mount).

    Returns
    -------
    list[str]
        One short reason per path still open to others, e.g. ``"/a/archive (mode 0755, owned
        by uid 1001)"``; empty when all are private.
    """
    open_to_others = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            continue  # missing (or unreachable, so no one else reaches it through us)
        mode = st.st_mode & 0o7777
        if not mode & _OTHERS:
            continue
        if st.st_uid != os.geteuid():
            open_to_others.append(f"{path} (mode {mode:04o}, owned by uid {st.st_uid})")
            continue
        try:
            os.chmod(path, mode & ~_OTHERS)
        except OSError as exc:
            open_to_others.append(f"{path} (mode {mode:04o}: {exc.strerror or exc})")
    return open_to_others
