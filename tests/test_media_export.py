"""``pacs-tui export UID... --dicom``: a folder, a ZIP and media with a DICOMDIR, read back by
our own import, pydicom's FileSet and dcmtk; targets never overwritten, partial output never
left behind; the per-instance transform hook and its refusals (tui.archive.media)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import threading
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.fileset import FileSet

from tests.conftest import cli_json, need_shared, run_cli, tmpfs
from tests.servers import need_dcmtk
from tests.synthetic import AXIAL, write_series
from tests.test_cli import _one_line_error

_FILE_ID = re.compile(r"^(PT|ST|SE|IM)\d{6}$")


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """An archive of real files (a DICOMDIR's images, a GE MR series), indexed in place;
    and its study UIDs."""
    shared = need_shared()
    archive = tmp_path_factory.mktemp("media") / "archive"
    run_cli(
        "import", str(shared / "pydicom_test_files" / "dicomdir" / "DICOMDIR"),
        str(shared / "neurolabusc_dcm_qa_ge"), archive=archive,
    )  # fmt: skip
    studies = [row["StudyInstanceUID"] for row in cli_json("ls", archive=archive)]
    assert len(studies) >= 5
    return archive, studies


@pytest.fixture
def synthetic(tmp_path: Path) -> tuple[Path, Path, str]:
    """A writable synthetic CT series indexed in place: (archive, files, series UID)."""
    files = tmp_path / "files"
    uid = write_series(files, AXIAL, size=32, count=12)
    run_cli("import", str(files), archive=tmp_path / "archive")
    return tmp_path / "archive", files, uid


def _tree(archive: Path) -> dict[str, Any]:
    """What an archive holds, level by level, and each instance's file hash by UID."""
    instances = cli_json("ls", "--level", "instance", archive=archive)
    return {
        "patients": sorted(
            (r["PatientID"], r["NumberOfPatientRelatedInstances"])
            for r in cli_json("ls", "--level", "patient", archive=archive)
        ),
        "studies": sorted(
            (r["StudyInstanceUID"], r["NumberOfStudyRelatedInstances"])
            for r in cli_json("ls", archive=archive)
        ),
        "series": sorted(
            (r["SeriesInstanceUID"], r["NumberOfSeriesRelatedInstances"])
            for r in cli_json("ls", "--level", "series", archive=archive)
        ),
        "hashes": {r["SOPInstanceUID"]: _sha(r["path"]) for r in instances},
    }


def _sha(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _names(root: Path) -> list[Path]:
    return [p.relative_to(root) for p in root.rglob("*") if p.is_file()]


def _no_partial(folder: Path) -> None:
    assert [p.name for p in folder.iterdir() if ".partial-" in p.name] == []


def test_folder_zip_and_media_import_back_as_the_same_tree(
    real: tuple[Path, list[str]], tmp_path: Path
) -> None:
    archive, studies = real
    source = _tree(archive)
    outputs = {
        "folder": tmp_path / "folder",
        "zip": tmp_path / "out.zip",
        "media": tmp_path / "media",
    }
    for kind, target in outputs.items():
        extra = ["--dicomdir"] if kind == "media" else []
        summary = cli_json(
            "export", *studies, "--dicom", *extra, "-o", str(target), archive=archive
        )
        assert summary["kind"] == kind and summary["output"] == str(target)
        assert summary["instances"] == len(source["hashes"])
        assert summary["studies"] == len(source["studies"])
        assert summary["series"] == len(source["series"])
        assert summary["patients"] == len(source["patients"])
        assert summary["refused"] == [] and summary["hits"] == []
        _no_partial(tmp_path)
    unzipped = tmp_path / "unzipped"
    with zipfile.ZipFile(outputs["zip"]) as zf:
        assert zf.testzip() is None
        zf.extractall(unzipped)
    for root in (outputs["folder"], unzipped, outputs["media"]):
        names = _names(root)
        # 8-character upper-case IDs by position: nothing derived from a UID or a name
        assert all(all(_FILE_ID.match(part) for part in name.parts) for name in names
                   if name.name != "DICOMDIR"), names  # fmt: skip
        assert len(names) == len(source["hashes"]) + (root == outputs["media"])
        again = tmp_path / f"again-{root.name}"
        run_cli("import", str(root), archive=again)
        # the same patients, studies, series and instances, byte for byte
        assert _tree(again) == source
    assert (outputs["media"] / "DICOMDIR").is_file()
    assert not (outputs["folder"] / "DICOMDIR").exists()


def test_dicomdir_read_by_pydicom_our_import_and_dcmtk(
    real: tuple[Path, list[str]], tmp_path: Path
) -> None:
    archive, studies = real
    media = tmp_path / "media"
    summary = cli_json(
        "export", *studies, "--dicom", "--dicomdir", "-o", str(media), archive=archive
    )
    fs = FileSet(media / "DICOMDIR")
    assert len(fs) == summary["instances"] and fs.ID == "PACS_TUI"
    meta = pydicom.dcmread(media / "DICOMDIR").file_meta  # written by us, not "pydicom"
    assert meta.ImplementationVersionName.startswith("PACS_TUI_")
    for instance in fs:
        assert Path(instance.path).is_file()
        assert pydicom.dcmread(instance.path).SOPInstanceUID == instance.SOPInstanceUID
    ours = cli_json("import", str(media / "DICOMDIR"), archive=tmp_path / "via-dicomdir")
    assert ours["dicomdirs"] == 1 and ours["new"] == summary["instances"]
    # dcmtk: dcmdump reads our DICOMDIR; dcmmkdir over the same files, in the same layout,
    # makes as many records of each type
    dump = subprocess.run(
        [need_dcmtk("dcmdump"), str(media / "DICOMDIR")], capture_output=True, text=True
    )
    assert dump.returncode == 0, dump.stderr
    theirs = tmp_path / "dcmmkdir"
    shutil.copytree(media, theirs)
    (theirs / "DICOMDIR").unlink()
    made = subprocess.run(
        [need_dcmtk("dcmmkdir"), "+r", "+I", "+id", str(theirs)], cwd=theirs,
        capture_output=True, text=True,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert _record_types(media / "DICOMDIR") == _record_types(theirs / "DICOMDIR")
    counts = _record_types(media / "DICOMDIR")
    assert counts["PATIENT"] == summary["patients"] and counts["STUDY"] == summary["studies"]
    assert counts["SERIES"] == summary["series"] and counts["IMAGE"] == summary["instances"]


def _record_types(dicomdir: Path) -> Counter[str]:
    ds = pydicom.dcmread(dicomdir)
    return Counter(str(r.DirectoryRecordType) for r in ds.DirectoryRecordSequence)


def test_filters_select_series_as_ls_lists_them(
    real: tuple[Path, list[str]], tmp_path: Path
) -> None:
    archive, _ = real
    ct = cli_json("ls", "--level", "series", "--modality", "CT", archive=archive)
    summary = cli_json(
        "export", "--dicom", "--modality", "CT", "-o", str(tmp_path / "ct"), archive=archive
    )
    assert summary["series"] == len(ct) > 0
    assert summary["instances"] == sum(r["NumberOfSeriesRelatedInstances"] for r in ct)
    modalities = {pydicom.dcmread(p, stop_before_pixels=True).Modality
                  for p in (tmp_path / "ct").rglob("IM*")}  # fmt: skip
    assert modalities == {"CT"}
    one = cli_json("ls", "--level", "series", archive=archive)[0]
    both = cli_json(
        "export", one["SeriesInstanceUID"], "--dicom", "--patient-id", "77654033",
        "-o", str(tmp_path / "both"), archive=archive,
    )  # fmt: skip
    patient = cli_json("ls", "--level", "patient", "--patient-id", "77654033", archive=archive)
    expected = patient[0]["NumberOfPatientRelatedInstances"]
    if one["PatientID"] != "77654033":
        expected += one["NumberOfSeriesRelatedInstances"]
    assert both["instances"] == expected
    nothing = run_cli("export", "--dicom", "--patient-id", "NOBODY", "-o",
                      str(tmp_path / "none"), archive=archive, check=False)  # fmt: skip
    _one_line_error(nothing, "nothing matches")
    assert not (tmp_path / "none").exists()


def test_never_overwrites_and_leaves_no_partial_output(
    synthetic: tuple[Path, Path, str], tmp_path: Path
) -> None:
    archive, _, uid = synthetic
    full = tmp_path / "full"
    full.mkdir()
    (full / "mine.txt").write_text("the user's")
    result = run_cli("export", uid, "--dicom", "-o", str(full), archive=archive, check=False)
    _one_line_error(result, "is not empty")
    assert _names(full) == [Path("mine.txt")] and (full / "mine.txt").read_text() == "the user's"
    existing = tmp_path / "old.zip"
    existing.write_bytes(b"not ours")
    result = run_cli("export", uid, "--dicom", "-o", str(existing), archive=archive, check=False)
    _one_line_error(result, "exists")
    assert existing.read_bytes() == b"not ours"
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    result = run_cli("export", uid, "--dicom", "-o", str(a_file), archive=archive, check=False)
    _one_line_error(result, "not a folder")
    empty = tmp_path / "empty"
    empty.mkdir()  # an empty folder (a mounted USB stick) is filled
    cli_json("export", uid, "--dicom", "--dicomdir", "-o", str(empty), archive=archive)
    assert (empty / "DICOMDIR").is_file() and len(_names(empty)) == 13
    _no_partial(tmp_path)


def test_a_source_changed_or_gone_since_indexing_is_a_clear_error(
    synthetic: tuple[Path, Path, str], tmp_path: Path
) -> None:
    archive, files, uid = synthetic
    victim = sorted(files.iterdir())[5]
    before = {p.name: _sha(p) for p in files.iterdir()}
    stat = victim.stat()
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    for kind in ("out", "out.zip"):
        result = run_cli("export", uid, "--dicom", "-o", str(tmp_path / kind), archive=archive,
                         check=False)  # fmt: skip
        _one_line_error(result, "changed since it was indexed")
        assert not (tmp_path / kind).exists()
    victim.unlink()
    result = run_cli("export", uid, "--dicom", "--dicomdir", "-o", str(tmp_path / "m"),
                     archive=archive, check=False)  # fmt: skip
    _one_line_error(result, "gone since it was indexed")
    assert not (tmp_path / "m").exists()
    _no_partial(tmp_path)
    # the source is untouched (but for the file removed above)
    assert {p.name: _sha(p) for p in files.iterdir()} == {
        k: v for k, v in before.items() if k != victim.name
    }


def _rows(archive: Path, uid: str) -> list[dict[str, Any]]:
    from tui.archive.index import Archive
    from tui.archive.media import select

    with Archive(archive) as opened:
        return select(opened, [uid])


@pytest.mark.parametrize("kind", ["folder", "zip", "media"])
def test_cancel_and_ctrl_c_remove_the_partial_output(
    synthetic: tuple[Path, Path, str], tmp_path: Path, kind: str
) -> None:
    from tui.archive.media import Cancelled, export

    archive, _, uid = synthetic
    rows = _rows(archive, uid)
    out = tmp_path / ("out.zip" if kind == "zip" else "out")
    stop = threading.Event()
    seen: list[tuple[int, int, int]] = []

    def progress(done: int, total: int, size: int) -> None:
        seen.append((done, total, size))
        if done == 4:
            stop.set()  # as Esc in the app does, from another thread

    with pytest.raises(Cancelled):
        export(rows, out, kind, progress=progress, cancel=stop)  # type: ignore[arg-type]
    assert seen[-1][:2] == (4, 12) and seen[-1][2] > 0
    assert not out.exists()
    _no_partial(tmp_path)

    def interrupt(done: int, total: int, size: int) -> None:
        if done == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export(rows, out, kind, progress=interrupt)  # type: ignore[arg-type]
    assert not out.exists()
    _no_partial(tmp_path)


def test_transform_hook_applies_refuses_and_is_checked(
    synthetic: tuple[Path, Path, str], tmp_path: Path
) -> None:
    from tui.archive.media import CheckFailed, VerificationFailed, export

    archive, files, uid = synthetic
    rows = _rows(archive, uid)
    refused_uid = rows[2]["SOPInstanceUID"]

    class Refused(Exception):
        def __init__(self, reason: str) -> None:
            super().__init__(reason)
            self.reason = reason

    def transform(ds: Any) -> None:
        if ds.SOPInstanceUID == refused_uid:
            raise Refused("burned-in text")
        ds.PatientName = "ANON^ONE"
        ds.PatientID = "ANON1"

    before = {p.name: _sha(p) for p in files.iterdir()}
    report = export(rows, tmp_path / "media", "media", transform=transform)
    assert report.refused == [(refused_uid, "burned-in text")]
    assert report.instances == 11 and report.transformed and report.patients == 1
    fs = FileSet(tmp_path / "media" / "DICOMDIR")
    assert {str(i.PatientID) for i in fs} == {"ANON1"} and len(fs) == 11
    for path in (tmp_path / "media").rglob("IM*"):
        ds = pydicom.dcmread(path)
        assert ds.PatientName == "ANON^ONE" and ds.SOPInstanceUID != refused_uid
    assert {p.name: _sha(p) for p in files.iterdir()} == before  # the source is untouched

    # an audit's hits fail the export once every file is looked at, and leave nothing
    def audit(source: Any) -> Any:
        name = str(source.PatientName)
        return lambda data: (
            [{"attribute": "PatientName", "identifier": "PatientName"}]
            if name.encode() in data
            else []
        )

    leaky = tmp_path / "leaky.zip"
    with pytest.raises(VerificationFailed) as failed:
        export(rows, leaky, "zip", transform=lambda ds: None, audit=audit)
    assert len(failed.value.report.hits) == 12
    assert failed.value.report.hits[0]["file"] == "PT000000/ST000000/SE000000/IM000000"
    assert not leaky.exists()
    clean = export(rows, tmp_path / "clean", "folder", transform=transform, audit=audit)
    assert clean.hits == [] and clean.instances == 11

    # a row that names another instance than its file holds: the self-check says so
    wrong = [dict(rows[0], SOPInstanceUID="1.2.3.4")]
    with pytest.raises(CheckFailed, match="another SOPInstanceUID"):
        export(wrong, tmp_path / "wrong", "folder")
    assert not (tmp_path / "wrong").exists()
    _no_partial(tmp_path)


def test_json_summary_and_options_that_do_not_mix(
    synthetic: tuple[Path, Path, str], tmp_path: Path
) -> None:
    archive, _, uid = synthetic
    summary = cli_json("export", uid, "--dicom", "-o", str(tmp_path / "a.zip"), archive=archive)
    assert set(summary) == {
        "output", "kind", "patients", "studies", "series", "instances", "bytes", "seconds",
        "transformed", "refused", "hits",
    }  # fmt: skip
    assert summary["bytes"] == sum(p.stat().st_size for p in (tmp_path / "files").iterdir())
    text = run_cli("export", uid, "--dicom", "-o", str(tmp_path / "b"), archive=archive).stdout
    assert "12 instances (1 patients, 1 studies, 1 series" in text and str(tmp_path / "b") in text
    for args, fragment in [
        (["--dicom", "--fps", "5"], "--fps goes with --cine"),
        (["--cine", "--dicomdir"], "--dicomdir goes with --dicom"),
        (["--sheet", "--anonymize"], "--anonymize goes with --dicom"),
        (["--cine", "--modality", "CT"], "--modality goes with --dicom"),
        (["--dicom", "--dicomdir", "-o", str(tmp_path / "c.zip")], "a DICOMDIR goes with a folder"),
        (["--dicom", "--key", "k"], "--key goes with --anonymize"),
    ]:
        out = [] if "-o" in args else ["-o", str(tmp_path / "x")]
        result = run_cli("export", uid, *args, *out, archive=archive, check=False)
        _one_line_error(result, fragment)
    two = run_cli("export", uid, uid, "--cine", "-o", str(tmp_path / "x.gif"), archive=archive,
                  check=False)  # fmt: skip
    _one_line_error(two, "one SeriesInstanceUID")
    assert not (tmp_path / "x").exists()


def test_a_mount_point_is_filled_in_place_and_a_full_disk_is_one_line(
    synthetic: tuple[Path, Path, str], tmp_path: Path
) -> None:
    """A USB stick's mount point is another file system than its parent's: the export is
    written inside it, and the folder (its mode too) stays. A full disk is one line, with
    nothing left and no traceback from the half-written ZIP."""
    archive, _, uid = synthetic
    with tmpfs(tmp_path / "usb", "8m") as usb:
        usb.chmod(0o755)
        cli_json("export", uid, "--dicom", "--dicomdir", "-o", str(usb), archive=archive)
        assert (usb / "DICOMDIR").is_file() and len(_names(usb)) == 13
        assert usb.stat().st_mode & 0o777 == 0o755
        assert not [p for p in usb.iterdir() if ".partial-" in p.name]
    with tmpfs(tmp_path / "small", "4k") as small:
        result = run_cli(
            "export", uid, "--dicom", "-o", str(small / "out.zip"), archive=archive, check=False
        )
        _one_line_error(result, "cannot write there")
        assert "out.zip" in result.stderr and "Exception ignored" not in result.stderr
        assert list(small.iterdir()) == []


def test_an_export_whose_every_instance_is_refused_fails_and_leaves_nothing(
    synthetic: tuple[Path, Path, str], tmp_path: Path
) -> None:
    from tui.archive.media import MediaError, export

    archive, _, uid = synthetic

    class Refused(Exception):
        reason = "burned-in text"

    def refuse(ds: Any) -> None:
        raise Refused

    for kind, out in (("zip", tmp_path / "out.zip"), ("folder", tmp_path / "out")):
        with pytest.raises(MediaError, match="nothing written: every instance was refused"):
            export(_rows(archive, uid), out, kind, transform=refuse)  # type: ignore[arg-type]
        assert not out.exists()
    _no_partial(tmp_path)


def test_ctrl_c_stops_an_anonymized_export_at_once_and_leaves_nothing(tmp_path: Path) -> None:
    """SIGINT while worker processes de-identify: exit 130 within seconds, however it
    lands (it once left a worker waiting on its pipe for ever), and no partial output."""
    import signal
    import subprocess
    import sys
    import time

    files = tmp_path / "files"
    uid = write_series(files, AXIAL, size=256, count=150)
    archive = tmp_path / "archive"
    run_cli("import", str(files), archive=archive)
    for after in (0.0, 0.15, 0.4):
        out = tmp_path / "out"
        cmd = [sys.executable, "-m", "tui", "--archive", str(archive), "export", uid,
               "--dicom", "--anonymize", "-o", str(out)]  # fmt: skip
        process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not any(p.rglob("IM*") for p in tmp_path.glob(".out.partial-*")):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(after)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)  # a hang fails here
        assert process.returncode == 130 and "Traceback" not in err, err
        assert not out.exists()
        _no_partial(tmp_path)
