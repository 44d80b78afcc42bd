"""``pacs-tui demo``: its PACS to query and retrieve from, with a study to retrieve every
time, and its node gone from config.toml however the demo ends (Ctrl-Q, SIGTERM, a closed
terminal)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.bench_app import PtyChild, pty_env
from tests.conftest import ROOT, cli_json, run_cli


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo archive, built once for the module (about ten seconds)."""
    work = tmp_path_factory.mktemp("demo")
    homes = {f"XDG_{k}_HOME": str(work / k.lower()) for k in ("DATA", "CONFIG", "CACHE", "STATE")}
    run_cli("--archive", str(work / "demo"), "demo", env={**os.environ, **homes})
    return work / "demo"


def _config_text(config_home: Path) -> str:
    path = config_home / "pacs-tui" / "config.toml"
    return path.read_text() if path.exists() else ""


def _only_remote(archive: Path) -> set[str]:
    remote = {r["StudyInstanceUID"] for r in cli_json("find", "demo")}
    return remote - {r["StudyInstanceUID"] for r in cli_json("ls", archive=archive)}


def test_demo_serves_a_pacs_to_query_and_retrieve_from_every_time(demo: Path) -> None:
    """The demo PACS holds one study the demo archive lacks: a new user finds and
    retrieves it with nothing else installed; the next demo offers it again."""
    for run in range(2):
        server = subprocess.Popen(
            [sys.executable, "-m", "tui", "--archive", str(demo), "demo", "--serve"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip
        try:
            line = server.stdout.readline()
            assert "demo PACS: node demo" in line, server.stderr.read()
            only_remote = _only_remote(demo)
            assert len(only_remote) == 1, f"run {run}: nothing to retrieve"
            summary = cli_json("get", "demo", "--study", only_remote.pop(), archive=demo)
            assert summary["new"] > 0 and summary["failed"] == 0
            assert not _only_remote(demo)
        finally:
            server.terminate()  # SIGTERM stops it cleanly, as a service manager would
            server.communicate(timeout=30)
        assert server.returncode == 0
        assert "[nodes.demo]" not in _config_text(Path(os.environ["XDG_CONFIG_HOME"]))


@pytest.mark.parametrize("ending", ["sigterm", "terminal closed"])
def test_the_demo_node_leaves_config_toml_with_the_demo(
    demo: Path, tmp_path: Path, ending: str
) -> None:
    env = pty_env(dict(os.environ), tmp_path)
    config_home = Path(env["XDG_CONFIG_HOME"])
    argv = [sys.executable, "-m", "tui", "--archive", str(demo), "demo"]
    # As in a terminal: under nohup (a CI runner may use it) SIGHUP is ignored, the child
    # would inherit that and, rightly, keep ignoring it.
    hangup = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        child = PtyChild(argv, env, ROOT, 100, 30)
    finally:
        signal.signal(signal.SIGHUP, hangup)
    with child:
        child.wait_for(b"patients", 60)
        assert "[nodes.demo]" in _config_text(config_home)  # there while the demo runs
        if ending == "sigterm":
            os.kill(child.pid, signal.SIGTERM)
        else:  # the terminal (an SSH link, a window) goes away: SIGHUP
            os.close(child.fd)
            child.fd, child.eof = -1, True
        deadline = time.monotonic() + 60
        while not child._reap() and time.monotonic() < deadline:
            if child.eof:
                time.sleep(0.1)  # nothing to read: do not spin beside the child
            child.drain(0.1)  # keep reading, or a full terminal would block its way out
        # SIGTERM: out the normal way, as Ctrl-C; no terminal: as SIGHUP ends a process
        assert child.exit_code == (130 if ending == "sigterm" else -signal.SIGHUP)
        assert "[nodes.demo]" not in _config_text(config_home)
