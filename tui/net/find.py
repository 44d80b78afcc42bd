"""C-FIND: query a PACS and stream its answers as plain dicts, fast.

Requests are encoded and responses decoded here, straight from and to bytes, over the
minimal upper layer in :mod:`tui.net.dul`: only the keys asked for are decoded, once, by the
response's SpecificCharacterSet (with pydicom's :mod:`pydicom.charset`). pynetdicom's
dataset handling per response made 10,000 studies take 7-10 s; this keeps up with the PACS
(``benchmarks/bench_find.py``).

A query stops early, with a C-CANCEL, when a ``limit`` is reached, when the ``cancel`` event
is set (Esc in the app), or when the consumer stops iterating (Ctrl-C in the CLI closes the
generator); the association is then drained and released, never left half-way.
"""

from __future__ import annotations

import datetime as dt
import logging
import struct
import threading
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tui.archive.elements import LONG_VRS
from tui.errors import UserError
from tui.net import errors
from tui.net.dul import (
    CANCEL_GRACE,
    COMMAND_FIELD,
    DATASET_TYPE,
    NO_DATASET,
    RESPONDED_TO,
    Association,
    Command,
    Context,
    Deadline,
    Interrupted,
    encode_command,
    read_elements,
)
from tui.net.nodes import Node
from tui.net.status import (
    C_CANCEL_RQ,
    C_FIND_RQ,
    C_FIND_RSP,
    CANCELLED,
    FIND,
    PENDING,
    category,
    status_text,
)

log = logging.getLogger(__name__)

LEVELS = ("patient", "study", "series", "image")
MODELS = {
    # model: (FIND SOP class UID, its name for messages)
    "study": ("1.2.840.10008.5.1.4.1.2.2.1", "Study Root Query/Retrieve - FIND"),
    "patient": ("1.2.840.10008.5.1.4.1.2.1.1", "Patient Root Query/Retrieve - FIND"),
}
# The key that identifies a result at each level (for de-duplication).
UNIQUE_KEYS = {
    "patient": "PatientID",
    "study": "StudyInstanceUID",
    "series": "SeriesInstanceUID",
    "image": "SOPInstanceUID",
}
# What a PACS browser shows at each level, when the caller names no return keys.
DEFAULT_KEYS = {
    "patient": ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                "NumberOfPatientRelatedStudies", "NumberOfPatientRelatedSeries",
                "NumberOfPatientRelatedInstances"),
    "study": ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
              "StudyTime", "AccessionNumber", "StudyID", "StudyDescription", "ModalitiesInStudy",
              "ReferringPhysicianName", "StudyInstanceUID", "NumberOfStudyRelatedSeries",
              "NumberOfStudyRelatedInstances"),
    "series": ("StudyInstanceUID", "SeriesInstanceUID", "Modality", "SeriesNumber",
               "SeriesDescription", "BodyPartExamined", "SeriesDate", "SeriesTime",
               "NumberOfSeriesRelatedInstances"),
    "image": ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID",
              "InstanceNumber", "NumberOfFrames"),
}  # fmt: skip

_CHARSET_TAG, _LEVEL_TAG = 0x00080005, 0x00080052
_UTF8 = "ISO_IR 192"

# Value representations by how their values are written.
_CHARSET_VRS = frozenset({"SH", "LO", "ST", "LT", "UC", "UT", "PN"})  # by SpecificCharacterSet
_ASCII_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI", "UR"})
_SINGLE_VRS = frozenset({"ST", "LT", "UT"})  # one value, leading spaces significant
_BINARY_VRS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d", "UV": "Q",
               "SV": "q"}  # fmt: skip

Result = dict[str, str]
Decoder = Callable[[bytes, list[str]], str]
# The keys a retrieve lists a study's instances with, known without pydicom's dictionary.
_UID_KEYS = {"StudyInstanceUID": 0x0020000D, "SeriesInstanceUID": 0x0020000E,
             "SOPInstanceUID": 0x00080018, "SOPClassUID": 0x00080016}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Key:
    """One attribute of a query: its keyword, tag, VR and the value to match ("": return)."""

    keyword: str
    tag: int
    vr: str
    value: str


# -- the request -----------------------------------------------------------------------------


def default_keys(level: str) -> dict[str, str]:
    """The return keys shown at ``level``, as a ``keys`` mapping to extend with filters."""
    return dict.fromkeys(DEFAULT_KEYS[_level(level)], "")


def _level(level: str) -> str:
    if level not in LEVELS:
        raise UserError(f"level {level!r}: use one of {', '.join(LEVELS)}")
    return level


def make_key(keyword: str, value: str) -> Key:
    """A :class:`Key` for a DICOM keyword, or a :class:`UserError` saying why not."""
    if keyword in ("QueryRetrieveLevel", "SpecificCharacterSet"):
        raise UserError(f"{keyword} is set by pacs-tui: leave it out of the keys")
    tag: int | None = _UID_KEYS.get(keyword)
    vr = "UI"
    if tag is None:
        from pydicom.datadict import dictionary_VR, tag_for_keyword

        tag = tag_for_keyword(keyword)
        if tag is None:
            raise UserError(
                f"{keyword!r} is not a DICOM keyword (for example PatientName, StudyDate)"
            )
        vr = str(dictionary_VR(tag)).split(" or ")[0]  # "US or SS": pixel tags, as the first
    if vr not in _CHARSET_VRS and vr not in _ASCII_VRS and vr not in _BINARY_VRS:
        raise UserError(f"{keyword} ({vr}) cannot be a C-FIND key here: sequences and binary data")
    if value and vr in _BINARY_VRS:
        raise UserError(f"{keyword} is binary ({vr}): it can be a return key only, without a value")
    if vr not in _CHARSET_VRS and not value.isascii():
        raise UserError(f"{keyword} ({vr}) takes ASCII only, not {value!r}")
    if "\x00" in value:
        raise UserError(f"{keyword}: a value cannot hold a NUL character")
    return Key(keyword, tag, vr, value)


class Query:
    """A prepared C-FIND: the identifier to send and the decoder of its responses.

    Parameters
    ----------
    level
        patient, study, series or image.
    keys
        DICOM keywords to match values ("" for a return key). Wildcards (``*``, ``?``),
        ranges (``20200101-20201231``) and lists (``CT\\MR``) are DICOM matching, passed
        through. With no return keys among them (only filters, or none), the level's
        :data:`DEFAULT_KEYS` are returned too.
    model
        study (Study Root) or patient (Patient Root).
    """

    def __init__(self, level: str, keys: Mapping[str, str] | None, model: str = "study") -> None:
        self.level = _level(level)
        if model not in MODELS:
            raise UserError(f"model {model!r}: use study or patient")
        if model == "study" and level == "patient":
            raise UserError("the study root model has no patient level: query with --model patient")
        self.model = model
        given = dict(keys or {})
        if all(given.values()):  # filters only: show what a browser shows, filtered
            given = {**default_keys(level), **given}
        self.keys = [make_key(keyword, str(value)) for keyword, value in given.items()]
        self._wanted = frozenset([_CHARSET_TAG, *(k.tag for k in self.keys)])
        self._decoders = [(k.keyword, k.tag, decoder(k.vr)) for k in self.keys]
        self._encodings: dict[bytes, list[str]] = {}

    @property
    def sop_class(self) -> str:
        return MODELS[self.model][0]

    def context(self, assoc: Association) -> Context:
        """The presentation context the PACS accepted for this query's model."""
        return assoc.context_for(self.sop_class, MODELS[self.model][1])

    def identifier(self, implicit: bool) -> bytes:
        """The request identifier in Implicit or Explicit VR Little Endian.

        Text is ASCII, or UTF-8 with SpecificCharacterSet ISO_IR 192 when any value needs it.
        """
        utf8 = any(not k.value.isascii() for k in self.keys)
        elements = [Key("QueryRetrieveLevel", _LEVEL_TAG, "CS", self.level.upper()), *self.keys]
        if utf8:
            elements.append(Key("SpecificCharacterSet", _CHARSET_TAG, "CS", _UTF8))
        out = bytearray()
        for key in sorted(elements, key=lambda k: k.tag):
            out += _element(key, implicit)
        return bytes(out)

    def decode(self, node: Node, data: bytes, implicit: bool) -> Result:
        """One response identifier as ``{keyword: text}``, every requested key present."""
        found = read_elements(node, data, implicit, self._wanted)
        raw_charset = found.get(_CHARSET_TAG, b"")
        encodings = self._encodings.get(raw_charset)
        if encodings is None:  # [] where no key is text: UIDs need no codec (nor pydicom)
            text = any(k.vr in _CHARSET_VRS for k in self.keys)
            encodings = python_encodings(raw_charset) if text else []
            self._encodings[raw_charset] = encodings
        result = {}
        for keyword, tag, decode in self._decoders:
            raw = found.get(tag)
            result[keyword] = decode(raw, encodings) if raw else ""
        return result


class Request(Protocol):
    """What :func:`run` needs of a prepared C-FIND: a :class:`Query`, or a query of another
    information model (the modality worklist's :class:`tui.net.worklist.WorklistQuery`)."""

    level: str
    keys: list[Key]

    @property
    def sop_class(self) -> str: ...

    def context(self, assoc: Association) -> Context:
        """The accepted context to query in, or a :class:`NetError` saying the PACS has none."""

    def identifier(self, implicit: bool) -> bytes: ...

    def decode(self, node: Node, data: bytes, implicit: bool) -> Result: ...


def _element(key: Key, implicit: bool) -> bytes:
    """One data element, its value padded to even length as PS3.5 7.1 asks."""
    raw = key.value.encode("utf-8" if key.vr in _CHARSET_VRS else "ascii")
    if len(raw) % 2:
        raw += b"\x00" if key.vr == "UI" else b" "
    tag = struct.pack("<HH", key.tag >> 16, key.tag & 0xFFFF)
    if implicit:
        return tag + struct.pack("<L", len(raw)) + raw
    vr = key.vr.encode("ascii")
    if vr in LONG_VRS:
        return tag + vr + struct.pack("<xxL", len(raw)) + raw
    if len(raw) > 0xFFFF:
        raise UserError(f"{key.keyword}: a value of {len(raw)} bytes is too long for its VR")
    return tag + vr + struct.pack("<H", len(raw)) + raw


# -- decoding values -------------------------------------------------------------------------


class _Pydicom:
    """pydicom's text codecs, imported on first use: a query of UIDs alone (a retrieve's
    list of instances) never loads pydicom, a third of a second of start-up."""

    def __getattr__(self, name: str) -> Any:
        from pydicom import charset, valuerep

        value = getattr(charset, name, None) or getattr(valuerep, name)
        setattr(self, name, value)  # found on the instance from now on
        return value


_pydicom = _Pydicom()


def python_encodings(raw: bytes) -> list[str]:
    """Python codecs for a SpecificCharacterSet value, by pydicom's rules (default: Latin-1)."""
    convert_encodings = _pydicom.convert_encodings
    terms = [t.strip(" \x00") for t in raw.decode("ascii", "replace").split("\\")]
    encodings = [e for e in convert_encodings(terms if any(terms) else None) if _is_text(e)]
    return encodings or convert_encodings(None)


def _is_text(encoding: str) -> bool:
    """Whether ``encoding`` decodes bytes to text: pydicom passes an unknown term on as a
    Python codec name, and a peer may name one that is not (rot13, base64)."""
    try:
        b"a".decode(encoding)  # (empty bytes are decoded without asking the codec)
    except LookupError:
        return False
    return True


def decoder(vr: str) -> Decoder:
    """The function that turns a raw value of ``vr`` into text."""
    if vr == "PN":
        return _person_name
    if vr in _SINGLE_VRS:
        return _long_text
    if vr in _CHARSET_VRS:
        return _short_text
    if vr in _BINARY_VRS:
        return _numbers(_BINARY_VRS[vr])
    return _ascii


def _tidy(text: str) -> str:
    """Without padding; each of several values stripped of its insignificant spaces."""
    text = text.strip(" \x00")
    if "\\" in text:
        return "\\".join(part.strip(" ") for part in text.split("\\"))
    return text


def _ascii(value: bytes, encodings: list[str]) -> str:
    text = value.decode("ascii", "replace").strip(" \x00")
    return _tidy(text) if "\\" in text else text  # inline: ten of these per response


def _short_text(value: bytes, encodings: list[str]) -> str:
    text = _pydicom.decode_bytes(value, encodings, _pydicom.TEXT_VR_DELIMS).strip(" \x00")
    return _tidy(text) if "\\" in text else text


def _long_text(value: bytes, encodings: list[str]) -> str:
    return _pydicom.decode_bytes(value, encodings, _pydicom.TEXT_VR_DELIMS).rstrip(" \x00")


def _person_name(value: bytes, encodings: list[str]) -> str:
    """A person name's text form, ``Family^Given=Ideographic=Phonetic`` (trailing groups off)."""
    if b"=" in value:  # several component groups, each may switch character set: pydicom's way
        return _tidy(str(_pydicom.PersonName(value.rstrip(b" \x00"), encodings)))
    text = _pydicom.decode_bytes(value, encodings, _pydicom.PN_DELIMS).strip(" \x00")
    return _tidy(text) if "\\" in text else text


def _numbers(code: str) -> Decoder:
    size = struct.calcsize("<" + code)

    def decode(value: bytes, encodings: list[str]) -> str:
        if len(value) % size:
            return ""  # not a whole number of values: nothing trustworthy to show
        return "\\".join(f"{v:g}" if code in "fd" else str(v)
                         for (v,) in struct.iter_unpack("<" + code, value))  # fmt: skip

    return decode


# -- the exchange ----------------------------------------------------------------------------


def find(
    node: Node,
    level: str,
    keys: Mapping[str, str] | None = None,
    model: str = "study",
    limit: int | None = None,
    cancel: threading.Event | None = None,
) -> Generator[Result, None, None]:
    """Query ``node`` and yield one dict per match, as the matches arrive.

    Parameters
    ----------
    node
        The PACS.
    level
        patient, study, series or image.
    keys
        DICOM keyword to match value; "" asks for the value back. Wildcards ``*`` and ``?``,
        date ranges ``20200101-20201231`` and value lists are DICOM matching. When no key
        is a return key (only filters, or none), the level's :data:`DEFAULT_KEYS` are
        returned as well.
    model
        study (Study Root Query/Retrieve) or patient (Patient Root).
    limit
        Stop after this many results: the rest is cancelled (C-CANCEL).
    cancel
        When set, the query is cancelled (C-CANCEL) and the iteration ends quietly.

    Yields
    ------
    dict
        Keyword to text for every requested key ("" when the PACS left it out): several
        values joined with ``\\``, person names as ``Family^Given``, decoded by the
        response's SpecificCharacterSet.

    Raises
    ------
    UserError
        At the call, for a bad level, model, keyword or value.
    NetError
        While iterating, when the association fails or the PACS answers with a failure.

    Notes
    -----
    Closing the generator early (``close()``, or its last reference dropped after a
    ``break``) cancels the query and releases the association; a consumer that may stop
    on an exception (Ctrl-C) should iterate inside ``contextlib.closing(find(...))``, so
    that happens at once rather than when the traceback goes. Ctrl-C while the generator
    waits for the PACS cancels as well, and the KeyboardInterrupt goes on.
    """
    query = Query(level, keys, model)
    return _run(node, [query], _limit(limit), cancel, unique=None)


def find_split(
    node: Node,
    level: str,
    keys: Mapping[str, str],
    days: int,
    model: str = "study",
    limit: int | None = None,
    cancel: threading.Event | None = None,
) -> Generator[Result, None, None]:
    """:func:`find` one ``days``-long slice of a StudyDate range at a time, newest first.

    For PACS that truncate large answers: each slice is a smaller query, on the same
    association. Results are de-duplicated by the level's unique key (:data:`UNIQUE_KEYS`).

    Parameters
    ----------
    keys
        Must hold ``StudyDate`` as a range ``YYYYMMDD-YYYYMMDD`` (``YYYYMMDD-`` ends today).
    days
        The length of each slice, at least 1.

    Other parameters are those of :func:`find`.
    """
    if days < 1:
        raise UserError(f"split: {days} days: a slice is at least one day")
    first, last = _date_range(str(keys.get("StudyDate", "")))
    unique = UNIQUE_KEYS[_level(level)]
    probe = Query(level, keys, model)  # the keys as find() would send them
    base = {k.keyword: k.value for k in probe.keys}
    hide = unique not in base
    base.setdefault(unique, "")
    queries = []
    end = last
    while end >= first:
        start = max(first, end - dt.timedelta(days=days - 1))
        slice_keys = {**base, "StudyDate": f"{start:%Y%m%d}-{end:%Y%m%d}"}
        queries.append(Query(level, slice_keys, model))
        end = start - dt.timedelta(days=1)
    return _run(node, queries, _limit(limit), cancel, unique=(unique, hide))


def run(
    node: Node,
    query: Request,
    limit: int | None = None,
    cancel: threading.Event | None = None,
) -> Generator[Result, None, None]:
    """:func:`find` with a prepared query, of any information model (:class:`Request`):
    the same streaming, limit, cancelling and release."""
    return _run(node, [query], _limit(limit), cancel, unique=None)


def _limit(limit: int | None) -> int | None:
    if limit is not None and limit < 1:
        raise UserError(f"limit {limit}: at least 1, or no limit")
    return limit


def _date_range(text: str) -> tuple[dt.date, dt.date]:
    """The two dates of ``YYYYMMDD-YYYYMMDD`` (an open end is today)."""
    start, dash, end = text.partition("-")
    try:
        if not dash or not start:
            raise ValueError
        first = dt.datetime.strptime(start, "%Y%m%d").date()
        last = dt.datetime.strptime(end, "%Y%m%d").date() if end else dt.date.today()
    except ValueError:
        raise UserError(
            f"split: StudyDate {text!r}: give a range YYYYMMDD-YYYYMMDD to split"
        ) from None
    if last < first:
        raise UserError(f"split: StudyDate {text!r} ends before it starts")
    return first, last


def _run(
    node: Node,
    queries: Sequence[Request],
    limit: int | None,
    cancel: threading.Event | None,
    unique: tuple[str, bool] | None,
) -> Generator[Result, None, None]:
    """Open one association, run ``queries`` in turn, release it whatever happens."""
    if node.dicomweb:  # QIDO-RS: the same queries over HTTP
        from tui.net.dicomweb.qido import run as qido

        yield from qido(node, queries, limit, cancel, unique)
        return
    sop_class = queries[0].sop_class  # one model for all
    assoc = Association.open(node, [sop_class])
    seen: set[str] = set()
    count = 0
    try:
        context = queries[0].context(assoc)
        for query in queries:
            results = _exchange(assoc, context, query, cancel)
            try:
                for result in results:
                    if unique is not None:
                        key, hide = unique
                        uid = result.pop(key) if hide else result[key]
                        if uid and uid in seen:  # no UID: nothing to tell it apart by
                            continue
                        seen.add(uid)
                    yield result
                    count += 1
                    if limit is not None and count >= limit:
                        return  # closing ``results`` below sends the C-CANCEL
            finally:
                results.close()
            if cancel is not None and cancel.is_set():
                return
    finally:
        assoc.release()
        log.debug("C-FIND on %s: %d results", node.name, count)


def _exchange(
    assoc: Association, context: Context, query: Request, cancel: threading.Event | None
) -> Generator[Result, None, None]:
    """Send one C-FIND-RQ and yield its matches; cancel it when stopped early."""
    node = assoc.node
    message_id = assoc.next_message_id()
    request = encode_command(
        [(0x00000002, context.abstract_syntax), (COMMAND_FIELD, C_FIND_RQ),
         (0x00000110, message_id), (0x00000700, 0), (DATASET_TYPE, 0x0001)]
    )  # fmt: skip
    assoc.send(context.id, request, query.identifier(context.implicit))
    finished = False
    try:
        while True:
            message = assoc.receive(node.dimse_timeout, cancel)
            status = assoc.response_status(message.command, C_FIND_RSP, message_id, "C-FIND")
            if status in PENDING:
                if message.dataset is not None:
                    try:
                        result = query.decode(node, message.dataset, context.implicit)
                    except errors.NetError:
                        assoc.abort()  # garbage: nothing more to say to this peer
                        raise
                    yield result
                if cancel is not None and cancel.is_set():
                    raise Interrupted
                continue
            finished = True
            _check_final(node, message.command, status, query)
            return
    except Interrupted:
        _cancel(assoc, context, message_id)
    except (GeneratorExit, KeyboardInterrupt):
        if not finished:
            _cancel(assoc, context, message_id)
        raise


def _check_final(node: Node, command: Command, status: int, query: Request) -> None:
    """Raise for a failure status, naming what it means; warnings go to the log."""
    if status == 0 or status == CANCELLED:
        return
    text = status_text(status, FIND)
    if command.error_comment:
        text += f" ({command.error_comment})"
    if category(status) in ("Warning", "Success"):
        log.warning("C-FIND on %s ended with %s", node.name, text)
        return
    above = {"series": ["StudyInstanceUID"], "image": ["StudyInstanceUID", "SeriesInstanceUID"]}
    given = {k.keyword for k in query.keys if k.value}
    missing = [key for key in above.get(query.level, []) if key not in given]
    hint = (
        f": a PACS that answers only hierarchical queries needs {' and '.join(missing)}"
        if missing
        else ""
    )
    raise errors.QueryRefused(f"{node.name} ({node.address}) answered the query with {text}{hint}")


def _cancel(assoc: Association, context: Context, message_id: int) -> None:
    """C-CANCEL the query, then read (and drop) what still comes until its final response.

    A PACS that does not finish within a few seconds gets the association aborted: the
    user asked to stop, so this never raises a :class:`NetError`.
    """
    if not assoc.is_open:
        return
    node = assoc.node
    deadline = Deadline(min(node.dimse_timeout, CANCEL_GRACE))  # however the PACS trickles
    try:
        # The final response may be here already (a limit equal to the number of matches):
        # then there is nothing to cancel, and a C-CANCEL for a finished query makes some
        # PACS (Orthanc) drop the association.
        if assoc.has_data():
            command = assoc.receive(deadline).command
            if command.responded_to == message_id and command.status not in PENDING:
                return
        fields = [(COMMAND_FIELD, C_CANCEL_RQ), (RESPONDED_TO, message_id),
                  (DATASET_TYPE, NO_DATASET)]  # fmt: skip
        assoc.send(context.id, encode_command(fields))
        while True:  # until the final response, or the deadline aborts the association
            command = assoc.receive(deadline).command
            if command.responded_to == message_id and command.status not in PENDING:
                return
    except errors.NetError:
        pass  # the association is closed already: a timeout aborted it
