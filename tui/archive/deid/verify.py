"""The verification pass: does anything of the source's identity survive in an output?

``identifying_values`` lists what of a source instance must be gone under the chosen
options; ``search`` reads an output file whole and says where any of it still is.

What is searched for (from each attribute the profile does not keep, in sequences too):

- person names (PN): each family, given and middle name of every component group
  (alphabetic, ideographic, phonetic), and each word of three or more characters in
  them; prefixes and suffixes ("MR", "JR") are not. A group is searched whole too
  when one of its names was too short (one-syllable Korean family names);
- IDs (attributes named ...ID, ...IDs, ...Number(s)): the whole value; issuers of
  IDs count as institutions;
- dates (DA, and the date at the start of a DT), when the profile does not keep them;
  shifted dates must not keep their original value. Times (TM) are not searched:
  a shift by whole days keeps them, and six digits match by chance too easily;
- UIDs the profile replaces (standard UIDs under 1.2.840.10008 are not identifying);
- institution names and addresses, whole and word by word (words of five or more
  characters);
- other text the profile removes, whole;
- private attributes removed: text values of six or more characters that are not
  numbers, private names, dates and UIDs, and text found in private OB/UN values.

What is not, to avoid false alarms: values shorter than three characters (two for
names, four for text, six for private text), numbers of fewer than four digits,
common tokens (``_COMMON``), CS values (codes), numbers (IS, DS, binary), ages, a
value equal to a whole value of an attribute the profile keeps (the output holds
it rightly: a name "PERFUSION" and an ImageType value), and weak values (text,
institutions, addresses, anything private, names of two letters) found as a word in
kept text. Values of attributes the profile cleans (C: descriptors, structured
content) are not searched whole: cleaning keeps what is not identifying, and the
identifying parts are the names, IDs and dates searched everywhere already.

Where: the decoded text of every element (file meta, sequences, private blocks),
the bytes of OB, OW and UN values, and the raw bytes of the file but for the top
Pixel Data value (the preamble always reports, as ``"preamble"``). When every value
is ASCII and none occurs in the raw bytes at all, the walk is skipped: ASCII is
stored as itself in every DICOM character set.

A match must stand on its own: a value that begins or ends with a letter or digit
does not match inside a longer word or number ("LEE" is not found in "SLEEVE", an ID
"1234" not in "0.12345" nor in a UID), and numbers and dates do not match inside
UIDs. Names match whatever their case.
"""

from __future__ import annotations

import contextlib
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING

from pydicom import dcmread
from pydicom.charset import TEXT_VR_DELIMS, convert_encodings, decode_bytes, encode_string
from pydicom.datadict import DicomDictionary, keyword_for_tag
from pydicom.dataelem import RawDataElement
from pydicom.multival import MultiValue
from pydicom.tag import Tag

from tui.archive.deid.profile import effective_action, names_a_kind, well_known

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from tui.archive.deid.options import Options

# Kinds of identifier, strongest first: a value found under two kinds keeps the first.
KINDS = ("name", "id", "uid", "date", "institution", "address", "text", "private")
_WEAK = {"institution", "address", "text", "private"}  # dropped when kept elsewhere

MIN_CHARS = 3  # names, IDs
MIN_TEXT_CHARS = 4  # other text, whole
MIN_WORD_CHARS = 5  # words of institutions and addresses
MIN_PRIVATE_CHARS = 6  # private text
MIN_DIGITS = 4  # a value made of digits only
MIN_BINARY_BYTES = 4  # searched in binary values and the raw file only when this long

_COMMON = frozenset(
    [
        # titles and placeholders
        *("mr", "mrs", "ms", "miss", "dr", "prof", "jr", "sr", "ii", "iii", "iv", "md"),
        *("phd", "anon", "anonymous", "anonymized", "anonymised", "removed", "unknown"),
        *("none", "null", "test", "patient", "name", "xxx", "n/a", "yes", "no"),
        # the common words of institutions and addresses
        *("hospital", "medical", "center", "centre", "clinic", "clinics", "university"),
        *("department", "radiology", "imaging", "health", "institute", "street", "road"),
        "avenue",
    ]
)
_NAME_GROUP = re.compile(r"=")
_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}
_SKIP_VRS = {"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD", "AT", "IS", "DS", "SQ"}
_BINARY_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN", "OB or OW", "US or OW"}
# Kept values worth remembering: what an identifier may rightly be found in.
_TEXT_VRS = {"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "UR", "DA", "DT", "UI"}
# VRs of unlisted public attributes the profile may still remove (see _unlisted_gone);
# None: a VR pydicom's dictionary does not give (an unknown attribute).
_MAYBE_GONE = {"DA", "DT", "UI", "UN", None}
_GRAPHICS = (0x5000, 0x6000)  # curve and overlay groups (50xx, 60xx, even xx)
_STANDARD_UID = "1.2.840.10008."
_UNPRINTABLE = re.compile(rb"[^\x20-\x7e\t\r\n\xa0-\xff]")
_DEFLATED = "1.2.840.10008.1.2.1.99"


@dataclass(frozen=True)
class Identifier:
    """A value of the source that must not appear in the output.

    Attributes
    ----------
    path : str
        Where it was in the source: keywords joined with dots, sequence items as
        ``[i]``, private attributes as ``(gggg,eeee)``.
    value : str
        The text searched for.
    kind : str
        One of ``KINDS``.
    """

    path: str
    value: str
    kind: str


@dataclass(frozen=True)
class Hit:
    """An identifier found in an output file.

    Attributes
    ----------
    path : str
        The output attribute that holds it (as ``Identifier.path``), ``"preamble"``,
        or ``"raw bytes at offset N"`` when only the byte scan of the file saw it.
    identifier : Identifier
        What was found.
    """

    path: str
    identifier: Identifier

    def report(self) -> dict[str, str]:
        """As strings, for a report: where, the value found, its kind, where the source had it."""
        ident = self.identifier
        return {"path": self.path, "identifier": ident.value, "kind": ident.kind,
                "source": ident.path}  # fmt: skip


@lru_cache(maxsize=65536)
def _action(tag: int, options: Options, creator: str | None) -> str | None:
    """``profile.effective_action``, remembered across instances of an export."""
    if tag >> 16 & 1:
        return effective_action(tag, options, creator)
    return effective_action(tag, options)


def identifying_values(source: Dataset, options: Options) -> list[Identifier]:
    """Every value of ``source`` that must not survive de-identification with ``options``.

    Parameters
    ----------
    source : Dataset
        The instance before de-identification (its file meta too, when it has one).
    options : Options
        What the profile was asked to keep.

    Returns
    -------
    list of Identifier
        One per distinct value, strongest kind first.
    """

    collector = _Collector(options)
    meta = getattr(source, "file_meta", None)
    if meta is not None:
        collector.walk(meta, "")
    collector.walk(source, "")
    return collector.result()


class _Collector:
    """Walks a source dataset, sorting values into must-go identifiers and kept text."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.found: dict[tuple[str, str], Identifier] = {}  # (kind, folded value)
        self.kept: list[str] = []  # folded text the profile keeps
        self.kept_values: set[str] = set()  # and each of its values

    def walk(self, ds: Dataset, prefix: str) -> None:
        # Values are decoded from their raw bytes here, not converted by pydicom (five
        # times slower): only sequences and elements of implicit or unknown VR are.
        encodings = _encodings_of(ds)
        for tag in list(ds.keys()):
            number = int(tag)
            private = bool(number >> 16 & 1)
            if private and 0x10 <= (number & 0xFFFF) <= 0xFF:
                continue  # a private block's creator: a label, not data
            item = ds.get_item(tag)
            vr = item.VR
            if vr is None or vr == "SQ" or (vr == "UN" and not private):
                item = ds[tag]  # pydicom gives a known attribute its dictionary VR
                vr = item.VR
            if vr == "SQ":
                path = prefix + _tag_name(number)
                # Items are judged attribute by attribute, whatever the sequence's fate.
                for i, child in enumerate(item.value or ()):
                    self.walk(child, f"{path}[{i}].")
                continue
            creator = _creator(ds, tag) if private else None
            action = _action(number, self.options, creator)
            if action == "K" or (action is None and not private and _kept_unlisted(number, vr)):
                if vr in _TEXT_VRS:
                    self._keep(_values_of(item, vr, encodings))
                continue
            values = _values_of(item, vr, encodings)
            if self._gone(number, vr, values, action):
                self._collect(number, vr, values, prefix + _tag_name(number), private)
            else:
                self._keep(values)

    def _gone(self, tag: int, vr: str, values: list[str] | bytes, action: str | None) -> bool:
        """Whether the attribute's original value must be absent from the output."""
        if action is None:
            return tag >> 16 & 1 == 1 or self._unlisted_gone(tag, vr, values)
        if action == "K":
            return False
        if action == "C":
            # Shifted dates must differ from the original; cleaned text is judged by the
            # identifiers searched everywhere (see the module's docstring).
            return vr in ("DA", "DT")
        return True

    def _unlisted_gone(self, tag: int, vr: str, values: list[str] | bytes) -> bool:
        """What the profile does beyond the table (``profile``'s docstring): public
        attributes pydicom does not know, overlays and curves, dates, instance UIDs."""

        group = tag >> 16
        if group <= 0x0002:
            return False  # file meta: rebuilt from the dataset, checked as such
        if group & 0xFF01 in _GRAPHICS:
            return not self.options.clean_graphics
        if tag not in DicomDictionary:
            return True
        if vr in ("DA", "DT"):
            return self.options.dates != "full"
        if vr == "UI" and not self.options.retain_uids and isinstance(values, list):
            known = any(well_known(v) for v in values)
            return not names_a_kind(keyword_for_tag(tag)) and not known
        return False

    def _keep(self, values: list[str] | bytes) -> None:
        if not values or isinstance(values, bytes):
            return
        folded = [v.casefold() for v in values]
        self.kept.append("\\".join(folded))
        self.kept_values.update(folded)

    def _collect(
        self, tag: int, vr: str, values: list[str] | bytes, path: str, private: bool
    ) -> None:

        if not values:
            return
        if isinstance(values, bytes):
            if private or vr in ("UN", "OB", "OW"):
                for text in _printable(values):
                    self._add(path, text, "private")
            return
        keyword = "" if private else keyword_for_tag(tag)
        if vr == "PN":
            for v in values:
                self._names(path, v)
        elif vr == "DA" or vr == "DT":
            for v in values:
                if _is_date(v[:8]):
                    y, m, d = v[:4], v[4:6], v[6:8]  # and as free text writes dates
                    for form in (v[:8], f"{y}-{m}-{d}", f"{d}/{m}/{y}", f"{m}/{d}/{y}",
                                 f"{d}.{m}.{y}"):  # fmt: skip
                        self._add(path, form, "date")
        elif vr == "UI":
            for v in values:
                if v and not v.startswith(_STANDARD_UID):
                    self._add(path, v, "uid")
        elif vr in _SKIP_VRS or vr in ("CS", "AS", "TM") or vr in _BINARY_VRS:
            return
        elif private:
            for v in values:
                self._add(path, v, "private")
        elif "Issuer" in keyword:  # an organisation, as an institution is
            for v in values:
                self._add(path, v, "institution")
        elif keyword.endswith(("ID", "IDs", "Number", "Numbers")):
            for v in values:
                self._add(path, v, "id")
        elif "Institution" in keyword or "Address" in keyword:
            kind = "address" if "Address" in keyword else "institution"
            for v in values:
                self._add(path, v, kind)
                for word in re.findall(r"[^\W_]+", v):
                    if len(word) >= MIN_WORD_CHARS:
                        self._add(path, word, kind)
        else:
            for v in values:
                self._add(path, v, "text")

    def _names(self, path: str, value: str) -> None:
        for group in _NAME_GROUP.split(value):
            parts = group.split("^")
            short = False
            # Family, given and middle names; prefix and suffix are titles.
            for part in parts[:3]:
                part = part.strip()
                if len(part) < 2:
                    short = short or bool(part)
                    continue
                self._add(path, part, "name", min_chars=2)
                words = part.split()
                if len(words) > 1:
                    for word in words:
                        self._add(path, word, "name")
            if short:
                whole = "^".join(p.strip() for p in parts[:3]).strip("^")
                self._add(path, whole, "name", min_chars=2)

    def _add(self, path: str, value: str, kind: str, min_chars: int = 0) -> None:
        value = value.strip(" \0")
        folded = value.casefold()
        if not min_chars:
            min_chars = {"text": MIN_TEXT_CHARS, "private": MIN_PRIVATE_CHARS}.get(kind, MIN_CHARS)
        if len(value) < min_chars or folded in _COMMON:
            return
        if value.isdigit() and len(value) < MIN_DIGITS:
            return
        if kind == "private" and _is_number(value):
            return
        old = self.found.get((kind, folded))
        if old is None or (_weak(old) and not _weak(Identifier(path, value, kind))):
            self.found[(kind, folded)] = Identifier(path, value, kind)

    def result(self) -> list[Identifier]:
        kept = "\0".join(self.kept)
        seen: set[str] = set()
        out: list[Identifier] = []
        for kind in KINDS:
            for (k, folded), ident in self.found.items():
                if k != kind or folded in seen:
                    continue
                if folded in self.kept_values or (
                    _weak(ident) and any(_occurrences(kept, folded, kind))
                ):
                    continue  # the output holds it rightly, in an attribute kept
                seen.add(folded)
                out.append(ident)
        return out


def search(path: str | Path | bytes, values: list[Identifier]) -> list[Hit]:
    """Where in the file at ``path`` (or in these bytes of a file) any of ``values``
    appears.

    The file is read whole: file meta, every element of the dataset and of nested
    sequences and private blocks, text decoded with the file's character sets,
    and the bytes of OB, OW and UN values in ASCII, UTF-8, Latin-1 and the file's
    character set. Then the raw bytes of the file (preamble and anything not
    parsed) are scanned, all but the Pixel Data value, in which short strings match
    by chance.

    Parameters
    ----------
    path : str, Path or bytes
        The output file, or its bytes (an instance about to be sent).
    values : list of Identifier
        From ``identifying_values`` of its source.

    Returns
    -------
    list of Hit
        One per attribute and identifier; empty when nothing survived.
    """

    data = path if isinstance(path, bytes) else Path(path).read_bytes()
    ds = dcmread(BytesIO(data), force=True)  # elements stay raw until walked
    deflated = str(getattr(ds, "file_meta", {}).get("TransferSyntaxUID", "")) == _DEFLATED
    skip = _pixel_span(ds, data, deflated)
    raw = data[: skip[0]] + b"\0" + data[skip[1] :]
    needles = _Needles(values, _charsets(ds))
    in_raw = needles.present(raw)
    if not in_raw and not deflated and all(ident.value.isascii() for ident in values):
        # ASCII is stored as itself in every character set DICOM allows, so text that
        # is nowhere in the bytes is in no element: the walk cannot find more.
        return []
    segments = _Segments()
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        segments.walk(meta, "")
    segments.walk(ds, "")
    hits: dict[tuple[str, Identifier], Hit] = {}
    for where, ident in needles.in_text(segments.texts, segments.text_paths):
        hits.setdefault((where, ident), Hit(where, ident))
    # Every byte value of the file is in ``raw``, unless the file is deflated.
    in_values = needles.raw if deflated else in_raw
    for where, ident in needles.in_bytes(segments.blobs, segments.blob_paths, in_values):
        hits.setdefault((where, ident), Hit(where, ident))
    # The raw scan: the preamble, which no element holds, always reports; elsewhere it
    # reports what the walk did not see (bytes pydicom did not parse).
    found = {ident for _, ident in hits}
    preamble = 128 if data[128:132] == b"DICM" else 0
    for offset, ident in needles.in_raw(raw, in_raw):
        if offset < preamble:
            hits.setdefault(("preamble", ident), Hit("preamble", ident))
        elif ident not in found:
            found.add(ident)
            at = offset if offset < skip[0] else offset - 1 + skip[1] - skip[0]
            where = f"raw bytes at offset {at}"
            hits.setdefault((where, ident), Hit(where, ident))
    return list(hits.values())


class _Segments:
    """The text and byte values of an output dataset, each with its attribute path."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.text_paths: list[str] = []
        self.blobs: list[bytes] = []
        self.blob_paths: list[str] = []

    def walk(self, ds: Dataset, prefix: str) -> None:
        for elem in ds:
            if int(elem.tag) in _PIXEL_TAGS:
                continue
            vr = elem.VR
            if vr == "SQ":
                path = prefix + _name(elem)
                for i, item in enumerate(elem.value or ()):
                    self.walk(item, f"{path}[{i}].")
                continue
            value = elem.value
            if value is None or vr in _SKIP_VRS:
                continue
            if isinstance(value, bytes | bytearray):
                if value:
                    self.blobs.append(bytes(value))
                    self.blob_paths.append(prefix + _name(elem))
                continue
            text = _text_of(elem)
            if text:
                self.texts.append(text)
                self.text_paths.append(prefix + _name(elem))


class _Needles:
    """The identifiers as folded text and as encoded bytes.

    Each needle is looked for with ``in`` first (a C scan); only where it occurs are
    its occurrences found and checked one by one for standing on their own.
    """

    def __init__(self, values: list[Identifier], charsets: list[str]) -> None:
        self.text: dict[str, list[Identifier]] = {}
        self.raw: dict[bytes, list[Identifier]] = {}
        for ident in values:
            self.text.setdefault(ident.value.casefold(), []).append(ident)
            for encoded in _encodings(ident.value, charsets):
                if len(encoded) >= MIN_BINARY_BYTES:
                    self.raw.setdefault(encoded.lower(), []).append(ident)

    def in_text(self, texts: list[str], paths: list[str]) -> Iterable[tuple[str, Identifier]]:
        if not texts:
            return
        folded = [t.casefold() for t in texts]
        blob = "\0".join(folded)
        starts = _starts(folded)
        for needle, idents in self.text.items():
            for at in _occurrences(blob, needle, idents[0].kind):
                where = paths[bisect_right(starts, at) - 1]
                for ident in idents:
                    yield where, ident

    def present(self, data: bytes) -> dict[bytes, list[Identifier]]:
        """The byte needles that occur in ``data`` at all (ASCII case ignored)."""
        lowered = data.lower()
        return {needle: idents for needle, idents in self.raw.items() if needle in lowered}

    def in_bytes(
        self, blobs: list[bytes], paths: list[str], needles: dict[bytes, list[Identifier]]
    ) -> Iterable[tuple[str, Identifier]]:
        if not blobs or not needles:
            return
        lowered = [b.lower() for b in blobs]
        blob = b"\0".join(lowered)
        starts = _starts(lowered)
        for needle, idents in needles.items():
            for at in _occurrences(blob, needle, idents[0].kind):
                where = paths[bisect_right(starts, at) - 1]
                for ident in idents:
                    yield where, ident

    def in_raw(
        self, data: bytes, needles: dict[bytes, list[Identifier]]
    ) -> Iterable[tuple[int, Identifier]]:
        lowered = data.lower()
        for needle, idents in needles.items():
            for at in _occurrences(lowered, needle, idents[0].kind):
                for ident in idents:
                    yield at, ident


def _kept_unlisted(tag: int, vr: str | None) -> bool:
    """Whether the profile surely keeps a public attribute the table does not list
    (the cases ``_Collector._unlisted_gone`` looks at more closely are not)."""

    return vr not in _MAYBE_GONE and tag in DicomDictionary and tag >> 16 & 0xFF01 not in _GRAPHICS


def _weak(ident: Identifier) -> bool:
    """Whether ``ident`` is dropped when the profile keeps its text elsewhere: text of
    weak kinds, anything from a private (or unknown) attribute, names of two letters."""
    value = ident.value
    return ident.kind in _WEAK or ident.path.endswith(")") or (len(value) <= 2 and value.isascii())


def _occurrences(blob: str | bytes, needle: str | bytes, kind: str) -> Iterable[int]:
    """Where ``needle`` stands on its own in ``blob``: not inside a longer word or
    number, a number not inside a decimal or a UID, a UID not inside a longer one
    (a date may run on into a time, as in a DT). Bytes count only ASCII letters and
    digits as word characters."""
    text = isinstance(blob, str)
    first = _char(needle, 0)
    last = _char(needle, len(needle) - 1)
    plain = _as_str(needle)
    numeric = plain[:1].isdigit() and plain[-1:].isdigit() and plain.replace(".", "").isdigit()
    head = kind == "uid" or _spaced(first, text)
    tail = kind != "date" and (kind == "uid" or _spaced(last, text))
    find = blob.find
    at = find(needle)  # type: ignore[arg-type]
    while at >= 0:
        end = at + len(needle)
        ok = True
        if head and at > 0:
            before = _char(blob, at - 1)
            ok = not (_word(before, text) or ((numeric or kind == "uid") and before == "."))
        if ok and tail and end < len(blob):
            after = _char(blob, end)
            if kind == "uid":
                ok = not after.isdigit()
            else:
                ok = not _word(after, text)
                if ok and numeric and after == "." and end + 1 < len(blob):
                    ok = not _char(blob, end + 1).isdigit()
        if ok:
            yield at
        at = find(needle, at + 1)  # type: ignore[arg-type]


def _char(value: str | bytes, index: int) -> str:
    """The character at ``index`` (a byte as its Latin-1 character)."""
    item = value[index]
    return item if isinstance(item, str) else chr(item)


def _as_str(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode("latin-1")


def _word(char: str, text: bool) -> bool:
    """Whether ``char`` continues a word or number (letters of any script in text,
    ASCII letters and digits in bytes)."""
    return char.isalnum() if text else (char.isascii() and char.isalnum())


def _spaced(char: str, text: bool) -> bool:
    """Whether ``char`` is a letter or digit of a script that separates words."""
    if not text:
        return char.isascii() and char.isalnum()
    return char.isalnum() and ord(char) < 0x2E80  # CJK, kana and hangul run on


def _starts(parts: list[str] | list[bytes]) -> list[int]:
    """Where each part begins in the parts joined with one separator."""
    starts: list[int] = []
    offset = 0
    for part in parts:
        starts.append(offset)
        offset += len(part) + 1
    return starts


def _encodings(value: str, charsets: list[str]) -> set[bytes]:
    """The byte forms ``value`` may take in a file: UTF-8, Latin-1, the file's charsets."""

    forms = {value.encode("utf-8")}
    with contextlib.suppress(UnicodeEncodeError):
        forms.add(value.encode("latin-1"))
    if charsets:
        with contextlib.suppress(UnicodeError, LookupError, ValueError):
            forms.add(encode_string(value, charsets))
    return forms


def _charsets(ds: Dataset) -> list[str]:
    """The Python codecs of the dataset's Specific Character Set."""

    try:
        raw = ds.get("SpecificCharacterSet")
    except Exception:  # a malformed value must not stop the search
        return []
    if not raw:
        return []
    try:
        return list(convert_encodings([str(v) for v in _values(raw)]))
    except (LookupError, ValueError):
        return []


def _pixel_span(ds: Dataset, data: bytes, deflated: bool) -> tuple[int, int]:
    """Where the top-level Pixel Data value lies in ``data`` ((n, n) when it has none)."""
    end = len(data)
    if deflated:
        return _meta_end(ds, data), end  # the rest is deflated: only the meta reads as is

    for tag in _PIXEL_TAGS:
        raw = ds._dict.get(Tag(tag))  # the offset is only on the raw, unconverted element
        start = getattr(raw, "value_tell", None)
        if raw is None or start is None:
            continue
        length = len(raw.value or b"")
        if getattr(raw, "length", 0) == 0xFFFFFFFF:
            length += 8  # the sequence delimiter item after the fragments
        return start, min(start + length, end)
    return end, end


def _meta_end(ds: Dataset, data: bytes) -> int:
    """The offset just past the file meta group."""
    group_length = getattr(ds, "file_meta", {}).get("FileMetaInformationGroupLength")
    start = 132 if data[128:132] == b"DICM" else 0
    return min(len(data), start + 12 + int(group_length)) if group_length else start


def _encodings_of(ds: Dataset) -> list[str]:
    """The Python codecs of a dataset's text (an item's own, else its parent's)."""
    try:
        found = ds._character_set  # pydicom's: follows an item up to its parents
    except Exception:  # a malformed Specific Character Set: read as pydicom's default
        return ["iso8859"]
    if not found:
        return ["iso8859"]
    return [found] if isinstance(found, str) else list(found)


_SINGLE_VALUED = {"LT", "ST", "UT", "UR"}
_ASCII_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI"}


def _values_of(item: object, vr: str, encodings: list[str]) -> list[str] | bytes:
    """An element's values as text (a list, empty when it has none), or its bytes for
    binary VRs; numbers are not read (nothing here looks at them)."""

    if vr in _SKIP_VRS:
        return []
    value = item.value  # type: ignore[attr-defined]
    if value is None:
        return []
    if not isinstance(item, RawDataElement):  # converted already (a sequence's sibling...)
        if isinstance(value, bytes | bytearray):
            return bytes(value)
        return [t for t in (str(v).strip(" \0") for v in _values(value)) if t]
    if vr in _BINARY_VRS or vr not in _TEXT_VRS | _ASCII_VRS | {"UC"}:
        return bytes(value)
    parts = [value] if vr in _SINGLE_VALUED else value.split(b"\\")
    if vr in _ASCII_VRS:
        texts = [p.decode("latin-1") for p in parts]
    elif vr == "PN":
        texts = [
            "=".join(decode_bytes(group, encodings, {0x5E}) for group in p.split(b"="))
            for p in parts
        ]
    else:
        texts = [decode_bytes(p, encodings, TEXT_VR_DELIMS) for p in parts]
    return [t for t in (text.strip(" \0") for text in texts) if t]


@lru_cache(maxsize=4096)
def _tag_name(tag: int) -> str:
    """A tag's name in a path: its keyword, or ``(gggg,eeee)``."""

    return keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _name(elem: object) -> str:
    """An element's name in a path: its keyword, or ``(gggg,eeee)``."""
    keyword = getattr(elem, "keyword", "")
    if keyword:
        return str(keyword)
    tag = int(elem.tag)  # type: ignore[attr-defined]
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _creator(ds: Dataset, tag: object) -> str | None:
    """The private creator of a private attribute's block, if the block has one."""
    group, element = int(tag) >> 16, int(tag) & 0xFFFF  # type: ignore[call-overload]
    elem = ds.get((group << 16) | (element >> 8))
    if elem is None or not isinstance(elem.value, str):
        return None
    return elem.value.strip() or None


def _values(value: object) -> list[object]:
    """A possibly multi-valued attribute's values as a list (a name is one value)."""

    if isinstance(value, MultiValue | list | tuple):
        return list(value)
    return [value]


def _text_of(elem: object) -> str:
    """An element's value as text ("" for numbers, binary values and sequences)."""
    vr = str(elem.VR)  # type: ignore[attr-defined]
    value = elem.value  # type: ignore[attr-defined]
    if value is None or vr in _SKIP_VRS or isinstance(value, bytes | bytearray):
        return ""
    return "\\".join(str(v) for v in _values(value))


def _printable(value: bytes) -> list[str]:
    """The text values a byte value holds, if it reads as printable Latin-1 text."""
    value = value.rstrip(b"\0 ")
    if not value or _UNPRINTABLE.search(value):
        return []
    return [part for part in value.decode("latin-1").split("\\") if part.strip()]


def _is_date(value: str) -> bool:
    """Whether ``value`` is a plausible YYYYMMDD date (years 1901..2199)."""
    if len(value) != 8 or not value.isdigit():
        return False
    year, month, day = int(value[:4]), int(value[4:6]), int(value[6:])
    return 1901 <= year <= 2199 and 1 <= month <= 12 and 1 <= day <= 31


def _is_number(value: str) -> bool:
    """Whether each backslash-separated part of ``value`` reads as a number."""
    try:
        for part in value.split("\\"):
            float(part)
    except ValueError:
        return False
    return True


# -- the pass as export and send run it --------------------------------------------------


def audit(options: Options) -> Callable[[Dataset], Callable[[bytes], list[dict[str, str]]]]:
    """The verification pass for :func:`tui.archive.media.export`: given a source before
    its de-identification, the check of the bytes written from it (each hit as strings:
    ``path`` in the output, ``identifier`` the value, ``kind``, ``source`` its path in
    the source)."""

    def prepare(source: Dataset) -> Callable[[bytes], list[dict[str, str]]]:
        values = identifying_values(source, options)
        return lambda data: [hit.report() for hit in search(data, values)]

    return prepare


class LeftIdentifying(Exception):
    """The verification pass found an identifying value in an instance about to be sent."""


def checked(apply: Callable[[Dataset], None], options: Options) -> Callable[[Dataset], None]:
    """``apply`` (a de-identifier's) followed by the verification pass on the instance's
    encoding: one in which an identifying value survives raises :class:`LeftIdentifying`
    (naming the attributes, never the values), so ``send`` leaves it out."""
    from tui.archive.encode import encode

    def transform(ds: Dataset) -> None:
        values = identifying_values(ds, options)
        apply(ds)
        hits = search(encode(ds), values)
        if hits:
            where = ", ".join(sorted({hit.path for hit in hits}))
            raise LeftIdentifying(f"identifying values left in {where}: not sent")

    return transform
