"""Networking against real servers on loopback: nodes, echo, get, move, send, receive.

Orthanc and dcmtk are started by the fixtures in tests/servers.py; every retrieved file is
compared with the original, pixel data byte for byte.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pydicom
import pytest

from tests.conftest import cli_json, need_shared, run_cli
from tests.servers import (
    PACSTUI,
    clear,
    need_dcmtk,
    start_storescp,
    upload,
)

TOSHIBA = "neurolabusc_dcm_qa_toshiba/MR_Toshiba_Galan3T_DTI_ortho_b0_volume"  # 40 x 64x64
J2K = "neurolabusc_dcm_qa_frag/MR_Siemens_6001_anat-T1w_J2K_lossless_multifragment"  # 96 J2K


def _files(folder: str) -> list[Path]:
    return sorted(p for p in (need_shared() / folder).rglob("*") if p.is_file() and _is_dicom(p))


def _is_dicom(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(132)[128:] == b"DICM"


def _pixels_by_uid(paths: list[Path] | list[str]) -> dict[str, bytes]:
    out = {}
    for path in paths:
        ds = pydicom.dcmread(path)
        out[str(ds.SOPInstanceUID)] = bytes(ds.PixelData)
    return out


def _archive_files(archive: Path) -> list[str]:
    rows = cli_json("ls", "--level", "instance", archive=archive)
    return [r["path"] for r in rows]


def _add_node(server, name: str = "pacs", *extra: str) -> None:
    run_cli("node", "add", name, server.aet, server.host, str(server.port), *extra)


@pytest.fixture(scope="module")
def loaded(orthanc):
    """Orthanc holding a small MR series (uncompressed) and a J2K series."""
    clear(orthanc)
    upload(orthanc, _files(TOSHIBA) + _files(J2K))
    return orthanc


def test_nodes_are_added_listed_edited_and_removed_keeping_the_rest_of_the_config(
    tmp_path: Path,
) -> None:
    import os

    config = Path(os.environ["XDG_CONFIG_HOME"]) / "pacs-tui" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('# my settings\ntheme = "daylight"\n')
    run_cli("node", "add", "pacs", "ORTHANC", "pacs.example.org", "4242", "--method", "move")
    run_cli("node", "add", "other", "OTHER", "10.0.0.2", "104")
    nodes = cli_json("node", "ls")
    assert [(n["name"], n["aet"], n["port"], n["method"]) for n in nodes] == [
        ("pacs", "ORTHANC", 4242, "move"), ("other", "OTHER", 104, "get"),
    ]  # fmt: skip
    run_cli("node", "edit", "pacs", "--port", "11112", "--calling-aet", "READER1")
    run_cli("node", "rm", "other")
    nodes = cli_json("node", "ls")
    assert [(n["name"], n["port"], n["calling_aet"]) for n in nodes] == [("pacs", 11112, "READER1")]
    assert config.read_text().startswith('# my settings\ntheme = "daylight"\n')
    for bad, message in (
        (["node", "add", "x", "A" * 17, "h", "1"], "1 to 16 characters"),
        (["node", "add", "x", "A", "h", "70000"], "between 1 and 65535"),
        (["node", "add", "x/y", "A", "h", "1"], "letters, digits"),
        (["node", "rm", "nope"], "no node 'nope'"),
        (["echo", "nope"], "no node 'nope'"),
    ):
        result = run_cli(*bad, check=False)
        assert result.returncode != 0 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_echo_reports_the_round_trip_and_failures_say_what_to_do(orthanc) -> None:
    _add_node(orthanc)
    result = cli_json("echo", "pacs")
    assert result["node"] == "pacs" and 0 < result["echo_ms"] <= result["total_ms"]
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    run_cli("node", "add", "down", "X", "127.0.0.1", str(port))
    result = run_cli("echo", "down", check=False)
    assert result.returncode == 1
    assert "connection refused: is the PACS running on that port?" in result.stderr


def test_tls_echo_needs_the_ca_and_our_certificate(orthanc_tls) -> None:
    server = orthanc_tls
    _add_node(
        server, "secure", "--tls-ca", str(server.ca), "--tls-cert", str(server.client_cert),
        "--tls-key", str(server.client_key),
    )  # fmt: skip
    assert cli_json("echo", "secure")["echo_ms"] > 0
    _add_node(server, "plain")
    result = run_cli("echo", "plain", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    _add_node(server, "untrusted", "--tls-cert", str(server.client_cert),
              "--tls-key", str(server.client_key))  # fmt: skip
    result = run_cli("echo", "untrusted", check=False)
    assert "not trusted" in result.stderr and "tls_ca" in result.stderr


@pytest.mark.parametrize("method", ["get", "move"])
def test_retrieve_files_every_instance_byte_for_byte_and_resumes(
    loaded, tmp_path: Path, method: str, pacstui_port: int
) -> None:
    archive = tmp_path / "archive"
    _add_node(loaded, "pacs", "--method", method)
    originals = _pixels_by_uid(_files(TOSHIBA) + _files(J2K))
    series = str(pydicom.dcmread(_files(J2K)[0]).SeriesInstanceUID)
    port = ["--port", str(pacstui_port)]
    summary = cli_json(
        "get", "pacs", "--study", _study_of(J2K), "--series", series, *port, archive=archive
    )
    assert summary["new"] == 96 and summary["failed"] == 0
    got = _pixels_by_uid(_archive_files(archive))
    assert len(got) == 96 and all(got[uid] == originals[uid] for uid in got)

    toshiba = len(_files(TOSHIBA))
    summary = cli_json("get", "pacs", "--study", _study_of(TOSHIBA), *port, archive=archive)
    assert (summary["new"], summary["failed"]) == (toshiba, 0)
    got = _pixels_by_uid(_archive_files(archive))
    assert got == {uid: originals[uid] for uid in got} and len(got) == 96 + toshiba
    # again: everything is here already, nothing is asked for
    summary = cli_json("get", "pacs", "--study", _study_of(J2K), *port, archive=archive)
    assert (summary["new"], summary["already_present"]) == (0, 96)
    assert not list((archive / "store" / "incoming").glob("*")), "no temporary file is left"


def _study_of(folder: str) -> str:
    return str(pydicom.dcmread(_files(folder)[0]).StudyInstanceUID)


def test_a_move_to_a_destination_the_pacs_does_not_know_says_how_to_fix_it(
    loaded, tmp_path: Path, pacstui_port: int
) -> None:
    _add_node(loaded, "pacs", "--method", "move", "--move-destination", "NOBODY")
    result = run_cli(
        "get", "pacs", "--study", _study_of(TOSHIBA), "--port", str(pacstui_port),
        archive=tmp_path / "a", check=False,
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "NOBODY" in result.stderr and "C-GET" in result.stderr, result.stderr


def test_send_transcodes_for_a_peer_that_refuses_the_stored_syntax(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    run_cli("import", str(need_shared() / J2K), archive=archive)
    storescp = start_storescp(tmp_path / "scp", port=_free_port())  # uncompressed only
    try:
        run_cli("node", "add", "scp", storescp.aet, storescp.host, str(storescp.port))
        series = str(pydicom.dcmread(_files(J2K)[0]).SeriesInstanceUID)
        summary = cli_json("send", "scp", series, archive=archive)
        assert summary["sent"] == 96 and summary["transcoded"] == 96 and not summary["failed"]
    finally:
        storescp.stop()
    received = [p for p in storescp.workdir.rglob("*") if p.is_file() and _is_dicom(p)]
    assert len(received) == 96
    ds = pydicom.dcmread(received[0])
    assert ds.file_meta.TransferSyntaxUID in ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")
    original = pydicom.dcmread(
        next(p for p in _files(J2K) if pydicom.dcmread(p).SOPInstanceUID == ds.SOPInstanceUID)
    )
    assert (ds.pixel_array == original.pixel_array).all()  # lossless: the same pixels


def test_send_to_orthanc_keeps_the_stored_syntax(loaded, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    run_cli("import", str(need_shared() / TOSHIBA), archive=archive)
    _add_node(loaded)
    summary = cli_json("send", "pacs", _study_of(TOSHIBA), archive=archive)
    assert summary["sent"] == len(_files(TOSHIBA)) and summary["transcoded"] == 0


def test_receive_files_pushed_images_and_refuses_unknown_callers(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    port = _free_port()
    receiver = subprocess.Popen(
        ["pacs-tui", "--archive", str(archive), "receive", "--port", str(port),
         "--allow", f"{PACSTUI},MODALITY"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert "receiving as PACSTUI" in receiver.stdout.readline()
        files = _files(TOSHIBA)
        storescu = need_dcmtk("storescu")
        done = subprocess.run(
            [storescu, "-aet", "MODALITY", "-aec", "PACSTUI", "127.0.0.1", str(port),
             *map(str, files)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        refused = subprocess.run(
            [storescu, "-aet", "STRANGER", "-aec", "PACSTUI", "127.0.0.1", str(port),
             str(files[0])],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert refused.returncode != 0
        got = _pixels_by_uid(_archive_files(archive))  # indexed while the receiver runs
        assert got == _pixels_by_uid(files)
    finally:
        receiver.send_signal(2)
        out, _ = receiver.communicate(timeout=30)
    assert receiver.returncode == 0 and f"{len(_files(TOSHIBA))} new" in out


def test_a_retrieve_can_be_cancelled_and_keeps_what_arrived(loaded, tmp_path: Path) -> None:
    from tui.net.nodes import Node
    from tui.net.scu import retrieve

    node = Node("pacs", loaded.aet, loaded.host, loaded.port)
    cancel = threading.Event()

    def progress(transfer) -> None:
        if transfer.tally.received >= 10:
            cancel.set()

    transfer = retrieve(node, tmp_path / "a", _study_of(J2K), progress=progress, cancel=cancel)
    assert 10 <= transfer.tally.received < 96 + len(_files(TOSHIBA))
    assert len(_archive_files(tmp_path / "a")) == transfer.tally.new


def _free_port() -> int:
    from tests.servers import free_port

    return free_port()


def test_demo_serves_a_pacs_to_query_and_retrieve_from(tmp_path: Path) -> None:
    """`pacs-tui demo` runs a demo PACS as node `demo`: it holds one study the demo
    archive lacks, which a new user can find and retrieve with nothing else installed."""
    archive = tmp_path / "demo"
    server = subprocess.Popen(
        [sys.executable, "-m", "tui", "--archive", str(archive), "demo", "--serve"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = server.stdout.readline()
        assert "demo PACS: node demo" in line, server.stderr.read()
        remote = cli_json("find", "demo")
        local = cli_json("ls", archive=archive)
        only_remote = {r["StudyInstanceUID"] for r in remote} - {
            r["StudyInstanceUID"] for r in local
        }
        assert len(remote) == len(local) + 1 and len(only_remote) == 1
        summary = cli_json("get", "demo", "--study", only_remote.pop(), archive=archive)
        assert summary["new"] > 0 and summary["failed"] == 0
        assert len(cli_json("ls", archive=archive)) == len(remote)
    finally:
        server.terminate()  # SIGTERM stops it cleanly, as a service manager would
        server.communicate(timeout=30)
    assert server.returncode == 0
