"""tui.archive.encode writes what pydicom's save_as writes, faster, for every real file."""

from __future__ import annotations

import warnings
from io import BytesIO

import pytest
from pydicom import dcmread

from tests.conftest import need_shared
from tui.archive.deid.options import Options
from tui.archive.deid.profile import Deidentifier
from tui.archive.encode import encode


def _elements(data: bytes) -> list[tuple[object, ...]]:
    """Every element of a file, nested ones too, as (tag, VR, value) with values decoded."""
    ds = dcmread(BytesIO(data))
    found: list[tuple[object, ...]] = [("meta", e.tag, e.VR, e.value) for e in ds.file_meta]
    for elem in ds.iterall():
        value = elem.value if elem.VR != "SQ" else len(elem.value)
        if isinstance(value, bytes):
            value = value.rstrip(b"\0 ")  # save_as pads an odd-length value we copy padded
        found.append((elem.tag, elem.VR, value))
    return found


@pytest.mark.parametrize("deidentified", [False, True])
def test_encode_matches_save_as_on_the_shared_files(deidentified: bool) -> None:
    shared = need_shared()
    deid = Deidentifier(Options(), b"k" * 32)
    compared = 0
    for path in sorted(shared.rglob("*.dcm")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = dcmread(path)
                if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
                    continue
                if deidentified:
                    deid.apply(ds)
                expected = BytesIO()
                ds.save_as(expected, enforce_file_format=True)
            except Exception:  # files pydicom itself cannot read or write back
                continue
            ours = encode(ds)
            assert _elements(ours) == _elements(expected.getvalue()), path
        compared += 1
    assert compared > 300
