"""The header reader against real files: the fast walker agrees with pydicom, names decode
right in every character set, and the recorded pixel data location is where the pixels are."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.encaps import generate_fragments

from tests.conftest import need_shared
from tui.archive.header import HeaderError, read_record, read_record_with_pydicom


def _all_files() -> list[Path]:
    return sorted(p for p in need_shared().rglob("*") if p.is_file())


def _outcome(reader, path: Path):
    try:
        return reader(str(path))
    except (HeaderError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    except Exception as exc:
        return f"error: {type(exc).__name__}"


def test_fast_reader_agrees_with_pydicom_on_every_shared_file() -> None:
    files = _all_files()
    assert len(files) > 500
    differences = []
    for path in files:
        fast, reference = _outcome(read_record, path), _outcome(read_record_with_pydicom, path)
        if fast != reference:
            differences.append(str(path))
    assert differences == []


# Expected names from ../shared/dicom/pydicom_test_files/charset/FileInfo.txt, decoded.
CHARSET_NAMES = {
    "chrArab.dcm": "قباني^لنزار",
    "chrFren.dcm": "Buc^Jérôme",
    "chrGerm.dcm": "Äneas^Rüdiger",
    "chrGreek.dcm": "Διονυσιος",
    "chrH31.dcm": "Yamada^Tarou=山田^太郎=やまだ^たろう",
    "chrH32.dcm": "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう",
    "chrHbrw.dcm": "שרון^דבורה",
    "chrI2.dcm": "Hong^Gildong=洪^吉洞=홍^길동",
    "chrRuss.dcm": "Люкceмбypг",
    "chrX1.dcm": "Wang^XiaoDong=王^小東",
    "chrX2.dcm": "Wang^XiaoDong=王^小东",
}


@pytest.mark.parametrize("name", sorted(CHARSET_NAMES))
def test_patient_names_decode_in_every_character_set(name: str) -> None:
    path = need_shared() / "pydicom_test_files" / "charset" / name
    assert read_record(str(path)).patient_name == CHARSET_NAMES[name]


def test_non_dicom_and_dicomdir_are_refused_with_a_reason() -> None:
    shared = need_shared()
    with pytest.raises(HeaderError, match="not DICOM"):
        read_record(str(shared / "README.md"))
    with pytest.raises(HeaderError, match="DICOMDIR"):
        read_record(str(shared / "pydicom_test_files" / "dicomdir" / "DICOMDIR"))


def test_enhanced_multiframe_geometry_comes_from_functional_groups() -> None:
    folder = need_shared() / "neurolabusc_dcm_qa_xa30"
    path = next(p for p in folder.rglob("*") if p.is_file() and p.suffix not in (".md", ".txt"))
    record = read_record(str(path))
    assert record.frames == 96
    assert [float(v) for v in record.orientation.split("\\")] == [0, 1, 0, 0, 0, -1]
    assert record.pixel_spacing == "2.0\\2.0"
    assert len(record.position.split("\\")) == 3


def _pixel_files() -> list[Path]:
    return [p for p in _all_files() if "malformed" not in str(p)]


def test_pixel_location_points_at_the_pixel_data() -> None:
    checked_native = checked_encapsulated = 0
    for path in _pixel_files():
        try:
            record = read_record(str(path))
        except (HeaderError, OSError):
            continue
        if record.pixels is None:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(path)
        pixel_data = (
            ds.get("PixelData") or ds.get("FloatPixelData") or ds.get("DoubleFloatPixelData")
        )
        if pixel_data is None:
            continue
        raw = path.read_bytes()
        loc = record.pixels
        if loc.length >= 0:
            assert raw[loc.offset : loc.offset + loc.length] == pixel_data, path
            checked_native += 1
        else:
            pairs = struct.unpack(f"<{len(loc.fragments) // 8}Q", loc.fragments)
            ours = [raw[o : o + n] for o, n in zip(pairs[::2], pairs[1::2], strict=True)]
            (bot_length,) = struct.unpack("<L", pixel_data[4:8])
            theirs = list(generate_fragments(pixel_data[8 + bot_length :]))
            assert ours == theirs, path
            checked_encapsulated += 1
    assert checked_native > 100 and checked_encapsulated > 50


def test_a_file_without_pixel_data_longer_than_the_first_read_is_whole(tmp_path: Path) -> None:
    """An encapsulated PDF or a large SR has no pixel data: the walk ends at the file's end,
    which it need not have loaded (a 100 KB document was once refused as cut short)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from tui.archive.elements import ends_whole
    from tui.archive.header import read_record, truncation

    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.104.1"  # Encapsulated PDF Storage
    ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = (generate_uid() for _ in "abc")
    ds.PatientID, ds.Modality = "DOC1", "DOC"
    ds.EncapsulatedDocument = b"%PDF" + bytes(100_000)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    path = tmp_path / "doc.dcm"
    ds.save_as(path, enforce_file_format=True)
    with path.open("rb") as fp:
        assert ends_whole(fp)
    assert truncation(str(path)) is None and read_record(str(path)).sop_uid == ds.SOPInstanceUID
    path.write_bytes(path.read_bytes()[:-10])
    with path.open("rb") as fp:
        assert not ends_whole(fp)
    assert truncation(str(path)) is not None


def test_the_walkers_dictionary_is_pydicoms() -> None:
    """tui.archive.record reads without pydicom, so it carries the tags and VRs it reads."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    from tui.archive.record import DICTIONARY, KEYWORDS, WANTED

    assert {k: (tag_for_keyword(k), dictionary_VR(tag_for_keyword(k))) for k in DICTIONARY} == (
        DICTIONARY
    )
    assert "PerFrameFunctionalGroupsSequence" in KEYWORDS and "TransferSyntaxUID" not in KEYWORDS
    assert set(WANTED) == {DICTIONARY[k][0] for k in KEYWORDS}


def test_ascii_text_decodes_as_pydicom_decodes_it_without_pydicom() -> None:
    """Text in ASCII under the usual character sets is decoded by hand (a C-GET's filing
    never loads pydicom); whatever pydicom would make of it, so does the hand."""
    import random

    from pydicom.values import convert_PN, convert_text

    from tui.archive.record import _Charset, joined

    rng = random.Random(14)
    values = [b"", b" ", b"\x00", b"Doe^John", b"Doe^John ", b"A\\B ", b"\\", b" A \\ B\x00",
              b"Doe^John=", b"x=y=z ", b"\x1b$B", b"caf\xc3\xa9"]  # fmt: skip
    values += [bytes(rng.choice(b"AB^= \\\x00.-1z\t\n\x7f\x01") for _ in range(rng.randint(0, 14)))
               for _ in range(3000)]  # fmt: skip
    for charset in (None, b"ISO_IR 100", b"ISO_IR 192 ", b"ISO_IR 6"):
        held = _Charset(charset)
        for data in values:
            for vr in ("PN", "LO", "SH", "LT"):
                encodings = held.encodings()
                expected = convert_PN(data, encodings) if vr == "PN" else convert_text(
                    data, encodings, vr)  # fmt: skip
                assert held.decoded(data, vr) == joined(expected), (charset, data, vr)
