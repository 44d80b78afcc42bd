"""Privacy on a shared server, through the real command line and the real app in a terminal:
what pacs-tui keeps is its user's alone (0700 folders, 0600 files, whatever the umask);
no patient data goes to the log; tag values, file names and a PACS's answers never drive the
terminal; an app that breaks says so in one line, exits 1, and logs the traceback.

The app's screens, one by one, are in ``tests/test_app_trust.py`` (Textual's pilot).
"""

from __future__ import annotations

import os
import shlex
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pydicom.uid
import pytest

from tests.conftest import ROOT, cli_json, read_only_runner, run_cli
from tests.servers import HOST, accepts, free_port, upload
from tests.synthetic import AXIAL, write_series
from tests.test_e2e_tmux import _keys, _open_row, _start, _wait_for
from tests.test_e2e_tmux import tmux as tmux_fixture
from tui.archive.importer import import_paths
from tui.archive.index import Archive

# A closing tag that closes nothing, a tag, then escapes: a new window title, insert mode and
# a cleared screen. tmux reports the first two; insert mode needs no BEL, which Rich drops
# from some text.
HOSTILE = "X[/]Y[bold]\x1b]0;owned\x07\x1b[4h\x1b[2J"
SHOWN = "X[/]Y[bold]"  # what of HOSTILE must be seen as it is: markup is never parsed
AS_TEXT = "X[/]Y[bold]?]0;owned??[4h?[2J"  # as the app shows it: control characters as "?"
AS_ESCAPED = "X[/]Y[bold]\\x1b]0;owned\\x07\\x1b[4h\\x1b[2J"  # as commands print it

tmux = tmux_fixture  # a real terminal (tests/test_e2e_tmux.py)


def write_hostile_series(folder: Path, count: int = 8) -> Path:
    """A synthetic CT series (64 x 64) with HOSTILE in every value a screen or command
    shows, after a letter that says which (``N:`` the name, ``I:`` the ID, ``S:`` and ``R:``
    the study's and the series' descriptions, ``H:`` the institution, ``W:`` the window's
    explanation), and in every file's name."""
    write_series(folder, AXIAL, count=count)
    for number, path in enumerate(sorted(folder.iterdir())):
        ds = pydicom.dcmread(path)
        ds.PatientName = "N:" + HOSTILE
        ds.PatientID = "I:" + HOSTILE
        ds.StudyDescription = "S:" + HOSTILE
        ds.SeriesDescription = "R:" + HOSTILE
        ds.InstitutionName = "H:" + HOSTILE
        ds.AccessionNumber = "A[/]\x1b[2J"  # an SH: 16 characters at most
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.WindowCenterWidthExplanation = "W:" + HOSTILE
        ds.save_as(folder / f"F[bold]\x1b]0;owned\x07{number}.dcm")
        path.unlink()
    return folder


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _homes() -> tuple[Path, Path]:
    """The config and log folders of this test's home (see ``_isolated_home``)."""
    state = Path(os.environ["XDG_STATE_HOME"])
    return Path(os.environ["XDG_CONFIG_HOME"]) / "pacs-tui", state / "pacs-tui" / "log"


# -- 0700 folders, 0600 files --------------------------------------------------------------------


def test_the_archive_config_and_log_are_private_under_umask_022(tmp_path: Path) -> None:
    write_series(tmp_path / "ct", AXIAL, count=4, size=16)
    archive = tmp_path / "archive"
    config_dir, log_dir = _homes()
    run_cli("import", "--copy", str(tmp_path / "ct"), archive=archive, umask=0o022)
    run_cli("node", "add", "pacs", "PACS", HOST, "104", umask=0o022)
    assert _mode(archive) == 0o700 and _mode(archive / "index.sqlite") == 0o600
    stored = [p for p in (archive / "store").rglob("*") if p.is_file()]
    assert len(stored) == 4 and {_mode(p) for p in stored} == {0o600}
    assert _mode(log_dir) == 0o700 and _mode(log_dir / "pacs-tui.log") == 0o600
    assert "import: 4 new" in (log_dir / "pacs-tui.log").read_text()
    assert _mode(config_dir) == 0o700  # made private before node add wrote into it
    assert _mode(config_dir / "config.toml") == 0o600  # and written private by it
    listed = run_cli("ls", archive=archive, umask=0o022)  # the next start closes the rest
    assert "Synthetic^Phantom" in listed.stdout and not listed.stderr
    assert _mode(archive / "store") == 0o700 and _mode(config_dir / "config.toml") == 0o600
    # The umask was 022 all along: an exported image follows it, as it should.
    (series,) = cli_json("ls", "--level", "series", archive=archive)
    view = tmp_path / "view.png"
    run_cli("render", series["SeriesInstanceUID"], "-o", str(view), archive=archive, umask=0o022)
    assert _mode(view) == 0o644


def test_the_index_journals_are_private_under_umask_022(tmp_path: Path) -> None:
    """SQLite gives ``-wal`` and ``-shm`` the index's mode: they hold what it holds."""
    write_series(tmp_path / "ct", AXIAL, count=4, size=16)
    index = tmp_path / "archive" / "index.sqlite"
    umask = os.umask(0o022)
    try:
        with Archive(index.parent) as archive:
            import_paths(archive, [tmp_path / "ct"])
            reader = sqlite3.connect(index)  # a second connection keeps the WAL files there
            assert reader.execute("SELECT count(*) FROM instance").fetchone() == (4,)
            journals = [Path(f"{index}-wal"), Path(f"{index}-shm")]
            assert [_mode(path) for path in journals] == [0o600, 0o600]
            reader.close()
    finally:
        os.umask(umask)


def test_what_was_opened_to_others_is_closed_on_the_next_start(tmp_path: Path) -> None:
    write_series(tmp_path / "ct", AXIAL, count=4, size=16)
    archive = tmp_path / "archive"
    config_dir, log_dir = _homes()
    run_cli("import", "--copy", str(tmp_path / "ct"), archive=archive)
    run_cli("node", "add", "pacs", "PACS", HOST, "104")
    folders = [archive, archive / "store", config_dir, log_dir]
    files = [archive / "index.sqlite", config_dir / "config.toml", log_dir / "pacs-tui.log"]
    for path in folders:
        path.chmod(0o755)
    for path in files:
        path.chmod(0o644)
    listed = run_cli("ls", archive=archive)
    assert "Synthetic^Phantom" in listed.stdout and not listed.stderr  # fixed without a word
    assert [_mode(p) for p in folders] == [0o700] * 4
    assert [_mode(p) for p in files] == [0o600] * 3


def test_another_users_archive_is_read_as_it_is_with_one_warning(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can give files to another user")
    write_series(tmp_path / "ct", AXIAL, count=4, size=16)
    archive = tmp_path / "archive"
    run_cli("import", str(tmp_path / "ct"), archive=archive)
    for path, mode in ((archive, 0o755), (archive / "index.sqlite", 0o644)):
        path.chmod(mode)
        os.chown(path, 4242, 4242)
    listed = run_cli("ls", archive=archive)
    assert "Synthetic^Phantom" in listed.stdout
    (warning,) = listed.stderr.splitlines()
    assert warning.startswith("pacs-tui: warning: other users may read")
    assert f"{archive} (mode 0755, owned by uid 4242)" in warning and "index.sqlite" in warning
    assert (_mode(archive), _mode(archive / "index.sqlite")) == (0o755, 0o644)  # not ours


def test_a_read_only_archive_open_to_others_is_read_with_one_warning(tmp_path: Path) -> None:
    prefix = read_only_runner(tmp_path)
    write_series(tmp_path / "ct", AXIAL, count=4, size=16)
    archive, mount = tmp_path / "archive", tmp_path / "cdrom"
    mount.mkdir()
    run_cli("import", str(tmp_path / "ct"), archive=archive)
    archive.chmod(0o755)
    (archive / "index.sqlite").chmod(0o644)
    command = [sys.executable, "-m", "tui", "--archive", str(mount), "ls"]
    listed = subprocess.run(
        [*prefix, str(archive), str(mount), *command],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert listed.returncode == 0 and "Synthetic^Phantom" in listed.stdout, listed.stderr
    (warning,) = listed.stderr.splitlines()
    assert f"{mount} (mode 0755: Read-only file system)" in warning, warning


# -- no patient data in the log ------------------------------------------------------------------


def _patient(folder: Path) -> dict[str, str]:
    """A series of a patient whose every identifier is unlike anything else in a log; what
    must not be logged, by what it is."""
    write_series(folder, AXIAL, count=4, size=16)
    study = pydicom.uid.generate_uid()
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        ds.PatientName, ds.PatientID = "Quaxley^Zebulon", "QX55817"
        ds.PatientBirthDate, ds.AccessionNumber = "19230405", "ACCQX6620"
        ds.StudyInstanceUID = study
        ds.save_as(path)
    ds = pydicom.dcmread(next(folder.iterdir()))
    return {
        "name": "Quaxley", "given name": "Zebulon", "ID": "QX55817", "birth date": "19230405",
        "birth date, ISO": "1923-04-05", "accession": "ACCQX6620", "folder": folder.name,
        "study": study, "series": ds.SeriesInstanceUID, "instance": ds.SOPInstanceUID,
    }  # fmt: skip


def _serve(archive: Path, port: int) -> subprocess.Popen[str]:
    """``pacs-tui serve`` as a user starts it, answering once it listens."""
    server = subprocess.Popen(
        [sys.executable, "-m", "tui", "--archive", str(archive), "serve", "--aet", "LEAKPACS",
         "--host", HOST, "--port", str(port)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not accepts(port) and time.monotonic() < deadline:
        assert server.poll() is None, server.communicate()
        time.sleep(0.1)
    return server


def test_no_patient_data_in_the_log_at_the_default_verbosity(tmp_path: Path, tmux) -> None:
    """Import, serve, find, get and the app (browser, viewer, tags, a query on the remote
    screen) at the default verbosity: the log and stderr hold counts and timings, and no
    name, ID, birth date, accession number, UID or folder name of the patient."""
    folder = tmp_path / "Quaxley_Zebulon_19230405"  # folder names hold patient names
    secrets = _patient(folder)
    served, archive, port = tmp_path / "served", tmp_path / "archive", free_port()
    stderr = [run_cli("import", str(folder), archive=served).stderr]
    server = _serve(served, port)
    try:
        stderr.append(run_cli("node", "add", "leak", "LEAKPACS", HOST, str(port)).stderr)
        found = run_cli("find", "leak", "-k", "PatientName=quax*", "-k", "PatientBirthDate")
        assert "Quaxley^Zebulon" in found.stdout and "19230405" in found.stdout  # it worked
        got = run_cli("get", "leak", "--study", secrets["study"], archive=archive)
        assert got.stdout.startswith("4/4 instances"), got.stdout
        stderr += [found.stderr, got.stderr]
        _start(tmux, f"cd {ROOT} && {_env()} {sys.executable} -m tui --archive {archive}")
        _wait_for(tmux, "Quaxley^Zebulon")
        _open_row(tmux)
        _keys(tmux, "Down")
        _open_row(tmux)
        _keys(tmux, "Down")
        _wait_for(tmux, "SeriesInstanceUID")
        _keys(tmux, "v")
        _wait_for(tmux, "acquired slice")
        _keys(tmux, "j", "q", "t")
        _wait_for(tmux, "Patient's Birth Date")
        _keys(tmux, "q", "p")
        _wait_for(tmux, "LEAKPACS")
        _keys(tmux, "Enter", "Enter")  # to the form, then a query of everything
        _wait_for(tmux, "1 study")
        _keys(tmux, "Escape", "Escape", "C-q")
        time.sleep(1.5)
        tmux("send-keys", "-t", "e2e", "echo exited-$?", "Enter")
        _wait_for(tmux, "exited-0")
        after = tmux("capture-pane", "-p", "-t", "e2e")  # what the app left on the terminal
    finally:
        server.terminate()
        stderr += server.communicate(timeout=30)
    log = (_homes()[1] / "pacs-tui.log").read_text()
    assert "import: 4 new" in log and "C-FIND" in log and "C-GET" in log  # the log was written
    for what, secret in secrets.items():
        assert secret not in log, (what, log)
        assert not any(secret in text for text in [*stderr, after]), (what, stderr, after)


def _env() -> str:
    """This test's home folders, for a command typed into tmux (whose shell has its own)."""
    kinds = ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME")
    return "env " + " ".join(f"{kind}={shlex.quote(os.environ[kind])}" for kind in kinds)


# -- terminal escapes and markup in tag values, file names and answers ---------------------------


def _no_raw_escapes(done: subprocess.CompletedProcess[str]) -> str:
    """What a command wrote, checked for control characters that would drive the terminal."""
    out = done.stdout + done.stderr
    assert "\x1b" not in out and "\x07" not in out, (done.args, out)
    return out


def test_no_command_writes_a_raw_escape(tmp_path: Path, orthanc) -> None:
    """import's report, ls, tags, find and get against a PACS that answers with the hostile
    values as they are (Orthanc), and errors naming a hostile file: every control character
    is shown as an escape."""
    folder = write_hostile_series(tmp_path / "in", count=4)
    (folder / "J[bold]\x1b]0;owned\x07.txt").write_text("not DICOM")  # skipped, and named
    archive = tmp_path / "archive"
    report = _no_raw_escapes(run_cli("import", str(folder), archive=archive))
    assert "J[bold]\\x1b]0;owned\\x07.txt" in report
    for level in ("patient", "study", "series", "instance"):
        listed = _no_raw_escapes(run_cli("ls", "--level", level, archive=archive))
        assert "X[/]Y[bold]" in listed or level == "instance", listed
    hostile_file = next(folder.glob("F*.dcm"))
    tags = _no_raw_escapes(run_cli("tags", str(hostile_file)))
    assert f"N:{AS_ESCAPED}" in tags
    missing = run_cli("tags", str(tmp_path / "gone\x1b]0;owned\x07.dcm"), check=False)
    assert missing.returncode == 1 and "gone\\x1b]0;owned\\x07.dcm" in _no_raw_escapes(missing)
    upload(orthanc, sorted(folder.glob("*.dcm")))
    run_cli("node", "add", "hostile", orthanc.aet, orthanc.host, str(orthanc.port))
    found = _no_raw_escapes(run_cli("find", "hostile", "-k", "StudyDescription"))
    assert f"S:{SHOWN}\\x1b" in found  # Orthanc answers with the escapes as they are
    series = _no_raw_escapes(
        run_cli("find", "hostile", "--level", "series", "-k", "SeriesDescription")
    )
    assert f"R:{SHOWN}\\x1b" in series
    (study,) = cli_json("ls", archive=archive)
    got = run_cli("get", "hostile", "--study", study["StudyInstanceUID"], archive=tmp_path / "got")
    assert got.stdout.startswith("4/4 instances") and _no_raw_escapes(got)


def test_hostile_values_never_reach_the_terminal_from_the_app(
    tmp_path: Path, tmux, orthanc
) -> None:
    """The real app in tmux, through every screen that shows the hostile values: the
    escapes in them never reach the terminal (tmux would report its pane's new title and
    insert mode), and the values are shown as they are, markup and all. Then the shell prints
    the same escapes, and tmux reports them: the probe works."""
    folder = write_hostile_series(tmp_path / "in")
    with Archive(tmp_path / "archive") as archive:
        import_paths(archive, [folder])
    upload(orthanc, sorted(folder.glob("*.dcm")))
    run_cli("node", "add", "hostile", orthanc.aet, orthanc.host, str(orthanc.port))
    command = f"{_env()} {sys.executable} -m tui --archive {tmp_path / 'archive'}"
    _start(tmux, f"cd {ROOT} && {command} --bandwidth normal", size=(160, 48))

    def obeyed() -> list[str]:
        """The escapes of HOSTILE the terminal obeyed."""
        title, insert = tmux(
            "display-message", "-p", "-t", "e2e", "#{pane_title}\n#{insert_flag}"
        ).splitlines()
        return ["title"] * (title == "owned") + ["insert mode"] * (insert == "1")

    def shows(text: str) -> None:
        _wait_for(tmux, text)
        assert obeyed() == [], text

    shows(f"N:{SHOWN}")  # the browser's tree
    # Each key once the rows it moves to are there (a busy machine loads them later).
    _keys(tmux, "Space")
    shows(f"S:{SHOWN}")  # the study's row
    _keys(tmux, "Down")
    shows(f"preview: series CT 1 R:{SHOWN}")  # its details, and its preview's caption
    _keys(tmux, "Space")
    shows(f"CT 1  R:{SHOWN}")  # the series' row
    _keys(tmux, "Down", "t")
    shows(f"H:{AS_ESCAPED}")  # the tags screen: the file's values (pydicom's repr)
    _keys(tmux, "q", "v")
    shows(f"N:{AS_TEXT}")  # the viewer's overlay, from the file
    shows(f"W:{SHOWN}")  # the window the file names
    _keys(tmux, "g")
    shows("axial panel")  # MPR, with the window's name
    shows(f"W:{SHOWN}")
    _keys(tmux, "q", "q", "p")
    shows("hostile")  # the node list
    _keys(tmux, "Enter", "Enter")
    shows(f"S:{AS_TEXT}")  # Orthanc's answer, escapes as they are
    _keys(tmux, "Tab", "a", "g")  # the transfer queue and its notice name the study
    shows(f"N:{AS_TEXT}  2026-01-01  S:{AS_TEXT}")
    shows("here already")
    _keys(tmux, "C-q")
    time.sleep(1.5)
    tmux("send-keys", "-t", "e2e", "clear; printf '\\033]0;owned\\007\\033[4h'", "Enter")
    deadline = time.monotonic() + 10
    while len(obeyed()) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert obeyed() == ["title", "insert mode"]  # the shell's escapes did what the app's never did


# -- an app that breaks --------------------------------------------------------------------------


def test_an_app_that_breaks_exits_1_with_one_line_and_the_traceback_in_the_log(
    tmp_path: Path, tmux
) -> None:
    """Two real ways the app broke: an index damaged on disk (its patient table's page
    overwritten: the browser's first read fails, in a worker) and a triage priority the app
    does not know (an index edited by hand: the details pane fails). Each ends with exit
    status 1 and one line naming what broke and the log; the traceback is in the log, with
    no local variables (Textual's printed them: tag values) and no patient data.
    (Should either stop breaking the app, find another real way: this test is about the
    way out, not these faults.)"""
    write_series(tmp_path / "ct", AXIAL, count=4, size=16)
    damaged, edited = tmp_path / "damaged", tmp_path / "edited"
    for root in (damaged, edited):
        with Archive(root) as archive:
            import_paths(archive, [tmp_path / "ct"])
    with sqlite3.connect(damaged / "index.sqlite") as conn:
        (page,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'patient'"
        ).fetchone()
        (size,) = conn.execute("PRAGMA page_size").fetchone()
    with open(damaged / "index.sqlite", "r+b") as index:
        index.seek((page - 1) * size)
        index.write(b"\xff" * size)
    with sqlite3.connect(edited / "index.sqlite") as conn:
        conn.execute(
            "INSERT INTO triage (study_uid, priority, updated) SELECT study_uid, 9, '' FROM study"
        )
    log = _homes()[1] / "pacs-tui.log"
    _start(tmux, f"cd {ROOT}", size=(200, 40))
    screens = []
    for root, keys in ((damaged, []), (edited, ["Down"])):
        tmux("send-keys", "-t", "e2e", "clear", "Enter")
        command = f"{_env()} {sys.executable} -m tui --archive {root}; echo exited-$?"
        tmux("send-keys", "-t", "e2e", command, "Enter")
        if keys:
            _wait_for(tmux, "Synthetic^Phantom")
            _open_row(tmux)
            _keys(tmux, *keys)
        _wait_for(tmux, "exited-1", alternatives=("exited-0",))
        screens.append(tmux("capture-pane", "-p", "-J", "-t", "e2e"))  # lines as printed
    for screen in screens:
        assert "exited-1" in screen and "Traceback" not in screen, screen
        (line,) = [line for line in screen.splitlines() if line.startswith("pacs-tui:")]
        assert line.endswith(f"{log})") or line.endswith(str(log)), line
    assert "is corrupt: database disk image is malformed (the app stopped; details in" in screens[0]
    assert "the app stopped on an unexpected IndexError at tui/app/rows.py:" in screens[1]
    logged = log.read_text()
    assert logged.count("ERROR tui.cli.app: the app stopped:\nTraceback") == 2, logged
    assert "tui.archive.index.ArchiveError" in logged and "builtins.IndexError" in logged
    assert 'app/rows.py", line' in logged and "Synthetic" not in logged and "SYN1" not in logged
