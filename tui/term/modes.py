"""How half-block colours are sent (kept apart from the encoder so that choosing a mode
does not load numpy: the app starts faster)."""

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
