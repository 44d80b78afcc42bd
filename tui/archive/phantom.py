"""Synthetic anatomy for the demo archive: CT values in HU and MR signal, slice by slice.

Coordinates are patient LPS millimetres (x to the patient's left, y to the
back, z to the head), so the geometry written in the headers is the truth
the slices were drawn from. Everything is deterministic.
"""

from __future__ import annotations

import numpy as np

AIR, FAT, SOFT, LUNG, BLOOD = -1000.0, -100.0, 40.0, -850.0, 45.0
CONTRAST, LIVER, KIDNEY, BONE, MARROW, CSF, GREY, WHITE = (
    320.0, 95.0, 160.0, 900.0, 250.0, 8.0, 38.0, 28.0,
)  # fmt: skip


def grid(size: int, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """x and y (mm) of every pixel centre of a ``size`` x ``size`` slice centred on 0."""
    axis = (np.arange(size) - (size - 1) / 2) * spacing
    return np.meshgrid(axis, axis)  # x varies along columns, y along rows


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, a: float, b: float) -> np.ndarray:
    return ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 <= 1.0


def _window(z: float, low: float, high: float) -> float:
    """0 outside [low, high], rising to 1 in the middle: organs taper at their ends."""
    if not low < z < high:
        return 0.0
    t = (z - low) / (high - low)
    return float(np.sqrt(np.sin(np.pi * t)))


def body_ct(x: np.ndarray, y: np.ndarray, z: float, rng: np.random.Generator) -> np.ndarray:
    """One axial slice (HU) of a chest-abdomen-pelvis at height ``z`` in [-300, 0] mm."""
    hu = np.full(x.shape, AIR, dtype=np.float32)
    hu[(y > 135) & (y < 150) & (np.abs(x) < 220)] = 120.0  # the table
    a, b = 165 + 10 * np.cos(z / 60), 115 + 8 * np.sin(z / 45)
    hu[_ellipse(x, y, 0, 0, a, b)] = FAT
    hu[_ellipse(x, y, 0, 0, a - 14, b - 12)] = SOFT
    spine_y = b - 78
    # Ribs: arcs inside the body wall, every 26 mm in the chest.
    if z > -175 and (z % 26) < 9:
        ring = _ellipse(x, y, 0, 0, a - 18, b - 16) & ~_ellipse(x, y, 0, 0, a - 26, b - 24)
        hu[ring & (np.abs(x) > 45) & (y > -b * 0.7)] = BONE
    lungs = _window(z, -175, 10)
    if lungs:
        for side in (-1, 1):
            hu[_ellipse(x, y, side * 70, -5, 55 * lungs, 80 * lungs)] = LUNG
            # Pulmonary vessels: bright dots in the lungs.
            for k in range(6):
                vx = side * (45 + 12 * k % 40)
                vy = -40 + 15 * k
                if _ellipse(np.array(vx), np.array(vy), side * 70, -5, 55 * lungs, 80 * lungs):
                    hu[_ellipse(x, y, vx, vy, 3, 3)] = CONTRAST * 0.6
    heart = _window(z, -180, -90)
    if heart:
        hu[_ellipse(x, y, 25, -20, 55 * heart, 45 * heart)] = BLOOD
        hu[_ellipse(x, y, 30, -25, 28 * heart, 22 * heart)] = CONTRAST
        hu[_ellipse(x, y, -5, -45, 14, 14) if z > -120 else np.zeros_like(hu, bool)] = CONTRAST
    liver = _window(z, -250, -150)
    if liver:
        hu[_ellipse(x, y, -60, 0, 85 * liver, 75 * liver)] = LIVER
        for vx, vy in ((-70, -10), (-40, 20), (-95, 15)):
            hu[_ellipse(x, y, vx, vy, 6 * liver, 6 * liver)] = 180.0
    spleen = _window(z, -225, -170)
    if spleen:
        hu[_ellipse(x, y, 95, 35, 30 * spleen, 40 * spleen)] = 55.0
    kidneys = _window(z, -270, -200)
    if kidneys:
        for side in (-1, 1):
            hu[_ellipse(x, y, side * 62, spine_y - 10, 24 * kidneys, 32 * kidneys)] = KIDNEY
            hu[_ellipse(x, y, side * 55, spine_y - 10, 8 * kidneys, 10 * kidneys)] = 20.0
    bowel = _window(z, -300, -180)
    if bowel:
        for k in range(5):
            hu[_ellipse(x, y, -60 + 30 * k, -50 + 9 * (k % 2), 12, 12)] = -700.0 + 10 * k
    # Great vessels in front of the spine, the whole length.
    hu[_ellipse(x, y, 18, spine_y - 35, 12, 12)] = CONTRAST  # descending aorta
    hu[_ellipse(x, y, -22, spine_y - 32, 11, 9)] = 160.0  # inferior vena cava
    # Spine: vertebral bodies with discs every 32 mm, canal and spinous process.
    disc = (z % 32) < 6
    body = _ellipse(x, y, 0, spine_y, 22, 18)
    hu[body] = 80.0 if disc else BONE
    if not disc:
        hu[_ellipse(x, y, 0, spine_y, 18, 14)] = MARROW
    hu[_ellipse(x, y, 0, spine_y + 30, 9, 9)] = BONE
    hu[_ellipse(x, y, 0, spine_y + 30, 6, 6)] = 15.0
    hu[(np.abs(x) < 4) & (y > spine_y + 38) & (y < spine_y + 55)] = BONE
    pelvis = _window(z, -320, -255)
    if pelvis:
        for side in (-1, 1):
            wing = _ellipse(x, y, side * 95, spine_y - 5, 45 * pelvis, 18)
            hu[wing & ~_ellipse(x, y, side * 95, spine_y - 5, 40 * pelvis, 12)] = BONE
    hu += rng.normal(0.0, 9.0, hu.shape).astype(np.float32)
    return hu


# Tissue values of the head phantom: air, scalp, skull, CSF, grey, white matter, ventricles.
HEAD_CT = (AIR, FAT, BONE, CSF, GREY, WHITE, CSF)
HEAD_T1 = (0.0, 900.0, 40.0, 180.0, 560.0, 700.0, 120.0)  # fat bright, white over grey
HEAD_T2 = (0.0, 520.0, 30.0, 1400.0, 760.0, 560.0, 1500.0)  # CSF bright, grey over white


def head(
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    rng: np.random.Generator,
    values: tuple[float, ...] = HEAD_CT,
) -> np.ndarray:
    """A head; x, y, z (mm) broadcast together; ``values`` choose CT HU or an MR contrast."""
    r = np.sqrt((x / 72) ** 2 + (y / 92) ** 2 + ((z - 10) / 80) ** 2)
    brain = np.sqrt((x / 62) ** 2 + (y / 82) ** 2 + ((z - 12) / 70) ** 2)
    grey_white = np.sqrt((x / 50) ** 2 + (y / 68) ** 2 + ((z - 16) / 56) ** 2)
    ventricles = (np.abs(x) > 3) & (np.abs(x) < 14) & (np.abs(y + 5) < 28) & (np.abs(z - 18) < 12)
    out = np.full(np.broadcast(x, y, z).shape, values[0], dtype=np.float32)
    out[r <= 1.0] = values[1]
    out[r <= 0.95] = values[2]
    out[brain <= 1.0] = values[3]
    out[brain <= 0.96] = values[4]
    out[grey_white <= 1.0] = values[5]
    out[ventricles & (grey_white <= 1.0)] = values[6]
    brainstem = (np.abs(x) < 13) & (np.abs(y - 12) < 14) & (z < 0) & (z > -75)
    out[brainstem] = values[5]
    for side in (-1, 1):  # eyes: fluid-filled globes in front of the brain
        out[(x - side * 32) ** 2 + (y + 72) ** 2 + (z + 2) ** 2 <= 144] = values[6]
    ct = values is HEAD_CT
    out += rng.normal(0.0, 4.0 if ct else 12.0, out.shape).astype(np.float32)
    return out if ct else np.clip(out, 0, None)
