"""Aligned text tables for the command line, measured in terminal cells."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any


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
    (names, descriptions); 0 never clips (UIDs, numbers), so they can be copied.
    With ``width`` (a terminal's), clippable columns narrow further, down to 6 cells,
    to fit.
    """
    texts = [
        ["" if row.get(key) is None else str(row.get(key)) for key, _, _ in columns] for row in rows
    ]
    headings = [heading for _, heading, _ in columns]
    natural = [
        max([cell_width(headings[i])] + [cell_width(line[i]) for line in texts])
        for i in range(len(columns))
    ]
    limits = [
        min(limit, natural[i]) if limit else natural[i] for i, (_, _, limit) in enumerate(columns)
    ]
    if width is not None:
        excess = sum(limits) + 2 * (len(columns) - 1) - width
        flexible = [i for i, (_, _, limit) in enumerate(columns) if limit]
        while excess > 0:
            widest = max(flexible, key=lambda i: limits[i], default=None)
            if widest is None or limits[widest] <= 6:
                break
            limits[widest] -= 1
            excess -= 1
    out = []
    for line in [headings, *texts]:
        cells = [clip(text, limits[i]) for i, text in enumerate(line)]
        padded = [text + " " * (limits[i] - cell_width(text)) for i, text in enumerate(cells)]
        out.append("  ".join(padded).rstrip())
    return "\n".join(out)
