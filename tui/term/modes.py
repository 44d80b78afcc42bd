"""How images are sent: the settings one may choose, half-block colour modes, which
protocols draw pixels themselves, the default cell size (kept apart from the encoders so
that choosing does not load numpy or Pillow: the app and ``ls`` start faster)."""

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
