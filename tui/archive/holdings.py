"""What the archive holds, by UID: for the remote screen's badges ("here", "3/40"), a
retrieve's already-here check and ``send``'s files. Every query here is an index look-up
(the UID columns are unique or indexed), batched where a screen asks about many at once.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from tui.archive.index import Archive
from tui.archive.query import check_uid
from tui.errors import UserError

_UIDS_PER_STATEMENT = 500  # under SQLite's oldest limit of 999 variables per statement


def held_studies(archive: Archive, studies: list[str]) -> dict[str, tuple[int, str]]:
    """How many instances of each of ``studies`` the archive holds, and the Patient ID it
    holds them under, for those it holds at all: one statement per 500 UIDs, so a page of
    results costs one query, not one a row. (A PACS may file one study UID under two
    patients: only the row of the archive's patient is the one held here.)"""
    found: dict[str, tuple[int, str]] = {}
    try:
        for start in range(0, len(studies), _UIDS_PER_STATEMENT):
            chunk = studies[start : start + _UIDS_PER_STATEMENT]
            rows = archive.conn.execute(
                "SELECT study_uid, num_instances, patient_id FROM study JOIN patient"
                f" USING (patient_pk) WHERE study_uid IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
            found.update((uid, (count, patient)) for uid, count, patient in rows)
    except sqlite3.Error as exc:
        raise archive.error(exc) from None
    return found


def held_series(archive: Archive, study: str) -> dict[str, int]:
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


def study_instances(archive: Archive, study: str) -> set[str]:
    """The SOP Instance UIDs the archive holds of ``study`` (none if it has no such study)."""
    try:
        rows = archive.conn.execute(
            "SELECT sop_uid FROM instance JOIN series USING (series_pk)"
            " JOIN study USING (study_pk) WHERE study.study_uid = ?",
            (study,),
        )
        return {uid for (uid,) in rows}
    except sqlite3.Error as exc:
        raise archive.error(exc) from None


def files_of(archive: Archive, uids: list[str]) -> list[tuple[str, str, str]]:
    """(path, SOP class, transfer syntax) of every instance a Study, Series or SOP
    Instance UID names, in series and instance order.

    Raises
    ------
    UserError
        For a value that is not a UID, or a UID the archive does not hold.
    """
    files: list[tuple[str, str, str]] = []
    for uid in uids:
        rows = _named_by(
            archive, uid,
            "SELECT i.path, i.sop_class, i.transfer_syntax FROM instance i"
            " JOIN series s USING (series_pk) JOIN study t USING (study_pk)"
            " WHERE i.sop_uid = ?1 OR s.series_uid = ?1 OR t.study_uid = ?1"
            " ORDER BY s.series_number, i.instance_number",
        )  # fmt: skip
        files += [(str(p), str(c), str(t)) for p, c, t in rows]
    return files


# What an export needs of each instance: where its file is and how it was when indexed
# (a file changed since is refused), and the UIDs its copy must carry.
_EXPORT_COLUMNS = (
    "i.path, i.size, i.mtime_ns, i.sop_uid, i.sop_class, i.transfer_syntax,"
    " s.series_uid, t.study_uid, p.patient_id"
)
_EXPORT_ORDER = (
    "p.name_key, p.patient_id, t.study_date, t.study_uid, s.series_number, s.series_uid,"
    " i.instance_number, i.sop_uid"
)


def export_rows(archive: Archive, uids: list[str]) -> list[dict[str, Any]]:
    """The instances that Study, Series or SOP Instance UIDs name, each once, by patient,
    study, series and instance: dicts with ``path``, ``size``, ``mtime_ns``,
    ``SOPInstanceUID``, ``SOPClassUID``, ``TransferSyntaxUID``, ``SeriesInstanceUID``,
    ``StudyInstanceUID`` and ``PatientID``.

    Raises
    ------
    UserError
        For a value that is not a UID, or a UID the archive does not hold.
    """
    keys = ("path", "size", "mtime_ns", "SOPInstanceUID", "SOPClassUID", "TransferSyntaxUID",
            "SeriesInstanceUID", "StudyInstanceUID", "PatientID")  # fmt: skip
    found: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {}
    for uid in uids:
        rows = _named_by(
            archive, uid,
            f"SELECT {_EXPORT_COLUMNS}, {_EXPORT_ORDER} FROM instance i"
            " JOIN series s USING (series_pk) JOIN study t USING (study_pk)"
            " JOIN patient p USING (patient_pk)"
            " WHERE i.sop_uid = ?1 OR s.series_uid = ?1 OR t.study_uid = ?1",
        )  # fmt: skip
        for row in rows:
            item = dict(zip(keys, row[: len(keys)], strict=True))
            # None sorts first, as SQLite orders NULL: a series without a number leads
            order = tuple((v is not None, v if v is not None else 0) for v in row[len(keys) :])
            found[item["SOPInstanceUID"]] = (order, item)
    return [item for _, item in sorted(found.values(), key=lambda pair: pair[0])]


def _named_by(archive: Archive, uid: str, sql: str) -> list[tuple[Any, ...]]:
    """The rows ``sql`` selects for the Study, Series or SOP Instance UID ``uid`` (``?1``).

    Raises
    ------
    UserError
        For a value that is not a UID, or a UID the archive does not hold.
    """
    try:
        check_uid(uid, "uid")
    except UserError:
        raise UserError(f"{uid!r}: not a UID (no wildcards or spaces)") from None
    try:
        rows = archive.conn.execute(sql, (uid,)).fetchall()
    except sqlite3.Error as exc:
        raise archive.error(exc) from None
    if not rows:
        raise UserError(f"{uid}: no study, series or instance with this UID in the archive")
    return rows
