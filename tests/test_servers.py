"""The real servers of tests/servers.py work, checked with dcmtk only (never with our own code)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pydicom
import pytest

from tests.conftest import need_shared
from tests.servers import (
    PACSTUI,
    PACSTUI_TLS,
    Dcmqrscp,
    Orthanc,
    ServerDied,
    TlsFiles,
    accepts,
    clear,
    echo_scu,
    find_scu,
    need_dcmtk,
    rest,
    start_dcmqrscp,
    start_orthanc,
    start_storescp,
    store_scu,
    upload,
)

# Three 16x16 CT slices, ~4 kB each, one series of a two-series study.
CT_SERIES = "pydicom_test_files/dicomdir/98892001/CT5N"


@pytest.fixture(scope="module")
def ct_files() -> list[Path]:
    return sorted((need_shared() / CT_SERIES).iterdir())[:3]


@pytest.fixture(scope="module")
def study_uid(ct_files: list[Path]) -> str:
    return str(pydicom.dcmread(ct_files[0], stop_before_pixels=True).StudyInstanceUID)


def _received(folder: Path) -> set[str]:
    return {str(pydicom.dcmread(path).SOPInstanceUID) for path in folder.iterdir()}


def _uids(files: list[Path]) -> set[str]:
    return {str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID) for path in files}


def _move_get_keys(server: Orthanc | Dcmqrscp, study_uid: str) -> list[str]:
    return [
        *("-S", "-aec", server.aet, "-k", "QueryRetrieveLevel=STUDY"),
        *("-k", f"StudyInstanceUID={study_uid}", server.host, str(server.port)),
    ]


def _move(server: Orthanc | Dcmqrscp, study_uid: str, destination: str = PACSTUI) -> None:
    command = [need_dcmtk("movescu"), "-aet", PACSTUI, "-aem", destination]
    keys = _move_get_keys(server, study_uid)
    subprocess.run([*command, *keys], check=True, capture_output=True, timeout=60)


def test_orthanc_finds_uploaded_study(orthanc: Orthanc, ct_files: list[Path], study_uid: str):
    clear(orthanc)
    assert len(upload(orthanc, ct_files)) == 3
    answers = find_scu(
        orthanc,
        "QueryRetrieveLevel=STUDY",
        "StudyInstanceUID",
        "NumberOfStudyRelatedInstances",
    )
    assert [(a.StudyInstanceUID, int(a.NumberOfStudyRelatedInstances)) for a in answers] == [
        (study_uid, 3)
    ]


def test_orthanc_store_scu_and_clear(orthanc: Orthanc, ct_files: list[Path]):
    clear(orthanc)
    assert rest(orthanc, "/instances") == []
    store_scu(orthanc, ct_files[:1])
    assert len(rest(orthanc, "/instances")) == 1


def test_orthanc_moves_and_gets_to_pacstui(
    orthanc: Orthanc, ct_files: list[Path], study_uid: str, pacstui_port: int, tmp_path: Path
):
    """C-MOVE needs PACSTUI in DicomModalities; C-GET needs no entry (DicomAlwaysAllowGet)."""
    clear(orthanc)
    upload(orthanc, ct_files)
    with start_storescp(tmp_path / "scp", port=pacstui_port) as scp:
        _move(orthanc, study_uid)
        assert _received(scp.received) == _uids(ct_files)

    got = tmp_path / "got"
    got.mkdir()
    get = [need_dcmtk("getscu"), "-aet", "SOMEONE", "-od", str(got)]
    keys = _move_get_keys(orthanc, study_uid)
    subprocess.run([*get, *keys], check=True, capture_output=True, timeout=60)
    assert _received(got) == _uids(ct_files)


def test_orthanc_refuses_moves_to_unknown_destinations(orthanc: Orthanc, study_uid: str):
    """Orthanc only moves to AE titles in DicomModalities."""
    with pytest.raises(subprocess.CalledProcessError):
        _move(orthanc, study_uid, destination="NOBODY")


def test_orthanc_tls_echo_and_find(orthanc_tls: Orthanc, ct_files: list[Path], study_uid: str):
    assert echo_scu(orthanc_tls).returncode == 0, orthanc_tls.log_tail()
    assert echo_scu(orthanc_tls, tls=False).returncode != 0
    upload(orthanc_tls, ct_files[:1])
    answers = find_scu(orthanc_tls, "QueryRetrieveLevel=STUDY", "StudyInstanceUID")
    assert [a.StudyInstanceUID for a in answers] == [study_uid]


def test_orthanc_tls_sends_to_pacstui_tls(
    orthanc_tls: Orthanc,
    tls_files: TlsFiles,
    ct_files: list[Path],
    pacstui_port: int,
    tmp_path: Path,
):
    """Orthanc's own associations to PACSTUI_TLS use TLS and accept our client certificate as
    the certificate of our SCP."""
    ids = upload(orthanc_tls, ct_files[:1])
    with start_storescp(tmp_path, port=pacstui_port, aet=PACSTUI_TLS, tls=tls_files) as scp:
        rest(orthanc_tls, "/modalities/pacstui_tls/store", "POST", {"Resources": ids})
        assert _received(scp.received) == _uids(ct_files[:1])


def test_dcmqrscp_stores_finds_and_moves(
    dcmqrscp: Dcmqrscp, ct_files: list[Path], study_uid: str, pacstui_port: int, tmp_path: Path
):
    store_scu(dcmqrscp, ct_files[:2])
    answers = find_scu(dcmqrscp, "QueryRetrieveLevel=STUDY", "StudyInstanceUID")
    assert [a.StudyInstanceUID for a in answers] == [study_uid]
    with start_storescp(tmp_path, port=pacstui_port) as scp:
        _move(dcmqrscp, study_uid)
        assert _received(scp.received) == _uids(ct_files[:2])


def test_stop_frees_the_port(tmp_path: Path, pacstui_port: int):
    server = start_dcmqrscp(tmp_path, move_port=pacstui_port)
    assert accepts(server.port)
    server.stop()
    server.stop()
    assert not accepts(server.port)


def test_failed_start_shows_the_log(tmp_path: Path, pacstui_port: int):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(ServerDied, match="exited with") as failure:
        start_orthanc(
            tmp_path / "orthanc",
            move_port=pacstui_port,
            extra_config={"StorageDirectory": str(blocked / "x")},
        )
    assert "Not a directory" in str(failure.value)
