"""The whole header of one file, as text or in the DICOM JSON model (PS3.18 F), and what
differs between two instances or two series."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.datadict import keyword_for_tag, private_dictionary_description
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, Tag

from tui.archive.header import HeaderError, read_dataset, truncation
from tui.errors import UserError

_BULK_BYTES = 1024  # binary values larger than this are left out of the JSON


def read_header(path: str) -> Dataset:
    """Read every element of ``path`` before the pixel data.

    Raises
    ------
    UserError
        If the file cannot be read or is not DICOM.
    """
    try:
        with open(path, "rb") as fp:
            ds = read_dataset(fp)
        for _ in ds.iterall():  # pydicom converts values when asked: fail here, not midway
            pass
        return ds
    except HeaderError as exc:
        raise UserError(f"{path}: {exc}") from None
    except Exception as exc:  # pydicom raises many types, OSError without errno among them
        if isinstance(exc, OSError) and exc.errno is not None:
            raise UserError(f"{path}: {exc.strerror}") from None
        reason = truncation(path)
        raise UserError(
            f"{path} is truncated: {reason}" if reason else f"{path}: malformed DICOM: {exc}"
        ) from None


def check_whole(path: str) -> None:
    """Say so when ``path`` is cut short (pydicom reads what there is without a word).

    Raises
    ------
    UserError
        If the header or the pixel data runs past the end of the file.
    """
    reason = truncation(path)
    if reason:
        raise UserError(f"{path} is truncated: {reason}")


def to_text(ds: Dataset) -> str:
    """The file meta and dataset, one element a line, sequences indented.

    Private elements are labelled with their creator (and their name where pydicom's
    private dictionary knows it); long values are shortened as pydicom shortens them.
    """
    lines: list[str] = []
    meta = getattr(ds, "file_meta", None)
    if meta:
        _describe(meta, "", lines)
    _describe(ds, "", lines)
    return "\n".join(lines)


def _describe(ds: Dataset, indent: str, lines: list[str]) -> None:
    for element in ds:
        name = _name(ds, element)
        if element.VR == "SQ":
            lines.append(f"{indent}{element.tag} {name}  {len(element.value)} item(s)")
            for number, item in enumerate(element.value, 1):
                lines.append(f"{indent}  > item {number}")
                _describe(item, indent + "    ", lines)
        else:
            lines.append(f"{indent}{element.tag} {name:<40} {element.VR}: {element.repval}")


def _name(ds: Dataset, element: DataElement) -> str:
    tag = element.tag
    if not tag.is_private or tag.is_private_creator:
        return element.name
    creator_element = ds.get(Tag(tag.group, tag.element >> 8))
    creator = str(creator_element.value).strip() if creator_element is not None else "?"
    try:
        return f"[{creator}] {private_dictionary_description(tag, creator)}"
    except KeyError:
        return f"[{creator}] private"


@dataclass
class Element:
    """One element for a tag browser: sequences hold their items' elements."""

    tag: str
    name: str
    vr: str
    value: str  # as pydicom shows it, shortened
    full: str  # the whole value as text
    items: list[list[Element]] = field(default_factory=list)


def elements(ds: Dataset) -> list[Element]:
    """The file meta and dataset as a tree of :class:`Element` (private tags named)."""
    meta = getattr(ds, "file_meta", None)
    return (elements_of(meta) if meta else []) + elements_of(ds)


def elements_of(ds: Dataset) -> list[Element]:
    """The elements of a dataset or sequence item, sequences as nested items."""
    out = []
    for element in ds:
        tag, name = str(element.tag), _name(ds, element)
        if element.VR == "SQ":
            items = [elements_of(item) for item in element.value]
            out.append(Element(tag, name, "SQ", f"{len(items)} item(s)", "", items))
        else:
            out.append(Element(tag, name, element.VR, element.repval, _full(element)))
    return out


def _full(element: DataElement) -> str:
    value = element.value
    if isinstance(value, bytes):
        return f"{len(value)} bytes of binary data"
    if isinstance(value, MultiValue | list):
        return "\\".join(str(v) for v in value)
    return str(value)


def diff(first: Dataset, second: Dataset) -> list[tuple[str, str, str, str]]:
    """Top-level elements that differ: (tag, name, first's value, second's value)."""
    out = []
    tags = sorted(set(first.keys()) | set(second.keys()))
    for tag in tags:
        a, b = first.get(tag), second.get(tag)
        left = "" if a is None else ("<sequence>" if a.VR == "SQ" else _full(a))
        right = "" if b is None else ("<sequence>" if b.VR == "SQ" else _full(b))
        if a is not None and b is not None and a.VR == "SQ":
            if a.value == b.value:
                continue
            left, right = f"{len(a.value)} item(s)", f"{len(b.value)} item(s), differing"
        elif left == right:
            continue
        name = _name(first if a is not None else second, a if a is not None else b)
        out.append((str(tag), name, left, right))
    return out


@dataclass(frozen=True)
class Spread:
    """How one top-level element runs through a series' instances, in order."""

    distinct: int  # how many different values it takes (absent counts as one)
    first: str | None  # its value in the first instance (None: absent)
    last: str | None  # and in the last

    @property
    def constant(self) -> bool:
        return self.distinct == 1

    def __str__(self) -> str:
        first, last = ("<absent>" if v is None else v for v in (self.first, self.last))
        if self.constant:
            return first
        return f"{self.distinct} values: {first} … {last}"  # the count first: values get clipped

    def to_json(self) -> dict[str, Any]:
        """``constant`` and ``value``, or the number of ``distinct`` values ``from`` the
        first instance ``to`` the last (None where absent)."""
        if self.constant:
            return {"constant": True, "value": self.first}
        return {"constant": False, "distinct": self.distinct, "from": self.first, "to": self.last}


_ABSENT = Spread(1, None, None)


@dataclass(frozen=True)
class SeriesRow:
    """One top-level element that differs between two series or varies within one."""

    tag: str
    keyword: str  # "" for private and unknown tags
    name: str
    first: Spread
    second: Spread

    @property
    def varies(self) -> bool:
        """True if it is not constant within one of the series (a per-instance element)."""
        return not (self.first.constant and self.second.constant)


@dataclass(frozen=True)
class SeriesDiff:
    """What :func:`diff_series` found: instance counts and rows, series-level ones first."""

    counts: tuple[int, int]
    rows: list[SeriesRow]

    def to_json(self) -> dict[str, Any]:
        """Instance counts and the rows by DICOM keyword (``GGGGEEEE`` without one)."""
        elements = {
            row.keyword or row.tag.strip("()").replace(",", ""): {
                "tag": row.tag,
                "name": row.name,
                "first": row.first.to_json(),
                "second": row.second.to_json(),
            }
            for row in self.rows
        }
        return {"instances": list(self.counts), "elements": elements}


@dataclass
class _Run:
    name: str
    since: int  # the index of the first instance that has the element
    first: str
    last: str = ""
    until: int = 0  # the index of the last instance that has it
    present: int = 0
    values: set[str] = field(default_factory=set)


def diff_series(first: Iterable[Dataset], second: Iterable[Dataset]) -> SeriesDiff:
    """Compare two series element by element over the union of their top-level tags
    (file meta included).

    An element is reported if it varies within either series, or if it is constant
    within each but not the same in both. The headers are consumed one at a time, so
    a generator keeps one header in memory.
    """
    (count_a, runs_a), (count_b, runs_b) = _runs(first), _runs(second)
    rows = []
    for tag in sorted(runs_a.keys() | runs_b.keys()):
        a, b = _spread(runs_a.get(tag), count_a), _spread(runs_b.get(tag), count_b)
        if a.constant and b.constant and a.first == b.first:
            continue
        run = runs_a.get(tag) or runs_b[tag]
        rows.append(SeriesRow(str(tag), keyword_for_tag(tag), run.name, a, b))
    rows.sort(key=lambda row: row.varies)  # stable: by tag within each group
    return SeriesDiff((count_a, count_b), rows)


def _runs(datasets: Iterable[Dataset]) -> tuple[int, dict[BaseTag, _Run]]:
    runs: dict[BaseTag, _Run] = {}
    count = 0
    for index, ds in enumerate(datasets):
        count += 1
        for element in [*(getattr(ds, "file_meta", None) or []), *ds]:
            value = _value(element)
            run = runs.get(element.tag)
            if run is None:
                run = runs[element.tag] = _Run(_name(ds, element), index, value)
            run.last, run.until = value, index
            run.present += 1
            run.values.add(value)
    return count, runs


def _spread(run: _Run | None, count: int) -> Spread:
    if run is None:
        return _ABSENT
    return Spread(
        len(run.values) + (run.present < count),
        run.first if run.since == 0 else None,
        run.last if run.until == count - 1 else None,
    )


def _value(element: DataElement) -> str:
    """The whole value as text: binary values by size and hash, sequences item by item."""
    if element.VR == "SQ":
        items = ("; ".join(f"{e.tag}={_value(e)}" for e in item) for item in element.value)
        return " ".join(f"[{item}]" for item in items)
    if isinstance(element.value, bytes):
        digest = hashlib.sha256(element.value).hexdigest()[:12]
        return f"{len(element.value)} bytes, sha256 {digest}"
    return _full(element)


def to_json(ds: Dataset, path: str) -> dict[str, Any]:
    """The DICOM JSON model; large binary values become a BulkDataURI to the file.

    An element whose value does not fit its VR (a private DS holding text, say) is
    kept with its values as strings rather than failing the whole header.
    """
    uri = Path(path).resolve().as_uri()

    def bulk(element: DataElement) -> str:
        return f"{uri}#{element.tag.group:04X}{element.tag.element:04X}"

    return _json_dataset(ds, bulk)


def _json_dataset(ds: Dataset, bulk: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for element in ds:
        key = f"{element.tag.group:04X}{element.tag.element:04X}"
        if element.VR == "SQ":
            items = [_json_dataset(item, bulk) for item in element.value]
            out[key] = {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
            continue
        try:
            out[key] = element.to_json_dict(
                bulk_data_element_handler=bulk, bulk_data_threshold=_BULK_BYTES
            )
        except Exception:
            value = element.value
            values = value if isinstance(value, MultiValue | list) else [value]
            out[key] = {"vr": element.VR, "Value": [str(v) for v in values]}
    return out
