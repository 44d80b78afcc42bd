"""What the archive holds, by UID (tui/archive/holdings.py), and identifiers as SQL
(tui/archive/identifier.py): the archive's own queries, tested where they live."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from tests.synthetic import AXIAL, write_series
from tui.archive.holdings import files_of, held_series, held_studies, study_instances
from tui.archive.identifier import IdentifierError, IdentifierMismatch, Query
from tui.archive.importer import import_paths
from tui.archive.index import Archive
from tui.archive.query import search
from tui.errors import UserError


@pytest.fixture
def two_series(archive: Archive, tmp_path: Path) -> Archive:
    write_series(tmp_path / "a", AXIAL, count=5, size=16, series_uid="1.2.826.0.1.3680043.10.1")
    write_series(tmp_path / "b", AXIAL, count=3, size=16, series_uid="1.2.826.0.1.3680043.10.2")
    import_paths(archive, [tmp_path / "a", tmp_path / "b"])
    return archive


def test_held_counts_and_instances(two_series: Archive) -> None:
    studies = search(two_series, "study")
    uid = studies[0]["StudyInstanceUID"]
    patient = studies[0]["PatientID"]
    assert held_studies(two_series, [uid, "1.2.3.4"]) == {uid: (8, patient)}
    many = [f"1.2.3.{n}" for n in range(1200)] + [uid]  # more than one statement's worth
    assert held_studies(two_series, many) == {uid: (8, patient)}
    assert held_series(two_series, uid) == {
        "1.2.826.0.1.3680043.10.1": 5,
        "1.2.826.0.1.3680043.10.2": 3,
    }
    assert held_series(two_series, "1.2.3.4") == {}
    instances = study_instances(two_series, uid)
    assert len(instances) == 8 and study_instances(two_series, "1.2.3.4") == set()
    files = files_of(two_series, ["1.2.826.0.1.3680043.10.2"])
    assert len(files) == 3 and all(Path(path).is_file() for path, _, _ in files)
    assert len(files_of(two_series, [uid])) == 8
    with pytest.raises(UserError, match="not a UID"):
        files_of(two_series, ["1.2.*"])
    with pytest.raises(UserError, match="no study, series or instance"):
        files_of(two_series, ["1.2.3.4"])


def _identifier(level: str, **keys: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def test_identifiers_match_over_the_index(two_series: Archive) -> None:
    query = Query.from_identifier(
        _identifier("SERIES", StudyInstanceUID="", SeriesInstanceUID="", Modality="CT"), "study"
    )
    assert len(query.find(two_series)) == 2
    one = Query.from_identifier(
        _identifier("SERIES", SeriesInstanceUID="1.2.826.0.1.3680043.10.2"), "study", True
    )
    sent = one.instances(two_series)
    study = search(two_series, "study")[0]["StudyInstanceUID"]
    assert len(sent) == 3 and {i.sop_uid for i in sent} < study_instances(two_series, study)
    with pytest.raises(IdentifierMismatch, match="retrieve needs SeriesInstanceUID"):
        Query.from_identifier(_identifier("SERIES", Modality="CT"), "study", retrieve=True)
    with pytest.raises(IdentifierMismatch, match="Patient Root"):
        Query.from_identifier(_identifier("PATIENT"), "study")
    with pytest.raises(IdentifierError, match="StudyDate: not a date") as refused:
        Query.from_identifier(_identifier("STUDY", StudyDate="2024"), "study")
    assert not isinstance(refused.value, IdentifierMismatch)  # unable to process, not 0xA900


def test_acr_nema_dates_are_indexed_as_dicom_dates(archive: Archive, shared: Path) -> None:
    """YYYY.MM.DD (old modalities) is indexed as YYYYMMDD: it sorts, fits the date column
    and matches a date range like any other."""
    from tui.archive.query import Filters

    path = shared / "pydicom_test_files" / "color_and_palette" / "ExplVR_BigEnd.dcm"
    assert str(pydicom.dcmread(path, stop_before_pixels=True).StudyDate) == "1997.04.24"
    import_paths(archive, [path])
    assert [s["StudyDate"] for s in search(archive, "study")] == ["19970424"]
    assert len(search(archive, "study", Filters(date="19970101-19971231"))) == 1
