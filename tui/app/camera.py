"""What the viewer's and the MPR's 3-D keys compute: the pixel size a panel shows, the VR
camera that looks the way a plane is seen, and the turns of the MPR's oblique frame; and
the notice both give while the compiled renderer loads.

Plain numpy, no Textual beyond reading a widget's size, so both screens share it (screens
never import each other)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from textual.screen import Screen

    from tui.app.image_view import ImageView

VR_SIDE = (64, 512)  # a VR frame's smallest and largest side, pixels
VR_DEFAULT = (256, 256)  # (width, height) before the panel is laid out


def panel_pixels(view: ImageView) -> tuple[int, int]:
    """(width, height) in pixels that ``view`` shows: rendering a VR frame at exactly this
    size costs no more rays than the screen can show. Half-block cells are one pixel wide
    and two high; a graphics protocol draws ``cell`` pixels a cell. The longer side is at
    most 512, each side at least 64; 256 x 256 before the widget has a size."""
    columns, rows = view.size.width, view.size.height
    if columns <= 0 or rows <= 0:
        return VR_DEFAULT
    if view.uses_protocol:
        width, height = columns * view.cell[0], rows * view.cell[1]
    else:
        width, height = columns, rows * 2
    low, high = VR_SIDE
    scale = min(1.0, high / max(width, height))
    return max(low, round(width * scale)), max(low, round(height * scale))


def camera_towards(forward: np.ndarray) -> tuple[float, float]:
    """(azimuth, elevation) in degrees of the VR camera looking along ``forward`` (patient).

    The rendering's convention: azimuth 0, elevation 0 looks along +y (from the front),
    azimuth turns toward the patient's left, elevation up toward the head, so the view
    direction is ``(-sin a cos e, cos a cos e, -sin e)``."""
    d = np.asarray(forward, float) / np.linalg.norm(forward)
    elevation = float(np.degrees(np.arcsin(np.clip(-d[2], -1.0, 1.0))))
    if abs(d[2]) > 1 - 1e-9:
        return 0.0, elevation  # straight up or down: any azimuth; 0 keeps right = +x
    azimuth = float(np.degrees(np.arctan2(-d[0], d[1]))) % 360.0
    return azimuth, elevation


def rotation(axis: np.ndarray, degrees: float) -> np.ndarray:
    """The 3 x 3 rotation by ``degrees`` about ``axis`` (right-handed, Rodrigues)."""
    k = np.asarray(axis, float) / np.linalg.norm(axis)
    angle = np.radians(degrees)
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def orthonormal(frame: np.ndarray) -> np.ndarray:
    """The rotation nearest ``frame`` (its columns unit and at right angles): many small
    turns leave rounding behind that would skew the planes."""
    u, _, vt = np.linalg.svd(frame)
    return np.asarray(u @ vt)


_said: list[bool] = []  # the loading notice, once a process


def starting(screen: Screen[Any]) -> None:
    """Before a volume rendering, from a worker: while the compiled renderer is not loaded
    yet, say once why the first frame takes a while."""
    from tui.render.vr import loaded

    if loaded() or _said:
        return
    _said.append(True)
    screen.app.call_from_thread(
        screen.notify,
        "loading the volume renderer: a second, or up to half a minute the first time on"
        " this machine (it is compiled once)",
        timeout=8,
    )
