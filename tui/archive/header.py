"""Read what the index needs from one file's header, without decoding pixels.

Runs in import worker processes, so it returns plain picklable records. The
header is read with pydicom up to the pixel data; the pixel data element itself
is then located by hand (its value offset and length, and for encapsulated
transfer syntaxes each fragment's offset) so a viewer can read any frame later
without parsing the header again.

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

import logging
import os
import re
import struct
import warnings
from dataclasses import dataclass, fields
from typing import Any, BinaryIO, Protocol

from pydicom import config as pydicom_config
from pydicom import dcmread
from pydicom.charset import convert_encodings
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.tag import Tag
from pydicom.values import convert_PN, convert_string, convert_text

from tui.archive import elements
from tui.archive.elements import RawElements, Truncated, Unsupported, Wanted

# Values that fail validation are read as they are: the index keeps what the file says.
pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
# pydicom's messages quote tag values (patient data) and the problems they report reach
# the user through our own reasons: keep them out of logs and off the terminal.
logging.getLogger("pydicom").setLevel(logging.CRITICAL)

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
_UNDEFINED = 0xFFFFFFFF
_ITEM, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE0DD

# Only these elements are parsed; the rest of the header is skipped over.
_KEYWORDS = (
    "SpecificCharacterSet", "SOPClassUID", "SOPInstanceUID", "StudyDate", "StudyTime",
    "AccessionNumber", "Modality", "ReferringPhysicianName", "StudyDescription",
    "SeriesDescription", "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
    "BodyPartExamined", "SliceThickness", "StudyInstanceUID", "SeriesInstanceUID",
    "SeriesNumber", "AcquisitionNumber", "InstanceNumber", "ImagePositionPatient",
    "ImageOrientationPatient", "TemporalPositionIdentifier", "SamplesPerPixel",
    "PhotometricInterpretation", "NumberOfFrames", "Rows", "Columns", "PixelSpacing",
    "BitsAllocated", "BitsStored", "PixelRepresentation", "WindowCenter", "WindowWidth",
    "RescaleIntercept", "RescaleSlope",
    "SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence",
)  # fmt: skip
_TAGS = [Tag(k) for k in _KEYWORDS]
_GEOMETRY = {
    "PlanePositionSequence": "ImagePositionPatient",
    "PlaneOrientationSequence": "ImageOrientationPatient",
    "PixelMeasuresSequence": "PixelSpacing",
}
_FUNCTIONAL_GROUPS = ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence")
_GROUP_WANTED: Wanted = {
    tag_for_keyword(seq): {tag_for_keyword(kw): None for kw in [value]}  # type: ignore[misc]
    for seq, value in _GEOMETRY.items()
}
_WANTED: Wanted = {
    int(t): _GROUP_WANTED if keyword_for_tag(t) in _FUNCTIONAL_GROUPS else None for t in _TAGS
}
# The group length too: pydicom reads it (as the syntax) at once, so a broken one must
# send the file to pydicom, as unknown VRs of wanted values do.
_META_WANTED: Wanted = {0x00020000: None, 0x00020002: None, 0x00020010: None}
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


def read_record(path: str) -> InstanceRecord:
    """Read ``path``'s header into an :class:`InstanceRecord`.

    The fast element walker reads well-formed files; pydicom reads the rest.

    Raises
    ------
    HeaderError
        If the file is not DICOM, is a DICOMDIR, or lacks the identifying UIDs (a file
        cut short before them is said to be truncated).
    OSError
        If the file cannot be read.
    """
    with open(path, "rb") as fp:
        st = os.fstat(fp.fileno())
        try:
            parts = _walked(fp, st.st_size)
        except Truncated as exc:  # what is there may still name the instance
            fp.seek(0)
            try:
                parts = _parsed(fp, st.st_size)
                return _record(path, st, *parts)
            except Exception:  # pydicom raises many types for a header cut short
                raise HeaderError(f"truncated: {exc}") from None
        except Unsupported:
            fp.seek(0)
            parts = _parsed(fp, st.st_size)
    return _record(path, st, *parts)


def truncation(path: str) -> str | None:
    """Why ``path`` is cut short, or None when it is whole as far as can be told.

    Whole is :func:`elements.ends_whole`'s test (every element, the pixel data's fragments
    and delimiter included, lies inside the file, which ends where the last one does); the
    reason names how far the pixel data runs past the end where it does. Encodings the
    walker does not follow are not checked.
    """
    with open(path, "rb") as fp:
        size = os.fstat(fp.fileno()).st_size
        try:
            pixels = _walked(fp, size)[2]
            whole = elements.ends_whole(fp)
        except Truncated as exc:
            return str(exc)
        except Unsupported:
            return None
    if whole:
        return None
    end = -1
    if pixels is not None and pixels.length >= 0:
        end = pixels.offset + pixels.length
    elif pixels is not None and pixels.fragments:
        offset, length = struct.unpack_from("<QQ", pixels.fragments, len(pixels.fragments) - 16)
        end = offset + length
    if end > size:
        return f"the pixel data ends {end - size} bytes past the end of the file"
    return "the file ends inside its data (its last element or delimiter is missing)"


def read_record_with_pydicom(path: str) -> InstanceRecord:
    """Like :func:`read_record` but always through pydicom (the reference the tests compare to)."""
    with open(path, "rb") as fp:
        st = os.fstat(fp.fileno())
        parts = _parsed(fp, st.st_size)
    return _record(path, st, *parts)


_Parts = tuple["_Header", "_Header", PixelLocation | None]


def _walked(fp: BinaryIO, file_size: int) -> _Parts:
    """Header, file meta and pixel location from the fast element walker."""
    raw = elements.walk(fp, _WANTED, _META_WANTED)
    pixels = None
    if raw.pixel_tag_offset is not None:
        fp.seek(raw.pixel_tag_offset)
        pixels = _locate_pixels(fp, raw.implicit, raw.little_endian, file_size)
    header = _RawView(raw.dataset, _encodings(raw.dataset), raw.little_endian)
    return header, _RawView(raw.meta, []), pixels


def _parsed(fp: BinaryIO, file_size: int) -> _Parts:
    """Header, file meta and pixel location from pydicom."""
    ds = _read_dataset(fp)
    meta = _DatasetView(ds.file_meta) if hasattr(ds, "file_meta") else _DatasetView(ds)
    implicit, little = ds.original_encoding
    pixels = None
    if implicit is not None and meta.text("TransferSyntaxUID") != elements.DEFLATED:
        pixels = _locate_pixels(fp, implicit, bool(little), file_size)
    return _DatasetView(ds), meta, pixels


def _record(
    path: str, st: os.stat_result, h: _Header, meta: _Header, pixels: PixelLocation | None
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


class _Header(Protocol):
    """Typed access to header values, whether from pydicom or the element walker."""

    def text(self, keyword: str) -> str: ...
    def int(self, keyword: str) -> int | None: ...
    def float(self, keyword: str) -> float | None: ...
    def multi(self, keyword: str) -> str: ...
    def item(self, keyword: str) -> _Header | None: ...


def _date(value: str) -> str:
    """A DA as YYYYMMDD: ACR-NEMA's YYYY.MM.DD (PS3.5 6.2, still written by old modalities)
    loses its dots, so it sorts, matches date ranges and fits the date columns."""
    value = value.strip()
    if len(value) == 10 and value[4] == value[7] == "." and value.replace(".", "").isdigit():
        return value.replace(".", "")
    return value


def _joined(value: Any) -> str:
    """Text of a value ('' when absent); multiple values joined by backslashes."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if isinstance(value, MultiValue | list):
        return "\\".join(str(v).strip("\x00 ") for v in value).strip("\x00 ")
    return str(value).strip("\x00 ")


def _to_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            return None
        return int(number) if number.is_integer() else None


def _to_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _to_multi(text: str) -> str:
    """Backslash-separated decimal text, '' unless every value parses."""
    try:
        return "\\".join(repr(float(v)) for v in text.split("\\")) if text else ""
    except ValueError:
        return ""


class _DatasetView:
    """:class:`_Header` over a pydicom Dataset."""

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds

    def _value(self, keyword: str) -> Any:
        try:
            return self.ds.get(keyword)
        except Exception:
            return None  # a value pydicom cannot convert counts as absent

    def text(self, keyword: str) -> str:
        return _joined(self._value(keyword))

    def int(self, keyword: str) -> int | None:
        value = self._value(keyword)
        return value if isinstance(value, int) else _to_int(_joined(value))

    def float(self, keyword: str) -> float | None:
        return _to_float(_joined(self._value(keyword)))

    def multi(self, keyword: str) -> str:
        return _to_multi(_joined(self._value(keyword)))

    def item(self, keyword: str) -> _Header | None:
        try:
            return _DatasetView(self.ds[keyword][0])
        except (KeyError, IndexError, TypeError):
            return None


_BINARY_INT_VRS = {b"US": "H", b"SS": "h", b"UL": "L", b"SL": "l"}
_CHARSET_VRS = {"SH", "LO", "ST", "LT", "UC", "UT"}


class _RawView:
    """:class:`_Header` over the element walker's raw values, decoded as pydicom would."""

    def __init__(self, raw: RawElements, encodings: list[str], little: bool = True) -> None:
        self.raw = raw
        self.encodings = encodings
        self.little = little

    def text(self, keyword: str) -> str:
        found = self.raw.values.get(tag_for_keyword(keyword) or 0)
        if found is None:
            return ""
        vr, data = found
        name = vr.decode("ascii") if vr else dictionary_VR(tag_for_keyword(keyword) or 0)
        if name == "PN":
            return _joined(convert_PN(data, self.encodings))
        if name in _CHARSET_VRS:
            return _joined(convert_text(data, self.encodings, name))
        return _joined(data.decode("latin-1").split("\\"))

    def int(self, keyword: str) -> int | None:
        tag = tag_for_keyword(keyword) or 0
        found = self.raw.values.get(tag)
        if found is None:
            return None
        vr, data = found
        code = _BINARY_INT_VRS.get(vr or dictionary_VR(tag).encode())
        if code:
            if len(data) != struct.calcsize(code):
                return None
            return int(struct.unpack(("<" if self.little else ">") + code, data)[0])
        return _to_int(self.text(keyword))

    def float(self, keyword: str) -> float | None:
        return _to_float(self.text(keyword))

    def multi(self, keyword: str) -> str:
        return _to_multi(self.text(keyword))

    def item(self, keyword: str) -> _Header | None:
        found = self.raw.items.get(tag_for_keyword(keyword) or 0)
        return _RawView(found, self.encodings, self.little) if found else None


def _encodings(raw: RawElements) -> list[str]:
    """The character sets as pydicom reads them (only trailing spaces and NULs go), so that
    both readers decode names alike whatever the file holds."""
    found = raw.values.get(0x00080005)
    if found and found[0] not in (None, b"CS", b"UN"):
        raise Unsupported("SpecificCharacterSet is not CS")  # pydicom says what it makes of it
    value = convert_string(found[1], True) if found else None
    return convert_encodings([value] if isinstance(value, str) else value)


def read_dataset(fp: BinaryIO, specific_tags: list[Any] | None = None) -> Dataset:
    """Read a header up to the pixel data with pydicom, quietly.

    Files without a preamble are accepted only if they start like a dataset.

    Raises
    ------
    HeaderError
        If the file does not look like DICOM.
    """
    with warnings.catch_warnings():
        # pydicom warns about each non-conformance it works around; we take the values.
        warnings.simplefilter("ignore")
        return _read_dataset_quietly(Capped(fp), specific_tags)


class Capped:
    """A file whose reads never ask for more than is left of it, for pydicom: it allocates
    a value's declared length before reading it, and a broken length may say 4 GiB."""

    def __init__(self, fp: BinaryIO) -> None:
        self._fp = fp
        here = fp.tell()
        self._size = fp.seek(0, os.SEEK_END)
        fp.seek(here)

    def read(self, size: int = -1) -> bytes:
        if size > 0:
            size = min(size, max(0, self._size - self._fp.tell()))
        return self._fp.read(size)

    def __getattr__(self, name: str) -> Any:  # seek, tell, name: the file's own
        return getattr(self._fp, name)


def _read_dataset(fp: BinaryIO) -> Dataset:
    return read_dataset(fp, _TAGS)


def _read_dataset_quietly(fp: Any, specific_tags: list[Any] | None) -> Dataset:
    try:
        return dcmread(fp, stop_before_pixels=True, specific_tags=specific_tags)
    except InvalidDicomError:
        pass
    # No preamble: accept a raw dataset only if it starts like one (group 0002 or 0008),
    # so that arbitrary files are not forced into nonsense.
    fp.seek(0)
    start = fp.read(4)
    if len(start) < 4 or start[:2] not in (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08"):
        raise HeaderError("not DICOM (no DICM prefix)")
    fp.seek(0)
    return dcmread(fp, stop_before_pixels=True, specific_tags=specific_tags, force=True)


def _locate_pixels(
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
