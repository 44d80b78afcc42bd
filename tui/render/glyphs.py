"""Lettering for burned-in text: patient names in any script, measured and drawn.

Two fonts cover the names DICOM character sets can hold:

* DejaVu Sans 2.37, shipped in ``tui/render/fonts`` (757 kB, Bitstream Vera licence:
  free to bundle and redistribute): Latin, Greek, Cyrillic, Hebrew and Arabic with its
  joining forms, and every ASCII sign, so a Hebrew or Arabic name with its ``^`` and
  ``=`` is laid out as one right-to-left run.
* Noto Sans CJK 2.004 (OFL 1.1), the upstream ``NotoSansCJK-Regular.ttc`` that the
  ``noto-cjk-sans-otc`` wheel carries: Chinese, Japanese (kana, half-width kana) and
  Korean, with Latin, Greek and Cyrillic too, so ``Yamada^Tarou=山田^太郎`` is one run.
  At 19 MB no CJK font is small enough to ship inside the package; pip brings it.

Pillow's own default font has Latin only (a ``ü`` came out as a box). A line is drawn
in the first font that has a glyph for each of its characters; a line no single font
covers is split into runs, each in the first font that has its characters, laid out
left to right in logical order (a line mixing Hebrew and CJK is the one case this
gets wrong). Right-to-left order and Arabic joining come from Pillow's raqm layout
(its wheels bundle libraqm and HarfBuzz and load FriBiDi from the system: Debian's
``libfribidi0``). Without raqm, Hebrew and Arabic come out left to right and
unjoined: ``raqm()`` says so and we log it once.
"""

from __future__ import annotations

import logging
import unicodedata
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path

from PIL import ImageDraw, ImageFont, features

log = logging.getLogger(__name__)

LATIN = Path(__file__).with_name("fonts") / "DejaVuSans.ttf"
ELLIPSIS = "…"
# Faces of the CJK collection: glyph forms differ by region (直, 骨, 角...).
_CJK_FACES = {"ja": 0, "ko": 1, "zh": 2}
_MISSING = "\U0010ffff"  # a noncharacter: no font maps it, so it draws the .notdef box


def raqm() -> bool:
    """Whether right-to-left text is reordered and Arabic joined (Pillow's raqm layout)."""
    return bool(features.check("raqm"))


@cache
def _cjk_path() -> str | None:
    try:
        return str(resources.files("noto_cjk_sans_otc").joinpath("NotoSansCJK-Regular.ttc"))
    except ModuleNotFoundError:
        log.warning("noto-cjk-sans-otc is not installed: CJK text is drawn as boxes")
        return None


@lru_cache(maxsize=64)
def font(path: str, size: int, index: int = 0) -> ImageFont.FreeTypeFont:
    """A font at ``size`` pixels (cached: the app draws the same sizes again and again)."""
    return ImageFont.truetype(path, size, index=index)


def fonts(text: str, size: int) -> list[ImageFont.FreeTypeFont]:
    """The fonts to try for ``text``, in order: DejaVu Sans, then the CJK face for the
    text's language (kana: Japanese, Hangul: Korean, else Chinese)."""
    chain = [font(str(LATIN), size)]
    cjk = _cjk_path()
    if cjk is not None:
        chain.append(font(cjk, size, _CJK_FACES[_cjk_language(text)]))
    return chain


def _cjk_language(text: str) -> str:
    for ch in text:
        code = ord(ch)
        if 0x3040 <= code <= 0x30FF or 0xFF66 <= code <= 0xFF9F:
            return "ja"
        if 0xAC00 <= code <= 0xD7A3 or 0x1100 <= code <= 0x11FF or 0x3130 <= code <= 0x318F:
            return "ko"
    return "zh"


def has_glyph(face: ImageFont.FreeTypeFont, ch: str) -> bool:
    """Whether ``face`` draws ``ch`` with a glyph of its own, not the .notdef box.

    Pillow does not expose a font's character map, so this compares the character's
    bitmap and advance with those of a character no font has (our fonts' .notdef is
    a visible box, so a blank glyph such as a space still counts as present).
    """
    return _has_glyph(face, ch)


@lru_cache(maxsize=8192)
def _has_glyph(face: ImageFont.FreeTypeFont, ch: str) -> bool:
    if unicodedata.category(ch) in ("Cc", "Cf"):
        return True  # controls and format marks (ZWNJ, RLM) draw nothing anyway
    return _signature(face, ch) != _signature(face, _MISSING)


def _signature(face: ImageFont.FreeTypeFont, ch: str) -> tuple[float, tuple[int, int], bytes]:
    mask = face.getmask(ch)
    return face.getlength(ch), mask.size, bytes(mask)


def runs(text: str, size: int) -> list[tuple[str, ImageFont.FreeTypeFont]]:
    """``text`` as (part, font) runs: one run when one font has every character."""
    chain = fonts(text, size)
    for face in chain:
        if all(has_glyph(face, ch) for ch in text):
            return [(text, face)]
    out: list[tuple[str, ImageFont.FreeTypeFont]] = []
    for ch in text:
        if out and has_glyph(out[-1][1], ch):
            out[-1] = (out[-1][0] + ch, out[-1][1])
            continue
        face = next((f for f in chain if has_glyph(f, ch)), chain[0])
        out.append((ch, face))
    return out


def width(text: str, size: int) -> float:
    """The advance of ``text`` at ``size`` pixels."""
    return sum(face.getlength(part) for part, face in runs(text, size))


def shorten(text: str, size: int, room: float) -> str:
    """``text`` cut to ``room`` pixels with an ellipsis (the start kept: the family name)."""
    if width(text, size) <= room:
        return text
    low, high = 0, len(text)  # the longest prefix that fits with the ellipsis
    while low < high:
        middle = (low + high + 1) // 2
        if width(text[:middle].rstrip() + ELLIPSIS, size) <= room:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip() + ELLIPSIS if low else ""


def draw(
    canvas: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    text: str,
    size: int,
    fill: int | tuple[int, int, int],
    outline: int | tuple[int, int, int] | None = 0,
) -> None:
    """Draw ``text`` with its top-left corner at ``xy``: runs share one baseline."""
    parts = runs(text, size)
    if not raqm() and any(unicodedata.bidirectional(ch) in ("R", "AL") for ch in text):
        _warn_no_raqm()
    x, y = xy
    baseline = y + round(size * 0.95)
    stroke = 0 if outline is None else 1
    for part, face in parts:
        canvas.text((x, baseline), part, fill, face, "ls", stroke_width=stroke, stroke_fill=outline)
        x += face.getlength(part)


def line_height(size: int) -> int:
    """Pixels from one line's top to the next (ascent, descent, the outline, a gap)."""
    return round(size * 1.3) + 2


@cache
def _warn_no_raqm() -> None:
    log.warning(
        "Pillow has no raqm layout (install libfribidi): right-to-left text is drawn"
        " left to right and Arabic unjoined"
    )
