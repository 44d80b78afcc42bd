"""The threaded gzip writer makes one standard gzip member any reader takes."""

from __future__ import annotations

import gzip
import io
import os
import zlib

import pytest

from tui.render.gzip_writer import BLOCK, GzipWriter


@pytest.mark.parametrize("size", [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 12345])
def test_one_member_that_inflates_to_what_was_written(size: int) -> None:
    data = os.urandom(size // 2) + bytes(size - size // 2)  # noise and a run of zeros
    out = io.BytesIO()
    writer = GzipWriter(out, threads=2)
    for start in range(0, size, 700_001):  # writes that straddle the blocks
        writer.write(data[start : start + 700_001])
    writer.close()
    stream = out.getvalue()
    assert gzip.decompress(stream) == data
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # one member, nothing after it
    assert inflater.decompress(stream) == data and inflater.eof and not inflater.unused_data


def test_it_compresses_as_level_6_does_give_or_take_a_block_header() -> None:
    data = bytes(range(256)) * (2 * BLOCK // 256) + os.urandom(1000)
    out = io.BytesIO()
    writer = GzipWriter(out, level=6)
    writer.write(data)
    writer.close()
    assert len(out.getvalue()) <= len(gzip.compress(data, 6)) * 1.01 + 1024


def test_discard_writes_nothing_more() -> None:
    out = io.BytesIO()
    writer = GzipWriter(out)
    writer.write(os.urandom(2 * BLOCK + 5))
    writer.discard()
    written = len(out.getvalue())
    writer.close()  # after discard: nothing
    assert len(out.getvalue()) == written
