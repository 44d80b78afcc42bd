"""The index's record of one file's header, read by the element walker without pydicom.

What the index keeps of an instance (:class:`InstanceRecord`) and the fast path that reads
it: :mod:`tui.archive.elements` walks the header, this module decodes the values as pydicom
would. Text in ASCII under the usual character sets is decoded here; anything else goes
through pydicom's own functions, imported only then, so filing a C-GET's arrivals
(:mod:`tui.net.storage`) does not load pydicom (a third of a second of CPU at start-up:
``benchmarks/bench_get.py``). :mod:`tui.archive.header` reads what the walker cannot, with
pydicom, and is the module the rest of pacs-tui imports these names from.

Identifiers that are not UIDs: a file whose Study, Series or SOP Instance UID is
not a UID is refused with the reason (:class:`HeaderError`), never indexed under a
made-up key: the index only holds UIDs that its files carry, as ``send``, ``serve``
and retrieving compare them with other systems'. PS3.5 9.1 is kept with two
leniencies real files need: letters (hex digests written by anonymisers) and
leading zeros (old modalities). Control characters, spaces, other punctuation,
non-ASCII, empty components and more than 64 characters are refused. Control
characters in the other text values (never valid in their VRs) are stored as
U+FFFD, so that nothing in the index can drive a terminal.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import MutableSequence
from dataclasses import dataclass, fields
from typing import Any, BinaryIO, Protocol

from tui.archive import elements
from tui.archive.elements import RawElements, Unsupported, Wanted

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
_UNDEFINED = 0xFFFFFFFF
_ITEM, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE0DD

# The elements read, with their tag and VR from PS3.6 (tests/test_header.py checks them
# against pydicom's dictionary, which is not loaded here).
DICTIONARY = {
    "SpecificCharacterSet": (0x00080005, "CS"),
    "SOPClassUID": (0x00080016, "UI"),
    "SOPInstanceUID": (0x00080018, "UI"),
    "StudyDate": (0x00080020, "DA"),
    "StudyTime": (0x00080030, "TM"),
    "AccessionNumber": (0x00080050, "SH"),
    "Modality": (0x00080060, "CS"),
    "ReferringPhysicianName": (0x00080090, "PN"),
    "StudyDescription": (0x00081030, "LO"),
    "SeriesDescription": (0x0008103E, "LO"),
    "PatientName": (0x00100010, "PN"),
    "PatientID": (0x00100020, "LO"),
    "PatientBirthDate": (0x00100030, "DA"),
    "PatientSex": (0x00100040, "CS"),
    "BodyPartExamined": (0x00180015, "CS"),
    "SliceThickness": (0x00180050, "DS"),
    "StudyInstanceUID": (0x0020000D, "UI"),
    "SeriesInstanceUID": (0x0020000E, "UI"),
    "SeriesNumber": (0x00200011, "IS"),
    "AcquisitionNumber": (0x00200012, "IS"),
    "InstanceNumber": (0x00200013, "IS"),
    "ImagePositionPatient": (0x00200032, "DS"),
    "ImageOrientationPatient": (0x00200037, "DS"),
    "TemporalPositionIdentifier": (0x00200100, "IS"),
    "SamplesPerPixel": (0x00280002, "US"),
    "PhotometricInterpretation": (0x00280004, "CS"),
    "NumberOfFrames": (0x00280008, "IS"),
    "Rows": (0x00280010, "US"),
    "Columns": (0x00280011, "US"),
    "PixelSpacing": (0x00280030, "DS"),
    "BitsAllocated": (0x00280100, "US"),
    "BitsStored": (0x00280101, "US"),
    "PixelRepresentation": (0x00280103, "US"),
    "WindowCenter": (0x00281050, "DS"),
    "WindowWidth": (0x00281051, "DS"),
    "RescaleIntercept": (0x00281052, "DS"),
    "RescaleSlope": (0x00281053, "DS"),
    "SharedFunctionalGroupsSequence": (0x52009229, "SQ"),
    "PerFrameFunctionalGroupsSequence": (0x52009230, "SQ"),
    "PlanePositionSequence": (0x00209113, "SQ"),
    "PlaneOrientationSequence": (0x00209116, "SQ"),
    "PixelMeasuresSequence": (0x00289110, "SQ"),
    "MediaStorageSOPClassUID": (0x00020002, "UI"),
    "TransferSyntaxUID": (0x00020010, "UI"),
}
# Only these elements are parsed; the rest of the header is skipped over.
KEYWORDS = tuple(DICTIONARY)[:-5]  # the dataset's: sequence items and file meta aside
_GEOMETRY = {
    "PlanePositionSequence": "ImagePositionPatient",
    "PlaneOrientationSequence": "ImageOrientationPatient",
    "PixelMeasuresSequence": "PixelSpacing",
}
_FUNCTIONAL_GROUPS = ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence")
_GROUP_WANTED: Wanted = {
    DICTIONARY[seq][0]: {DICTIONARY[value][0]: None} for seq, value in _GEOMETRY.items()
}
WANTED: Wanted = {
    DICTIONARY[k][0]: _GROUP_WANTED if k in _FUNCTIONAL_GROUPS else None for k in KEYWORDS
}
# The group length too: pydicom reads it (as the syntax) at once, so a broken one must
# send the file to pydicom, as unknown VRs of wanted values do.
META_WANTED: Wanted = {0x00020000: None, 0x00020002: None, 0x00020010: None}
_IDENTIFIERS = ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
# PS3.5 9.1's characters and components, with letters and leading zeros let through.
_LENIENT_UID = re.compile(r"[0-9A-Za-z]+(?:\.[0-9A-Za-z]+)*")
_UID_LENGTH = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode's Cc: C0, DEL and C1


class HeaderError(Exception):
    """The file is not a DICOM instance we can index; the message says why."""


@dataclass(slots=True)
class PixelLocation:
    """Where the pixel data value lies in the file.

    ``fragments`` and ``offset_table`` are packed little-endian unsigned 64-bit
    integers: (offset, length) pairs for each fragment after the Basic Offset
    Table, and the Basic Offset Table's own entries.
    """

    offset: int
    length: int  # -1 when encapsulated (undefined length)
    fragments: bytes = b""
    offset_table: bytes = b""


@dataclass(slots=True)
class InstanceRecord:
    """One instance's header fields, as the index stores them."""

    path: str
    size: int
    mtime_ns: int
    patient_id: str
    patient_name: str
    birth_date: str
    sex: str
    study_uid: str
    study_date: str
    study_time: str
    accession: str
    study_description: str
    referring_physician: str
    series_uid: str
    modality: str
    series_number: int | None
    series_description: str
    body_part: str
    sop_uid: str
    sop_class: str
    instance_number: int | None
    transfer_syntax: str
    rows: int | None
    columns: int | None
    frames: int
    samples_per_pixel: int | None
    photometric: str
    bits_allocated: int | None
    position: str
    orientation: str
    pixel_spacing: str
    slice_thickness: float | None
    acquisition_number: int | None
    temporal_position: int | None
    pixels: PixelLocation | None
    bits_stored: int | None = None
    pixel_representation: int | None = None
    rescale_slope: float | None = None
    rescale_intercept: float | None = None
    window_center: str = ""  # backslash-separated, as in the file
    window_width: str = ""


# Text the index stores as the file has it, control characters aside (the path is the
# file system's, needed to open the file).
_TEXT_FIELDS = tuple(f.name for f in fields(InstanceRecord) if f.type == "str" and f.name != "path")


def uid_problem(value: str) -> str | None:
    """Why ``value`` cannot be indexed as a UID, or None when it can (see the module's
    docstring for what is accepted)."""
    if _CONTROL.search(value):
        return "it holds control characters"
    if len(value) > _UID_LENGTH:
        return f"more than {_UID_LENGTH} characters"
    if not _LENIENT_UID.fullmatch(value):
        return "characters other than digits, letters and dots, or an empty component"
    return None


def without_controls(text: str) -> str:
    """``text`` with each control character replaced by U+FFFD, as the index stores it."""
    return _CONTROL.sub("\ufffd", text)


CUT_SHORT = "the data ends before its last element: cut short in transfer"


Parts = tuple["Header", "Header", PixelLocation | None]


def walked(fp: BinaryIO, file_size: int) -> Parts:
    """Header, file meta and pixel location from the fast element walker.

    Raises
    ------
    Truncated, Unsupported
        What the walker cannot read (pydicom can, :mod:`tui.archive.header`).
    """
    return parts_of(elements.walk(fp, WANTED, META_WANTED), fp, file_size)


def parts_of(raw: elements.RawHeader, fp: BinaryIO, file_size: int) -> Parts:
    """Header, file meta and pixel location of what the walker read."""
    pixels = None
    if raw.pixel_tag_offset is not None:
        fp.seek(raw.pixel_tag_offset)
        pixels = locate_pixels(fp, raw.implicit, raw.little_endian, file_size)
    header = _RawView(raw.dataset, _charset(raw.dataset), raw.little_endian)
    return header, _RawView(raw.meta, _Charset(None)), pixels


def read_whole(path: str) -> InstanceRecord | None:
    """The record of a file that came over the network, which must be whole; None when the
    walker cannot read it (:func:`tui.archive.header.read_arrival` then decides).

    One walk of the header reads the record and finds where the pixel data lies, so the
    check that the file ends where its last element does (:func:`elements.ends_after`) costs
    no second walk.

    Raises
    ------
    HeaderError
        As :func:`tui.archive.header.read_record`, and when the file is cut short
        (:data:`CUT_SHORT`).
    OSError
        If the file cannot be read.
    """
    with open(path, "rb") as fp:
        st = os.fstat(fp.fileno())
        try:
            raw = elements.walk(fp, WANTED, META_WANTED)
            parts = parts_of(raw, fp, st.st_size)
        except Unsupported:  # Truncated too: the reader with pydicom says what it is
            return None
        if not elements.ends_after(fp, raw):
            raise HeaderError(CUT_SHORT)
    return record_of(path, st, *parts)


def record_of(
    path: str, st: os.stat_result, h: Header, meta: Header, pixels: PixelLocation | None
) -> InstanceRecord:
    sop_class = h.text("SOPClassUID") or meta.text("MediaStorageSOPClassUID")
    if sop_class == MEDIA_STORAGE_DIRECTORY:
        raise HeaderError("DICOMDIR")
    uids = {k: h.text(k) for k in _IDENTIFIERS}
    missing = [k for k, v in uids.items() if not v]
    if missing:
        raise HeaderError(f"no {', '.join(missing)}")
    for keyword, uid in uids.items():
        why = uid_problem(uid)
        if why:
            raise HeaderError(f"{keyword} is not a UID: {why}")
    geometry = {}
    for sequence, keyword in _GEOMETRY.items():
        value = h.multi(keyword)
        for group in _FUNCTIONAL_GROUPS:
            if value:
                break
            item = h.item(group)
            inner = item.item(sequence) if item else None
            value = inner.multi(keyword) if inner else ""
        geometry[keyword] = value
    record = InstanceRecord(
        path=path,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        patient_id=h.text("PatientID"),
        patient_name=h.text("PatientName"),
        birth_date=_date(h.text("PatientBirthDate")),
        sex=h.text("PatientSex"),
        study_uid=uids["StudyInstanceUID"],
        study_date=_date(h.text("StudyDate")),
        study_time=h.text("StudyTime"),
        accession=h.text("AccessionNumber"),
        study_description=h.text("StudyDescription"),
        referring_physician=h.text("ReferringPhysicianName"),
        series_uid=uids["SeriesInstanceUID"],
        modality=h.text("Modality"),
        series_number=h.int("SeriesNumber"),
        series_description=h.text("SeriesDescription"),
        body_part=h.text("BodyPartExamined"),
        sop_uid=uids["SOPInstanceUID"],
        sop_class=sop_class,
        instance_number=h.int("InstanceNumber"),
        transfer_syntax=meta.text("TransferSyntaxUID"),
        rows=h.int("Rows"),
        columns=h.int("Columns"),
        frames=h.int("NumberOfFrames") or 1,
        samples_per_pixel=h.int("SamplesPerPixel"),
        photometric=h.text("PhotometricInterpretation"),
        bits_allocated=h.int("BitsAllocated"),
        position=geometry["ImagePositionPatient"],
        orientation=geometry["ImageOrientationPatient"],
        pixel_spacing=geometry["PixelSpacing"],
        slice_thickness=h.float("SliceThickness"),
        acquisition_number=h.int("AcquisitionNumber"),
        temporal_position=h.int("TemporalPositionIdentifier"),
        pixels=pixels,
        bits_stored=h.int("BitsStored"),
        pixel_representation=h.int("PixelRepresentation"),
        rescale_slope=h.float("RescaleSlope"),
        rescale_intercept=h.float("RescaleIntercept"),
        window_center=h.multi("WindowCenter"),
        window_width=h.multi("WindowWidth"),
    )
    if _CONTROL.search("".join(getattr(record, name) for name in _TEXT_FIELDS)):  # rare
        for name in _TEXT_FIELDS:
            setattr(record, name, without_controls(getattr(record, name)))
    return record


class Header(Protocol):
    """Typed access to header values, whether from pydicom or the element walker."""

    def text(self, keyword: str) -> str: ...
    def int(self, keyword: str) -> int | None: ...
    def float(self, keyword: str) -> float | None: ...
    def multi(self, keyword: str) -> str: ...
    def item(self, keyword: str) -> Header | None: ...


def _date(value: str) -> str:
    """A DA as YYYYMMDD: ACR-NEMA's YYYY.MM.DD (PS3.5 6.2, still written by old modalities)
    loses its dots, so it sorts, matches date ranges and fits the date columns."""
    value = value.strip()
    if len(value) == 10 and value[4] == value[7] == "." and value.replace(".", "").isdigit():
        return value.replace(".", "")
    return value


def joined(value: Any) -> str:
    """Text of a value ('' when absent); multiple values joined by backslashes."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if isinstance(value, MutableSequence) and not isinstance(value, bytearray):  # MultiValue
        return "\\".join(str(v).strip("\x00 ") for v in value).strip("\x00 ")
    return str(value).strip("\x00 ")


def to_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            return None
        return int(number) if number.is_integer() else None


def to_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def to_multi(text: str) -> str:
    """Backslash-separated decimal text, '' unless every value parses."""
    try:
        return "\\".join(repr(float(v)) for v in text.split("\\")) if text else ""
    except ValueError:
        return ""


_BINARY_INT_VRS = {b"US": "H", b"SS": "h", b"UL": "L", b"SL": "l"}
_CHARSET_VRS = {"SH", "LO", "ST", "LT", "UC", "UT"}
# Character sets under which ASCII bytes decode as ASCII (pydicom's codecs: iso8859,
# latin_1, UTF8); text in ASCII under them needs no codec of pydicom's.
_PLAIN_CHARSETS = frozenset({"", "ISO_IR 6", "ISO_IR 100", "ISO_IR 192"})


class _Charset:
    """A dataset's SpecificCharacterSet, turned into pydicom's codecs only when a value
    needs them (pydicom's import alone costs more than a C-GET's filing of hundreds of
    files: ``benchmarks/bench_get.py``)."""

    __slots__ = ("_encodings", "plain", "raw")

    def __init__(self, raw: bytes | None) -> None:
        self.raw = raw  # the value as the file has it; None: the dataset has none
        value = raw.decode("latin-1").rstrip(" \x00") if raw is not None else ""
        self.plain = value in _PLAIN_CHARSETS  # one term (no backslash), ASCII-compatible
        self._encodings: list[str] | None = None

    def encodings(self) -> list[str]:
        """The character sets as pydicom reads them (only trailing spaces and NULs go),
        so that both readers decode names alike whatever the file holds."""
        if self._encodings is None:
            _quiet_pydicom()
            from pydicom.charset import convert_encodings
            from pydicom.values import convert_string

            value = convert_string(self.raw, True) if self.raw is not None else None
            self._encodings = convert_encodings([value] if isinstance(value, str) else value)
        return self._encodings

    def decoded(self, data: bytes, vr: str) -> str:
        """A PN or text value as pydicom decodes it, values joined by backslashes."""
        if (
            self.plain
            and data.isascii()
            and b"\x1b" not in data  # no ISO 2022 escapes
            and (vr != "PN" or b"=" not in data)  # one component group
        ):
            # pydicom's result, without pydicom (tests/test_header.py compares them)
            if vr == "PN":
                data = data.rstrip(b"\x00 ")
            values = data.decode("ascii").split("\\")
            if len(values) == 1:
                return values[0].strip("\x00 ")
            return "\\".join(v.strip("\x00 ") for v in values).strip("\x00 ")
        _quiet_pydicom()
        from pydicom.values import convert_PN, convert_text

        if vr == "PN":
            return joined(convert_PN(data, self.encodings()))
        return joined(convert_text(data, self.encodings(), vr))


def _quiet_pydicom() -> None:
    """pydicom as the archive reads with it, before any value goes through it."""
    from tui.archive import pydicom_setup  # noqa: F401


def _charset(raw: RawElements) -> _Charset:
    found = raw.values.get(0x00080005)
    if found and found[0] not in (None, b"CS", b"UN"):
        raise Unsupported("SpecificCharacterSet is not CS")  # pydicom says what it makes of it
    return _Charset(found[1] if found else None)


class _RawView:
    """:class:`Header` over the element walker's raw values, decoded as pydicom would."""

    def __init__(self, raw: RawElements, charset: _Charset, little: bool = True) -> None:
        self.raw = raw
        self.charset = charset
        self.little = little

    def text(self, keyword: str) -> str:
        tag, dictionary_vr = DICTIONARY[keyword]
        found = self.raw.values.get(tag)
        if found is None:
            return ""
        vr, data = found
        name = vr.decode("ascii") if vr else dictionary_vr
        if name == "PN" or name in _CHARSET_VRS:
            return self.charset.decoded(data, name)
        return joined(data.decode("latin-1").split("\\"))

    def int(self, keyword: str) -> int | None:
        tag, dictionary_vr = DICTIONARY[keyword]
        found = self.raw.values.get(tag)
        if found is None:
            return None
        vr, data = found
        code = _BINARY_INT_VRS.get(vr or dictionary_vr.encode())
        if code:
            if len(data) != struct.calcsize(code):
                return None
            return int(struct.unpack(("<" if self.little else ">") + code, data)[0])
        return to_int(self.text(keyword))

    def float(self, keyword: str) -> float | None:
        return to_float(self.text(keyword))

    def multi(self, keyword: str) -> str:
        return to_multi(self.text(keyword))

    def item(self, keyword: str) -> Header | None:
        found = self.raw.items.get(DICTIONARY[keyword][0])
        return _RawView(found, self.charset, self.little) if found else None


def locate_pixels(
    fp: BinaryIO, implicit: bool, little: bool, file_size: int
) -> PixelLocation | None:
    """Parse the pixel data element header at the file's current position."""
    endian = "<" if little else ">"
    start = fp.tell()
    head = fp.read(12)
    if len(head) < 8:
        return None
    group, element = struct.unpack(endian + "HH", head[:4])
    if (group, element) not in ((0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)):
        return None
    if implicit or not head[4:6].isalpha():  # some files switch to implicit VR mid-way
        (length,) = struct.unpack(endian + "L", head[4:8])
        value = start + 8
    elif head[4:6] in elements.LONG_VRS:
        (length,) = struct.unpack(endian + "L", head[8:12])
        value = start + 12
    else:
        (length,) = struct.unpack(endian + "H", head[6:8])
        value = start + 8
    if length != _UNDEFINED:
        return PixelLocation(offset=value, length=length)
    return _locate_fragments(fp, value, file_size)


def _locate_fragments(fp: BinaryIO, value: int, file_size: int) -> PixelLocation:
    """Walk the items of encapsulated pixel data (always little endian, PS3.5 A.4)."""
    fp.seek(value)
    items: list[tuple[int, int]] = []
    while True:
        head = fp.read(8)
        if len(head) < 8:
            break  # truncated: keep the fragments found so far
        tag, length = struct.unpack("<LL", head)
        tag = (tag >> 16) | ((tag & 0xFFFF) << 16)  # stored as group, element
        if tag == _SEQUENCE_END or tag != _ITEM:
            break
        items.append((fp.tell(), length))
        if fp.tell() + length > file_size:
            break
        fp.seek(length, os.SEEK_CUR)
    offset_table = b""
    if items and items[0][1] and items[0][0] + items[0][1] <= file_size:  # not one cut short
        fp.seek(items[0][0])
        offset_table = struct.pack(
            f"<{items[0][1] // 4}Q", *struct.unpack(f"<{items[0][1] // 4}L", fp.read(items[0][1]))
        )
    fragments = struct.pack(f"<{2 * (len(items) - 1)}Q", *(n for item in items[1:] for n in item))
    return PixelLocation(value, -1, fragments, offset_table)
