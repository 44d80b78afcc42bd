"""Shared fixtures: the real DICOM files in ../shared/dicom, temporary archives, the CLI."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "dicom"
IN_CI = os.environ.get("CI") == "true"


@contextlib.contextmanager
def tmpfs(mount_point: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of ``size`` (``3m``) mounted at ``mount_point`` (made if missing) while
    in the block: a full disk, or a USB stick's mount point. Root only (CI runs as root):
    skips elsewhere, fails in CI."""
    mount_point.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
        capture_output=True, text=True,
    )  # fmt: skip
    if mounted.returncode:
        reason = f"cannot mount a tmpfs here: {mounted.stderr.strip()}"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


def need_dcm2niix() -> str:
    """The dcm2niix binary (the NIfTI anchor): skip without it, fail in CI."""
    found = shutil.which("dcm2niix")
    if found is None:
        if IN_CI:
            pytest.fail("dcm2niix is missing: CI installs the Debian package dcm2niix")
        pytest.skip("dcm2niix is not installed (Debian package dcm2niix)")
    return found


def need_shared() -> Path:
    """The shared DICOM folder; skipped on a laptop without it, a failure in CI."""
    if not SHARED.is_dir():
        if IN_CI:
            pytest.fail(f"{SHARED} is missing: CI must run beside ../shared/dicom")
        pytest.skip(f"{SHARED} is missing (real DICOM test files)")
    return SHARED


@pytest.fixture
def shared() -> Path:
    return need_shared()


@pytest.fixture
def archive_dir(tmp_path: Path) -> Path:
    return tmp_path / "archive"


@pytest.fixture
def archive(archive_dir: Path) -> Iterator[Any]:
    from tui.archive.index import Archive

    with Archive(archive_dir) as opened:
        yield opened


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """No test touches the user's real data, config or cache folders."""
    home = tmp_path_factory.mktemp("home")
    for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        monkeypatch.setenv(var, str(home / var.lower()))
    monkeypatch.delenv("PACS_TUI_ARCHIVE", raising=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """A snapshot test that skips fails instead, saying why: syrupy 4.8 (which
    pytest-textual-snapshot pins) counts a skipped test's SVG as an unused snapshot and
    fails the whole run with no word of which test; snapshot tests use data every machine
    has (synthetic files, our own mini-PACS)."""
    report = yield
    if report.skipped and "snap_compare" in getattr(item, "fixturenames", ()):
        why = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid}: a snapshot test must not skip ({why}): syrupy would count its "
            "snapshot unused; give it data every machine has"
        )
    return report


def copy_tree(source: Path, dest: Path) -> Path:
    """A writable copy of shared files (never modify ../shared in place)."""
    shutil.copytree(source, dest)
    return dest


def run_cli(*args: str, archive: Path | None = None, check: bool = True, **kw: Any):
    """Run ``python -m tui`` as a user would; return the CompletedProcess."""
    cmd = [sys.executable, "-m", "tui"]
    if archive is not None:
        cmd += ["--archive", str(archive)]
    kw.setdefault("cwd", ROOT)
    result = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=600, **kw)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd + list(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def cli_json(*args: str, archive: Path | None = None, check: bool = True) -> Any:
    return json.loads(run_cli(*args, "--json", archive=archive, check=check).stdout)


# Real DICOM servers on loopback for the networking tests (Orthanc, Orthanc over TLS, dcmqrscp).
def read_only_runner(tmp_path: Path) -> list[str]:
    """A command prefix that runs ``"$@"`` with folder ``$1`` mounted read-only on ``$2``.

    A bind mount in a mount namespace of its own: read-only for root too (chmod is not),
    and gone when the command ends. Skipped where namespaces are not allowed, except in CI.
    """
    prefix = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "-r", "--mount"]
    prefix += ["sh", "-c", 'mount --bind -o ro "$1" "$2" && shift 2 && exec "$@"', "sh"]
    probe, mount = tmp_path / "probe", tmp_path / "probe-ro"
    probe.mkdir()
    mount.mkdir()
    try:
        tried = subprocess.run(
            [*prefix, str(probe), str(mount), "touch", str(mount / "x")],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    except FileNotFoundError:
        tried = None
    if tried is None or "Read-only file system" not in tried.stderr:
        reason = f"no read-only bind mount here: {tried.stderr.strip() if tried else 'no unshare'}"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return prefix


from tests.servers import (  # noqa: E402, F401
    dcmprscp_printer,
    dcmqrscp,
    orthanc,
    orthanc_tls,
    pacstui_port,
    tls_files,
)
