"""The archive as a library: import, incremental re-import, duplicates, bad input, copy mode,
ephemeral mode, interruption and forgetting, on real files."""

from __future__ import annotations

import os
import shutil
import threading
import warnings
from pathlib import Path

import pytest
from pydicom import dcmread

from tests.conftest import copy_tree
from tui.archive.importer import import_paths
from tui.archive.index import Archive
from tui.archive.query import Filters, search
from tui.errors import UserError


def _count(archive: Archive, table: str) -> int:
    return archive.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_import_builds_the_hierarchy_with_counts(archive: Archive, shared: Path) -> None:
    folder = shared / "neurolabusc_dcm_qa_frag"
    summary = import_paths(archive, [folder])
    assert summary.new == 96 + 10 and not summary.duplicates
    studies = search(archive, "study")
    series = search(archive, "series")
    assert sum(s["NumberOfStudyRelatedInstances"] for s in studies) == 106
    assert {s["NumberOfSeriesRelatedInstances"] for s in series} == {96, 10}
    assert all(s["ModalitiesInStudy"] == ["MR"] for s in studies)


def test_reimport_of_an_unchanged_tree_reads_nothing(archive: Archive, shared: Path) -> None:
    folder = shared / "pydicom_test_files"
    first = import_paths(archive, [folder])
    again = import_paths(archive, [folder])
    assert first.new > 50
    assert again.new == again.updated == again.vanished == 0
    assert again.files_read == 0
    assert again.unchanged == first.files_read + first.dicomdirs


def test_changed_and_vanished_files_are_noticed(archive: Archive, shared: Path, tmp_path) -> None:
    tree = copy_tree(shared / "neurolabusc_dcm_qa_toshiba", tmp_path / "tree")
    files = sorted(p for p in tree.rglob("*.dcm"))
    others = sum(1 for p in tree.rglob("*") if p.is_file()) - len(files)  # licence, readme
    first = import_paths(archive, [tree])
    assert first.new == len(files) == 40
    changed = dcmread(files[0])
    changed.SeriesDescription = "edited"
    changed.save_as(files[0])
    os.utime(files[0], ns=(1, 1))
    files[1].unlink()
    again = import_paths(archive, [tree])
    assert (again.updated, again.vanished, again.unchanged) == (1, 1, 38 + others)
    assert _count(archive, "instance") == 39


def test_duplicate_uids_keep_the_first_file_and_are_reported(
    archive: Archive, shared: Path
) -> None:
    xa30i = shared / "neurolabusc_dcm_qa_xa30i"
    subset = (
        shared / "neurolabusc_dcm_qa_frag" / "MR_Siemens_5001_JPEG_lossless_multifragment_subset10"
    )
    import_paths(archive, [xa30i])
    summary = import_paths(archive, [subset])
    assert summary.new == 0 and len(summary.duplicates) == 10
    for duplicate in summary.duplicates:
        assert duplicate.indexed_path.startswith(str(xa30i))
        assert archive.indexed_path(duplicate.sop_uid) == duplicate.indexed_path
    assert len(archive.duplicates()) == 10
    # A second import does not read them again, nor report new ones.
    assert import_paths(archive, [subset]).files_read == 0


def test_malformed_and_foreign_files_are_skipped_with_reasons(
    archive: Archive, shared: Path
) -> None:
    folder = shared / "pydicom_test_files" / "malformed_or_nonconformant"
    summary = import_paths(archive, [folder])
    reasons = dict(summary.skipped)
    assert summary.new + len(summary.skipped) + len(summary.duplicates) == len(os.listdir(folder))
    assert all(reason for reason in reasons.values())
    assert summary.new >= 5  # truncated pixel data still has a readable header


def test_a_file_cut_short_before_its_uids_is_said_to_be_truncated(
    archive: Archive, shared: Path, tmp_path
) -> None:
    whole = shared / "pydicom_test_files" / "grayscale_transfer_syntaxes" / "CT_small.dcm"
    folder = tmp_path / "stick"
    folder.mkdir()
    (folder / "whole.dcm").write_bytes(whole.read_bytes())
    for size in (200, 1000):  # inside the file meta, then inside the dataset
        (folder / f"stub{size}.dcm").write_bytes(whole.read_bytes()[:size])
    summary = import_paths(archive, [folder])
    assert summary.new == 1
    assert sorted(summary.skipped) == [
        (str(folder / f"stub{size}.dcm"), "truncated: the file ends inside its header")
        for size in (1000, 200)
    ]


def test_a_bad_file_never_loses_what_was_indexed(archive: Archive, shared: Path, tmp_path) -> None:
    tree = copy_tree(shared / "neurolabusc_dcm_qa_toshiba", tmp_path / "tree")
    import_paths(archive, [tree])
    (tree / "garbage.dcm").write_bytes(b"\0" * 128 + b"DICM" + os.urandom(4000))
    (tree / "notes.txt").write_text("not an image")
    summary = import_paths(archive, [tree])
    assert len(summary.skipped) == 2 and summary.new == 0
    assert [reason for path, reason in summary.skipped if path.endswith("notes.txt")]
    assert _count(archive, "instance") == 40


def test_dicomdir_references_are_followed_and_missing_ones_reported(
    archive: Archive, shared: Path, tmp_path
) -> None:
    tree = copy_tree(shared / "pydicom_test_files" / "dicomdir", tmp_path / "cd")
    gone = next((tree / "77654033").rglob("*"))
    while gone.is_dir():
        gone = next(gone.iterdir())
    gone.unlink()
    summary = import_paths(archive, [tree / "DICOMDIR"])
    assert summary.new == 30
    assert [path for path, _ in summary.missing] == [str(gone)]
    patients = search(archive, "patient")
    assert {p["PatientID"] for p in patients} == {"77654033", "98890234"}


def _nested_file_set(shared: Path, root: Path) -> list[Path]:
    """A Philips-style file-set built from real files: the root DICOMDIR references one
    patient's images itself and the rest through a sub-DIRFILE, ``S21570/S1000/DIRFILE``,
    whose records name their files from the file-set root (``S21570\\S1000\\I10``).

    Returns the images the sub-DIRFILE references.
    """
    source = shared / "pydicom_test_files" / "dicomdir"
    for patient in ("77654033", "98892001"):
        shutil.copytree(source / patient, root / patient)
    sub = root / "S21570" / "S1000"
    sub.mkdir(parents=True)
    top, nested = dcmread(source / "DICOMDIR"), dcmread(source / "DICOMDIR")
    images: list[Path] = []
    for record in nested.DirectoryRecordSequence:
        if "ReferencedFileID" not in record:
            continue
        if record.ReferencedFileID[0] != "98892003":
            del record.ReferencedFileID  # the root DICOMDIR has those
            continue
        images.append(sub / f"I{10 * (len(images) + 1)}")
        shutil.copy(source.joinpath(*record.ReferencedFileID), images[-1])
        record.ReferencedFileID = ["S21570", "S1000", images[-1].name]
    nested.save_as(sub / "DIRFILE")
    first = True
    for record in top.DirectoryRecordSequence:
        if "ReferencedFileID" in record and record.ReferencedFileID[0] == "98892003":
            if first:  # one record stands for the sub-DIRFILE
                record.ReferencedFileID = ["S21570", "S1000", "DIRFILE"]
                record.ReferencedSOPClassUIDInFile = "1.2.840.10008.1.3.10"
                first = False
            else:
                del record.ReferencedFileID
    top.save_as(root / "DICOMDIR")
    return images


def test_a_nested_dirfile_names_its_files_from_the_file_set_root(
    archive: Archive, shared: Path, tmp_path
) -> None:
    root = tmp_path / "cd"
    images = _nested_file_set(shared, root)
    assert len(images) == 17
    for given in (root / "DICOMDIR", root):  # the DICOMDIR, then the whole folder
        summary = import_paths(Archive(None), [given])
        assert (summary.new, summary.missing, summary.skipped) == (31, [], []), given
        assert summary.dicomdirs == 2
    # The sub-DIRFILE alone, as when only its folder is copied: its files are found too.
    alone = import_paths(Archive(None), [root / "S21570" / "S1000" / "DIRFILE"])
    assert (alone.new, alone.missing) == (17, [])
    # A file that is really gone is still reported, where the file-set root puts it.
    images[3].unlink()
    summary = import_paths(archive, [root / "DICOMDIR"])
    assert summary.new == 30
    assert [path for path, _ in summary.missing] == [str(images[3])]


_NOT_A_UID = (
    "SOPInstanceUID is not a UID: characters other than digits, letters and dots,"
    " or an empty component"
)


def test_copy_mode_stores_files_under_hashed_names(
    archive: Archive, shared: Path, tmp_path
) -> None:
    source = copy_tree(shared / "neurolabusc_dcm_qa_toshiba", tmp_path / "usb")
    hostile = dcmread(next(source.rglob("*.dcm")))
    hostile.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    hostile.PatientName = "../../evil"
    hostile.save_as(source / "hostile.dcm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns of the invalid UID it is given
        hostile.SOPInstanceUID = "../../../../escape"
    hostile.save_as(source / "escape.dcm")
    summary = import_paths(archive, [source], copy=True)
    assert summary.new == 41
    assert (str(source / "escape.dcm"), _NOT_A_UID) in summary.skipped
    store = archive.store
    assert store is not None
    paths = [row[0] for row in archive.conn.execute("SELECT path FROM instance")]
    assert all(Path(p).resolve().is_relative_to(store.resolve()) for p in paths)
    assert not any(".." in Path(p).name or "escape" in p for p in paths)
    assert not [p for p in store.rglob("*") if "escape" in str(p)]
    shutil.rmtree(source)  # the copies do not depend on the originals
    assert all(Path(p).is_file() for p in paths)
    again = import_paths(archive, [store])
    assert again.files_read == 0 and again.vanished == 0


def test_copy_again_is_unchanged_not_duplicate(archive: Archive, shared: Path) -> None:
    folder = shared / "neurolabusc_dcm_qa_toshiba"
    import_paths(archive, [folder], copy=True)
    again = import_paths(archive, [folder], copy=True)
    assert again.new == 0 and not again.duplicates and again.files_read == 0


def test_ephemeral_archive_writes_nothing(shared: Path, tmp_path) -> None:
    before = set(tmp_path.rglob("*"))
    with Archive(None) as archive:
        summary = import_paths(archive, [shared / "pydicom_test_files" / "charset"])
        assert summary.new > 10 and search(archive, "patient")
        with pytest.raises(UserError, match="--copy"):
            import_paths(archive, [shared / "pydicom_test_files" / "charset"], copy=True)
    assert set(tmp_path.rglob("*")) == before


def test_cancelled_import_leaves_a_consistent_index(archive: Archive, shared: Path) -> None:
    cancel = threading.Event()

    def stop_after_first_batch(done: int, total: int) -> None:
        if done:
            cancel.set()

    folder = shared / "neurolabusc_dcm_qa_frag"
    summary = import_paths(archive, [folder], progress=stop_after_first_batch, cancel=cancel)
    assert summary.interrupted and 0 < summary.new < 106
    counted = archive.conn.execute("SELECT sum(num_instances) FROM series").fetchone()[0]
    assert counted == _count(archive, "instance") == summary.new
    rest = import_paths(archive, [folder])
    assert rest.new == 106 - summary.new


def test_missing_path_is_a_user_error(archive: Archive, tmp_path) -> None:
    with pytest.raises(UserError, match="no such file"):
        import_paths(archive, [tmp_path / "nope"])


def test_forget_deletes_only_managed_files(archive: Archive, shared: Path) -> None:
    in_place = shared / "neurolabusc_dcm_qa_toshiba"
    import_paths(archive, [in_place])
    import_paths(archive, [shared / "pydicom_test_files" / "charset"], copy=True)
    study = search(archive, "study", Filters(patient_name="Buc*"))[0]["StudyInstanceUID"]
    with archive.transaction():
        count, managed = archive.forget("study", [study])
    assert count == 1 and len(managed) == 1 and managed[0].startswith(str(archive.store))
    assert "Buc^Jérôme" not in {p["PatientName"] for p in search(archive, "patient")}
    toshiba = search(archive, "series", Filters(modality="MR"))
    with archive.transaction():
        count, managed = archive.forget("series", [s["SeriesInstanceUID"] for s in toshiba])
    assert count == 40 and managed == []
    assert not search(archive, "series", Filters(modality="MR"))


def test_name_search_ignores_case_accents_and_takes_wildcards(
    archive: Archive, shared: Path
) -> None:
    import_paths(archive, [shared / "pydicom_test_files" / "charset"])

    def names(pattern: str) -> set[str]:
        rows = search(archive, "patient", Filters(patient_name=pattern))
        return {r["PatientName"] for r in rows}

    assert names("aneas*") == {"Äneas^Rüdiger"}
    assert names("BUC^JEROME") == {"Buc^Jérôme"}
    assert names("buc") == {"Buc^Jérôme"}  # one name component alone finds the patient
    assert names("jerome") == {"Buc^Jérôme"}
    assert names("山田*") >= {"Yamada^Tarou=山田^太郎=やまだ^たろう"}
    assert names("wang^xiao?ong*") == {"Wang^XiaoDong=王^小東", "Wang^XiaoDong=王^小东"}
    assert names("nobody*") == set()


def test_date_and_modality_filters(archive: Archive, shared: Path) -> None:
    import_paths(archive, [shared / "pydicom_test_files" / "dicomdir"])
    dates = {r["StudyDate"] for r in search(archive, "study", Filters(date="20030101-"))}
    assert dates and all(d >= "20030101" for d in dates)
    older = {r["StudyDate"] for r in search(archive, "study", Filters(date="-20021231"))}
    assert older and all(d <= "20021231" for d in older) and not dates & older
    exact = search(archive, "study", Filters(date="20010101"))
    assert {r["StudyDate"] for r in exact} == {"20010101"}
    ct = search(archive, "series", Filters(modality="ct"))
    assert ct and {r["Modality"] for r in ct} == {"CT"}
    with pytest.raises(UserError, match="YYYYMMDD"):
        Filters(date="2001-01-01")
    with pytest.raises(UserError, match="not a date"):
        Filters(date="20240230")
    with pytest.raises(UserError, match="ends before it starts"):
        Filters(date="20241231-20240101")
    with pytest.raises(UserError, match="not a UID"):
        Filters(study="1.2.*")
    by_series_description = search(archive, "study", Filters(description="*mra*"))
    assert {r["StudyDescription"] for r in by_series_description} == {"Brain-MRA"}


def test_copy_of_identical_files_in_one_batch(archive: Archive, shared: Path, tmp_path) -> None:
    source = tmp_path / "usb"
    source.mkdir()
    original = shared / "pydicom_test_files" / "grayscale_transfer_syntaxes" / "CT_small.dcm"
    for name in ("a.dcm", "b.dcm"):
        shutil.copy(original, source / name)
    summary = import_paths(archive, [source], copy=True)
    assert (summary.new, summary.unchanged, len(summary.duplicates)) == (1, 1, 0)


def test_an_index_from_a_newer_pacs_tui_is_refused(archive_dir: Path) -> None:
    import sqlite3

    Archive(archive_dir).close()
    with sqlite3.connect(archive_dir / "index.sqlite") as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(UserError, match="newer than this pacs-tui"):
        Archive(archive_dir)


def test_series_without_pixel_data_count_no_images_and_old_indexes_learn_it(
    archive_dir: Path, shared: Path
) -> None:
    import sqlite3

    folder = shared / "pydicom_test_files" / "multiframe_and_non_image_sop"
    with Archive(archive_dir) as archive:
        import_paths(archive, [folder])
        expected = {
            s["SeriesInstanceUID"]: (s["Modality"], s["NumberOfSeriesRelatedImages"])
            for s in search(archive, "series")
        }
    images = {modality: count for modality, count in expected.values()}
    assert images["SR"] == images["RTPLAN"] == images["RTSTRUCT"] == images["ECG"] == 0
    assert images["MR"] == images["RTDOSE"] == 1
    # An index written before images were counted (schema 3) counts them when opened.
    with sqlite3.connect(archive_dir / "index.sqlite") as conn:
        conn.execute("ALTER TABLE series DROP COLUMN num_images")
        conn.execute("ALTER TABLE study DROP COLUMN num_images")
        conn.execute("PRAGMA user_version = 3")
    with Archive(archive_dir, create=False) as archive:
        series = search(archive, "series")
        assert {s["SeriesInstanceUID"]: (s["Modality"], s["NumberOfSeriesRelatedImages"])
                for s in series} == expected  # fmt: skip
        studies = search(archive, "study")
        assert sum(s["NumberOfStudyRelatedImages"] for s in studies) == sum(
            count for _, count in expected.values()
        )


def test_a_hostile_dicomdir_cannot_lead_outside_its_folder(
    archive: Archive, shared: Path, tmp_path
) -> None:
    tree = copy_tree(shared / "pydicom_test_files" / "dicomdir", tmp_path / "cd")
    outside = tmp_path / "outside.dcm"
    shutil.copy(
        shared / "pydicom_test_files" / "grayscale_transfer_syntaxes" / "CT_small.dcm", outside
    )
    dicomdir = dcmread(tree / "DICOMDIR")
    records = [r for r in dicomdir.DirectoryRecordSequence if "ReferencedFileID" in r]
    records[0].ReferencedFileID = ["..", "outside.dcm"]
    dicomdir.save_as(tree / "DICOMDIR")
    summary = import_paths(archive, [tree / "DICOMDIR"])
    assert summary.new == 30 and len(summary.missing) == 1
    assert (
        archive.conn.execute(
            "SELECT count(*) FROM instance WHERE path = ?", (str(outside),)
        ).fetchone()[0]
        == 0
    )


def test_a_dicomdir_whose_file_id_cannot_be_read_is_skipped_with_the_reason(
    archive: Archive, shared: Path, tmp_path
) -> None:
    """pydicom converts a value only when asked: a ReferencedFileID whose VR was garbled
    (CS to FD, found by the fuzzer) raised outside the DICOMDIR reader's error handling."""
    tree = copy_tree(shared / "pydicom_test_files" / "dicomdir", tmp_path / "cd")
    raw = (tree / "DICOMDIR").read_bytes()
    at = raw.index(b"\x04\x00\x00\x15CS")  # the first ReferencedFileID
    (tree / "DICOMDIR").write_bytes(raw[:at] + b"\x04\x00\x00\x15FD" + raw[at + 6 :])
    summary = import_paths(archive, [tree / "DICOMDIR"])
    [reason] = [why for path, why in summary.skipped if path.endswith("DICOMDIR")]
    assert reason.startswith("unreadable DICOMDIR") and "\n" not in reason


def test_an_empty_path_is_refused_not_the_current_folder(archive: Archive) -> None:
    with pytest.raises(UserError, match="empty path"):
        import_paths(archive, [""])


def test_a_file_name_that_is_not_utf8_is_skipped_and_the_rest_imported(
    archive: Archive, shared: Path, tmp_path
) -> None:
    folder = tmp_path / "stick"
    folder.mkdir()
    source = shared / "pydicom_test_files" / "grayscale_transfer_syntaxes"
    shutil.copy(source / "CT_small.dcm", folder / "ok.dcm")
    shutil.copy(source / "MR_small.dcm", os.fsdecode(os.fsencode(str(folder)) + b"/M\xfcller.dcm"))
    summary = import_paths(archive, [folder])
    assert summary.new == 1
    [(path, reason)] = summary.skipped
    assert "UTF-8" in reason and path.endswith("M\\xfcller.dcm")


def test_a_dicomdir_recognised_by_content_is_followed(archive: Archive, shared: Path) -> None:
    summary = import_paths(
        archive, [shared / "pydicom_test_files" / "dicomdir" / "DICOMDIR-implicit"]
    )
    assert summary.dicomdirs == 1 and summary.new == 31


def test_a_duplicate_takes_the_place_of_a_vanished_file(
    archive: Archive, shared: Path, tmp_path
) -> None:
    first = copy_tree(shared / "neurolabusc_dcm_qa_toshiba", tmp_path / "first")
    second = copy_tree(shared / "neurolabusc_dcm_qa_toshiba", tmp_path / "second")
    import_paths(archive, [first])
    assert len(import_paths(archive, [second]).duplicates) == 40
    gone = sorted(first.rglob("*.dcm"))[0]
    gone.unlink()
    summary = import_paths(archive, [first])
    assert (summary.vanished, summary.new) == (1, 1)
    uid = dcmread(sorted(second.rglob("*.dcm"))[0]).SOPInstanceUID
    assert archive.indexed_path(uid) == str(sorted(second.rglob("*.dcm"))[0])
    assert len(archive.duplicates()) == 39


def test_a_study_claimed_by_two_patients_is_reported(
    archive: Archive, shared: Path, tmp_path
) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    original = dcmread(
        shared / "pydicom_test_files" / "grayscale_transfer_syntaxes" / "CT_small.dcm"
    )
    original.save_as(folder / "a.dcm")
    original.PatientID, original.PatientName = "OTHER", "Other^Person"
    original.SOPInstanceUID = original.SOPInstanceUID + ".1"
    original.save_as(folder / "b.dcm")
    summary = import_paths(archive, [folder])
    assert summary.new == 2 and summary.conflicts == [str(folder / "b.dcm")]
    assert len(search(archive, "patient")) == 1


def _in_thread(call):
    """``call()`` in another thread; its result (or error)."""
    out: list[object] = []
    thread = threading.Thread(target=lambda: out.append(_result(call)))
    thread.start()
    thread.join(30)
    return out[0]


def _result(call):
    try:
        return call()
    except UserError as exc:
        return exc


def test_each_thread_reads_beside_a_write_on_its_own_connection(
    archive: Archive, shared: Path
) -> None:
    import_paths(archive, [shared / "neurolabusc_dcm_qa_xa30i"])
    before = _count(archive, "instance")
    with archive.transaction() as conn:  # a batch of an import, under way in this thread
        conn.execute("DELETE FROM instance")
        # another thread reads the last commit at once (WAL), on a connection of its own
        assert _in_thread(lambda: _count(archive, "instance")) == before
        assert _in_thread(lambda: archive.conn) is not archive.conn
    assert _in_thread(lambda: _count(archive, "instance")) == 0
    archive.close()  # every thread's connection
    with pytest.raises(Exception, match="closed"):
        archive.conn.execute("SELECT 1")


def test_an_in_memory_archive_is_one_index_for_every_thread(shared: Path) -> None:
    archive = Archive(None)
    _in_thread(lambda: import_paths(archive, [shared / "neurolabusc_dcm_qa_xa30i"]))
    assert _count(archive, "instance") > 0
    with archive.exclusive():  # its one connection: threads take turns
        assert _in_thread(lambda: archive.exclusive().acquire(timeout=0.1)) is False


def _ct_small(shared: Path):
    return dcmread(shared / "pydicom_test_files" / "grayscale_transfer_syntaxes" / "CT_small.dcm")


@pytest.mark.parametrize(
    ("keyword", "value", "why"),
    [
        ("SeriesInstanceUID", "1.2.3\n4", "control characters"),
        ("StudyInstanceUID", "1.2\x003.4", "control characters"),
        ("SOPInstanceUID", "1.2.\x1b[2J", "control characters"),
        ("SeriesInstanceUID", "1.2.3 4", "other than digits"),
        ("StudyInstanceUID", "1..2", "empty component"),
        ("SOPInstanceUID", "1." + "2" * 63, "more than 64"),
    ],
)
def test_an_identifier_that_is_not_a_uid_is_skipped_with_the_reason(
    archive: Archive, shared: Path, tmp_path, keyword: str, value: str, why: str
) -> None:
    folder = tmp_path / "stick"
    folder.mkdir()
    ds = _ct_small(shared)
    ds.save_as(folder / "good.dcm")
    if keyword != "SOPInstanceUID":
        ds.SOPInstanceUID = "1.2.3.4.5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns of the invalid value it writes
        setattr(ds, keyword, value)
    ds.save_as(folder / "bad.dcm")
    summary = import_paths(archive, [folder])
    assert summary.new == 1
    [(path, reason)] = summary.skipped
    assert path == str(folder / "bad.dcm")
    assert reason.startswith(f"{keyword} is not a UID: ") and why in reason
    assert "\n" not in reason and value not in reason
    # Remembered: an unchanged bad file is not read again.
    assert import_paths(archive, [folder]).files_read == 0


def test_hex_digest_uids_from_anonymisers_are_indexed_as_they_are(
    archive: Archive, shared: Path
) -> None:
    path = shared / "pydicom-data" / "malformed_or_nonconformant" / "bad_sequence.dcm"
    assert import_paths(archive, [path]).new == 1
    [(study, series, sop)] = archive.conn.execute(
        "SELECT study_uid, series_uid, sop_uid FROM instance JOIN series USING (series_pk)"
        " JOIN study USING (study_pk)"
    )
    ds = dcmread(path)
    assert (study, series, sop) == (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert len(sop) == 64 and not sop.isdigit()


@pytest.mark.filterwarnings("ignore:Found unknown escape sequence")  # the ESC in the name
def test_control_characters_in_text_values_are_stored_as_replacement_characters(
    archive: Archive, shared: Path, tmp_path
) -> None:
    folder = tmp_path / "stick"
    folder.mkdir()
    ds = _ct_small(shared)
    ds.PatientName = "Doe\x1b]0;x\x07^John"
    ds.StudyDescription = "head\x00\x1b[2J"
    ds.save_as(folder / "a.dcm")
    assert import_paths(archive, [folder]).new == 1
    [(name, description)] = archive.conn.execute(
        "SELECT patient_name, description FROM patient JOIN study USING (patient_pk)"
    )
    assert (name, description) == ("Doe\ufffd]0;x\ufffd^John", "head\ufffd\ufffd[2J")


def test_a_series_named_by_two_studies_stays_in_the_first_and_the_other_file_waits(
    archive: Archive, shared: Path, tmp_path
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    ds = _ct_small(shared)
    ds.save_as(first / "a.dcm")
    study, series = ds.StudyInstanceUID, ds.SeriesInstanceUID
    ds.StudyInstanceUID = "1.2.3.4"
    for number, name in enumerate("bc", 1):
        ds.SOPInstanceUID = f"1.2.3.4.{number}"
        ds.save_as(second / f"{name}.dcm")

    def filed() -> set[tuple[str, str, str]]:
        rows = archive.conn.execute(
            "SELECT study_uid, series_uid, sop_uid FROM instance JOIN series USING (series_pk)"
            " JOIN study USING (study_pk)"
        )
        return set(rows)

    # Copied: the refused files leave no copy in the store.
    with Archive(tmp_path / "copied") as copied:
        summary = import_paths(copied, [first, second], copy=True)
        assert (summary.new, len(summary.skipped)) == (1, 2)
        assert copied.store is not None
        assert len([p for p in copied.store.rglob("*") if p.is_file()]) == 1
    # In one import (one batch), then again: the study that came first keeps the series.
    for _ in range(2):
        summary = import_paths(archive, [first, second])
        assert sorted(p for p, _ in summary.skipped) == [str(second / f"{n}.dcm") for n in "bc"]
        assert all("filed under another StudyInstanceUID" in r for _, r in summary.skipped)
        assert filed() == {(study, series, _ct_small(shared).SOPInstanceUID)}
    # Once the first study's file is gone, the others are filed under their own study.
    (first / "a.dcm").unlink()
    summary = import_paths(archive, [first, second])
    assert (summary.vanished, summary.new, summary.skipped) == (1, 2, [])
    assert filed() == {("1.2.3.4", series, "1.2.3.4.1"), ("1.2.3.4", series, "1.2.3.4.2")}


def test_a_file_that_moves_its_series_to_another_study_takes_it_along(
    archive: Archive, shared: Path, tmp_path
) -> None:
    folder = tmp_path / "stick"
    folder.mkdir()
    ds = _ct_small(shared)
    ds.save_as(folder / "a.dcm")
    import_paths(archive, [folder])
    ds.StudyInstanceUID = "1.2.3.4"  # edited: the only file of its series names another study
    ds.save_as(folder / "a.dcm")
    os.utime(folder / "a.dcm", ns=(1, 1))
    summary = import_paths(archive, [folder])
    assert (summary.updated, summary.skipped) == (1, [])
    assert [row[0] for row in archive.conn.execute("SELECT study_uid FROM study")] == ["1.2.3.4"]
