"""The project's PS3.15 table is what tools/make_deid_table.py makes from the standard's data."""

from __future__ import annotations

import importlib.util
import json
import sys

from tests.conftest import ROOT, need_shared
from tui.archive.deid import table


def _tool():
    spec = importlib.util.spec_from_file_location(
        "make_deid_table", ROOT / "tools" / "make_deid_table.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_deid_table"] = module
    spec.loader.exec_module(module)
    return module


def _source():
    source = need_shared().parent / "dicom-standard" / "confidentiality_profile_attributes.json"
    assert source.is_file(), f"{source} is missing beside ../shared/dicom"
    return source


def test_table_is_generated_from_the_standard():
    tool = _tool()
    expected = tool.generate(_source())
    actual = (ROOT / "tui" / "archive" / "deid" / "table.py").read_text(encoding="utf-8")
    assert actual == expected, "table.py is stale: run python tools/make_deid_table.py"
    assert tool.main(["--check"]) == 0


def test_every_row_is_in_the_table():
    rows = json.loads(_source().read_bytes())
    assert len(rows) == len(table.ATTRIBUTES) + len(table.RANGES) + 1  # + the private row
    by_tag = {
        int(row["id"], 16): row for row in rows if row["id"].isalnum() and "x" not in row["id"]
    }
    for tag, (basic, options) in table.ATTRIBUTES.items():
        row = by_tag[tag]
        assert basic == row["basicProfile"]
        for column, code in zip(table.OPTIONS, options, strict=True):
            assert code == row.get(column, ".")
    # The range rows: curves (every element of 50xx), overlay data and comments.
    assert {(mask, value) for mask, value, _, _ in table.RANGES} == {
        (0xFF010000, 0x50000000),
        (0xFF01FFFF, 0x60003000),
        (0xFF01FFFF, 0x60004000),
    }
    assert table.PRIVATE[0] == "X" and table.PRIVATE[1][0] == "C"
