"""A read-and-changed dataset back to Part 10 bytes, its unchanged elements as they were read.

``Dataset.save_as`` converts and re-encodes every element, about 40 µs each: for a CT
slice of a hundred elements it costs more than reading the file and de-identifying it
together (``benchmarks/bench_deid.py``). An element still raw (read from the file, or put
as encoded bytes by the de-identifier) is written here as its header and the very bytes
read; the rest (sequences, values of undefined length, anything pydicom converted) go
through pydicom's own element writer. When the dataset's encoding or character set was
changed since it was read, pydicom writes it all, as it must re-encode every value.
"""

from __future__ import annotations

import copy
import struct

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.tag import Tag
from pydicom.uid import UID

# Explicit VRs whose length is 4 bytes after 2 reserved ones (PS3.5 Table 7.1-1).
_LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
_UNDEFINED = 0xFFFFFFFF


def encode(ds: Dataset) -> bytes:
    """``ds`` as a Part 10 file (preamble, file meta, dataset), in its file meta's syntax.

    Parameters
    ----------
    ds : Dataset
        A dataset read from a file, perhaps changed since; its ``file_meta`` says the
        transfer syntax.

    Returns
    -------
    bytes
        What ``ds.save_as(..., enforce_file_format=True)`` writes.
    """
    syntax = UID(ds.file_meta.TransferSyntaxUID)
    implicit, little = syntax.is_implicit_VR, syntax.is_little_endian
    same = (implicit, little) == ds.original_encoding and (
        ds.original_character_set == ds._character_set
    )
    if not same or not little or syntax.is_deflated:
        fp = DicomBytesIO()
        ds.save_as(fp, enforce_file_format=True)
        return fp.getvalue()
    fp = DicomBytesIO()
    fp.write(bytes(ds.preamble or b"\x00" * 128) + b"DICM")
    meta = copy.deepcopy(ds.file_meta)  # as dcmwrite does: the meta names this instance
    for keyword, value in (("MediaStorageSOPClassUID", "SOPClassUID"),
                           ("MediaStorageSOPInstanceUID", "SOPInstanceUID")):  # fmt: skip
        if value in ds:
            meta[keyword] = DataElement(Tag(keyword), "UI", ds[value].value)
    write_file_meta_info(fp, meta, enforce_standard=True)
    fp.is_implicit_VR, fp.is_little_endian = implicit, little
    charset = ds.get("SpecificCharacterSet", "iso8859")
    elements = ds._dict
    for tag in sorted(elements):
        if tag.element == 0 and tag.group > 6:
            continue  # retired group lengths, as pydicom leaves them out
        elem = elements[tag]
        if isinstance(elem, RawDataElement) and _raw_fits(elem, implicit):
            fp.write(_header(elem, implicit))
            fp.write(elem.value or b"")
        else:
            write_data_element(fp, ds[tag], charset)
    return fp.getvalue()


def _raw_fits(elem: RawDataElement, implicit: bool) -> bool:
    """Whether the raw ``elem`` can be copied as it is into a file of this encoding."""
    if elem.is_implicit_VR != implicit or not elem.is_little_endian:
        return False
    if elem.length == _UNDEFINED or elem.VR == "SQ" or len(elem.value or b"") & 1:
        return False
    return implicit or (
        elem.VR is not None and (elem.VR in _LONG_VRS or len(elem.value or b"") < 0x10000)
    )


def _header(elem: RawDataElement, implicit: bool) -> bytes:
    tag, length = elem.tag, len(elem.value or b"")
    if implicit:
        return struct.pack("<HHI", tag.group, tag.element, length)
    vr = str(elem.VR).encode("ascii")
    if elem.VR in _LONG_VRS:
        return struct.pack("<HH2sHI", tag.group, tag.element, vr, 0, length)
    return struct.pack("<HH2sH", tag.group, tag.element, vr, length)
