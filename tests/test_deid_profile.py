"""The PS3.15 Basic Profile engine: every attribute of Table E.1-1, the options, pseudonyms.

The main dataset holds a distinct value in every attribute of the table that pydicom's
dictionary knows (at the top and again inside a sequence), a private block, an overlay and a
curve; it is written to a file and read back, so the engine works on undecoded elements as
it does in an export.
"""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from datetime import date
from pathlib import Path

import pydicom
import pytest
from pydicom.datadict import DicomDictionary
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from tests.conftest import need_shared
from tui.archive.deid import table
from tui.archive.deid.options import Options
from tui.archive.deid.pixels import Refused
from tui.archive.deid.profile import SAFE_PRIVATE, Deidentifier, effective_action, shift_date
from tui.archive.deid.pseudonyms import DeidError, load_key, load_map

KEY = b"k" * 32
NESTED = 0x0040A375  # Current Requested Procedure Evidence Sequence: not in the table
SKIPPED_GROUPS = (0x0000, 0x0002, 0xFFFC)  # commands, file meta, trailing padding
BOOKKEEPING = {0x00120063, 0x00120064, 0x00280303}  # what every option changes on purpose


def _value(vr: str, n: int) -> object:
    """A value for VR ``vr`` that no other attribute holds and no replacement can equal."""
    day = date.fromordinal(date(1950, 1, 1).toordinal() + 7 * n)
    return {
        "PN": f"FAM{n:04d}Q^GIVEN{n:04d}Q",
        "DA": day.strftime("%Y%m%d"),
        "DT": day.strftime("%Y%m%d") + f"1200{n % 60:02d}.{n:06d}",
        "TM": f"{10 + n % 12:02d}{n % 60:02d}00.{n:06d}",
        "UI": f"1.2.826.0.1.3680043.9.7777.{10000 + n}",
        "AE": f"AE{n:04d}Q",
        "AS": f"{n % 100:03d}Y",
        "UR": f"http://id{n:04d}q.example",
        "DS": str(1000 + n),
        "IS": str(1000 + n),
        "US": 1000 + n,
        "OB": f"BIN{n:04d}Q".encode(),
        "UN": f"BIN{n:04d}Q".encode(),
    }.get(vr, f"ID{n:04d}Q")


def _reference(n: int) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = CTImageStorage
    item.ReferencedSOPInstanceUID = _value("UI", n)
    return item


def _fill(ds: Dataset, start: int) -> None:
    for n, tag in enumerate(sorted(table.ATTRIBUTES), start):
        if tag >> 16 in SKIPPED_GROUPS or tag not in DicomDictionary:
            continue
        vr = DicomDictionary[tag][0]
        if vr == "SQ":
            ds.add_new(tag, vr, [_reference(n)])
        else:
            ds.add_new(tag, vr, _value(vr, n))


def _identified(path: Path) -> Path:
    """Write the dataset that identifies in every attribute of the table."""
    ds = Dataset()
    _fill(ds, 0)
    nested = Dataset()
    _fill(nested, 1000)
    ds.add_new(NESTED, "SQ", [nested])
    ds.SOPClassUID = CTImageStorage
    ds.BurnedInAnnotation = "NO"
    ds.Modality = "CT"
    ds.SpecificCharacterSet = "ISO_IR 100"
    block = ds.private_block(0x0009, "ACME 1.0", create=True)
    block.add_new(0x01, "LO", "PRIVATE2000Q")
    safe = ds.private_block(0x0019, "SIEMENS MR HEADER", create=True)
    safe.add_new(0x0C, "IS", "1000")
    ds.add_new(0x60000010, "US", 8)  # Overlay Rows
    ds.add_new(0x60000022, "LO", "OVERLAY2001Q")  # Overlay Description
    ds.add_new(0x60003000, "OW", b"OVERLAY2002Q")  # Overlay Data
    ds.add_new(0x50002500, "LO", "CURVE2003Q")  # Curve Label
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.SourceApplicationEntityTitle = "SOURCE2004Q"
    ds.save_as(path, enforce_file_format=True)
    return path


def _tokens(ds: Dataset) -> set[str]:
    """The searchable identifying values of ``ds``: texts, dates, UIDs, names' parts."""
    found: set[str] = set()
    for elem in ds.iterall():
        if elem.VR in ("US", "SS", "UL", "FL", "FD", "IS", "DS", "AS", "SQ"):
            continue
        values = elem.value if isinstance(elem.value, list | tuple) else [elem.value]
        for value in values:
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            text = str(value).strip("\x00 ")
            if elem.VR == "PN":
                found.update(part for part in text.split("^") if part)
            elif (len(text) >= 6 and "Q" in text) or elem.VR in ("DA", "DT", "UI"):
                found.add(text)
    return {token for token in found if token and token != CTImageStorage}


def _apply(path: Path, options: Options, key: bytes = KEY, out: Path | None = None) -> Dataset:
    ds = pydicom.dcmread(path)
    Deidentifier(options, key).apply(ds)
    if out is not None:
        ds.save_as(out, enforce_file_format=True)
        return pydicom.dcmread(out)
    return ds


@pytest.fixture
def identified(tmp_path: Path) -> Path:
    return _identified(tmp_path / "identified.dcm")


def test_no_identifying_value_survives_the_basic_profile(identified: Path, tmp_path: Path):
    source = pydicom.dcmread(identified)
    tokens = _tokens(source)
    assert len(tokens) > 600  # the table's texts, dates and UIDs, twice
    out = tmp_path / "out.dcm"
    result = _apply(identified, Options(), out=out)
    data = out.read_bytes()
    survivors = sorted(token for token in tokens if token.encode("latin-1") in data)
    assert survivors == []
    # Numbers and ages too: every attribute of the table is gone, empty or replaced.
    for where, original, after in (
        (source, source, result),
        ("nested", source[NESTED].value[0], result[NESTED].value[0]),
    ):
        for elem in original:
            if elem.tag in table.ATTRIBUTES and elem.tag in after:
                value = after[elem.tag].value
                assert not value or value != elem.value, (where, elem.tag, value)
    assert not [elem for elem in result if elem.tag.is_private]
    assert not [elem for elem in result if elem.tag.group in (0x5000, 0x6000)]
    assert result.PatientIdentityRemoved == "YES"
    assert result.LongitudinalTemporalInformationModified == "REMOVED"
    assert [item.CodeValue for item in result.DeidentificationMethodCodeSequence] == ["113100"]
    meta = result.file_meta
    assert meta.MediaStorageSOPInstanceUID == result.SOPInstanceUID != source.SOPInstanceUID
    assert meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert "SourceApplicationEntityTitle" not in meta
    assert result.preamble == b"\x00" * 128
    # The Basic Profile's combinations, resolved as documented.
    assert result.ReferencedImageSequence[0].ReferencedSOPInstanceUID.startswith("2.25.")
    assert result.ReferencedImageSequence[0].ReferencedSOPClassUID == CTImageStorage
    assert "InstitutionName" not in result  # X/Z/D, Type 3 in General Equipment
    assert result.ContentDate == "19000101"  # Z/D, Type 1 in SR and enhanced images
    assert "AcquisitionContextSequence" in result and not result.AcquisitionContextSequence
    assert len(result.ContentSequence) == 1 and len(result.ContentSequence[0]) == 0  # D


OPTION_FLAGS = {
    "rtnSafePrivOpt": {"retain_safe_private": True},
    "rtnUIDsOpt": {"retain_uids": True},
    "rtnDevIdOpt": {"retain_device_identity": True},
    "rtnInstIdOpt": {"retain_institution_identity": True},
    "rtnPatCharsOpt": {"retain_patient_characteristics": True},
    "rtnLongFullDatesOpt": {"dates": "full"},
    "rtnLongModifDatesOpt": {"dates": "shifted"},
    "cleanDescOpt": {"clean_descriptors": True},
    "cleanStructContOpt": {"clean_structured_content": True},
    "cleanGraphOpt": {"clean_graphics": True},
}


def _signature(ds: Dataset) -> dict[tuple[int, int], str]:
    """(level, tag) -> the value's repr, at the top and in the nested copy."""
    levels = [ds, ds[NESTED].value[0]] if NESTED in ds else [ds]
    return {
        (level, int(elem.tag)): str(elem) if elem.VR != "SQ" else repr([str(i) for i in elem.value])
        for level, where in enumerate(levels)
        for elem in where
        if elem.tag not in BOOKKEEPING and elem.tag != NESTED
    }


@pytest.mark.parametrize("column", list(OPTION_FLAGS))
def test_each_option_flips_exactly_the_attributes_its_column_names(identified: Path, column: str):
    index = table.OPTIONS.index(column)
    basic = _signature(_apply(identified, Options()))
    with_option = _signature(_apply(identified, Options(**OPTION_FLAGS[column])))
    changed = {
        key for key in set(basic) | set(with_option) if basic.get(key) != with_option.get(key)
    }
    source = pydicom.dcmread(identified)
    expected = set()
    for level, where in enumerate([source, source[NESTED].value[0]]):
        for elem in where:
            tag = int(elem.tag)
            if tag in table.ATTRIBUTES:
                if table.ATTRIBUTES[tag][1][index] != ".":
                    expected.add((level, tag))
            elif elem.tag.is_private and column == "rtnSafePrivOpt":
                block = (elem.tag.group, elem.tag.element >> 8)
                creator = elem.value if elem.tag.element <= 0xFF else where[block].value
                if effective_action(tag, Options(retain_safe_private=True), creator) == "K":
                    expected.add((level, tag))
            elif elem.tag.group & 0xFF01 in (0x5000, 0x6000) and column == "cleanGraphOpt":
                expected.add((level, tag))  # the overlay and the curve stay with Clean Graphics
    assert expected, column
    assert changed == expected


def test_effective_action_resolves_combinations_and_options():
    basic = Options()
    assert effective_action(0x00100010, basic) == "Z"  # Patient's Name
    assert effective_action(0x00080080, basic) == "X"  # Institution Name, X/Z/D, Type 3
    assert effective_action(0x00080080, Options(retain_institution_identity=True)) == "K"
    assert effective_action(0x00080023, basic) == "D"  # Content Date, Z/D, Type 1 in SR
    assert effective_action(0x00100020, basic) == "Z"  # Patient ID, Z/D, Type 2
    assert effective_action(0x00081140, basic) == "U"  # Referenced Image Sequence, X/Z/U*
    assert effective_action(0x00082111, basic) == "X"  # Derivation Description
    assert effective_action(0x00082111, Options(clean_descriptors=True)) == "C"
    assert effective_action(0x0020000D, Options(retain_uids=True)) == "K"
    assert effective_action(0x00080022, Options(dates="shifted")) == "C"
    assert effective_action(0x00080022, Options(dates="full")) == "K"
    # Two options: Retain Device Identity keeps a calibration date, Modified Dates shifts it.
    both = Options(retain_device_identity=True, dates="shifted")
    assert effective_action(0x00181200, both) == "C"
    assert effective_action(0x00181200, Options(retain_device_identity=True)) == "K"
    assert effective_action(0x60024000, basic) == "X"  # Overlay Comments of group 6002
    assert effective_action(0x60024000, Options(clean_graphics=True)) == "C"
    assert effective_action(0x50100005, basic) == "X"  # any curve element
    assert effective_action(0x00280010, basic) is None  # Rows: no row, kept
    safe = Options(retain_safe_private=True)
    assert effective_action(0x0019100C, safe, "SIEMENS MR HEADER") == "K"
    assert effective_action(0x0019100C, basic, "SIEMENS MR HEADER") == "X"
    assert effective_action(0x00191010, safe, "SIEMENS MR HEADER") == "X"
    assert effective_action(0x00091001, safe, "ACME 1.0") == "X"
    assert len(SAFE_PRIVATE) >= 20


def _study(path: Path, patient: str, study_date: str, instance: str, referenced: str = "") -> Path:
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = instance
    ds.StudyInstanceUID = instance + ".0"
    ds.SeriesInstanceUID = instance + ".1"
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.9.7777.555"
    ds.PatientID = patient
    ds.PatientName = "DOE^JANE"
    ds.StudyDate = study_date
    ds.SeriesDate = study_date
    ds.AcquisitionDateTime = study_date + "101500.5"
    ds.StudyTime = "101500"
    ds.Modality = "CT"
    if referenced:
        ds.ReferencedImageSequence = [_reference(0)]
        ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID = referenced
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = instance
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return path


def test_uids_are_consistent_per_key_and_references_follow(tmp_path: Path):
    scout = _study(tmp_path / "scout.dcm", "P1", "20200301", "1.2.826.0.1.3680043.9.7777.1")
    slice_ = _study(
        tmp_path / "slice.dcm",
        "P1",
        "20200301",
        "1.2.826.0.1.3680043.9.7777.2",
        referenced="1.2.826.0.1.3680043.9.7777.1",
    )
    first = _apply(scout, Options(), out=tmp_path / "a.dcm")
    again = _apply(scout, Options(), out=tmp_path / "b.dcm")  # another Deidentifier, same key
    other = _apply(scout, Options(), key=b"another key, 16+ bytes", out=tmp_path / "c.dcm")
    assert first.SOPInstanceUID == again.SOPInstanceUID != other.SOPInstanceUID
    assert first.StudyInstanceUID == again.StudyInstanceUID != other.StudyInstanceUID
    for uid in (first.SOPInstanceUID, first.StudyInstanceUID, first.FrameOfReferenceUID):
        assert uid.startswith("2.25.") and len(uid) <= 64 and int(uid[5:]) < 2**128
    referring = _apply(slice_, Options(), out=tmp_path / "d.dcm")
    assert referring.ReferencedImageSequence[0].ReferencedSOPInstanceUID == first.SOPInstanceUID
    assert referring.FrameOfReferenceUID == first.FrameOfReferenceUID
    assert referring.file_meta.MediaStorageSOPInstanceUID == referring.SOPInstanceUID
    assert first.PatientID == referring.PatientID == again.PatientID != other.PatientID
    assert first.PatientID.startswith("ANON") and len(first.PatientID) == 14
    kept = _apply(scout, Options(retain_uids=True))
    assert kept.SOPInstanceUID == "1.2.826.0.1.3680043.9.7777.1"


def test_shifted_dates_keep_the_intervals_of_one_patient(tmp_path: Path):
    one = _study(tmp_path / "1.dcm", "P1", "20200301", "1.2.826.0.1.3680043.9.7777.1")
    two = _study(tmp_path / "2.dcm", "P1", "20210615", "1.2.826.0.1.3680043.9.7777.2")
    stranger = _study(tmp_path / "3.dcm", "P2", "20200301", "1.2.826.0.1.3680043.9.7777.3")
    shifted = Options(dates="shifted")
    a = _apply(one, shifted)
    b = Deidentifier(shifted, KEY)  # another run
    second = pydicom.dcmread(two)
    b.apply(second)
    c = _apply(stranger, shifted)

    def day(value: str) -> date:
        return date(int(value[:4]), int(value[4:6]), int(value[6:8]))

    assert a.StudyDate != "20200301" and day(a.StudyDate) < date(2020, 3, 1)
    assert (date(2020, 3, 1) - day(a.StudyDate)).days <= 3650
    assert day(second.StudyDate) - day(a.StudyDate) == date(2021, 6, 15) - date(2020, 3, 1)
    assert a.SeriesDate == a.StudyDate and a.AcquisitionDateTime == a.StudyDate + "101500.5"
    assert a.StudyTime == "101500"  # whole days: times stay
    assert c.StudyDate != a.StudyDate  # another patient, another offset (a 1 in 3650 chance)
    assert a.LongitudinalTemporalInformationModified == "MODIFIED"
    assert "113107" in [item.CodeValue for item in a.DeidentificationMethodCodeSequence]
    full = _apply(one, Options(dates="full"))
    assert (
        full.StudyDate == "20200301"
        and full.LongitudinalTemporalInformationModified == "UNMODIFIED"
    )
    assert shift_date("20200301-20200305", 1) == "20200229-20200304"
    assert (
        shift_date("2020", 400) == "2018"
        and shift_date("20200301120000+0100", 1) == "20200229120000+0100"
    )
    assert shift_date("garbage", 1) == ""


def test_patient_map(tmp_path: Path):
    mapping_file = tmp_path / "map.csv"
    mapping_file.write_text(
        "original_id,new_id,new_name\nP1,TRIAL-001,TRIAL^ONE\nP2,TRIAL-002\n", encoding="utf-8"
    )
    mapping = load_map(mapping_file)
    assert mapping == {"P1": ("TRIAL-001", "TRIAL^ONE"), "P2": ("TRIAL-002", "TRIAL-002")}
    one = pydicom.dcmread(
        _study(tmp_path / "1.dcm", "P1", "20200301", "1.2.826.0.1.3680043.9.7777.1")
    )
    Deidentifier(Options(), KEY, mapping).apply(one)
    assert (one.PatientID, str(one.PatientName)) == ("TRIAL-001", "TRIAL^ONE")
    three = pydicom.dcmread(
        _study(tmp_path / "3.dcm", "P3", "20200301", "1.2.826.0.1.3680043.9.7777.3")
    )
    Deidentifier(Options(), KEY, mapping).apply(three)
    assert three.PatientID.startswith("ANON")  # not in the map: derived from the key
    headerless = tmp_path / "bare.csv"
    headerless.write_text("P1,X1,DOE^X\n\n", encoding="utf-8")
    assert load_map(headerless) == {"P1": ("X1", "DOE^X")}
    for text, why in (
        ("P1,X1,N,extra\n", "4 fields"),
        ("P1\n", "1 fields"),
        (",X1\n", "must not be empty"),
        ("P1,X1\nP1,X2\n", "listed twice"),
        ("P1,X\\1\n", "not a DICOM value"),
    ):
        bad = tmp_path / "bad.csv"
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(DeidError, match=why):
            load_map(bad)
    bad.write_bytes(b"P1,\xff\xfe\n")
    with pytest.raises(DeidError, match="not UTF-8"):
        load_map(bad)
    with pytest.raises(DeidError, match="cannot read"):
        load_map(tmp_path / "missing.csv")


def test_load_key(tmp_path: Path):
    config = tmp_path / "config"
    key = load_key(None, config)
    path = config / "deid.key"
    assert len(key) == 32 and path.read_bytes() == key
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_key(None, config) == key  # kept, not made again
    given = tmp_path / "given.key"
    given.write_bytes(b"0123456789abcdef")
    assert load_key(given, config) == b"0123456789abcdef"
    given.write_bytes(b"short")
    with pytest.raises(DeidError, match="5 bytes"):
        load_key(given, config)
    with pytest.raises(DeidError, match="cannot read"):
        load_key(tmp_path / "missing.key", config)
    path.write_bytes(b"")  # an empty default key is filled
    assert len(load_key(None, config)) == 32


def test_clean_descriptors_cut_identifying_values_out(tmp_path: Path):
    path = _study(tmp_path / "1.dcm", "P12345", "20200301", "1.2.826.0.1.3680043.9.7777.1")
    ds = pydicom.dcmread(path)
    ds.PatientName = "Van Der Berg^Johanna"
    ds.StudyDescription = "CT head for johanna van der berg P12345 (Li)"
    ds.SeriesDescription = "AXIAL 5mm"
    ds.InstitutionName = "St Elsewhere"
    ds.ImageComments = "seen at st elsewhere"
    ds.save_as(path)
    result = _apply(path, Options(clean_descriptors=True))
    assert result.SeriesDescription == "AXIAL 5mm"
    description = result.StudyDescription.lower()
    for word in ("johanna", "van", "berg", "p12345"):
        assert word not in description
    assert description.startswith("ct head for")
    assert "elsewhere" not in result.ImageComments.lower()
    basic = _apply(path, Options())
    assert "StudyDescription" not in basic and "SeriesDescription" not in basic


def test_retain_safe_private_keeps_the_safe_block_only(identified: Path):
    result = _apply(identified, Options(retain_safe_private=True))
    private = {int(elem.tag): elem.value for elem in result if elem.tag.is_private}
    assert private == {0x00190010: "SIEMENS MR HEADER", 0x0019100C: "1000"}


def test_clean_graphics_keeps_overlays_with_their_text_cleaned(identified: Path):
    result = _apply(identified, Options(clean_graphics=True))
    assert result[0x60003000].value == b"OVERLAY2002Q"
    assert result[0x60000022].value == "OVERLAY2001Q"  # nothing identifying in it


def test_real_files_with_names_in_many_scripts(tmp_path: Path):
    charset = need_shared() / "pydicom_test_files" / "charset"
    files = sorted(charset.glob("chr*.dcm"))
    assert len(files) >= 10
    deid = Deidentifier(Options(allow_burned_in=True), KEY)  # secondary captures among them
    for path in files:
        source = pydicom.dcmread(path)
        names = {str(elem.value) for elem in source.iterall() if elem.VR == "PN" and elem.value}
        parts = {
            part
            for name in names
            for part in str(name).replace("=", "^").split("^")
            if len(part) > 1
        }
        assert parts, path.name
        ds = pydicom.dcmread(path)
        deid.apply(ds)
        out = tmp_path / path.name
        ds.save_as(out)
        again = pydicom.dcmread(out)
        text = " ".join(str(elem.value) for elem in again.iterall() if elem.VR != "SQ")
        assert not [part for part in parts if part in text], path.name
        assert again.PatientIdentityRemoved == "YES"


def test_burned_in_is_refused_unless_allowed(tmp_path: Path):
    us = need_shared() / "deid-data" / "ultrasound_single_frame" / "GREYSCALE_IMAGE.dcm"
    with pytest.raises(Refused):
        Deidentifier(Options(), KEY).apply(pydicom.dcmread(us))
    ds = pydicom.dcmread(us)
    Deidentifier(Options(allow_burned_in=True), KEY).apply(ds)
    assert ds.PatientIdentityRemoved == "YES"


def test_options_of_a_deidentifier_are_listed_in_the_method(identified: Path):
    options = replace(Options(), retain_uids=True, clean_descriptors=True, dates="full")
    result = _apply(identified, options)
    codes = [item.CodeValue for item in result.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113110", "113105", "113106"]
    assert "Retain UIDs Option" in result.DeidentificationMethod


def test_every_transfer_syntax_round_trips_with_the_same_pixels(tmp_path: Path):
    shared = need_shared()
    files = sorted((shared / "pydicom_test_files" / "grayscale_transfer_syntaxes").glob("*.dcm"))
    files += sorted((shared / "pydicom-data" / "enhanced_multiframe").glob("*.dcm"))
    assert len(files) >= 15
    deid = Deidentifier(Options(allow_burned_in=True), KEY)  # secondary captures too
    for path in files:
        source = pydicom.dcmread(path)
        ds = pydicom.dcmread(path)
        deid.apply(ds)
        out = tmp_path / path.name
        ds.save_as(out)
        again = pydicom.dcmread(out)
        assert again.file_meta.TransferSyntaxUID == source.file_meta.TransferSyntaxUID, path.name
        assert again.PixelData == source.PixelData, path.name
        assert again.file_meta.MediaStorageSOPInstanceUID == again.SOPInstanceUID
        # The UIDs the table lists (instances, series, frames of reference...), at any depth.
        listed = {
            str(e.value) for e in source.iterall() if e.VR == "UI" and e.tag in table.ATTRIBUTES
        }
        after = {str(e.value) for e in again.iterall() if e.VR == "UI" and e.value}
        assert listed and not listed & after, path.name
        assert str(again.PatientName).startswith("ANON"), path.name


def test_a_cleaned_descriptor_loses_dates_written_as_text() -> None:
    """Clean Descriptors keeps the text but not a date in it, in any usual writing, unless
    full dates are kept; the verification pass looks for those writings too."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    from tui.archive.deid.verify import identifying_values, search
    from tui.archive.encode import encode

    def source() -> Dataset:
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", "1.2.3.4"
        ds.PatientID, ds.StudyDate = "PID-1234", "20230105"
        ds.ImageComments = "prior 2023-01-05, also 05/01/2023 and 5 Jan 2023; lesion stable"
        return ds

    for dates, kept in (("remove", False), ("shifted", False), ("full", True)):
        options = Options(clean_descriptors=True, dates=dates)  # type: ignore[arg-type]
        ds = source()
        values = identifying_values(ds, options)
        Deidentifier(options, b"k" * 32).apply(ds)
        text = str(ds.ImageComments)
        assert "lesion stable" in text
        assert ("2023-01-05" in text) is kept and ("Jan 2023" in text) is kept, text
        assert not [h for h in search(encode(ds), values) if h.identifier.kind == "date"]
    # a date left as text is found by the verification pass
    ds = source()
    values = identifying_values(ds, Options())
    Deidentifier(Options(), b"k" * 32).apply(ds)
    ds.ImageComments = "prior 05.01.2023"
    assert [h.path for h in search(encode(ds), values)] == ["ImageComments"]
