"""Read what the index needs from one file's header, without decoding pixels.

Runs in import worker processes, so it returns plain picklable records. The
element walker reads most files (:mod:`tui.archive.record`, which also defines the
record and the rules for UIDs); what it cannot read is read here with pydicom up to the
pixel data, and the pixel data element itself is then located by hand (its value offset
and length, and for encapsulated transfer syntaxes each fragment's offset) so a viewer
can read any frame later without parsing the header again.
"""

from __future__ import annotations

import os
import struct
import warnings
from typing import Any, BinaryIO

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag

from tui.archive import elements, pydicom_setup  # noqa: F401  (pydicom as we read with it)
from tui.archive.elements import Truncated, Unsupported
from tui.archive.record import (
    CUT_SHORT,
    KEYWORDS,
    MEDIA_STORAGE_DIRECTORY,
    Header,
    HeaderError,
    InstanceRecord,
    Parts,
    PixelLocation,
    joined,
    locate_pixels,
    read_whole,
    record_of,
    to_float,
    to_int,
    to_multi,
    uid_problem,
    walked,
    without_controls,
)

__all__ = [
    "CUT_SHORT", "MEDIA_STORAGE_DIRECTORY", "Capped", "HeaderError", "InstanceRecord",
    "PixelLocation", "read_arrival", "read_dataset", "read_record", "read_record_with_pydicom",
    "truncation", "uid_problem", "without_controls",
]  # fmt: skip

_TAGS = [Tag(k) for k in KEYWORDS]


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
            parts = walked(fp, st.st_size)
        except Truncated as exc:  # what is there may still name the instance
            fp.seek(0)
            try:
                parts = _parsed(fp, st.st_size)
                return record_of(path, st, *parts)
            except Exception:  # pydicom raises many types for a header cut short
                raise HeaderError(f"truncated: {exc}") from None
        except Unsupported:
            fp.seek(0)
            parts = _parsed(fp, st.st_size)
    return record_of(path, st, *parts)


def read_arrival(path: str) -> InstanceRecord:
    """:func:`read_record` of a file that came over the network, which must be whole.

    :func:`tui.archive.record.read_whole` reads it where the walker can (one walk for the
    record and the check); otherwise :func:`elements.ends_whole` checks it and
    :func:`read_record` reads it, as any file.

    Raises
    ------
    HeaderError
        As :func:`read_record`, and when the file is cut short (:data:`CUT_SHORT`).
    OSError
        If the file cannot be read.
    """
    record = read_whole(path)
    if record is not None:
        return record
    with open(path, "rb") as fp:
        try:
            if not elements.ends_whole(fp):
                raise HeaderError(CUT_SHORT)
        except Unsupported:  # pydicom reads it, as it reads any such file
            pass
    return read_record(path)


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
            pixels = walked(fp, size)[2]
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
    return record_of(path, st, *parts)


def _parsed(fp: BinaryIO, file_size: int) -> Parts:
    """Header, file meta and pixel location from pydicom."""
    ds = _read_dataset(fp)
    meta = _DatasetView(ds.file_meta) if hasattr(ds, "file_meta") else _DatasetView(ds)
    implicit, little = ds.original_encoding
    pixels = None
    if implicit is not None and meta.text("TransferSyntaxUID") != elements.DEFLATED:
        pixels = locate_pixels(fp, implicit, bool(little), file_size)
    return _DatasetView(ds), meta, pixels


class _DatasetView:
    """:class:`Header` over a pydicom Dataset."""

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds

    def _value(self, keyword: str) -> Any:
        try:
            return self.ds.get(keyword)
        except Exception:
            return None  # a value pydicom cannot convert counts as absent

    def text(self, keyword: str) -> str:
        return joined(self._value(keyword))

    def int(self, keyword: str) -> int | None:
        value = self._value(keyword)
        return value if isinstance(value, int) else to_int(joined(value))

    def float(self, keyword: str) -> float | None:
        return to_float(joined(self._value(keyword)))

    def multi(self, keyword: str) -> str:
        return to_multi(joined(self._value(keyword)))

    def item(self, keyword: str) -> Header | None:
        try:
            return _DatasetView(self.ds[keyword][0])
        except (KeyError, IndexError, TypeError):
            return None


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
