"""QIDO-RS: the queries of :mod:`tui.net.find`, asked of a DICOMweb node.

:func:`run` takes the same prepared queries (:class:`tui.net.find.Query`: level and keys) and
yields the same dicts: DICOM keywords to text as C-FIND gives them (person names as
``Family^Given``, several values joined with ``\\``, numbers as written). Keys with a value
are matching parameters; keys without one are ``includefield``.

Answers are read page by page (``limit``/``offset``), and each page is parsed as it arrives:
the first result is out as soon as its JSON object has come, not when the page has. A
server that ignores ``limit`` (a page longer than asked) is read to the end of that page
and not asked again; one that ignores ``offset`` (a page repeating results) is stopped at
the repeat, with a warning: never an endless loop.
"""

from __future__ import annotations

import codecs
import http.client
import json
import logging
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tui.errors import UserError
from tui.net import errors
from tui.net.dicomweb.client import Client, resource
from tui.net.nodes import Node

log = logging.getLogger(__name__)

PAGE = 1000  # results asked per request
READ = 1 << 16  # bytes read at a time: small, so the first result shows at once
JSON = {"Accept": "application/dicom+json"}
# The key that tells results apart at each level, as a QIDO-RS tag.
_UNIQUE = {"study": "0020000D", "series": "0020000E", "image": "00080018"}
_PATHS = {"study": "studies", "series": "series", "image": "instances"}

Result = dict[str, str]


class WebKey(Protocol):
    """What a query key is here (:class:`tui.net.find.Key`, or :class:`Listing`'s own)."""

    @property
    def keyword(self) -> str: ...

    @property
    def tag(self) -> int: ...

    @property
    def vr(self) -> str: ...

    @property
    def value(self) -> str: ...


class WebQuery(Protocol):
    """What a query is here: :class:`tui.net.find.Query`, or a :class:`Listing`."""

    @property
    def level(self) -> str: ...

    @property
    def keys(self) -> Sequence[WebKey]: ...


@dataclass(frozen=True)
class _Key:
    keyword: str
    tag: int
    vr: str
    value: str = ""


@dataclass(frozen=True)
class Listing:
    """The instances of a study (or of one of its series): what a retrieve asks first."""

    study: str
    series: str | None = None
    level: str = "image"

    @property
    def keys(self) -> list[_Key]:
        return [
            _Key("StudyInstanceUID", 0x0020000D, "UI", self.study),
            _Key("SeriesInstanceUID", 0x0020000E, "UI", self.series or ""),
            _Key("SOPInstanceUID", 0x00080018, "UI"),
            _Key("SOPClassUID", 0x00080016, "UI"),
            _Key("InstanceNumber", 0x00200013, "IS"),
        ]


@dataclass(frozen=True)
class _Count:
    """How many instances a study (or one of its series) has: one result, or none."""

    study: str
    series: str | None = None

    @property
    def level(self) -> str:
        return "series" if self.series else "study"

    @property
    def keys(self) -> list[_Key]:
        if self.series:
            return [_Key("StudyInstanceUID", 0x0020000D, "UI", self.study),
                    _Key("SeriesInstanceUID", 0x0020000E, "UI", self.series),
                    _Key("NumberOfSeriesRelatedInstances", 0x00201209, "IS")]  # fmt: skip
        return [_Key("StudyInstanceUID", 0x0020000D, "UI", self.study),
                _Key("NumberOfStudyRelatedInstances", 0x00201208, "IS")]  # fmt: skip


def count(client: Client, study: str, series: str | None = None) -> int | None:
    """The number of instances of ``study`` (or its ``series``) on the node, by a QIDO-RS
    of that one study (series): cheap, where listing the instances is not.

    Returns None when the server does not say; raises when it has no such study (series).
    """
    found = list(_query(client, _Count(study, series), 2, None))
    if not found:
        where = f"series {series}" if series else f"study {study}"
        raise errors.NetError(f"{client.node.name} ({client.node.address}) has no {where}")
    text = found[0][_Count(study, series).keys[-1].keyword]
    return int(text) if text.isdigit() else None


def instances(client: Client, study: str, series: str | None = None) -> list[Result]:
    """The instances the node holds of ``study`` (or of its ``series``), by QIDO-RS: their
    StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID, SOPClassUID and InstanceNumber."""
    return [r for r in _query(client, Listing(study, series), None, None) if r["SOPInstanceUID"]]


def run(
    node: Node,
    queries: Sequence[WebQuery],
    limit: int | None,
    cancel: threading.Event | None,
    unique: tuple[str, bool] | None,
) -> Generator[Result, None, None]:
    """Run ``queries`` (``tui.net.find``'s) in turn over QIDO-RS; yield one dict per match.

    ``limit``, ``cancel`` and ``unique`` (the key to de-duplicate by, and whether to leave
    it out of the results) mean what they mean for :func:`tui.net.find.find_split`.
    """
    seen: set[str] = set()
    count = 0
    with Client(node) as client:
        for query in queries:
            for result in _query(client, query, None if limit is None else limit - count, cancel):
                if unique is not None:
                    key, hide = unique
                    uid = result.pop(key) if hide else result[key]
                    if uid and uid in seen:
                        continue
                    seen.add(uid)
                yield result
                count += 1
                if limit is not None and count >= limit:
                    return
            if cancel is not None and cancel.is_set():
                return


def path_and_params(query: WebQuery, fuzzy: bool = False) -> tuple[str, list[tuple[str, str]]]:
    """The QIDO-RS resource and its parameters for ``query`` (without limit and offset).

    A single StudyInstanceUID (and SeriesInstanceUID) given as a match goes into the path,
    which every server answers (some answer only hierarchical queries).
    """
    if query.level not in _PATHS:
        raise UserError(
            f"DICOMweb (QIDO-RS) has no {query.level} level: query studies, series or images"
        )
    if getattr(query, "model", "study") != "study":
        raise UserError("DICOMweb (QIDO-RS) has no patient root model: leave out --model")
    values = {k.keyword: k.value for k in query.keys}
    path = ""
    study, series = values.get("StudyInstanceUID", ""), values.get("SeriesInstanceUID", "")
    in_path = set()
    if query.level != "study" and _single_uid(study):
        path = resource("studies", study)
        in_path.add("StudyInstanceUID")
        if query.level == "image" and _single_uid(series):
            path += resource("series", series)
            in_path.add("SeriesInstanceUID")
    path += "/" + _PATHS[query.level]
    params: list[tuple[str, str]] = []
    fields = []
    for key in query.keys:
        if key.keyword in in_path:
            fields.append(key.keyword)  # asked in the path, and wanted back as well
        elif key.value:
            params.append((key.keyword, _match(key)))
        else:
            fields.append(key.keyword)
    if fields:
        params.append(("includefield", ",".join(fields)))
    if fuzzy:
        params.append(("fuzzymatching", "true"))
    return path, params


def _single_uid(value: str) -> bool:
    return bool(value) and not any(c in value for c in "\\*?,")


def _match(key: WebKey) -> str:
    """A C-FIND match value as QIDO-RS takes it: several values (``CT\\MR``, a list of UIDs)
    separated by commas, for any attribute (PS3.18 8.3.4.1); wildcards and ranges as they
    are. (A backslash is DICOM's value separator, never part of a value.)"""
    return key.value.replace("\\", ",")


def _query(
    client: Client, query: WebQuery, limit: int | None, cancel: threading.Event | None
) -> Iterator[Result]:
    """One query, page by page, until a page comes back short, the limit, or a server that
    ignores paging."""
    node = client.node
    path, params = path_and_params(query, node.fuzzymatching)
    unique_tag = _UNIQUE[query.level]
    decoders = [(k.keyword, f"{k.tag:08X}", k.vr) for k in query.keys]
    # Rows of the earlier pages, whole (the unique key and every value asked): one coming
    # again on a later page means the server ignores offset. Within one page a UID may
    # come twice and rightly so (the same study filed under two patients): both are
    # results, which only their other values tell apart.
    seen: set[tuple[str, ...]] = set()
    offset = sent = 0
    while True:
        size = PAGE if limit is None else min(PAGE, limit - offset)
        url = client.url("qido", path, [*params, ("limit", str(size)), ("offset", str(offset))])
        got = repeated = 0
        page: set[tuple[str, ...]] = set()
        response = client.request("GET", url, JSON, what="the query")
        # A server whose pages are shorter than asked says there is more (PS3.18 8.3.4.4).
        more = "additional results" in (response.getheader("Warning") or "").lower()
        try:
            if response.status == 204:  # no content: no match
                return
            for item in _objects(client, response):
                got += 1
                result = {keyword: value_text(item.get(tag), vr) for keyword, tag, vr in decoders}
                row = (value_text(item.get(unique_tag), "UI"), *result.values())
                if row in seen:
                    repeated += 1
                    continue
                page.add(row)
                yield result
                sent += 1
                if cancel is not None and cancel.is_set():
                    return
        finally:
            client.release(response)
        seen |= page
        if repeated:
            log.warning(
                "%s ignores offset (page %d repeated %d results): stopped after %d results; "
                "there may be more: narrow the query",
                node.name, offset // PAGE + 1, repeated, sent,
            )  # fmt: skip
            return
        if got > size:
            log.warning(
                "%s ignores limit (%d results for a page of %d): read them all, no more pages",
                node.name, got, size,
            )  # fmt: skip
            return
        offset += got
        if not got or (got < size and not more) or (limit is not None and offset >= limit):
            return


def _objects(client: Client, response: http.client.HTTPResponse) -> Iterator[dict[str, Any]]:
    """The objects of a JSON array, each as soon as it has come whole."""
    decoder = json.JSONDecoder()
    text = codecs.getincrementaldecoder("utf-8")("replace")  # a character split by a read
    buf = ""
    pos = 0
    started = False

    def more() -> bool:
        nonlocal buf, pos
        try:
            data = response.read1(READ)
        except (OSError, http.client.HTTPException) as exc:
            raise client.failure(exc, "the query") from None
        if not data:
            return False
        buf = buf[pos:] + text.decode(data)
        pos = 0
        return True

    while True:
        while pos < len(buf) and buf[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(buf):
            if more():
                continue
            if not started:  # an empty body: no match
                return
            raise errors.NetError(
                f"{client.node.name} ({client.node.address}) cut the query's answer short"
            )
        if not started:
            if buf[pos] != "[":
                raise _not_json(client)
            started = True
            pos += 1
            continue
        if buf[pos] == "]":
            return
        try:
            item, end = decoder.raw_decode(buf, pos)
        except json.JSONDecodeError:
            if more():
                continue
            raise _not_json(client) from None
        if not isinstance(item, dict):
            raise _not_json(client)
        pos = end
        yield item


def _not_json(client: Client) -> errors.NetError:
    node = client.node
    return errors.NetError(
        f"{node.name} ({node.address}) answered the query with something that is not a "
        "DICOM JSON array: check that the URL is the server's DICOMweb root"
    )


def value_text(element: Any, vr: str) -> str:
    """A DICOM JSON element's value as C-FIND's text: several values joined with ``\\``."""
    if not isinstance(element, dict):
        return ""
    values = element.get("Value")
    if not isinstance(values, list) or not values:
        return ""
    if len(values) == 1 and type(values[0]) is str:  # most values: one string, as it is
        return values[0]
    vr = element.get("vr", vr)
    return "\\".join([_value(v, vr) for v in values])


def _value(value: Any, vr: str) -> str:
    if isinstance(value, dict):  # a person name's component groups
        if vr != "PN":
            return ""  # a sequence item: not a C-FIND key
        groups = [str(value.get(g, "")) for g in ("Alphabetic", "Ideographic", "Phonetic")]
        while groups and not groups[-1]:
            groups.pop()
        return "=".join(groups)
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:g}" if vr in ("FL", "FD") else repr(value).removesuffix(".0")
    return str(value)


def echo(node: Node) -> tuple[float, float]:
    """A cheap QIDO-RS (one study at most), twice: seconds for the whole exchange (the
    connection included) and for the second query alone, once connected."""
    started = time.perf_counter()
    # An echo waits acse_timeout for its answer, as a DIMSE echo waits for the association:
    # a silent server is reported in seconds, not after network_timeout (minutes).
    with Client(node, answer_timeout=node.acse_timeout) as client:
        url = client.url("qido", "/studies", [("limit", "1"), ("includefield", "0020000D")])
        response = client.request("GET", url, JSON, what="the echo (a QIDO-RS)")
        try:
            response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise client.failure(exc, "the echo (a QIDO-RS)") from None
        first = time.perf_counter()  # connected: the same query again times the server
        response = client.request("GET", url, JSON, what="the echo (a QIDO-RS)")
        try:
            response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise client.failure(exc, "the echo (a QIDO-RS)") from None
        again = time.perf_counter()
    return again - started, again - first
