"""How images are sent: the settings one may choose, half-block colour modes, which
protocols draw pixels themselves, the cell size and the largest sixel image (kept apart
from the encoders so that choosing does not load numpy or Pillow: the app and ``ls`` start
faster)."""

from __future__ import annotations

from dataclasses import dataclass

GRAPHICS = ("auto", "kitty", "sixel", "iterm", "halfblock", "ascii", "braille", "none")
BANDWIDTHS = ("auto", "low", "normal", "high")


@dataclass(frozen=True)
class Mode:
    """How colours are sent: ``palette``, the xterm 256-colour palette (``levels`` of its
    greys for grey images, its 6 x 6 x 6 cube and greys for colour ones), or
    ``truecolor``, 24-bit colours (only where the terminal says it has them)."""

    colours: str = "palette"
    levels: int = 26
    dither: str = "none"


LOW = Mode("palette", 8)
NORMAL = Mode("palette", 26)
HIGH = Mode("truecolor")

PROTOCOLS = ("kitty", "iterm", "sixel")  # the terminal draws pixels itself
DEFAULT_CELL = (10, 20)  # cell width, height in pixels when the terminal does not say
# The largest sixel image (width, height in pixels) where the terminal does not say:
# xterm's default maxGraphicSize, VT340 mode included; xterm 379 drops a larger one whole.
SIXEL_LIMIT = (1000, 1000)


class Cell(tuple[int, int]):
    """A terminal's cell size in pixels, (width, height), that also carries the largest
    sixel image the terminal shows (``sixel_limit``, pixels): both are learned from the
    terminal at once (:func:`tui.term.detect.cell_size`) and travel together to where
    images are fitted, through callers that see a plain cell size."""

    sixel_limit: tuple[int, int]

    def __new__(cls, width: int, height: int, sixel_limit: tuple[int, int] = SIXEL_LIMIT) -> Cell:
        cell = super().__new__(cls, (width, height))
        cell.sixel_limit = sixel_limit
        return cell


def sixel_limit(cell: tuple[int, int]) -> tuple[int, int]:
    """The largest sixel image (width, height in pixels) of the terminal whose ``cell`` this
    is: what it reported, else :data:`SIXEL_LIMIT`."""
    return cell.sixel_limit if isinstance(cell, Cell) else SIXEL_LIMIT
