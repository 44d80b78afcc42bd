"""The ray-casting loops of :mod:`tui.render.vr`, compiled by numba.

Why compiled: ray casting is a loop per ray with an early exit (opacity reaches 0.99)
and a different length for every ray. numpy can only step all rays together, one sample
at a time, paying for temporaries and Python calls on every step: such a version (block
skipping, compaction of finished rays) took 0.6 to 1.3 s a full frame and 0.26 to 0.4 s a
coarse one on the demo CT, 4 to 10 times the targets (150 and 40 ms). Compiled, the same
frames take 20 to 50 ms on two cores (lung, the slowest preset: about 130 ms). numba
compiles these loops once per data type (about 6 s each, the first time on a machine;
``vr.warm_up`` does it ahead) and caches the machine code on disk: in ``__pycache__``
beside this file, or, where that is read-only (a system-wide install), in the user's
cache folder (numba's own fallback, checked; ``NUMBA_CACHE_DIR`` moves it).

Imported lazily by :mod:`tui.render.vr` (importing numba costs about 0.3 s). Positions
are voxel indices (column i, row j, slice k) into ``data[k, j, i]``. The loops are
serial and release the GIL: :mod:`tui.render.vr` runs them on a band of rows per call
from two Python threads (no OpenMP pool, whose idle threads spin).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

BLOCK_SHIFT = 3  # blocks of 8 voxels a side (a shift: a division per sample costs more)
REACH = 2.0  # voxels each side: the shaded MIP's gradient (see maximum)
LEVEL = 0.5  # the shaded MIP's surface: this far from the window's floor to the maximum
_FLAT = 1e-3  # gradient magnitude (modality units per mm) below which a point is unshaded


@njit(cache=True, nogil=True)
def _lerp(a: float, b: float, fraction: float) -> float:
    return a + fraction * (b - a)


@njit(cache=True, nogil=True)
def _trilinear(data: np.ndarray, x: float, y: float, z: float) -> float:
    """``data`` at the fractional index (i=x, j=y, k=z), clamped to the volume."""
    nk, nj, ni = data.shape
    x = min(max(x, 0.0), ni - 1.0)
    y = min(max(y, 0.0), nj - 1.0)
    z = min(max(z, 0.0), nk - 1.0)
    i = min(int(x), ni - 2)
    j = min(int(y), nj - 2)
    k = min(int(z), nk - 2)
    fx, fy, fz = x - i, y - j, z - k
    c00 = _lerp(float(data[k, j, i]), float(data[k, j, i + 1]), fx)
    c01 = _lerp(float(data[k, j + 1, i]), float(data[k, j + 1, i + 1]), fx)
    c10 = _lerp(float(data[k + 1, j, i]), float(data[k + 1, j, i + 1]), fx)
    c11 = _lerp(float(data[k + 1, j + 1, i]), float(data[k + 1, j + 1, i + 1]), fx)
    return _lerp(_lerp(c00, c01, fy), _lerp(c10, c11, fy), fz)


@njit(cache=True, nogil=True)
def _lighting(
    data: np.ndarray, x: float, y: float, z: float, to_patient: np.ndarray, forward: np.ndarray,
    slope: float, reach: float,
) -> float:  # fmt: skip
    """|n . l| at (x, y, z): the normal from central differences, turned into patient
    space (``to_patient``: the inverse affine's transpose), against the light along the
    view (a headlight); -1 where the gradient is about zero (no direction to shade by)."""
    gx = _trilinear(data, x + reach, y, z) - _trilinear(data, x - reach, y, z)
    gy = _trilinear(data, x, y + reach, z) - _trilinear(data, x, y - reach, z)
    gz = _trilinear(data, x, y, z + reach) - _trilinear(data, x, y, z - reach)
    px = to_patient[0, 0] * gx + to_patient[0, 1] * gy + to_patient[0, 2] * gz
    py = to_patient[1, 0] * gx + to_patient[1, 1] * gy + to_patient[1, 2] * gz
    pz = to_patient[2, 0] * gx + to_patient[2, 1] * gy + to_patient[2, 2] * gz
    length = math.sqrt(px * px + py * py + pz * pz)
    if length * 0.5 / reach * abs(slope) < _FLAT:
        return -1.0
    return abs(px * forward[0] + py * forward[1] + pz * forward[2]) / length


@njit(cache=True, nogil=True)
def _span(
    origin: np.ndarray, step: np.ndarray, shape: tuple[int, int, int], samples: int
) -> tuple[int, int]:
    """The samples [first, last] of the ray ``origin + t * step`` inside the volume."""
    low, high = 0.0, samples - 1.0
    for axis in range(3):
        top = shape[2 - axis] - 1.0  # data is (k, j, i): axis 0 (i) is the last
        o, s = origin[axis], step[axis]
        if abs(s) < 1e-12:
            if o < -1e-6 or o > top + 1e-6:
                return 0, -1
            continue
        one, other = (-1e-6 - o) / s, (top + 1e-6 - o) / s
        low = max(low, min(one, other))
        high = min(high, max(one, other))
    return math.ceil(low), math.floor(high)


@njit(cache=True, nogil=True)
def _at(origin: np.ndarray, step: np.ndarray, t: int) -> tuple[float, float, float]:
    return origin[0] + t * step[0], origin[1] + t * step[1], origin[2] + t * step[2]


@njit(cache=True, nogil=True)
def _jitter(row: int, column: int) -> float:
    """A fixed fraction 0..1 of a step for pixel (row, column): interleaved gradient noise
    (Jimenez 2014). Rays starting at the same depth put their samples on the same planes,
    which draw rings (wood grain) where those planes cut a surface; offsetting each ray
    by a different fraction turns the rings into fine, unstructured grain, and the same
    pixel always gets the same offset (the same request, the same image)."""
    inner = 0.06711056 * column + 0.00583715 * row
    outer = 52.9829189 * (inner - math.floor(inner))
    return outer - math.floor(outer)


@njit(cache=True, nogil=True)
def _scatter(row: int, column: int, salt: int) -> float:
    """A fixed fraction 0..1 for pixel (row, column), unrelated to its neighbours' (an
    integer hash: white noise, where :func:`_jitter` is evenly spread)."""
    h = (row * 73856093 ^ column * 19349663 ^ salt * 83492791) & 0xFFFFFFFF
    h = ((h ^ (h >> 16)) * 0x45D9F3B) & 0xFFFFFFFF
    h = ((h ^ (h >> 16)) * 0x45D9F3B) & 0xFFFFFFFF
    h = h ^ (h >> 16)
    return (h & 0xFFFFFF) / 16777216.0


@njit(cache=True, nogil=True, fastmath=True)
def composite(
    data: np.ndarray,
    rows: np.ndarray,
    rays: np.ndarray,
    samples: int,
    empty: np.ndarray,
    lut: np.ndarray,
    lut_low: float,
    lut_scale: float,
    to_patient: np.ndarray,
    forward: np.ndarray,
    shading: np.ndarray,
    slope: float,
    out: np.ndarray,
) -> None:
    """Front-to-back compositing with early ray termination into ``out[row, column]``.

    ``rays`` is (origin, per column, per row, per sample) in voxel indices; ``lut`` is
    (entries, 4): step-corrected alpha and r, g, b by ``(value - lut_low) * lut_scale``;
    ``empty[block]`` is True where no voxel of the block can be seen (skipped unsampled);
    ``shading`` is (ambient, diffuse, specular, shininess).
    """
    ambient, diffuse, specular, shininess = shading[0], shading[1], shading[2], shading[3]
    last = lut.shape[0] - 1
    shape = data.shape
    width = out.shape[1]
    origin = np.empty(3)
    for n in range(rows.size):
        row = rows[n]
        for column in range(width):
            # Each ray somewhere in its pixel and its first sample somewhere in its step.
            across = column + _scatter(row, column, 1) - 0.5
            along = row + _scatter(row, column, 2) - 0.5
            deeper = _jitter(row, column)
            for a in range(3):
                origin[a] = (
                    rays[0, a] + across * rays[1, a] + along * rays[2, a] + deeper * rays[3, a]
                )
            first, end = _span(origin, rays[3], shape, samples)
            r = g = b = opacity = 0.0
            for t in range(first, end + 1):
                x, y, z = _at(origin, rays[3], t)
                i = min(max(int(x), 0), shape[2] - 2) >> BLOCK_SHIFT
                j = min(max(int(y), 0), shape[1] - 2) >> BLOCK_SHIFT
                k = min(max(int(z), 0), shape[0] - 2) >> BLOCK_SHIFT
                if empty[k, j, i]:
                    continue
                index = int((_trilinear(data, x, y, z) - lut_low) * lut_scale + 0.5)
                index = min(max(index, 0), last)
                alpha = lut[index, 0]
                if alpha <= 0.0:
                    continue
                light = _lighting(data, x, y, z, to_patient, forward, slope, 1.0)
                if light < 0.0:
                    shade, shine = ambient + diffuse, 0.0
                else:
                    shade, shine = ambient + diffuse * light, specular * light**shininess
                weight = (1.0 - opacity) * alpha
                r += weight * (lut[index, 1] * shade + shine)
                g += weight * (lut[index, 2] * shade + shine)
                b += weight * (lut[index, 3] * shade + shine)
                opacity += weight
                if opacity >= 0.99:
                    break
            out[row, column, 0] = r
            out[row, column, 1] = g
            out[row, column, 2] = b


@njit(cache=True, nogil=True, fastmath=True)
def maximum(
    data: np.ndarray,
    rows: np.ndarray,
    rays: np.ndarray,
    samples: int,
    highest: np.ndarray,
    to_patient: np.ndarray,
    forward: np.ndarray,
    shading: np.ndarray,
    slope: float,
    floor: float,
    out: np.ndarray,
    light: np.ndarray,
) -> None:
    """The largest stored value along each ray into ``out`` (NaN where the ray misses the
    volume) and ``ambient + diffuse * |n . l|`` into ``light``. Blocks whose ``highest``
    value cannot beat the ray's maximum so far (or reach the surface's level) are skipped.

    The normal is the gradient where the ray first reaches ``LEVEL`` of the way from
    ``floor`` (the stored value shown black) to its maximum: the front surface of the
    nearest bright structure, where the gradient is large and points out of it, as a
    surface rendering's normal (a ray that enters the volume above that level is left
    unshaded). Not at the maximum: there the gradient is zero along the ray, inside a
    dense, noisy structure its direction is the noise's, and where structures of about
    the same value lie one behind the other (a bone's front and back walls) noise picks
    which one holds the maximum, ray by ray: all three shade as salt and pepper.
    """
    ambient, diffuse = shading[0], shading[1]
    shape = data.shape
    width = out.shape[1]
    origin = np.empty(3)
    for n in range(rows.size):
        row = rows[n]
        hint = -1  # where the previous ray's maximum was
        for column in range(width):
            for a in range(3):
                origin[a] = rays[0, a] + column * rays[1, a] + row * rays[2, a]
            first, end = _span(origin, rays[3], shape, samples)
            best, at = -np.inf, -1
            if first <= hint <= end:  # a sample near the neighbour's maximum: a high start
                best, at = _trilinear(data, *_at(origin, rays[3], hint)), hint
            for t in range(first, end + 1):
                x, y, z = _at(origin, rays[3], t)
                i = min(max(int(x), 0), shape[2] - 2) >> BLOCK_SHIFT
                j = min(max(int(y), 0), shape[1] - 2) >> BLOCK_SHIFT
                k = min(max(int(z), 0), shape[0] - 2) >> BLOCK_SHIFT
                if highest[k, j, i] <= best:
                    continue
                value = _trilinear(data, x, y, z)
                if value > best:
                    best, at = value, t
            if at < 0:
                hint = -1
                out[row, column] = np.nan
                light[row, column] = 0.0
                continue
            out[row, column] = best
            hint = at
            cosine = -1.0
            if best > floor:
                # The first place along the ray that reaches halfway from floor to best.
                level = floor + LEVEL * (best - floor)
                before, known = 0.0, False  # the value one sample nearer, if read
                for t in range(first, at + 1):
                    x, y, z = _at(origin, rays[3], t)
                    i = min(max(int(x), 0), shape[2] - 2) >> BLOCK_SHIFT
                    j = min(max(int(y), 0), shape[1] - 2) >> BLOCK_SHIFT
                    k = min(max(int(z), 0), shape[0] - 2) >> BLOCK_SHIFT
                    if highest[k, j, i] < level:  # all of this block is below: no crossing
                        known = False
                        continue
                    value = _trilinear(data, x, y, z)
                    if value < level:
                        before, known = value, True
                        continue
                    if t > first:  # (a ray that enters the volume above it: unshaded)
                        if not known:
                            before = _trilinear(data, *_at(origin, rays[3], t - 1))
                        depth = t - 1 + (level - before) / (value - before)
                        x = origin[0] + depth * rays[3, 0]
                        y = origin[1] + depth * rays[3, 1]
                        z = origin[2] + depth * rays[3, 2]
                        cosine = _lighting(data, x, y, z, to_patient, forward, slope, REACH)
                    break
            light[row, column] = ambient + diffuse * (1.0 if cosine < 0.0 else cosine)


def block_shape(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """How many blocks a volume of ``shape`` (slices, rows, columns) has on each axis."""
    block = 1 << BLOCK_SHIFT
    return (shape[0] - 2) // block + 1, (shape[1] - 2) // block + 1, (shape[2] - 2) // block + 1


@njit(cache=True, nogil=True)
def block_range(data: np.ndarray, slabs: np.ndarray, low: np.ndarray, high: np.ndarray) -> None:
    """Lowest and highest stored value of each block (a cube of 8 cells) of the block
    slabs ``slabs`` into ``low`` and ``high`` (shaped by :func:`block_shape`): voxels
    ``[b * block, (b + 1) * block]`` on each axis (one voxel of overlap, as a sample in
    the block's last cell reads its far corner)."""
    block = 1 << BLOCK_SHIFT
    nk, nj, ni = data.shape
    bj, bi = low.shape[1], low.shape[2]
    for kk in slabs:
        for jj in range(bj):
            for ii in range(bi):
                low[kk, jj, ii], high[kk, jj, ii] = np.inf, -np.inf
            # Whole rows at a time (contiguous in memory), each split into its blocks.
            for k in range(kk * block, min((kk + 1) * block + 1, nk)):
                for j in range(jj * block, min((jj + 1) * block + 1, nj)):
                    for ii in range(bi):
                        lo, hi = low[kk, jj, ii], high[kk, jj, ii]
                        for i in range(ii * block, min((ii + 1) * block + 1, ni)):
                            v = float(data[k, j, i])
                            lo = min(lo, v)
                            hi = max(hi, v)
                        low[kk, jj, ii], high[kk, jj, ii] = lo, hi
