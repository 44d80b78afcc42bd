"""``pacs-tui tags A --diff B`` on two series: what differs between them, what varies within
each, and how many instances each has; on real files, through the real command."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from tests.conftest import cli_json, run_cli
from tests.synthetic import AXIAL, write_series
from tests.test_cli import _one_line_error
from tui.archive.tags import Spread, diff_series, read_header

FIRST, SECOND = "1.2.826.0.1.3680043.8.498.71", "1.2.826.0.1.3680043.8.498.72"


def _series(folder: Path, uid: str, count: int, change: Callable[[Dataset, int], None]) -> None:
    """A small synthetic series; ``change(ds, n)`` edits the n-th instance (0-based, in
    instance number order)."""
    # UIDs of one length: random ones vary in length, and so would the meta group length
    write_series(folder, AXIAL, size=8, count=count, series_uid=uid, sop_uid_root=f"{uid}.9")
    files = sorted(folder.glob("*.dcm"), key=lambda f: dcmread(f).InstanceNumber)
    for number, path in enumerate(files):
        ds = dcmread(path)
        change(ds, number)
        ds.save_as(path)


def _first(ds: Dataset, number: int) -> None:
    ds.private_block(0x0009, "ACME 1.0", create=True).add_new(0x01, "LO", "kept")


def _second(ds: Dataset, number: int) -> None:
    """The same protocol acquired again: thicker slices, a time per slice, a contrast agent
    recorded in the first two instances only, and no private tag."""
    ds.SliceThickness = 3.0
    ds.AcquisitionTime = f"1200{number:02d}"
    if number < 2:
        ds.ContrastBolusAgent = "IODINE"


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    _series(tmp_path / "a", FIRST, 4, _first)
    _series(tmp_path / "b", SECOND, 5, _second)
    folder = tmp_path / "archive"
    run_cli("import", str(tmp_path / "a"), str(tmp_path / "b"), archive=folder)
    return folder


def test_series_diff_as_json(archive: Path) -> None:
    found = cli_json("tags", FIRST, "--diff", SECOND, archive=archive)
    assert found["instances"] == [4, 5]
    elements = found["elements"]
    assert elements["SliceThickness"] == {
        "tag": "(0018,0050)",
        "name": "Slice Thickness",
        "first": {"constant": True, "value": "2.0"},
        "second": {"constant": True, "value": "3.0"},
    }
    assert elements["SeriesInstanceUID"]["second"] == {"constant": True, "value": SECOND}
    assert elements["00091001"]["name"] == "[ACME 1.0] private"  # no keyword: the tag
    assert elements["00091001"]["second"] == {"constant": True, "value": None}  # absent
    assert elements["InstanceNumber"]["first"] == {
        "constant": False,
        "distinct": 4,
        "from": "1",
        "to": "4",
    }
    assert elements["AcquisitionTime"]["first"] == {"constant": True, "value": None}
    assert elements["AcquisitionTime"]["second"] == {
        "constant": False,
        "distinct": 5,
        "from": "120000",
        "to": "120004",
    }
    # Present in two of five instances: its value and "absent" make two.
    assert elements["ContrastBolusAgent"]["second"] == {
        "constant": False,
        "distinct": 2,
        "from": "IODINE",
        "to": None,
    }
    assert "ImagePositionPatient" in elements and "SOPInstanceUID" in elements
    for same in ("Rows", "PatientName", "StudyInstanceUID", "PixelSpacing", "SeriesNumber"):
        assert same not in elements


def test_series_diff_as_text(archive: Path) -> None:
    text = run_cli("tags", FIRST, "--diff", SECOND, archive=archive).stdout
    assert text.startswith("instances: 4 | 5\n")
    between, within = text.split("\nvary within a series: 6\n")
    assert "\ndiffer between the series: 4\n" in between
    tags = [line.split()[0] for line in between.splitlines() if line.startswith("(")]
    assert tags == ["(0009,0010)", "(0009,1001)", "(0018,0050)", "(0020,000E)"]
    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith("(")}
    assert lines["(0018,0050)"].split()[-2:] == ["2.0", "3.0"]
    assert lines["(0009,1001)"].split()[-2:] == ["kept", "<absent>"]
    assert "(0020,0013)" in within and "(0002,0003)" in within  # file meta too
    assert "4 values: 1 … 4" in lines["(0020,0013)"] and "5 values: 1 … 5" in lines["(0020,0013)"]
    assert "<absent>" in lines["(0008,0032)"] and "5 values: 120000 … 120004" in text


def test_an_instance_against_a_series_is_a_series_of_one(archive: Path, tmp_path: Path) -> None:
    one = sorted((tmp_path / "a").glob("*.dcm"))[0]
    found = cli_json("tags", str(one), "--diff", SECOND, archive=archive)
    assert found["instances"] == [1, 5]
    assert found["elements"]["InstanceNumber"]["first"]["constant"] is True


def test_unknown_series_is_one_line(archive: Path) -> None:
    result = run_cli("tags", FIRST, "--diff", "1.2.3.999", archive=archive, check=False)
    _one_line_error(result, "1.2.3.999: no such file, nor an indexed SOPInstanceUID")


def test_diff_series_follows_the_order_given(tmp_path: Path) -> None:
    _series(tmp_path / "a", FIRST, 3, _first)
    paths = sorted((tmp_path / "a").glob("*.dcm"))
    found = diff_series(map(read_header, paths), iter([]))
    assert found.counts == (3, 0)
    rows = {row.keyword: row for row in found.rows}
    assert rows["Modality"].first == Spread(1, "CT", "CT") and not rows["Modality"].varies
    assert rows["Modality"].second == Spread(1, None, None)
    assert rows["InstanceNumber"].varies and str(rows["InstanceNumber"].first) == "3 values: 3 … 1"
