"""One entry point for drawing an 8-bit image in the terminal, whatever the protocol."""

from __future__ import annotations

import numpy as np

from tui.term import protocols, text
from tui.term.cells import DEFAULT_CELL, fit_cells
from tui.term.detect import Bandwidth
from tui.term.halfblock import CellImage, encode, to_cells


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
    h, w = image.shape[:2]
    box_columns, box_rows = fit_cells(w, h, columns, rows, pixel_aspect, cell)
    if graphics == "none":
        return ""
    if graphics == "ascii":
        return text.ascii_art(image, box_columns, box_rows) + "\n"
    if graphics == "braille":
        return text.braille(image, box_columns, box_rows) + "\n"
    if graphics in ("kitty", "iterm", "sixel"):
        if graphics == "kitty":
            sequence = protocols.kitty(image, box_columns, box_rows)
        elif graphics == "iterm":
            sequence = protocols.iterm(image, box_columns, box_rows)
        else:
            sequence = protocols.sixel(_sixel_size(image, box_columns, box_rows, cell))
        return (protocols.tmux_passthrough(sequence) if tmux else sequence) + "\n"
    cells = to_cells(image, box_columns, box_rows, bandwidth.mode)
    return _inline(cells)


def _inline(cells: CellImage) -> str:
    """Half-blocks written where the cursor is: rows separated by newlines, not moves."""
    rows = []
    for r in range(cells.shape[0]):
        line = CellImage(cells.top[r : r + 1], cells.bottom[r : r + 1])
        rows.append(encode(line).split("H", 1)[1])  # drop the cursor move
    return "\n".join(rows) + "\n"


def _sixel_size(image: np.ndarray, columns: int, rows: int, cell: tuple[int, int]) -> np.ndarray:
    """Sixel has no scaling: send the image at the pixel size of its cell box."""
    from tui.term.cells import area_resize

    return area_resize(image, columns * cell[0], rows * cell[1])
