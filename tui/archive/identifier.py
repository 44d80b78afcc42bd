"""A C-FIND, C-GET or C-MOVE identifier (PS3.4 C.2.2) as SQL over the index: the matching
the mini-PACS (``tui/net/server.py``) answers with. It lives with the schema it queries.

Matching follows PS3.4 C.2.2.2: single values, UID lists, wildcards (case-sensitive, as DICOM
says), date and time ranges, person names through the archive's accent- and case-folding
``name_matches``. Keys the index does not hold are answered empty.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from tui.archive import matching
from tui.archive.index import Archive

log = logging.getLogger(__name__)

_CHARSET = "ISO_IR 192"  # the index holds Unicode: every answer is UTF-8


class IdentifierError(Exception):
    """An identifier the archive cannot process (a malformed value, an index that cannot
    be read)."""

    def __init__(self, comment: str) -> None:
        super().__init__(comment)
        self.comment = comment


class IdentifierMismatch(IdentifierError):
    """An identifier that does not fit the model (a missing or unknown level, no unique
    key to retrieve by)."""


@dataclass(frozen=True)
class Instance:
    """One instance to send, as the index knows it."""

    sop_uid: str
    sop_class: str
    transfer_syntax: str
    path: str
    size: int


_LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")
_FROM = [
    "patient p",
    "patient p JOIN study st USING (patient_pk)",
    "patient p JOIN study st USING (patient_pk) JOIN series se USING (study_pk)",
    "patient p JOIN study st USING (patient_pk) JOIN series se USING (study_pk)"
    " JOIN instance i USING (series_pk)",
]
_ORDER = [
    "p.name_key, p.patient_id",
    "st.study_date DESC, st.study_time DESC, st.study_uid",
    "st.study_uid, se.series_number, se.series_uid",
    "se.series_uid, i.instance_number, i.sop_uid",
]
_UNIQUE = ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


@dataclass(frozen=True)
class _Key:
    """An attribute the index holds: where, and how a request value matches it."""

    level: int  # index into _LEVELS of the level that holds it
    column: str  # SQL expression of the value returned
    kind: str  # uid, text, name, date, time, number, modalities or count (returned only)
    match_column: str = ""  # what to match against, when not ``column``


_KEYS: dict[str, _Key] = {
    "PatientID": _Key(0, "p.patient_id", "text"),
    "PatientName": _Key(0, "p.patient_name", "name", "p.name_key"),
    "PatientBirthDate": _Key(0, "p.birth_date", "date"),
    "PatientSex": _Key(0, "p.sex", "text"),
    "NumberOfPatientRelatedStudies": _Key(
        0, "(SELECT count(*) FROM study x WHERE x.patient_pk = p.patient_pk)", "count"
    ),
    "NumberOfPatientRelatedSeries": _Key(
        0, "(SELECT sum(x.num_series) FROM study x WHERE x.patient_pk = p.patient_pk)", "count"
    ),
    "NumberOfPatientRelatedInstances": _Key(
        0, "(SELECT sum(x.num_instances) FROM study x WHERE x.patient_pk = p.patient_pk)", "count"
    ),
    "StudyInstanceUID": _Key(1, "st.study_uid", "uid"),
    "StudyDate": _Key(1, "st.study_date", "date"),
    "StudyTime": _Key(1, "st.study_time", "time"),
    "AccessionNumber": _Key(1, "st.accession", "text"),
    "StudyDescription": _Key(1, "st.description", "text"),
    "ReferringPhysicianName": _Key(
        1, "st.referring_physician", "name", "fold(st.referring_physician)"
    ),
    "ModalitiesInStudy": _Key(1, "st.modalities", "modalities"),
    "NumberOfStudyRelatedSeries": _Key(1, "st.num_series", "count"),
    "NumberOfStudyRelatedInstances": _Key(1, "st.num_instances", "count"),
    "SeriesInstanceUID": _Key(2, "se.series_uid", "uid"),
    "Modality": _Key(2, "se.modality", "text"),
    "SeriesNumber": _Key(2, "se.series_number", "number"),
    "SeriesDescription": _Key(2, "se.description", "text"),
    "BodyPartExamined": _Key(2, "se.body_part", "text"),
    "NumberOfSeriesRelatedInstances": _Key(2, "se.num_instances", "count"),
    "SOPInstanceUID": _Key(3, "i.sop_uid", "uid"),
    "SOPClassUID": _Key(3, "i.sop_class", "uid"),
    "InstanceNumber": _Key(3, "i.instance_number", "number"),
    "Rows": _Key(3, "i.rows", "number"),
    "Columns": _Key(3, "i.columns", "number"),
    "NumberOfFrames": _Key(3, "i.frames", "number"),
}
# Keys answered without the index.
_SPECIAL = {"QueryRetrieveLevel", "SpecificCharacterSet", "RetrieveAETitle", "InstanceAvailability"}


@dataclass
class _Requested:
    """A key of the request identifier: its element (for tag and VR) and what the index has."""

    tag: int
    vr: str
    keyword: str
    key: _Key | None  # None: not held at this level, answered empty


@dataclass
class Query:
    """A C-FIND, C-GET or C-MOVE identifier turned into SQL over the index."""

    level: str
    requested: list[_Requested]
    clauses: list[str]
    params: list[Any]
    special: set[str]  # keys of _SPECIAL the identifier holds

    @classmethod
    def from_identifier(cls, identifier: Dataset, model: str, retrieve: bool = False) -> Query:
        """Parse ``identifier`` for the ``model`` ('patient' or 'study' root).

        With ``retrieve``, the level's unique key must be given (C-GET and C-MOVE): an
        identifier without it would otherwise match, and send, the whole archive.

        Raises
        ------
        IdentifierError
            For a missing or unknown level, or values that cannot be matched.
        """
        try:
            level = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
            elements = [
                (elem.tag, elem.VR, elem.keyword, elem.value)
                for elem in identifier
                if elem.keyword not in _SPECIAL
            ]
            special = {elem.keyword for elem in identifier if elem.keyword in _SPECIAL}
        except Exception as exc:  # pydicom decodes lazily: a malformed value raises here
            raise IdentifierMismatch("the identifier cannot be decoded") from exc
        if level not in _LEVELS:
            raise IdentifierMismatch(f"unknown QueryRetrieveLevel {level!r}")
        rank = _LEVELS.index(level)
        if rank == 0 and model == "study":
            raise IdentifierMismatch("PATIENT level needs the Patient Root model")
        query = cls(level, [], [], [], special)
        for tag, vr, keyword, value in elements:
            known = _KEYS.get(keyword)
            key = known if known is not None and known.level <= rank else None
            query.requested.append(_Requested(tag, vr, keyword, key))
            if key is not None and vr != "SQ":
                query._match(keyword, key, _values(value))
        unique = _UNIQUE[rank]
        if retrieve and not _has_value(identifier, unique):
            raise IdentifierMismatch(f"a {level} retrieve needs {unique}")
        if retrieve and any(_wild(v) for v in _values(identifier.get(unique))):
            # a wildcard names no instance in particular: it would send the whole archive
            raise IdentifierMismatch(f"{unique} takes UIDs, not wildcards")
        return query

    @property
    def rank(self) -> int:
        return _LEVELS.index(self.level)

    def _match(self, keyword: str, key: _Key, values: list[str]) -> None:
        """Add the clause that matches ``values`` (any of them) against ``key``."""
        values = [v for v in values if v and v != "*"]  # empty and * match everything
        if not values or key.kind == "count":
            return
        column = key.match_column or key.column
        ors: list[str] = []
        params: list[Any] = []
        if key.kind == "uid":  # UID list matching
            ors.append(f"{column} IN ({', '.join('?' * len(values))})")
            params += values
        elif key.kind == "modalities":  # any series of the study with that modality
            for value in values:
                test = "wildcard_matches(?, modality)" if _wild(value) else "modality = ?"
                ors.append(f"st.study_pk IN (SELECT study_pk FROM series WHERE {test})")
                params.append(value)
        elif key.kind == "name":
            for value in values:
                ors.append(f"name_matches(?, {column})")
                params.append(matching.fold(value))
        elif key.kind in ("date", "time"):
            for value in values:
                low, high = _range(keyword, value, key.kind)
                parts = [f"{column} != ''"]
                if low:
                    parts.append(f"{column} >= ?")
                    params.append(low)
                if high:  # a prefix compare: 13 takes in 13:59:59.999
                    parts.append(f"substr({column}, 1, {len(high)}) <= ?")
                    params.append(high)
                ors.append(f"({' AND '.join(parts)})")
        elif key.kind == "number":
            for value in values:
                try:
                    params.append(int(value))
                except ValueError:
                    raise IdentifierError(f"{keyword}: not a number") from None
                ors.append(f"{column} = ?")
        else:  # text: single value or wildcard matching, case-sensitive as DICOM says
            for value in values:
                ors.append(f"wildcard_matches(?, {column})" if _wild(value) else f"{column} = ?")
                params.append(value)
        self.clauses.append(ors[0] if len(ors) == 1 else f"({' OR '.join(ors)})")
        self.params += params

    def _where(self) -> str:
        return f" WHERE {' AND '.join(self.clauses)}" if self.clauses else ""

    def find(self, archive: Archive) -> list[tuple[Any, ...]]:
        """The matching rows: one value per requested key the index holds."""
        columns = [r.key.column for r in self.requested if r.key] or ["1"]
        sql = (
            f"SELECT {', '.join(columns)} FROM {_FROM[self.rank]}{self._where()}"
            f" ORDER BY {_ORDER[self.rank]}"
        )
        return self._run(archive, sql)

    def instances(self, archive: Archive) -> list[Instance]:
        """The instances under the matching entities, in series and instance order."""
        sql = (
            f"SELECT i.sop_uid, i.sop_class, i.transfer_syntax, i.path, i.size FROM {_FROM[3]}"
            f"{self._where()} ORDER BY st.study_uid, se.series_number, se.series_uid,"
            " i.instance_number, i.sop_uid"
        )
        return [Instance(*row) for row in self._run(archive, sql)]

    def _run(self, archive: Archive, sql: str) -> list[tuple[Any, ...]]:
        try:
            return archive.conn.execute(sql, self.params).fetchall()
        except Exception as exc:  # sqlite3.Error, or a matching function's error
            log.warning("index query failed: %s", type(exc).__name__)
            raise IdentifierError("the archive index cannot be read") from exc

    def response(self, row: tuple[Any, ...], aet: str) -> Dataset:
        """A pending C-FIND response: the requested keys only, filled from ``row``."""
        ds = Dataset()
        ds.SpecificCharacterSet = _CHARSET
        ds.QueryRetrieveLevel = self.level
        values = iter(row)
        for requested in self.requested:
            if requested.key is None:
                value: Any = [] if requested.vr == "SQ" else None
            else:
                value = _dicom_value(next(values), requested.key.kind)
            ds.add_new(requested.tag, requested.vr, value)
        if "RetrieveAETitle" in self.special:
            ds.RetrieveAETitle = aet
        if "InstanceAvailability" in self.special:
            ds.InstanceAvailability = "ONLINE"
        return ds


def _values(value: Any) -> list[str]:
    """A request value as strings: several for a backslash list (UID list, modalities)."""
    if value is None:
        return []
    items = list(value) if isinstance(value, MultiValue | list) else [value]
    return [str(item).strip() for item in items if item is not None and str(item).strip()]


def _has_value(identifier: Dataset, keyword: str) -> bool:
    return bool(_values(identifier.get(keyword)))


def _wild(value: str) -> bool:
    return matching.has_wildcards(value)


def _range(keyword: str, value: str, kind: str) -> tuple[str, str]:
    """(low, high) of a date or time value or range; '' for an open end."""
    low, dash, high = value.replace(":", "").partition("-")
    low, high = low.strip(), high.strip()
    if not dash:
        high = low
    digits = 8 if kind == "date" else 0
    for end in (low, high):
        bare = end.split(".")[0]
        if end and not (
            bare.isdigit() and (len(bare) == digits if digits else 2 <= len(bare) <= 6)
        ):
            raise IdentifierError(f"{keyword}: not a {kind} or {kind} range")
    if not low and not high:
        raise IdentifierError(f"{keyword}: an empty range")
    return low, high


def _dicom_value(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "modalities":
        return [m for m in str(value).split("\\") if m]
    if kind in ("number", "count"):
        return int(value)
    return str(value)
