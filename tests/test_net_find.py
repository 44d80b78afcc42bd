"""C-FIND with our own upper layer (tui.net.find, tui.net.dul) against real servers.

Orthanc (plain, TLS, UTF-8, refusing strangers) and dcmqrscp hold copies of a real CT
slice from ../shared/dicom, rewritten with pydicom into patients with known names, dates
and character sets; answers are checked against what we stored and, for the matching
rules, against dcmtk's findscu (an independent client). Peers that misbehave (refusing,
silent, speaking garbage) are small sockets of our own: only they can be made to.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.uid import generate_uid

from tests.conftest import ROOT, need_shared
from tests.servers import (
    Orthanc,
    clear,
    find_scu,
    free_port,
    start_dcmqrscp,
    start_orthanc,
    store_scu,
    upload,
)
from tui.errors import UserError
from tui.net import find as find_module
from tui.net.dul import IMPLICIT_VR_LE, Association
from tui.net.errors import NetError
from tui.net.find import Query, find, find_split
from tui.net.nodes import Node

CT_SLICE = "pydicom_test_files/dicomdir/98892001/CT5N"  # 16x16 CT slices, ~4 kB each
BULK = 120  # studies for the limit and cancel tests
# name, SpecificCharacterSet, PatientID, StudyDate, Modality, instances
PATIENTS = [
    ("Smith^John", "", "PT-A", "20190315", "CT", 2),
    ("Smithers^Waylon", "", "PT-B", "20200620", "MR", 1),
    ("Müller^Jürgen", "ISO_IR 100", "PT-C", "20210101", "CT", 1),
    ("Yamada^Tarou=山田^太郎=やまだ^たろう", "ISO_IR 192", "PT-D", "20220202", "MR", 1),
    ("Ωμέγα^Δέλτα", "ISO_IR 192", "PT-E", "20220303", "CT", 1),
]


def node_for(server: Orthanc, **changes: object) -> Node:
    """A node for a test server, with short timeouts (a hang fails fast)."""
    values: dict[str, object] = {"name": "test", "aet": server.aet, "host": server.host,
                                 "port": server.port, "acse_timeout": 10.0,
                                 "dimse_timeout": 20.0}  # fmt: skip
    if server.tls is not None:
        values |= {"tls_ca": str(server.ca), "tls_cert": str(server.client_cert),
                   "tls_key": str(server.client_key)}  # fmt: skip
    return Node(**(values | changes))  # type: ignore[arg-type]


# -- data -------------------------------------------------------------------------------------


def _variant(base: Path, out: Path, **values: str) -> Dataset:
    """A copy of ``base`` in its own patient, study, series and instance, with ``values``."""
    ds = pydicom.dcmread(base)
    for keyword, value in values.items():
        if value or keyword != "SpecificCharacterSet":
            setattr(ds, keyword, value)
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        if keyword not in values:
            setattr(ds, keyword, generate_uid())
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(out)
    ds.filename = str(out)  # dcmread set the original's
    return ds


@pytest.fixture(scope="module")
def ct_slice() -> Path:
    return sorted((need_shared() / CT_SLICE).iterdir())[0]


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory, ct_slice: Path) -> dict[str, list[Dataset]]:
    """The files of every test patient (by PatientID) and of the bulk studies ("BULK")."""
    folder = tmp_path_factory.mktemp("find-data")
    files: dict[str, list[Dataset]] = {}
    for name, charset, patient_id, date, modality, count in PATIENTS:
        study, series = generate_uid(), generate_uid()
        files[patient_id] = [
            _variant(ct_slice, folder / f"{patient_id}-{n}.dcm", PatientName=name,
                     SpecificCharacterSet=charset, PatientID=patient_id, StudyDate=date,
                     Modality=modality, StudyInstanceUID=study, SeriesInstanceUID=series,
                     InstanceNumber=str(n + 1), StudyDescription=f"Study of {patient_id}")
            for n in range(count)
        ]  # fmt: skip
    files["BULK"] = [
        _variant(ct_slice, folder / f"bulk-{n}.dcm", PatientName=f"BULK^{n:03d}",
                 PatientID=f"BULK{n:03d}", StudyDate=f"1990{n // 28 % 12 + 1:02d}{n % 28 + 1:02d}")
        for n in range(BULK)
    ]  # fmt: skip
    return files


def _paths(datasets: list[Dataset]) -> list[Path]:
    return [Path(ds.filename) for ds in datasets]


def _all_paths(stored: dict[str, list[Dataset]]) -> list[Path]:
    return [path for datasets in stored.values() for path in _paths(datasets)]


@pytest.fixture(scope="module")
def pacs(orthanc: Orthanc, stored: dict[str, list[Dataset]]) -> Orthanc:
    """The shared Orthanc (answers in Latin-1, its default) holding every test study."""
    clear(orthanc)
    upload(orthanc, _all_paths(stored))
    return orthanc


@pytest.fixture(scope="module")
def pacs_utf8(
    tmp_path_factory: pytest.TempPathFactory, pacstui_port: int, stored: dict[str, list[Dataset]]
) -> Iterator[Orthanc]:
    """An Orthanc that answers in UTF-8 (DefaultEncoding), for names Latin-1 cannot hold."""
    workdir = tmp_path_factory.mktemp("orthanc-utf8")
    with start_orthanc(
        workdir, move_port=pacstui_port, extra_config={"DefaultEncoding": "Utf8"}
    ) as server:
        upload(server, [p for key in ("PT-C", "PT-D", "PT-E") for p in _paths(stored[key])])
        yield server


def _study(stored: dict[str, list[Dataset]], patient_id: str) -> str:
    return str(stored[patient_id][0].StudyInstanceUID)


def _dcmtk_uids(server: Orthanc, *keys: str) -> set[str]:
    """StudyInstanceUIDs dcmtk's findscu finds with ``keys`` (study level)."""
    answers = find_scu(server, "QueryRetrieveLevel=STUDY", "StudyInstanceUID", *keys)
    return {str(ds.StudyInstanceUID) for ds in answers}


# -- matching ---------------------------------------------------------------------------------


def test_exact_name(pacs: Orthanc, stored: dict[str, list[Dataset]]) -> None:
    rows = list(find(node_for(pacs), "study", {"PatientName": "Smith^John"}))
    assert [row["StudyInstanceUID"] for row in rows] == [_study(stored, "PT-A")]
    row = rows[0]
    assert row["PatientName"] == "Smith^John"
    assert row["PatientID"] == "PT-A"
    assert row["StudyDate"] == "20190315"
    assert row["ModalitiesInStudy"] == "CT"
    assert row["StudyDescription"] == "Study of PT-A"
    assert row["NumberOfStudyRelatedInstances"] == "2"
    assert set(row) == set(find_module.DEFAULT_KEYS["study"])  # filters only: the defaults


def test_wildcard_name_matches_as_dcmtk_does(pacs: Orthanc) -> None:
    node = node_for(pacs)
    for pattern in ("Smith*", "*ith*", "Smi?h^*", "BULK^00*"):
        ours = {r["StudyInstanceUID"] for r in find(node, "study", {"PatientName": pattern})}
        assert ours == _dcmtk_uids(pacs, f"PatientName={pattern}"), pattern
        assert ours
    assert len(list(find(node, "study", {"PatientName": "Smith*"}))) == 2


def test_date_range(pacs: Orthanc, stored: dict[str, list[Dataset]]) -> None:
    rows = list(find(node_for(pacs), "study", {"StudyDate": "20190101-20201231"}))
    assert {r["StudyInstanceUID"] for r in rows} == {_study(stored, "PT-A"), _study(stored, "PT-B")}
    assert {r["StudyInstanceUID"] for r in rows} == _dcmtk_uids(pacs, "StudyDate=20190101-20201231")


def test_only_the_keys_asked_for(pacs: Orthanc) -> None:
    rows = list(find(node_for(pacs), "study", {"PatientID": "PT-B", "PatientName": ""}))
    assert rows == [{"PatientID": "PT-B", "PatientName": "Smithers^Waylon"}]


def test_non_ascii_query_and_latin1_answer(pacs: Orthanc) -> None:
    """Our query goes out in UTF-8 (ISO_IR 192); Orthanc answers in ISO_IR 100."""
    rows = list(find(node_for(pacs), "patient", {"PatientName": "Müller*"}, model="patient"))
    assert [r["PatientName"] for r in rows] == ["Müller^Jürgen"]
    raw = find_scu(pacs, "QueryRetrieveLevel=STUDY", "PatientID=PT-C", "SpecificCharacterSet")
    assert raw[0].SpecificCharacterSet == "ISO_IR 100"  # so the decoding was by that set


@pytest.mark.parametrize(
    ("pattern", "name"),
    [
        ("*山田*", "Yamada^Tarou=山田^太郎=やまだ^たろう"),
        ("Yamada*", "Yamada^Tarou=山田^太郎=やまだ^たろう"),
        ("Ωμέγα*", "Ωμέγα^Δέλτα"),
        ("Müller*", "Müller^Jürgen"),
    ],
)
def test_non_ascii_names_in_utf8(pacs_utf8: Orthanc, pattern: str, name: str) -> None:
    rows = list(find(node_for(pacs_utf8), "study", {"PatientName": pattern}))
    assert [r["PatientName"] for r in rows] == [name]


def test_series_and_image_levels(pacs: Orthanc, stored: dict[str, list[Dataset]]) -> None:
    node = node_for(pacs)
    files = stored["PT-A"]
    series = list(find(node, "series", {"StudyInstanceUID": _study(stored, "PT-A")}))
    assert [s["SeriesInstanceUID"] for s in series] == [str(files[0].SeriesInstanceUID)]
    assert series[0]["Modality"] == "CT"
    assert series[0]["NumberOfSeriesRelatedInstances"] == "2"
    keys = {"StudyInstanceUID": _study(stored, "PT-A"), "SeriesInstanceUID": "",
            "SOPInstanceUID": "", "InstanceNumber": "", "Rows": ""}  # fmt: skip
    images = list(find(node, "image", keys))
    assert {i["SOPInstanceUID"] for i in images} == {str(ds.SOPInstanceUID) for ds in files}
    assert {i["InstanceNumber"] for i in images} == {"1", "2"}
    assert {i["Rows"] for i in images} == {str(files[0].Rows)}  # US, a binary VR


def test_patient_root(pacs: Orthanc) -> None:
    rows = list(find(node_for(pacs), "patient", {"PatientID": "PT-*"}, model="patient"))
    assert {r["PatientID"] for r in rows} == {p[2] for p in PATIENTS}
    studies = list(find(node_for(pacs), "study", {"PatientID": "PT-A"}, model="patient"))
    assert len(studies) == 1


def test_implicit_vr_exchange(pacs: Orthanc, stored: dict[str, list[Dataset]]) -> None:
    """A peer that accepts Implicit VR Little Endian only: identifiers both ways in it."""
    node = node_for(pacs)
    query = Query("study", {"PatientID": "PT-A", "PatientName": "", "StudyDate": ""})
    assoc = Association.open(node, [query.sop_class], transfer_syntaxes=[IMPLICIT_VR_LE])
    try:
        context = assoc.context_for(query.sop_class, "FIND")
        assert context.implicit
        rows = list(find_module._exchange(assoc, context, query, None))
    finally:
        assoc.release()
    assert rows == [{"PatientID": "PT-A", "PatientName": "Smith^John", "StudyDate": "20190315"}]


# -- stopping early ---------------------------------------------------------------------------


@pytest.fixture
def dul_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="tui.net.dul")
    return caplog


def _released_cleanly(caplog: pytest.LogCaptureFixture) -> bool:
    text = caplog.text
    return "released the association" in text and "aborting" not in text


def _no_stray_cancel(server: Orthanc) -> bool:
    """Orthanc logs a C-CANCEL that comes after the query ended (and drops the association)."""
    return "cannot handle command" not in server.log.read_text(errors="replace")


def test_limit_cancels_and_releases(pacs: Orthanc, dul_log: pytest.LogCaptureFixture) -> None:
    node = node_for(pacs)
    rows = list(find(node, "study", {"PatientName": "BULK*"}, limit=5))
    assert len(rows) == 5
    assert _released_cleanly(dul_log)
    assert len(list(find(node, "study", {"PatientName": "BULK*"}))) == BULK  # still answers
    assert _no_stray_cancel(pacs)


def test_limit_equal_to_the_matches(pacs: Orthanc, dul_log: pytest.LogCaptureFixture) -> None:
    rows = list(find(node_for(pacs), "study", {"PatientName": "Smith*"}, limit=2))
    assert len(rows) == 2
    assert _released_cleanly(dul_log)
    assert _no_stray_cancel(pacs)  # the final answer was there: nothing to cancel


def test_cancel_event(pacs: Orthanc, dul_log: pytest.LogCaptureFixture) -> None:
    cancel = threading.Event()
    rows = []
    for row in find(node_for(pacs), "study", {"PatientName": "BULK*"}, cancel=cancel):
        rows.append(row)
        if len(rows) == 3:
            cancel.set()  # as Esc does in the app, from another thread or this one
    assert 3 <= len(rows) < BULK
    assert _released_cleanly(dul_log)


def test_closing_the_generator(pacs: Orthanc, dul_log: pytest.LogCaptureFixture) -> None:
    """What Ctrl-C in the CLI does: the consumer stops and the generator is closed."""
    node = node_for(pacs)
    with contextlib.closing(find(node, "study", {"PatientName": "BULK*"})) as rows:
        next(rows)
    assert _released_cleanly(dul_log)
    assert len(list(find(node, "study", {"PatientName": "BULK*"}))) == BULK


def test_split_by_dates(pacs: Orthanc, stored: dict[str, list[Dataset]]) -> None:
    node = node_for(pacs)
    keys = {"StudyDate": "19900101-19901231", "PatientName": ""}
    whole = list(find(node, "study", keys))
    split = list(find_split(node, "study", keys, days=45))
    assert len(whole) == BULK
    assert sorted(r["PatientName"] for r in split) == sorted(r["PatientName"] for r in whole)
    assert all(set(r) == {"StudyDate", "PatientName"} for r in split)  # the UID was not asked
    assert split[0]["StudyDate"] > split[-1]["StudyDate"]  # newest slice first
    with_uids = list(find_split(node, "study", {"StudyDate": "19900101-19900630"}, days=60))
    assert len({r["StudyInstanceUID"] for r in with_uids}) == len(with_uids) == BULK
    assert len(list(find_split(node, "study", keys, days=30, limit=7))) == 7


def test_bad_arguments() -> None:
    node = Node(name="x", aet="X", host="127.0.0.1", port=1)
    with pytest.raises(UserError, match="not a DICOM keyword"):
        find(node, "study", {"PatientNmae": "x"})
    with pytest.raises(UserError, match="level"):
        find(node, "studies")
    with pytest.raises(UserError, match="patient level"):
        find(node, "patient")
    with pytest.raises(UserError, match="range"):
        find_split(node, "study", {"StudyDate": "20200101"}, days=7)
    with pytest.raises(UserError, match="return key"):
        find(node, "image", {"Rows": "512"})


# -- encoding, checked with pydicom ------------------------------------------------------------


@pytest.mark.parametrize("implicit", [True, False])
def test_identifier_reads_back_with_pydicom(implicit: bool) -> None:
    keys = {"PatientName": "Müller*", "StudyDate": "20200101-20201231", "Rows": "",
            "ModalitiesInStudy": "CT\\MR", "StudyInstanceUID": ""}  # fmt: skip
    data = Query("study", keys).identifier(implicit)
    ds = read_dataset(BytesIO(data), is_implicit_VR=implicit, is_little_endian=True)
    ds.decode()
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert ds.QueryRetrieveLevel == "STUDY"
    assert str(ds.PatientName) == "Müller*"
    assert ds.StudyDate == "20200101-20201231"
    assert list(ds.ModalitiesInStudy) == ["CT", "MR"]
    assert ds.StudyInstanceUID == "" and ds.Rows is None
    ascii_only = Query("study", {"PatientName": "Smith*"}).identifier(implicit)
    assert b"ISO_IR" not in ascii_only


@pytest.mark.parametrize("implicit", [True, False])
def test_decoding_by_the_answers_character_set(implicit: bool) -> None:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "Müller^Jürgen"
    ds.StudyDescription = "Thorax  "
    ds.ModalitiesInStudy = ["CT", "PT"]
    ds.Rows = 512
    ds.PixelSpacing = ["0.5", "0.5"]
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, implicit
    write_dataset(out, ds)
    keys = dict.fromkeys(["PatientName", "StudyDescription", "ModalitiesInStudy", "Rows",
                          "PixelSpacing", "AccessionNumber"], "")  # fmt: skip
    node = Node(name="x", aet="X", host="127.0.0.1", port=1)
    assert Query("image", keys).decode(node, out.getvalue(), implicit) == {
        "PatientName": "Müller^Jürgen", "StudyDescription": "Thorax",
        "ModalitiesInStudy": "CT\\PT", "Rows": "512", "PixelSpacing": "0.5\\0.5",
        "AccessionNumber": "",
    }  # fmt: skip


# -- other servers, refusals and failures -----------------------------------------------------


def test_tls(
    tmp_path: Path,
    orthanc_tls: Orthanc,
    stored: dict[str, list[Dataset]],
    dul_log: pytest.LogCaptureFixture,
) -> None:
    upload(orthanc_tls, _paths(stored["PT-A"]))
    rows = list(find(node_for(orthanc_tls), "study", {"PatientID": "PT-A"}))
    assert [r["StudyInstanceUID"] for r in rows] == [_study(stored, "PT-A")]
    assert _released_cleanly(dul_log)
    plain = Node(name="test", aet=orthanc_tls.aet, host=orthanc_tls.host, port=orthanc_tls.port,
                 acse_timeout=5.0)  # fmt: skip
    with pytest.raises(NetError) as info:
        list(find(plain, "study"))
    assert "\n" not in str(info.value)
    no_certificate = node_for(orthanc_tls, tls_cert="", tls_key="")
    with pytest.raises(NetError):
        list(find(no_certificate, "study"))


def test_unknown_calling_ae_title(tmp_path: Path, pacstui_port: int) -> None:
    strict = dict.fromkeys(
        ["DicomAlwaysAllowEcho", "DicomAlwaysAllowFind", "DicomAlwaysAllowGet",
         "DicomAlwaysAllowMove", "DicomAlwaysAllowStore"], False
    )  # fmt: skip
    with start_orthanc(tmp_path, move_port=pacstui_port, extra_config=strict) as server:
        with pytest.raises(NetError, match="does not know our AE title STRANGER"):
            list(find(node_for(server, calling_aet="STRANGER"), "study"))
        assert list(find(node_for(server, calling_aet="PACSTUI"), "study")) == []


def test_failure_status_names_its_meaning(
    tmp_path: Path, pacstui_port: int, ct_slice: Path
) -> None:
    """dcmqrscp answers only hierarchical queries: a series query without its study fails."""
    with start_dcmqrscp(tmp_path, move_port=pacstui_port) as server:
        store_scu(server, [ct_slice])
        node = node_for(server)  # type: ignore[arg-type]
        assert [r["PatientName"] for r in find(node, "study", {"PatientName": "*"})] == [
            str(pydicom.dcmread(ct_slice).PatientName)
        ]
        with pytest.raises(NetError, match=r"0xC000 Failure: Unable to Process.*StudyInstanceUID"):
            list(find(node, "series", {"Modality": ""}))
        # The same failure from a process of its own: C-FIND never loads pynetdicom.
        script = (
            "import sys\n"
            "from tui.net.find import find\n"
            "from tui.net.nodes import Node\n"
            f"node = Node(name='q', aet={node.aet!r}, host={node.host!r}, port={node.port})\n"
            "print(len(list(find(node, 'study'))))\n"
            "try:\n    list(find(node, 'series', {'Modality': ''}))\n"
            "except Exception as exc:\n    print(exc)\n"
            "print(sorted(m for m in sys.modules if m.startswith('pynetdicom')))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60
        )
        assert done.stdout.splitlines()[0] == "1", done.stderr
        assert "0xC000 Failure: Unable to Process" in done.stdout
        assert done.stdout.splitlines()[-1] == "[]"


def test_connection_refused() -> None:
    node = Node(name="gone", aet="NOBODY", host="127.0.0.1", port=free_port(), connect_timeout=2)
    with pytest.raises(NetError, match="connection refused"):
        list(find(node, "study"))


class Peer:
    """A TCP server on loopback that plays one scripted part per connection.

    ``script(conn)`` runs in a thread for each accepted connection, which is closed after.
    """

    def __init__(self, script: Callable[[socket.socket], None]) -> None:
        self.script = script
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                self.script(conn)

    def node(self, **changes: object) -> Node:
        values: dict[str, object] = {"name": "odd", "aet": "ODD", "host": "127.0.0.1",
                                     "port": self.port, "acse_timeout": 3.0,
                                     "dimse_timeout": 3.0}  # fmt: skip
        return Node(**(values | changes))  # type: ignore[arg-type]

    def close(self) -> None:
        self.server.close()


def _answers(reply: bytes) -> Callable[[socket.socket], None]:
    """A peer that answers the association request with ``reply`` and hangs up."""

    def script(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(reply)

    return script


GARBAGE = {
    "http": b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
    "huge length": b"\x02\x00\xff\xff\xff\xff" + bytes(64),
    "short accept": b"\x02\x00\x00\x00\x00\x10" + bytes(16),
    "short reject": b"\x03\x00\x00\x00\x00\x02\x00\x01",
    "cut short": b"\x02\x00\x00\x00\x01\x00" + bytes(20),
    "bytes 0-255": bytes(range(256)),
    "nothing": b"",
    "abort": b"\x07\x00\x00\x00\x00\x04\x00\x00\x02\x00",
    "accept with bad items": b"\x02\x00\x00\x00\x00\x48" + bytes(68) + b"\x21\x00\xff\xff",
}


@pytest.mark.parametrize("reply", GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_speaking_server(reply: bytes) -> None:
    peer = Peer(_answers(reply))
    try:
        started = time.monotonic()
        with pytest.raises(NetError) as info:
            list(find(peer.node(), "study"))
        assert time.monotonic() - started < 2.5  # garbage is recognised, not waited for
    finally:
        peer.close()
    message = str(info.value)
    assert "\n" not in message and "odd (ODD@127.0.0.1" in message
    assert info.value.__cause__ is None or isinstance(info.value.__cause__, OSError)


class Relay:
    """A peer that negotiates through Orthanc (a real A-ASSOCIATE-AC), then stops relaying
    and plays ``after``: silence, or bytes of its own."""

    def __init__(self, server: Orthanc, after: bytes | None) -> None:
        self.server, self.after = server, after
        self.peer = Peer(self._script)

    def _script(self, conn: socket.socket) -> None:
        with socket.create_connection((self.server.host, self.server.port)) as upstream:
            upstream.sendall(conn.recv(65536))  # A-ASSOCIATE-RQ
            conn.sendall(upstream.recv(65536))  # A-ASSOCIATE-AC
            conn.recv(65536)  # the C-FIND-RQ, never answered by Orthanc
            if self.after is not None:
                conn.sendall(self.after)
            while conn.recv(65536):  # silence until the client goes
                pass


def _p_data(command: bytes, control: int = 0x03) -> bytes:
    pdv = (len(command) + 2).to_bytes(4, "big") + bytes([1, control]) + command
    return b"\x04\x00" + len(pdv).to_bytes(4, "big") + pdv


AFTER_ACCEPT = {
    "pdv too long": b"\x04\x00\x00\x00\x00\x0a\x00\x00\xff\xff\x01\x03junk",
    "junk command": _p_data(b"\xff" * 10),
    "dataset first": _p_data(b"\x08\x00\x20\x00\x02\x00\x00\x00AB", control=0x02),
    "wrong context": b"\x04\x00\x00\x00\x00\x08\x00\x00\x00\x04\x07\x03ab",
    "release request": b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00",
}


@pytest.mark.parametrize("after", AFTER_ACCEPT.values(), ids=AFTER_ACCEPT.keys())
def test_garbage_after_the_association(pacs: Orthanc, after: bytes) -> None:
    relay = Relay(pacs, after)
    try:
        with pytest.raises(NetError) as info:
            list(find(relay.peer.node(aet=pacs.aet), "study"))
    finally:
        relay.peer.close()
    assert "\n" not in str(info.value)


def test_silent_pacs_times_out(pacs: Orthanc) -> None:
    relay = Relay(pacs, None)
    try:
        started = time.monotonic()
        with pytest.raises(NetError, match=r"did not answer the query within 0\.5 s"):
            list(find(relay.peer.node(aet=pacs.aet, dimse_timeout=0.5), "study"))
        assert time.monotonic() - started < 3
    finally:
        relay.peer.close()


def test_cancel_while_waiting(pacs: Orthanc, dul_log: pytest.LogCaptureFixture) -> None:
    """Esc while a (silent) PACS matches: the wait ends at once, C-CANCEL goes out; the PACS
    never answers it, so after the drain's grace the association is aborted."""
    relay = Relay(pacs, None)
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    try:
        started = time.monotonic()
        assert list(find(relay.peer.node(aet=pacs.aet, dimse_timeout=1.0), "study",
                         cancel=cancel)) == []  # fmt: skip
        assert time.monotonic() - started < 2.5
    finally:
        relay.peer.close()
    assert "aborting" in dul_log.text
