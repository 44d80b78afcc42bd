"""Rotating loops: the volume turned about the patient's head-foot axis, seen from the
front at each angle: a MIP (the classic angiography loop), or a volume rendering."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from PIL import Image

from tui.render.lut import Window, auto_window, values_to_display
from tui.render.pipeline import VR_MODES, Rendered, Request, render, volume_of
from tui.render.presets import find_preset
from tui.render.views import axis_spacing, prepare
from tui.render.volume import Stack, VolumeCache, VolumeError

_MAX_SIDE = 256  # axial slices are reduced to this before turning: a loop, not a diagnosis


def rotating_mip(
    stack: Stack, request: Request, presets: dict[str, dict[str, Window]], frames: int = 36
) -> list[Image.Image]:
    """``frames`` MIPs at evenly spaced angles, as square-pixel 8-bit images."""
    refusal = stack.mpr_refusal
    if refusal:
        raise VolumeError(f"cannot rotate: {refusal}")
    volume = volume_of(stack, None)
    axial = prepare(volume)  # oblique and tilted stacks on the patient grid
    if axial is None:
        raise VolumeError("the volume is too large to turn: export an axial cine instead")
    dz = abs(volume.stack.spacing)
    dx = float(np.linalg.norm(volume.affine[:3, 0]))
    if volume.resampled is not None:  # the patient grid's spacing, not the stack's
        dx, _, dz = (float(v) for v in axis_spacing(volume))
    reduce = max(1, -(-max(axial.shape[1:]) // _MAX_SIDE))
    small = np.ascontiguousarray(axial[:, ::reduce, ::reduce]).astype(np.float32)
    window = None
    pictures = []
    for n in range(frames):
        angle = 360.0 * n / frames
        turned = np.stack(
            [
                np.asarray(
                    Image.fromarray(s).rotate(
                        angle, Image.Resampling.BILINEAR, fillcolor=float(s.min())
                    )
                )
                for s in small
            ]
        )
        projection = volume.values(turned.max(axis=1))[::-1]  # head up
        if window is None:
            window = (
                find_preset(presets, str(volume.header.get("Modality", "")), request.preset)
                if request.preset
                else request.window or replace(auto_window(projection), name="MIP")
            )
        image = values_to_display(projection, volume.header, window, request.invert)
        picture = Image.fromarray(image)
        height = round(picture.height * dz / (dx * reduce))
        pictures.append(picture.resize((picture.width, max(1, height)), Image.Resampling.BILINEAR))
    return pictures


def rotating_render(
    stack: Stack,
    request: Request,
    presets: dict[str, dict[str, Window]],
    cache: VolumeCache,
    transfers: dict[str, Any] | None = None,
    frames: int = 36,
) -> list[Rendered]:
    """``frames`` volume renderings (or shaded MIPs) by the request's camera, turned a
    full circle in azimuth, all in the first one's window."""
    if request.mode not in VR_MODES:
        raise VolumeError(f"not a volume rendering mode: {request.mode!r}")
    out: list[Rendered] = []
    for n in range(frames):
        turned = replace(request, azimuth=(request.azimuth + 360.0 * n / frames) % 360)
        if out and out[0].window is not None:
            turned = replace(turned, window=out[0].window, preset=None)
        out.append(render(stack, turned, presets, cache, transfers=transfers))
    return out
