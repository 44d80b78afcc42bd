"""Faults during a retrieve (issue 12): the PACS killed in the middle of a C-GET, and a disk
that fills up under one. Real Orthanc, real files, a real small filesystem: whatever breaks,
nothing partial is indexed or left behind, and the next retrieve resumes.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from tests.conftest import cli_json, need_shared, run_cli
from tests.servers import clear, start_orthanc, upload

J2K = "neurolabusc_dcm_qa_frag/MR_Siemens_6001_anat-T1w_J2K_lossless_multifragment"  # 96 J2K


def _files() -> list[Path]:
    return sorted(p for p in (need_shared() / J2K).iterdir() if p.suffix == ".dcm")


def _pixels(paths) -> dict[str, bytes]:
    return {str((ds := pydicom.dcmread(p)).SOPInstanceUID): bytes(ds.PixelData) for p in paths}


def _study() -> str:
    return str(pydicom.dcmread(_files()[0], stop_before_pixels=True).StudyInstanceUID)


def _whole_and_indexed(archive: Path, originals: dict[str, bytes]) -> int:
    """Every indexed file is whole, every file in the store is indexed, none is left in the
    incoming folder; the number indexed."""
    rows = cli_json("ls", "--level", "instance", archive=archive)
    indexed = {r["path"] for r in rows}
    assert _pixels(indexed) == {r["SOPInstanceUID"]: originals[r["SOPInstanceUID"]] for r in rows}
    store = archive / "store"
    on_disk = {str(p) for p in store.rglob("*") if p.is_file() and "incoming" not in p.parts}
    assert on_disk == indexed
    incoming = store / "incoming"
    assert not incoming.exists() or not list(incoming.iterdir())
    return len(indexed)


def test_the_pacs_killed_mid_get_leaves_whole_files_and_the_next_get_resumes(
    tmp_path: Path, pacstui_port: int
) -> None:
    from tui.net.errors import NetError
    from tui.net.nodes import Node
    from tui.net.scu import retrieve

    originals = _pixels(_files())
    pacs = start_orthanc(tmp_path / "orthanc", move_port=pacstui_port)
    archive = tmp_path / "archive"
    try:
        upload(pacs, _files())

        def kill_at_ten(transfer) -> None:
            if transfer.tally.received == 10:
                pacs.process.kill()  # kill -9, in the middle of the C-GET

        node = Node("pacs", pacs.aet, pacs.host, pacs.port, dimse_timeout=10)
        with pytest.raises(NetError) as failure:
            retrieve(node, archive, _study(), progress=kill_at_ten)
        assert "dropped the association" in str(failure.value)
        first = _whole_and_indexed(archive, originals)
        assert 10 <= first < 96
    finally:
        pacs.stop()
    # The same PACS again, over the same storage: the retrieve asks only for what is missing.
    pacs = start_orthanc(tmp_path / "orthanc", move_port=pacstui_port)
    try:
        node = Node("pacs", pacs.aet, pacs.host, pacs.port)
        transfer = retrieve(node, archive, _study())
        assert (transfer.skipped, transfer.tally.new, transfer.failed) == (first, 96 - first, 0)
        assert _whole_and_indexed(archive, originals) == 96
    finally:
        pacs.stop()


@contextlib.contextmanager
def small_disk(where: Path, megabytes: int) -> Iterator[Path]:
    """A real filesystem of ``megabytes`` (tmpfs, mounted as root) at ``where``."""
    where.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs",
                           str(where)], capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount a small filesystem in CI: {done.stderr.strip()}")
        pytest.skip(f"a full disk needs a tmpfs mount, as root: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_full_disk_during_get_is_one_clear_line_and_nothing_half_written_is_indexed(
    tmp_path: Path, orthanc
) -> None:
    files = _files()
    originals = _pixels(files)
    clear(orthanc)
    upload(orthanc, files)
    run_cli("node", "add", "pacs", orthanc.aet, orthanc.host, str(orthanc.port))
    total = sum(p.stat().st_size for p in files)
    with small_disk(tmp_path / "disk", max(2, total // 2 // (1 << 20))) as disk:
        archive = disk / "archive"
        result = run_cli("get", "pacs", "--study", _study(), archive=archive, check=False)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        lines = result.stderr.strip().splitlines()
        # Whichever fills the disk first, a file or the index, the line says so.
        full = ("No space left on device", "disk is full")
        assert len(lines) == 1 and any(f in lines[0] for f in full), result.stderr
        kept = _whole_and_indexed(archive, originals)
        assert 0 < kept < 96
        # Room again (the disk grown): the get resumes.
        subprocess.run(["mount", "-o", "remount,size=200m", str(disk)], check=True)
        summary = cli_json("get", "pacs", "--study", _study(), archive=archive)
        assert (summary["already_present"], summary["new"], summary["failed"]) == (
            kept, 96 - kept, 0)  # fmt: skip
        assert _whole_and_indexed(archive, originals) == 96


def test_an_arrival_naming_another_studys_series_is_refused_not_filed(tmp_path: Path) -> None:
    """The archive refuses a file whose series is filed under another study (issue 12); an
    instance arriving over the network gets the same answer, and nothing is left in the store."""
    from tests.synthetic import AXIAL, write_series
    from tui.net.status import CANNOT_UNDERSTAND, SUCCESS
    from tui.net.storage import Filer, Tally

    series = write_series(tmp_path / "a", AXIAL, count=2, size=16)
    first, second = sorted((tmp_path / "a").iterdir())
    other = pydicom.dcmread(second)
    other.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.2"  # the same series, another study
    other.save_as(second, enforce_file_format=True)
    filer, tally = Filer(tmp_path / "archive"), Tally()
    try:
        assert filer.file(first.read_bytes(), tally) == SUCCESS
        assert filer.file(second.read_bytes(), tally) == CANNOT_UNDERSTAND
    finally:
        filer.close()
    assert (tally.new, tally.failed) == (1, 1) and "another StudyInstanceUID" in tally.errors[0]
    rows = cli_json("ls", "--level", "instance", archive=tmp_path / "archive")
    assert [r["SeriesInstanceUID"] for r in rows] == [series]
    assert len([p for p in (tmp_path / "archive" / "store").rglob("*.dcm")]) == 1


def test_a_half_written_arrival_left_by_a_killed_process_is_cleaned_up(tmp_path: Path) -> None:
    """kill -9 in the middle of an arrival leaves its spool file; the next transfer removes
    it once it is clearly nobody's (untouched for an hour), and leaves a fresh one alone."""
    from tui.net.storage import Filer

    Filer(tmp_path / "archive").close()
    spool = tmp_path / "archive" / "store" / "incoming"
    old, fresh = spool / ".incoming-old", spool / ".incoming-fresh"
    old.write_bytes(b"DICM half")
    fresh.write_bytes(b"DICM being written")
    os.utime(old, (0, time.time() - 7200))
    Filer(tmp_path / "archive").close()
    assert sorted(p.name for p in spool.iterdir()) == [".incoming-fresh"]
