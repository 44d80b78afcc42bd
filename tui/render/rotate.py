"""A rotating MIP: the volume turned about the patient's head-foot axis, projected from
the front at each angle (the classic angiography loop)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from PIL import Image

from tui.render.lut import Window, auto_window, values_to_display
from tui.render.pipeline import Request, volume_of
from tui.render.presets import find_preset
from tui.render.views import aligned_planes
from tui.render.volume import Stack, VolumeError

_MAX_SIDE = 256  # axial slices are reduced to this before turning: a loop, not a diagnosis


def rotating_mip(
    stack: Stack, request: Request, presets: dict[str, dict[str, Window]], frames: int = 36
) -> list[Image.Image]:
    """``frames`` MIPs at evenly spaced angles, as square-pixel 8-bit images."""
    refusal = stack.mpr_refusal
    if refusal:
        raise VolumeError(f"cannot rotate: {refusal}")
    volume = volume_of(stack, None)
    axial = aligned_planes(volume, "axial")
    if axial is None:
        raise VolumeError("cannot rotate an oblique acquisition yet: export an axial cine instead")
    dz = abs(volume.stack.spacing)
    dx = float(np.linalg.norm(volume.affine[:3, 0]))
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
