"""The installed ``pacs-tui`` in a real terminal (tmux): browse to a series, see its
preview, view it, step through slices, go back, quit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import IN_CI, ROOT, read_only_runner
from tests.synthetic import AXIAL, write_series
from tui.archive.demo import build_demo
from tui.archive.importer import import_paths
from tui.archive.index import Archive


@pytest.fixture
def tmux(tmp_path: Path):
    if shutil.which("tmux") is None:
        if IN_CI:
            pytest.fail("tmux is missing: .ci/run must install it")
        pytest.skip("tmux is not installed")
    socket = str(tmp_path / "tmux.sock")

    def run(*args: str) -> str:
        done = subprocess.run(["tmux", "-S", socket, *args], capture_output=True, text=True)
        return done.stdout

    yield run
    run("kill-server")


def _keys(tmux, *keys: str) -> None:
    """Keys one at a time, as fingers press them."""
    for key in keys:
        tmux("send-keys", "-t", "e2e", key)
        time.sleep(0.3)


def _open_row(tmux) -> None:
    """Space on the highlighted tree row, then wait for its children's rows (a worker loads
    them: a Down sent before they are there moves nowhere, and the next Space closes it)."""

    def rows() -> int:
        screen = tmux("capture-pane", "-p", "-t", "e2e")
        return screen.count("└──") + screen.count("├──")

    before = rows()
    tmux("send-keys", "-t", "e2e", "Space")
    deadline = time.monotonic() + 20
    while rows() <= before:
        assert time.monotonic() < deadline, "the row's children never appeared"
        time.sleep(0.1)


def _wait_for(tmux, text: str, timeout: float = 20.0, alternatives: tuple[str, ...] = ()) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux("capture-pane", "-p", "-t", "e2e")
        if any(t in screen for t in (text, *alternatives)):
            return screen
        time.sleep(0.2)
    history = tmux("capture-pane", "-p", "-S", "-200", "-t", "e2e")
    raise AssertionError(f"{text!r} never appeared; the screen and history:\n{history}")


def _start(tmux, command: str, size: tuple[int, int] = (120, 36)) -> None:
    """A shell in a new pane of ``size``, then ``command`` typed into it, as a user does."""
    env = {"TERM": "xterm-256color", "HOME": os.environ.get("HOME", "/tmp")}
    columns, rows = (str(n) for n in size)
    options = [f"-e{k}={v}" for k, v in env.items()]
    tmux("new-session", "-d", "-s", "e2e", "-x", columns, "-y", rows, *options)
    time.sleep(0.5)
    tmux("send-keys", "-t", "e2e", command, "Enter")


def test_browse_view_and_quit_in_a_real_terminal(tmux, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    write_series(tmp_path / "ct", AXIAL, count=30)
    with Archive(archive) as opened:
        import_paths(opened, [tmp_path / "ct"])
    command = f"cd {ROOT} && {sys.executable} -m tui --archive {archive} --bandwidth normal"
    env = {"TERM": "xterm-256color", "HOME": os.environ.get("HOME", "/tmp")}
    # A shell first, then the command typed into it, as a user does: the pane has its
    # final size before pacs-tui asks for it.
    options = [f"-e{k}={v}" for k, v in env.items()]
    tmux("new-session", "-d", "-s", "e2e", "-x", "120", "-y", "36", *options)
    time.sleep(0.5)
    tmux("send-keys", "-t", "e2e", command, "Enter")
    _wait_for(tmux, "Synthetic^Phantom")
    tmux("send-keys", "-t", "e2e", "Space")
    _wait_for(tmux, "2026-01-01  CT")  # the study
    _keys(tmux, "Down", "Space")
    _wait_for(tmux, "CT 1")  # the series
    _keys(tmux, "Down")
    _wait_for(tmux, "SeriesInstanceUID")
    _wait_for(tmux, "▀", alternatives=("▄", "█"))  # the preview, drawn in half blocks
    tmux("send-keys", "-t", "e2e", "v")
    _wait_for(tmux, "m MIP")  # the viewer's keys (the preview's caption says 16/30 too)
    _wait_for(tmux, "acquired slice 16/30")
    _keys(tmux, "j", "j")
    _wait_for(tmux, "acquired slice 18/30")
    tmux("send-keys", "-t", "e2e", "m")
    _wait_for(tmux, "acquired MIP 30 slices")
    tmux("send-keys", "-t", "e2e", "q")
    _wait_for(tmux, "x Reviewed")
    tmux("send-keys", "-t", "e2e", "C-q")
    deadline = time.monotonic() + 15
    while "x Reviewed" in tmux("capture-pane", "-p", "-t", "e2e") and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    tmux("send-keys", "-t", "e2e", "echo exited-$?", "Enter")
    _wait_for(tmux, "exited-0")  # the app quit cleanly, the shell has its terminal back


def test_demo_query_and_retrieve_in_a_real_terminal(tmux, tmp_path: Path) -> None:
    """`pacs-tui demo` as a new user runs it: the demo PACS is there as node `demo`; query
    it, mark everything, retrieve: the study only the PACS had arrives."""
    kinds = ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME")
    homes = {v: str(tmp_path / v.lower()) for v in kinds}
    env = {"TERM": "xterm-256color", "HOME": os.environ.get("HOME", "/tmp"), **homes}
    options = [f"-e{k}={v}" for k, v in env.items()]
    tmux("new-session", "-d", "-s", "e2e", "-x", "120", "-y", "36", *options)
    time.sleep(0.5)
    tmux("send-keys", "-t", "e2e", f"cd {ROOT} && {sys.executable} -m tui demo", "Enter")
    _wait_for(tmux, "Demo^Alice", timeout=90)  # the demo archive is built on first use
    tmux("send-keys", "-t", "e2e", "p")
    _wait_for(tmux, "DEMOPACS")  # the node, configured by the demo
    _keys(tmux, "Enter", "Enter")  # to the form, then query with it empty: everything
    _wait_for(tmux, "6 studies")
    _wait_for(tmux, "follow-up")  # the study only the PACS has
    _keys(tmux, "Tab")
    _wait_for(tmux, "here")  # the five the archive holds say so
    tmux("send-keys", "-t", "e2e", "a")  # mark all
    time.sleep(0.3)
    tmux("send-keys", "-t", "e2e", "g")  # retrieve the marked
    _wait_for(tmux, "retrieved", timeout=60)
    screen = _wait_for(tmux, "6 here", timeout=30)
    assert "Traceback" not in screen
    tmux("send-keys", "-t", "e2e", "C-q")
    time.sleep(1.5)
    tmux("send-keys", "-t", "e2e", "echo exited-$?", "Enter")
    _wait_for(tmux, "exited-0")
    config = Path(homes["XDG_CONFIG_HOME"]) / "pacs-tui" / "config.toml"
    assert "[nodes.demo]" not in config.read_text()  # gone with the demo
    demo = Path(homes["XDG_DATA_HOME"]) / "pacs-tui" / "demo"
    listed = subprocess.run(
        [sys.executable, "-m", "tui", "--archive", str(demo), "ls", "--json"],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )  # fmt: skip
    descriptions = [s["StudyDescription"] for s in json.loads(listed.stdout)]
    assert "CT Chest low dose follow-up" in descriptions and len(descriptions) == 6


def test_a_filter_typed_in_one_burst_lands_in_the_box(tmux, tmp_path: Path) -> None:
    """ "/mull" and Enter arrive in one write (a paste, a fast typist, a slow link): every
    key after "/" belongs to the filter box, not to the tree behind it."""
    archive = tmp_path / "archive"
    build_demo(archive).close()
    command = f"cd {ROOT} && {sys.executable} -m tui --archive {archive}"
    _start(tmux, command)
    _wait_for(tmux, "Yamada^Hanako")
    tmux("send-keys", "-t", "e2e", "/mull", "Enter")  # one write to the terminal
    screen = _wait_for(tmux, "PatientID  DEMO002")
    assert "Demo^Alice" not in screen and "Yamada" not in screen
    tmux("send-keys", "-t", "e2e", "/x/y")  # the box again (its text selected); "/" in it is text
    _wait_for(tmux, "▊  x/y ")
    tmux("send-keys", "-t", "e2e", "C-q")


def test_triage_on_a_read_only_archive_says_so_and_changes_nothing(tmux, tmp_path: Path) -> None:
    """An archive on a read-only mount (a CD, a shared export) is browsed as usual; a
    triage key says in one line why it cannot be kept, before anything changes: no note
    typed in vain."""
    prefix = read_only_runner(tmp_path)
    archive, mount = tmp_path / "archive", tmp_path / "cdrom"
    mount.mkdir()
    write_series(tmp_path / "ct", AXIAL, count=8)
    with Archive(archive) as opened:
        import_paths(opened, [tmp_path / "ct"])
    command = " ".join([*(f"'{part}'" for part in prefix), str(archive), str(mount)])
    command += f" {sys.executable} -m tui --archive {mount}"
    _start(tmux, f"cd {ROOT} && {command}")
    _wait_for(tmux, "Synthetic^Phantom")
    _open_row(tmux)
    _keys(tmux, "Down")
    before = _wait_for(tmux, "StudyInstanceUID")
    _keys(tmux, "u", "f", "n")
    screen = _wait_for(tmux, "is read-only")
    time.sleep(0.5)
    screen = tmux("capture-pane", "-p", "-t", "e2e")
    assert "a short note for this study" not in screen  # the note editor never opened
    tree = [line.partition("│")[0] for line in screen.splitlines()]
    assert tree[:6] == [line.partition("│")[0] for line in before.splitlines()][:6]
    assert "Traceback" not in screen
    tmux("send-keys", "-t", "e2e", "C-q")


def _study_shown(tmux) -> str:
    """The AccessionNumber in the details pane (the highlighted study's)."""
    screen = _wait_for(tmux, "AccessionNumber  ")
    return next(line for line in screen.splitlines() if "AccessionNumber  " in line).split()[-1]


def test_jump_keys_in_one_burst_count_each_press(tmux, tmp_path: Path) -> None:
    """ "]]]" in one write (a fast finger, a slow link) moves three studies on, as three
    presses a second apart do; it moved one."""
    archive = tmp_path / "archive"
    build_demo(archive).close()
    command = f"cd {ROOT} && {sys.executable} -m tui --archive {archive}"
    _start(tmux, command, size=(160, 50))
    _wait_for(tmux, "Yamada^Hanako")
    _keys(tmux, "Home")
    _open_row(tmux)
    _keys(tmux, "Down")
    start = _study_shown(tmux)
    tmux("send-keys", "-t", "e2e", "]]]")  # one write
    time.sleep(2.0)
    burst = _study_shown(tmux)
    for _ in range(3):
        tmux("send-keys", "-t", "e2e", "[")
        time.sleep(1.0)
    assert _study_shown(tmux) == start
    for _ in range(3):
        tmux("send-keys", "-t", "e2e", "]")
        time.sleep(1.0)
    assert burst == _study_shown(tmux) != start
    tmux("send-keys", "-t", "e2e", "C-q")
