"""Aligned text tables for the command line, measured in terminal cells."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

_MIN_CLIPPED = 10  # a clipped column never gets narrower than this


def printable(text: str) -> str:
    """``text`` with control characters shown as escapes, so tag values and file names
    cannot move the cursor, recolour or retitle the terminal."""
    if text.isprintable():
        return text
    return "".join(
        c
        if c.isprintable() or c == " "
        else (f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}")
        for c in text
    )


def cell_width(text: str) -> int:
    """Terminal cells ``text`` takes: wide East Asian characters take two, accents none."""
    if text.isascii():
        return len(text)
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in "WF" else 1
    return width


def clip(text: str, limit: int) -> str:
    if cell_width(text) <= limit:
        return text
    out, width = "", 0
    for char in text:
        width += cell_width(char)
        if width > limit - 1:
            break
        out += char
    return out + "…"


def format_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[tuple[str, str, int]],
    width: int | None = None,
) -> str:
    """Rows as an aligned table.

    ``columns`` are (key, heading, limit): a limit > 0 clips that column's values
    (names, descriptions); 0 never clips (dates, numbers, UIDs). With ``width`` (a
    terminal's), rows that would wrap put their UIDs on a line of their own, and
    clipped columns narrow, down to 10 cells, to fit.
    """
    columns = list(columns)
    below: list[tuple[str, str, int]] = []
    if width is not None and _natural_width(rows, columns) > width:
        below = [c for c in columns if c[0].endswith("UID")]
        columns = [c for c in columns if c not in below]
    texts = [[_text(row.get(key)) for key, _, _ in columns] for row in rows]
    headings = [heading for _, heading, _ in columns]
    widths = [
        max([cell_width(headings[i])] + [cell_width(line[i]) for line in texts])
        for i in range(len(columns))
    ]
    widths = [
        min(limit, widths[i]) if limit else widths[i] for i, (_, _, limit) in enumerate(columns)
    ]
    if width is not None:
        _narrow(widths, [limit for _, _, limit in columns], width)
    out = []
    for number, line in enumerate([headings, *texts]):
        cells = [clip(text, widths[i]) for i, text in enumerate(line)]
        padded = [text + " " * (widths[i] - cell_width(text)) for i, text in enumerate(cells)]
        out.append("  ".join(padded).rstrip())
        if number:
            out += [f"    {key}: {_text(rows[number - 1].get(key))}" for key, _, _ in below]
    return "\n".join(out)


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "\\".join(map(_text, value))
    return "" if value is None else printable(str(value))


def _natural_width(rows: Sequence[dict[str, Any]], columns: list[tuple[str, str, int]]) -> int:
    total = 2 * (len(columns) - 1)
    for key, heading, limit in columns:
        widest = max([cell_width(heading)] + [cell_width(_text(r.get(key))) for r in rows])
        total += min(limit, widest) if limit else widest
    return total


def _narrow(widths: list[int], limits: list[int], width: int) -> None:
    """Narrow clippable columns, widest first, until the row fits ``width``."""
    excess = sum(widths) + 2 * (len(widths) - 1) - width
    flexible = [i for i, limit in enumerate(limits) if limit > _MIN_CLIPPED]
    while excess > 0:
        widest = max(flexible, key=lambda i: widths[i], default=None)
        if widest is None or widths[widest] <= _MIN_CLIPPED:
            return
        widths[widest] -= 1
        excess -= 1
