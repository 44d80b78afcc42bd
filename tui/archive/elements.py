"""A minimal DICOM element walker: find a few elements without building a Dataset.

Import reads tens of thousands of headers, and pydicom spends most of its time
turning every element into a ``DataElement``. This walker only reads element
headers, skips the values it is not asked for and stops at the pixel data. It
handles the common encodings (a Part 10 file in explicit or implicit little
endian or explicit big endian, with sequences of defined or undefined length)
and raises :class:`Unsupported` for anything else, so the caller can fall back
to pydicom. ``tests/test_header.py`` checks that both paths agree on every file
in the shared test data.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import BinaryIO

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"
PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
# VRs with a 4-byte length in explicit VR (PS3.5 7.1.2, Table 7.1-1)
LONG_VRS = frozenset({b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SV", b"UV", b"UN", b"SQ", b"UC",
                      b"UR", b"UT"})  # fmt: skip
# PS3.5 6.2: a wanted value under any other VR is left to pydicom, which decides what it is.
VRS = LONG_VRS | {
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT",
    b"PN", b"SH", b"SL", b"SS", b"ST", b"SV", b"TM", b"UI", b"UL", b"US", b"UV",
}  # fmt: skip
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_CHUNK = 65536


class Unsupported(Exception):
    """The file uses an encoding this walker does not handle; use pydicom instead."""


class Truncated(Unsupported):
    """The file ends inside its header: an element or item runs past its end.

    pydicom reads such a file without a word, taking what is there.
    """

    def __init__(self) -> None:
        # The same words for every file, so that an import's reasons add up.
        super().__init__("the file ends inside its header")


# What to collect: a tag maps to None for a value, or to the wanted map of a sequence's first item.
Wanted = dict[int, "Wanted | None"]


@dataclass(slots=True)
class RawElements:
    """Raw values found at one dataset level: ``values[tag] = (vr, bytes)``.

    ``vr`` is None for implicit VR. Sequences found are in ``items`` (first item only).
    """

    values: dict[int, tuple[bytes | None, bytes]] = field(default_factory=dict)
    items: dict[int, RawElements] = field(default_factory=dict)


@dataclass(slots=True)
class RawHeader:
    """The result of :func:`walk`."""

    meta: RawElements
    dataset: RawElements
    transfer_syntax: str
    implicit: bool
    little_endian: bool
    pixel_tag_offset: int | None  # where the pixel data element starts, if any


class _Buffer:
    """The start of a file, read on demand in chunks."""

    __slots__ = ("data", "eof", "fp", "size")

    def __init__(self, fp: BinaryIO) -> None:
        self.fp = fp
        start = fp.tell()
        # What is left of the file: a length that runs past it (a broken one may say
        # 4 GiB) is answered without asking for that much memory.
        self.size = fp.seek(0, os.SEEK_END) - start
        fp.seek(start)
        self.data = fp.read(_CHUNK)
        self.eof = len(self.data) < _CHUNK

    def has(self, end: int) -> bool:
        """Make sure ``data[:end]`` is loaded; False if the file is shorter."""
        if end > self.size:
            return False
        while end > len(self.data):
            if self.eof:
                return False
            more = self.fp.read(max(end - len(self.data), len(self.data)))
            self.eof = not more
            self.data += more
        return True


def walk(fp: BinaryIO, wanted: Wanted, meta_wanted: Wanted) -> RawHeader:
    """Collect ``wanted`` elements of a Part 10 file, stopping at the pixel data.

    Raises
    ------
    Truncated
        If the header runs past the end of the file.
    Unsupported
        For files without a preamble and meta, deflated syntaxes and odd VR encodings.
    """
    buf = _Buffer(fp)
    if not buf.has(132) or buf.data[128:132] != b"DICM":
        raise Unsupported("no DICM prefix")
    meta = RawElements()
    pos = _walk_meta(buf, 132, meta_wanted, meta)
    if not buf.has(pos) or not buf.has(_meta_end(buf)):
        raise Truncated()
    raw_syntax = meta.values.get(0x00020010, (None, b""))[1]
    syntax = raw_syntax.decode("ascii", "replace").strip("\x00 ")
    if syntax == DEFLATED or not syntax:
        raise Unsupported("deflated or no transfer syntax")
    implicit, little = syntax == IMPLICIT_LE, syntax != EXPLICIT_BE
    dataset = RawElements()
    end = _walk(buf, pos, None, implicit, little, wanted, dataset, top=True)
    pixel_at = end if buf.has(end + 4) and _tag(buf.data, end, little) in PIXEL_TAGS else None
    return RawHeader(meta, dataset, syntax, implicit, little, pixel_at)


def _tag(data: bytes, pos: int, little: bool) -> int:
    group, element = struct.unpack_from("<HH" if little else ">HH", data, pos)
    return group << 16 | element


def _meta_end(buf: _Buffer) -> int:
    """Where the file meta ends by its group length (PS3.10 7.1), if it starts with one."""
    if buf.has(144) and buf.data[132:138] == b"\x02\x00\x00\x00UL":
        return 144 + int(struct.unpack_from("<L", buf.data, 140)[0])
    return 0


def _walk_meta(buf: _Buffer, pos: int, wanted: Wanted, out: RawElements) -> int:
    """File meta: always explicit VR little endian, ends where group 0002 ends."""
    while buf.has(pos + 8) and buf.data[pos : pos + 2] == b"\x02\x00":
        pos = _element(buf, pos, False, True, wanted, out)
    return pos


def _walk(
    buf: _Buffer,
    pos: int,
    end: int | None,
    implicit: bool,
    little: bool,
    wanted: Wanted,
    out: RawElements,
    top: bool = False,
) -> int:
    """Walk elements from ``pos`` to ``end`` (or an item delimiter when None).

    At the top level, stop before the pixel data or at the end of the file and
    return that position; nested, return the position after the item.
    """
    endian = "<HH" if little else ">HH"
    while end is None or pos < end:
        if not buf.has(pos + 8):
            if top and pos == buf.size:  # the file's end (its values need not be loaded)
                return pos
            raise Truncated()
        group, element = struct.unpack_from(endian, buf.data, pos)
        tag = group << 16 | element
        if tag == _ITEM_END:
            return pos + 8
        if top and tag in PIXEL_TAGS:
            return pos
        pos = _element(buf, pos, implicit, little, wanted, out)
    return pos


def _element(
    buf: _Buffer, pos: int, implicit: bool, little: bool, wanted: Wanted, out: RawElements
) -> int:
    """Read or skip the element at ``pos``; return the position after it."""
    data = buf.data
    tag = _tag(data, pos, little)
    vr: bytes | None
    if implicit:
        vr = None
        (length,) = struct.unpack_from("<L" if little else ">L", data, pos + 4)
        value = pos + 8
    else:
        vr = data[pos + 4 : pos + 6]
        if vr in LONG_VRS:
            if not buf.has(pos + 12):
                raise Truncated()
            (length,) = struct.unpack_from("<L" if little else ">L", buf.data, pos + 8)
            value = pos + 12
        elif vr.isalpha() and vr.isupper():
            (length,) = struct.unpack_from("<H" if little else ">H", data, pos + 6)
            value = pos + 8
        else:
            raise Unsupported("not explicit VR")
    sub = wanted.get(tag)
    if length == _UNDEFINED:
        if vr not in (None, b"SQ"):
            raise Unsupported("undefined length outside a sequence")
        return _sequence(buf, value, None, implicit, little, tag, sub, out)
    if vr == b"SQ" or (vr is None and sub is not None):
        if sub is not None:
            _sequence(buf, value, value + length, implicit, little, tag, sub, out)
        return value + length
    if tag in wanted:
        if vr is not None and vr not in VRS:
            raise Unsupported("unknown VR")
        if not buf.has(value + length):
            raise Truncated()
        out.values[tag] = (vr, buf.data[value : value + length])
    return value + length


def _sequence(
    buf: _Buffer,
    pos: int,
    end: int | None,
    implicit: bool,
    little: bool,
    tag: int,
    wanted: Wanted | None,
    out: RawElements,
) -> int:
    """Walk a sequence's items, collecting ``wanted`` from the first item."""
    endian = "<LL" if little else ">LL"
    first = True
    while end is None or pos < end:
        if not buf.has(pos + 8):
            raise Truncated()
        item_tag = _tag(buf.data, pos, little)
        (length,) = struct.unpack_from(endian[0] + "L", buf.data, pos + 4)
        pos += 8
        if item_tag == _SEQUENCE_END:
            return pos
        if item_tag != _ITEM:
            raise Unsupported("bad sequence item")
        item = RawElements()
        collect = wanted if first and wanted else {}
        if length == _UNDEFINED:
            pos = _walk(buf, pos, None, implicit, little, collect, item)
        else:
            if collect:
                _walk(buf, pos, pos + length, implicit, little, collect, item)
            pos += length
        if first and wanted:
            out.items[tag] = item
        first = False
    return pos


def ends_whole(fp: BinaryIO) -> bool:
    """Whether a Part 10 file holds its whole dataset: every element, the pixel data and
    anything after it included, lies inside the file, and the file ends where the last one
    does. Only the headers are read (the pixel data is skipped by its length or its items).

    :func:`walk` stops at the pixel data, and pydicom reads a file cut short without a
    word: a file that arrived over the network is checked with this before it is filed, so
    an instance cut in transfer is never indexed.

    Raises
    ------
    Unsupported
        For what :func:`walk` cannot read (a deflated syntax, no preamble and meta, odd VR
        encodings): the caller decides.
    """
    fp.seek(0)
    try:
        header = walk(fp, {}, {0x00020010: None})  # the syntax, which it needs
    except Truncated:
        return False
    return ends_after(fp, header)


def ends_after(fp: BinaryIO, header: RawHeader) -> bool:
    """:func:`ends_whole` once the header is walked (``header``, from :func:`walk` of
    ``fp`` with any wanted elements): the pixel data and what follows it lie inside the file,
    which ends where they do."""
    if header.pixel_tag_offset is None:
        return True  # the walk reached the end of the file exactly
    size = fp.seek(0, 2)
    little = header.little_endian
    pos = header.pixel_tag_offset
    while pos < size:  # the pixel data and any top-level element after it
        fp.seek(pos)
        head = fp.read(12)
        if len(head) < 8:
            return False
        if header.implicit:
            length, value = struct.unpack_from("<L" if little else ">L", head, 4)[0], pos + 8
        elif head[4:6] in LONG_VRS:
            if len(head) < 12:
                return False
            length, value = struct.unpack_from("<L" if little else ">L", head, 8)[0], pos + 12
        else:
            length, value = struct.unpack_from("<H" if little else ">H", head, 6)[0], pos + 8
        if length != _UNDEFINED:
            pos = value + length
            continue
        pos = value  # encapsulated: items of defined length up to the sequence delimiter
        while True:
            fp.seek(pos)
            item = fp.read(8)
            if len(item) < 8:
                return False
            tag = _tag(item, 0, little)
            (length,) = struct.unpack_from("<L" if little else ">L", item, 4)
            pos += 8
            if tag == _SEQUENCE_END:
                break
            if tag != _ITEM or length == _UNDEFINED:
                return False
            pos += length
    return pos == size
