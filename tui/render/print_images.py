"""What a DICOM printer is sent: the grey pixels of a view, or of every Nth plane of a series
as on a contact sheet, in 8 bits (the pipeline's image) and 12 bits (the same view through
the same window, for printers that take them), with the pixel aspect ratio (a printer is
sent pixels as they are, not resampled), and the text for its annotation boxes.

Render and net are siblings: the printing SCU (:mod:`tui.net.printing`) wraps these plain
tuples in its ``PrintImage``; the CLI and the app, which may import both, do it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from fractions import Fraction
from typing import Any

import numpy as np

from tui.render.lut import Window, values_to_display
from tui.render.pipeline import VR_MODES, Rendered, Request, plane_count, render
from tui.render.series_export import STILL_SIDE, corner_text, plane_renders, sheet_step
from tui.render.volume import Stack, VolumeCache

# (grey8, grey12 or None, (row, column) pixel aspect ratio)
PrintPixels = tuple[np.ndarray, np.ndarray | None, tuple[int, int]]


def print_images(
    stack: Stack,
    request: Request,
    presets: dict[str, dict[str, Window]],
    cache: VolumeCache,
    *,
    every: int | None = None,
    bits: int = 12,
    time_points: Sequence[Stack] = (),
    transfers: dict[str, Any] | None = None,
) -> tuple[Rendered, list[PrintPixels]]:
    """The images to print of ``request``'s view of ``stack``, and the view that names them.

    One image when the request names a plane (``index`` or ``position``), is an oblique
    plane, a volume rendering or a projection through the whole volume (every plane of it
    is the same picture: :func:`one_view`); else every ``every``-th plane (default: as the
    contact sheet, at most ``SHEET_TILES``), all in the middle plane's window. ``bits`` 12
    adds each image at 12 bits where the view has values (not colour, not a volume
    rendering).
    """
    if request.mode in VR_MODES:
        width, height = request.size or (256, 256)  # rendered for paper, not a pane
        scale = max(1.0, STILL_SIDE / max(width, height))
        sharp = replace(request, size=(round(width * scale), round(height * scale)), coarse=False)
        rendered = render(stack, sharp, presets, cache, transfers=transfers)
        return rendered, [_pixels(rendered, request, bits)]
    if one_view(request):
        rendered = render(stack, request, presets, cache, time_points=time_points)
        return rendered, [_pixels(rendered, request, bits)]
    if every is not None and every < 1:
        raise ValueError("every must be 1 or more")
    step = every or sheet_step(plane_count(stack, request, cache))
    first, planes = plane_renders(stack, request, presets, cache, step, time_points)
    return first, [_pixels(rendered, request, bits) for rendered in planes]


def one_view(request: Request) -> bool:
    """Whether ``request`` is one picture, not a series of planes: a plane named (``index``,
    ``position``), an oblique plane, a volume rendering, or a projection (MIP, MinIP,
    average) without a slab, which every plane shows the same, through the whole volume."""
    return (
        request.index is not None
        or request.position is not None
        or request.normal is not None
        or request.mode in VR_MODES
        or (request.mode != "slice" and request.slab is None)
    )


def _pixels(rendered: Rendered, request: Request, bits: int) -> PrintPixels:
    image = rendered.image
    if image.ndim == 3:  # colour (a volume rendering, an RGB frame): its luminance
        luma = image[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        grey8 = np.clip(np.rint(luma), 0, 255).astype(np.uint8)
    else:
        grey8 = np.ascontiguousarray(image, dtype=np.uint8)
    grey12 = None
    view, window = rendered.view, rendered.window
    if bits == 12 and image.ndim == 2 and view is not None and window is not None:
        grey12 = values_to_display(view.values, rendered.header, window, request.invert, 12)
    return grey8, grey12, aspect_ratio(rendered)


def aspect_ratio(rendered: Rendered) -> tuple[int, int]:
    """PixelAspectRatio (row spacing : column spacing) in small whole numbers; 1:1 for
    square pixels and views without a geometry."""
    if rendered.view is None:
        return 1, 1
    row, column = rendered.view.pixel_spacing
    if row <= 0 or column <= 0 or abs(row / column - 1) < 1e-3:
        return 1, 1
    ratio = Fraction(row / column).limit_denominator(100)
    return ratio.numerator, ratio.denominator


def annotation_lines(rendered: Rendered, no_phi: bool) -> list[str]:
    """The text of a film's annotation boxes, as the corners of an export say it: patient
    name and ID (not with ``no_phi``), study date and description, the series."""
    corners = corner_text(rendered, no_phi)
    top_left = corners["top-left"]
    lines = [] if no_phi else [" ".join(t for t in top_left[:2] if t)]
    lines += top_left[-1:] + corners["top-right"]
    return [line for line in lines if line.strip()]
