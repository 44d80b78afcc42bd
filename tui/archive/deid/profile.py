"""The PS3.15 Basic Application Level Confidentiality Profile and its options, applied to
a dataset in place.

One module past 600 lines: the walk, its byte-level fast paths and the actions share the
per-instance state (pseudonyms, date offset, what to scrub) and the precomputed actions;
split apart they would pass it all around.

What every action does here (PS3.15 E.1.1; the table is ``table.py``, generated):

- **X** removes the attribute; **Z** leaves it with no value (a sequence with no item);
  **D** puts a dummy value of its VR: ``ANONYMOUS`` for text and names, 19000101 and
  000000 for dates and times, 0 for numbers, eight zero bytes for binary values, a
  pseudonym for a UID, and one empty item for a sequence (nothing of the original
  sequence is carried over); **U** replaces every UID value with its pseudonym
  (``pseudonyms.uid``: the same original gives the same replacement in every run with
  the same key); **K** keeps the value, and for a sequence applies the profile to its items.
- **C** (clean, given by an option) keeps what can be kept without the identity: a date
  or date-time moves back by the patient's offset (Modified Dates; times stay, the offset
  being whole days), an AE title becomes ``AE`` and 8 hex digits of its keyed hash (Retain
  Device Identity cleans the AE titles), a sequence keeps its items with the profile
  applied to them and every text value in them scrubbed, and a text value (descriptors,
  allergies, overlay comments...) is kept with every identifying value of the instance cut
  out of it: the values the profile removes or replaces (the names, IDs, accession number,
  birth date, institution, addresses...), each name's components and words, matched
  without regard to case (tokens of two characters only as whole words, single letters
  not at all). A name or number that appears nowhere else in the instance cannot be
  recognised and stays: Clean Descriptors trusts the descriptors that far.
- **Combinations** (X/Z, X/D, Z/D, X/Z/D) resolve by the attribute's Type in the IOD where
  ``IOD_TYPES`` knows it (Type 1 -> D, Type 2 -> Z, Type 3 -> X), else to the safer action
  (X when it is allowed, else Z). ``IOD_TYPES`` holds the attributes of the Patient,
  General Study, General Series, General Equipment, SOP Common, General Image, General
  Acquisition and Contrast/Bolus modules that have a combination code. X/Z/U* (Referenced
  Image Sequence, Source Image Sequence) resolve to U: the sequence is kept with its UIDs
  replaced, so a derived image keeps pointing at its (de-identified) source.
- **Options**: where an option in use gives an action for the attribute it replaces the
  Basic Profile's; when two options in use give different ones, C wins over K (for example
  Retain Device Identity keeps a calibration date, Modified Dates shifts it: shifted).

Beyond the table (E.1.1 says the table may not be enough):

- private attributes (odd groups) are removed, with their creators, unless Retain Safe
  Private is asked and the attribute is in ``SAFE_PRIVATE`` (a subset of PS3.15 Table
  E.3.10-1: numbers and codes only); its creator is then kept too;
- overlays (every element of groups 6000-601E) and curves (5000-501E) are removed; with
  Clean Graphics they are kept, their text (labels, descriptions, comments) scrubbed: the
  bitmap of an overlay cannot be read for burned-in words here, so asking for Clean
  Graphics means the overlays were checked;
- a UID attribute the table does not list is replaced with its pseudonym unless its value
  is a UID pydicom's dictionary knows (a SOP class, a transfer syntax...) or the attribute
  names a kind, not an instance (keywords ending in ``ClassUID`` or naming a transfer
  syntax, coding scheme, mapping resource or creator UIDs); Retain UIDs keeps them all;
- dates and date-times the table does not list go as the listed ones do (E.1.1 note 4):
  removed, kept with Full Dates, shifted with Modified Dates;
- public attributes pydicom's dictionary does not know (newer than it, or not standard:
  their meaning, so their risk, is unknown) are removed;
- the file meta is rebuilt: SOP class, the new SOP Instance UID, the transfer syntax and
  this application's implementation UID and version; the rest (source AE titles, private
  information) goes, and the 128-byte preamble is zeroed (PS3.15 E.1.1 item 7);
- Patient ID and Patient's Name take the patient map's pseudonym for the original ID, or
  the keyed ``ANON`` + 10 hex digits; the patient is known by the original Patient ID (by
  name and birth date when it is empty), which also keys the date offset; Patient Identity
  Removed, De-identification Method (and its code sequence, CID 7050) and Longitudinal
  Temporal Information Modified are set;
- with rectangles to blank (Clean Pixel Data), every instance with pixel data is blanked
  (``pixels.blank``) before the rest, and 113101 is listed among the methods.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from datetime import date, timedelta
from functools import lru_cache

from pydicom import config
from pydicom.datadict import DicomDictionary
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.uid import UID_dictionary

from tui import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from tui.archive.deid import pixels, pseudonyms, table
from tui.archive.deid.options import Options

# The attributes with a combination code whose Type is known for the modules every image IOD
# has (PS3.3 C.7.1.1 Patient, C.7.2.1 General Study, C.7.3.1 General Series, C.7.5.1 General
# Equipment, C.12.1 SOP Common, C.7.6.1 General Image, C.7.10.1 General Acquisition,
# C.7.6.4 Contrast/Bolus, C.11.10 Presentation State Identification, C.17.3 Acquisition
# Context). "U": a sequence of references kept with its UIDs replaced.
IOD_TYPES: dict[int, int | str] = {
    0x00100020: 2,  # Patient ID (then given its pseudonym)
    0x00102203: 2,  # Patient's Sex Neutered (2C: present only where it is required)
    0x00081110: 3,  # Referenced Study Sequence
    0x00080021: 3,  # Series Date
    0x00080031: 3,  # Series Time
    0x00181030: 3,  # Protocol Name
    0x00081070: 3,  # Operators' Name
    0x00081072: 3,  # Operator Identification Sequence
    0x00081111: 3,  # Referenced Performed Procedure Step Sequence
    0x00080080: 3,  # Institution Name
    0x00080082: 3,  # Institution Code Sequence
    0x00081010: 3,  # Station Name
    0x00181000: 3,  # Device Serial Number
    0x00080012: 3,  # Instance Creation Date
    0x00080013: 3,  # Instance Creation Time
    0x00080022: 3,  # Acquisition Date
    0x00080032: 3,  # Acquisition Time
    0x0008002A: 3,  # Acquisition DateTime
    # Content Date/Time: 2C in General Image, 1 in SR Document General and the enhanced
    # images; a fixed dummy says no more than an empty value and suits every IOD.
    0x00080023: 1,
    0x00080033: 1,
    0x00180010: 2,  # Contrast/Bolus Agent
    0x00700084: 2,  # Content Creator's Name
    0x00400555: 2,  # Acquisition Context Sequence
    0x00081140: "U",  # Referenced Image Sequence
    0x00082112: "U",  # Source Image Sequence
}
_BY_TYPE = {1: "DUZX", 2: "ZDUX", 3: "XZDU", "U": "UZX"}

# Which option sets which column of the table.
_COLUMNS = {name: index for index, name in enumerate(table.OPTIONS)}

# A subset of PS3.15 Table E.3.10-1 (Safe Private Attributes): (creator, group, element's
# low byte). Only numbers and codes; the standard's list is a sample that vendors do not
# guarantee, and its text, UID and binary entries are left out.
SAFE_PRIVATE: frozenset[tuple[str, int, int]] = frozenset(
    {
        ("Philips PET Private Group", 0x7053, 0x00),  # SUV factor
        ("Philips PET Private Group", 0x7053, 0x09),  # activity concentration factor
        ("ELSCINT1", 0x00E1, 0x21),  # DLP
        ("ELSCINT1", 0x00E1, 0x50),  # acquisition duration
        ("ELSCINT1", 0x01E1, 0x26),  # phantom type
        ("ELSCINT1", 0x01F1, 0x01),  # acquisition type
        ("ELSCINT1", 0x01F1, 0x07),  # table velocity
        ("ELSCINT1", 0x01F1, 0x26),  # pitch
        ("ELSCINT1", 0x01F1, 0x27),  # rotation time
        ("GEMS_ACQU_01", 0x0019, 0x23),  # table speed
        ("GEMS_ACQU_01", 0x0019, 0x24),  # mid scan time
        ("GEMS_ACQU_01", 0x0019, 0x27),  # rotation speed
        ("GEMS_PARM_01", 0x0043, 0x27),  # scan pitch ratio
        ("GEMS_PARM_01", 0x0043, 0x39),  # first value: b value
        ("GEMS_PARM_01", 0x0043, 0x6F),  # table entry, gradient coil
        ("GEMS_HELIOS_01", 0x0045, 0x01),  # macro rows in detector
        ("GEMS_HELIOS_01", 0x0045, 0x02),  # macro width at iso centre
        ("GEMS_SERS_01", 0x0025, 0x07),  # images in series
        ("GEIIS PACS", 0x0903, 0x10),  # reject image flag
        ("GEIIS PACS", 0x0903, 0x11),  # significant flag
        ("GEIIS PACS", 0x0903, 0x12),  # confidential flag
        ("Philips Imaging DD 001", 0x2001, 0x03),  # diffusion b-factor
        ("Philips Imaging DD 001", 0x2001, 0x04),  # diffusion direction
        ("Philips MR Imaging DD 001", 0x2005, 0x0D),  # scale intercept
        ("Philips MR Imaging DD 001", 0x2005, 0x0E),  # scale slope
        ("SIEMENS MR HEADER", 0x0019, 0x0C),  # b value
        ("SIEMENS MR HEADER", 0x0019, 0x0D),  # diffusion directionality
        ("SIEMENS MR HEADER", 0x0019, 0x0E),  # diffusion gradient direction
        ("SIEMENS MR HEADER", 0x0019, 0x27),  # b matrix
    }
)
_SAFE_CREATORS = frozenset((creator, group) for creator, group, _ in SAFE_PRIVATE)

# PS3.16 CID 7050 (De-identification Method), scheme DCM.
_CODES = {
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "blank": ("113101", "Clean Pixel Data Option"),
    "clean_graphics": ("113103", "Clean Graphics Option"),
    "clean_structured_content": ("113104", "Clean Structured Content Option"),
    "clean_descriptors": ("113105", "Clean Descriptors Option"),
    "full": ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    "shifted": ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    "retain_patient_characteristics": ("113108", "Retain Patient Characteristics Option"),
    "retain_device_identity": ("113109", "Retain Device Identity Option"),
    "retain_uids": ("113110", "Retain UIDs Option"),
    "retain_safe_private": ("113111", "Retain Safe Private Option"),
    "retain_institution_identity": ("113112", "Retain Institution Identity Option"),
}
# File meta kept: version, SOP class and instance, transfer syntax (the rest is rewritten).
_META_KEPT = frozenset({0x00020001, 0x00020002, 0x00020003, 0x00020010})
_TEMPORAL = {"remove": "REMOVED", "full": "UNMODIFIED", "shifted": "MODIFIED"}

_TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC", "PN"})
_SINGLE_VRS = frozenset({"LT", "ST", "UT", "UR"})  # one value: a backslash is text
_IDENTIFYING_VRS = _TEXT_VRS | {"DA", "DT", "AE", "CS"}
_DUMMY_TEXT = "ANONYMOUS"
_DUMMIES: dict[str, object] = {
    "AE": _DUMMY_TEXT,
    "AS": "000Y",
    "CS": _DUMMY_TEXT,
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "DS": "0",
    "IS": "0",
    "UR": "http://anonymous.invalid",
    **{vr: _DUMMY_TEXT for vr in _TEXT_VRS},
    **{vr: 0 for vr in ("US", "SS", "UL", "SL", "UV", "SV", "AT")},
    **{vr: 0.0 for vr in ("FL", "FD")},
    **{vr: b"\x00" * 8 for vr in ("OB", "OW", "OD", "OF", "OL", "OV", "UN")},
}
# Internal codes beyond the table's: "S" recurse into a sequence's items, "Q" a UID the
# table does not list (replaced unless well known), "T" shift a date or date-time.
_DICTIONARY_VR = {tag: entry[0] for tag, entry in DicomDictionary.items()}
_MAX_UIDS = 200_000  # pseudonyms remembered before the cache starts again


def _option_columns(options: Options) -> list[int]:
    """Indices (into an option string of ``table``) of the options in use."""
    names = []
    if options.retain_safe_private:
        names.append("rtnSafePrivOpt")
    if options.retain_uids:
        names.append("rtnUIDsOpt")
    if options.retain_device_identity:
        names.append("rtnDevIdOpt")
    if options.retain_institution_identity:
        names.append("rtnInstIdOpt")
    if options.retain_patient_characteristics:
        names.append("rtnPatCharsOpt")
    if options.dates == "full":
        names.append("rtnLongFullDatesOpt")
    if options.dates == "shifted":
        names.append("rtnLongModifDatesOpt")
    if options.clean_descriptors:
        names.append("cleanDescOpt")
    if options.clean_structured_content:
        names.append("cleanStructContOpt")
    if options.clean_graphics:
        names.append("cleanGraphOpt")
    return [_COLUMNS[name] for name in names]


def _resolve(tag: int, basic: str, codes: str, columns: list[int]) -> str:
    given = {codes[index] for index in columns} - {"."}
    if given:
        return "C" if "C" in given else ("K" if "K" in given else min(given))
    if "/" not in basic:
        return basic
    allowed = basic.replace("*", "").split("/")
    kind = IOD_TYPES.get(tag)
    if kind is None:
        return "X" if "X" in allowed else "Z"
    return next(code for code in _BY_TYPE[kind] if code in allowed)


def _row(tag: int) -> tuple[str, str] | None:
    row = table.ATTRIBUTES.get(tag)
    if row is not None:
        return row
    for mask, value, basic, codes in table.RANGES:
        if tag & mask == value:
            return basic, codes
    return None


def is_safe_private(tag: int, private_creator: str | None) -> bool:
    """Whether the private attribute ``tag`` of the block of ``private_creator`` is in
    ``SAFE_PRIVATE`` (a creator element itself: whether its block has a safe attribute)."""
    if private_creator is None:
        return False
    group, element = tag >> 16, tag & 0xFFFF
    creator = private_creator.strip()
    if 0x10 <= element <= 0xFF:
        return (creator, group) in _SAFE_CREATORS
    return (creator, group, element & 0xFF) in SAFE_PRIVATE


def effective_action(tag: int, options: Options, private_creator: str | None = None) -> str | None:
    """The action PS3.15 gives the attribute ``tag`` under ``options``, combinations and
    options resolved: one of "D", "Z", "X", "K", "C", "U".

    A private attribute (odd group) is "X", or "K" when Retain Safe Private is asked and it
    is safe in the block of ``private_creator``. None when the table has no row for the tag
    (``apply`` then also removes the rest of the overlay and curve groups, unknown public
    attributes and unlisted dates, and replaces unlisted instance UIDs: see the module's
    docstring).
    """
    if (tag >> 16) & 1:
        if options.retain_safe_private and is_safe_private(tag, private_creator):
            return "K"
        return "X"
    row = _row(tag)
    if row is None:
        return None
    return _resolve(tag, row[0], row[1], _option_columns(options))


@lru_cache(maxsize=16)
def _actions(options: Options) -> dict[int, str]:
    """{tag: internal action} for every public tag that is not simply kept: the table's
    rows resolved, then the dictionary's sequences, UIDs and dates it does not list."""
    columns = _option_columns(options)
    actions: dict[int, str] = {}
    for tag, (basic, codes) in table.ATTRIBUTES.items():
        action = _resolve(tag, basic, codes, columns)
        vr = DicomDictionary.get(tag, ("",))[0]
        if vr == "SQ" and action in ("K", "U"):
            action = "S"
        if action != "K":
            actions[tag] = action
    for tag, entry in DicomDictionary.items():
        if tag in table.ATTRIBUTES:
            continue
        vr, keyword = entry[0], entry[4]
        if vr == "SQ":
            actions[tag] = "S"
        elif vr == "UI" and not options.retain_uids and not names_a_kind(keyword):
            actions[tag] = "Q"
        elif vr in ("DA", "DT") and options.dates != "full":
            actions[tag] = "T" if options.dates == "shifted" else "X"
    return actions


def well_known(uid: str) -> bool:
    """A UID the standard defines (a SOP class, a transfer syntax, a context group: all in
    the DICOM root): it names a kind of thing, never a patient's, so it is kept."""
    return uid in UID_dictionary or uid.startswith("1.2.840.10008.")


def names_a_kind(keyword: str) -> bool:
    """Whether a UID attribute's values name a kind of thing (a class, a syntax, a coding
    scheme, a creator of definitions), not an instance."""
    if keyword == "InstanceCreatorUID":  # the table's: an instance's creator is identity
        return False
    if keyword.endswith(("ClassUID", "ClassesInStudy", "ClassesInSeries")):
        return True
    return any(
        word in keyword
        for word in ("TransferSyntax", "SOPClasses", "CodingScheme", "Creator", "MappingResource")
    )


class Deidentifier:
    """Applies the profile with ``options``; pseudonyms come from ``key`` and, for the
    patients it lists, from ``mapping``.

    One instance serves a whole export: the actions are computed once, and the pseudonyms
    of the UIDs met are remembered.
    """

    def __init__(
        self, options: Options, key: bytes, mapping: pseudonyms.PatientMap | None = None
    ) -> None:
        self.options = options
        self._key = key
        self._mapping = mapping or {}
        self._actions = _actions(options)
        self._uids: dict[str, str] = {}
        self._offset = 0  # the current patient's date offset, in days
        self._scrub: re.Pattern[str] | None = None
        self._used = self._codes()
        self._method = ["PS3.15 Basic Profile (pacs-tui)"] + [m[:64] for _, m in self._used[1:]]
        self._cleaning = (
            options.clean_descriptors
            or options.clean_structured_content
            or options.clean_graphics
            or options.retain_patient_characteristics
            or options.retain_safe_private
        )

    def apply(self, ds: Dataset) -> None:
        """De-identify ``ds`` in place, its sequences and file meta included.

        Raises
        ------
        pixels.Refused
            If the image may show burned-in text and neither rectangles to blank nor
            ``allow_burned_in`` were given.
        """
        options = self.options
        reason = pixels.burned_in_reason(ds)
        if reason is not None and not options.blank and not options.allow_burned_in:
            raise pixels.Refused(reason)
        if options.blank and "PixelData" in ds:
            said = ds.get("BurnedInAnnotation")
            pixels.blank(ds, options.blank)  # says NO: the text was where it blanked
            if options.allow_burned_in and reason is not None:
                # let through as it is: the rectangles may not cover all the text
                ds.BurnedInAnnotation = said if said is not None else "YES"
        original_id = _text(ds, 0x00100020)
        identity = original_id or f"name:{_text(ds, 0x00100010)}|{_text(ds, 0x00100030)}"
        if original_id in self._mapping:
            new_id, new_name = self._mapping[original_id]
        else:
            new_id, new_name = pseudonyms.patient(self._key, identity)
        self._offset = pseudonyms.date_offset(self._key, identity)
        self._scrub = _scrubber(tuple(sorted(self._identifying(ds)))) if self._cleaning else None
        self._walk(ds, clean=False)
        encoding = _encoding(ds)
        _set(ds, 0x00100020, "LO", [new_id], encoding)
        _set(ds, 0x00100010, "PN", [new_name], encoding)
        _set(ds, 0x00120062, "CS", ["YES"], encoding)
        _set(ds, 0x00120063, "LO", self._method, encoding)
        if encoding is None:
            items = []
            for value, meaning in self._used:
                item = Dataset()
                _put(item, 0x00080100, "SH", value)
                _put(item, 0x00080102, "SH", "DCM")
                _put(item, 0x00080104, "LO", meaning)
                items.append(item)
            _put(ds, 0x00120064, "SQ", items)
        else:
            data = _encode_codes(tuple(self._used), *encoding)
            _raw(ds, 0x00120064, "SQ", data, encoding)
        _set(ds, 0x00280303, "CS", [_TEMPORAL[options.dates]], encoding)
        self._file_meta(ds)

    # -- the walk ------------------------------------------------------------------------
    # Speed: a value pydicom has not decoded yet is read from its bytes, and our
    # replacements go in as encoded bytes (``_set``), where the dataset's encoding is
    # known; pydicom's decoding of one element costs about 40 us, a CT slice's budget is
    # a few hundred for everything.

    def _walk(self, ds: Dataset, clean: bool) -> None:
        actions = self._actions
        creators: list[int] = []
        kept_blocks: set[int] = set()
        encoding = _encoding(ds)
        # The elements as they are (decoded or not), the tags as ints (BaseTag compares in
        # Python: a dict lookup with one costs a Python call).
        for item_tag, elem in list(ds.items()):
            tag = int(item_tag)
            action = actions.get(tag)
            if action is None:
                group = tag >> 16
                if group & 1:
                    self._private(ds, tag, creators, kept_blocks)
                elif group & 0xFF01 in (0x5000, 0x6000):  # curves and overlays
                    if self.options.clean_graphics:
                        self._clean_text(ds[tag])
                    else:
                        del ds[tag]
                elif tag not in DicomDictionary and group > 0x0002:
                    del ds[tag]  # public but unknown (group lengths too): risk unknown
                elif clean:
                    self._clean_text(ds[tag])
                continue
            if action == "X":
                del ds[tag]
                continue
            vr = _vr(elem, tag)
            if action in ("U", "Q") and vr == "UI":
                values = [
                    value if action == "Q" and well_known(value) else self._pseudonym(value)
                    for value in _strings(ds, tag, vr, elem)
                ]
                _set(ds, tag, "UI", values, encoding)
            elif action == "Z" and vr is not None:
                _set(ds, tag, vr, [], encoding)
            elif action == "D" and vr == "UI":
                values = [self._pseudonym(v) for v in _strings(ds, tag, vr, elem)]
                _set(ds, tag, vr, values, encoding)
            elif action == "D" and isinstance(_DUMMIES.get(vr or ""), str):
                _set(ds, tag, vr or "", [str(_DUMMIES[vr or ""])], encoding)
            elif action in ("C", "T") and vr in ("DA", "DT") and self.options.dates == "shifted":
                offset = self._offset
                values = [shift_date(v, offset) for v in _strings(ds, tag, vr, elem)]
                _set(ds, tag, vr, values, encoding)
            elif action == "C" and vr in _TEXT_VRS:
                scrub = self._scrub
                dates = _FREE_TEXT_DATE if self.options.dates != "full" else None
                values = [_cleaned(v, scrub, dates) for v in _strings(ds, tag, vr, elem)]
                _set(ds, tag, vr, values, encoding)
            elif action == "C" and vr == "AE":
                secret = self._key
                values = [
                    f"AE{pseudonyms.short(secret, 'ae', v)}" for v in _strings(ds, tag, vr, elem)
                ]
                _set(ds, tag, vr, values, encoding)
            else:
                self._act(ds[tag], action, clean)
        for creator_tag in creators:
            if creator_tag not in kept_blocks:
                del ds[creator_tag]

    def _act(self, elem: DataElement, action: str, clean: bool) -> None:
        """The actions on a decoded element: sequences, numbers and binary values, what
        is cleaned or shifted."""
        if action == "S" or (elem.VR == "SQ" and action in ("U", "Q")):
            self._recurse(elem, clean)
        elif action == "Z":
            elem.value = elem.empty_value
        elif action == "D":
            if elem.VR == "SQ":
                elem.value = [Dataset()]
            else:
                elem.value = _DUMMIES.get(elem.VR, b"\x00" * 8 if "O" in elem.VR else 0)
        elif action == "C":
            self._clean(elem)
        elif action == "T":
            self._shift(elem)

    def _recurse(self, elem: DataElement, clean: bool) -> None:
        if elem.VR != "SQ":
            return
        for item in elem.value or ():
            self._walk(item, clean)

    def _private(self, ds: Dataset, tag: int, creators: list[int], kept: set[int]) -> None:
        element = tag & 0xFFFF
        if not self.options.retain_safe_private or element < 0x10:
            del ds[tag]
        elif element <= 0xFF:
            creators.append(tag)  # removed after the walk unless an attribute of its block stays
        else:
            creator_tag = (tag & 0xFFFF0000) | (element >> 8)
            if is_safe_private(tag, _creator(ds, creator_tag)):
                kept.add(creator_tag)
            else:
                del ds[tag]

    # -- the actions ---------------------------------------------------------------------

    def _pseudonym(self, original: str) -> str:
        uid = self._uids.get(original)
        if uid is None:
            if len(self._uids) >= _MAX_UIDS:
                self._uids.clear()
            uid = self._uids[original] = pseudonyms.uid(self._key, original)
        return uid

    def _clean(self, elem: DataElement) -> None:
        vr = elem.VR
        if vr == "SQ":
            self._recurse(elem, clean=True)
        elif vr in ("DA", "DT"):
            if self.options.dates == "shifted":
                self._shift(elem)
            elif self.options.dates != "full":
                elem.value = _DUMMIES[vr]
        elif vr == "AE":
            elem.value = _map_values(
                elem.value, lambda v: "AE" + pseudonyms.short(self._key, "ae", str(v).strip())
            )
        elif vr == "UI" and not self.options.retain_uids:
            elem.value = _map_values(
                elem.value, lambda v: v if well_known(str(v)) else self._pseudonym(str(v))
            )
        else:
            self._clean_text(elem)

    def _clean_text(self, elem: DataElement) -> None:
        if elem.VR not in _TEXT_VRS or not elem.value:
            if elem.VR == "SQ":
                self._recurse(elem, clean=True)
            return
        scrub = self._scrub
        dates = _FREE_TEXT_DATE if self.options.dates != "full" else None
        elem.value = _map_values(elem.value, lambda v: _cleaned(str(v), scrub, dates))

    def _shift(self, elem: DataElement) -> None:
        offset = self._offset
        elem.value = _map_values(elem.value, lambda v: shift_date(str(v), offset))

    # -- what identifies -----------------------------------------------------------------

    def _identifying(self, ds: Dataset) -> set[str]:
        """The text the profile removes or replaces in ``ds`` (its sequences included):
        what a cleaned descriptor must not say. Names also by component and word. Only
        the elements that can hold such text are decoded."""
        found: set[str] = set()
        actions = self._actions
        for key, elem in list(ds.items()):
            tag = int(key)
            if (tag >> 16) & 1:
                continue
            action = actions.get(tag)
            vr = _vr(elem, tag)
            if action == "S" or vr == "SQ":
                for item in ds[tag].value or ():
                    found |= self._identifying(item)
            elif vr == "PN" and action not in ("K", "C"):
                for text in _strings(ds, tag, vr, elem):
                    found.add(text)
                    for part in re.split(r"[\^=]+", text):
                        found.add(part)
                        found.update(part.split())
            elif action in ("X", "Z", "D") and vr in _IDENTIFYING_VRS:
                found.update(_strings(ds, tag, vr, elem))
        return {token.strip() for token in found if len(token.strip()) >= 2}

    def _codes(self) -> list[tuple[str, str]]:
        options = self.options
        used = [_CODES["basic"]]
        if options.blank:
            used.append(_CODES["blank"])
        for name in (
            "retain_safe_private",
            "retain_uids",
            "retain_device_identity",
            "retain_institution_identity",
            "retain_patient_characteristics",
            "clean_descriptors",
            "clean_structured_content",
            "clean_graphics",
        ):
            if getattr(options, name):
                used.append(_CODES[name])
        if options.dates in ("full", "shifted"):
            used.append(_CODES[options.dates])
        return used

    def _file_meta(self, ds: Dataset) -> None:
        meta = getattr(ds, "file_meta", None)
        if meta is None:
            return
        for tag in list(meta.keys()):
            if tag not in _META_KEPT:
                del meta[tag]  # source AE titles, private information: the sender's
        explicit_le = (False, True)  # the file meta's encoding, always
        if 0x00080018 in ds:
            instance = _uid_values(ds, 0x00080018)
        else:
            instance = _uid_values(meta, 0x00020003) if 0x00020003 in meta else []
            if not self.options.retain_uids:
                instance = [self._pseudonym(value) for value in instance]
        if instance:
            _set(meta, 0x00020003, "UI", instance[:1], explicit_le)
        if 0x00020002 not in meta and 0x00080016 in ds:
            _set(meta, 0x00020002, "UI", _uid_values(ds, 0x00080016)[:1], explicit_le)
        _set(meta, 0x00020012, "UI", [IMPLEMENTATION_CLASS_UID], explicit_le)
        _set(meta, 0x00020013, "SH", [IMPLEMENTATION_VERSION_NAME], explicit_le)
        if getattr(ds, "preamble", None) is not None:
            ds.preamble = b"\x00" * 128


def _encoding(ds: Dataset) -> tuple[bool, bool] | None:
    """(implicit VR, little endian) of the bytes ``ds`` was read from; None if built."""
    implicit, little = ds.original_encoding
    if implicit is None or little is None:
        return None
    return implicit, little


def _vr(elem: DataElement | RawDataElement, tag: int) -> str | None:
    """The two-letter VR of ``elem`` (decoded or not) without decoding it; None when only
    decoding can tell (an ambiguous VR: "US or SS")."""
    vr: str | None = elem.VR
    if not vr or vr == "UN" or len(vr) != 2:
        vr = _DICTIONARY_VR.get(tag)
    return vr if vr and len(vr) == 2 else None


def _uid_values(ds: Dataset, tag: int) -> list[str]:
    """The values of a UID element."""
    return _strings(ds, tag, "UI", ds.get_item(tag))


def _strings(ds: Dataset, tag: int, vr: str, elem: DataElement | RawDataElement) -> list[str]:
    """The values of the string element ``elem`` (text, name, date, UID) at ``tag`` of
    ``ds``, read from its bytes when they are ASCII (the same in every character set),
    else decoded by pydicom."""
    value = elem.value
    if isinstance(value, bytes) and value.isascii():
        text = value.decode("ascii").strip("\x00 ")
        if not text:
            return []
        return [text] if vr in _SINGLE_VRS else [v.strip("\x00 ") for v in text.split("\\")]
    return [str(v) for v in _values(ds[tag].value)]


def _text(ds: Dataset, tag: int) -> str:
    """A text element's value ("" if absent), decoded by pydicom only when not ASCII."""
    if tag not in ds:
        return ""
    value = ds.get_item(tag).value
    if isinstance(value, bytes) and value.isascii():
        return value.decode("ascii").strip("\x00 ")
    return str(ds[tag].value or "").strip()


def _set(
    ds: Dataset, tag: int, vr: str, values: list[str], encoding: tuple[bool, bool] | None
) -> None:
    """Put ``values`` (none: zero length) in ``ds`` as the element ``tag``: as encoded
    bytes when the dataset's encoding is known and the values are ASCII (valid in every
    character set), else as a pydicom element."""
    if encoding is not None and all(value.isascii() for value in values):
        data = "\\".join(values).encode("ascii")
        if len(data) & 1:
            data += b"\x00" if vr == "UI" else b" "
        _raw(ds, tag, vr, data, encoding)
    else:
        _put(ds, tag, vr, values[0] if len(values) == 1 else (values or None))


def _raw(ds: Dataset, tag: int, vr: str, data: bytes, encoding: tuple[bool, bool]) -> None:
    """Put the encoded value ``data`` in ``ds`` as the public element ``tag``.

    Straight into the dataset's dict: ``Dataset.__setitem__`` adds nothing for a public,
    non-pixel element given as bytes but its checks (a fifth of a CT slice's time here).
    """
    ds._dict[BaseTag(tag)] = RawDataElement(
        BaseTag(tag), vr, len(data), data, 0, encoding[0], encoding[1], True, False
    )


@lru_cache(maxsize=64)
def _encode_codes(codes: tuple[tuple[str, str], ...], implicit: bool, little: bool) -> bytes:
    """The items of De-identification Method Code Sequence, encoded (defined lengths)."""
    order = "<" if little else ">"
    out = b""
    for value, meaning in codes:
        body = b""
        for tag, vr, text in (
            (0x00080100, "SH", value),
            (0x00080102, "SH", "DCM"),
            (0x00080104, "LO", meaning),
        ):
            data = text.encode("ascii")
            if len(data) & 1:
                data += b" "
            body += struct.pack(order + "HH", tag >> 16, tag & 0xFFFF)
            if implicit:
                body += struct.pack(order + "I", len(data))
            else:
                body += vr.encode("ascii") + struct.pack(order + "H", len(data))
            body += data
        out += struct.pack(order + "HHI", 0xFFFE, 0xE000, len(body)) + body
    return out


# A date as free text writes it (2023-01-05, 05/01/2023, 5.1.2023, 20230105, 5 Jan 2023): a
# cleaned descriptor loses it unless full dates are kept (shifting text is guesswork).
_FREE_TEXT_DATE = re.compile(
    r"\b(?:(?:19|20)\d\d[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])"
    r"|(?:0?[1-9]|[12]\d|3[01])[-/.](?:0?[1-9]|[12]\d|3[01])[-/.](?:19|20)\d\d"
    r"|(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
    r"|\d{1,2}\.?\s*(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?,?\s*(?:19|20)\d\d)\b",
    re.IGNORECASE,
)


def _cleaned(text: str, scrub: re.Pattern[str] | None, dates: re.Pattern[str] | None) -> str:
    """``text`` without the instance's identifying values (and dates as text)."""
    text = scrub.sub("", text) if scrub is not None else text
    return dates.sub("", text) if dates is not None else text


def _put(ds: Dataset, tag: int, vr: str, value: object) -> None:
    """Set an element of ours (valid by construction) without pydicom's value checks."""
    ds[tag] = DataElement(tag, vr, value, validation_mode=config.IGNORE)


@lru_cache(maxsize=64)
def _scrubber(tokens: tuple[str, ...]) -> re.Pattern[str] | None:
    """One pattern matching every token, longest first; None when there are none."""
    if not tokens:
        return None
    parts = []
    for token in sorted(tokens, key=len, reverse=True):
        escaped = re.escape(token)
        parts.append(escaped if len(token) > 2 else rf"\b{escaped}\b")
    return re.compile("|".join(parts), re.IGNORECASE)


def _creator(ds: Dataset, tag: int) -> str | None:
    """The private creator at ``tag``, read without converting the rest of the block."""
    if tag not in ds:
        return None
    value = ds.get_item(tag).value
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return str(value).strip("\x00 ") if value is not None else None


def _values(value: object) -> list[object]:
    if value is None or value == "":
        return []
    if isinstance(value, MultiValue | list | tuple):
        return list(value)
    return [value]


def _map_values(value: object, function: Callable[[object], object]) -> object:
    """``function`` applied to each value of a possibly multi-valued element."""
    if value is None or value == "":
        return value
    if isinstance(value, MultiValue | list | tuple):
        return [function(v) for v in value]
    return function(value)


def shift_date(value: str, days: int) -> str:
    """A DA or DT value (or a range of them, ``A-B``) moved back by ``days``; what follows
    the date in a DT (time, zone) is kept, a partial date (year, year and month) stays as
    precise as it was. A value that is not a date is returned empty."""
    value = value.strip()
    if not value:
        return value
    if "-" in value and not value.startswith("-"):
        head, _, tail = value.partition("-")
        if len(head) >= 4 and (not tail or len(tail) >= 4) and tail[:1].isdigit():
            return f"{shift_date(head, days)}-{shift_date(tail, days)}"
    digits = value[:8]
    if not digits.isdigit() or len(digits) not in (4, 6, 8):
        return ""
    padded = digits + "0101"[len(digits) - 4 :]
    try:
        moved = date(int(padded[:4]), int(padded[4:6]), int(padded[6:8])) - timedelta(days=days)
    except ValueError:
        return ""
    return moved.strftime("%Y%m%d")[: len(digits)] + value[8:]
