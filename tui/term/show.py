"""One entry point for drawing an 8-bit image in the terminal, whatever the protocol."""

from __future__ import annotations

import numpy as np

from tui.term import protocols, text
from tui.term.cells import fit_cells
from tui.term.detect import Bandwidth
from tui.term.halfblock import CellImage, encode, to_cells
from tui.term.modes import DEFAULT_CELL, PROTOCOLS, sixel_limit


def draw(
    image: np.ndarray,
    graphics: str,
    bandwidth: Bandwidth,
    columns: int,
    rows: int,
    pixel_aspect: float = 1.0,
    cell: tuple[int, int] = DEFAULT_CELL,
    tmux: bool = False,
) -> str:
    """Text (with escape sequences) that shows ``image`` in at most ``columns`` x ``rows``
    cells at its physical aspect, starting at the cursor, leaving the cursor below it."""
    columns = min(columns, bandwidth.max_cells[0])
    rows = min(rows, bandwidth.max_cells[1])
    box_columns, box_rows = fit_box(image, graphics, columns, rows, pixel_aspect, cell)
    if graphics == "none":
        return ""
    if graphics == "ascii":
        return text.ascii_art(image, box_columns, box_rows) + "\n"
    if graphics == "braille":
        return text.braille(image, box_columns, box_rows) + "\n"
    if graphics in PROTOCOLS:  # printed: the cursor goes below it, as after text
        return picture(image, graphics, box_columns, box_rows, cell, tmux, move_cursor=True) + "\n"
    cells = to_cells(image, box_columns, box_rows, bandwidth.mode)
    return _inline(cells)


def fit_box(
    image: np.ndarray,
    graphics: str,
    columns: int,
    rows: int,
    pixel_aspect: float = 1.0,
    cell: tuple[int, int] = DEFAULT_CELL,
) -> tuple[int, int]:
    """The largest (columns, rows) box inside ``columns`` x ``rows`` cells that shows
    ``image`` at its physical aspect; a sixel image, one pixel per pixel of its box, also
    no larger than the terminal shows (:func:`~tui.term.modes.sixel_limit`: the terminal
    does not scale it, and xterm drops a larger one)."""
    if graphics == "sixel":
        most = sixel_limit(cell)
        columns, rows = min(columns, most[0] // cell[0]), min(rows, most[1] // cell[1])
    h, w = image.shape[:2]
    return fit_cells(w, h, columns, rows, pixel_aspect, cell)


def picture(
    image: np.ndarray,
    graphics: str,
    columns: int,
    rows: int,
    cell: tuple[int, int] = DEFAULT_CELL,
    tmux: bool = False,
    image_id: int = 1,
    move_cursor: bool = False,
) -> str:
    """The escape sequence that shows ``image`` scaled into ``columns`` x ``rows`` cells
    with a graphics protocol (kitty, iTerm2 or sixel), starting at the cursor.

    Sixel and iTerm2 images leave the cursor on their last row; a kitty image leaves it
    where it was unless ``move_cursor`` (see :func:`~tui.term.protocols.kitty`).
    """
    fitted = _pixel_size(image, columns, rows, cell, scales=graphics != "sixel")
    if graphics == "kitty":
        sequence = protocols.kitty(fitted, columns, rows, image_id, move_cursor)
    elif graphics == "iterm":
        sequence = protocols.iterm(fitted, columns, rows)
    elif graphics == "sixel":
        sequence = protocols.sixel(fitted)
    else:
        raise ValueError(f"{graphics!r} is not a graphics protocol")
    return protocols.tmux_passthrough(sequence) if tmux else sequence


def _inline(cells: CellImage) -> str:
    """Half-blocks written where the cursor is: rows separated by newlines, not moves."""
    rows = []
    for r in range(cells.shape[0]):
        line = CellImage(cells.top[r : r + 1], cells.bottom[r : r + 1])
        rows.append(encode(line).split("H", 1)[1])  # drop the cursor move
    return "\n".join(rows) + "\n"


def _pixel_size(
    image: np.ndarray, columns: int, rows: int, cell: tuple[int, int], scales: bool
) -> np.ndarray:
    """``image`` resized to the pixel size of its cell box when the terminal cannot scale
    (sixel) or when it is larger than the box: the terminal would only shrink it, and
    fewer pixels are fewer bytes on the wire."""
    from tui.term.cells import area_resize

    width, height = columns * cell[0], rows * cell[1]
    h, w = image.shape[:2]
    if scales and w <= width and h <= height:
        return image
    return area_resize(image, width, height)
