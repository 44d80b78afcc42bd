"""The display pipeline of PS3.3 C.11 / PS3.14: modality LUT, VOI, presentation, 8 bits.

Modality and VOI LUT *sequences* and palette colour go through
``pydicom.pixels.processing``. Windowing (LINEAR, LINEAR_EXACT, SIGMOID) is done here,
mapping straight to 0-255 in float32: pydicom's ``apply_windowing`` maps to the stored
bit depth in float64 first, which costs a second pass and twice the memory on volumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels.processing import apply_color_lut, apply_modality_lut, apply_voi_lut


@dataclass(frozen=True)
class Window:
    """A VOI window: centre and width in modality units (HU for CT)."""

    center: float
    width: float
    function: str = "LINEAR"  # LINEAR, LINEAR_EXACT or SIGMOID
    name: str = ""

    def __str__(self) -> str:
        """``C 259.4 W 2812.5``: at most one decimal, none when the value is whole."""

        def short(value: float) -> str:
            tenths = round(value, 1)
            return str(int(tenths)) if tenths == int(tenths) else f"{tenths:.1f}"

        label = f"{self.name} " if self.name else ""
        return f"{label}C {short(self.center)} W {short(self.width)}"


def rescale(ds: Dataset) -> tuple[float, float]:
    """(slope, intercept) of the linear modality transform (1, 0 when absent)."""
    try:
        slope = float(ds.get("RescaleSlope", 1) or 1)
        intercept = float(ds.get("RescaleIntercept", 0) or 0)
    except (TypeError, ValueError):
        return 1.0, 0.0
    return slope, intercept


def modality_values(stored: np.ndarray, ds: Dataset) -> np.ndarray:
    """Stored values to modality values (HU for CT) as float32."""
    if "ModalityLUTSequence" in ds:
        return np.asarray(apply_modality_lut(stored, ds), dtype=np.float32)
    slope, intercept = rescale(ds)
    values = stored.astype(np.float32)
    if slope != 1.0:
        values *= slope
    if intercept:
        values += intercept
    return values


def file_windows(ds: Dataset) -> list[Window]:
    """The windows the file suggests, with their explanations."""
    centers = _numbers(ds.get("WindowCenter"))
    widths = _numbers(ds.get("WindowWidth"))
    names = ds.get("WindowCenterWidthExplanation") or []
    names = [names] if isinstance(names, str) else list(names)
    function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
    windows = []
    for i, (center, width) in enumerate(zip(centers, widths, strict=False)):
        if width > 0:
            name = str(names[i]) if i < len(names) else ""
            windows.append(Window(center, width, function, name))
    return windows


def _numbers(value: object) -> list[float]:
    """A DS value (one number, several, or text) as floats; [] if any is not a number."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        items: list[Any] = list(value.split("\\"))
    elif isinstance(value, MultiValue | list | tuple):
        items = list(value)
    else:
        items = [value]
    try:
        return [float(v) for v in items]
    except (TypeError, ValueError):
        return []


def auto_window(values: np.ndarray) -> Window:
    """A window from robust percentiles (0.5 % to 99.5 %), not min/max, of the values."""
    sample = values.ravel()
    if sample.size > 1_000_000:
        sample = sample[:: sample.size // 1_000_000]
    low, high = np.percentile(sample, [0.5, 99.5])
    width = max(float(high - low), 1.0)
    return Window(float(low) + width / 2, width, name="AUTO")


def apply_window(values: np.ndarray, window: Window, bits: int = 8) -> np.ndarray:
    """Modality values to ``bits`` bits (8: uint8 0-255; 12: uint16 0-4095) through
    ``window`` (PS3.3 C.11.2.1.2-3)."""
    c, w = window.center, window.width
    top = float(2**bits - 1)
    x = np.asarray(values, dtype=np.float32)
    if window.function == "SIGMOID":
        out = top / (1.0 + np.exp(-4.0 * (x - c) / w))
    elif window.function == "LINEAR_EXACT":
        out = ((x - c) / w + 0.5) * top
    elif w <= 1.0:  # a threshold: below or at c - 0.5 black, above white
        out = np.where(x > c - 0.5, top, 0.0)
    else:
        out = ((x - (c - 0.5)) / (w - 1.0) + 0.5) * top
    return np.clip(np.rint(out), 0, top).astype(np.uint8 if bits <= 8 else np.uint16)


def to_display(
    stored: np.ndarray,
    ds: Dataset,
    window: Window | None = None,
    voi_lut: int | None = None,
    invert: bool = False,
) -> np.ndarray:
    """Stored values of one frame to an 8-bit image (grey (rows, cols), or RGB).

    Parameters
    ----------
    window
        The VOI window; None takes the file's first window, else its VOI LUT, else an
        automatic window.
    voi_lut
        Use the file's VOI LUT Sequence item with this index instead of a window.
    invert
        Invert the result (on top of MONOCHROME1's own inversion).
    """
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if stored.ndim == 3 or photometric in ("PALETTE COLOR", "RGB") or photometric.startswith("YBR"):
        image = _colour(stored, ds, photometric)
        return 255 - image if invert else image
    if voi_lut is not None or (window is None and "VOILUTSequence" in ds and not file_windows(ds)):
        return _present(_voi_lut(stored, ds, voi_lut or 0), ds, invert)
    values = modality_values(stored, ds)
    return values_to_display(values, ds, choose_window(values, ds, window), invert)


def choose_window(values: np.ndarray, ds: Dataset, window: Window | None = None) -> Window:
    """``window``, else the file's first window, else an automatic one from ``values``."""
    return window or next(iter(file_windows(ds)), None) or auto_window(values)


def values_to_display(
    values: np.ndarray, ds: Dataset, window: Window, invert: bool = False, bits: int = 8
) -> np.ndarray:
    """Modality values (a frame, a reslice, a projection) to 8 bits (or ``bits``: 12 for a
    printer), as the file is presented."""
    return _present(apply_window(values, window, bits), ds, invert, 2**bits - 1)


def _present(image: np.ndarray, ds: Dataset, invert: bool, top: int = 255) -> np.ndarray:
    """The presentation LUT: MONOCHROME1 and INVERSE shapes show low values white
    (``top``: the brightest value, 255 for 8 bits)."""
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    inverse = str(ds.get("PresentationLUTShape", "")).upper() == "INVERSE"
    if (photometric == "MONOCHROME1") != inverse:
        image = top - image
    return top - image if invert else image


def _voi_lut(stored: np.ndarray, ds: Dataset, index: int) -> np.ndarray:
    values = apply_voi_lut(apply_modality_lut(stored, ds), ds, index=index)
    item = ds.VOILUTSequence[index]
    bits = int(item.LUTDescriptor[2]) if "LUTDescriptor" in item else 16
    top = float(2**bits - 1)
    return np.clip(np.rint(np.asarray(values, np.float32) * (255.0 / top)), 0, 255).astype(np.uint8)


def _colour(stored: np.ndarray, ds: Dataset, photometric: str) -> np.ndarray:
    """Colour frames as 8-bit RGB (pydicom gives YBR frames as RGB already)."""
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(stored, ds)
        bits = 16 if rgb.dtype.itemsize > 1 else 8
    else:
        rgb = stored
        bits = int(ds.get("BitsStored", 8) or 8)
    if bits > 8:
        rgb = (rgb.astype(np.float32) * (255.0 / (2**bits - 1))).round()
    return np.clip(rgb, 0, 255).astype(np.uint8)
