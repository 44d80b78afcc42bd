"""Networking against real servers on loopback: nodes, echo, get, move, send, receive.

Orthanc and dcmtk are started by the fixtures in tests/servers.py; every retrieved file is
compared with the original, pixel data byte for byte.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from pathlib import Path

import pydicom
import pytest

from tests.conftest import cli_json, need_shared, run_cli
from tests.servers import (
    PACSTUI,
    clear,
    need_dcmtk,
    rest,
    start_storescp,
    upload,
)

TOSHIBA = "neurolabusc_dcm_qa_toshiba/MR_Toshiba_Galan3T_DTI_ortho_b0_volume"  # 40 x 64x64
J2K = "neurolabusc_dcm_qa_frag/MR_Siemens_6001_anat-T1w_J2K_lossless_multifragment"  # 96 J2K
# 10 JPEG Lossless images of another series in J2K's study
JPEG = "neurolabusc_dcm_qa_frag/MR_Siemens_5001_JPEG_lossless_multifragment_subset10"


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
    assert f"port {pacstui_port}" in result.stderr  # where we listened: is it where it sends?


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
    assert "MODALITY at 127.0.0.1: sending" in out and "STRANGER at 127.0.0.1: refused" in out


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


# -- C-GET over our own upper layer (tui.net.get) ---------------------------------------------


def test_a_retrieve_over_tls_files_every_instance_byte_for_byte(
    orthanc_tls, tmp_path: Path
) -> None:
    server = orthanc_tls
    upload(server, _files(TOSHIBA))
    _add_node(
        server, "secure", "--tls-ca", str(server.ca), "--tls-cert", str(server.client_cert),
        "--tls-key", str(server.client_key),
    )  # fmt: skip
    archive = tmp_path / "archive"
    summary = cli_json("get", "secure", "--study", _study_of(TOSHIBA), archive=archive)
    assert (summary["new"], summary["failed"]) == (len(_files(TOSHIBA)), 0)
    assert _pixels_by_uid(_archive_files(archive)) == _pixels_by_uid(_files(TOSHIBA))


def test_a_study_of_a_compressed_and_an_uncompressed_series_comes_as_stored(
    loaded, tmp_path: Path
) -> None:
    """Each file comes in the transfer syntax the PACS holds it in: the J2K series as J2K,
    the other series (JPEG Lossless, decoded here to Explicit VR Little Endian before it is
    stored) uncompressed; so its pixel data is the stored bytes, not a transcoding."""
    plain = tmp_path / "plain"
    plain.mkdir()
    for path in _files(JPEG):
        ds = pydicom.dcmread(path)
        ds.decompress(generate_instance_uid=False)  # the same instance, uncompressed
        ds.save_as(plain / path.name, enforce_file_format=True)
    stored = sorted(plain.iterdir()) + _files(J2K)
    assert _study_of(JPEG) == _study_of(J2K)
    ids = upload(loaded, sorted(plain.iterdir()))
    try:
        _add_node(loaded)
        archive = tmp_path / "archive"
        summary = cli_json("get", "pacs", "--study", _study_of(J2K), archive=archive)
    finally:
        for orthanc_id in ids:  # the other tests expect the J2K study as it was
            rest(loaded, f"/instances/{orthanc_id}", method="DELETE")
    assert (summary["new"], summary["failed"]) == (len(stored), 0)
    want = {}
    for path in stored:
        ds = pydicom.dcmread(path)
        want[str(ds.SOPInstanceUID)] = (str(ds.file_meta.TransferSyntaxUID), bytes(ds.PixelData))
    got = {}
    for path in _archive_files(archive):
        ds = pydicom.dcmread(path)
        got[str(ds.SOPInstanceUID)] = (str(ds.file_meta.TransferSyntaxUID), bytes(ds.PixelData))
    assert got == want
    assert {syntax for syntax, _ in got.values()} == {
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.1.2.4.90",
    }


GET_STUDY_ROOT = b"1.2.840.10008.5.1.4.1.2.2.3"
A_ABORT = b"\x07\x00\x00\x00\x00\x04\x00\x00\x02\x00"


class Breaker:
    """A relay between us and a real PACS that passes whole PDUs; on the association that
    proposes C-GET, at Orthanc's ``at``-th P-DATA-TF PDU it plays ``how``:

    * ``abort``: an A-ABORT instead of that PDU, then both connections closed;
    * ``cut``: the first half of that PDU, then both connections closed;
    * ``stall``: before the first PDU from then on that goes on with a dataset begun in the
      PDU before it (so we wait with a command and fragments received), ``stalled`` is set and
      the relay pauses 0.6 s before it passes that PDU.
    """

    def __init__(self, server, how: str, at: int) -> None:
        self.upstream = (server.host, server.port)
        self.how, self.at = how, at
        self.stalled = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        with client, socket.create_connection(self.upstream) as upstream:
            try:
                self._pass(client, upstream)
            finally:  # a FIN now: close() alone waits for the pump blocked in recv
                for sock in (client, upstream):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)

    def _pass(self, client: socket.socket, upstream: socket.socket) -> None:
        request = _read_pdu(client)
        upstream.sendall(request)
        watched = GET_STUDY_ROOT in request
        threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
        count = 0
        in_dataset = False  # the PDU before was a dataset fragment, not the last
        while pdu := _read_pdu(upstream):
            count += pdu[0] == 0x04
            if watched and count >= self.at:
                if self.how == "abort":
                    client.sendall(A_ABORT)
                    return
                if self.how == "cut":
                    client.sendall(pdu[: len(pdu) // 2])
                    return
                if in_dataset and not self.stalled.is_set():
                    self.stalled.set()
                    time.sleep(0.6)
            # byte 11: the (first) PDV's control header; 0: a dataset fragment, not the last
            in_dataset = pdu[0] == 0x04 and pdu[11] == 0x00
            client.sendall(pdu)

    def close(self) -> None:
        self.listener.close()


def _read_pdu(sock: socket.socket) -> bytes:
    """One whole PDU from ``sock`` (b"" when it closed)."""
    head = _read_exactly(sock, 6)
    return head + _read_exactly(sock, int.from_bytes(head[2:6], "big")) if head else b""


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        try:
            chunk = sock.recv(size - len(data))
        except OSError:
            return b""
        if not chunk:
            return b""
        data += chunk
    return bytes(data)


def _pump(source: socket.socket, dest: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            dest.sendall(data)
        dest.shutdown(socket.SHUT_WR)  # pass the FIN on: else the PACS holds a thread for it
    except OSError:
        pass


def _only_whole_files(archive: Path, originals: dict[str, bytes]) -> int:
    """Every indexed file is whole (its pixels those of the original), none is left unindexed
    in the store or half-written in its incoming folder; the number of files."""
    indexed = _archive_files(archive)
    assert all(originals[uid] == pixels for uid, pixels in _pixels_by_uid(indexed).items())
    store = archive / "store"
    on_disk = {str(p) for p in store.rglob("*") if p.is_file() and "incoming" not in p.parts}
    assert on_disk == set(indexed)
    assert not list((store / "incoming").iterdir())
    return len(indexed)


@pytest.mark.parametrize("how", ["abort", "cut"])
def test_a_pacs_that_drops_the_association_mid_transfer_leaves_whole_files(
    loaded, tmp_path: Path, how: str
) -> None:
    breaker = Breaker(loaded, how, at=25)
    try:
        run_cli("node", "add", "flaky", loaded.aet, "127.0.0.1", str(breaker.port))
        archive = tmp_path / "archive"
        result = run_cli("get", "flaky", "--study", _study_of(J2K), archive=archive, check=False)
    finally:
        breaker.close()
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    said = {"abort": "aborted the association during the retrieve (A-ABORT from",
            "cut": "dropped the association during the retrieve"}[how]  # fmt: skip
    assert len(lines) == 1 and said in lines[0]
    assert 0 < _only_whole_files(archive, _pixels_by_uid(_files(J2K))) < 96


def test_a_cancel_in_the_middle_of_an_image_finishes_it_then_stops(loaded, tmp_path: Path) -> None:
    """Cancel while we wait for the rest of an image: the C-CANCEL goes out at once, the
    image already begun is received whole, filed and answered, and the PACS stops."""
    from tui.net.nodes import Node
    from tui.net.scu import retrieve

    breaker = Breaker(loaded, "stall", at=1)
    cancel = threading.Event()
    threading.Thread(target=lambda: breaker.stalled.wait(60) and cancel.set(), daemon=True).start()
    node = Node("flaky", loaded.aet, "127.0.0.1", breaker.port, max_pdu=16384)
    try:
        transfer = retrieve(node, tmp_path / "a", _study_of(J2K), cancel=cancel)
    finally:
        breaker.close()
    assert breaker.stalled.is_set() and transfer.tally.failed == 0
    assert 1 <= transfer.tally.new < 96
    assert _only_whole_files(tmp_path / "a", _pixels_by_uid(_files(J2K))) == transfer.tally.new


def _tls_options(server) -> list[str]:
    return ["--tls-ca", str(server.ca), "--tls-cert", str(server.client_cert),
            "--tls-key", str(server.client_key)]  # fmt: skip


def test_send_and_move_over_tls(orthanc_tls, tmp_path: Path, pacstui_port: int) -> None:
    """Everything over TLS: send to the PACS, then C-MOVE back, the PACS calling our
    storage SCP over TLS (as PACSTUI_TLS, which it knows to call with TLS)."""
    from tests.servers import PACSTUI_TLS

    archive = tmp_path / "archive"
    run_cli("import", str(need_shared() / TOSHIBA), archive=archive)
    _add_node(orthanc_tls, "secure", *_tls_options(orthanc_tls))
    summary = cli_json("send", "secure", _study_of(TOSHIBA), archive=archive)
    assert summary["sent"] == len(_files(TOSHIBA))
    run_cli("node", "edit", "secure", "--method", "move", "--move-destination", PACSTUI_TLS)
    again = tmp_path / "again"
    summary = cli_json(
        "get", "secure", "--study", _study_of(TOSHIBA), "--port", str(pacstui_port),
        archive=again,
    )  # fmt: skip
    assert summary["new"] == len(_files(TOSHIBA)) and not summary["failed"]
    assert _pixels_by_uid(_archive_files(again)) == _pixels_by_uid(_files(TOSHIBA))


def test_receive_over_tls_takes_only_callers_with_a_trusted_certificate(
    tls_files, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    port = _free_port()
    receiver = subprocess.Popen(
        ["pacs-tui", "--archive", str(archive), "receive", "--port", str(port),
         "--tls-cert", str(tls_files.server_cert), "--tls-key", str(tls_files.server_key),
         "--tls-ca", str(tls_files.ca)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert "over TLS" in receiver.stdout.readline()
        storescu = need_dcmtk("storescu")
        files = [str(p) for p in _files(TOSHIBA)[:5]]
        base = [storescu, "-aet", "MODALITY", "-aec", "PACSTUI"]
        tls = ["+tls", str(tls_files.client_key), str(tls_files.client_cert),
               "+cf", str(tls_files.ca)]  # fmt: skip
        done = subprocess.run(
            [*base, *tls, "127.0.0.1", str(port), *files], capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        plain = subprocess.run(
            [*base, "127.0.0.1", str(port), files[0]], capture_output=True, text=True, timeout=60
        )
        assert plain.returncode != 0  # no TLS, no entry
        assert len(_archive_files(archive)) == 5
    finally:
        receiver.terminate()
        receiver.communicate(timeout=30)


def test_a_broken_node_stops_only_itself_and_can_be_mended_or_removed(
    tls_files, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(tls_files.ca.read_bytes())  # a real CA: node add loads it
    run_cli("node", "add", "good", "GOOD", "127.0.0.1", "104")
    run_cli("node", "add", "secure", "SECURE", "127.0.0.1", "2762", "--tls-ca", str(ca))
    ca.unlink()  # the file went away after the node was added
    result = run_cli("echo", "secure", check=False)
    assert result.returncode == 1 and f"tls_ca {ca}: no such file" in result.stderr
    assert [n["name"] for n in cli_json("node", "ls", check=False)] in (
        ["good"],
        ["good", "secure"],
    )
    again = run_cli("node", "add", "good", "OTHER", "127.0.0.1", "104", check=False)
    assert again.returncode == 1 and "node edit good" in again.stderr
    run_cli("node", "add", "good", "OTHER", "127.0.0.1", "104", "--replace")
    run_cli("node", "edit", "secure", "--tls-ca", "")  # TLS off: mended
    assert {n["name"]: n["aet"] for n in cli_json("node", "ls")} == {
        "good": "OTHER", "secure": "SECURE"
    }  # fmt: skip
    run_cli("node", "rm", "secure")
    for bad, message in (
        (["find", "good", "-k", "=x"], "expected KEYWORD=VALUE"),
        (["find", "good", "-k", "StudyDate=2023x"], "use 20240101"),
        (["get", "good", "--study", "1.2 3"], "not a UID"),
    ):
        result = run_cli(*bad, check=False)
        assert result.returncode == 1 and message in result.stderr, result.stderr


def test_get_takes_several_studies_and_find_takes_dates_as_typed(loaded, tmp_path: Path) -> None:
    _add_node(loaded)
    archive = tmp_path / "archive"
    studies = [_study_of(TOSHIBA), _study_of(J2K)]
    summary = cli_json("get", "pacs", "--study", studies[0], "--study", studies[1], archive=archive)
    assert summary["new"] == len(_files(TOSHIBA)) + 96
    assert [s["StudyInstanceUID"] for s in summary["studies"]] == studies
    year = str(pydicom.dcmread(_files(TOSHIBA)[0]).StudyDate)[:4]
    found = cli_json("find", "pacs", "-k", f"StudyDate={year}")
    assert studies[0] in {r["StudyInstanceUID"] for r in found}


def test_a_move_to_a_port_taken_by_something_else_is_refused(loaded, tmp_path: Path) -> None:
    """The images would go to whatever holds the port: only a receiver filing into this
    same archive may take them for us."""
    _add_node(loaded, "pacs", "--method", "move")
    with socket.socket() as squatter:
        squatter.bind(("", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = run_cli(
            "get", "pacs", "--study", _study_of(TOSHIBA), "--port", str(port),
            archive=tmp_path / "a", check=False,
        )  # fmt: skip
    assert result.returncode == 1 and f"port {port} is taken" in result.stderr


@pytest.mark.parametrize("method", ["get", "move"])
def test_retrieve_from_dcmqrscp(dcmqrscp, tmp_path: Path, method: str, pacstui_port: int) -> None:
    """dcmtk's own Q/R SCP, not only Orthanc: store real files into it, bring them back."""
    from tests.servers import store_scu

    files = _files(TOSHIBA)
    store_scu(dcmqrscp, files)
    _add_node(dcmqrscp, "qr", "--method", method)
    found = cli_json("find", "qr", "-k", f"StudyInstanceUID={_study_of(TOSHIBA)}")
    assert [r["StudyInstanceUID"] for r in found] == [_study_of(TOSHIBA)]
    archive = tmp_path / "archive"
    summary = cli_json(
        "get", "qr", "--study", _study_of(TOSHIBA), "--port", str(pacstui_port), archive=archive
    )
    assert (summary["new"], summary["failed"]) == (len(files), 0), summary
    assert _pixels_by_uid(_archive_files(archive)) == _pixels_by_uid(files)


def test_privacy_masks_names_ids_and_birth_dates_in_ls_and_find(loaded, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    run_cli("import", str(need_shared() / TOSHIBA), archive=archive)
    _add_node(loaded)
    name = str(pydicom.dcmread(_files(TOSHIBA)[0]).PatientName)
    for args in (["ls", "--level", "patient"], ["find", "pacs", "--level", "study"]):
        clear = run_cli(*args, archive=archive).stdout
        hidden = run_cli("--privacy", *args, archive=archive).stdout
        assert name[:6] in clear and name[:6] not in hidden and "•••" in hidden, args
        rows = cli_json("--privacy", *args, archive=archive)
        assert rows and all(r.get("PatientName", "").endswith("•••") for r in rows)
