"""Correcting patient, study and series attributes (``pacs-tui edit``), with a record to undo.

An edit never touches a file. Each instance it changes is written anew into the managed
store, with the same UIDs, under ``store/edited/`` and a name hashed from its SOP Instance
UID and a random token of the edit (never from tag text; no two versions share a name, so an
edit of an edit keeps the version an undo needs). Every file is written first; then one
index transaction records the edit and points the instances at their new files
(:meth:`Archive.supersede`): a full disk or a vanished source leaves the index as it was and
removes what was written. The old files are remembered as duplicates of the new, so that
importing their folder again does not bring the old values back.

Levels (PS3.3 modules): an attribute is edited on every instance of its level's target, and
must be given with a target of that level:

- patient (Patient, Patient Demographic, Clinical Trial Subject): ``--patient ID``, every
  instance of every study filed under that PatientID;
- study (General Study, Patient Study): a StudyInstanceUID;
- series (General Series, General Equipment): a SeriesInstanceUID.

:data:`LEVELS` lists the attributes. Refused, with the reason: UIDs (VR UI), what describes
or holds pixels (group 0028, pixel data, overlays, curves, waveforms), file meta (group 0002),
sequences, private attributes, SpecificCharacterSet (an edit sets it: to ISO_IR 192 when a
new value does not fit the file's character set), Modality (it goes with the SOP class) and
instance-level attributes.

The record (schema v5: ``edit``, ``edit_change``, ``edit_file``) is in the index, never in
logs. An undo points the instances back at the files from before the edit, if no later edit
changed them since, and is recorded as an edit of its own (so an undo can be undone).

pydicom is imported inside the functions that need it: the command line's ``--help`` lists
:data:`LEVELS`, and ``pacs-tui ls`` must start without pydicom.

One module past 600 lines: checking, planning, writing and undoing share the :class:`Plan`
and the record's tables; split, each part would reach into the others' private helpers.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import getpass
import io
import os
import re
import secrets
import shlex
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, MutableSequence, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui.archive.index import Archive, ArchiveError
from tui.archive.store import store_path
from tui.errors import UserError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from tui.archive.header import InstanceRecord

PATIENT, STUDY, SERIES = "patient", "study", "series"
EDITED = "edited"  # the store's folder for edited files
UTF8 = "ISO_IR 192"

_PATIENT = (
    "PatientName", "PatientID", "IssuerOfPatientID", "TypeOfPatientID", "PatientBirthDate",
    "PatientBirthTime", "PatientSex", "PatientSexNeutered", "OtherPatientIDs",
    "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName", "PatientAddress",
    "PatientTelephoneNumbers", "EthnicGroup", "PatientReligiousPreference", "PatientComments",
    "PatientSpeciesDescription", "PatientBreedDescription", "ResponsiblePerson",
    "ResponsiblePersonRole", "ResponsibleOrganization", "CountryOfResidence",
    "RegionOfResidence", "MilitaryRank", "BranchOfService", "ClinicalTrialSponsorName",
    "ClinicalTrialProtocolID", "ClinicalTrialProtocolName", "ClinicalTrialSiteID",
    "ClinicalTrialSiteName", "ClinicalTrialSubjectID", "ClinicalTrialSubjectReadingID",
)  # fmt: skip
_STUDY = (
    "StudyDate", "StudyTime", "AccessionNumber", "StudyID", "StudyDescription",
    "ReferringPhysicianName", "PhysiciansOfRecord", "NameOfPhysiciansReadingStudy",
    "AdmittingDiagnosesDescription", "PatientAge", "PatientSize", "PatientWeight",
    "Occupation", "AdditionalPatientHistory", "MedicalAlerts", "Allergies", "SmokingStatus",
    "PregnancyStatus", "LastMenstrualDate", "AdmissionID",
)  # fmt: skip
_SERIES = (
    "SeriesDescription", "SeriesNumber", "SeriesDate", "SeriesTime", "BodyPartExamined",
    "Laterality", "ProtocolName", "PerformingPhysicianName", "OperatorsName",
    "PatientPosition", "PerformedProcedureStepID", "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime", "PerformedProcedureStepDescription", "Manufacturer",
    "ManufacturerModelName", "InstitutionName", "InstitutionAddress",
    "InstitutionalDepartmentName", "StationName", "DeviceSerialNumber", "SoftwareVersions",
)  # fmt: skip
# Keyword -> the level it is edited at.
LEVELS: dict[str, str] = (
    dict.fromkeys(_PATIENT, PATIENT) | dict.fromkeys(_STUDY, STUDY) | dict.fromkeys(_SERIES, SERIES)
)
# What identifies a patient in the index: what moving a study or merging patients sets.
PATIENT_KEYS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")

_TARGET_HINT = {
    PATIENT: "--patient PatientID",
    STUDY: "a StudyInstanceUID",
    SERIES: "a SeriesInstanceUID",
}
_REFUSED = {
    "SpecificCharacterSet": "SpecificCharacterSet is set by edit itself (to ISO_IR 192 when a"
    " new value does not fit the file's character set)",
    "Modality": "Modality goes with the SOP class (a CT image is CT): it is not a correction",
}
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData", "NumberOfFrames")
# Group 0028 (image pixel description), pixel data, overlays, curves, waveforms.
_PIXEL_GROUPS = (0x0028, 0x7FE0, 0x5400)
_REPEATING = (0x5000, 0x6000)  # curves and overlays: groups xx00-xxFE
_BINARY_VRS = ("OB", "OD", "OF", "OL", "OV", "OW", "UN")
_NUMBER_VRS: dict[str, type] = {
    "US": int, "SS": int, "UL": int, "SL": int, "SV": int, "UV": int, "FL": float, "FD": float,
}  # fmt: skip
_ONE_TEXT_VRS = ("LT", "ST", "UT", "UR")  # a backslash in these is text, not a separator
_CHARSET_VRS = ("SH", "LO", "ST", "LT", "UT", "PN", "UC")  # values in the file's charset
_VR_HINT = {
    "DA": "YYYYMMDD",
    "TM": "HHMMSS.FFFFFF",
    "DT": "YYYYMMDDHHMMSS.FFFFFF&ZZXX",
    "PN": "Family^Given^Middle^Prefix^Suffix",
    "CS": "upper case letters, digits, space and _, up to 16",
    "AS": "nnnD, nnnW, nnnM or nnnY",
    "IS": "an integer",
    "DS": "a decimal number",
}
_ENUMERATED = {"PatientSex": ("M", "F", "O"), "PatientSexNeutered": ("ALTERED", "UNALTERED")}
_TAG = re.compile(r"\(?\s*(?:0x)?([0-9A-Fa-f]{4})\s*,?\s*(?:0x)?([0-9A-Fa-f]{4})\s*\)?")

Progress = Callable[[int, int], None]


class EditError(UserError):
    """An edit that cannot be done as asked; the message says why."""


@dataclass(frozen=True)
class Assignment:
    """One checked ``Keyword=Value``: the value as typed ('' empties the attribute)."""

    keyword: str
    tag: int
    vr: str
    value: str
    level: str

    def element_value(self) -> Any:
        """The value as pydicom takes it for this VR."""
        convert = _NUMBER_VRS.get(self.vr)
        if self.value == "":
            return None if convert else ""
        parts = [self.value] if self.vr in _ONE_TEXT_VRS else self.value.split("\\")
        values = [convert(p) for p in parts] if convert else parts
        return values[0] if len(values) == 1 else values


@dataclass(frozen=True)
class Change:
    """One attribute's old and new value (None: absent) on so many instances."""

    keyword: str
    old: str | None
    new: str | None
    instances: int

    def to_json(self) -> dict[str, Any]:
        return {"keyword": self.keyword, "old": self.old, "new": self.new,
                "instances": self.instances}  # fmt: skip


@dataclass
class Plan:
    """What an edit will do: :func:`apply` does it. ``changes`` is the diff to show first.

    ``scope`` holds every instance the edit files again (SOP Instance UID -> the path indexed
    now): whole studies or a whole series, so that their rows follow the new values.
    ``writes`` are the instances that get a new file; an undo ``restore`` s old files instead.
    """

    level: str
    target: str
    command: str
    changes: list[Change]
    scope: dict[str, str]
    assignments: tuple[Assignment, ...] = ()
    writes: list[str] = field(default_factory=list)
    to_utf8: set[str] = field(default_factory=set)  # writes whose charset becomes ISO_IR 192
    restore: dict[str, str] = field(default_factory=dict)
    undoes: int | None = None

    @property
    def instances(self) -> int:
        """How many instances change."""
        return len(self.restore) if self.undoes is not None else len(self.writes)

    def to_json(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "target": self.target,
            "command": self.command,
            "instances": self.instances,
            "changes": [c.to_json() for c in self.changes],
            "undoes": self.undoes,
        }


@dataclass(frozen=True)
class Entry:
    """One edit of the history."""

    edit_id: int
    at: str
    user: str
    level: str
    target: str
    command: str
    undoes: int | None
    changes: list[Change]
    files: list[tuple[str, str, str]]  # (SOPInstanceUID, previous path, new path)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.edit_id,
            "when": self.at,
            "user": self.user,
            "level": self.level,
            "target": self.target,
            "command": self.command,
            "undoes": self.undoes,
            "instances": len(self.files),
            "changes": [c.to_json() for c in self.changes],
            "files": [
                {"SOPInstanceUID": uid, "previous_path": old, "new_path": new}
                for uid, old, new in self.files
            ],
        }


# -- checking what is asked ----------------------------------------------------------------


def parse_assignment(text: str) -> Assignment:
    """Check ``Keyword=Value`` (or ``(gggg,eeee)=Value``): the attribute may be edited and
    the value is valid for its VR and VM.

    Raises
    ------
    EditError
        Saying why not.
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise EditError(f"--set {text!r}: write Keyword=Value, e.g. PatientName=DOE^JANE")
    tag = _tag(key.strip())
    keyword, vr = _editable(tag)
    # Control characters (an ESC of a terminal sequence) are no text: the long text VRs
    # take line breaks and tabs, nothing else does.
    allowed = "\r\n\t\f" if vr in ("LT", "ST", "UT") else ""
    if any((ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0) and c not in allowed for c in value):
        raise EditError(f"{keyword}: the value holds control characters")
    _check_value(keyword, tag, vr, value)
    return Assignment(keyword, tag, vr, value, LEVELS[keyword])


def refusal(key: str) -> str | None:
    """Why the attribute ``key`` (a keyword or tag) cannot be edited; None if it can."""
    try:
        _editable(_tag(key))
    except EditError as exc:
        return str(exc)
    return None


def _tag(key: str) -> int:
    from pydicom.datadict import keyword_dict, tag_for_keyword

    tag = tag_for_keyword(key)
    if tag is not None:
        return int(tag)
    found = _TAG.fullmatch(key)
    if found:
        return int(found.group(1) + found.group(2), 16)
    close = difflib.get_close_matches(key, list(keyword_dict), n=1, cutoff=0.8)
    hint = f"; did you mean {close[0]}?" if close else ""
    raise EditError(f"{key!r} is not a DICOM keyword or tag{hint}")


def _editable(tag: int) -> tuple[str, str]:
    """(keyword, VR) of an attribute edit may change; EditError with the reason if not."""
    from pydicom.datadict import dictionary_has_tag, dictionary_VR, keyword_for_tag

    group, element = tag >> 16, tag & 0xFFFF
    name = keyword_for_tag(tag) or f"({group:04X},{element:04X})"
    if group == 0x0002:
        raise EditError(
            f"{name} is file meta information (group 0002): it describes the file, not the"
            " patient, and pacs-tui writes it"
        )
    if group % 2:
        raise EditError(
            f"{name} is a private attribute: its meaning is its vendor's, not edit's to change"
        )
    if group in _PIXEL_GROUPS or (group & 0xFF00) in _REPEATING or name in _PIXEL_KEYWORDS:
        raise EditError(
            f"{name} describes or holds the pixel data (or overlays, curves, waveforms):"
            " changed, the pixels would be misread"
        )
    if not dictionary_has_tag(tag):
        raise EditError(f"{name} is not an attribute of the DICOM dictionary")
    vr = dictionary_VR(tag)
    if vr == "UI":
        raise EditError(
            f"{name} is a UID (VR UI): UIDs identify the data to every system that holds a"
            " copy; another UID makes another object, not a correction"
        )
    if vr == "SQ":
        raise EditError(f"{name} is a sequence: edit corrects single values, not sequences")
    if name in _REFUSED:
        raise EditError(_REFUSED[name])
    if vr in _BINARY_VRS or " or " in vr:
        raise EditError(f"{name} holds binary data (VR {vr}): not edited from text")
    if name not in LEVELS:
        raise EditError(
            f"{name} is not a patient, study or series attribute that edit corrects"
            " (pacs-tui edit --help lists them)"
        )
    return name, vr


def _check_value(keyword: str, tag: int, vr: str, value: str) -> None:
    from pydicom import config
    from pydicom.datadict import dictionary_VM
    from pydicom.valuerep import validate_value

    if value == "":
        return
    parts = [value] if vr in _ONE_TEXT_VRS else value.split("\\")
    if dictionary_VM(tag) == "1" and len(parts) > 1:
        raise EditError(f"{keyword} takes one value: {value!r} has a backslash (\\)")
    hint = f" ({_VR_HINT[vr]})" if vr in _VR_HINT else ""
    for part in parts:
        convert = _NUMBER_VRS.get(vr)
        try:
            validate_value(vr, convert(part) if convert else part, config.RAISE)
        except ValueError as exc:
            why = str(exc).split(" Please see")[0]
            raise EditError(f"{keyword}={value!r} is not a valid {vr}{hint}: {why}") from None
        allowed = _ENUMERATED.get(keyword)
        if allowed and part not in allowed:
            raise EditError(f"{keyword} is one of {', '.join(allowed)} (or empty), not {part!r}")


# -- planning --------------------------------------------------------------------------------


def plan_set(
    archive: Archive, target: str | None, assignments: Sequence[str], patient: str | None = None
) -> Plan:
    """Plan ``--set`` on a study or series (``target``, a UID) or a patient (``patient``, a
    PatientID): read every instance's current values for the diff.

    Raises
    ------
    EditError
        If the target is unknown, an assignment refused, or given at another level.
    """
    if not assignments:
        raise EditError("edit what? give --set Keyword=Value")
    checked = [parse_assignment(text) for text in assignments]
    repeated = [k for k, n in Counter(a.keyword for a in checked).items() if n > 1]
    if repeated:
        raise EditError(f"{repeated[0]} is set twice")
    if patient is not None:
        level, uid = PATIENT, patient
        scope = _patient_scope(archive, patient)
    else:
        if not target:
            raise EditError(
                "edit what? give a StudyInstanceUID or SeriesInstanceUID, or --patient ID"
            )
        level, uid = _level_of(archive, target)
        scope = _scope(archive, level, uid)
    for a in checked:
        if a.level != level:
            extra = "; or move the study: --move-to-patient ID" if level == STUDY else ""
            raise EditError(
                f"{a.keyword} is a {a.level} attribute, edited with {_TARGET_HINT[a.level]}:"
                f" {uid} is a {level}{extra}"
            )
    head = ["--patient", uid] if level == PATIENT else [uid]
    command = shlex.join(head + [w for a in checked for w in ("--set", f"{a.keyword}={a.value}")])
    return _plan(archive, level, uid, command, scope, tuple(checked))


def plan_move(archive: Archive, study_uid: str, patient_id: str) -> Plan:
    """Plan filing a study under another patient: its files take that patient's PatientName,
    PatientID, PatientBirthDate and PatientSex as the archive has them.

    Raises
    ------
    EditError
        If the study is unknown, the PatientID absent or ambiguous, or already the study's.
    """
    level, uid = _level_of(archive, study_uid)
    if level != STUDY:
        raise EditError(f"{study_uid} is a series: --move-to-patient moves a whole study")
    values = _patient_values(archive, patient_id)
    (current,) = archive.conn.execute(
        "SELECT patient_id FROM study JOIN patient USING (patient_pk) WHERE study_uid = ?",
        (study_uid,),
    ).fetchone()
    if current == patient_id:  # one patient has this ID: _patient_values said so
        raise EditError(f"study {study_uid} is filed under patient {patient_id} already")
    command = shlex.join([study_uid, "--move-to-patient", patient_id])
    return _plan(archive, STUDY, uid, command, _scope(archive, STUDY, uid), values)


def plan_merge(archive: Archive, from_id: str, into_id: str) -> Plan:
    """Plan moving every study of the patient(s) with PatientID ``from_id`` to the patient
    ``into_id`` (see :func:`plan_move`).

    Raises
    ------
    EditError
        If either patient is absent, ``into_id`` ambiguous, or both the same.
    """
    if from_id == into_id:
        raise EditError(f"--merge-patient and --into name the same PatientID {from_id}")
    values = _patient_values(archive, into_id)
    scope = _patient_scope(archive, from_id)
    command = shlex.join(["--merge-patient", from_id, "--into", into_id])
    return _plan(archive, PATIENT, from_id, command, scope, values)


def _patient_values(archive: Archive, patient_id: str) -> tuple[Assignment, ...]:
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    rows = archive.conn.execute(
        "SELECT patient_name, patient_id, birth_date, sex FROM patient WHERE patient_id = ?",
        (patient_id,),
    ).fetchall()
    if not rows:
        raise EditError(f"no patient with PatientID {patient_id!r} in the archive")
    if len(rows) > 1:
        raise EditError(
            f"PatientID {patient_id!r} names {len(rows)} patients (other names or birth dates):"
            f" make them one first (edit --patient {patient_id} --set PatientName=...)"
        )
    assignments = []
    for keyword, value in zip(PATIENT_KEYS, rows[0], strict=True):
        tag = int(tag_for_keyword(keyword) or 0)
        assignments.append(Assignment(keyword, tag, dictionary_VR(tag), value, PATIENT))
    return tuple(assignments)


def _level_of(archive: Archive, uid: str) -> tuple[str, str]:
    for level, sql in (
        (STUDY, "SELECT 1 FROM study WHERE study_uid = ?"),
        (SERIES, "SELECT 1 FROM series WHERE series_uid = ?"),
    ):
        if archive.conn.execute(sql, (uid,)).fetchone():
            return level, uid
    if archive.indexed_path(uid) is not None:
        raise EditError(
            f"{uid} is an instance: edit corrects a patient, study or series; give its series"
        )
    raise EditError(f"{uid}: no such StudyInstanceUID or SeriesInstanceUID in the archive")


_SCOPES = {
    STUDY: "SELECT sop_uid, path FROM instance JOIN series USING (series_pk)"
    " JOIN study USING (study_pk) WHERE study_uid = ? ORDER BY sop_uid",
    SERIES: "SELECT sop_uid, path FROM instance JOIN series USING (series_pk)"
    " WHERE series_uid = ? ORDER BY sop_uid",
    PATIENT: "SELECT sop_uid, path FROM instance JOIN series USING (series_pk)"
    " JOIN study USING (study_pk) JOIN patient USING (patient_pk) WHERE patient_id = ?"
    " ORDER BY sop_uid",
}


def _scope(archive: Archive, level: str, key: str) -> dict[str, str]:
    return dict(archive.conn.execute(_SCOPES[level], (key,)).fetchall())


def _patient_scope(archive: Archive, patient_id: str) -> dict[str, str]:
    scope = _scope(archive, PATIENT, patient_id)
    if not scope:
        raise EditError(f"no patient with PatientID {patient_id!r} in the archive")
    return scope


def _plan(
    archive: Archive,
    level: str,
    target: str,
    command: str,
    scope: dict[str, str],
    assignments: tuple[Assignment, ...],
) -> Plan:
    """Read each instance's current values: which change, to what, in which charset."""
    from pydicom import dcmread

    from tui.archive.header import truncation

    tags = [a.tag for a in assignments] + [0x00080005]
    diff: Counter[tuple[str, str | None, str | None]] = Counter()
    plan = Plan(level, target, command, [], scope, assignments)
    for uid, path in scope.items():
        try:
            ds = dcmread(path, stop_before_pixels=True, specific_tags=tags, force=True)
        except FileNotFoundError:
            raise _gone(uid, path) from None
        except Exception as exc:  # pydicom raises many types for a broken file
            raise EditError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
        changed = [(a, _text(ds, a.tag)) for a in assignments]
        changed = [(a, old) for a, old in changed if (old or "") != a.value]
        if not changed:
            continue
        short = truncation(path)
        if short is not None:  # pydicom would write what it read: the cut would be hidden
            raise EditError(f"{path} is cut short ({short}): it is not edited")
        plan.writes.append(uid)
        for a, old in changed:
            diff[a.keyword, old, a.value] += 1
        charset = ds.get("SpecificCharacterSet")
        if any(a.vr in _CHARSET_VRS and not _fits(a.value, charset) for a, _ in changed):
            plan.to_utf8.add(uid)
            old_charset = _text(ds, 0x00080005)
            diff["SpecificCharacterSet", old_charset, UTF8] += 1
    order = {a.keyword: n for n, a in enumerate(assignments)}
    plan.changes = [
        Change(keyword, old, new, count)
        for (keyword, old, new), count in sorted(
            diff.items(), key=lambda item: (order.get(item[0][0], len(order)), -item[1])
        )
    ]
    return plan


def _text(ds: Dataset, tag: int) -> str | None:
    """An element's value as text (multiple values joined by backslashes); None if absent."""
    element = ds.get(tag)
    if element is None:
        return None
    value = element.value
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, str):
        return value
    if isinstance(value, MutableSequence | tuple):  # pydicom's MultiValue
        return "\\".join(str(v) for v in value)
    return str(value)


def _fits(value: str, charset: Any) -> bool:
    """Whether ``value`` can be written in the character set ``charset`` (the file's
    SpecificCharacterSet value), as the standard has it: the default repertoire is ASCII."""
    from pydicom.charset import convert_encodings, decode_bytes, encode_string

    if value.isascii():
        return True
    try:
        encodings = convert_encodings(charset)
    except (LookupError, ValueError):
        return False
    if "utf_8" in encodings or "GB18030" in encodings:
        return True
    # pydicom reads the default repertoire as Latin-1, leniently: it holds ASCII only.
    others = [e for e in encodings if e != "iso8859"]
    for char in {c for c in value if not c.isascii()}:
        if not any(_encodes(char, e) for e in others):
            return False
    with warnings.catch_warnings():  # a failure is replaced by '?': found below
        warnings.simplefilter("ignore")
        encoded = encode_string(value, encodings)
    return decode_bytes(encoded, encodings, {0x5C, 0x5E, 0x3D}) == value


def _encodes(char: str, encoding: str) -> bool:
    try:
        char.encode(encoding)
    except (UnicodeError, LookupError):
        return False
    return True


# -- undo and history ------------------------------------------------------------------------


def plan_undo(archive: Archive, edit_id: int) -> Plan:
    """Plan pointing the instances of edit ``edit_id`` back at their files from before it.

    Raises
    ------
    EditError
        If there is no such edit, a later edit changed its instances since (undo that one
        first), its instances are no longer indexed from its files, or a file from before
        it is gone.
    """
    conn = archive.conn
    row = conn.execute("SELECT level, target FROM edit WHERE edit_id = ?", (edit_id,)).fetchone()
    if row is None:
        raise EditError(f"no edit {edit_id} in the history (pacs-tui edit --history lists them)")
    level, target = row
    files = {
        uid: (old, new)
        for uid, old, new in conn.execute(
            "SELECT sop_uid, previous_path, new_path FROM edit_file WHERE edit_id = ?",
            (edit_id,),
        )
    }
    current = dict(
        archive._select_in("SELECT sop_uid, path FROM instance WHERE sop_uid IN ({})", list(files))
    )
    moved = [uid for uid, (_, new) in files.items() if current.get(uid) != new]
    if moved:
        raise EditError(_why_not_undone(archive, edit_id, moved[0], current.get(moved[0])))
    for old, _ in files.values():
        if not os.path.isfile(old):
            raise EditError(f"cannot undo edit {edit_id}: the file from before it is gone: {old}")
    changes = [
        Change(keyword, new, old, count)
        for keyword, old, new, count in conn.execute(
            "SELECT keyword, old, new, instances FROM edit_change WHERE edit_id = ? ORDER BY rowid",
            (edit_id,),
        )
    ]
    scope = dict(
        archive._select_in(
            "SELECT i.sop_uid, i.path FROM instance i JOIN series USING (series_pk)"
            " WHERE study_pk IN (SELECT study_pk FROM series JOIN instance USING (series_pk)"
            " WHERE sop_uid IN ({}))",
            list(files),
        )
    )
    restore = {uid: old for uid, (old, _) in files.items()}
    return Plan(level, target, f"--undo {edit_id}", changes, scope, restore=restore,
                undoes=edit_id)  # fmt: skip


def _why_not_undone(archive: Archive, edit_id: int, uid: str, path: str | None) -> str:
    later = (
        archive.conn.execute(
            "SELECT f.edit_id, e.undoes FROM edit_file f JOIN edit e USING (edit_id)"
            " WHERE f.sop_uid = ? AND f.new_path = ? AND f.edit_id > ?"
            " ORDER BY f.edit_id DESC LIMIT 1",
            (uid, path, edit_id),
        ).fetchone()
        if path is not None
        else None
    )
    if later is None:
        return (
            f"cannot undo edit {edit_id}: its instances are no longer indexed from its files"
            " (forgotten, or imported again since)"
        )
    if later[1] == edit_id:
        return f"edit {edit_id} is undone already (by edit {later[0]})"
    return f"edit {later[0]} changed these instances after edit {edit_id}: undo {later[0]} first"


def undo(archive: Archive, edit_id: int, progress: Progress | None = None) -> int:
    """Undo edit ``edit_id`` (see :func:`plan_undo`); return the undo's own edit number."""
    return apply(archive, plan_undo(archive, edit_id), progress)


def history(archive: Archive) -> list[Entry]:
    """Every edit, newest first."""
    conn = archive.conn
    changes: dict[int, list[Change]] = {}
    for edit_id, keyword, old, new, count in conn.execute(
        "SELECT edit_id, keyword, old, new, instances FROM edit_change ORDER BY rowid"
    ):
        changes.setdefault(edit_id, []).append(Change(keyword, old, new, count))
    files: dict[int, list[tuple[str, str, str]]] = {}
    for edit_id, uid, old, new in conn.execute(
        "SELECT edit_id, sop_uid, previous_path, new_path FROM edit_file ORDER BY sop_uid"
    ):
        files.setdefault(edit_id, []).append((uid, old, new))
    rows = conn.execute(
        "SELECT edit_id, at, os_user, level, target, command, undoes FROM edit"
        " ORDER BY edit_id DESC"
    ).fetchall()
    return [
        Entry(
            edit_id,
            at,
            user,
            level,
            target,
            command,
            undoes,
            changes.get(edit_id, []),
            files.get(edit_id, []),
        )
        for edit_id, at, user, level, target, command, undoes in rows
    ]


# -- doing it ----------------------------------------------------------------------------------


def apply(archive: Archive, plan: Plan, progress: Progress | None = None) -> int:
    """Write the edited files, then record the edit and index them in one transaction.

    Returns the edit's number in the history.

    Raises
    ------
    EditError
        If nothing changes, or a file is gone or unreadable: nothing is changed.
    ArchiveError
        If the disk fills, or another pacs-tui changed these instances meanwhile: nothing is
        changed, and the files written are removed.
    """
    from tui.archive.header import HeaderError, read_record

    archive.require_writable()
    store = archive.store
    if store is None:
        raise EditError("edit needs an archive on disk (not an in-memory one)")
    if not plan.instances:
        raise EditError("nothing to change: the instances have these values already")
    token = secrets.token_hex(8)  # this edit's: its files' names differ from any other's
    written: list[Path] = []
    new_paths: dict[str, str] = dict(plan.restore)
    records: list[InstanceRecord] = []
    total = len(plan.scope)
    writes = set(plan.writes)
    try:
        for done, (uid, path) in enumerate(plan.scope.items(), 1):
            if uid in writes:
                dest = store_path(store / EDITED, f"{uid}\n{token}")
                _write(path, dest, plan.assignments, uid in plan.to_utf8, uid)
                written.append(dest)
                new_paths[uid] = str(dest)
            try:
                records.append(read_record(new_paths.get(uid, path)))
            except FileNotFoundError:
                raise _gone(uid, new_paths.get(uid, path)) from None
            except HeaderError as exc:
                raise EditError(f"cannot read {new_paths.get(uid, path)}: {exc}") from None
            if progress:
                progress(done, total)
        with archive.transaction() as conn:
            edit_id = _record(conn, plan, new_paths)
            archive.supersede(records, plan.scope, f"superseded by edit {edit_id}")
    except OSError as exc:
        _remove(written)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ArchiveError(
                f"archive {archive.root}: disk full while writing the edited files"
                f" ({exc.strerror}): nothing was changed; free space and edit again"
            ) from None
        where = f" ({exc.filename})" if exc.filename else ""
        raise EditError(f"edit failed: {exc.strerror or exc}{where}; nothing was changed") from None
    except BaseException:
        _remove(written)
        raise
    return edit_id


def _record(conn: Any, plan: Plan, new_paths: dict[str, str]) -> int:
    cursor = conn.execute(
        "INSERT INTO edit (at, os_user, level, target, command, undoes) VALUES (?, ?, ?, ?, ?, ?)",
        (
            datetime.now(UTC).isoformat(timespec="seconds"), _user(), plan.level, plan.target,
            plan.command, plan.undoes,
        ),
    )  # fmt: skip
    edit_id = int(cursor.lastrowid)
    conn.executemany(
        "INSERT INTO edit_change VALUES (?, ?, ?, ?, ?)",
        [(edit_id, c.keyword, c.old, c.new, c.instances) for c in plan.changes],
    )
    changed = plan.restore or {uid: "" for uid in plan.writes}
    conn.executemany(
        "INSERT INTO edit_file VALUES (?, ?, ?, ?)",
        [(edit_id, uid, plan.scope[uid], new_paths[uid]) for uid in changed],
    )
    return edit_id


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (a bare container)
        return str(os.getuid())


def _write(
    source: str, dest: Path, assignments: tuple[Assignment, ...], to_utf8: bool, uid: str
) -> None:
    """Write ``source`` with the assignments to ``dest``, whole or not at all."""
    from pydicom import dcmread
    from pydicom.dataelem import DataElement

    try:
        ds = dcmread(source, force=True)
    except FileNotFoundError:
        raise _gone(uid, source) from None
    except OSError:
        raise
    except Exception as exc:  # pydicom raises many types for a broken file
        raise EditError(f"cannot read {source}: {type(exc).__name__}: {exc}") from None
    if str(ds.get("SOPInstanceUID", "")) != uid:
        raise EditError(f"{source} no longer holds the instance the index has for it")
    if to_utf8:
        ds.decode()  # every text value read in the file's character set, before it changes
        ds.SpecificCharacterSet = UTF8
    for a in assignments:
        ds[a.tag] = DataElement(a.tag, a.vr, a.element_value())
    for tag in [t for t in ds.keys() if t.element == 0]:  # noqa: SIM118
        del ds[tag]  # group lengths (retired): their values would be wrong now
    encoded = io.BytesIO()  # pydicom rewraps a write's OSError and loses its errno
    try:
        ds.save_as(encoded)  # as the file was: its transfer syntax, meta and preamble
    except Exception as exc:  # a value pydicom cannot encode in the file's syntax
        raise EditError(f"cannot write {source} edited: {type(exc).__name__}: {exc}") from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".incoming-", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(encoded.getbuffer())
        os.replace(tmp, dest)  # a whole file or none under the store name
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _remove(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _gone(uid: str, path: str) -> EditError:
    return EditError(
        f"the file of instance {uid} is gone: {path}; nothing was changed (import its folder"
        " again, or forget it, to update the index)"
    )
