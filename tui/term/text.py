"""Images as text for terminals without colour: shaded ASCII, or braille dots (2 x 4 per
cell, ordered dither), one character a cell, no escape sequences at all."""

from __future__ import annotations

import numpy as np

from tui.term.cells import area_resize

SHADES = " .:-=+*#%@"
_BRAILLE_BITS = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]])
_BAYER = (np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]]) + 0.5) * 16


def ascii_art(image: np.ndarray, columns: int, rows: int) -> str:
    """One shade character per cell, darkest as space (for dark terminal backgrounds)."""
    grey = area_resize(_grey(image), columns, rows).astype(np.int32)
    index = grey * (len(SHADES) - 1) // 255
    return "\n".join("".join(SHADES[i] for i in row) for row in index.tolist())


def braille(image: np.ndarray, columns: int, rows: int) -> str:
    """Braille cells, 2 x 4 dots each: four times the detail of ASCII, still plain text."""
    grey = area_resize(_grey(image), columns * 2, rows * 4).astype(np.float32)
    h, w = grey.shape
    threshold = np.tile(_BAYER, (h // 4 + 1, w // 4 + 1))[:h, :w]
    dots = grey > threshold
    cells = np.zeros((rows, columns), np.int32)
    for dy in range(4):
        for dx in range(2):
            cells += dots[dy::4, dx::2] * int(_BRAILLE_BITS[dy, dx])
    return "\n".join("".join(chr(0x2800 + c) for c in row) for row in cells.tolist())


def _grey(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    return np.rint(image[..., :3] @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
