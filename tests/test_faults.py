"""Import under faults, with real processes and a real small file system: ``kill -9`` in
the middle, two imports into one archive at once, and a full disk during ``--copy``."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.tree import generate
from tests.conftest import ROOT, copy_tree, need_shared, run_cli, tmpfs

# Columns that say what the index holds, not the order it was written in (no row ids).
_ROWS = {
    "patient": "SELECT patient_id, patient_name, name_key, birth_date, sex FROM patient",
    "study": "SELECT p.patient_id, p.patient_name, st.study_uid, st.study_date, st.study_time,"
    " st.accession, st.description, st.referring_physician, st.modalities, st.num_series,"
    " st.num_instances, st.num_images FROM study st JOIN patient p USING (patient_pk)",
    "series": "SELECT st.study_uid, se.series_uid, se.modality, se.series_number,"
    " se.description, se.body_part, se.num_instances, se.num_images"
    " FROM series se JOIN study st USING (study_pk)",
    "instance": "SELECT se.series_uid, i.* FROM instance i JOIN series se USING (series_pk)",
    "seen_file": "SELECT * FROM seen_file",
}


def _index(archive: Path) -> dict[str, list[tuple[tuple[str, object], ...]]]:
    """Every row of the index, sorted, without row ids; a copy's path is relative to its
    archive and its modification time left out (each import's copies are new files)."""
    conn = sqlite3.connect(f"file:{archive / 'index.sqlite'}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        out = {}
        for table, query in _ROWS.items():
            rows = []
            for row in conn.execute(query):
                # A Row iterates over its values: its keys() are its column names.
                values = {k: row[k] for k in row.keys() if not k.endswith("_pk")}  # noqa: SIM118
                if values.get("managed"):
                    values["path"] = os.path.relpath(values["path"], archive)
                    values["mtime_ns"] = None
                rows.append(tuple(values.items()))
            out[table] = sorted(rows, key=repr)
        return out
    finally:
        conn.close()


def _indexed_files(archive: Path) -> list[Path]:
    conn = sqlite3.connect(f"file:{archive / 'index.sqlite'}?mode=ro", uri=True)
    try:
        return [Path(path) for (path,) in conn.execute("SELECT path FROM instance")]
    finally:
        conn.close()


def _instances(archive: Path) -> int:
    """Instances indexed so far (0 while the index does not exist yet)."""
    if not (archive / "index.sqlite").exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{archive / 'index.sqlite'}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT count(*) FROM instance").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:  # the schema is still being written
        return 0


def _import(archive: Path, *args: str) -> subprocess.Popen[str]:
    """``pacs-tui import`` in a session of its own (its workers are found by that)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tui", "--archive", str(archive), "import", *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def _wait_for_session_to_end(session: int, timeout: float = 30) -> None:
    """Wait for every process of ``session`` (a killed import's orphaned workers) to exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        members = [p for p in os.listdir("/proc") if p.isdigit() and _running_in(p, session)]
        if not members:
            return
        time.sleep(0.05)
    raise AssertionError(f"processes of session {session} still run: {members}")


def _running_in(pid: str, session: int) -> bool:
    """Whether process ``pid`` runs (a zombie does not) in ``session``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # it exited meanwhile
        return False
    state, _, _, sid = stat.rpartition(")")[2].split()[:4]
    return state != "Z" and int(sid) == session


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,000 files of real headers (new UIDs each): ten batches of an import."""
    need_shared()  # the headers come from there
    root = tmp_path_factory.mktemp("tree")
    generate(root, 1000, per_series=100)
    return root


@pytest.mark.parametrize("copy", [False, True], ids=["in-place", "copy"])
def test_kill_9_in_the_middle_then_import_again_equals_a_clean_import(
    tree: Path, tmp_path: Path, copy: bool
) -> None:
    mode = ["--copy"] if copy else []
    clean = tmp_path / "clean"
    run_cli("import", *mode, str(tree), archive=clean)
    total = _instances(clean)
    assert total == 1000

    killed = tmp_path / "killed"
    process = _import(killed, *mode, str(tree))
    while _instances(killed) == 0 and process.poll() is None:
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)  # the import itself; its workers notice and exit
    process.wait()
    _wait_for_session_to_end(process.pid)
    assert process.returncode == -signal.SIGKILL
    assert 0 < _instances(killed) < total, "the kill must land in the middle of the import"

    again = run_cli("import", *mode, str(tree), archive=killed)
    assert again.returncode == 0
    assert _index(killed) == _index(clean)
    if copy:  # every stored file whole: the same bytes as the clean import's copy (a copy
        # the kill cut short may stay behind as a temporary file, which nothing indexes)
        stored = {k: v for k, v in _digests(killed / "store").items() if ".incoming-" not in k}
        assert stored == _digests(clean / "store")


def test_two_imports_into_one_archive_at_once_lose_nothing(shared: Path, tmp_path: Path) -> None:
    # Two series of one study: both imports file the same patient and study at once.
    first = [shared / "neurolabusc_dcm_qa_ge", shared / "neurolabusc_dcm_qa_xa30i"]
    second = [
        shared / "neurolabusc_dcm_qa_toshiba",
        shared / "neurolabusc_dcm_qa_frag" / "MR_Siemens_6001_anat-T1w_J2K_lossless_multifragment",
    ]
    clean = tmp_path / "clean"
    run_cli("import", *map(str, first + second), archive=clean)
    both = tmp_path / "both"  # created by the two at once
    processes = [_import(both, *map(str, paths)) for paths in (first, second)]
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
    assert _index(both) == _index(clean)
    assert len(_index(both)["instance"]) == 130 + 96 + 40 + 96


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 3 MB tmpfs, mounted for the test (root only; CI runs as root)."""
    with tmpfs(tmp_path / "disk", "3m") as disk:
        yield disk


def test_a_full_disk_during_import_copy_is_one_line_and_nothing_partial_is_indexed(
    shared: Path, tmp_path: Path, small_disk: Path
) -> None:
    source = copy_tree(
        shared / "neurolabusc_dcm_qa_ge" / "MR_GE_SIGNA-Pioneer_3D_Ax_T1_MPRAGE", tmp_path / "src"
    )
    before = _digests(source)
    archive = small_disk / "archive"
    full = run_cli("import", "--copy", str(source), archive=archive, check=False)
    assert full.returncode == 1 and "Traceback" not in full.stderr
    [line] = full.stderr.splitlines()
    assert line.startswith("pacs-tui: error: ") and "disk full" in line
    assert _digests(source) == before  # the sources untouched
    # No temporary file is left, and what is indexed is whole: its source's bytes.
    assert not [p for p in (archive / "store").rglob("*") if ".incoming-" in p.name]
    indexed = _indexed_files(archive)
    assert 0 < len(indexed) < 130
    sources = set(before.values())
    assert all(hashlib.sha256(path.read_bytes()).hexdigest() in sources for path in indexed)

    # With room again, the next import finishes the job: the same index as a clean import.
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    run_cli("import", "--copy", str(source), archive=archive)
    clean = tmp_path / "clean"
    run_cli("import", "--copy", str(source), archive=clean)
    assert _index(archive) == _index(clean)
