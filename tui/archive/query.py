"""Listing and search at patient, study, series and instance level.

Rows come back as dicts keyed by DICOM keywords (with ``path`` for files, and
``Number...RelatedImages`` for the instances with pixel data to view), the
shape ``pacs-tui ls --json`` prints. Filters follow DICOM matching: ``*`` and
``?`` wildcards; names ignore case and accents; dates take ranges.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from tui.archive import matching
from tui.archive.index import Archive
from tui.errors import UserError

LEVELS = ("patient", "study", "series", "instance")
_DATE = re.compile(r"^(\d{8})?(-)?(\d{8})?$")
_UID = re.compile(r"^[^\s*?\x00-\x1f\\]+$")


@dataclass
class Filters:
    """Search filters; empty strings match everything."""

    patient_name: str = ""
    patient_id: str = ""
    name_or_id: str = ""  # a word as typed in the app's filter: in the name, or the ID's start
    birth_date: str = ""
    modality: str = ""
    date: str = ""
    accession: str = ""
    description: str = ""
    study: str = ""
    series: str = ""
    flagged: bool = False  # only flagged studies
    unreviewed: bool = False  # only studies not yet reviewed
    priority: int = 0  # only studies of at least this priority
    # One patient exactly, as the index tells patients apart: (ID, name, birth date), matched
    # as stored (an empty ID or a "*" in it is a value, not "any"). The browser opens a
    # patient's row with it.
    patient: tuple[str, str, str] | None = None

    def __post_init__(self) -> None:
        for name in ("date", "birth_date"):
            date_range(getattr(self, name), name.replace("_", "-"))  # validate early
        check_uid(self.study, "study")
        check_uid(self.series, "series")


def date_range(text: str, option: str = "date") -> tuple[str, str] | None:
    """Parse ``YYYYMMDD``, ``YYYYMMDD-YYYYMMDD``, ``-YYYYMMDD`` or ``YYYYMMDD-``.

    Returns inclusive (low, high) bounds, '' for an open end; None for no filter.

    Raises
    ------
    UserError
        For other forms, dates that do not exist and reversed ranges.
    """
    text = text.strip()
    if not text:
        return None
    found = _DATE.match(text)
    if not found or not (found.group(1) or found.group(3)):
        raise UserError(
            f"--{option} {text!r}: expected YYYYMMDD, YYYYMMDD-YYYYMMDD, YYYYMMDD- or -YYYYMMDD"
        )
    low, dash, high = found.groups()
    for day in (low, high):
        if day:
            try:
                dt.datetime.strptime(day, "%Y%m%d")
            except ValueError:
                raise UserError(f"--{option} {text!r}: {day} is not a date") from None
    if not dash:
        return low, low
    if low and high and low > high:
        raise UserError(f"--{option} {text!r}: the range ends before it starts")
    return low or "", high or ""


def check_uid(uid: str, option: str) -> None:
    """Refuse what cannot name one object: wildcards, spaces, control characters.

    Real files carry non-conformant UIDs (hex digits, over 64 characters), so those
    are accepted: they must stay reachable.
    """
    if uid and not _UID.match(uid):
        raise UserError(f"--{option} {uid!r}: not a UID (no wildcards or spaces)")


# Columns per level: (DICOM keyword or 'path', SQL expression).
_PATIENT = [
    ("PatientID", "p.patient_id"),
    ("PatientName", "p.patient_name"),
    ("PatientBirthDate", "p.birth_date"),
    ("PatientSex", "p.sex"),
]
_STUDY = [
    ("StudyInstanceUID", "st.study_uid"),
    ("StudyDate", "st.study_date"),
    ("StudyTime", "st.study_time"),
    ("AccessionNumber", "st.accession"),
    ("StudyDescription", "st.description"),
    ("ReferringPhysicianName", "st.referring_physician"),
    ("ModalitiesInStudy", "st.modalities"),
]
_SERIES = [
    ("SeriesInstanceUID", "se.series_uid"),
    ("Modality", "se.modality"),
    ("SeriesNumber", "se.series_number"),
    ("SeriesDescription", "se.description"),
    ("BodyPartExamined", "se.body_part"),
]
_INSTANCE = [
    ("SOPInstanceUID", "i.sop_uid"),
    ("SOPClassUID", "i.sop_class"),
    ("InstanceNumber", "i.instance_number"),
    ("TransferSyntaxUID", "i.transfer_syntax"),
    ("Rows", "i.rows"),
    ("Columns", "i.columns"),
    ("NumberOfFrames", "i.frames"),
    ("PhotometricInterpretation", "i.photometric"),
    ("ImagePositionPatient", "i.position"),
    ("ImageOrientationPatient", "i.orientation"),
    ("PixelSpacing", "i.pixel_spacing"),
    ("path", "i.path"),
]
_MULTI_NUMBERS = {"ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"}

_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "patient": [
        *_PATIENT,
        ("NumberOfPatientRelatedStudies", "count(*)"),
        ("NumberOfPatientRelatedSeries", "sum(st.num_series)"),
        ("NumberOfPatientRelatedInstances", "sum(st.num_instances)"),
        ("NumberOfPatientRelatedImages", "sum(st.num_images)"),
    ],
    "study": [
        *_PATIENT[:3],  # the birth date too: with ID and name, it tells patients apart
        *_STUDY,
        ("NumberOfStudyRelatedSeries", "st.num_series"),
        ("NumberOfStudyRelatedInstances", "st.num_instances"),
        ("NumberOfStudyRelatedImages", "st.num_images"),
        ("flagged", "coalesce(t.flagged, 0)"),
        ("priority", "coalesce(t.priority, 0)"),
        ("reviewed", "coalesce(t.reviewed, 0)"),
        ("note", "coalesce(t.note, '')"),
    ],
    "series": [
        *_PATIENT[:2],
        *_STUDY[:2],
        *_SERIES,
        ("NumberOfSeriesRelatedInstances", "se.num_instances"),
        ("NumberOfSeriesRelatedImages", "se.num_images"),
    ],
    "instance": [*_PATIENT[:2], _STUDY[0], _SERIES[0], _SERIES[1], *_INSTANCE],
}
_FROM = {
    "patient": "patient p JOIN study st USING (patient_pk)",
    "study": "patient p JOIN study st USING (patient_pk) LEFT JOIN triage t USING (study_uid)",
    "series": "patient p JOIN study st USING (patient_pk) JOIN series se USING (study_pk)",
    "instance": "patient p JOIN study st USING (patient_pk) JOIN series se USING (study_pk)"
    " JOIN instance i USING (series_pk)",
}
_ORDER = {
    "patient": "GROUP BY p.patient_pk ORDER BY p.name_key, p.patient_id",
    "study": "ORDER BY st.study_date DESC, st.study_time DESC, st.study_uid",
    "series": "ORDER BY st.study_date DESC, st.study_uid, se.series_number, se.series_uid",
    "instance": "ORDER BY se.series_uid, i.instance_number, i.sop_uid",
}


def _where(level: str, f: Filters) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []

    def add(clause: str, *values: Any) -> None:
        clauses.append(clause)
        params.extend(values)

    if f.patient is not None:
        add("p.patient_id = ? AND p.patient_name = ? AND p.birth_date = ?", *f.patient)
    if f.patient_name:
        add("name_matches(?, p.name_key)", matching.fold(f.patient_name))
    if f.patient_id:
        add("wildcard_matches(?, p.patient_id)", f.patient_id)
    if f.name_or_id:
        word = f.name_or_id
        name = word if matching.has_wildcards(word) else f"*{word}*"
        patient_id = word if matching.has_wildcards(word) else f"{word}*"
        add(
            "(name_matches(?, p.name_key) OR wildcard_matches(?, lower(p.patient_id)))",
            matching.fold(name),
            patient_id.lower(),
        )
    for option, column in (("date", "st.study_date"), ("birth_date", "p.birth_date")):
        bounds = date_range(getattr(f, option))
        if bounds:
            low, high = bounds
            if low:
                add(f"{column} >= ?", low)
            if high:
                add(f"{column} <= ? AND {column} != ''", high)
    if f.accession:
        add("wildcard_matches(?, st.accession)", f.accession)
    if f.description:
        pattern = f.description if matching.has_wildcards(f.description) else f"*{f.description}*"
        if level in ("series", "instance"):
            add("wildcard_matches(?, lower(se.description))", pattern.lower())
        else:  # a study matches by its own description or any of its series'
            add(
                "(wildcard_matches(?, lower(st.description)) OR st.study_pk IN"
                " (SELECT study_pk FROM series WHERE wildcard_matches(?, lower(description))))",
                pattern.lower(),
                pattern.lower(),
            )
    if f.study:
        add("st.study_uid = ?", f.study)
    if f.series:
        if level in ("patient", "study"):
            add("st.study_pk IN (SELECT study_pk FROM series WHERE series_uid = ?)", f.series)
        else:
            add("se.series_uid = ?", f.series)
    if f.flagged:
        add("st.study_uid IN (SELECT study_uid FROM triage WHERE flagged = 1)")
    if f.unreviewed:
        add("st.study_uid NOT IN (SELECT study_uid FROM triage WHERE reviewed = 1)")
    if f.priority:
        add("st.study_uid IN (SELECT study_uid FROM triage WHERE priority >= ?)", f.priority)
    if f.modality:
        wanted = [m.strip().upper() for m in f.modality.split(",") if m.strip()]
        marks = ", ".join("?" * len(wanted))
        if level in ("patient", "study"):
            add(
                f"st.study_pk IN (SELECT study_pk FROM series WHERE modality IN ({marks}))",
                *wanted,
            )
        else:
            add(f"se.modality IN ({marks})", *wanted)
    return clauses, params


def search(
    archive: Archive, level: str, filters: Filters | None = None, recent_first: bool = False
) -> list[dict[str, Any]]:
    """Rows at ``level`` matching ``filters``, keyed by DICOM keywords.

    Patients come by name, or with ``recent_first`` by their latest study date.
    """
    if level not in LEVELS:
        raise UserError(f"unknown level {level!r}: choose one of {', '.join(LEVELS)}")
    columns = _COLUMNS[level]
    clauses, params = _where(level, filters or Filters())
    order = _ORDER[level]
    if recent_first and level == "patient":
        order = "GROUP BY p.patient_pk ORDER BY max(st.study_date) DESC, p.name_key"
    sql = (
        f"SELECT {', '.join(expr for _, expr in columns)} FROM {_FROM[level]}"
        f" {'WHERE ' + ' AND '.join(clauses) if clauses else ''} {order}"
    )
    try:
        rows = archive.conn.execute(sql, params).fetchall()
    except Exception as exc:
        raise archive.error(exc) from None  # type: ignore[arg-type]
    keys = [key for key, _ in columns]
    out = []
    for row in rows:
        item = dict(zip(keys, row, strict=True))
        for key in _MULTI_NUMBERS.intersection(item):
            item[key] = [float(v) for v in item[key].split("\\")] if item[key] else None
        for key in ("flagged", "reviewed"):
            if key in item:
                item[key] = bool(item[key])
        if "ModalitiesInStudy" in item:
            item["ModalitiesInStudy"] = [m for m in item["ModalitiesInStudy"].split("\\") if m]
        out.append(item)
    return out


def series_instances(archive: Archive, series_uid: str) -> list[dict[str, Any]]:
    """Every indexed column of a series' instances (what the renderer reads pixels with).

    Raises
    ------
    UserError
        If the series is not in the archive.
    """
    check_uid(series_uid, "series")
    cursor = archive.conn.execute(
        "SELECT i.* FROM instance i JOIN series USING (series_pk) WHERE series_uid = ?"
        " ORDER BY i.instance_number, i.sop_uid",
        (series_uid,),
    )
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, row, strict=True)) for row in cursor]
    if not rows:
        raise UserError(f"no series {series_uid} in the archive")
    return rows
