"""How images are sent: half-block colour modes, which protocols draw pixels themselves,
the default cell size (kept apart from the encoders so that choosing does not load numpy
or Pillow: the app starts faster)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mode:
    """How colours are sent: ``grey`` levels of the 256-colour palette, or ``truecolor``."""

    colours: str = "grey"
    levels: int = 26
    dither: str = "none"


LOW = Mode("grey", 8)
NORMAL = Mode("grey", 26)
HIGH = Mode("truecolor")

PROTOCOLS = ("kitty", "iterm", "sixel")  # the terminal draws pixels itself
DEFAULT_CELL = (10, 20)  # cell width, height in pixels when the terminal does not say
