"""Our de-identification beside Orthanc's (``POST /instances/{id}/anonymize`` with the default
body, on a real Orthanc 1.10) on the same files: for every attribute of each source, each
tool's action (kept, emptied, removed, replaced); every attribute where they differ must be
explained below, or the test fails and names it.

The explanations are rules that must hold of the attribute (its row in our table, its row in
Orthanc's) and a short table by keyword. Whatever the rule, our own action must be the one our
table gives (an attribute we treat otherwise than E.1-1 says is a defect, not a difference).

Orthanc 1.10.1 applies PS3.15-2021b Table E.1-1 (its default ``DicomVersion``), generated into
``OrthancFramework/Sources/DicomParsing/DicomModification_Anonymization2021b.impl.h``: the
attributes it clears (the Z and D rows, and Z/D), removes (X and the other combinations) and
maps to new UIDs (U) are copied below from that file of the Orthanc-1.10.1 release; our table
is the standard's web edition of January 2025 (``tools/make_deid_table.py``).
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pydicom
import pydicom.filebase
import pytest
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from tests.conftest import cli_json, need_shared, run_cli
from tests.servers import clear, upload
from tests.test_deid_profile import _identified
from tui.archive.deid import table
from tui.archive.deid.options import Options
from tui.archive.deid.profile import effective_action
from tui.archive.deid.pseudonyms import uid

KEY = b"deid-orthanc-test-key-0123456789"
REAL = [
    "pydicom_test_files/grayscale_transfer_syntaxes/CT_small.dcm",
    "neurolabusc_dcm_qa_enh/MR_Siemens_XA10_enhanced_multiframe_fMRI/6_1.dcm",
    "pydicom_test_files/multiframe_and_non_image_sop/reportsi.dcm",
    "pydicom_test_files/charset/chrX1.dcm",
]

# PS3.15-2021b Table E.1-1 as Orthanc 1.10.1 applies it (see the module's docstring).
# fmt: off
ORTHANC_CLEARS = frozenset(
    {
    0x00080020, 0x00080023, 0x00080030, 0x00080033, 0x00080050, 0x00080090, 0x0008009C,
    0x00100030, 0x00100040, 0x00120010, 0x00120020, 0x00120021, 0x00120030, 0x00120031,
    0x00120040, 0x00120042, 0x00120050, 0x00120060, 0x00120081, 0x00180010, 0x001811BB,
    0x00189367, 0x00189369, 0x0018936A, 0x00189371, 0x00200010, 0x00340001, 0x00340002,
    0x00340005, 0x00340007, 0x003A0314, 0x00400512, 0x00400513, 0x00400551, 0x00400562,
    0x00400610, 0x00401101, 0x00402016, 0x00402017, 0x0040A027, 0x0040A073, 0x0040A075,
    0x0040A088, 0x0040A123, 0x0040A730, 0x00700001, 0x00700084, 0x30060002, 0x30060008,
    0x30060009, 0x30060026, 0x300600A6, 0x300A0002, 0x300A0608, 0x300A0611, 0x300A0615,
    0x300A0619, 0x300A0623, 0x300A062A, 0x300A067C, 0x300A067D, 0x300A0734, 0x300A0736,
    0x300A073A, 0x300A0741, 0x300A0742, 0x300A0760, 0x300A0783, 0x3010000F, 0x30100017,
    0x3010001B, 0x3010002D, 0x30100033, 0x30100034, 0x30100035, 0x30100038, 0x30100043,
    0x30100054, 0x3010005A, 0x3010005C, 0x30100077, 0x3010007A, 0x3010007B, 0x3010007F,
    0x30100081,
    }
)
ORTHANC_REMOVES = frozenset(
    {
    0x00001000, 0x00080015, 0x00080021, 0x00080022, 0x00080024, 0x00080025, 0x0008002A,
    0x00080031, 0x00080032, 0x00080034, 0x00080035, 0x00080080, 0x00080081, 0x00080082,
    0x00080092, 0x00080094, 0x00080096, 0x0008009D, 0x00080201, 0x00081010, 0x00081030,
    0x0008103E, 0x00081040, 0x00081041, 0x00081048, 0x00081049, 0x00081050, 0x00081052,
    0x00081060, 0x00081062, 0x00081070, 0x00081072, 0x00081080, 0x00081084, 0x00081110,
    0x00081111, 0x00081120, 0x00082111, 0x00084000, 0x00100021, 0x00100032, 0x00100050,
    0x00100101, 0x00100102, 0x00101000, 0x00101001, 0x00101002, 0x00101005, 0x00101010,
    0x00101020, 0x00101030, 0x00101040, 0x00101050, 0x00101060, 0x00101080, 0x00101081,
    0x00101090, 0x00101100, 0x00102000, 0x00102110, 0x00102150, 0x00102152, 0x00102154,
    0x00102155, 0x00102160, 0x00102180, 0x001021A0, 0x001021B0, 0x001021C0, 0x001021D0,
    0x001021F0, 0x00102203, 0x00102297, 0x00102299, 0x00104000, 0x00120051, 0x00120071,
    0x00120072, 0x00120082, 0x0016002B, 0x0016004B, 0x0016004D, 0x0016004E, 0x0016004F,
    0x00160050, 0x00160051, 0x00160070, 0x00160071, 0x00160072, 0x00160073, 0x00160074,
    0x00160075, 0x00160076, 0x00160077, 0x00160078, 0x00160079, 0x0016007A, 0x0016007B,
    0x0016007C, 0x0016007D, 0x0016007E, 0x0016007F, 0x00160080, 0x00160081, 0x00160082,
    0x00160083, 0x00160084, 0x00160085, 0x00160086, 0x00160087, 0x00160088, 0x00160089,
    0x0016008A, 0x0016008B, 0x0016008C, 0x0016008D, 0x0016008E, 0x00181000, 0x00181004,
    0x00181005, 0x00181007, 0x00181008, 0x00181009, 0x0018100A, 0x00181030, 0x00181400,
    0x00184000, 0x00185011, 0x0018700A, 0x00189185, 0x00189373, 0x0018937B, 0x0018937F,
    0x00189424, 0x00189516, 0x00189517, 0x00189937, 0x0018A003, 0x00203401, 0x00203406,
    0x00204000, 0x00209158, 0x00284000, 0x00320012, 0x00321020, 0x00321021, 0x00321030,
    0x00321032, 0x00321033, 0x00321060, 0x00321066, 0x00321067, 0x00321070, 0x00324000,
    0x00380004, 0x00380010, 0x00380011, 0x00380014, 0x0038001E, 0x00380020, 0x00380021,
    0x00380040, 0x00380050, 0x00380060, 0x00380061, 0x00380062, 0x00380064, 0x00380300,
    0x00380400, 0x00380500, 0x00384000, 0x00400001, 0x00400002, 0x00400003, 0x00400004,
    0x00400005, 0x00400006, 0x00400007, 0x00400009, 0x0040000B, 0x00400010, 0x00400011,
    0x00400012, 0x00400241, 0x00400242, 0x00400243, 0x00400244, 0x00400245, 0x00400250,
    0x00400251, 0x00400253, 0x00400254, 0x00400275, 0x00400280, 0x00400310, 0x0040050A,
    0x0040051A, 0x00400555, 0x00400600, 0x00400602, 0x004006FA, 0x00401001, 0x00401002,
    0x00401004, 0x00401005, 0x0040100A, 0x00401010, 0x00401011, 0x00401102, 0x00401103,
    0x00401104, 0x00401400, 0x00402001, 0x00402008, 0x00402009, 0x00402010, 0x00402011,
    0x00402400, 0x00403001, 0x00404005, 0x00404008, 0x00404010, 0x00404011, 0x00404025,
    0x00404027, 0x00404028, 0x00404030, 0x00404034, 0x00404035, 0x00404036, 0x00404037,
    0x00404050, 0x00404051, 0x00404052, 0x0040A078, 0x0040A07A, 0x0040A07C, 0x0040A192,
    0x0040A193, 0x0040A307, 0x0040A352, 0x0040A353, 0x0040A354, 0x0040A358, 0x0050001B,
    0x00500020, 0x00500021, 0x00700086, 0x00880200, 0x00880904, 0x00880906, 0x00880910,
    0x00880912, 0x04000402, 0x04000403, 0x04000404, 0x04000550, 0x04000551, 0x04000552,
    0x04000561, 0x04000600, 0x20300020, 0x22000002, 0x22000005, 0x30060004, 0x30060006,
    0x30060028, 0x30060038, 0x30060085, 0x30060088, 0x30080054, 0x30080056, 0x30080105,
    0x30080250, 0x30080251, 0x300A0003, 0x300A0004, 0x300A0006, 0x300A0007, 0x300A000E,
    0x300A0016, 0x300A0072, 0x300A00B2, 0x300A00C3, 0x300A00DD, 0x300A0196, 0x300A01A6,
    0x300A01B2, 0x300A0216, 0x300A02EB, 0x300A0676, 0x300C0113, 0x300E0008, 0x30100036,
    0x30100037, 0x3010004C, 0x3010004D, 0x30100056, 0x30100061, 0x40000010, 0x40004000,
    0x40080042, 0x40080102, 0x4008010A, 0x4008010B, 0x4008010C, 0x40080111, 0x40080114,
    0x40080115, 0x40080118, 0x40080119, 0x4008011A, 0x40080202, 0x40080300, 0x40084000,
    0xFFFAFFFA, 0xFFFCFFFC,
    }
)
ORTHANC_MAPS = frozenset(
    {
    0x00001001, 0x00020003, 0x00041511, 0x00080014, 0x00080058, 0x00081155, 0x00081195,
    0x00083010, 0x00181002, 0x0018100B, 0x00182042, 0x00200052, 0x00200200, 0x00209161,
    0x00209164, 0x00281199, 0x00281214, 0x003A0310, 0x00400554, 0x00404023, 0x0040A124,
    0x0040A171, 0x0040A172, 0x0040A402, 0x0040DB0C, 0x0040DB0D, 0x00620021, 0x0070031A,
    0x00701101, 0x00701102, 0x00880140, 0x04000100, 0x30060024, 0x300600C2, 0x300A0013,
    0x300A0083, 0x300A0609, 0x300A0650, 0x300A0700, 0x30100006, 0x3010000B, 0x30100013,
    0x30100015, 0x30100031, 0x3010003B, 0x3010006E, 0x3010006F, 0x00081140, 0x00082112,
    0x00080018, 0x00100010, 0x00100020, 0x0020000D, 0x0020000E,
    }
)
# fmt: on
ORTHANC_2021B = ORTHANC_CLEARS | ORTHANC_REMOVES | ORTHANC_MAPS

TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM",
            "UC", "UI", "UR", "UT"}  # fmt: skip
# Our action code -> what it leaves (a D sequence is one item holding nothing of the source).
CLASS = {"X": "removed", "Z": "emptied", "D": "replaced", "U": "replaced", "K": "kept"}
LETTER = {"removed": "X", "emptied": "Z", "replaced": "D"}

# Differences by keyword that no rule below covers: keyword -> ((Orthanc, ours), where, why).
EXPLAINED = {
    "PatientName": (
        ("kept", "emptied"),
        "nested",
        "Orthanc gives Patient's Name its pseudonym at the top level only and keeps it in a "
        "sequence item; E.1-1 says Z and E.1.1 applies the table in sequences too (ours). "
        "Orthanc's leak.",
    ),
    "PatientID": (
        ("replaced", "emptied"),
        "nested",
        "Orthanc maps Patient ID to its pseudonym wherever it is; E.1-1 says Z (Z/D for a "
        "Type 2 attribute), which we apply inside sequences; at the top level both replace it.",
    ),
    "TreatmentSite": (
        ("emptied", "removed"),
        "any",
        "D in 2021b (Orthanc clears its D rows), X/D since; its Type is not known here, so "
        "ours takes the safer X.",
    ),
}


def _rules(tag: int, path: str, vr: str, orthanc: str, ours: str) -> str | None:
    """Why Orthanc's action differs from ours, when a rule of the tables explains it."""
    basic = table.ATTRIBUTES.get(tag, (None,))[0]
    nested = "[" in path
    if tag >> 16 & 0xFF01 in (0x5000, 0x6000) and orthanc == "kept":
        return (
            "overlay or curve: Orthanc 1.10 leaves E.1-1's (60xx,3000), (60xx,4000) and "
            "(50xx,xxxx) rows undone (a TODO in its generator); we remove them. Orthanc's leak."
        )
    if tag not in ORTHANC_2021B and orthanc == "kept" and basic is not None:
        return f"{basic} in the 2025 table, not in 2021b's (Orthanc's edition): added since"
    dummy = CLASS.get(effective_action(tag, Options()) or "") == "replaced"
    cleared = orthanc == "emptied" or (orthanc == "removed" and nested and vr not in TEXT_VRS)
    if tag in ORTHANC_CLEARS and dummy and cleared:
        return (
            "D: Orthanc empties its D rows (inside sequences it removes what it cannot "
            "empty as text: sequences, binary values); E.1.1's D is a dummy value of the "
            "VR, which we put"
        )
    if (
        tag in ORTHANC_CLEARS
        and nested
        and vr == "SQ"
        and (orthanc, ours) == ("removed", "emptied")
    ):
        return "Z on a sequence inside a sequence: Orthanc removes it, we leave it empty"
    if basic in ("X/Z", "X/D", "Z/D", "X/Z/D") and {LETTER.get(orthanc), LETTER.get(ours)} <= set(
        basic
    ):
        return (
            f"{basic}: Orthanc takes the first of the codes (clears Z/D), we choose by the "
            "attribute's Type in the IOD (profile.IOD_TYPES: Type 1 D, Type 2 Z, Type 3 X)"
        )
    return None


def _action(source: DataElement, after: DataElement | None) -> str:
    """What a tool did to ``source``: kept, emptied, removed or replaced."""
    if after is None:
        return "removed"
    if source.VR == "SQ":
        if not after.value:
            return "emptied"
        fresh = len(after.value) == 1 and len(after.value[0]) == 0
        return "replaced" if fresh and any(len(item) for item in source.value) else "kept"
    value = after.value
    if value is None or value == "" or value == b"" or (isinstance(value, list) and not value):
        return "emptied"
    return "kept" if value == source.value else "replaced"


def _compare(
    source: Dataset, orthanc: Dataset | None, ours: Dataset | None, where: str = ""
) -> list[tuple[str, int, str, str, str]]:
    """(path, tag, VR, Orthanc's action, ours) for every public attribute of ``source``;
    items are compared where both kept the sequence."""
    found = []
    for elem in source:
        if elem.tag.group == 0x0002 or elem.tag.is_private:
            continue  # the file meta is rewritten by both; both remove private attributes
        theirs = orthanc.get(elem.tag) if orthanc is not None else None
        mine = ours.get(elem.tag) if ours is not None else None
        path = f"{where}{elem.keyword or elem.tag}"
        a, b = _action(elem, theirs), _action(elem, mine)
        found.append((path, int(elem.tag), elem.VR, a, b))
        if elem.VR == "SQ" and a == b == "kept":
            for i, item in enumerate(elem.value):
                found += _compare(item, _item(theirs, i), _item(mine, i), f"{path}[{i}].")
    return found


def _item(elem: DataElement | None, i: int) -> Dataset | None:
    return elem.value[i] if elem is not None and i < len(elem.value) else None


def _orthanc_anonymized(server: Any, instance: str) -> Dataset:
    request = urllib.request.Request(
        f"{server.url}/instances/{instance}/anonymize", data=b"{}", method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return pydicom.dcmread(pydicom.filebase.DicomBytesIO(response.read()))


@pytest.fixture(scope="module")
def side_by_side(
    orthanc: Any, tmp_path_factory: pytest.TempPathFactory
) -> list[tuple[Path, Dataset, Dataset, Dataset]]:
    """(source file, source, Orthanc's output, ours) for the every-attribute file and real
    files."""
    shared = need_shared()
    work = tmp_path_factory.mktemp("side-by-side")
    sources = [_identified(work / "every.dcm"), *(shared / name for name in REAL)]
    clear(orthanc)
    ids = upload(orthanc, sources)
    theirs = [_orthanc_anonymized(orthanc, i) for i in ids]
    archive, key, out = work / "archive", work / "deid.key", work / "out"
    key.write_bytes(KEY)
    run_cli("import", *map(str, sources), archive=archive)
    studies = [row["StudyInstanceUID"] for row in cli_json("ls", archive=archive)]
    cli_json("export", *studies, "--dicom", "-o", str(out), "--anonymize", "--allow-burned-in",
             "--key", str(key), archive=archive)  # fmt: skip
    ours = {str(pydicom.dcmread(p).SOPInstanceUID): p for p in out.rglob("IM*")}
    result = []
    for path, orthanc_ds in zip(sources, theirs, strict=True):
        source = pydicom.dcmread(path)
        assert "2021b" in str(orthanc_ds.DeidentificationMethod)  # the edition said above
        mine = pydicom.dcmread(ours[uid(KEY, str(source.SOPInstanceUID))])
        result.append((path, source, orthanc_ds, mine))
    return result


def test_every_difference_from_orthanc_is_explained(side_by_side: list[Any]) -> None:
    unexplained, reasons = [], Counter()
    compared = 0
    for path, source, theirs, mine in side_by_side:
        for where, tag, vr, orthanc, ours in _compare(source, theirs, mine):
            compared += 1
            if orthanc == ours:
                continue
            keyword = where.rsplit(".", 1)[-1]
            code = effective_action(tag, Options())
            expected = CLASS.get(code or "")
            if tag in (0x00100010, 0x00100020) and "[" not in where:
                expected = "replaced"  # the patient's pseudonym (or the map's)
            if tag >> 16 & 0xFF01 in (0x5000, 0x6000):
                expected = "removed"  # every element of an overlay or a curve group
            elif code == "C" or code is None:
                expected = ours  # not a basic-profile row: kept, or a UID replaced
            if expected != ours:
                unexplained.append((path.name, where, orthanc, ours, f"our table says {code}"))
                continue
            why = None
            if keyword in EXPLAINED:  # the table by keyword first: it says more
                pair, at, text = EXPLAINED[keyword]
                if pair == (orthanc, ours) and (at == "any" or "[" in where):
                    why = text
            why = why or _rules(tag, where, vr, orthanc, ours)
            if why is None:
                unexplained.append((path.name, where, orthanc, ours, "no explanation"))
            else:
                reasons[why.split(":")[0]] += 1
    assert compared > 1500
    assert not unexplained, "\n".join(map(str, unexplained))
    # the comparison saw the kinds of difference it explains
    assert reasons["overlay or curve"] and reasons["D"] and sum(reasons.values()) > 200, reasons


def test_both_tools_remove_every_name_and_keep_the_pixels(side_by_side: list[Any]) -> None:
    """What both must agree on, whatever the edition: no name left, new UIDs, same pixels."""
    for path, source, theirs, mine in side_by_side:
        for ds, rows in ((theirs, ORTHANC_2021B), (mine, set(table.ATTRIBUTES))):
            names = {  # the names of the rows of each tool's table
                part
                for elem in source
                if elem.VR == "PN" and elem.value and elem.tag in rows
                for part in re.split(r"[\^=]", str(elem.value))
                if len(part) > 2
            }
            assert names, path.name
            text = json.dumps([str(e.value) for e in ds if e.VR == "PN"], ensure_ascii=False)
            assert [n for n in names if n in text] == [], path.name
            assert ds.SOPInstanceUID != source.SOPInstanceUID
            assert ds.StudyInstanceUID != source.StudyInstanceUID
            assert ds.PatientIdentityRemoved == "YES"
            if "PixelData" in source:
                assert ds.PixelData == source.PixelData, path.name
