"""Triage of studies: a flag, a priority, reviewed or not, and a short note.

Kept in the archive by StudyInstanceUID (it outlives forgetting and importing again).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import asdict, dataclass
from typing import Any

from tui.archive.index import Archive
from tui.errors import UserError

PRIORITIES = ("none", "low", "high", "urgent")
FIELDS = ("flagged", "priority", "reviewed", "note")


@dataclass(frozen=True)
class Triage:
    flagged: bool = False
    priority: int = 0
    reviewed: bool = False
    note: str = ""

    def marks(self) -> str:
        """A few characters for lists: flag, priority, reviewed."""
        return (
            ("⚑" if self.flagged else " ")
            + ("!" * self.priority).ljust(3)
            + ("✓" if self.reviewed else " ")
        )


def get(archive: Archive, study_uid: str) -> Triage:
    row = archive.conn.execute(
        "SELECT flagged, priority, reviewed, note FROM triage WHERE study_uid = ?", (study_uid,)
    ).fetchone()
    if row is None:
        return Triage()
    return Triage(bool(row[0]), int(row[1]), bool(row[2]), row[3])


def all_of(archive: Archive) -> dict[str, Triage]:
    rows = archive.conn.execute("SELECT study_uid, flagged, priority, reviewed, note FROM triage")
    return {uid: Triage(bool(f), int(p), bool(r), n) for uid, f, p, r, n in rows}


def update(archive: Archive, study_uid: str, **changes: Any) -> Triage:
    """Change some of a study's triage; the rest stays.

    Raises
    ------
    UserError
        If the study is not in the archive, or a value is out of range.
    """
    known = archive.conn.execute("SELECT 1 FROM study WHERE study_uid = ?", (study_uid,))
    if known.fetchone() is None:
        raise UserError(f"no study {study_uid} in the archive")
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise UserError(f"unknown triage fields: {', '.join(sorted(unknown))}")
    current = asdict(get(archive, study_uid)) | changes
    if not 0 <= int(current["priority"]) < len(PRIORITIES):
        raise UserError(f"priority must be 0 to {len(PRIORITIES) - 1} ({', '.join(PRIORITIES)})")
    note = str(current["note"])
    if len(note) > 1000 or "\x00" in note:
        raise UserError("a triage note is at most 1000 characters of text")
    with archive.transaction():
        archive.conn.execute(
            "INSERT OR REPLACE INTO triage VALUES (?, ?, ?, ?, ?, ?)",
            (
                study_uid, int(bool(current["flagged"])), int(current["priority"]),
                int(bool(current["reviewed"])), note, dt.datetime.now(dt.UTC).isoformat(),
            ),
        )  # fmt: skip
    return get(archive, study_uid)


def neighbour_unreviewed(
    archive: Archive, study_uids: list[str], current: str | None, step: int
) -> str | None:
    """The next (``step`` 1) or previous (-1) study in ``study_uids`` not yet reviewed,
    wrapping around; None if every one is reviewed."""
    if not study_uids:
        return None
    triage = all_of(archive)
    start = study_uids.index(current) if current in study_uids else (-1 if step > 0 else 0)
    for offset in range(1, len(study_uids) + 1):
        uid = study_uids[(start + step * offset) % len(study_uids)]
        if not triage.get(uid, Triage()).reviewed:
            return uid
    return None


def export(archive: Archive, fmt: str) -> str:
    """Every triaged study with its patient and study keys, as CSV or JSON."""
    rows = archive.conn.execute(
        "SELECT t.study_uid, p.patient_id, p.patient_name, s.study_date, s.accession,"
        " s.description, t.flagged, t.priority, t.reviewed, t.note, t.updated"
        " FROM triage t LEFT JOIN study s USING (study_uid) LEFT JOIN patient p USING (patient_pk)"
        " ORDER BY t.priority DESC, s.study_date DESC"
    ).fetchall()
    keys = (
        "StudyInstanceUID", "PatientID", "PatientName", "StudyDate", "AccessionNumber",
        "StudyDescription", "flagged", "priority", "reviewed", "note", "updated",
    )  # fmt: skip
    records = [dict(zip(keys, row, strict=True)) for row in rows]
    for record in records:
        record["flagged"], record["reviewed"] = bool(record["flagged"]), bool(record["reviewed"])
    if fmt == "json":
        return json.dumps(records, ensure_ascii=False, indent=1) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=keys)
        writer.writeheader()
        writer.writerows(records)
        return buffer.getvalue()
    raise UserError(f"export triage as csv or json, not {fmt!r}")
