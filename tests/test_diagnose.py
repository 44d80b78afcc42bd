"""``pacs-tui node test``: each step's verdict names the right cause, against real servers.

A healthy Orthanc and dcmqrscp pass every DIMSE step; an Orthanc that knows no AE title but
its own modalities refuses ours; a move destination pointing at a closed port is diagnosed as
"cannot reach us"; a dead port and an unknown host fail at the first step and skip the rest.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from textual.widgets import OptionList

from tests.conftest import cli_json, need_shared, run_cli
from tests.servers import (
    HOST,
    PACSTUI,
    PACSTUI_TLS,
    Orthanc,
    clear,
    free_port,
    start_orthanc,
    store_scu,
    upload,
)
from tests.test_app import _settle
from tui.net.diagnose import (
    FAILED,
    OK,
    SKIPPED,
    WARNING,
    Step,
    address_of,
    diagnose,
    exit_status,
)  # fmt: skip
from tui.net.nodes import Node, save_node

TOSHIBA = "neurolabusc_dcm_qa_toshiba/MR_Toshiba_Galan3T_DTI_ortho_b0_volume"
DIMSE_STEPS = ["connect", "associate", "echo", "find", "get", "move", "worklist"]
WEB_STEPS = ["connect", "endpoints", "echo", "find", "get"]
USER, PASSWORD = "alice", "s3cret-pw"


def _files(count: int = 3) -> list[Path]:
    return sorted(p for p in (need_shared() / TOSHIBA).glob("*.dcm"))[:count]


def _run(node: Node, port: int = 0) -> dict[str, Step]:
    steps = {step.key: step for step in diagnose(node, receive_port=port)}
    assert list(steps) == (WEB_STEPS if node.dicomweb else DIMSE_STEPS)
    return steps


@pytest.fixture(scope="module")
def loaded(orthanc):
    clear(orthanc)
    upload(orthanc, _files())
    return orthanc


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory, pacstui_port: int) -> Iterator[Orthanc]:
    """An Orthanc that takes only the modalities it knows (PACSTUI, without C-GET) and its
    own AE title."""
    refuse = {f"DicomAlwaysAllow{what}": False for what in ("Echo", "Find", "Get", "Move", "Store")}
    known = {"pacstui": {"AET": PACSTUI, "Host": HOST, "Port": pacstui_port, "AllowGet": False}}
    config = {**refuse, "DicomCheckCalledAet": True, "DicomModalities": known}
    workdir = tmp_path_factory.mktemp("strict")
    with start_orthanc(workdir, move_port=pacstui_port, extra_config=config) as server:
        upload(server, _files(1))
        yield server


def test_a_healthy_orthanc_passes_every_step(loaded, tmp_path: Path, pacstui_port: int) -> None:
    run_cli("node", "add", "pacs", loaded.aet, loaded.host, str(loaded.port), "--method", "move")
    report = cli_json("node", "test", "pacs", "--port", str(pacstui_port))
    steps = {s["step"]: s for s in report["steps"]}
    assert list(steps) == DIMSE_STEPS
    verdicts = {key: s["verdict"] for key, s in steps.items()}
    assert verdicts == dict.fromkeys(DIMSE_STEPS[:-1], OK) | {"worklist": SKIPPED}, steps
    associate = steps["associate"]
    assert associate["max_pdu"] > 0 and associate["implementation_version_name"].startswith("OFFIS")
    assert associate["implementation_class_uid"].startswith("1.2.276.0.7230010")
    verification = associate["accepted"]["1.2.840.10008.1.1"]
    assert set(verification["transfer_syntaxes"]) == {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}
    assert associate["accepted"]["1.2.840.10008.5.1.4.1.1.4"]["scp_role"]  # MR, for C-GET
    assert "1.2.840.10008.5.1.4.31" in associate["refused"]  # no worklist plugin loaded
    levels = steps["find"]["levels"]
    assert [levels[lv]["count"] for lv in ("patient", "study", "series", "image")] == [1, 1, 1, 3]
    assert steps["get"]["received"] == 1 and steps["move"]["received"] == 1
    assert "round trip" in steps["move"]["summary"]
    assert all(s["ms"] >= 0 for s in report["steps"])
    # Each step's time is the node's: not pacs-tui importing pynetdicom (half a second, in
    # this fresh process), nor starting and stopping our storage SCP for the round trip.
    (negotiated,) = [d for d in associate["details"] if d.startswith("negotiated in")]
    assert associate["ms"] - float(negotiated.split()[2]) < 250, associate
    round_trip = float(steps["move"]["summary"].split("round trip in ")[1].split()[0])
    assert steps["move"]["ms"] - round_trip < 250, steps["move"]

    text = run_cli("node", "test", "pacs", "--port", str(pacstui_port)).stdout
    assert text.index("C-ECHO") < text.index("C-FIND") < text.index("C-MOVE round trip")
    assert "6 ok, 1 skipped" in text


def test_dcmqrscp_passes_too_and_its_unreachable_destination_is_named(
    dcmqrscp, pacstui_port: int
) -> None:
    """dcmtk's own Q/R SCP answers an unknown destination with A801, a known one it cannot
    reach with a failure: each gets its own verdict."""
    store_scu(dcmqrscp, _files())
    node = Node("qr", dcmqrscp.aet, dcmqrscp.host, dcmqrscp.port, method="move")
    steps = _run(node, pacstui_port)
    assert all(steps[k].verdict == OK for k in DIMSE_STEPS[:-1]), steps

    closed = free_port()  # dcmqrscp has PACSTUI at pacstui_port; we listen elsewhere
    moved = _run(node, closed)["move"]
    assert moved.verdict == FAILED
    assert f"knows PACSTUI but cannot reach us at port {pacstui_port}" not in moved.summary
    assert f"the PACS knows PACSTUI but cannot reach us at port {closed}" in moved.summary
    assert "firewall or NAT" in moved.summary and "--method get" in moved.fix

    nobody = Node("qr", dcmqrscp.aet, dcmqrscp.host, dcmqrscp.port, method="move",
                  move_destination="NOBODY")  # fmt: skip
    moved = _run(nobody, pacstui_port)["move"]
    assert moved.verdict == FAILED
    assert moved.summary == "the PACS does not know our AE title NOBODY as a move destination"
    assert f"add NOBODY at 127.0.0.1:{pacstui_port} on the PACS" in moved.fix


def test_a_move_destination_at_a_closed_port_is_a_pacs_that_cannot_reach_us(loaded) -> None:
    closed = free_port()  # Orthanc moves to PACSTUI at pacstui_port, where nothing listens
    node = Node("pacs", loaded.aet, loaded.host, loaded.port, method="move")
    steps = _run(node, closed)
    moved = steps["move"]
    assert moved.verdict == FAILED and exit_status(list(steps.values())) == 1
    # Orthanc 1.10 answers an unknown destination as it answers this: both causes are named
    assert f"cannot reach us at port {closed}" in moved.summary
    assert "firewall or NAT" in moved.summary
    assert f"open port {closed}" in moved.fix
    assert steps["get"].verdict == OK  # C-GET works: the fix offers it
    assert "--method get" in moved.fix
    # Orthanc 1.10 answers an unknown destination alike: two numbered causes, each its fix
    assert "(1) it does not know PACSTUI as a move destination, or (2) it knows" in moved.summary
    assert moved.fix.startswith("(1) add PACSTUI at") and "; (2) the PACS must reach" in moved.fix

    # A node that retrieves by C-GET only warns (its retrieves do not need the round trip),
    # and is not told to retrieve by C-GET.
    node = Node("pacs", loaded.aet, loaded.host, loaded.port, method="get")
    moved = _run(node, closed)["move"]
    assert moved.verdict == WARNING and "--method get" not in moved.fix
    assert "this node retrieves by C-GET" in moved.fix


def test_a_wrong_called_ae_title_on_a_lax_pacs_is_named(loaded) -> None:
    """Orthanc with DicomCheckCalledAet false (the shared one) answers any called AE title:
    its RetrieveAETitle in the C-FIND answers tells the node's is wrong."""
    wrong = Node("lax", "NOT_ORTHANC", loaded.host, loaded.port)
    steps = _run(wrong)
    assert steps["associate"].verdict == steps["get"].verdict == OK  # it answers all the same
    found = steps["find"]
    assert found.verdict == WARNING, found
    assert f"the PACS calls itself {loaded.aet} in its answers" in found.summary
    assert "the node says NOT_ORTHANC" in found.summary
    assert found.fix == f"pacs-tui node edit lax --aet {loaded.aet}"
    assert found.facts["retrieve_ae_titles"] == [loaded.aet]

    right = _run(Node("lax", loaded.aet, loaded.host, loaded.port))["find"]
    assert right.verdict == OK and right.facts["retrieve_ae_titles"] == [loaded.aet]


def test_a_pacs_that_does_not_know_our_ae_title_says_add_it(strict) -> None:
    run_cli("node", "add", "strict", strict.aet, strict.host, str(strict.port),
            "--calling-aet", "STRANGER")  # fmt: skip
    result = run_cli("node", "test", "strict", "--json", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    steps = {s["step"]: s for s in json.loads(result.stdout)["steps"]}
    assert steps["connect"]["verdict"] == OK
    assert steps["associate"]["verdict"] == FAILED
    assert steps["associate"]["summary"] == (
        "the PACS does not know our AE title STRANGER: add it on the PACS"
    )
    assert "--calling-aet" in steps["associate"]["fix"]
    assert steps["associate"]["rejection"] == {"result": 1, "source": 1, "reason": 3}
    for key in DIMSE_STEPS[2:]:
        assert steps[key]["verdict"] == SKIPPED and "no association" in steps[key]["summary"]

    wrong = Node("strict", "NOT_ORTHANC", strict.host, strict.port)
    associate = _run(wrong, 0)["associate"]
    assert associate.verdict == FAILED
    assert "does not answer to the AE title NOT_ORTHANC" in associate.summary
    assert "--aet" in associate.fix

    known = Node("strict", strict.aet, strict.host, strict.port)  # PACSTUI: a known modality
    steps = _run(known, 0)
    assert steps["associate"].verdict == steps["find"].verdict == OK
    assert steps["get"].verdict == FAILED  # the node retrieves by C-GET, which it refuses
    assert "does not allow C-GET from our AE title PACSTUI" in steps["get"].summary
    assert "--method move" in steps["get"].fix


def test_over_tls_every_step_passes_and_a_missing_setting_is_named(
    orthanc_tls, pacstui_port: int
) -> None:
    clear(orthanc_tls)
    upload(orthanc_tls, _files(1))
    files = {"tls_ca": str(orthanc_tls.ca), "tls_cert": str(orthanc_tls.client_cert),
             "tls_key": str(orthanc_tls.client_key)}  # fmt: skip
    where = (orthanc_tls.aet, orthanc_tls.host, orthanc_tls.port)
    node = Node("tls", *where, method="move", move_destination=PACSTUI_TLS, **files)
    steps = _run(node, pacstui_port)
    assert all(steps[k].verdict == OK for k in DIMSE_STEPS[:-1]), steps
    assert steps["connect"].summary.endswith("answers over TLS")
    assert steps["connect"].facts["tls"].startswith("TLS")

    plain = _run(Node("tls", *where))["associate"]
    assert plain.verdict == FAILED and "speaks TLS, and the node is set up without" in plain.summary
    assert "--tls-ca" in plain.fix

    untrusted = _run(Node("tls", *where, tls_cert=files["tls_cert"], tls_key=files["tls_key"]))
    connected = untrusted["connect"]  # the system's CAs do not know the test CA
    assert connected.verdict == FAILED and "its TLS certificate is not trusted" in connected.summary
    assert connected.summary.startswith(f"tls ({orthanc_tls.host}:{orthanc_tls.port}): ")
    assert connected.fix.endswith("(pacs-tui node edit tls --tls-ca PEM)")

    no_cert = _run(Node("tls", *where, tls_ca=files["tls_ca"]))["associate"]
    assert no_cert.verdict == FAILED and "it may want our certificate" in no_cert.summary
    assert "--tls-cert PEM --tls-key PEM" in no_cert.fix


def test_a_dead_port_and_an_unknown_host_fail_first_and_skip_the_rest(tmp_path: Path) -> None:
    port = free_port()
    run_cli("node", "add", "dead", "NOBODY", "127.0.0.1", str(port))
    result = run_cli("node", "test", "dead", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert f"nothing listens on 127.0.0.1:{port}: is the PACS running, the port right?" in (
        result.stdout
    )
    assert sum(line.startswith("skipped") for line in lines) == 6, result.stdout
    assert "no connection to 127.0.0.1" in result.stdout

    unknown = Node("dns", "NOBODY", "no-such-host.invalid", 104)
    steps = _run(unknown, 0)
    assert steps["connect"].verdict == FAILED
    assert "the name no-such-host.invalid is unknown" in steps["connect"].summary
    assert "IP address" in steps["connect"].fix
    assert all(steps[k].verdict == SKIPPED for k in DIMSE_STEPS[1:])


def test_the_worklist_step_counts_what_is_scheduled(
    tmp_path_factory: pytest.TempPathFactory, pacstui_port: int
) -> None:
    workdir = tmp_path_factory.mktemp("worklist")
    database = workdir / "worklists"
    database.mkdir()
    for n, day in enumerate([dt.date.today(), dt.date(2020, 1, 15)]):
        ds, item = Dataset(), Dataset()
        ds.PatientName, ds.PatientID, ds.AccessionNumber = f"STEP^{n}", f"PID{n}", f"ACC{n}"
        item.ScheduledProcedureStepStartDate, item.Modality = f"{day:%Y%m%d}", "CT"
        item.ScheduledStationAETitle, item.ScheduledProcedureStepID = "CT1", f"SPS{n}"
        ds.ScheduledProcedureStepSequence = Sequence([item])
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.31"
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(database / f"{n}.wl", enforce_file_format=True)
    config = {"Worklists": {"Enable": True, "Database": str(database)}}
    with start_orthanc(workdir, move_port=pacstui_port, plugins=["ModalityWorklists"],
                       extra_config=config) as server:  # fmt: skip
        node = Node("ris", server.aet, server.host, server.port)
        steps = _run(node)
    assert steps["worklist"].verdict == OK, steps["worklist"]
    assert steps["worklist"].summary == "1 step scheduled today, 2 steps in all"
    assert steps["worklist"].facts["scheduled"] == {"today": 1, "in all": 2}
    assert steps["find"].verdict == WARNING and "no studies" in steps["find"].summary
    assert steps["get"].verdict == steps["move"].verdict == SKIPPED  # nothing to retrieve


# -- DICOMweb ----------------------------------------------------------------------------------


def _start_web_orthanc(workdir: Path, move_port: int) -> Orthanc:
    """Orthanc with its DICOMweb plugin behind basic auth."""
    return start_orthanc(
        workdir, move_port=move_port, plugins=["OrthancDicomWeb"],
        extra_config={"DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
                      "AuthenticationEnabled": True, "RegisteredUsers": {USER: PASSWORD}},
    )  # fmt: skip


def _auth() -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory, pacstui_port: int) -> Iterator[Orthanc]:
    with _start_web_orthanc(tmp_path_factory.mktemp("web"), pacstui_port) as server:
        for path in _files():
            request = urllib.request.Request(
                f"{server.url}/instances", data=path.read_bytes(), headers=_auth(), method="POST"
            )
            urllib.request.urlopen(request, timeout=30).read()
        yield server


def test_a_dicomweb_node_tests_each_endpoint_and_the_auth(
    web: Orthanc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "secret"
    secret.write_text(PASSWORD + "\n")
    url = f"{web.url}/dicom-web"
    good = Node("web", dicomweb=url, auth="basic", username=USER, secret_file=str(secret))
    steps = _run(good)
    assert all(step.verdict == OK for step in steps.values()), steps
    assert steps["endpoints"].facts["status"] == {"qido": 200, "stow": 200}
    # STOW-RS is tried with a POST of an empty upload, which Orthanc takes and stores nothing
    assert any(d.startswith("STOW-RS POST ") for d in steps["endpoints"].details)
    assert "STOW-RS takes uploads" in steps["endpoints"].summary
    assert _instances(web) == 3
    levels = steps["find"].facts["levels"]
    assert [levels[lv]["count"] for lv in ("study", "series", "image")] == [1, 1, 3]
    assert steps["get"].facts["received"] == 1

    monkeypatch.setenv("WRONG_PW", "not-it")
    wrong = Node("web", dicomweb=url, auth="basic", username=USER, secret_env="WRONG_PW")
    steps = _run(wrong)
    assert steps["endpoints"].verdict == FAILED
    assert steps["endpoints"].summary == (
        "QIDO-RS answers 401 Unauthorized: the server refuses our credentials"
    )
    assert "wrong credentials" in steps["endpoints"].fix and "$WRONG_PW" in steps["endpoints"].fix
    assert "not-it" not in repr(steps)
    assert all(steps[k].verdict == SKIPPED for k in WEB_STEPS[2:])

    anonymous = _run(Node("web", dicomweb=url))["endpoints"]
    assert anonymous.summary.endswith("the server wants credentials")
    assert "--auth basic" in anonymous.fix

    elsewhere = Node("web", dicomweb=f"{web.url}/not-dicomweb", auth="basic", username=USER,
                     secret_file=str(secret))  # fmt: skip
    wrong_root = _run(elsewhere)["endpoints"]
    assert wrong_root.verdict == FAILED and "404" in wrong_root.summary
    assert "not the DICOMweb root" in wrong_root.summary

    no_stow = Node("web", dicomweb=url, stow_url=f"{url}/series", wado_url=f"{web.url}/nowhere",
                   auth="basic", username=USER, secret_file=str(secret))  # fmt: skip
    steps = _run(no_stow)
    assert steps["endpoints"].verdict == WARNING and steps["find"].verdict == OK
    assert f"there is no STOW-RS at {url}/series" in steps["endpoints"].summary
    assert "404 Not Found" in steps["endpoints"].summary
    assert steps["endpoints"].fix.startswith(
        "set its STOW-RS root: pacs-tui node edit web --stow-url"
    )
    wado = steps["get"]
    assert wado.verdict == FAILED and "404" in wado.summary
    assert wado.fix.startswith(f"check the WADO-RS root {web.url}/nowhere: pacs-tui node edit web")
    assert "--wado-url URL" in wado.fix

    dead = _run(Node("web", dicomweb=f"http://127.0.0.1:{free_port()}/dicom-web"))
    assert "nothing listens on 127.0.0.1:" in dead["connect"].summary
    assert "--dicomweb URL" in dead["connect"].fix


def test_node_test_refuses_a_bad_port_and_an_unknown_node() -> None:
    result = run_cli("node", "test", "nobody", check=False)
    assert result.returncode != 0 and "no node 'nobody'" in result.stderr
    run_cli("node", "add", "x", "X", "127.0.0.1", "104")
    result = run_cli("node", "test", "x", "--port", "70000", check=False)
    assert result.returncode != 0 and "--port 70000" in result.stderr
    assert "Traceback" not in result.stderr


async def test_the_node_list_tests_the_highlighted_node_live(
    loaded, tmp_path: Path, pacstui_port: int
) -> None:
    from tui.app.app import PacsApp
    from tui.app.remote.diagnose import DiagnoseScreen
    from tui.archive.index import Archive
    from tui.term.detect import BANDWIDTH

    config = tmp_path / "config"
    save_node(config / "config.toml", Node("pacs", loaded.aet, loaded.host, loaded.port))
    (config / "config.toml").write_text(
        (config / "config.toml").read_text() + f"\n[receiver]\nport = {pacstui_port}\n"
    )
    app = PacsApp(Archive(tmp_path / "archive"), BANDWIDTH["normal"], config_dir=config)
    async with app.run_test(size=(100, 40)) as pilot:
        await _settle(app, pilot)
        await pilot.press("p")
        await _settle(app, pilot)
        app.screen.query_one("#nodes", OptionList).focus()
        await pilot.press("t")
        for _ in range(200):
            await _settle(app, pilot)
            if isinstance(app.screen, DiagnoseScreen) and app.screen.finished:
                break
        panel = app.screen
        assert isinstance(panel, DiagnoseScreen) and panel.finished
        assert [s.key for s in panel.steps] == DIMSE_STEPS
        assert [s.verdict for s in panel.steps[:-1]] == [OK] * 6  # the move used [receiver]
        shown = [str(w.render()) for w in panel.query(".step")]
        assert len(shown) == 7 and "C-MOVE round trip" in shown[5] and "round trip in" in shown[5]
        assert "6 ok, 1 skipped" in str(panel.query_one("#diagnose-status").render())
        await pilot.press("escape")
        await _settle(app, pilot)
        assert not isinstance(app.screen, DiagnoseScreen)

        await pilot.press("t")  # again, and stopped at once: the panel goes, the test stops
        await pilot.pause()
        stopped = app.screen
        assert isinstance(stopped, DiagnoseScreen)
        await pilot.press("escape")
        await _settle(app, pilot)
        assert not isinstance(app.screen, DiagnoseScreen) and stopped.cancel.is_set()
        assert len(stopped.steps) < 7 and not stopped.finished


def _instances(server: Orthanc) -> int:
    request = urllib.request.Request(f"{server.url}/statistics", headers=_auth())
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(json.load(response)["CountInstances"])


def test_https_failures_name_the_url_and_the_fix(web: Orthanc, orthanc_tls: Orthanc) -> None:
    """An https URL whose certificate we cannot check (Orthanc's DICOM TLS port: the
    handshake is all the connect step does), and one on a plain HTTP port: each says so with
    the URL's host and port, in the DICOMweb client's words, and the fix."""
    where = f"{orthanc_tls.host}:{orthanc_tls.port}"
    untrusted = _run(Node("tlsnoca", dicomweb=f"https://{where}/dicom-web"))["connect"]
    assert untrusted.verdict == FAILED
    assert untrusted.summary.startswith(f"tlsnoca ({where}): its TLS certificate is not trusted")
    assert (
        untrusted.fix
        == "set tls_ca (pacs-tui node edit tlsnoca --tls-ca PEM) to the CA that signed it"
    )

    plain = f"{web.host}:{web.http_port}"
    steps = _run(Node("mixup", dicomweb=f"https://{plain}/dicom-web"))
    wrong = steps["connect"]
    assert wrong.verdict == FAILED
    assert wrong.summary.startswith(f"mixup ({plain}): the TLS handshake failed")
    assert wrong.fix == "check that the URL's scheme (https or http) is the one the server speaks"
    assert "tls_cert" not in repr(wrong) and "--tls-" not in wrong.fix  # no DIMSE advice
    assert all(steps[k].verdict == SKIPPED for k in WEB_STEPS[1:])


class _StallingQido(http.server.BaseHTTPRequestHandler):
    """A DICOMweb server that answers the probes (a QIDO-RS for one study, the empty STOW-RS)
    at once and every other query too late: a server too slow for the node's timeout."""

    def do_GET(self) -> None:
        if parse_qs(urlsplit(self.path).query).get("limit") != ["1"]:
            time.sleep(3)
        self._answer(b"[]")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._answer(b"{}")

    def _answer(self, body: bytes) -> None:
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/dicom+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client gave up waiting

    def log_message(self, *args: object) -> None:
        pass


def test_a_dicomweb_query_timeout_gets_http_advice() -> None:
    server = http.server.ThreadingHTTPServer((HOST, 0), _StallingQido)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://{HOST}:{server.server_address[1]}/dicom-web"
        steps = _run(Node("slow", dicomweb=url, network_timeout=1.0))
    finally:
        server.shutdown()
        server.server_close()
    assert steps["endpoints"].verdict == steps["echo"].verdict == OK, steps
    found = steps["find"]
    assert found.verdict == FAILED and "did not answer" in found.summary
    assert "AE title" not in found.fix and "PACSTUI" not in found.fix
    assert "slow or does not answer" in found.fix and f"the QIDO-RS URL {url}" in found.fix
    assert "pacs-tui node edit slow --timeout S (now 1 s)" in found.fix


def test_the_heading_shows_each_dicomweb_root() -> None:
    one = Node("web", dicomweb="http://pacs:8042/dicom-web/")
    assert address_of(one) == "http://pacs:8042/dicom-web"
    apart = Node("web", dicomweb="http://pacs:8042/dicom-web", wado_url="http://wado:80/wado",
                 stow_url="https://stow:443/stow")  # fmt: skip
    assert address_of(apart) == (
        "QIDO-RS http://pacs:8042/dicom-web, WADO-RS http://wado:80/wado, "
        "STOW-RS https://stow:443/stow"
    )
    dimse = Node("pacs", "ORTHANC", "127.0.0.1", 4242)
    assert address_of(dimse) == "ORTHANC@127.0.0.1:4242"
