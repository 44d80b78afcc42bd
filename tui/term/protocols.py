"""Graphics protocols: the terminal gets a native-resolution PNG (kitty, iTerm2) or a
sixel image and scales it itself. Inside tmux the sequences are wrapped for passthrough
(tmux needs ``set -g allow-passthrough on``)."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
from PIL import Image

_CHUNK = 4096  # kitty's largest payload per escape


def png(image: np.ndarray) -> bytes:
    """An 8-bit grey or RGB image as PNG (grey stays one channel: a third of the bytes)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def kitty(
    image: np.ndarray, columns: int, rows: int, image_id: int = 1, move_cursor: bool = False
) -> str:
    """Kitty graphics protocol: transmit and display, scaled into ``columns`` x ``rows`` cells,
    replacing the image with the same id (no pile-up of old frames).

    The cursor stays where it is (an app draws over its own cells; a move at the bottom
    row would scroll its screen) unless ``move_cursor``: then it goes to the image's last
    row, scrolling as needed, as after a sixel, so printed text follows the image."""
    payload = base64.standard_b64encode(png(image)).decode("ascii")
    chunks = [payload[i : i + _CHUNK] for i in range(0, len(payload), _CHUNK)] or [""]
    stay = 0 if move_cursor else 1
    out = []
    for n, chunk in enumerate(chunks):
        more = 1 if n < len(chunks) - 1 else 0
        if n == 0:
            keys = f"a=T,f=100,t=d,i={image_id},c={columns},r={rows},q=2,C={stay},m={more}"
        else:
            keys = f"m={more}"
        out.append(f"\x1b_G{keys};{chunk}\x1b\\")
    return "".join(out)


def iterm(image: np.ndarray, columns: int, rows: int) -> str:
    """iTerm2 inline image (also WezTerm, mintty, VS Code), scaled into the cell box."""
    data = png(image)
    encoded = base64.standard_b64encode(data).decode("ascii")
    return (
        f"\x1b]1337;File=inline=1;size={len(data)};width={columns};height={rows};"
        f"preserveAspectRatio=1:{encoded}\x07"
    )


def sixel(image: np.ndarray, levels: int = 64) -> str:
    """A grey image as sixels with ``levels`` greys (colour images are shown grey)."""
    grey = image if image.ndim == 2 else np.asarray(Image.fromarray(image).convert("L"))
    h, w = grey.shape
    values = np.rint(np.linspace(0, 255, levels)).astype(int)
    index = np.rint(grey.astype(np.float32) * (levels - 1) / 255).astype(np.int16)
    out = [f'\x1bPq"1;1;{w};{h}']
    for n, v in enumerate(values):
        percent = round(v * 100 / 255)
        out.append(f"#{n};2;{percent};{percent};{percent}")
    weights = (1 << np.arange(6)).reshape(6, 1)
    for top in range(0, h, 6):
        band = index[top : top + 6]
        if band.shape[0] < 6:
            band = np.vstack([band, np.full((6 - band.shape[0], w), -1, np.int16)])
        lines = []
        for colour in np.unique(band[band >= 0]).tolist():
            bits = ((band == colour) * weights).sum(axis=0)
            text = "".join(chr(63 + int(b)) for b in bits.tolist()).rstrip("?")
            lines.append(f"#{colour}{_rle(text)}")
        out.append("$".join(lines) + "-")
    out.append("\x1b\\")
    return "".join(out)


def _rle(text: str) -> str:
    return re.sub(r"(.)\1{3,}", lambda m: f"!{len(m.group(0))}{m.group(1)}", text)


def tmux_passthrough(sequence: str) -> str:
    """Wrap an escape sequence so tmux hands it to the outer terminal."""
    return "\x1bPtmux;" + sequence.replace("\x1b", "\x1b\x1b") + "\x1b\\"
