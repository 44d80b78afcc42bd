"""Fitting an image to a grid of terminal cells, area-averaged (never nearest-neighbour)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from tui.term.modes import DEFAULT_CELL


def fit_cells(
    width: int,
    height: int,
    columns: int,
    rows: int,
    pixel_aspect: float = 1.0,
    cell: tuple[int, int] = DEFAULT_CELL,
) -> tuple[int, int]:
    """The largest (columns, rows) box inside ``columns`` x ``rows`` cells that shows a
    ``width`` x ``height`` image at its physical aspect.

    ``pixel_aspect`` is the image's pixel height over width (row over column spacing);
    ``cell`` is the terminal's cell size in pixels (width, height).
    """
    physical = height * pixel_aspect / width  # height over width of the picture
    cell_aspect = cell[1] / cell[0]
    fit_columns = columns
    fit_rows = round(fit_columns * physical / cell_aspect)
    if fit_rows > rows:
        fit_rows = rows
        fit_columns = round(fit_rows * cell_aspect / physical)
    return max(1, min(fit_columns, columns)), max(1, min(fit_rows, rows))


def area_resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize by averaging the source pixels each target pixel covers (box filter)."""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    resized = Image.fromarray(image).resize((width, height), Image.Resampling.BOX)
    return np.asarray(resized)
