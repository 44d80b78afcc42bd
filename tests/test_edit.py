"""``pacs-tui edit``: corrections written as new files in the store, the originals untouched,
every edit in the index's history and undone from it; moving a study, merging patients;
refusals with their reason. Real files (../shared/dicom) and synthetic series, through the
command line."""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

from tests.conftest import cli_json, copy_tree, run_cli, tmpfs
from tests.synthetic import AXIAL, write_series
from tui.archive import edit
from tui.archive.edit import LEVELS

TOSHIBA_ID = "FA191122"  # the one patient of neurolabusc_dcm_qa_toshiba (40 instances)


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def _edited_files(archive: Path) -> list[Path]:
    return [p for p in (archive / "store" / "edited").rglob("*") if p.is_file()]


def _toshiba(shared: Path, tmp_path: Path, archive: Path) -> Path:
    source = copy_tree(shared / "neurolabusc_dcm_qa_toshiba", tmp_path / "toshiba")
    run_cli("import", str(source), archive=archive)
    return source


def _study(folder: Path, patient: tuple[str, str, str], series: int = 1, count: int = 3) -> str:
    """A small synthetic study of ``series`` series for ``patient`` (name, ID, birth date);
    returns its StudyInstanceUID."""
    study_uid = generate_uid()
    for n in range(series):
        write_series(folder / f"s{n}", AXIAL, size=8, count=count)
    for path in folder.rglob("*.dcm"):
        ds = dcmread(path)
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = patient
        ds.PatientSex = "F"
        ds.StudyInstanceUID = study_uid
        ds.save_as(path)
    return study_uid


def _ls(archive: Path, level: str = "study") -> list[dict[str, Any]]:
    return cli_json("ls", "--level", level, archive=archive)


def _history(archive: Path) -> list[dict[str, Any]]:
    return cli_json("edit", "--history", archive=archive)


def _tags(archive: Path, sop_uid: str) -> dict[str, Any]:
    return cli_json("tags", sop_uid, archive=archive)


def _value(tags: dict[str, Any], tag: str) -> Any:
    value = tags[tag].get("Value", [None])[0]
    return value.get("Alphabetic") if isinstance(value, dict) else value


def _instances(archive: Path, series_uid: str) -> dict[str, str]:
    """SOP Instance UID -> the indexed file."""
    rows = cli_json("ls", "--level", "instance", "--series", series_uid, archive=archive)
    return {row["SOPInstanceUID"]: row["path"] for row in rows}


def _sop_uids(archive: Path, series_uid: str) -> list[str]:
    return sorted(_instances(archive, series_uid))


def _index(archive: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The index's rows that edits change, to compare before and after."""
    with sqlite3.connect(archive / "index.sqlite") as conn:
        return {
            table: sorted(conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in ("patient", "study", "series", "instance", "seen_file", "edit")
        }


def _one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("pacs-tui: error: ") and "Traceback" not in result.stderr
    for word in words:
        assert word in line, line
    return line


# -- setting values --------------------------------------------------------------------------


def test_a_dry_run_shows_the_diff_and_writes_nothing(
    shared: Path, tmp_path: Path, archive_dir: Path
) -> None:
    _toshiba(shared, tmp_path, archive_dir)
    before = _index(archive_dir)
    args = ["edit", "--patient", TOSHIBA_ID, "--set", "PatientName=DOE^JANE", "--dry-run"]
    text = run_cli(*args, "--set", "PatientID=12345", archive=archive_dir).stdout
    assert f"patient {TOSHIBA_ID}: 40 instance(s)" in text
    assert "PatientName: 'FA191122' -> 'DOE^JANE' (40)" in text
    assert "PatientID: 'FA191122' -> '12345' (40)" in text
    assert "dry run: nothing written" in text
    plan = cli_json(*args, archive=archive_dir)
    assert plan["dry_run"] and plan["edit"] is None and plan["instances"] == 40
    assert plan["changes"] == [
        {"keyword": "PatientName", "old": TOSHIBA_ID, "new": "DOE^JANE", "instances": 40}
    ]
    assert _index(archive_dir) == before
    assert not (archive_dir / "store").exists() or not _edited_files(archive_dir)


def test_setting_patient_name_and_id_writes_new_files_and_leaves_the_originals(
    shared: Path, tmp_path: Path, archive_dir: Path
) -> None:
    source = _toshiba(shared, tmp_path, archive_dir)
    before = _digests(source)
    [series] = _ls(archive_dir, "series")
    sop_uid = _sop_uids(archive_dir, series["SeriesInstanceUID"])[0]
    assert _instances(archive_dir, series["SeriesInstanceUID"])[sop_uid].startswith(str(source))

    done = cli_json(
        "edit", "--patient", TOSHIBA_ID, "--set", "PatientName=DOE^JANE",
        "--set", "PatientID=12345", archive=archive_dir,
    )  # fmt: skip
    assert done["edit"] == 1 and not done["dry_run"] and done["instances"] == 40
    assert _digests(source) == before  # the originals' bytes
    edited = _edited_files(archive_dir)
    assert len(edited) == 40
    # The index, ls and tags follow the new values; the old patient is gone.
    [patient] = _ls(archive_dir, "patient")
    assert (patient["PatientName"], patient["PatientID"]) == ("DOE^JANE", "12345")
    assert _ls(archive_dir)[0]["NumberOfStudyRelatedInstances"] == 40
    tags = _tags(archive_dir, sop_uid)
    assert _value(tags, "00100010") == "DOE^JANE" and _value(tags, "00100020") == "12345"
    assert _value(tags, "00080018") == sop_uid  # the same UIDs
    indexed = _instances(archive_dir, series["SeriesInstanceUID"])
    assert set(indexed.values()) == {str(p) for p in edited}
    # Nothing but the two values changed in a file: same UIDs, same pixels.
    new = dcmread(edited[0])
    old = dcmread(
        next(p for p in source.rglob("*.dcm") if dcmread(p).SOPInstanceUID == new.SOPInstanceUID)
    )
    assert new.PixelData == old.PixelData
    assert new.file_meta.TransferSyntaxUID == old.file_meta.TransferSyntaxUID
    differ = {e.keyword for e in old if e.tag.element and new.get(e.tag) != e}
    assert differ == {"PatientName", "PatientID"}

    [entry] = _history(archive_dir)
    assert entry["id"] == 1 and entry["user"] == getpass.getuser() and entry["level"] == "patient"
    assert entry["target"] == TOSHIBA_ID and entry["undoes"] is None
    assert (
        entry["command"]
        == f"--patient {TOSHIBA_ID} --set 'PatientName=DOE^JANE' --set PatientID=12345"
    )
    assert entry["when"].endswith("+00:00")
    assert {c["keyword"]: (c["old"], c["new"], c["instances"]) for c in entry["changes"]} == {
        "PatientName": (TOSHIBA_ID, "DOE^JANE", 40), "PatientID": (TOSHIBA_ID, "12345", 40),
    }  # fmt: skip
    assert {f["previous_path"] for f in entry["files"]} == set(before) - {
        p for p in before if not p.endswith(".dcm")
    }
    assert {f["new_path"] for f in entry["files"]} == {str(p) for p in edited}
    text = run_cli("edit", "--history", archive=archive_dir).stdout
    assert "PatientName: 'FA191122' -> 'DOE^JANE' (40)" in text


def test_undo_brings_back_the_old_values_and_is_recorded(
    shared: Path, tmp_path: Path, archive_dir: Path
) -> None:
    source = _toshiba(shared, tmp_path, archive_dir)
    before = _digests(source)
    [study] = _ls(archive_dir)
    study_uid = study["StudyInstanceUID"]
    [series] = _ls(archive_dir, "series")
    sop_uid = _sop_uids(archive_dir, series["SeriesInstanceUID"])[0]
    index = _index(archive_dir)
    run_cli("edit", "--patient", TOSHIBA_ID, "--set", "PatientName=DOE^JANE", archive=archive_dir)
    run_cli("edit", study_uid, "--set", "StudyDescription=CT CHEST", archive=archive_dir)
    assert _ls(archive_dir)[0]["StudyDescription"] == "CT CHEST"
    first = _edited_files(archive_dir)

    # Edit 2 changed the instances after edit 1: edit 1 waits for it.
    _one_line_error(
        run_cli("edit", "--undo", "1", archive=archive_dir, check=False), "undo 2 first"
    )
    run_cli("edit", "--undo", "2", archive=archive_dir)
    assert _ls(archive_dir)[0]["StudyDescription"] == "MRI OPTIMIZATION"
    assert _ls(archive_dir)[0]["PatientName"] == "DOE^JANE"
    _one_line_error(
        run_cli("edit", "--undo", "2", archive=archive_dir, check=False), "undone already"
    )
    run_cli("edit", "--undo", "1", archive=archive_dir)
    [patient] = _ls(archive_dir, "patient")
    assert patient["PatientName"] == TOSHIBA_ID
    tags = _tags(archive_dir, sop_uid)
    assert _value(tags, "00100010") == TOSHIBA_ID
    assert _value(tags, "00081030") == "MRI OPTIMIZATION"
    after = _index(archive_dir)
    for table in ("patient", "series"):  # the same rows (keys aside) as before the edits
        assert [r[1:] for r in after[table]] == [r[1:] for r in index[table]]
    assert sorted(r[2] for r in after["instance"]) == sorted(r[2] for r in index["instance"])
    assert {r[22] for r in after["instance"]} == {r[22] for r in index["instance"]}  # paths

    history = _history(archive_dir)
    assert [(e["id"], e["undoes"]) for e in history] == [(4, 1), (3, 2), (2, None), (1, None)]
    assert history[0]["command"] == "--undo 1"
    assert history[0]["changes"][0] == {
        "keyword": "PatientName", "old": "DOE^JANE", "new": TOSHIBA_ID, "instances": 40
    }  # fmt: skip
    # Every version is kept (an undo can be undone): no edited file was removed.
    assert set(first) <= set(_edited_files(archive_dir))
    assert _digests(source) == before
    _one_line_error(run_cli("edit", "--undo", "9", archive=archive_dir, check=False), "no edit 9")


def test_an_edit_of_an_edit_keeps_the_version_its_undo_needs(
    shared: Path, tmp_path: Path, archive_dir: Path
) -> None:
    _toshiba(shared, tmp_path, archive_dir)
    [series] = _ls(archive_dir, "series")
    uid = series["SeriesInstanceUID"]
    run_cli("edit", uid, "--set", "SeriesDescription=first", archive=archive_dir)
    first = {p: p.read_bytes() for p in _edited_files(archive_dir)}
    run_cli("edit", uid, "--set", "SeriesDescription=second", archive=archive_dir)
    assert len(_edited_files(archive_dir)) == 80
    assert all(p.read_bytes() == data for p, data in first.items())
    run_cli("edit", "--undo", "2", archive=archive_dir)
    assert _ls(archive_dir, "series")[0]["SeriesDescription"] == "first"
    [entry] = [e for e in _history(archive_dir) if e["id"] == 3]
    assert {f["new_path"] for f in entry["files"]} == {str(p) for p in first}


def test_reimporting_the_original_folder_does_not_bring_the_old_values_back(
    shared: Path, tmp_path: Path, archive_dir: Path
) -> None:
    source = _toshiba(shared, tmp_path, archive_dir)
    run_cli("edit", "--patient", TOSHIBA_ID, "--set", "PatientName=DOE^JANE", archive=archive_dir)
    again = cli_json("import", str(source), archive=archive_dir)
    assert again["new"] == again["updated"] == 0
    assert [p["PatientName"] for p in _ls(archive_dir, "patient")] == ["DOE^JANE"]
    duplicates = cli_json("ls", "--duplicates", archive=archive_dir)
    assert len(duplicates) == 40
    assert all(d["path"].startswith(str(source)) for d in duplicates)
    assert all("/store/edited/" in d["indexed_path"] for d in duplicates)
    # A changed original is read again: it is a duplicate of the edited file, not indexed.
    one = next(source.rglob("*.dcm"))
    one.touch()
    again = cli_json("import", str(source), archive=archive_dir)
    assert again["new"] == again["updated"] == 0 and again["duplicates"] == 1
    assert [p["PatientName"] for p in _ls(archive_dir, "patient")] == ["DOE^JANE"]
    # Forgotten, the study comes back from its original folder, with the files' own values.
    [study] = _ls(archive_dir)
    run_cli("forget", "--study", study["StudyInstanceUID"], "--yes", archive=archive_dir)
    assert not _edited_files(archive_dir)  # the managed copies went with it
    again = cli_json("import", str(source), archive=archive_dir)
    assert again["new"] == 40
    assert [p["PatientName"] for p in _ls(archive_dir, "patient")] == [TOSHIBA_ID]


def test_a_series_attribute_changes_that_series_only(tmp_path: Path, archive_dir: Path) -> None:
    _study(tmp_path / "study", ("SMITH^ANN", "P1", "19700101"), series=2)
    run_cli("import", str(tmp_path / "study"), archive=archive_dir)
    first, second = _ls(archive_dir, "series")
    done = cli_json(
        "edit", first["SeriesInstanceUID"], "--set", "SeriesDescription=AXIAL T1",
        "--set", "SeriesNumber=7", "--set", "BodyPartExamined=HEAD", archive=archive_dir,
    )  # fmt: skip
    assert done["instances"] == 3 and done["level"] == "series"
    assert {c["keyword"]: c["old"] for c in done["changes"]} == {
        "SeriesDescription": None, "SeriesNumber": "1", "BodyPartExamined": None,
    }  # fmt: skip
    rows = {s["SeriesInstanceUID"]: s for s in _ls(archive_dir, "series")}
    edited = rows[first["SeriesInstanceUID"]]
    assert (edited["SeriesDescription"], edited["SeriesNumber"], edited["BodyPartExamined"]) == (
        "AXIAL T1", 7, "HEAD",
    )  # fmt: skip
    assert rows[second["SeriesInstanceUID"]] == second
    assert _ls(archive_dir)[0]["NumberOfStudyRelatedInstances"] == 6
    # The same values again: nothing to change, nothing recorded.
    same = run_cli(
        "edit", first["SeriesInstanceUID"], "--set", "SeriesNumber=7", archive=archive_dir
    )
    assert "nothing to change" in same.stdout and len(_history(archive_dir)) == 1


def test_originals_in_the_managed_store_are_kept_too(
    shared: Path, tmp_path: Path, archive_dir: Path
) -> None:
    source = copy_tree(shared / "neurolabusc_dcm_qa_toshiba", tmp_path / "toshiba")
    run_cli("import", "--copy", str(source), archive=archive_dir)
    stored = {p: h for p, h in _digests(archive_dir / "store").items()}
    [study] = _ls(archive_dir)
    run_cli("edit", study["StudyInstanceUID"], "--set", "AccessionNumber=A77", archive=archive_dir)
    assert _ls(archive_dir)[0]["AccessionNumber"] == "A77"
    now = _digests(archive_dir / "store")
    assert {p: now[p] for p in stored} == stored  # every stored original, byte for byte
    # the same files copied in again from elsewhere: duplicates of the edited instances,
    # and the stored originals the undo needs stay
    again = copy_tree(shared / "neurolabusc_dcm_qa_toshiba", tmp_path / "again")
    run_cli("import", "--copy", str(again), archive=archive_dir)
    now = _digests(archive_dir / "store")
    assert {p: now[p] for p in stored} == stored
    run_cli("edit", "--undo", "1", archive=archive_dir)
    assert _ls(archive_dir)[0]["AccessionNumber"] == ""
    [entry] = [e for e in _history(archive_dir) if e["id"] == 1]
    assert {f["previous_path"] for f in entry["files"]} == set(stored)


# -- moving and merging ----------------------------------------------------------------------


def test_move_a_study_to_another_patient_and_back(tmp_path: Path, archive_dir: Path) -> None:
    wrong = _study(tmp_path / "a", ("SMITH^ANN", "P1", "19700101"))
    right = _study(tmp_path / "b", ("JONES^BOB", "P2", "19600505"))
    run_cli("import", str(tmp_path), archive=archive_dir)
    done = cli_json("edit", wrong, "--move-to-patient", "P2", archive=archive_dir)
    assert done["instances"] == 3 and done["level"] == "study"
    assert {c["keyword"]: (c["old"], c["new"]) for c in done["changes"]} == {
        "PatientName": ("SMITH^ANN", "JONES^BOB"), "PatientID": ("P1", "P2"),
        "PatientBirthDate": ("19700101", "19600505"),
    }  # fmt: skip
    [patient] = _ls(archive_dir, "patient")  # P1 had no other study: gone
    assert (patient["PatientID"], patient["PatientName"]) == ("P2", "JONES^BOB")
    assert {s["StudyInstanceUID"] for s in _ls(archive_dir)} == {wrong, right}
    assert {s["PatientID"] for s in _ls(archive_dir)} == {"P2"}
    _one_line_error(
        run_cli("edit", wrong, "--move-to-patient", "P2", archive=archive_dir, check=False),
        "already",
    )
    run_cli("edit", "--undo", "1", archive=archive_dir)
    assert {p["PatientID"] for p in _ls(archive_dir, "patient")} == {"P1", "P2"}
    assert {s["StudyInstanceUID"]: s["PatientID"] for s in _ls(archive_dir)} == {
        wrong: "P1", right: "P2"
    }  # fmt: skip


def test_a_move_to_an_absent_or_ambiguous_patient_is_refused(
    tmp_path: Path, archive_dir: Path
) -> None:
    study = _study(tmp_path / "a", ("SMITH^ANN", "P1", "19700101"))
    _study(tmp_path / "b", ("JONES^BOB", "P2", "19600505"))
    _study(tmp_path / "c", ("JONES^ROBERT", "P2", "19600505"))  # one ID, two patients
    run_cli("import", str(tmp_path), archive=archive_dir)
    before = _index(archive_dir)
    absent = run_cli("edit", study, "--move-to-patient", "P9", archive=archive_dir, check=False)
    _one_line_error(absent, "no patient with PatientID 'P9'")
    twice = run_cli("edit", study, "--move-to-patient", "P2", archive=archive_dir, check=False)
    _one_line_error(twice, "names 2 patients")
    merge = run_cli(
        "edit", "--merge-patient", "P1", "--into", "P2", archive=archive_dir, check=False
    )
    _one_line_error(merge, "names 2 patients")
    assert _index(archive_dir) == before


def test_merge_two_patients(tmp_path: Path, archive_dir: Path) -> None:
    first = _study(tmp_path / "a", ("SMITH^ANN", "P1", "19700101"))
    second = _study(tmp_path / "b", ("SMITH^ANN", "P1", "19700101"))
    third = _study(tmp_path / "c", ("SMITH^ANNE", "P7", "19700101"))
    run_cli("import", str(tmp_path), archive=archive_dir)
    done = cli_json("edit", "--merge-patient", "P1", "--into", "P7", archive=archive_dir)
    assert done["instances"] == 6 and done["level"] == "patient" and done["target"] == "P1"
    [patient] = _ls(archive_dir, "patient")
    assert (patient["PatientID"], patient["PatientName"]) == ("P7", "SMITH^ANNE")
    assert {s["StudyInstanceUID"] for s in _ls(archive_dir)} == {first, second, third}
    [entry] = _history(archive_dir)
    assert entry["command"] == "--merge-patient P1 --into P7" and len(entry["files"]) == 6
    _one_line_error(
        run_cli("edit", "--merge-patient", "P1", "--into", "P7", archive=archive_dir, check=False),
        "no patient with PatientID 'P1'",
    )
    run_cli("edit", "--undo", "1", archive=archive_dir)
    assert {p["PatientID"] for p in _ls(archive_dir, "patient")} == {"P1", "P7"}


# -- refusals ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_patient(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An archive of one small study (patient P1), shared by tests that must change nothing."""
    folder = tmp_path_factory.mktemp("one-patient")
    _study(folder / "a", ("SMITH^ANN", "P1", "19700101"))
    run_cli("import", str(folder / "a"), archive=folder / "archive")
    return folder / "archive"


_REFUSALS = [
    ("StudyInstanceUID=1.2.3", "is a UID"),
    ("SOPInstanceUID=1.2.3", "is a UID"),
    ("FrameOfReferenceUID=1.2.3", "is a UID"),
    ("Rows=8", "describes or holds the pixel data"),
    ("BitsAllocated=8", "describes or holds the pixel data"),
    ("PhotometricInterpretation=RGB", "describes or holds the pixel data"),
    ("NumberOfFrames=2", "describes or holds the pixel data"),
    ("PixelData=x", "describes or holds the pixel data"),
    ("(6000,3000)=x", "describes or holds the pixel data"),
    ("TransferSyntaxUID=1.2.840.10008.1.2", "file meta information"),
    ("(0002,0013)=X", "file meta information"),
    ("ReferencedImageSequence=x", "is a sequence"),
    ("(0009,1001)=x", "private attribute"),
    ("SpecificCharacterSet=ISO_IR 100", "set by edit itself"),
    ("Modality=MR", "goes with the SOP class"),
    ("InstanceNumber=3", "not a patient, study or series attribute"),
    ("PatientNmae=X", "did you mean PatientName?"),
    ("PatientName", "write Keyword=Value"),
    ("PatientBirthDate=1970-01-01", "not a valid DA (YYYYMMDD)"),
    ("PatientSex=X", "one of M, F, O"),
    ("PatientName=A\\B", "takes one value"),
    ("PatientID=" + "1" * 65, "exceeds the maximum length"),
    ("PatientName=Evil\x1b[31m^Red", "holds control characters"),
    ("StudyDescription=two\nlines", "holds control characters"),
]


@pytest.mark.parametrize(("assignment", "reason"), _REFUSALS)
def test_an_attribute_or_value_that_cannot_be_edited_is_refused_with_the_reason(
    assignment: str, reason: str
) -> None:
    with pytest.raises(edit.EditError, match=re.escape(reason)):
        edit.parse_assignment(assignment)


@pytest.mark.parametrize(
    ("assignment", "reason"),
    [
        ("StudyInstanceUID=1.2.3", "is a UID"),
        ("BitsAllocated=8", "describes or holds the pixel data"),
        ("TransferSyntaxUID=1.2.840.10008.1.2", "file meta information"),
        ("(0009,1001)=x", "private attribute"),
        ("ReferencedImageSequence=x", "is a sequence"),
        ("SeriesDescription=x", "series attribute, edited with a SeriesInstanceUID"),
        ("StudyDescription=x", "study attribute, edited with a StudyInstanceUID"),
        ("PatientBirthDate=1970-01-01", "not a valid DA (YYYYMMDD)"),
    ],
)
def test_refused_on_the_command_line_in_one_line_and_nothing_changed(
    one_patient: Path, assignment: str, reason: str
) -> None:
    archive_dir = one_patient
    before = _index(archive_dir)
    result = run_cli(
        "edit", "--patient", "P1", "--set", assignment, archive=archive_dir, check=False
    )
    _one_line_error(result, reason)
    assert _index(archive_dir) == before
    assert not (archive_dir / "store").exists()


def test_targets_that_are_not_a_study_or_series_are_refused(
    tmp_path: Path, archive_dir: Path
) -> None:
    study = _study(tmp_path / "a", ("SMITH^ANN", "P1", "19700101"))
    run_cli("import", str(tmp_path / "a"), archive=archive_dir)
    [series] = _ls(archive_dir, "series")
    sop_uid = _sop_uids(archive_dir, series["SeriesInstanceUID"])[0]
    cases = [
        ((sop_uid, "--set", "SeriesDescription=x"), "is an instance"),
        (("1.2.3.4", "--set", "SeriesDescription=x"), "no such StudyInstanceUID"),
        ((study, "--set", "PatientName=X"), "--move-to-patient"),
        (("--patient", "P9", "--set", "PatientName=X"), "no patient with PatientID 'P9'"),
        ((study,), "edit what?"),
        ((study, "--set", "StudyID=1", "--history"), "edit what?"),
        (("--merge-patient", "P1"), "go together"),
    ]
    for args, reason in cases:
        _one_line_error(run_cli("edit", *args, archive=archive_dir, check=False), reason)


def test_every_listed_attribute_is_editable() -> None:
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    for keyword in LEVELS:
        assert tag_for_keyword(keyword) is not None, keyword
        assert dictionary_VR(tag_for_keyword(keyword)) not in ("UI", "SQ"), keyword
        assert edit.refusal(keyword) is None, keyword
    assert "UID" in (edit.refusal("StudyInstanceUID") or "")


# -- character sets ----------------------------------------------------------------------------


def test_a_value_the_files_character_set_holds_keeps_it_and_one_it_cannot_switches_to_utf8(
    shared: Path, tmp_path: Path, archive_dir: Path
) -> None:
    folder = tmp_path / "charset"
    folder.mkdir()
    charset = shared / "pydicom_test_files" / "charset"
    shutil.copy(charset / "chrFren.dcm", folder)  # ISO_IR 100 (Latin-1), patient SCSFREN
    original = dcmread(folder / "chrFren.dcm")
    run_cli("import", str(folder), archive=archive_dir)

    run_cli(
        "edit", "--patient", "SCSFREN", "--set", "PatientName=Müller^Jürgen", archive=archive_dir
    )
    [first] = _edited_files(archive_dir)
    ds = dcmread(first)
    assert ds.SpecificCharacterSet == "ISO_IR 100" and ds.PatientName == "Müller^Jürgen"
    assert b"M\xfcller^J\xfcrgen" in first.read_bytes()  # Latin-1 bytes, as declared

    done = cli_json(
        "edit", "--patient", "SCSFREN", "--set", "PatientName=Wang^XiaoDong=王^小東",
        archive=archive_dir,
    )  # fmt: skip
    assert {c["keyword"]: c["new"] for c in done["changes"]} == {
        "PatientName": "Wang^XiaoDong=王^小東", "SpecificCharacterSet": "ISO_IR 192",
    }  # fmt: skip
    [second] = [p for p in _edited_files(archive_dir) if p != first]
    ds = dcmread(second)
    assert ds.SpecificCharacterSet == "ISO_IR 192" and ds.PatientName == "Wang^XiaoDong=王^小東"
    assert "王^小東".encode() in second.read_bytes()
    # Every other value reads as before, now in UTF-8.
    for element in original:
        if element.keyword not in ("PatientName", "SpecificCharacterSet"):
            assert ds[element.tag].value == element.value, element.keyword
    [patient] = _ls(archive_dir, "patient")
    assert patient["PatientName"] == "Wang^XiaoDong=王^小東"


def test_an_iso_2022_file_keeps_its_escapes_or_switches(
    shared: Path, tmp_path: Path, archive_dir: Path
) -> None:
    folder = tmp_path / "charset"
    folder.mkdir()
    shutil.copy(shared / "pydicom_test_files" / "charset" / "chrH31.dcm", folder)
    run_cli("import", str(folder), archive=archive_dir)
    kanji = "Yamada^Hanako=山田^花子=やまだ^はなこ"
    plan = cli_json(
        "edit", "--patient", "H31EXAMPLE", "--set", f"PatientName={kanji}", "--dry-run",
        archive=archive_dir,
    )  # fmt: skip
    assert [c["keyword"] for c in plan["changes"]] == ["PatientName"]  # JIS X 0208 holds it
    run_cli("edit", "--patient", "H31EXAMPLE", "--set", f"PatientName={kanji}", archive=archive_dir)
    [path] = _edited_files(archive_dir)
    ds = dcmread(path)
    assert list(ds.SpecificCharacterSet) == ["", "ISO 2022 IR 87"] and ds.PatientName == kanji
    assert b"\x1b$B" in path.read_bytes()  # ISO 2022 escapes, as declared
    plan = cli_json(
        "edit", "--patient", "H31EXAMPLE", "--set", "PatientName=Jérôme", "--dry-run",
        archive=archive_dir,
    )  # fmt: skip
    assert {c["keyword"]: c["new"] for c in plan["changes"]}["SpecificCharacterSet"] == "ISO_IR 192"


# -- failures --------------------------------------------------------------------------------


def test_a_vanished_source_is_one_line_and_changes_nothing(
    shared: Path, tmp_path: Path, archive_dir: Path
) -> None:
    source = _toshiba(shared, tmp_path, archive_dir)
    before = _index(archive_dir)
    gone = sorted(source.rglob("*.dcm"))[20]
    gone.unlink()
    result = run_cli(
        "edit", "--patient", TOSHIBA_ID, "--set", "PatientName=X", archive=archive_dir, check=False
    )
    _one_line_error(result, "is gone", str(gone))
    assert _index(archive_dir) == before
    assert not (archive_dir / "store").exists() or not _edited_files(archive_dir)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MB tmpfs, mounted for the test (root only; CI runs as root)."""
    with tmpfs(tmp_path / "disk", "2m") as disk:
        yield disk


def test_a_full_disk_while_writing_leaves_the_index_and_no_partial_file(
    shared: Path, tmp_path: Path, small_disk: Path
) -> None:
    archive = small_disk / "archive"
    source = _toshiba(shared, tmp_path, archive)  # indexed in place: 3.5 MB, the disk has 2
    before, digests = _index(archive), _digests(source)
    result = run_cli(
        "edit", "--patient", TOSHIBA_ID, "--set", "PatientName=X", archive=archive, check=False
    )
    _one_line_error(result, "disk full", "nothing was changed")
    assert _index(archive) == before
    assert not [p for p in (archive / "store").rglob("*") if p.is_file()]
    assert _digests(source) == digests
    assert _history(archive) == []


def test_the_history_is_in_the_index_and_not_in_the_log(
    shared: Path, tmp_path: Path, archive_dir: Path
) -> None:
    _toshiba(shared, tmp_path, archive_dir)
    run_cli(
        "edit", "--patient", TOSHIBA_ID, "--set", "PatientName=SECRET^NAME", archive=archive_dir
    )
    logs = [p.read_text() for p in Path(os.environ["XDG_STATE_HOME"]).rglob("*.log")]
    assert logs and "edit 1: 40 instance(s)" in "".join(logs)
    assert not any("SECRET" in text or TOSHIBA_ID in text for text in logs)
    masked = run_cli("--privacy", "edit", "--history", archive=archive_dir).stdout
    assert "SECRET" not in masked and "S•••" in masked
    assert json.dumps(_history(archive_dir)).count("SECRET^NAME") == 2  # new value, command
