"""Write rendered images to files: PNG, JPEG, TIFF; 16-bit PNG of modality values;
animated GIF/WebP; contact sheets as PDF or PNG. Every file written is opened again
with Pillow and checked (size, frames) before we say it is done."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

from tui.errors import UserError

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


def annotate(
    picture: Image.Image, corners: Mapping[str, Sequence[str]], edges: dict[str, str] | None = None
) -> Image.Image:
    """Burn in corner text (``top-left`` ...) and orientation letters at the edge middles."""
    out = picture.convert("RGB") if picture.mode not in ("L", "RGB") else picture.copy()
    draw = ImageDraw.Draw(out)
    size = max(10, out.height // 40)
    font = ImageFont.load_default(size=size)
    ink = 255 if out.mode == "L" else (255, 255, 160)
    line = int(size * 1.25)
    for corner, lines in corners.items():
        for n, text in enumerate(lines):
            width = draw.textlength(text, font=font)
            x = 4.0 if corner.endswith("left") else out.width - 4 - width
            y = (
                4 + n * line
                if corner.startswith("top")
                else out.height - 4 - (len(lines) - n) * line
            )
            draw.text((x, y), text, fill=ink, font=font, stroke_width=1, stroke_fill=0)
    for edge, text in (edges or {}).items():
        width = draw.textlength(text, font=font)
        middle = ((out.width - width) / 2, (out.height - line) / 2)
        at = {
            "left": (4.0, middle[1]),
            "right": (out.width - 4 - width, middle[1]),
            "top": (middle[0], 4.0),
            "bottom": (middle[0], float(out.height - 4 - line)),
        }[edge]
        draw.text(at, text, fill=ink, font=font, stroke_width=1, stroke_fill=0)
    return out


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
    font = ImageFont.load_default(size=16)
    top = 12 + 22 * len(header)
    sheet = Image.new("RGB", (columns * tile + 8, top + rows * tile + 8), (0, 0, 0))
    draw = ImageDraw.Draw(sheet)
    for n, text in enumerate(header):
        draw.text((8, 6 + 22 * n), text, fill=(255, 255, 255), font=font)
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
