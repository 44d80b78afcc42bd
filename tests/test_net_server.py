"""The embedded mini-PACS (tui/net/server.py), driven by dcmtk's findscu, getscu, movescu and
echoscu (an independent implementation) and by pynetdicom as an SCU.

One server for the module, over an archive that indexes real files from ../shared/dicom in
place; what comes back is compared with those files, pixel data byte for byte.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    MRImageStorage,
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    Verification,
)

from tests.conftest import need_shared
from tests.servers import HOST, StoreScp, TlsFiles, free_port, need_dcmtk, start_storescp
from tui.archive.importer import import_paths
from tui.archive.index import Archive
from tui.archive.query import search
from tui.net.server import MiniPacs

GE = "neurolabusc_dcm_qa_ge/MR_GE_SIGNA-Pioneer_3D_Ax_T1_MPRAGE"  # 130 MR slices, one series
SYNTAXES = "neurolabusc_dcm_qa_ts/MR_Siemens_Trio_one_image_9_transfer_syntaxes"  # 1 image, 9 TS
CHARSET = "pydicom_test_files/charset"  # names in Latin-1, Greek, Cyrillic, Japanese, ...
CODECS = "pydicom_test_files/grayscale_transfer_syntaxes"  # CompressedSamples^CT1, MR1, NM1

AET = "MINIPACS"
ALLOWED = {"ECHOSCU", "FINDSCU", "GETSCU", "MOVESCU", "PYTEST"}  # dcmtk's default titles
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
BIG_ENDIAN = "1.2.840.10008.1.2.2"


@dataclass
class Served:
    pacs: MiniPacs
    root: Path
    storescp: StoreScp
    instances: list[dict[str, Any]]  # the archive's instance rows
    studies: list[dict[str, Any]]

    def study(self, patient_name: str) -> dict[str, Any]:
        return next(s for s in self.studies if s["PatientName"] == patient_name)

    def paths(self, study_uid: str) -> dict[str, str]:
        """SOP Instance UID -> original file, for one study."""
        return {
            r["SOPInstanceUID"]: r["path"]
            for r in self.instances
            if r["StudyInstanceUID"] == study_uid
        }


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    shared = need_shared()
    work = tmp_path_factory.mktemp("minipacs")
    root = work / "archive"
    with Archive(root) as archive:
        import_paths(archive, [shared / GE, shared / SYNTAXES, shared / CHARSET, shared / CODECS])
        instances = search(archive, "instance")
        studies = search(archive, "study")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TCP_NODELAY", "1")  # without, storescp answers each C-STORE 40 ms late
        storescp = start_storescp(work / "storescp", port=free_port(), aet="STORESCP")
    destinations = {"STORESCP": (HOST, storescp.port), "NOBODYHOME": (HOST, free_port())}
    pacs = MiniPacs(root, aet=AET, port=0, destinations=destinations, allow=ALLOWED)
    pacs.start()
    try:
        yield Served(pacs, root, storescp, instances, studies)
    finally:
        pacs.stop()
        storescp.stop()


# -- helpers --------------------------------------------------------------------------------------


def dcmtk(tool: str, served: Served, *args: str, aet: str = "") -> subprocess.CompletedProcess[str]:
    """Run a dcmtk tool against the mini-PACS (``args`` go before host and port)."""
    command = [need_dcmtk(tool), "-aec", AET, *(["-aet", aet] if aet else []), *args]
    # TCP_NODELAY=1: dcmtk otherwise waits on Nagle's algorithm, ~40 ms per instance.
    env = {**os.environ, "TCP_NODELAY": "1"}
    return subprocess.run(
        [*command, HOST, str(served.pacs.port)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def k(*keys: str) -> list[str]:
    """dcmtk's ``-k`` options."""
    return [arg for key in keys for arg in ("-k", key)]


def study_keys(study: dict[str, Any]) -> list[str]:
    return k("QueryRetrieveLevel=STUDY", f"StudyInstanceUID={study['StudyInstanceUID']}")


def findscu(served: Served, *keys: str, model: str = "-S") -> list[Dataset]:
    out = served.root.parent / f"find{time.monotonic_ns()}"
    out.mkdir()
    done = dcmtk("findscu", served, model, "-X", "-od", str(out), *k(*keys))
    assert done.returncode == 0, done.stdout + done.stderr
    return [pydicom.dcmread(path) for path in sorted(out.glob("rsp*.dcm"))]


def scu_association(served: Served, contexts: list[Any], **kw: Any) -> Any:
    """An association from pynetdicom; ``contexts`` are SOP classes or (class, syntaxes)."""
    ae = AE(ae_title="PYTEST")
    for context in contexts:
        abstract, syntaxes = context if isinstance(context, tuple) else (context, None)
        if syntaxes:
            ae.add_requested_context(abstract, syntaxes)
        else:
            ae.add_requested_context(abstract)
    assoc = ae.associate(HOST, served.pacs.port, ae_title=AET, **kw)
    assert assoc.is_established
    return assoc


def pynetdicom_find(
    served: Served, query: Dataset, model: Any = StudyRootQueryRetrieveInformationModelFind
) -> tuple[list[Dataset], int]:
    """The pending identifiers and the final status."""
    assoc = scu_association(served, [model])
    found, final = [], -1
    try:
        for status, identifier in assoc.send_c_find(query, model):
            if status.Status in (0xFF00, 0xFF01):
                found.append(identifier)
            else:
                final = status.Status
    finally:
        assoc.release()
    return found, final


def pixel_bytes(path: str | Path) -> bytes:
    return bytes(pydicom.dcmread(path).PixelData)


def received_by_uid(folder: Path) -> dict[str, Path]:
    return {
        str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in folder.iterdir()
    }


# -- echo and association -------------------------------------------------------------------------


def test_echo(served: Served) -> None:
    done = dcmtk("echoscu", served)
    assert done.returncode == 0, done.stdout + done.stderr


def test_calling_aet_not_allowed_is_refused(served: Served) -> None:
    done = dcmtk("echoscu", served, aet="INTRUDER")
    assert done.returncode != 0
    assert "Calling AE Title Not Recognized" in done.stdout + done.stderr


# -- C-FIND ---------------------------------------------------------------------------------------


def test_findscu_wildcard_and_date_range(served: Served) -> None:
    keys = ("QueryRetrieveLevel=STUDY", "PatientName=CompressedSamples*", "StudyInstanceUID",
            "NumberOfStudyRelatedInstances", "ModalitiesInStudy", "StudyID")  # fmt: skip

    def names(answers: list[Dataset]) -> list[str]:
        return sorted(str(a.PatientName) for a in answers)

    assert names(findscu(served, *keys, "StudyDate=20040101-20041231")) == [
        "CompressedSamples^CT1", "CompressedSamples^MR1", "CompressedSamples^NM1",
    ]  # fmt: skip
    assert names(findscu(served, *keys, "StudyDate=20040201-")) == [
        "CompressedSamples^MR1", "CompressedSamples^NM1",
    ]  # fmt: skip
    answers = findscu(served, *keys, "StudyDate=-20040131")
    assert names(answers) == ["CompressedSamples^CT1"]
    assert findscu(served, *keys, "StudyDate=19990101-19991231") == []

    # The keys asked for, no more: StudyID, which the index does not hold, comes back empty.
    (ct,) = answers
    asked = {"QueryRetrieveLevel", "PatientName", "StudyInstanceUID", "StudyDate",
             "NumberOfStudyRelatedInstances", "ModalitiesInStudy", "StudyID"}  # fmt: skip
    assert {e.keyword for e in ct} == asked | {"SpecificCharacterSet"}
    assert ct.SpecificCharacterSet == "ISO_IR 192"
    assert ct.StudyID == ""
    assert ct.StudyInstanceUID == served.study("CompressedSamples^CT1")["StudyInstanceUID"]
    assert ct.ModalitiesInStudy == "CT"
    assert ct.NumberOfStudyRelatedInstances == 1


def test_find_unicode_names_both_ways(served: Served) -> None:
    """A query in Latin-1 or UTF-8 finds names the index holds as Unicode; answers are UTF-8."""
    query = Dataset()
    query.SpecificCharacterSet = "ISO_IR 100"
    query.QueryRetrieveLevel = "STUDY"
    query.PatientName = "Äneas*"
    query.StudyInstanceUID = ""
    (found,), final = pynetdicom_find(served, query)
    assert final == 0x0000
    assert found.SpecificCharacterSet == "ISO_IR 192"
    assert str(found.PatientName) == "Äneas^Rüdiger"

    query.SpecificCharacterSet = "ISO_IR 192"
    for pattern, names in [
        ("buc^jerome", ["Buc^Jérôme"]),  # case and accents ignored, as in the local search
        ("山田*", ["Yamada^Tarou=山田^太郎=やまだ^たろう", "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう"]),
        ("Люкceмбypг", ["Люкceмбypг"]),
    ]:
        query.PatientName = pattern
        found_names = [str(f.PatientName) for f in pynetdicom_find(served, query)[0]]
        assert sorted(found_names) == sorted(names), pattern


def test_find_at_every_level(served: Served) -> None:
    ge = served.study("dicom")
    ge_rows = [r for r in served.instances if r["StudyInstanceUID"] == ge["StudyInstanceUID"]]

    patients = Dataset()
    patients.QueryRetrieveLevel = "PATIENT"
    patients.PatientID = "SCS*"
    patients.NumberOfPatientRelatedStudies = None
    found, final = pynetdicom_find(served, patients, PatientRootQueryRetrieveInformationModelFind)
    assert final == 0x0000
    assert sorted(f.PatientID for f in found) == [
        "SCSARAB",
        "SCSFREN",
        "SCSGERM",
        "SCSGREEK",
        "SCSHBRW",
        "SCSRUSS",
    ]
    assert {f.NumberOfPatientRelatedStudies for f in found} == {1}

    series = Dataset()
    series.QueryRetrieveLevel = "SERIES"
    series.StudyInstanceUID = ge["StudyInstanceUID"]
    series.SeriesInstanceUID = ""
    series.Modality = ""
    series.NumberOfSeriesRelatedInstances = None
    (one,), _ = pynetdicom_find(served, series)
    assert one.SeriesInstanceUID == ge_rows[0]["SeriesInstanceUID"]
    assert one.Modality == "MR"
    assert one.NumberOfSeriesRelatedInstances == 130

    images = Dataset()
    images.QueryRetrieveLevel = "IMAGE"
    images.SeriesInstanceUID = one.SeriesInstanceUID
    images.SOPInstanceUID = ""
    images.InstanceNumber = None
    found, _ = pynetdicom_find(served, images)
    assert sorted(f.SOPInstanceUID for f in found) == sorted(r["SOPInstanceUID"] for r in ge_rows)

    # UID list matching: exactly the studies listed.
    wanted = [served.study("Buc^Jérôme")["StudyInstanceUID"], ge["StudyInstanceUID"]]
    studies = Dataset()
    studies.QueryRetrieveLevel = "STUDY"
    studies.StudyInstanceUID = wanted
    found, _ = pynetdicom_find(served, studies)
    assert sorted(f.StudyInstanceUID for f in found) == sorted(wanted)

    # The Study Root model has no PATIENT level.
    _, final = pynetdicom_find(served, patients, StudyRootQueryRetrieveInformationModelFind)
    assert final == 0xA900


# -- C-GET ----------------------------------------------------------------------------------------


def test_getscu_series_byte_for_byte(served: Served, tmp_path: Path) -> None:
    ge = served.study("dicom")
    originals = served.paths(ge["StudyInstanceUID"])
    series_uid = next(
        r["SeriesInstanceUID"] for r in served.instances if r["SOPInstanceUID"] in originals
    )
    started = time.perf_counter()
    keys = k("QueryRetrieveLevel=SERIES", f"StudyInstanceUID={ge['StudyInstanceUID']}",
             f"SeriesInstanceUID={series_uid}")  # fmt: skip
    done = dcmtk("getscu", served, "-S", "-od", str(tmp_path), *keys)
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stdout + done.stderr
    received = received_by_uid(tmp_path)
    assert sorted(received) == sorted(originals)
    for uid, path in received.items():
        assert pixel_bytes(path) == pixel_bytes(originals[uid]), uid
    print(f"getscu of {len(received)} instances: {seconds:.2f} s")


def test_getscu_gets_compressed_files_decompressed(served: Served, tmp_path: Path) -> None:
    """getscu takes uncompressed syntaxes only: the compressed files come decompressed, with
    the same pixels; the Big Endian one cannot be sent as Little Endian and is counted failed."""
    study = served.study("stc_test")
    originals = served.paths(study["StudyInstanceUID"])
    done = dcmtk("getscu", served, "-S", "-od", str(tmp_path), *study_keys(study))
    received = received_by_uid(tmp_path)
    syntax = {r["SOPInstanceUID"]: r["TransferSyntaxUID"] for r in served.instances}
    assert sorted(received) == sorted(uid for uid in originals if syntax[uid] != BIG_ENDIAN)
    reference = pydicom.dcmread(originals[next(iter(received))]).pixel_array
    for path in received.values():
        ds = pydicom.dcmread(path)
        assert not ds.file_meta.TransferSyntaxUID.is_compressed
        assert np.array_equal(ds.pixel_array, reference)
    # (getscu then reports a failed release: it leaves the final response's Failed SOP
    # Instance UID List unread and takes it for a stray P-DATA.)
    assert "SubOperationsCompleteOneOrMoreFailures" in done.stdout + done.stderr


def test_get_counts_what_the_peer_accepts_no_syntax_for(served: Served) -> None:
    """An SCU taking MR images in JPEG 2000 lossless only: the J2K file goes as stored, the
    other eight fail, each listed in Failed SOP Instance UID List."""
    study = served.study("stc_test")
    originals = served.paths(study["StudyInstanceUID"])
    syntax = {r["SOPInstanceUID"]: r["TransferSyntaxUID"] for r in served.instances}
    received: dict[str, bytes] = {}

    def on_store(event: Any) -> int:
        ds = event.dataset
        received[str(ds.SOPInstanceUID)] = bytes(ds.PixelData)
        return 0x0000

    assoc = scu_association(
        served,
        [StudyRootQueryRetrieveInformationModelGet, (MRImageStorage, [J2K_LOSSLESS])],
        ext_neg=[build_role(MRImageStorage, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study["StudyInstanceUID"]
    try:
        responses = list(assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet))
    finally:
        assoc.release()
    final, identifier = responses[-1]
    assert final.Status == 0xB000  # warning: some sub-operations failed
    assert final.NumberOfCompletedSuboperations == 1
    assert final.NumberOfFailedSuboperations == 8
    (j2k,) = [uid for uid in originals if syntax[uid] == J2K_LOSSLESS]
    assert list(received) == [j2k]
    assert received[j2k] == pixel_bytes(originals[j2k])
    assert sorted(identifier.FailedSOPInstanceUIDList) == sorted(set(originals) - {j2k})


@pytest.mark.parametrize("uid", [None, "*", "1.2.*"])
def test_retrieve_without_its_unique_key_is_refused(served: Served, uid: str | None) -> None:
    """A STUDY retrieve without a StudyInstanceUID, or with a wildcard for it, would send
    the whole archive."""
    assoc = scu_association(served, [StudyRootQueryRetrieveInformationModelGet])
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.PatientName = "*"
    if uid is not None:
        query.StudyInstanceUID = uid
    try:
        responses = list(assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet))
    finally:
        assoc.release()
    final = responses[-1][0].Status
    assert 0xC000 <= final <= 0xCFFF  # failure: unable to process
    assert not any(status.Status in (0xFF00, 0xFF01) for status, _ in responses[:-1])


# -- C-MOVE ---------------------------------------------------------------------------------------


def test_movescu_to_storescp(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    """The GE series (uncompressed) arrives byte for byte; the nine syntaxes arrive too: Big
    Endian on a context of its own, the compressed ones decompressed (storescp takes none)."""
    caplog.set_level(logging.DEBUG, logger="tui")
    caplog.set_level(logging.INFO, logger="pynetdicom")
    for name in ("dicom", "stc_test"):
        study = served.study(name)
        done = dcmtk("movescu", served, "-S", "-aem", "STORESCP", *study_keys(study))
        # the mini-PACS's own account of a failed sub-operation, should one fail
        assert done.returncode == 0, done.stdout + done.stderr + caplog.text[-6000:]
    received = received_by_uid(served.storescp.received)
    ge = served.paths(served.study("dicom")["StudyInstanceUID"])
    syntaxes = served.paths(served.study("stc_test")["StudyInstanceUID"])
    assert set(ge) | set(syntaxes) <= set(received)
    for uid, original in ge.items():
        assert pixel_bytes(received[uid]) == pixel_bytes(original), uid
    reference = pydicom.dcmread(next(iter(syntaxes.values()))).pixel_array
    for uid in syntaxes:
        assert np.array_equal(pydicom.dcmread(received[uid]).pixel_array, reference), uid


@pytest.mark.parametrize("destination", ["UNKNOWN", "NOBODYHOME"])
def test_movescu_to_an_unknown_or_absent_destination_fails(
    served: Served, destination: str
) -> None:
    study = served.study("CompressedSamples^CT1")
    done = dcmtk("movescu", served, "-v", "-S", "-aem", destination, *study_keys(study))
    assert done.returncode != 0
    assert "Refused: MoveDestinationUnknown" in done.stdout + done.stderr


# -- logs, lifetime, TLS --------------------------------------------------------------------------


def test_no_patient_data_in_the_logs(
    served: Served, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.INFO)
    study = served.study("Buc^Jérôme")
    findscu(served, "QueryRetrieveLevel=STUDY", "PatientName=Buc*", "PatientID")
    dcmtk("getscu", served, "-S", "-od", str(tmp_path), *study_keys(study))
    assert "C-FIND STUDY: 1 matches" in caplog.text
    assert "C-GET: 1 instances" in caplog.text
    for secret in ("Buc", "Jérôme", "SCSFREN", study["StudyInstanceUID"]):
        assert secret not in caplog.text


def test_serve_forever_until_stopped(served: Served) -> None:
    pacs = MiniPacs(served.root, aet=AET, port=0)
    thread = threading.Thread(target=pacs.serve_forever, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not pacs.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pacs.port != 0
    ae = AE(ae_title="ANYONE")
    ae.add_requested_context(Verification)
    assoc = ae.associate(HOST, pacs.port, ae_title=AET)
    assert assoc.is_established  # no allow-list: any calling AE title
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()
    pacs.stop()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_echo_over_tls(served: Served, tls_files: TlsFiles) -> None:
    from tui.net.tls import server_context

    context = server_context(
        str(tls_files.server_cert), str(tls_files.server_key), str(tls_files.ca)
    )
    with MiniPacs(served.root, aet=AET, port=0, ssl_context=context) as pacs:
        client = [str(tls_files.client_key), str(tls_files.client_cert)]
        command = [need_dcmtk("echoscu"), "-aec", AET, "+tls", *client, "+cf", str(tls_files.ca),
                   HOST, str(pacs.port)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        plain = subprocess.run([need_dcmtk("echoscu"), "-aec", AET, HOST, str(pacs.port)],
                               capture_output=True, text=True, timeout=60)  # fmt: skip
        assert plain.returncode != 0
