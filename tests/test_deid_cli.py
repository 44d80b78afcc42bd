"""De-identification through the command line, on archives imported from real files:
``export UID... --dicom --anonymize`` (folder and media) and ``send NODE UID... --anonymize``.

What an output holds is read by dcmtk's ``dcmdump`` (a reader that is not ours), by pydicom
with the output's character set, and by ``pacs-tui import`` into a fresh archive. Source and
output instances are paired by the pseudonym the test computes from the key it gives
(``--key``): the same key gives the same replacement UID in every run.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.charset import convert_encodings, encode_string
from pydicom.dataset import Dataset
from pydicom.fileset import FileSet
from pydicom.uid import UID_dictionary

from tests.conftest import cli_json, need_shared, run_cli
from tests.servers import clear, need_dcmtk, rest
from tests.test_cli import _one_line_error
from tests.test_deid_profile import BOOKKEEPING, NESTED, OPTION_FLAGS, _identified, _tokens
from tui.archive.deid import table
from tui.archive.deid.options import OPTION_NAMES, Options
from tui.archive.deid.profile import effective_action, names_a_kind
from tui.archive.deid.pseudonyms import patient, uid

KEY = b"deid-cli-test-key-0123456789abcd"
US = "deid-data/ultrasound_single_frame/GREYSCALE_IMAGE.dcm"
BANNER = (0, 0, 1024, 24)  # the US's burned-in banner (tests/test_deid_pixels.py)
CT = "pydicom_test_files/grayscale_transfer_syntaxes/CT_small.dcm"
CHARSET = "pydicom_test_files/charset"
# Two files of the set repeat another's SOP Instance UID (the same image in another encoding),
# two are datasets without UIDs (import skips them).
CHARSET_LEFT_OUT = {
    "chrFrenMulti.dcm", "chrJapMultiExplicitIR6.dcm", "chrSQEncoding.dcm", "chrSQEncoding1.dcm",
}  # fmt: skip
J2K_PAIR = (  # a lossy copy whose Source Image Sequence names its lossless original
    "pydicom_test_files/grayscale_transfer_syntaxes/693_J2KI.dcm",
    "pydicom-data/grayscale_codecs/693_J2KR.dcm",
)
ENHANCED = [
    "pydicom-data/enhanced_multiframe/eCT_Supplemental.dcm",
    "pydicom-data/enhanced_multiframe/emri_small_jpeg_2k_lossless.dcm",
    "neurolabusc_dcm_qa_enh/MR_Philips_enhanced_multiframe_fieldmap/IM_0027_fMAP.dcm",
    *(f"neurolabusc_dcm_qa_enh/MR_Siemens_XA10_enhanced_multiframe_fMRI/6_{i}.dcm"
      for i in (1, 2, 3, 4)),
]  # fmt: skip
SEG = "pydicom-data/lut_overlay_seg/liver.dcm"
TWO_STUDIES = "77654033"  # a patient of pydicom's DICOMDIR set with a CR and a CT study
OPTION_COLUMNS = {  # CLI name -> the table's column
    "retain-safe-private": "rtnSafePrivOpt",
    "retain-uids": "rtnUIDsOpt",
    "retain-device": "rtnDevIdOpt",
    "retain-institution": "rtnInstIdOpt",
    "retain-patient-characteristics": "rtnPatCharsOpt",
    "retain-full-dates": "rtnLongFullDatesOpt",
    "retain-shifted-dates": "rtnLongModifDatesOpt",
    "clean-descriptors": "cleanDescOpt",
    "clean-structured-content": "cleanStructContOpt",
    "clean-graphics": "cleanGraphOpt",
}


# -- helpers -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("key") / "deid.key"
    path.write_bytes(KEY)
    return path


def _import(archive: Path, *paths: Path | str) -> None:
    run_cli("import", *(str(p) for p in paths), archive=archive)


def _studies(archive: Path, *extra: str) -> list[str]:
    return [row["StudyInstanceUID"] for row in cli_json("ls", *extra, archive=archive)]


def _export(
    archive: Path,
    uids: list[str],
    out: Path,
    key: Path,
    options: str = "",
    *extra: str,
    check: bool = True,
) -> dict[str, Any]:
    """``export UID... --dicom -o OUT --anonymize=OPTIONS --key KEY [extra] --json``."""
    result = run_cli(
        "export", *uids, "--dicom", "-o", str(out), f"--anonymize={options}", "--key", str(key),
        *extra, "--json", archive=archive, check=check,
    )  # fmt: skip
    report = json.loads(result.stdout) if result.stdout.strip() else {}
    return {"rc": result.returncode, "stderr": result.stderr, **report}


def _outputs(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != "DICOMDIR")


def _by_source(root: Path, sources: list[Path], every: bool = True) -> dict[Path, Path]:
    """Each source's output, found by the pseudonym of its SOP Instance UID (``every``:
    every output is one of theirs)."""
    wanted = {uid(KEY, str(pydicom.dcmread(s, stop_before_pixels=True).SOPInstanceUID)): s
              for s in sources}  # fmt: skip
    found = {}
    for path in _outputs(root):
        sop = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        assert sop in wanted or not every, f"{path}: {sop} is no source's pseudonym"
        if sop in wanted:
            found[wanted[sop]] = path
    return found


def _dump(path: Path, utf8: bool = True) -> subprocess.CompletedProcess[bytes]:
    """dcmtk's dump of ``path``: every value whole, as UTF-8 text with ``utf8``."""
    args = [need_dcmtk("dcmdump"), "-q", "+L", *(["+U8"] if utf8 else []), str(path)]
    return subprocess.run(args, capture_output=True, timeout=60)


def _dump_text(path: Path) -> str:
    done = _dump(path)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode("utf-8")


def _pixels_equal(a: Path, b: Path) -> bool:
    return np.array_equal(pydicom.dcmread(a).pixel_array, pydicom.dcmread(b).pixel_array)


def _uid_pairs(source: Dataset, output: Dataset, where: str = "") -> list[tuple[str, str, str]]:
    """(path, source UID, output UID) of every UID value found at the same place in both."""
    pairs = []
    for elem in source:
        if elem.tag not in output:
            continue
        after = output[elem.tag]
        path = f"{where}{elem.keyword or elem.tag}"
        if elem.VR == "SQ" and after.VR == "SQ":
            for i, (a, b) in enumerate(zip(elem.value or [], after.value or [], strict=False)):
                pairs += _uid_pairs(a, b, f"{path}[{i}].")
        elif elem.VR == "UI" and elem.value:
            before = elem.value if isinstance(elem.value, list | tuple) else [elem.value]
            now = after.value if isinstance(after.value, list | tuple) else [after.value]
            pairs += [(path, str(x), str(y)) for x, y in zip(before, now, strict=False)]
    return pairs


def _consistent(pairs: list[tuple[str, str, str]]) -> dict[str, str]:
    """The replacement of every instance UID of ``pairs``: one per original, never the
    original, never another original's; well-known UIDs (SOP classes, codes) and those of
    attributes naming a kind (Creator-Version UID: the software's version) kept."""
    seen: dict[str, set[str]] = defaultdict(set)
    for path, before, after in pairs:
        keyword = path.rsplit(".", 1)[-1]
        if before in UID_dictionary or before.startswith("1.2.840.10008.") or names_a_kind(keyword):
            assert after == before, (path, before, after)
            continue
        assert after != before, f"{path}: {before} kept"
        assert after.startswith("2.25."), (path, after)
        seen[before].add(after)
    inconsistent = {before: after for before, after in seen.items() if len(after) > 1}
    assert not inconsistent, inconsistent
    mapping = {before: next(iter(after)) for before, after in seen.items()}
    assert len(set(mapping.values())) == len(mapping), "two originals share a replacement"
    return mapping


# -- the generated file: a value in every attribute of the table --------------------------------


@pytest.fixture(scope="module")
def every(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(archive, source file, study UID) of the file with a distinct identifying value in
    every attribute of Table E.1-1 (at the top and nested), a private block, an overlay and
    a curve (built by tests/test_deid_profile.py)."""
    folder = tmp_path_factory.mktemp("every")
    source = _identified(folder / "every.dcm")
    archive = folder / "archive"
    _import(archive, source)
    return archive, source, str(pydicom.dcmread(source).StudyInstanceUID)


def test_every_attribute_file_leaves_nothing_that_dcmdump_can_see(
    every: tuple[Path, Path, str], key_file: Path, tmp_path: Path
) -> None:
    archive, source, study = every
    # Folder only: pydicom's DICOMDIR records choose their type by content (Encapsulated
    # Document, RT Plan Label...), which this file, holding every attribute, cannot pass.
    for kind, extra in (("folder", []),):
        out = tmp_path / kind
        summary = _export(archive, [study], out, key_file, "", *extra)
        assert summary["rc"] == 0 and summary["hits"] == [] and summary["instances"] == 1
        tokens = _tokens(pydicom.dcmread(source))
        seen = _dump_text(source)
        visible = {token for token in tokens if token in seen}
        assert len(visible) > 600 and len(visible) >= 0.9 * len(tokens)  # the dump shows them
        written = _outputs(out)
        assert len(written) == 1
        for path in written:
            text = _dump_text(path)
            assert [t for t in sorted(visible) if t in text] == [], path
            data = path.read_bytes()
            assert [t for t in sorted(tokens) if t.encode("latin-1") in data] == [], path


def _levels(ds: Dataset) -> list[Dataset]:
    return [ds, ds[NESTED].value[0]] if NESTED in ds else [ds]


def _signature(ds: Dataset) -> dict[tuple[int, int], str]:
    return {
        (level, int(elem.tag)): str(elem) if elem.VR != "SQ" else repr([str(i) for i in elem.value])
        for level, where in enumerate(_levels(ds))
        for elem in where
        if elem.tag not in BOOKKEEPING and elem.tag != NESTED
    }


@pytest.fixture(scope="module")
def basic_every(
    every: tuple[Path, Path, str], key_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Dataset:
    archive, _, study = every
    out = tmp_path_factory.mktemp("basic") / "out"
    assert _export(archive, [study], out, key_file)["rc"] == 0
    return pydicom.dcmread(_outputs(out)[0])


@pytest.mark.parametrize("name", list(OPTION_COLUMNS))
def test_each_option_keeps_exactly_what_its_column_says(
    every: tuple[Path, Path, str], basic_every: Dataset, key_file: Path, tmp_path: Path, name: str
) -> None:
    assert set(OPTION_COLUMNS) == set(OPTION_NAMES)
    archive, source_path, study = every
    column = OPTION_COLUMNS[name]
    index = table.OPTIONS.index(column)
    summary = _export(archive, [study], tmp_path / "out", key_file, name)
    assert summary["rc"] == 0 and summary["hits"] == [], summary
    result = pydicom.dcmread(_outputs(tmp_path / "out")[0])
    source = pydicom.dcmread(source_path)
    options = Options(**OPTION_FLAGS[column])  # type: ignore[arg-type]
    basic, flipped = _signature(basic_every), _signature(result)
    changed = {key for key in set(basic) | set(flipped) if basic.get(key) != flipped.get(key)}
    expected, kept = set(), set()
    for level, (where, after) in enumerate(zip(_levels(source), _levels(result), strict=True)):
        for elem in where:
            tag = int(elem.tag)
            if tag in table.ATTRIBUTES:
                code = table.ATTRIBUTES[tag][1][index]
                if code != ".":
                    expected.add((level, tag))
                if code == "K" and effective_action(tag, options) == "K":
                    kept.add((level, tag))
                    assert tag in after, (level, elem)
                    if elem.VR == "SQ":  # K keeps a sequence, the profile cleans its items
                        assert len(after[tag].value) == len(elem.value), (level, elem)
                    else:
                        assert after[tag].value == elem.value, (level, elem)
            elif elem.tag.is_private and column == "rtnSafePrivOpt":
                block = (elem.tag.group, elem.tag.element >> 8)
                creator = elem.value if elem.tag.element <= 0xFF else where[block].value
                if effective_action(tag, options, creator) == "K":
                    expected.add((level, tag))
                    kept.add((level, tag))
                    assert tag in after and after[tag].value == elem.value, (level, elem)
            elif elem.tag.group & 0xFF01 in (0x5000, 0x6000) and column == "cleanGraphOpt":
                expected.add((level, tag))
    assert expected, name
    assert changed == expected, (sorted(changed - expected), sorted(expected - changed))
    if column not in ("cleanDescOpt", "cleanStructContOpt", "cleanGraphOpt",
                      "rtnLongModifDatesOpt"):  # fmt: skip
        assert kept, name  # the retain options keep values as they were


# -- real files ----------------------------------------------------------------------------------


def _name_parts(ds: Dataset) -> set[str]:
    parts = set()
    for elem in ds.iterall():
        if elem.VR == "PN" and elem.value:
            for value in elem.value if isinstance(elem.value, list | tuple) else [elem.value]:
                parts.update(p for p in re.split(r"[\^=]", str(value)) if len(p.strip()) > 1)
    return {p.strip() for p in parts}


def _encoded(part: str, ds: Dataset) -> bytes:
    """``part`` in ``ds``'s character set, escape sequences left out (ISO 2022 puts one
    before a run of characters, not before each name)."""
    declared = ds.get("SpecificCharacterSet", "ISO_IR 6")
    charsets = convert_encodings([declared] if isinstance(declared, str) else list(declared))
    data = encode_string(part, charsets)
    return re.sub(rb"\x1b[\x24\x28\x29\x2d][\x28\x29\x2d]?[\x40-\x7e]", b"", data)


def test_names_in_many_scripts_go(key_file: Path, tmp_path: Path) -> None:
    folder = need_shared() / CHARSET
    sources = [p for p in sorted(folder.glob("chr*.dcm")) if p.name not in CHARSET_LEFT_OUT]
    archive = tmp_path / "archive"
    _import(archive, *sources)
    out = tmp_path / "out"
    summary = _export(archive, _studies(archive), out, key_file, "", "--allow-burned-in")
    assert summary["rc"] == 0 and summary["instances"] == len(sources) and summary["hits"] == []
    scripts = set()
    for src, written in _by_source(out, sources).items():
        source = pydicom.dcmread(src)
        parts = _name_parts(source)
        assert parts, src.name
        scripts |= {p for p in parts if not p.isascii()}
        # pydicom, decoding with the output's character set
        result = pydicom.dcmread(written)
        assert result.get("SpecificCharacterSet") == source.get("SpecificCharacterSet")
        text = "\n".join(str(e.value) for e in result.iterall() if e.VR != "SQ")
        assert [p for p in parts if p in text or p.upper() in text.upper()] == [], src.name
        # dcmtk, as UTF-8 where its iconv converts the character set, else as the bytes
        dumped = _dump(written)
        if dumped.returncode == 0:
            assert [p for p in parts if p in dumped.stdout.decode("utf-8")] == [], src.name
        else:
            assert b"Cannot open character encoding" in dumped.stderr, dumped.stderr
            raw = _dump(written, utf8=False)
            assert raw.returncode == 0, raw.stderr
            before = _dump(src, utf8=False).stdout
            assert [p for p in parts if _encoded(p, source) in before], src.name
            assert [p for p in parts if _encoded(p, source) in raw.stdout] == [], src.name
        assert result.PatientIdentityRemoved == "YES"
        assert str(result.PatientName) == patient(KEY, str(source.PatientID))[1] or str(
            result.PatientName
        ).startswith("ANON")
    # Japanese, Korean, Chinese, Cyrillic, Arabic, Greek, Hebrew, accented Latin
    assert len(scripts) >= 15, scripts


def test_enhanced_multiframe_uids_are_replaced_consistently(key_file: Path, tmp_path: Path) -> None:
    shared = need_shared()
    sources = [shared / name for name in ENHANCED]
    archive = tmp_path / "archive"
    _import(archive, *sources)
    out = tmp_path / "out"
    summary = _export(archive, _studies(archive), out, key_file)
    assert summary["rc"] == 0 and summary["instances"] == len(sources), summary
    pairs = []
    nested = Counter()
    for src, written in _by_source(out, sources).items():
        source, result = pydicom.dcmread(src), pydicom.dcmread(written)
        found = _uid_pairs(source, result)
        pairs += found
        nested.update(p.split("[")[0] for p, _, _ in found if "FunctionalGroupsSequence" in p)
        if "PerFrameFunctionalGroupsSequence" in source:  # not in the small enhanced MR
            per_frame = source.PerFrameFunctionalGroupsSequence
            assert len(result.PerFrameFunctionalGroupsSequence) == len(per_frame) > 1
        assert int(result.NumberOfFrames) == int(source.NumberOfFrames)
        assert _pixels_equal(src, written), src.name
        assert result.file_meta.TransferSyntaxUID == source.file_meta.TransferSyntaxUID
    mapping = _consistent(pairs)
    # the shared groups' references (Siemens, Philips) and the eCT's irradiation event
    assert nested["SharedFunctionalGroupsSequence"] >= 4, nested
    # one Frame of Reference, study and series for the four Siemens instances
    siemens = [pydicom.dcmread(p) for s, p in _by_source(out, sources).items() if "XA10" in str(s)]
    assert len({str(ds.FrameOfReferenceUID) for ds in siemens}) == 1
    assert len({str(ds.SeriesInstanceUID) for ds in siemens}) == 1
    original = pydicom.dcmread(sources[-1])
    assert siemens[0].FrameOfReferenceUID == mapping[str(original.FrameOfReferenceUID)]
    assert siemens[0].StudyInstanceUID == uid(KEY, str(original.StudyInstanceUID))


def _referenced_ct(seg: Dataset, folder: Path) -> list[Path]:
    """The CT images the SEG was made from, which the shared data lacks: the real CT_small
    file given each referenced instance's UIDs and the SEG's study, patient and frame of
    reference."""
    series = seg.ReferencedSeriesSequence[0]
    made = []
    for n, item in enumerate(series.ReferencedInstanceSequence):
        ds = pydicom.dcmread(need_shared() / CT)
        ds.SOPInstanceUID = item.ReferencedSOPInstanceUID
        ds.file_meta.MediaStorageSOPInstanceUID = item.ReferencedSOPInstanceUID
        ds.SeriesInstanceUID = series.SeriesInstanceUID
        ds.StudyInstanceUID = seg.StudyInstanceUID
        ds.FrameOfReferenceUID = seg.FrameOfReferenceUID
        ds.PatientID, ds.PatientName = seg.PatientID, seg.PatientName
        ds.InstanceNumber = n + 1
        path = folder / f"ct{n}.dcm"
        ds.save_as(path)
        made.append(path)
    return made


def test_references_of_a_seg_and_a_derived_image_follow_their_images(
    key_file: Path, tmp_path: Path
) -> None:
    shared = need_shared()
    seg_path = shared / SEG
    seg = pydicom.dcmread(seg_path)
    cts = _referenced_ct(seg, tmp_path)
    lossy, lossless = (shared / name for name in J2K_PAIR)
    sources = [seg_path, *cts, lossy, lossless]
    archive = tmp_path / "archive"
    _import(archive, *sources)
    out = tmp_path / "out"
    summary = _export(archive, _studies(archive), out, key_file)
    assert summary["rc"] == 0 and summary["instances"] == 6, summary
    outputs = {src: pydicom.dcmread(path) for src, path in _by_source(out, sources).items()}
    new_seg = outputs[seg_path]
    new_cts = {str(pydicom.dcmread(c).SOPInstanceUID): outputs[c] for c in cts}
    # the SEG names the new CT instances, in its references and in every frame
    series = new_seg.ReferencedSeriesSequence[0]
    assert {str(ct.SeriesInstanceUID) for ct in new_cts.values()} == {str(series.SeriesInstanceUID)}
    assert {str(i.ReferencedSOPInstanceUID) for i in series.ReferencedInstanceSequence} == {
        str(ct.SOPInstanceUID) for ct in new_cts.values()
    }
    frames = zip(seg.PerFrameFunctionalGroupsSequence, new_seg.PerFrameFunctionalGroupsSequence,
                 strict=True)  # fmt: skip
    for before, after in frames:
        was = before.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        now = after.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        assert now == new_cts[str(was)].SOPInstanceUID != was
    for ct in new_cts.values():
        assert ct.StudyInstanceUID == new_seg.StudyInstanceUID != seg.StudyInstanceUID
        assert ct.FrameOfReferenceUID == new_seg.FrameOfReferenceUID != seg.FrameOfReferenceUID
        assert ct.PatientID == new_seg.PatientID
    # the lossy copy names its new lossless original
    reference = outputs[lossy].SourceImageSequence[0].ReferencedSOPInstanceUID
    assert reference == outputs[lossless].SOPInstanceUID
    assert outputs[lossy].SeriesInstanceUID == outputs[lossless].SeriesInstanceUID
    _consistent([p for src, ds in outputs.items() for p in _uid_pairs(pydicom.dcmread(src), ds)])
    assert _pixels_equal(seg_path, _by_source(out, [seg_path], every=False)[seg_path])


def test_burned_in_ultrasound_refused_then_blanked_or_allowed(
    key_file: Path, tmp_path: Path
) -> None:
    shared = need_shared()
    us, ct = shared / US, shared / CT
    archive = tmp_path / "archive"
    _import(archive, us, ct)
    us_uid = str(pydicom.dcmread(us, stop_before_pixels=True).SOPInstanceUID)
    us_study = str(pydicom.dcmread(us, stop_before_pixels=True).StudyInstanceUID)
    # refused with the reason, exit 1; the rest goes
    refused = _export(archive, _studies(archive), tmp_path / "a", key_file, check=False)
    assert refused["rc"] == 1
    assert refused["refused"] == [{"SOPInstanceUID": us_uid, "reason": "BurnedInAnnotation is YES"}]
    assert refused["instances"] == 1 and [*_by_source(tmp_path / "a", [ct])] == [ct]
    text = run_cli("export", us_study, "--dicom", "-o", str(tmp_path / "b"), "--anonymize",
                   archive=archive, check=False)  # fmt: skip
    assert text.returncode == 1 and text.stdout == ""  # all refused: nothing is written
    assert text.stderr == (
        f"pacs-tui: error: nothing written: every instance was refused ({us_uid}:"
        " BurnedInAnnotation is YES)\n"
    )
    assert not (tmp_path / "b").exists()
    # blanked: the banner is zero, the rest of the image as it was
    blanked = _export(archive, [us_study], tmp_path / "c", key_file, "",
                      "--blank", ",".join(map(str, BANNER)))  # fmt: skip
    assert blanked["rc"] == 0 and blanked["refused"] == [] and blanked["instances"] == 1
    written = _by_source(tmp_path / "c", [us])[us]
    before = pydicom.dcmread(us).pixel_array
    after = pydicom.dcmread(written)
    pixels = after.pixel_array
    x, y, w, h = BANNER
    assert before[y : y + h, x : x + w].any() and not pixels[y : y + h, x : x + w].any()
    assert np.array_equal(pixels[y + h :], before[y + h :])
    assert after.BurnedInAnnotation == "NO"
    assert "113101" in [i.CodeValue for i in after.DeidentificationMethodCodeSequence]
    # let through as it is
    allowed = _export(archive, [us_study], tmp_path / "d", key_file, "", "--allow-burned-in")
    assert allowed["rc"] == 0 and allowed["refused"] == []
    assert _pixels_equal(us, _by_source(tmp_path / "d", [us])[us])


# -- re-import, consistency across runs ----------------------------------------------------------


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """An archive of pydicom's DICOMDIR set (two patients, CR, CT, MR studies) and a JPEG
    2000 pair (lossless and lossy); the source files."""
    shared = need_shared()
    archive = tmp_path_factory.mktemp("mixed") / "archive"
    pair = [shared / name for name in J2K_PAIR]
    _import(archive, shared / "pydicom_test_files" / "dicomdir" / "DICOMDIR", *pair)
    files = [Path(r["path"]) for r in cli_json("ls", "--level", "instance", archive=archive)]
    assert len(files) == 33
    return archive, files


def _shape(archive: Path) -> dict[str, list[int]]:
    """The tree without its identifiers: instance counts by patient, study and series."""
    return {
        level: sorted(r[key] for r in cli_json("ls", "--level", level, archive=archive))
        for level, key in (
            ("patient", "NumberOfPatientRelatedInstances"),
            ("study", "NumberOfStudyRelatedInstances"),
            ("series", "NumberOfSeriesRelatedInstances"),
        )
    }


def _uids(archive: Path) -> set[str]:
    rows = cli_json("ls", "--level", "instance", archive=archive)
    return {r[k] for r in rows for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")}


def test_reimport_same_tree_new_uids_same_pixels(
    mixed: tuple[Path, list[Path]], key_file: Path, tmp_path: Path
) -> None:
    archive, files = mixed
    out, again = tmp_path / "out", tmp_path / "again"
    summary = _export(archive, _studies(archive), out, key_file)
    assert summary["rc"] == 0 and summary["instances"] == len(files) and summary["hits"] == []
    imported = cli_json("import", str(out), archive=again)
    assert imported["new"] == len(files) and imported["skipped"] == 0
    assert _shape(again) == _shape(archive)
    assert _uids(again).isdisjoint(_uids(archive))
    assert len(cli_json("ls", "--level", "patient", archive=again)) == 3
    paired = _by_source(out, files)
    assert len(paired) == len(files)
    for src, written in paired.items():
        assert _pixels_equal(src, written), src
    # the same key, another run: the same UIDs
    second = tmp_path / "second"
    _export(archive, _studies(archive), second, key_file)
    assert _uids(again) == {
        str(getattr(pydicom.dcmread(p, stop_before_pixels=True), k))
        for p in _outputs(second)
        for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
    }
    # another key: other UIDs
    other_key = tmp_path / "other.key"
    other_key.write_bytes(b"another key of sixteen bytes or more")
    third = tmp_path / "third"
    cli_json("export", *_studies(archive), "--dicom", "-o", str(third), "--anonymize",
             "--key", str(other_key), archive=archive)  # fmt: skip
    assert cli_json("import", str(third), archive=tmp_path / "third-archive")["new"] == len(files)
    assert _uids(tmp_path / "third-archive").isdisjoint(_uids(again))


def _day(value: str) -> date:
    return date(int(value[:4]), int(value[4:6]), int(value[6:8]))


def test_two_studies_of_a_patient_in_separate_runs(
    mixed: tuple[Path, list[Path]], key_file: Path, tmp_path: Path
) -> None:
    archive, files = mixed
    studies = _studies(archive, "--patient-id", TWO_STUDIES)
    assert len(studies) == 2
    results = []
    for n, study in enumerate(studies):
        out = tmp_path / f"run{n}"
        assert _export(archive, [study], out, key_file, "retain-shifted-dates")["rc"] == 0
        written = _outputs(out)
        assert written
        results.append(pydicom.dcmread(written[0], stop_before_pixels=True))
    sources = {str(ds.StudyInstanceUID): ds for ds in
               (pydicom.dcmread(p, stop_before_pixels=True) for p in files)}  # fmt: skip
    first, second = (sources[s] for s in studies)
    assert results[0].PatientID == results[1].PatientID == patient(KEY, TWO_STUDIES)[0]
    assert results[0].StudyDate != first.StudyDate and results[1].StudyDate != second.StudyDate
    assert _day(results[0].StudyDate) - _day(results[1].StudyDate) == _day(first.StudyDate) - _day(
        second.StudyDate
    )
    assert results[0].LongitudinalTemporalInformationModified == "MODIFIED"


def test_patient_map_names_the_new_patient(
    mixed: tuple[Path, list[Path]], key_file: Path, tmp_path: Path
) -> None:
    archive, _ = mixed
    mapping = tmp_path / "map.csv"
    mapping.write_text(f"original_id,new_id,new_name\n{TWO_STUDIES},TRIAL-001,TRIAL^ONE\n")
    out = tmp_path / "out"
    summary = _export(archive, _studies(archive), out, key_file, "", "--map", str(mapping))
    assert summary["rc"] == 0
    people = Counter(
        (ds.PatientID, str(ds.PatientName))
        for ds in (pydicom.dcmread(p, stop_before_pixels=True) for p in _outputs(out))
    )
    others = {patient(KEY, "98890234"): 24, patient(KEY, "CQ500-CT-310"): 2}
    assert people == {("TRIAL-001", "TRIAL^ONE"): 7, **others}, people
    bad = tmp_path / "bad.csv"
    bad.write_text("P1,X\\1\n")
    result = run_cli("export", *_studies(archive), "--dicom", "-o", str(tmp_path / "x"),
                     "--anonymize", "--map", str(bad), archive=archive, check=False)  # fmt: skip
    _one_line_error(result, "not a DICOM value")
    assert not (tmp_path / "x").exists()


# -- the verification pass fails loudly --------------------------------------------------------


def test_a_name_left_in_a_kept_attribute_fails_the_export(key_file: Path, tmp_path: Path) -> None:
    """Retain Device Identity keeps Station Name (K); a station named after the patient
    still identifies them: the verification pass must find it, and nothing is written."""
    ds = pydicom.dcmread(need_shared() / CT)
    family = str(ds.PatientName.family_name)
    assert len(family) > 5
    ds.StationName = f"CT-{family.upper()}"
    assert effective_action(0x00081010, Options(retain_device_identity=True)) == "K"
    path = tmp_path / "ct.dcm"
    ds.save_as(path)
    archive = tmp_path / "archive"
    _import(archive, path)
    out = tmp_path / "out"
    failed = _export(archive, _studies(archive), out, key_file, "retain-device", check=False)
    assert failed["rc"] != 0 and failed["output"] is None
    assert [(h["file"], h["path"]) for h in failed["hits"]] == [
        ("PT000000/ST000000/SE000000/IM000000", "StationName")
    ]
    assert family in failed["hits"][0]["identifier"]
    assert "StationName" in failed["stderr"] and "identifying values survived" in failed["stderr"]
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".partial-" in p.name]
    # the basic profile removes Station Name: the same export passes
    assert _export(archive, _studies(archive), out, key_file)["rc"] == 0


def test_the_audit_fails_an_export_whose_transform_did_nothing(tmp_path: Path) -> None:
    from tui.archive.deid.verify import audit
    from tui.archive.index import Archive
    from tui.archive.media import VerificationFailed, export, select

    archive = tmp_path / "archive"
    _import(archive, need_shared() / CT)
    with Archive(archive) as opened:
        rows = select(opened, _studies(archive))
    target = tmp_path / "out.zip"
    with pytest.raises(VerificationFailed, match="identifying values survived") as failed:
        export(rows, target, "zip", transform=lambda ds: None, audit=audit(Options()))
    paths = {hit["path"] for hit in failed.value.report.hits}
    assert {"PatientName", "PatientID", "StudyInstanceUID", "SOPInstanceUID"} <= paths
    assert "MediaStorageSOPInstanceUID" in paths  # the file meta is read too
    assert {hit["file"] for hit in failed.value.report.hits} == {
        "PT000000/ST000000/SE000000/IM000000"
    }
    assert not target.exists() and not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


# -- media ---------------------------------------------------------------------------------------


def test_anonymized_media_read_by_pydicom_our_import_and_dcmtk(
    mixed: tuple[Path, list[Path]], key_file: Path, tmp_path: Path
) -> None:
    archive, files = mixed
    media = tmp_path / "media"
    summary = _export(archive, _studies(archive), media, key_file, "", "--dicomdir")
    assert summary["rc"] == 0 and summary["kind"] == "media"
    fs = FileSet(media / "DICOMDIR")
    assert len(fs) == len(files)
    new_patients = {patient(KEY, p)[0] for p in (TWO_STUDIES, "98890234", "CQ500-CT-310")}
    assert {str(i.PatientID) for i in fs} == new_patients
    for instance in fs:
        assert pydicom.dcmread(instance.path).SOPInstanceUID == instance.SOPInstanceUID
    ours = cli_json("import", str(media / "DICOMDIR"), archive=tmp_path / "again")
    assert ours["dicomdirs"] == 1 and ours["new"] == len(files)
    assert _shape(tmp_path / "again") == _shape(archive)
    text = _dump_text(media / "DICOMDIR")
    assert text.count("DirectoryRecordType") >= len(files) + summary["series"] + 2
    originals = {
        str(getattr(pydicom.dcmread(p, stop_before_pixels=True), k, ""))
        for p in files
        for k in ("PatientID", "StudyInstanceUID", "SOPInstanceUID")
    }
    names = set().union(*(_name_parts(pydicom.dcmread(p, stop_before_pixels=True))
                          for p in files))  # fmt: skip
    assert [v for v in originals | names if v and v in text] == []


# -- send --------------------------------------------------------------------------------------


def test_send_anonymized_to_orthanc(orthanc: Any, key_file: Path, tmp_path: Path) -> None:
    shared = need_shared()
    sources = [*sorted((shared / CHARSET).glob("chr[GHRX]*.dcm")), shared / CT]
    us = shared / US
    archive = tmp_path / "archive"
    _import(archive, *sources, us)
    clear(orthanc)
    run_cli("node", "add", "pacs", orthanc.aet, orthanc.host, str(orthanc.port))
    studies = _studies(archive)
    result = run_cli("send", "pacs", *studies, "--anonymize", "--allow-burned-in", "--key",
                     str(key_file), "--json", archive=archive)  # fmt: skip
    summary = json.loads(result.stdout)
    assert summary["sent"] == len(sources) + 1 and summary["refused"] == []
    expected = {patient(KEY, str(pydicom.dcmread(p).PatientID))[0] for p in [*sources, us]}
    ids = {rest(orthanc, f"/patients/{p}")["MainDicomTags"]["PatientID"]
           for p in rest(orthanc, "/patients")}  # fmt: skip
    assert ids == expected
    names = set().union(*(_name_parts(pydicom.dcmread(p)) for p in [*sources, us]))
    originals = {str(getattr(pydicom.dcmread(p), k)) for p in [*sources, us]
                 for k in ("StudyInstanceUID", "SOPInstanceUID")}  # fmt: skip
    for instance in rest(orthanc, "/instances"):
        tags = json.dumps(rest(orthanc, f"/instances/{instance}/simplified-tags"),
                          ensure_ascii=False)  # fmt: skip
        assert [n for n in names if n in tags] == [], instance
        assert [u for u in originals if u in tags] == [], instance
    # without --allow-burned-in the ultrasound (BurnedInAnnotation YES) and the secondary
    # captures of the character-set files (a kind that carries text) are refused, with the
    # reason; the CT is sent
    clear(orthanc)
    refused = run_cli("send", "pacs", *studies, "--anonymize", "--key", str(key_file), "--json",
                      archive=archive, check=False)  # fmt: skip
    assert refused.returncode == 1
    summary = json.loads(refused.stdout)
    assert summary["sent"] == 1 and summary["failed"] == []
    reasons = sorted(line.split(": ", 1)[1] for line in summary["refused"])
    assert len(reasons) == len(sources) and reasons[0] == "BurnedInAnnotation is YES", reasons
    assert all("Secondary Capture" in reason for reason in reasons[1:]), reasons
    assert len(rest(orthanc, "/instances")) == 1


def test_anonymized_media_of_a_report_and_an_rt_plan(key_file: Path, tmp_path: Path) -> None:
    """Instances whose DICOMDIR record is not an IMAGE one (SR DOCUMENT, RT PLAN) on media."""
    folder = need_shared() / "pydicom_test_files" / "multiframe_and_non_image_sop"
    sources = [folder / "reportsi.dcm", folder / "rtplan.dcm"]
    archive = tmp_path / "archive"
    _import(archive, *sources)
    media = tmp_path / "media"
    summary = _export(archive, _studies(archive), media, key_file, "", "--dicomdir", check=False)
    assert summary["rc"] == 0, summary["stderr"]
    fs = FileSet(media / "DICOMDIR")
    assert sorted(str(i.DirectoryRecordType) for i in fs) == ["RT PLAN", "SR DOCUMENT"]
    for instance in fs:
        assert Path(instance.path).is_file(), instance.FileID
    assert len(_by_source(media, sources)) == 2
    assert "DirectoryRecordType" in _dump_text(media / "DICOMDIR")
