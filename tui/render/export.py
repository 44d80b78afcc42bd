"""Write rendered images to files: PNG, JPEG, TIFF; 16-bit PNG of modality values;
animated GIF/WebP; contact sheets as PDF or PNG. Every file written is opened again
with Pillow and checked (size, frames) before we say it is done."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, PngImagePlugin

from tui.errors import UserError
from tui.render import glyphs

STILL = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}
ANIMATED = {".gif": "GIF", ".webp": "WEBP"}
SHEET = {".pdf": "PDF", ".png": "PNG"}


class ExportError(UserError):
    """An export cannot be written; the message says why."""


def square_pixels(image: np.ndarray, pixel_spacing: tuple[float, float]) -> Image.Image:
    """The image stretched so each pixel is square (no squashed coronal views)."""
    picture = Image.fromarray(image)
    row, column = pixel_spacing
    if min(row, column) <= 0 or abs(row - column) < 1e-6 * max(row, column):
        return picture
    unit = min(row, column)
    size = (round(picture.width * column / unit), round(picture.height * row / unit))
    return picture.resize(size, Image.Resampling.BILINEAR)


def fit(picture: Image.Image, size: tuple[int, int] | None) -> Image.Image:
    """Scale into exactly ``size`` (width, height), keeping the aspect ratio (black bars)."""
    if size is None:
        return picture
    width, height = size
    scale = min(width / picture.width, height / picture.height)
    inner = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    resized = picture.resize(inner, Image.Resampling.LANCZOS)
    canvas = Image.new(picture.mode, (width, height))
    canvas.paste(resized, ((width - inner[0]) // 2, (height - inner[1]) // 2))
    return canvas


MIN_TEXT = 9  # pixels: the smallest text we burn in
TEXT_SIDE = 512  # pictures smaller than this are enlarged before text is burned in
_MARGIN = 4


@dataclass(frozen=True)
class Placed:
    """A line of burned-in text and the box (left, top, right, bottom) it fills."""

    text: str
    size: int
    box: tuple[float, float, float, float]


def enlarge_for_text(picture: Image.Image, side: int = TEXT_SIDE) -> Image.Image:
    """``picture`` enlarged by a whole factor (each pixel a block: no invented values) so
    its shorter side reaches ``side``, so burned-in text has room to be read."""
    factor = -(-side // max(1, min(picture.size)))
    if factor <= 1:
        return picture
    size = (picture.width * factor, picture.height * factor)
    return picture.resize(size, Image.Resampling.NEAREST)


def annotate(
    picture: Image.Image, corners: Mapping[str, Sequence[str]], edges: dict[str, str] | None = None
) -> Image.Image:
    """Burn in corner text (``top-left`` ...) and orientation letters at the edge middles,
    sized so nothing overlaps (see ``layout``)."""
    out = picture.convert("RGB") if picture.mode not in ("L", "RGB") else picture.copy()
    draw = ImageDraw.Draw(out)
    ink = 255 if out.mode == "L" else (255, 255, 160)
    for placed in layout(out.size, corners, edges or {}):
        glyphs.draw(draw, placed.box[:2], placed.text, placed.size, ink)
    return out


def layout(
    size: tuple[int, int], corners: Mapping[str, Sequence[str]], edges: Mapping[str, str]
) -> list[Placed]:
    """Where each line goes: the largest text (up to 1/40 of the picture) at which every
    line fits without overlapping another; if none does, the smallest size with long
    lines shortened to their corner's quarter (``…``) and lines that still do not fit
    left out, orientation letters and first lines first."""
    base = max(MIN_TEXT, min(size) // 40)
    for text_size in range(base, MIN_TEXT - 1, -1):
        placed = _place(size, corners, edges, text_size, squeeze=False)
        if placed is not None:
            return placed
    return _place(size, corners, edges, MIN_TEXT, squeeze=True) or []


def _place(
    size: tuple[int, int],
    corners: Mapping[str, Sequence[str]],
    edges: Mapping[str, str],
    text_size: int,
    squeeze: bool,
) -> list[Placed] | None:
    """Every line at ``text_size``, or None if two overlap (``squeeze``: shorten and drop
    lines instead)."""
    width, height = size
    line = glyphs.line_height(text_size)
    letters = {edge: glyphs.width(text, text_size) for edge, text in edges.items()}
    # Corner text keeps out of the middle strips that the orientation letters use.
    across = max([letters.get("top", 0.0), letters.get("bottom", 0.0)])
    room = (width - 2 * _MARGIN - across) / 2 - _MARGIN
    middle = (height - line) / 2
    candidates: list[tuple[int, Placed]] = []
    for edge, text in edges.items():
        w = letters[edge]
        x = {"left": _MARGIN, "right": width - _MARGIN - w}.get(edge, (width - w) / 2)
        y = {"top": _MARGIN, "bottom": height - _MARGIN - line}.get(edge, middle)
        candidates.append((0, Placed(text, text_size, (x, y, x + w, y + line))))
    for corner, lines in corners.items():
        for n, text in enumerate(lines):
            if squeeze:
                text = glyphs.shorten(text, text_size, room)
            if not text:
                continue
            w = glyphs.width(text, text_size)
            x = _MARGIN if corner.endswith("left") else width - _MARGIN - w
            if corner.startswith("top"):
                y = _MARGIN + n * line
            else:
                y = height - _MARGIN - (len(lines) - n) * line
            candidates.append((n + 1, Placed(text, text_size, (x, y, x + w, y + line))))
    candidates.sort(key=lambda c: c[0])  # letters, then first lines, then the rest
    placed: list[Placed] = []
    for _, one in candidates:
        left, top, right, bottom = one.box
        inside = left >= 0 and top >= 0 and right <= width and bottom <= height
        if inside and not any(_overlap(one.box, other.box) for other in placed):
            placed.append(one)
        elif not squeeze:
            return None
    return placed


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def save_still(picture: Image.Image, path: Path) -> None:
    """PNG, JPEG or TIFF by the file's extension."""
    kind = _kind(path, STILL)
    if kind == "JPEG" and picture.mode not in ("L", "RGB"):
        picture = picture.convert("RGB")
    _write(path, lambda target: picture.save(target, kind), picture.size, 1)


def save_raw16(values: np.ndarray, path: Path) -> None:
    """Modality values as a 16-bit grey PNG: value + offset, the offset in a text chunk
    (``pacs-tui:offset``) so negative values (HU) survive."""
    if _kind(path, {".png": "PNG"}) != "PNG":
        raise ExportError("--raw writes 16-bit PNG: use a .png file name")
    rounded = np.rint(values).astype(np.int64)
    offset = 0 if rounded.min() >= 0 else -int(rounded.min())
    if rounded.max() + offset > 65535:
        raise ExportError("the values span more than 16 bits; --raw cannot keep them")
    picture = Image.fromarray((rounded + offset).astype(np.uint16))
    info = PngImagePlugin.PngInfo()
    info.add_text("pacs-tui:offset", str(offset))
    _write(path, lambda target: picture.save(target, "PNG", pnginfo=info), picture.size, 1)


def save_animation(frames: Sequence[Image.Image], path: Path, fps: float) -> None:
    """An animated GIF or WebP, looping."""
    if not frames:
        raise ExportError("nothing to animate")
    kind = _kind(path, ANIMATED)
    duration = max(20, round(1000 / max(fps, 0.1)))

    def write(target: str) -> None:
        frames[0].save(
            target, kind, save_all=True, append_images=list(frames[1:]), duration=duration, loop=0
        )

    _write(path, write, frames[0].size, len(frames), duration)


def contact_sheet(
    tiles: Sequence[Image.Image], header: Sequence[str], columns: int, tile: int = 256
) -> Image.Image:
    """Tiles laid out like film under a header (patient, study, series)."""
    rows = max(1, -(-len(tiles) // columns))
    top = 12 + 22 * len(header)
    sheet = Image.new("RGB", (columns * tile + 8, top + rows * tile + 8), (0, 0, 0))
    draw = ImageDraw.Draw(sheet)
    for n, text in enumerate(header):
        line = glyphs.shorten(text, 16, sheet.width - 16)
        glyphs.draw(draw, (8, 6 + 22 * n), line, 16, (255, 255, 255), outline=None)
    for n, picture in enumerate(tiles):
        cell = fit(picture.convert("RGB"), (tile - 4, tile - 4))
        sheet.paste(cell, (4 + (n % columns) * tile + 2, top + (n // columns) * tile + 2))
    return sheet


def save_sheet(sheet: Image.Image, path: Path) -> None:
    kind = _kind(path, SHEET)
    _write(path, lambda target: sheet.save(target, kind, resolution=150.0), sheet.size, 1)


def _kind(path: Path, kinds: dict[str, str]) -> str:
    kind = kinds.get(path.suffix.lower())
    if kind is None:
        raise ExportError(f"{path}: choose a file name ending in {', '.join(sorted(kinds))}")
    return kind


def _write(
    path: Path,
    write: Callable[[str], None],
    size: tuple[int, int],
    frames: int,
    duration: int = 0,
) -> None:
    """Write to a temporary file beside ``path``, check it, then move it into place."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ExportError(f"{folder}: no such folder")
    fd, temporary = tempfile.mkstemp(prefix=".pacs-tui-", suffix=path.suffix, dir=folder)
    os.close(fd)
    try:
        write(temporary)
        _check(temporary, path, size, frames, duration)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp's 0600 is for the temporary only
        os.replace(temporary, path)
    except OSError as exc:
        raise ExportError(f"{path}: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _check(written: str, path: Path, size: tuple[int, int], frames: int, duration: int) -> None:
    """Open what was written: its size, and its frames (or, for an animation whose encoder
    merged identical frames into longer ones, its total running time)."""
    if path.suffix.lower() == ".pdf":
        if os.path.getsize(written) < 100:
            raise ExportError(f"{path}: the PDF came out empty")
        return
    with Image.open(written) as image:
        got = getattr(image, "n_frames", 1)
        playing = 0
        if duration and image.format == "WEBP":
            playing = _webp_running_time(written)
        elif duration:
            for n in range(got):
                image.seek(n)
                playing += int(image.info.get("duration", 0))
        complete = got == frames or (duration and got <= frames and playing == duration * frames)
        if image.size != size or not complete:
            raise ExportError(
                f"{path}: wrote {image.size} x {got} frames, expected {size} x {frames}"
            )


def _webp_running_time(path: str) -> int:
    """Milliseconds an animated WebP plays: the sum of its ANMF frames' durations (Pillow
    does not report them)."""
    data = Path(path).read_bytes()
    total, at = 0, 12  # after "RIFF", size, "WEBP"
    while at + 8 <= len(data):
        fourcc, size = data[at : at + 4], int.from_bytes(data[at + 4 : at + 8], "little")
        if fourcc == b"ANMF":
            total += int.from_bytes(data[at + 8 + 12 : at + 8 + 15], "little")
        at += 8 + size + (size & 1)
    return total
