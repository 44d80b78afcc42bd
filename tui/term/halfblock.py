"""The half-block encoder: two pixels per cell, as few bytes as the picture allows.

Each cell shows an upper and a lower pixel: ``▀`` with the upper colour as foreground
and the lower as background, or ``▄`` the other way round, or a space (or ``█``) when
both are equal. Of the two ways to draw a cell, the one needing fewer attribute changes
is taken; attributes are only sent when they change, so runs of equal cells cost one
byte a cell. Between two frames only the changed runs of cells are sent, each after a
cursor move. Grey images use the 256-colour grey ramp (26 levels, or 8 at low
bandwidth), colour images the palette's nearest colours; ``truecolor`` uses 24-bit colours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tui.term.cells import area_resize
from tui.term.modes import NORMAL, Mode
from tui.term.palette import fitted_levels, nearest_colours, palette_rgb, quantize

UPPER, LOWER, FULL = "▀", "▄", "█"
_TRUE = 1 << 24  # flag on a colour code: a 24-bit colour, not a palette index
_BRIDGE = 6  # unchanged cells between changed runs shorter than this are resent (cheaper
# than the cursor move that skipping them would cost)


@dataclass
class CellImage:
    """Colour codes of each cell's upper and lower pixel, (rows, columns) each.

    A code is a palette index, or a 24-bit colour with the ``_TRUE`` flag set.
    """

    top: np.ndarray
    bottom: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.top.shape

    def shown(self) -> np.ndarray:
        """The picture as the terminal shows it, grey values (2 * rows, columns)."""
        out = np.empty((self.top.shape[0] * 2, self.top.shape[1]), np.int16)
        out[0::2] = _grey_of(self.top)
        out[1::2] = _grey_of(self.bottom)
        return out


def to_cells(image: np.ndarray, columns: int, rows: int, mode: Mode = NORMAL) -> CellImage:
    """Area-average ``image`` (grey or RGB, 8 bits) to ``columns`` x ``2 * rows`` pixels and
    choose each pixel's colour."""
    pixels = area_resize(image, columns, rows * 2)
    if mode.colours == "truecolor":
        rgb = pixels if pixels.ndim == 3 else np.repeat(pixels[..., None], 3, axis=2)
        rgb = rgb.astype(np.int32)
        codes = _TRUE | (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    elif pixels.ndim == 3:
        codes = nearest_colours(pixels)
    else:
        indices, values = fitted_levels(pixels, mode.levels)
        codes = indices[quantize(pixels, values, mode.dither)].astype(np.int32)
    return CellImage(np.ascontiguousarray(codes[0::2]), np.ascontiguousarray(codes[1::2]))


def encode(
    cells: CellImage,
    previous: CellImage | None = None,
    origin: tuple[int, int] = (0, 0),
) -> str:
    """Escape sequences that draw ``cells`` with its top-left cell at ``origin`` (column,
    row, 0-based): all of it, or with ``previous`` on screen, only what changed."""
    top, bottom = cells.top, cells.bottom
    rows, columns = top.shape
    if previous is not None and previous.shape == cells.shape:
        changed = (top != previous.top) | (bottom != previous.bottom)
    else:
        changed = np.ones((rows, columns), bool)
    out: list[str] = []
    state = [-1, -1]  # foreground, background now set on the terminal (-1: unknown)
    x0, y0 = origin
    top_rows, bottom_rows = top.tolist(), bottom.tolist()
    for r in range(rows):
        for start, end in changed_runs(changed[r]):
            out.append(f"\x1b[{y0 + r + 1};{x0 + start + 1}H")
            _draw(out, state, top_rows[r], bottom_rows[r], start, end)
    if out:
        out.append("\x1b[0m")
    return "".join(out)


def changed_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Runs of changed cells in a row, joining runs separated by a short unchanged gap."""
    if not mask.any():
        return []
    padded = np.concatenate(([False], mask, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    runs: list[tuple[int, int]] = []
    for start, end in zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True):
        if runs and start - runs[-1][1] < _BRIDGE:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    return runs


def _draw(
    out: list[str], state: list[int], top: list[int], bottom: list[int], start: int, end: int
) -> None:
    fg, bg = state
    append = out.append
    for c in range(start, end):
        t, b = top[c], bottom[c]
        if t == b:
            if bg == t:
                append(" ")
            elif fg == t:
                append(FULL)
            else:
                append(_sgr(None, t) + " ")
                bg = t
            continue
        if fg == t and bg == b:
            append(UPPER)
        elif fg == b and bg == t:
            append(LOWER)
        elif fg == t:
            append(_sgr(None, b) + UPPER)
            bg = b
        elif bg == b:
            append(_sgr(t, None) + UPPER)
            fg = t
        elif fg == b:
            append(_sgr(None, t) + LOWER)
            bg = t
        elif bg == t:
            append(_sgr(b, None) + LOWER)
            fg = b
        else:
            append(_sgr(t, b) + UPPER)
            fg, bg = t, b
    state[0], state[1] = fg, bg


def _colour(code: int, ground: int) -> str:
    """SGR parameters for a colour: 38/48;5;N for a palette index, 38/48;2;R;G;B for 24-bit."""
    if code & _TRUE:
        return f"{ground};2;{(code >> 16) & 255};{(code >> 8) & 255};{code & 255}"
    return f"{ground};5;{code}"


def _sgr(fg: int | None, bg: int | None) -> str:
    parts = []
    if fg is not None:
        parts.append(_colour(fg, 38))
    if bg is not None:
        parts.append(_colour(bg, 48))
    return f"\x1b[{';'.join(parts)}m"


_GREY_OF_INDEX = np.rint(palette_rgb() @ np.array([0.299, 0.587, 0.114])).astype(np.int16)


def _grey_of(codes: np.ndarray) -> np.ndarray:
    """Grey value shown for each colour code (24-bit colours: their luma)."""
    true = (codes & _TRUE) != 0
    r, g, b = (codes >> 16) & 255, (codes >> 8) & 255, codes & 255
    luma = np.rint(0.299 * r + 0.587 * g + 0.114 * b).astype(np.int16)
    return np.where(true, luma, _GREY_OF_INDEX[np.clip(codes, 0, 255)])
