"""DICOMweb nodes against Orthanc's DICOMweb plugin (HTTP, and HTTPS with basic auth), and
against scripted HTTP servers that misbehave on purpose (bodies cut short, connections
dropped mid-part, paging ignored, an expired certificate).

Everything goes through the real command line, as a user types it, except the multipart
reader's linear-time test, which reads a generated body of a quarter gigabyte.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import socket
import ssl
import subprocess
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pydicom
import pytest

from tests.conftest import cli_json, need_shared, run_cli
from tests.servers import (
    HOST,
    Orthanc,
    TlsFiles,
    need_binary,
    rest,
    start_orthanc,
    upload,
)
from tests.synthetic import AXIAL, write_series

TOSHIBA = "neurolabusc_dcm_qa_toshiba/MR_Toshiba_Galan3T_DTI_ortho_b0_volume"  # 40 x 64x64
DICOMWEB = {"DicomWeb": {"Enable": True, "Root": "/dicom-web/"}}
USER, PASSWORD = "alice", "s3cret-pw"


def _files(folder: str) -> list[Path]:
    return sorted(p for p in (need_shared() / folder).rglob("*.dcm") if p.is_file())


def _pixels_by_uid(paths: list[Path] | list[str]) -> dict[str, bytes]:
    out = {}
    for path in paths:
        ds = pydicom.dcmread(path)
        out[str(ds.SOPInstanceUID)] = bytes(ds.PixelData)
    return out


def _archive_files(archive: Path) -> list[str]:
    return [r["path"] for r in cli_json("ls", "--level", "instance", archive=archive)]


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The command failed with one line on stderr, no traceback: that line."""
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    assert lines, "no error message"
    return lines[-1]


def _study(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)


# -- servers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory, pacstui_port: int) -> Iterator[Orthanc]:
    """Orthanc with its DICOMweb plugin over plain HTTP, holding a real MR series and a
    synthetic study of two series, known as node ``web`` (DICOMweb) and ``dimse`` (DICOM)."""
    workdir = tmp_path_factory.mktemp("orthanc_web")
    with start_orthanc(
        workdir, move_port=pacstui_port, plugins=["OrthancDicomWeb"], extra_config=DICOMWEB
    ) as server:
        synthetic = workdir / "synthetic"
        for name in ("a", "b"):
            write_series(synthetic / name, AXIAL, size=32, count=5)
        upload(server, _files(TOSHIBA) + sorted(synthetic.rglob("*.dcm")))
        server.config["synthetic"] = str(synthetic)
        yield server


@pytest.fixture
def nodes(web: Orthanc) -> Orthanc:
    """The nodes ``web`` and ``dimse`` in this test's (isolated) config."""
    run_cli("node", "add", "web", "--dicomweb", f"{web.url}/dicom-web")
    run_cli("node", "add", "dimse", web.aet, web.host, str(web.port))
    return web


def _start_orthanc_with_auth(workdir: Path, move_port: int) -> Orthanc:
    """Orthanc with DICOMweb and basic auth."""
    return start_orthanc(
        workdir, move_port=move_port, plugins=["OrthancDicomWeb"],
        extra_config=DICOMWEB | {"AuthenticationEnabled": True,
                                 "RegisteredUsers": {USER: PASSWORD}},
    )  # fmt: skip


@contextlib.contextmanager
def _tls_proxy(context: ssl.SSLContext, port: int) -> Iterator[int]:
    """HTTPS on a port of its own, passed on as plain HTTP to ``port`` on loopback.

    Orthanc's own HTTPS (SslEnabled) is no use here: Debian's Orthanc 1.10.1 dies of a
    segmentation fault on the first HTTPS connection on this machine's OpenSSL 3.
    """
    listener = socket.create_server((HOST, 0))
    stop = threading.Event()

    def pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(1 << 16):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def serve(raw: socket.socket) -> None:
        try:
            client = context.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):  # a client that does not trust us: its business
            raw.close()
            return
        upstream = socket.create_connection((HOST, port))
        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        pipe(client, upstream)

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                raw, _ = listener.accept()
                threading.Thread(target=serve, args=(raw,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()


@pytest.fixture(scope="module")
def web_tls(
    tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles, pacstui_port: int
) -> Iterator[int]:
    """The HTTPS port of an Orthanc with DICOMweb and basic auth (behind a TLS proxy)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls_files.server_cert, tls_files.server_key)
    workdir = tmp_path_factory.mktemp("orthanc_auth")
    with (
        _start_orthanc_with_auth(workdir, pacstui_port) as server,
        _tls_proxy(context, server.http_port) as port,
    ):
        yield port


# -- nodes -----------------------------------------------------------------------------------


def test_dicomweb_nodes_are_added_listed_edited_and_keep_their_secrets_out_of_config(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "web.secret"
    secret.write_text("hunter2-secret\n")
    run_cli(
        "node", "add", "web", "--dicomweb", "https://pacs.example.org/dicom-web/",
        "--auth", "basic", "--username", "u", "--secret-file", str(secret),
    )  # fmt: skip
    run_cli("node", "add", "old", "ORTHANC", "10.0.0.2", "104")
    listed = run_cli("node", "ls").stdout
    assert "DICOMweb" in listed and "https://pacs.example.org/dicom-web/" in listed
    assert "DIMSE" in listed
    nodes = {n["name"]: n for n in cli_json("node", "ls")}
    assert nodes["web"]["dicomweb"] == "https://pacs.example.org/dicom-web/"
    assert nodes["web"]["secret_file"] == str(secret.resolve())
    run_cli("node", "edit", "web", "--qido-url", "https://qido.example.org/rs")
    edited = {n["name"]: n for n in cli_json("node", "ls")}["web"]
    assert edited["qido_url"] == "https://qido.example.org/rs" and edited["username"] == "u"
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "pacs-tui" / "config.toml"
    assert "hunter2" not in config.read_text()

    refused = run_cli("node", "add", "x", "--dicomweb", "https://h/rs", "--password", "pw",
                      check=False)  # fmt: skip
    assert "--secret-file" in _one_line_error(refused)
    in_url = run_cli("node", "add", "x", "--dicomweb", "https://u:pw@h/rs", check=False)
    assert "never in the URL" in _one_line_error(in_url)
    no_address = run_cli("node", "add", "x", check=False)
    assert "--dicomweb URL" in _one_line_error(no_address)
    both = run_cli("node", "add", "x", "A", "h", "1", "--dicomweb", "https://h/rs", check=False)
    assert "no AET HOST PORT" in _one_line_error(both)
    no_secret = run_cli("node", "add", "x", "--dicomweb", "https://h/rs", "--auth", "bearer",
                        check=False)  # fmt: skip
    assert "secret_file" in _one_line_error(no_secret)

    config.write_text(
        config.read_text() + '\n[nodes.bad]\ndicomweb = "https://h"\npassword = "x"\n'
    )
    broken = run_cli("echo", "bad", check=False)
    assert "holds a secret (password)" in _one_line_error(broken)


def test_node_settings_that_would_do_nothing_are_inferred_refused_or_dropped(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "web.secret"
    secret.write_text("pw\n")
    url = "https://pacs.example.org/dicom-web"
    added = run_cli("node", "add", "basic", "--dicomweb", url, "--username", "u",
                    "--secret-file", str(secret)).stdout  # fmt: skip
    assert "auth basic: inferred from a username" in added
    run_cli("node", "add", "bearer", "--dicomweb", url, "--secret-env", "PACS_TOKEN")
    nodes = {n["name"]: n for n in cli_json("node", "ls")}
    assert (nodes["basic"]["auth"], nodes["bearer"]["auth"]) == ("basic", "bearer")

    for option in (["--auth", "basic"], ["--username", "u"], ["--secret-file", str(secret)]):
        refused = run_cli("node", "add", "x", "A", "h", "104", *option, check=False)
        assert "DICOMweb node's settings" in _one_line_error(refused)
    run_cli("node", "add", "dimse", "ORTHANC", "10.0.0.2", "104", "--calling-aet", "ME",
            "--method", "move")  # fmt: skip
    edited = run_cli("node", "edit", "dimse", "--auth", "basic", check=False)
    assert "DICOMweb node's settings" in _one_line_error(edited)
    dimse_option = run_cli("node", "add", "y", "--dicomweb", url, "--calling-aet", "ME",
                           check=False)  # fmt: skip
    assert "DIMSE node's settings" in _one_line_error(dimse_option)

    run_cli("node", "edit", "basic", "--auth", "none")
    cleared = {n["name"]: n for n in cli_json("node", "ls")}["basic"]
    assert (cleared["auth"], cleared["username"], cleared["secret_file"]) == ("none", "", "")
    contradicts = run_cli("node", "edit", "bearer", "--auth", "none", "--username", "u",
                          check=False)  # fmt: skip
    assert "do nothing with auth none" in _one_line_error(contradicts)

    converted = run_cli("node", "edit", "dimse", "--dicomweb", url).stdout
    assert "now a DICOMweb node" in converted
    assert "(aet, host, port, calling_aet, method)" in converted
    web = {n["name"]: n for n in cli_json("node", "ls")}["dimse"]
    assert (web["kind"], web["aet"], web["host"], web["port"]) == ("DICOMweb", "", "", 0)
    assert web["calling_aet"] == "PACSTUI"

    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate\n")
    bad_ca = run_cli("node", "add", "z", "--dicomweb", url, "--tls-ca", str(not_pem), check=False)
    assert f"tls_ca {not_pem} is not a CA certificate" in _one_line_error(bad_ca)
    dimse_ca = run_cli("node", "add", "z", "A", "h", "104", "--tls-ca", str(not_pem), check=False)
    assert "is not a CA certificate" in _one_line_error(dimse_ca)


def test_node_ls_shows_a_dicomweb_node_as_one(tmp_path: Path) -> None:
    secret = tmp_path / "web.secret"
    secret.write_text("pw\n")
    run_cli("node", "add", "web", "--dicomweb", "https://pacs.example.org/dicom-web",
            "--username", "alice", "--secret-file", str(secret),
            "--stow-url", "https://stow.example.org/rs")  # fmt: skip
    run_cli("node", "add", "old", "ORTHANC", "10.0.0.2", "104")
    lines = run_cli("node", "ls").stdout.splitlines()
    header = lines[0].split()
    assert header[:4] == ["Node", "Kind", "Address", "AE"] and "Auth" in header
    [web] = [line for line in lines if line.startswith("web ")]
    assert "DICOMweb" in web and "https://pacs.example.org/dicom-web" in web
    assert "basic (alice)" in web and "auth basic" not in web
    assert web.index("basic (alice)") > lines[0].index("Auth") - 1
    assert "  web: STOW-RS at https://stow.example.org/rs" in lines
    [old] = [line for line in lines if line.startswith("old ")]
    assert "ORTHANC" in old and "10.0.0.2:104" in old
    nodes = {n["name"]: n for n in cli_json("node", "ls")}
    assert nodes["web"]["roots"] == {
        "qido": "https://pacs.example.org/dicom-web",
        "wado": "https://pacs.example.org/dicom-web",
        "stow": "https://stow.example.org/rs",
    }
    assert (nodes["web"]["kind"], nodes["old"]["kind"]) == ("DICOMweb", "DIMSE")


def test_the_help_names_dicomweb_where_it_applies() -> None:
    helps = {c: run_cli(c, "--help").stdout for c in ("echo", "find", "get", "send")}
    top = run_cli("--help").stdout
    for command, service in (("echo", "QIDO-RS"), ("find", "QIDO-RS"), ("get", "WADO-RS"),
                             ("send", "STOW-RS")):  # fmt: skip
        assert service in " ".join(top.split()) or service in " ".join(helps[command].split())
    get = " ".join(helps["get"].split())
    for option in ("--method", "--model", "--port"):
        assert get.split(option)[-1].split("--")[0].count("DIMSE nodes only") == 1, option
    assert "the times as JSON" in " ".join(helps["echo"].split())


# -- against Orthanc -------------------------------------------------------------------------


def test_echo_is_a_cheap_qido(nodes: Orthanc) -> None:
    answer = cli_json("echo", "web")
    assert answer["node"] == "web" and 0 < answer["echo_ms"] <= answer["total_ms"] + 1


def test_find_at_three_levels_answers_as_the_dimse_find_does(nodes: Orthanc) -> None:
    """The same -k keys through QIDO-RS and C-FIND to the same Orthanc: the same rows."""
    toshiba = _study(_files(TOSHIBA)[0])
    study_keys = ["-k", "PatientName", "-k", "PatientID", "-k", "StudyDate", "-k",
                  "ModalitiesInStudy", "-k", "StudyInstanceUID", "-k",
                  "NumberOfStudyRelatedInstances"]  # fmt: skip
    by_uid = {}
    for node in ("web", "dimse"):
        rows = cli_json("find", node, *study_keys)
        by_uid[node] = {r["StudyInstanceUID"]: r for r in rows}
    assert len(by_uid["web"]) == 2 and by_uid["web"] == by_uid["dimse"]
    assert by_uid["web"][toshiba]["NumberOfStudyRelatedInstances"] == "40"

    matched = cli_json("find", "web", "-k", f"StudyInstanceUID={toshiba}", "-k", "PatientName")
    assert [r["StudyInstanceUID"] for r in matched] == [toshiba]
    wildcard = cli_json("find", "web", "-k", "PatientName=Synth*", "-k", "StudyInstanceUID")
    assert len(wildcard) == 1 and wildcard[0]["StudyInstanceUID"] != toshiba

    series_keys = ["--level", "series", "-k", f"StudyInstanceUID={toshiba}", "-k",
                   "SeriesInstanceUID", "-k", "Modality", "-k", "SeriesNumber"]  # fmt: skip
    web_series, dimse_series = (cli_json("find", n, *series_keys) for n in ("web", "dimse"))
    assert web_series == dimse_series and len(web_series) == 1
    assert web_series[0]["Modality"] == "MR"

    image_keys = ["--level", "image", "-k", f"StudyInstanceUID={toshiba}", "-k",
                  f"SeriesInstanceUID={web_series[0]['SeriesInstanceUID']}", "-k",
                  "SOPInstanceUID", "-k", "InstanceNumber"]  # fmt: skip
    web_images, dimse_images = (cli_json("find", n, *image_keys) for n in ("web", "dimse"))
    key = lambda r: r["SOPInstanceUID"]  # noqa: E731
    assert sorted(web_images, key=key) == sorted(dimse_images, key=key)
    assert len(web_images) == 40
    limited = cli_json("find", "web", *image_keys, "--limit", "7")
    assert len(limited) == 7

    patient = run_cli("find", "web", "--level", "patient", check=False)
    assert "no patient level" in _one_line_error(patient)


def test_several_values_match_as_the_dimse_find_does(nodes: Orthanc) -> None:
    """``CT,MR`` (C-FIND's ``CT\\MR``) goes to QIDO-RS as a comma-separated list, for any
    attribute (PS3.18 8.3.4.1), not only UIDs: the same rows as C-FIND of the same Orthanc."""
    toshiba = _study(_files(TOSHIBA)[0])
    for keys in (
        ["-k", "ModalitiesInStudy=CT,MR", "-k", "StudyInstanceUID"],
        ["--level", "series", "-k", "Modality=CT,MR", "-k", "SeriesInstanceUID"],
    ):
        by_node = {}
        for node in ("web", "dimse"):
            rows = cli_json("find", node, *keys)
            by_node[node] = sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))
        assert by_node["web"] == by_node["dimse"]
        assert len(by_node["web"]) >= (2 if keys[0] == "-k" else 3)
    studies = {
        r["StudyInstanceUID"] for r in cli_json("find", "web", "-k", "ModalitiesInStudy=MR,CT")
    }
    assert toshiba in studies and "1.2.826.0.1.3680043.8.498.1" in studies


def test_a_study_twice_in_one_page_is_two_results_not_a_server_ignoring_offset(
    nodes: Orthanc, tmp_path: Path
) -> None:
    """The same StudyInstanceUID under two patients at the server (Orthanc files them as two
    studies): both rows come, as by C-FIND, and no warning about paging."""
    folder = tmp_path / "twice"
    study = "1.2.826.0.1.3680043.8.498.2222"
    write_series(folder, AXIAL, size=8, count=1)
    [path] = sorted(folder.glob("*.dcm"))
    ds = pydicom.dcmread(path)
    ds.StudyInstanceUID = study
    ds.save_as(path)
    copy = folder / "copy.dcm"
    ds.PatientID, ds.PatientName = "OTHER-PATIENT", "Other^Patient"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.2223"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.2224"
    ds.save_as(copy)
    ids = upload(nodes, [path, copy])
    try:
        keys = ["-k", f"StudyInstanceUID={study}", "-k", "PatientID", "--json"]
        web = run_cli("find", "web", *keys)
        dimse = cli_json("find", "dimse", *keys[:-1])
        assert "ignores offset" not in web.stderr
        key = lambda r: r["PatientID"]  # noqa: E731
        rows = sorted(json.loads(web.stdout), key=key)
        assert rows == sorted(dimse, key=key) and len(rows) == 2
    finally:
        for orthanc_id in ids:
            rest(nodes, f"/instances/{orthanc_id}", "DELETE")


def test_get_files_the_study_whole_then_resumes_asking_only_what_is_missing(
    nodes: Orthanc, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    originals = _files(TOSHIBA)
    study = _study(originals[0])
    summary = cli_json("get", "web", "--study", study, archive=archive)
    assert (summary["new"], summary["failed"], summary["already_present"]) == (40, 0, 0)
    assert _pixels_by_uid(_archive_files(archive)) == _pixels_by_uid(originals)
    again = cli_json("get", "web", "--study", study, archive=archive)
    assert (again["new"], again["already_present"], again["bytes"]) == (0, 40, 0)

    # A series first, then its study: only the other series comes, by a per-series request.
    synthetic = Path(nodes.config["synthetic"])
    first = pydicom.dcmread(sorted((synthetic / "a").glob("*.dcm"))[0])
    uid, series = str(first.StudyInstanceUID), str(first.SeriesInstanceUID)
    one = cli_json("get", "web", "--study", uid, "--series", series, archive=archive)
    assert one["new"] == 5
    rest_of_it = cli_json("get", "web", "--study", uid, archive=archive)
    assert (rest_of_it["new"], rest_of_it["already_present"]) == (5, 5)
    assert len(_archive_files(archive)) == 50

    move = run_cli("get", "web", "--study", uid, "--method", "move", archive=archive, check=False)
    assert "no C-MOVE" in _one_line_error(move)
    missing = run_cli("get", "web", "--study", "1.2.3.4.5", archive=archive, check=False)
    assert "has no study 1.2.3.4.5" in _one_line_error(missing)


def test_a_cancelled_retrieve_stops_at_once_and_the_next_asks_the_series_whole(
    web: Orthanc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library as the app calls it: Stop after two instances leaves two filed and the
    third dropped mid-part; the next retrieve asks for the series, more than half missing,
    in one request (not 38), and the two already here are dropped as present."""
    import threading

    from tui.net.dicomweb.client import Client
    from tui.net.nodes import Node
    from tui.net.scu import Transfer, retrieve

    node = Node("web", dicomweb=f"{web.url}/dicom-web").checked()
    study = _study(_files(TOSHIBA)[0])
    archive = tmp_path / "archive"
    cancel = threading.Event()
    seen: list[int] = []

    def progress(transfer: Transfer) -> None:
        seen.append(transfer.tally.new)
        if transfer.tally.new >= 2:
            cancel.set()

    stopped = retrieve(node, archive, study, progress=progress, cancel=cancel)
    assert (stopped.tally.new, stopped.expected) == (2, 40) and seen == [1, 2]
    assert not list((archive / "store" / "incoming").glob(".incoming-*"))
    asked: list[str] = []
    request = Client.request

    def spy(self: Client, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        asked.append(url)  # the real request, counted
        return request(self, method, url, *args, **kwargs)

    monkeypatch.setattr(Client, "request", spy)
    resumed = retrieve(node, archive, study)
    assert (resumed.tally.new, resumed.present, resumed.expected) == (38, 2, 40)
    assert resumed.failed == 0 and len(_archive_files(archive)) == 40
    wado = [url for url in asked if "/instances?" not in url and "/studies?" not in url]
    assert len(wado) == 1 and "/series/" in wado[0], asked


def test_send_by_stow_arrives_in_orthanc_and_anonymized_too(nodes: Orthanc, tmp_path: Path) -> None:
    source = tmp_path / "source"
    write_series(source, AXIAL, size=16, count=4, series_uid="1.2.826.0.1.3680043.8.498.777")
    for path in source.glob("*.dcm"):  # a study of its own
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.776"
        ds.save_as(path)
    archive = tmp_path / "archive"
    run_cli("import", str(source), archive=archive)
    summary = cli_json("send", "web", "1.2.826.0.1.3680043.8.498.777", archive=archive)
    assert (summary["sent"], summary["failed"]) == (4, [])
    query = {"Level": "Instance", "Query": {"SeriesInstanceUID": "1.2.826.0.1.3680043.8.498.777"}}
    found = rest(nodes, "/tools/find", "POST", query)
    assert len(found) == 4

    before = rest(nodes, "/statistics")["CountInstances"]
    names_before = _patient_names(nodes)
    anonymized = run_cli("send", "web", "1.2.826.0.1.3680043.8.498.777", "--anonymize",
                         "--allow-burned-in", archive=archive).stdout  # fmt: skip
    assert "4/4 instances sent to web, de-identified" in anonymized
    assert rest(nodes, "/statistics")["CountInstances"] == before + 4  # new UIDs: new instances
    assert _patient_names(nodes) - names_before  # a new patient: the pseudonym


def _patient_names(server: Orthanc) -> set[str]:
    return {
        rest(server, f"/patients/{p}")["MainDicomTags"].get("PatientName", "")
        for p in rest(server, "/patients")
    }


def test_metadata_and_server_rendered_preview_without_retrieving(nodes: Orthanc) -> None:
    from tui.net.dicomweb.wado import preview, series_metadata
    from tui.net.nodes import Node

    node = Node("web", dicomweb=f"{nodes.url}/dicom-web").checked()
    originals = _files(TOSHIBA)
    first = pydicom.dcmread(originals[0], stop_before_pixels=True)
    study, series = str(first.StudyInstanceUID), str(first.SeriesInstanceUID)
    rows = series_metadata(node, study, series)
    assert len(rows) == 40
    assert {r["SOPInstanceUID"] for r in rows} == {
        str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in originals
    }
    assert rows[0]["Modality"] == "MR" and "PixelData" not in rows[0]
    shown = preview(node, study, series, size=64)
    assert shown.source == "rendered" and shown.image.size[0] <= 64
    assert shown.sop_instance_uid in {r["SOPInstanceUID"] for r in rows}


# -- HTTPS with basic auth -------------------------------------------------------------------


def test_https_with_basic_auth_and_its_failures_in_words(
    web_tls: int, tls_files: TlsFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"https://{HOST}:{web_tls}/dicom-web"
    secret = tmp_path / "secret"
    secret.write_text(PASSWORD + "\n")
    base = ["--dicomweb", url, "--auth", "basic", "--username", USER]
    run_cli(
        "node", "add", "good", *base, "--secret-file", str(secret), "--tls-ca", str(tls_files.ca)
    )
    assert cli_json("echo", "good")["node"] == "good"
    assert cli_json("find", "good") == []  # empty, and answered

    # STOW-RS, QIDO-RS and WADO-RS over HTTPS with basic auth
    source, archive = tmp_path / "source", tmp_path / "archive"
    series = write_series(source, AXIAL, size=16, count=3)
    run_cli("import", str(source), archive=archive)
    assert cli_json("send", "good", series, archive=archive)["sent"] == 3
    [found] = cli_json("find", "good", "-k", "StudyInstanceUID")
    fetched = cli_json("get", "good", "--study", found["StudyInstanceUID"],
                       archive=tmp_path / "fetched")  # fmt: skip
    assert fetched["new"] == 3
    assert _pixels_by_uid(_archive_files(tmp_path / "fetched")) == _pixels_by_uid(
        sorted(source.glob("*.dcm"))
    )

    monkeypatch.setenv("WRONG_PW", "not-it")
    run_cli(
        "node", "add", "wrong", *base, "--secret-env", "WRONG_PW", "--tls-ca", str(tls_files.ca)
    )
    wrong = _one_line_error(run_cli("echo", "wrong", check=False))
    assert "401" in wrong and "wrong user name or password" in wrong and "'alice'" in wrong
    assert "not-it" not in wrong
    refused = _one_line_error(run_cli("send", "wrong", series, archive=archive, check=False))
    assert "wrong user name or password" in refused

    run_cli("node", "add", "untrusted", *base, "--secret-file", str(secret))
    untrusted = _one_line_error(run_cli("find", "untrusted", check=False))
    assert "not trusted" in untrusted and "tls_ca" in untrusted

    unset = _one_line_error(run_cli("echo", "wrong", check=False, env=_env_without("WRONG_PW")))
    assert "WRONG_PW" in unset and "not set" in unset


def _env_without(name: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != name}


def test_a_refused_token_a_wrong_root_and_a_silent_server_are_named(
    nodes: Orthanc, tmp_path: Path
) -> None:
    """401 to a bearer token says the token was refused (no "user name or password"); 400
    from Orthanc's own root (not /dicom-web) asks whether it is the DICOMweb root; an echo
    of a server that accepts and never answers gives up after acse_timeout, not after
    network_timeout; a secret file others can read is used, with a warning."""

    def refuse(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(401)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    with _scripted(refuse) as port:
        run_cli("node", "add", "tok", "--dicomweb", f"http://{HOST}:{port}/rs",
                "--auth", "bearer", "--secret-env", "HOME")  # fmt: skip
        refused = _one_line_error(run_cli("echo", "tok", check=False))
    assert "401" in refused and "the token was refused" in refused and "password" not in refused

    run_cli("node", "add", "root", "--dicomweb", nodes.url)
    wrong_root = _one_line_error(run_cli("echo", "root", check=False))
    assert "400" in wrong_root and "the DICOMweb root?" in wrong_root

    silent = socket.create_server((HOST, 0))  # connections complete in its backlog; no answer
    try:
        run_cli(
            "node", "add", "silent", "--dicomweb", f"http://{HOST}:{silent.getsockname()[1]}/rs"
        )
        config = Path(os.environ["XDG_CONFIG_HOME"]) / "pacs-tui" / "config.toml"
        config.write_text(config.read_text() + "acse_timeout = 1.0\nnetwork_timeout = 60.0\n")
        started = time.monotonic()
        quiet = _one_line_error(run_cli("echo", "silent", check=False))
        assert time.monotonic() - started < 15
    finally:
        silent.close()
    assert "did not answer" in quiet and "within 1 s" in quiet

    secret = tmp_path / "secret"
    secret.write_text("pw\n")
    secret.chmod(0o644)
    with _scripted(lambda handler: _json(handler, [])) as port:
        run_cli("node", "add", "open", "--dicomweb", f"http://{HOST}:{port}/rs",
                "--username", "u", "--secret-file", str(secret))  # fmt: skip
        warned = run_cli("echo", "open")
        assert f"{secret} is readable by others: chmod 600 it" in warned.stderr
        secret.chmod(0o600)
        assert "readable by others" not in run_cli("echo", "open").stderr


def test_an_expired_certificate_is_named(tls_files: TlsFiles, tmp_path: Path) -> None:
    openssl = need_binary("openssl")
    for args in (
        ["req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={HOST}",
         "-keyout", "old.key", "-out", "old.csr"],
        ["x509", "-req", "-in", "old.csr", "-CA", str(tls_files.ca), "-CAkey",
         str(tls_files.ca_key), "-set_serial", "77", "-days", "-1", "-extfile",
         str(tls_files.ca.parent / "leaf.ext"), "-out", "old.pem"],
    ):  # fmt: skip
        subprocess.run([openssl, *args], cwd=tmp_path, check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "old.pem", tmp_path / "old.key")
    with _scripted(lambda handler: _json(handler, []), context) as port:
        run_cli("node", "add", "old", "--dicomweb", f"https://{HOST}:{port}/rs",
                "--tls-ca", str(tls_files.ca))  # fmt: skip
        error = _one_line_error(run_cli("echo", "old", check=False))
    assert "certificate has expired" in error and "renew" in error


# -- scripted servers that misbehave ---------------------------------------------------------


Handler = Callable[[http.server.BaseHTTPRequestHandler], None]


@contextlib.contextmanager
def _scripted(handle: Handler, context: ssl.SSLContext | None = None) -> Iterator[int]:
    """An HTTP server on loopback in a thread answering every GET with ``handle``."""

    class Scripted(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                handle(self)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer((HOST, 0), Scripted)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _json(handler: http.server.BaseHTTPRequestHandler, items: list[Any]) -> None:
    body = json.dumps(items).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/dicom+json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _uid(tag: str, value: str) -> dict[str, Any]:
    return {tag: {"vr": "UI", "Value": [value]}}


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("three")
    write_series(folder, AXIAL, size=32, count=3, series_uid="1.2.826.0.1.3680043.8.498.333")
    return sorted(folder.glob("*.dcm"))


@pytest.mark.parametrize("how", ["closed", "content-length", "chunked"])
def test_a_body_cut_short_files_the_whole_parts_and_indexes_nothing_partial(
    three: list[Path], tmp_path: Path, how: str
) -> None:
    """The third part is cut in its middle: by a server that closes the connection without
    the closing delimiter, by one that promised more bytes (Content-Length), and by one that
    drops a chunked body mid-chunk. The two parts before it are filed; nothing else."""
    study = _study(three[0])
    boundary = "b0und4ry"
    parts = [
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + p.read_bytes()
        for p in three
    ]
    body = b"\r\n".join(parts[:2]) + b"\r\n" + parts[2][: len(parts[2]) // 2]

    def handle(handler: http.server.BaseHTTPRequestHandler) -> None:
        query = parse_qs(urlsplit(handler.path).query)
        if "limit" in query:  # the count before the retrieve
            _json(handler, [_uid("0020000D", study) | {"00201208": {"vr": "IS", "Value": [3]}}])
            return
        handler.send_response(200)
        handler.send_header(
            "Content-Type", f'multipart/related; type="application/dicom"; boundary={boundary}'
        )
        if how == "content-length":
            handler.send_header("Content-Length", str(len(body) * 2))
        elif how == "chunked":
            handler.send_header("Transfer-Encoding", "chunked")
        else:
            handler.send_header("Connection", "close")
        handler.end_headers()
        if how == "chunked":
            handler.wfile.write(f"{len(body) + 1000:x}\r\n".encode() + body)
        else:
            handler.wfile.write(body)
        handler.wfile.flush()
        handler.close_connection = True
        handler.connection.shutdown(socket.SHUT_RDWR)

    archive = tmp_path / "archive"
    with _scripted(handle) as port:
        run_cli("node", "add", "cut", "--dicomweb", f"http://{HOST}:{port}/rs")
        result = run_cli("get", "cut", "--study", study, archive=archive, check=False)
    error = _one_line_error(result)
    assert "cut" in error and "2 instances came whole" in error and "resumes" in error
    filed = _archive_files(archive)
    assert sorted(_pixels_by_uid(filed)) == sorted(_pixels_by_uid(three[:2]))
    assert not list((archive / "store" / "incoming").glob(".incoming-*"))  # no half file left


@pytest.mark.parametrize("ignores", ["offset", "limit"])
def test_a_server_that_ignores_paging_never_loops(tmp_path: Path, ignores: str) -> None:
    """Every page the same studies (offset ignored), or every study on every page (limit
    ignored, 1,500 of them for pages of 1,000): the query ends, with a warning."""
    asked = []

    def handle(handler: http.server.BaseHTTPRequestHandler) -> None:
        query = parse_qs(urlsplit(handler.path).query)
        asked.append(query)
        count = int(query["limit"][0]) if ignores == "offset" else 1500
        _json(handler, [_uid("0020000D", f"1.2.3.{i}") for i in range(count)])

    with _scripted(handle) as port:
        run_cli("node", "add", "lazy", "--dicomweb", f"http://{HOST}:{port}/rs")
        result = run_cli("find", "lazy", "--json", check=False)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == (1000 if ignores == "offset" else 1500)
    assert len({r["StudyInstanceUID"] for r in rows}) == len(rows)
    assert f"ignores {ignores}" in result.stderr
    assert len(asked) == (2 if ignores == "offset" else 1)


def test_pages_shorter_than_asked_are_followed_when_the_server_says_there_is_more() -> None:
    """A server that caps its pages at 300 and says so (Warning 299, PS3.18): every study
    comes, page by page, and a page that comes back empty ends it."""
    asked = []

    def handle(handler: http.server.BaseHTTPRequestHandler) -> None:
        query = parse_qs(urlsplit(handler.path).query)
        asked.append((query["offset"][0], query["limit"][0]))
        offset = int(query["offset"][0])
        items = [_uid("0020000D", f"1.2.3.{i}") for i in range(offset, min(offset + 300, 700))]
        body = json.dumps(items).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/dicom+json")
        handler.send_header("Warning", "299 qido: There are additional results to be requested")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    with _scripted(handle) as port:
        run_cli("node", "add", "capped", "--dicomweb", f"http://{HOST}:{port}/rs")
        rows = cli_json("find", "capped", "-k", "StudyInstanceUID")
    assert [r["StudyInstanceUID"] for r in rows] == [f"1.2.3.{i}" for i in range(700)]
    assert [offset for offset, _ in asked] == ["0", "300", "600", "700"]


# -- the multipart reader ------------------------------------------------------------------


def test_the_multipart_reader_is_linear_in_time_and_flat_in_memory() -> None:
    """256 MiB as one part and as 256 parts of 1 MiB, served by a local HTTP server: the
    same time per byte (the boundary is never searched for twice), and a peak of a few
    MiB of Python memory whatever the part's size."""
    import http.client

    from tui.net.dicomweb.multipart import boundary_of, read_multipart

    block = os.urandom(1 << 20).replace(b"--", b"-x")
    total = 256

    def handle(handler: http.server.BaseHTTPRequestHandler) -> None:
        parts = 1 if "one" in handler.path else total
        handler.send_response(200)
        handler.send_header("Content-Type", "multipart/related; boundary=BOUNDARY")
        handler.send_header("Connection", "close")
        handler.end_headers()
        for i in range(total):
            if i % (total // parts) == 0:
                handler.wfile.write(b"\r\n--BOUNDARY\r\nContent-Type: application/dicom\r\n\r\n")
            handler.wfile.write(block)
        handler.wfile.write(b"\r\n--BOUNDARY--\r\n")

    class Count:
        size = 0

        def write(self, data: memoryview) -> None:
            Count.size += len(data)

        def finish(self) -> None:
            pass

        def discard(self) -> None:
            pass

    seconds = {}
    with _scripted(handle) as port:
        for kind in ("many", "one", "many", "one"):
            connection = http.client.HTTPConnection(HOST, port)
            connection.request("GET", f"/{kind}")
            response = connection.getresponse()
            Count.size = 0
            tracemalloc.start()
            started = time.perf_counter()
            count = read_multipart(
                response.read1, boundary_of(response.getheader("Content-Type")), lambda h: Count()
            )
            elapsed = time.perf_counter() - started
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            connection.close()
            assert count == (1 if kind == "one" else total)
            assert Count.size == total << 20
            assert peak < 8 << 20, f"{peak / 2**20:.1f} MiB of Python memory for {kind}"
            seconds[kind] = min(seconds.get(kind, elapsed), elapsed)
    assert seconds["one"] < 1.5 * seconds["many"] + 0.2, seconds


# -- the app ---------------------------------------------------------------------------------


async def test_the_remote_screen_queries_a_dicomweb_node_and_previews_a_series(
    web: Orthanc, tmp_path: Path
) -> None:
    """Query, series on demand, and ``v``: the server's rendering and the series' tags,
    marked as the server's; a DIMSE node's series cannot be previewed, and says why."""
    from textual.widgets import DataTable, Input, Tree

    from tests.test_app import _settle
    from tui.app.app import PacsApp
    from tui.app.image_view import ImageView
    from tui.app.remote import RemoteScreen
    from tui.app.remote.preview import PreviewScreen
    from tui.archive.index import Archive
    from tui.net.nodes import Node, save_node
    from tui.term.detect import BANDWIDTH

    config = tmp_path / "config"
    save_node(config / "config.toml", Node("web", dicomweb=f"{web.url}/dicom-web"))
    app = PacsApp(Archive(tmp_path / "archive"), BANDWIDTH["normal"], config_dir=config)

    async def wait(until: Callable[[], bool], what: str) -> None:
        for _ in range(200):
            await _settle(app, pilot)
            if until():
                return
        raise AssertionError(f"timed out waiting for {what}")

    async with app.run_test(size=(100, 30)) as pilot:
        await _settle(app, pilot)
        await pilot.press("p")
        await _settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, RemoteScreen)
        screen.query_one("#q-name", Input).value = "Synth*"
        screen.query_one("#q-name", Input).focus()
        await pilot.press("enter")
        await wait(lambda: screen.run is not None and screen.run.finished, "the query")
        tree = screen.query_one(Tree)
        [study] = [  # the fixture's synthetic study (other tests send studies of their own)
            s
            for patient in tree.root.children
            for s in patient.children
            if s.data["row"]["StudyInstanceUID"] == "1.2.826.0.1.3680043.8.498.1"
        ]
        tree.move_cursor(study)
        await pilot.press("enter")  # its series, by QIDO-RS
        await wait(lambda: bool(study.children) and study.children[0].data["level"] == "series",
                   "the series")  # fmt: skip
        assert len(study.children) == 2
        tree.move_cursor(study.children[0])
        tree.focus()
        await pilot.press("v")
        await wait(lambda: isinstance(app.screen, PreviewScreen), "the preview")
        preview = app.screen
        await wait(lambda: "instance" in str(preview.query_one("#preview-status").render()),
                   "the rendering")  # fmt: skip
        assert "SERVER RENDERING" in str(preview.query_one("#preview-title").render())
        assert preview.source == "rendered" and len(preview.rows) == 5
        assert preview.query_one(ImageView)._image is not None
        assert preview.query_one(DataTable).row_count > 10
        await pilot.press("escape")
        await _settle(app, pilot)
        assert app.screen is screen
    from tui.app.remote.preview import can_preview

    assert "needs DICOMweb" in can_preview(Node("pacs", "ORTHANC", "127.0.0.1", 4242))
