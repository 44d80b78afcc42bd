"""What the local archive holds already of what a PACS answered: the remote screen's badges."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tui.archive.index import Archive

_UIDS_PER_STATEMENT = 500  # under SQLite's oldest limit of 999 variables per statement


def local_studies(archive: Archive, studies: list[str]) -> dict[str, int]:
    """How many instances of each of ``studies`` the archive holds, for those it holds at all:
    one statement per 500 UIDs (an index look-up each: ``study_uid`` is unique), so a batch of
    results costs one query, not one per row."""
    found: dict[str, int] = {}
    try:
        for start in range(0, len(studies), _UIDS_PER_STATEMENT):
            chunk = studies[start : start + _UIDS_PER_STATEMENT]
            found.update(
                archive.conn.execute(
                    "SELECT study_uid, num_instances FROM study"
                    f" WHERE study_uid IN ({', '.join('?' * len(chunk))})",
                    chunk,
                )
            )
    except sqlite3.Error as exc:
        raise archive.error(exc) from None
    return found


def local_series(archive: Archive, study: str) -> dict[str, int]:
    """How many instances of each series of ``study`` the archive holds."""
    try:
        return dict(
            archive.conn.execute(
                "SELECT se.series_uid, se.num_instances FROM series se"
                " JOIN study st USING (study_pk) WHERE st.study_uid = ?",
                (study,),
            )
        )
    except sqlite3.Error as exc:
        raise archive.error(exc) from None
