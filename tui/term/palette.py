"""Grey levels of the xterm 256-colour palette, and dithering to them; the nearest palette
colour for colour images.

The palette's grey ramp (232-255: 8, 18 ... 238) plus black (16) and white (231) gives 26
greys. Normal bandwidth uses all of them; low bandwidth 8, spread over the same range, so
more neighbouring cells are equal and merge into runs. Colour images take the nearest of
the 6 x 6 x 6 colour cube (16-231) and the grey ramp; the first 16 colours are never used
(themes change them).
"""

from __future__ import annotations

import numpy as np

_BAYER = [[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]]
_RAMP = [(16, 0)] + [(232 + i, 8 + 10 * i) for i in range(24)] + [(231, 255)]
_CUBE = np.array([0, 95, 135, 175, 215, 255], np.int32)  # each axis of the colour cube


def palette_rgb() -> np.ndarray:
    """The RGB values of palette indices 16-255, (256, 3) uint8 (0-15 left black)."""
    table = np.zeros((256, 3), np.uint8)
    r, g, b = np.divmod(np.arange(216), 36)[0], *np.divmod(np.arange(216) % 36, 6)
    table[16:232] = np.stack([_CUBE[r], _CUBE[g], _CUBE[b]], axis=1)
    table[232:] = (8 + 10 * np.arange(24))[:, None]
    return table


def nearest_colours(rgb: np.ndarray) -> np.ndarray:
    """Palette index (16-255) nearest to each pixel of ``rgb`` (..., 3), by squared
    distance: the colour cube's nearest corner or the grey ramp's nearest step."""
    rgb = rgb.astype(np.int32)
    level = np.searchsorted((_CUBE[1:] + _CUBE[:-1]) / 2, rgb)  # per channel, 0-5
    cube_error = ((rgb - _CUBE[level]) ** 2).sum(axis=-1)
    cube = 16 + 36 * level[..., 0] + 6 * level[..., 1] + level[..., 2]
    step = np.clip(np.rint((rgb.mean(axis=-1) - 8) / 10), 0, 23).astype(np.int32)
    grey_error = ((rgb - (8 + 10 * step)[..., None]) ** 2).sum(axis=-1)
    return np.where(grey_error < cube_error, 232 + step, cube).astype(np.int32)


def grey_levels(count: int) -> tuple[np.ndarray, np.ndarray]:
    """(palette indices, grey values) of ``count`` greys spread from black to white."""
    if count >= len(_RAMP):
        chosen = _RAMP
    else:
        picks = np.rint(np.linspace(0, len(_RAMP) - 1, count)).astype(int)
        chosen = [_RAMP[i] for i in picks]
    return np.array([c for c, _ in chosen]), np.array([v for _, v in chosen], dtype=np.int16)


def fitted_levels(grey: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` of the palette's greys chosen for this image (Lloyd's algorithm on its
    histogram, each level snapped to the ramp): few levels go where the pixels are."""
    indices, values = grey_levels(len(_RAMP))
    if count >= len(values):
        return indices, values
    histogram = np.bincount(grey.ravel(), minlength=256).astype(np.float64)
    shades = np.arange(256)
    chosen = np.rint(np.linspace(0, len(values) - 1, count)).astype(int)
    for _ in range(12):
        centres = values[chosen].astype(np.float64)
        edges = (centres[1:] + centres[:-1]) / 2
        owner = np.searchsorted(edges, shades)
        moved = chosen.copy()
        for k in range(count):
            weight = histogram[owner == k]
            if weight.sum() > 0:
                mean = float((shades[owner == k] * weight).sum() / weight.sum())
                moved[k] = int(np.argmin(np.abs(values - mean)))
        moved = np.unique(moved)
        if len(moved) == len(chosen) and np.array_equal(moved, chosen):
            break
        chosen = moved
    return indices[chosen], values[chosen]


def quantize(grey: np.ndarray, values: np.ndarray, dither: str = "none") -> np.ndarray:
    """Index (into ``values``) of the grey each pixel becomes.

    ``dither``: ``none`` (nearest), ``ordered`` (4x4 Bayer) or ``diffusion``
    (Floyd-Steinberg), so gradients do not band at few levels.
    """
    levels = values.astype(np.float32)
    image = grey.astype(np.float32)
    if dither == "ordered":
        step = float(np.max(np.diff(levels))) if levels.size > 1 else 0.0
        bayer = (np.array(_BAYER) + 0.5) / 16
        h, w = image.shape
        tiled = np.tile(bayer, (h // 4 + 1, w // 4 + 1))[:h, :w]
        image = (image + (tiled - 0.5) * step).astype(np.float32)
    elif dither == "diffusion":
        return _diffuse(image, levels)
    return _nearest(image, levels)


def _nearest(image: np.ndarray, levels: np.ndarray) -> np.ndarray:
    edges = (levels[1:] + levels[:-1]) / 2
    return np.searchsorted(edges, image).astype(np.uint8)


def _diffuse(image: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Floyd-Steinberg, a row at a time (images here are at most a few hundred cells)."""
    work = image.copy()
    out = np.empty(work.shape, np.uint8)
    h, w = work.shape
    edges = (levels[1:] + levels[:-1]) / 2
    for y in range(h):
        row = work[y]
        for x in range(w):
            index = int(np.searchsorted(edges, row[x]))
            out[y, x] = index
            error = row[x] - levels[index]
            if x + 1 < w:
                row[x + 1] += error * 7 / 16
            if y + 1 < h:
                below = work[y + 1]
                if x:
                    below[x - 1] += error * 3 / 16
                below[x] += error * 5 / 16
                if x + 1 < w:
                    below[x + 1] += error / 16
    return out
