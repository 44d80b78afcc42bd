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
) -> str:
    """Rows as an aligned table; ``columns`` are (key, heading, max width or 0 for no limit)."""
    cells = [[heading for _, heading, _ in columns]]
    for row in rows:
        line = []
        for key, _, limit in columns:
            value = row.get(key)
            text = "" if value is None else str(value)
            line.append(clip(text, limit) if limit else text)
        cells.append(line)
    widths = [max(cell_width(line[i]) for line in cells) for i in range(len(columns))]
    out = []
    for line in cells:
        padded = [text + " " * (widths[i] - cell_width(text)) for i, text in enumerate(line)]
        out.append("  ".join(padded).rstrip())
    return "\n".join(out)
