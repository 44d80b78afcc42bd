"""The command line as a user runs it: real subprocesses, real files, temporary archives."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli_json, need_shared, read_only_runner, run_cli


def _one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pacs-tui: error:") and fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def test_version_and_help() -> None:
    assert run_cli("--version").stdout.startswith("pacs-tui ")
    assert "import" in run_cli("--help").stdout


def test_import_then_list_as_json(shared: Path, archive_dir: Path) -> None:
    summary = cli_json(
        "import", str(shared / "pydicom_test_files" / "dicomdir"), archive=archive_dir
    )
    assert summary["new"] == 81 and summary["dicomdirs"] >= 1
    studies = cli_json("ls", archive=archive_dir)
    assert {"StudyInstanceUID", "PatientName", "NumberOfStudyRelatedSeries"} <= set(studies[0])
    assert sum(s["NumberOfStudyRelatedInstances"] for s in studies) == 81
    series = cli_json("ls", "--level", "series", "--modality", "CT", archive=archive_dir)
    assert series and all(s["Modality"] == "CT" for s in series)
    assert all("NumberOfSeriesRelatedInstances" in s for s in series)
    one = series[0]["SeriesInstanceUID"]
    instances = cli_json("ls", "--level", "instance", "--series", one, archive=archive_dir)
    assert len(instances) == series[0]["NumberOfSeriesRelatedInstances"]
    assert all(Path(i["path"]).is_file() for i in instances)
    positions = [
        i["ImagePositionPatient"]
        for i in cli_json("ls", "--level", "instance", archive=archive_dir)
    ]
    assert all(p is None or (len(p) == 3 and isinstance(p[0], float)) for p in positions)
    assert any(positions)


def test_table_output_and_name_search(shared: Path, archive_dir: Path) -> None:
    run_cli("import", str(shared / "pydicom_test_files" / "charset"), archive=archive_dir)
    table = run_cli("ls", "--level", "patient", "--patient-name", "RUDIGER*", archive=archive_dir)
    assert table.stdout == ""  # the family name is Äneas
    table = run_cli("ls", "--level", "patient", "--patient-name", "*rudiger", archive=archive_dir)
    assert "Äneas^Rüdiger" in table.stdout
    empty = run_cli("ls", "--patient-name", "nobody", archive=archive_dir)
    assert empty.stdout == "" and "no study matches" in empty.stderr


def test_tags_of_a_file_and_of_an_indexed_uid(shared: Path, archive_dir: Path) -> None:
    path = shared / "pydicom_test_files" / "grayscale_transfer_syntaxes" / "CT_small.dcm"
    text = run_cli("tags", str(path)).stdout
    assert "Patient's Name" in text and "(0010,0010)" in text
    assert "(0009,1001) [GEMS_IDEN_01] Full fidelity" in text  # private tags name their creator
    as_json = cli_json("tags", str(path))
    assert as_json["00100010"]["vr"] == "PN"
    assert "7FE00010" not in as_json  # bulk pixel data left out
    run_cli("import", str(path), archive=archive_dir)
    uid = as_json["00080018"]["Value"][0]
    assert cli_json("tags", uid, archive=archive_dir)["00080018"]["Value"] == [uid]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["import", "/no/such/folder"], "no such file or folder"),
        (["ls", "--date", "2020-01-01"], "YYYYMMDD"),
        (["ls", "--birth-date", "yesterday"], "YYYYMMDD"),
        (["tags", "1.2.3.4.5"], "no archive at"),
        (["forget", "--study", "1.2.3"], "no archive at"),
        (["ls", "--study", "1.2.*"], "not a UID"),
        (["ls", "--date", "20241301"], "not a date"),
        (["ls", "--bogus"], "unknown option --bogus"),
        (["ls", "extra"], "unrecognized arguments: extra"),
        (["import", ""], "empty path"),
        (["forget"], "forget what?"),
    ],
)
def test_user_errors_are_one_line(args: list[str], fragment: str, archive_dir: Path) -> None:
    _one_line_error(run_cli(*args, archive=archive_dir, check=False), fragment)


def test_unknown_uids_in_an_archive_are_one_line(shared: Path, archive_dir: Path) -> None:
    run_cli("import", str(shared / "neurolabusc_dcm_qa_toshiba"), archive=archive_dir)
    tags = run_cli("tags", "1.2.3.4.5", archive=archive_dir, check=False)
    _one_line_error(tags, "no such file, nor an indexed SOPInstanceUID")
    series = cli_json("ls", "--level", "series", archive=archive_dir)[0]["SeriesInstanceUID"]
    other = str(shared / "pydicom_test_files" / "grayscale_transfer_syntaxes" / "CT_small.dcm")
    differences = cli_json("tags", series, "--diff", other, archive=archive_dir)
    assert "PatientName" in differences["elements"]  # a series and a file, two patients
    forget = run_cli("forget", "--study", "1.2.3", archive=archive_dir, check=False)
    _one_line_error(forget, "no study 1.2.3")


def test_unreadable_file_for_tags_is_one_line(shared: Path) -> None:
    path = shared / "pydicom_test_files" / "charset" / "FileInfo.txt"
    _one_line_error(run_cli("tags", str(path), check=False), "not DICOM")


def test_corrupt_index_is_one_line(archive_dir: Path) -> None:
    archive_dir.mkdir()
    (archive_dir / "index.sqlite").write_bytes(b"this is not a database" * 100)
    _one_line_error(run_cli("ls", archive=archive_dir, check=False), "corrupt")


def test_archive_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    _one_line_error(run_cli("ls", archive=tmp_path / "file", check=False), "not a folder")


def test_locked_archive_is_one_line(shared: Path, archive_dir: Path) -> None:
    run_cli("import", str(shared / "neurolabusc_dcm_qa_toshiba"), archive=archive_dir)
    holder = sqlite3.connect(archive_dir / "index.sqlite", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        folder = shared / "pydicom_test_files" / "charset"
        result = run_cli("import", str(folder), archive=archive_dir, check=False)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    _one_line_error(result, "locked")


def test_ephemeral_import_writes_nothing_about_patients(shared: Path, tmp_path: Path) -> None:
    env = {**os.environ, **{v: str(tmp_path / v) for v in ("XDG_DATA_HOME", "XDG_CACHE_HOME")}}
    result = run_cli(
        "import", "--ephemeral", str(shared / "pydicom_test_files" / "charset"), env=env
    )
    assert "Buc^Jérôme" in result.stdout  # what was found is shown for this run
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_forget_asks_before_deleting_managed_files(shared: Path, archive_dir: Path) -> None:
    run_cli("import", "--copy", str(shared / "neurolabusc_dcm_qa_toshiba"), archive=archive_dir)
    series = cli_json("ls", "--level", "series", archive=archive_dir)[0]["SeriesInstanceUID"]
    refused = run_cli(
        "forget", "--series", series, archive=archive_dir, check=False, stdin=subprocess.DEVNULL
    )
    _one_line_error(refused, "--yes")
    assert len(cli_json("ls", "--level", "instance", archive=archive_dir)) == 40
    done = cli_json("forget", "--series", series, "--yes", archive=archive_dir)
    assert done == {"instances": 40, "deleted_files": 40}
    assert not list((archive_dir / "store").rglob("*.dcm"))


def _wait_for_first_batch(archive_dir: Path) -> None:
    """Wait until the import has committed something, so the signal lands mid-import."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            uri = f"file:{archive_dir / 'index.sqlite'}?mode=ro"
            with sqlite3.connect(uri, uri=True, timeout=0.1) as conn:
                if conn.execute("SELECT count(*) FROM instance").fetchone()[0]:
                    return
        except sqlite3.Error:
            pass
        time.sleep(0.02)
    raise AssertionError("the import committed nothing within 60 s")


def _wait_until_no_process_mentions(text: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        alive = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                if text in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    alive.append(proc.name)
            except OSError:
                continue
        if not alive:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"processes {alive} outlived the killed import")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def big_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3,000 real-header files: enough that an import is still running when interrupted."""
    from benchmarks.tree import generate

    need_shared()
    root = tmp_path_factory.mktemp("big")
    generate(root, 3000)
    return root


def test_killed_import_leaves_a_consistent_index(big_tree: Path, archive_dir: Path) -> None:
    tree = big_tree
    cmd = [sys.executable, "-m", "tui", "--archive", str(archive_dir), "import", str(tree)]
    process = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_first_batch(archive_dir)
    process.send_signal(signal.SIGKILL)
    process.wait()
    _wait_until_no_process_mentions(str(archive_dir))  # its reader workers exit too
    with sqlite3.connect(archive_dir / "index.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        instances = conn.execute("SELECT count(*) FROM instance").fetchone()[0]
        counted = conn.execute("SELECT coalesce(sum(num_instances), 0) FROM series").fetchone()[0]
    assert instances == counted
    rest = cli_json("import", str(tree), archive=archive_dir)
    assert 0 < instances < 3000, "the kill should land mid-import"
    assert rest["new"] + instances == 3000


def test_interrupted_import_exits_130(big_tree: Path, archive_dir: Path, tmp_path) -> None:
    tree = big_tree
    cmd = [sys.executable, "-m", "tui", "--archive", str(archive_dir), "import", str(tree)]
    process = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _wait_for_first_batch(archive_dir)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in err
    with sqlite3.connect(archive_dir / "index.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_demo_is_deterministic_and_has_a_real_ct_volume(tmp_path: Path) -> None:
    first = cli_json("demo", archive=tmp_path / "one")
    second = cli_json("demo", archive=tmp_path / "two")
    uids = [s["StudyInstanceUID"] for s in first["studies"]]
    assert uids == [s["StudyInstanceUID"] for s in second["studies"]]
    assert len({s["PatientID"] for s in first["studies"]}) >= 3
    assert {"CT", "MR"} <= {m for s in first["studies"] for m in s["ModalitiesInStudy"]}
    volume = [
        s
        for s in cli_json("ls", "--level", "series", "--modality", "CT", archive=tmp_path / "one")
        if s["NumberOfSeriesRelatedInstances"] >= 200
    ]
    assert volume
    instances = cli_json(
        "ls",
        "--level",
        "instance",
        "--series",
        volume[0]["SeriesInstanceUID"],
        archive=tmp_path / "one",
    )
    assert {(i["Rows"], i["Columns"]) for i in instances} == {(512, 512)}
    one = sorted((tmp_path / "one" / "store").rglob("*.dcm"))
    two = sorted((tmp_path / "two" / "store").rglob("*.dcm"))
    assert [p.name for p in one] == [p.name for p in two]
    assert one[0].read_bytes() == two[0].read_bytes()
    # Built once: a second run does not rebuild.
    before = one[0].stat().st_mtime_ns
    run_cli("demo", archive=tmp_path / "one")
    assert one[0].stat().st_mtime_ns == before
    _demo_has_time_points_and_a_tilted_stack(tmp_path / "one")


def _demo_has_time_points_and_a_tilted_stack(root: Path) -> None:
    """Something to try the 3-D features on: a perfusion series of 30 time points, and a
    head CT acquired with 12° of gantry tilt."""
    from tui.archive.index import Archive
    from tui.archive.query import series_instances
    from tui.render.pipeline import time_points
    from tui.render.volume import assemble, slices_of

    series = {s["SeriesDescription"]: s for s in cli_json("ls", "--level", "series", archive=root)}
    with Archive(root) as archive:
        stacks = {
            name: assemble(slices_of(series_instances(archive, series[name]["SeriesInstanceUID"])))
            for name in ("Perfusion DSC 30 phases", "Head 5mm brain")
        }
    timeline = time_points(stacks["Perfusion DSC 30 phases"], 0)
    assert len(timeline) == 30 and [len(s.slices) for s in timeline] == [12] * 30
    assert [s.slices[0].temporal for s in timeline] == list(range(1, 31))
    [head] = stacks["Head 5mm brain"]
    assert head.tilted and round(head.tilt) == 12


def test_demo_refuses_a_real_archive(shared: Path, archive_dir: Path) -> None:
    run_cli("import", str(shared / "neurolabusc_dcm_qa_toshiba"), archive=archive_dir)
    _one_line_error(run_cli("demo", archive=archive_dir, check=False), "not the demo")
    assert json.loads(run_cli("ls", "--json", archive=archive_dir).stdout)


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 3 MB file system (tmpfs, needs root): the archive runs out of space on it."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_loses_nothing_and_says_so(shared: Path, tiny_disk: Path) -> None:
    archive = tiny_disk / "archive"
    folder = shared / "neurolabusc_dcm_qa_ts"  # 9 files of about 0.3 MB each, and more
    result = run_cli(
        "import",
        "--copy",
        "--json",
        str(shared / "neurolabusc_dcm_qa_xa30i"),
        str(folder),
        archive=archive,
        check=False,
    )
    assert "Traceback" not in result.stderr
    if result.returncode == 0:
        summary = json.loads(result.stdout)
        assert summary["new"] > 0
        assert any("No space left" in reason for reason in summary["skipped_reasons"])
    else:
        _one_line_error(result, "full")
    with sqlite3.connect(archive / "index.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = conn.execute("SELECT path, size FROM instance").fetchall()
    assert all(Path(path).stat().st_size == size for path, size in rows)
    assert not list(archive.rglob(".incoming-*"))  # no partial files left behind


def test_archive_location_from_env_and_config(shared: Path, tmp_path: Path) -> None:
    config_home = tmp_path / "config"
    (config_home / "pacs-tui").mkdir(parents=True)
    configured = tmp_path / "from-config"
    (config_home / "pacs-tui" / "config.toml").write_text(f'archive = "{configured}"\n')
    env = {**os.environ, "XDG_CONFIG_HOME": str(config_home)}
    folder = str(shared / "neurolabusc_dcm_qa_toshiba")
    run_cli("import", folder, env=env)
    assert (configured / "index.sqlite").is_file()
    from_env = tmp_path / "from-env"
    run_cli("import", folder, env={**env, "PACS_TUI_ARCHIVE": str(from_env)})
    assert (from_env / "index.sqlite").is_file()
    (config_home / "pacs-tui" / "config.toml").write_text("archive = [oops\n")
    _one_line_error(run_cli("ls", env=env, check=False), "config.toml")


def test_log_file_records_counts_but_no_patient_data(shared: Path, archive_dir: Path) -> None:
    folder = shared / "pydicom_test_files" / "charset"
    run_cli("-v", "import", str(folder), archive=archive_dir)
    log = Path(os.environ["XDG_STATE_HOME"]) / "pacs-tui" / "log" / "pacs-tui.log"
    text = log.read_text()
    assert "import: 13 new" in text
    for private in ("Buc", "Jérôme", "SCSFREN", str(folder), "1.3.6.1.4.1"):
        assert private not in text


def test_tags_json_keeps_a_private_value_that_does_not_fit_its_vr(shared: Path) -> None:
    folder = shared / "neurolabusc_dcm_qa_ge" / "MR_GE_SIGNA-Pioneer_3D_Ax_T1_MPRAGE"
    result = run_cli("tags", "--json", str(sorted(folder.iterdir())[0]))
    assert result.stderr == ""
    assert json.loads(result.stdout)["00431080"]["Value"][0] == "P1:"


def test_output_to_a_non_utf8_terminal_never_crashes(shared: Path, archive_dir: Path) -> None:
    run_cli("import", str(shared / "pydicom_test_files" / "charset"), archive=archive_dir)
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    table = run_cli("ls", "--level", "patient", archive=archive_dir, env=env)
    assert "Buc^J\\xe9r\\xf4me" in table.stdout
    rows = json.loads(
        run_cli("ls", "--level", "patient", "--json", archive=archive_dir, env=env).stdout
    )
    assert "Buc^Jérôme" in {row["PatientName"] for row in rows}


def test_an_interrupted_demo_build_is_rebuilt(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    cmd = [sys.executable, "-m", "tui", "--archive", str(root), "demo"]
    process = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (root / "store").is_dir() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)
    studies = cli_json("demo", archive=root)["studies"]
    assert len(studies) == 5


def test_triage_from_the_command_line(shared: Path, archive_dir: Path, tmp_path: Path) -> None:
    run_cli("import", str(shared / "pydicom_test_files" / "dicomdir"), archive=archive_dir)
    studies = cli_json("ls", archive=archive_dir)
    uid = studies[0]["StudyInstanceUID"]
    state = cli_json(
        "triage", uid, "--flag", "--priority", "3", "--note", "call back", archive=archive_dir
    )
    assert state == {
        "StudyInstanceUID": uid,
        "flagged": True,
        "priority": 3,
        "reviewed": False,
        "note": "call back",
    }
    flagged = cli_json("ls", "--flagged", archive=archive_dir)
    assert [s["StudyInstanceUID"] for s in flagged] == [uid] and flagged[0]["priority"] == 3
    run_cli("triage", uid, "--reviewed", archive=archive_dir)
    assert uid not in {
        s["StudyInstanceUID"] for s in cli_json("ls", "--unreviewed", archive=archive_dir)
    }
    out = tmp_path / "triage.csv"
    run_cli("triage", "--export", str(out), archive=archive_dir)
    assert out.read_text().splitlines()[1].startswith(uid)
    as_json = tmp_path / "triage.json"
    run_cli("triage", "--export", str(as_json), archive=archive_dir)
    assert json.loads(as_json.read_text())[0]["note"] == "call back"
    _one_line_error(
        run_cli("triage", "1.2.3", "--flag", archive=archive_dir, check=False), "no study 1.2.3"
    )


def test_tags_diff_of_two_instances(shared: Path) -> None:
    folder = shared / "neurolabusc_dcm_qa_xa30i"
    first, second = sorted(p for p in folder.rglob("*.dcm"))[:2]
    rows = cli_json("tags", str(first), "--diff", str(second))
    tags = {row["tag"] for row in rows}
    assert "(0020,0013)" in tags and "(0028,0010)" not in tags  # instance number, not rows


def test_a_read_only_archive_is_listed_and_refuses_writes_in_one_line(
    shared: Path, archive_dir: Path, tmp_path: Path
) -> None:
    prefix = read_only_runner(tmp_path)
    run_cli("import", str(shared / "neurolabusc_dcm_qa_toshiba"), archive=archive_dir)
    study = cli_json("ls", archive=archive_dir)[0]["StudyInstanceUID"]
    mount = tmp_path / "cdrom"
    mount.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess:
        command = [*prefix, str(archive_dir), str(mount), sys.executable, "-m", "tui"]
        return subprocess.run(
            [*command, "--archive", str(mount), *args],
            capture_output=True, text=True, timeout=120, cwd=ROOT,
        )  # fmt: skip

    listed = run("ls", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [s["StudyInstanceUID"] for s in json.loads(listed.stdout)] == [study]
    series = run("ls", "--level", "instance", "--json")
    assert len(json.loads(series.stdout)) == 40
    assert run("triage", "--export", str(tmp_path / "triage.csv")).returncode == 0
    writes = [
        ("import", str(shared / "neurolabusc_dcm_qa_ge")),
        ("import", "--copy", str(shared / "neurolabusc_dcm_qa_ge")),
        ("forget", "--study", study, "--yes"),
        ("triage", study, "--flag"),
        ("receive", "--port", "0"),  # what get and receive file goes into the archive
    ]
    for args in writes:
        _one_line_error(run(*args), "is read-only")
    assert sorted(p.name for p in archive_dir.iterdir()) == ["index.sqlite"]

    # Changes left in the WAL (a copy taken while pacs-tui wrote) cannot be read from the
    # database file alone: said so, rather than listing what is not the archive.
    with contextlib.closing(sqlite3.connect(archive_dir / "index.sqlite")) as conn:
        conn.isolation_level = None
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute("INSERT INTO triage VALUES ('1.2.3', 1, 0, 0, '', 'now')")
        (archive_dir / "index.sqlite-shm").unlink()
        _one_line_error(run("ls"), "index.sqlite-wal")
        conn.execute("PRAGMA user_version = 2")  # an older pacs-tui's index cannot be upgraded
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    _one_line_error(run("ls"), "schema version 2, older")


def test_a_mistyped_option_or_command_is_named_with_the_nearest_one(tmp_path: Path) -> None:
    cases = [
        (["--archve", str(tmp_path), "ls"], "unknown option --archve; did you mean --archive?"),
        (["ls", "--levle", "series"], "unknown option --levle; did you mean --level?"),
        (["import", "--cpy", str(tmp_path)], "unknown option --cpy; did you mean --copy?"),
        (["lss"], "unknown command 'lss'; did you mean ls?"),
        (["node", "ad", "x"], "unknown command 'ad'; did you mean add?"),
        (["ls", "--archive", str(tmp_path)], "--archive is a global option: it goes before"),
        (["node", "ls", "--privacy"], "--privacy is a global option: it goes before"),
    ]
    for args, message in cases:
        result = run_cli(*args, check=False)
        _one_line_error(result, message)
        assert result.returncode == 2 and "invalid choice" not in result.stderr
    # What is right still parses: abbreviations, and a value given after '='.
    listed = run_cli("--verb", "--archive=" + str(tmp_path), "ls", "--lev", "series", "--json")
    assert listed.stdout.strip() == "[]"


def test_import_of_no_dicom_at_all_fails_but_of_known_files_does_not(
    shared: Path, archive_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "documents"
    folder.mkdir()
    for name in ("README.md", "manifest_files.tsv"):
        (folder / name).write_bytes((shared / name).read_bytes())
    for _ in range(2):  # the second time the files are known (as not DICOM): still nothing
        result = run_cli("import", str(folder), archive=archive_dir, check=False)
        _one_line_error(result, f"no DICOM file found in {folder}: nothing was imported")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli("import", "--ephemeral", "--json", str(empty), check=False)
    _one_line_error(result, "no DICOM file found")
    assert json.loads(result.stdout)["new"] == 0  # the summary is still printed
    dicom = shared / "neurolabusc_dcm_qa_toshiba"
    assert cli_json("import", str(dicom), archive=archive_dir)["new"] == 40
    again = cli_json("import", str(dicom), str(folder), archive=archive_dir)
    assert again["new"] == 0 and again["unchanged"] == 42 + 2


def test_tags_of_a_truncated_file_says_so_after_what_could_be_read(
    shared: Path, tmp_path: Path
) -> None:
    malformed = shared / "pydicom_test_files" / "malformed_or_nonconformant"
    cut = run_cli("tags", str(malformed / "rtplan_truncated.dcm"), check=False)
    _one_line_error(cut, "rtplan_truncated.dcm is truncated: the file ends inside its header")
    assert "RT Plan Label" in cut.stdout  # what could be read is still shown
    pixels = run_cli("tags", "--json", str(malformed / "MR_truncated.dcm"), check=False)
    _one_line_error(pixels, "the pixel data ends 62 bytes past the end of the file")
    assert json.loads(pixels.stdout)["00100010"]["vr"] == "PN"
    stub = tmp_path / "stub.dcm"
    whole = shared / "pydicom_test_files" / "grayscale_transfer_syntaxes" / "CT_small.dcm"
    stub.write_bytes(whole.read_bytes()[:1000])  # pydicom gives up inside a sequence
    _one_line_error(run_cli("tags", str(stub), check=False), f"{stub} is truncated")
    assert run_cli("tags", str(whole)).returncode == 0


def test_ls_shows_which_series_have_no_images_to_render(
    shared: Path, archive_dir: Path, tmp_path: Path
) -> None:
    run_cli("import", str(shared / "pydicom_test_files" / "multiframe_and_non_image_sop"),
            archive=archive_dir)  # fmt: skip
    series = {s["Modality"]: s for s in cli_json("ls", "--level", "series", archive=archive_dir)}
    report, image = series["SR"], series["MR"]
    assert report["NumberOfSeriesRelatedInstances"] == 1  # the key kept its meaning
    assert report["NumberOfSeriesRelatedImages"] == 0
    assert image["NumberOfSeriesRelatedImages"] == image["NumberOfSeriesRelatedInstances"] == 1
    table = run_cli("ls", "--level", "series", "--modality", "SR", archive=archive_dir).stdout
    header, *rows = table.splitlines()
    columns = header.split()
    assert columns[-3:] == ["Inst", "Img", "SeriesInstanceUID"]
    assert rows and all(row.split()[-3:-1] == ["1", "0"] for row in rows)
    # What ls says has no images is what render refuses, and the other way round.
    uid = report["SeriesInstanceUID"]
    out = tmp_path / "out.png"
    refused = run_cli("render", uid, "-o", str(out), archive=archive_dir, check=False)
    assert refused.returncode != 0 and not out.exists()
    run_cli("render", image["SeriesInstanceUID"], "-o", str(out), archive=archive_dir)
    assert out.stat().st_size > 0


def test_a_jpeg_whose_dataset_is_implicit_vr_renders_as_pydicom_decodes_it(
    shared: Path, archive_dir: Path, tmp_path: Path
) -> None:
    import numpy as np
    import pydicom
    from PIL import Image

    # Its transfer syntax is JPEG Baseline (explicit VR) but its dataset is implicit VR:
    # pydicom's file decoder misreads the pixel data element; dcmread does not.
    path = shared / "pydicom_test_files" / "color_and_palette" / "SC_rgb_jpeg.dcm"
    run_cli("import", str(path), archive=archive_dir)
    [series] = cli_json("ls", "--level", "series", archive=archive_dir)
    out = tmp_path / "rgb.png"
    run_cli("render", series["SeriesInstanceUID"], "-o", str(out), archive=archive_dir)
    with pytest.warns(UserWarning, match="implicit VR"):
        expected = pydicom.dcmread(path).pixel_array
    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), expected)
