"""What the viewer's and the MPR's 3-D keys compute: the pixel size a panel shows, the VR
camera that looks the way a plane is seen, and the turns of the MPR's oblique frame; and
the notice both give while the compiled renderer loads.

Plain numpy, no Textual beyond reading a widget's size, so both screens share it (screens
never import each other)."""

from __future__ import annotations

import threading
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from textual.screen import Screen

    from tui.app.image_view import ImageView

VR_SIDE = (64, 512)  # a VR frame's smallest side, and its largest side, pixels
VR_LONG = 256  # a VR frame's longer side at least: a small pane's picture is averaged down
VR_DEFAULT = (256, 256)  # (width, height) before the panel is laid out
# The VR camera's zoom in the app: zoom 1 fits the bounding box's diagonal, where a body
# fills half the pane's height; at 1.25 two thirds of it, and it is still whole from any
# side (the demo CT from azimuth 45, elevation ±30: 96% of the height at most).
VR_ZOOM = 1.25


def panel_pixels(view: ImageView, least: int = VR_LONG) -> tuple[int, int]:
    """(width, height) in pixels a VR frame for ``view`` is rendered at: the pixels the
    panel shows (half-block cells are one pixel wide and two high; a graphics protocol
    draws ``cell`` pixels a cell), at the panel's aspect. The longer side is at least
    ``least`` (a small half-block pane's rays are averaged by the encoder: smooth, not
    grainy; 0: the panel's own pixels, for slices) and
    at most 512, each side at least 64; 256 x 256 before the widget has a size."""
    columns, rows = view.size.width, view.size.height
    if columns <= 0 or rows <= 0:
        return VR_DEFAULT
    if view.uses_protocol:
        width, height = columns * view.cell[0], rows * view.cell[1]
    else:
        width, height = columns, rows * 2
    low, high = VR_SIDE
    scale = min(high, max(least, width, height)) / max(width, height)
    return max(low, round(width * scale)), max(low, round(height * scale))


def camera_towards(forward: np.ndarray, down: np.ndarray | None = None) -> tuple[float, float]:
    """(azimuth, elevation) in degrees of the VR camera looking along ``forward`` (patient)
    and, with ``down``, whose picture's down is nearest ``down``.

    The rendering's convention: azimuth 0, elevation 0 looks along +y (from the front),
    azimuth turns toward the patient's left, elevation up toward the head, so the view
    direction is ``(-sin a cos e, cos a cos e, -sin e)``, and the picture's up follows the
    head. That camera has no roll, so near the poles a direction alone picks an arbitrary
    azimuth (a plane 5° off axial, seen from the feet, would come out turned 90° in its
    own plane). With ``down`` the elevation is the direction's and the azimuth is the one
    whose camera frame (forward, right, down) is nearest the wanted one: the direction's
    own azimuth away from the poles, the picture's up near them."""
    d = np.asarray(forward, float) / np.linalg.norm(forward)
    elevation = float(np.degrees(np.arcsin(np.clip(-d[2], -1.0, 1.0))))
    if down is None:
        if abs(d[2]) > 1 - 1e-9:
            return 0.0, elevation  # straight up or down: any azimuth; 0 keeps right = +x
        azimuth = float(np.degrees(np.arctan2(-d[0], d[1]))) % 360.0
        return azimuth, elevation
    from tui.render.vr import Camera, camera_axes

    want = np.stack([d, np.cross(np.asarray(down, float), d), np.asarray(down, float)])
    want /= np.linalg.norm(want, axis=1, keepdims=True)

    def match(azimuth: float) -> float:  # trace of (camera frame)^T (wanted frame)
        axes = camera_axes(Camera(azimuth, elevation))
        return float(sum(a @ w for a, w in zip(axes, want, strict=True)))

    # the camera is a turn about the head-foot axis of the azimuth-0 one, so the match is
    # C + A cos(azimuth) + B sin(azimuth): three samples give its maximum
    m0, m90, m180 = match(0.0), match(90.0), match(180.0)
    centre = (m0 + m180) / 2
    azimuth = float(np.degrees(np.arctan2(m90 - centre, m0 - centre))) % 360.0
    return round(azimuth, 6) % 360.0, elevation


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
_first = threading.Event()  # set when a volume rendering came back in this process
SLOW = 1.0  # seconds without the first frame before the notice says why


def starting(screen: Screen[Any]) -> None:
    """Before a volume rendering, from a worker: if the first frame of this process has
    not come within :data:`SLOW` seconds (the compiled renderer loads, or compiles the
    first time on a machine), say once why it takes a while."""
    if _first.is_set() or _said:
        return
    screen.app.call_from_thread(screen.set_timer, SLOW, partial(_slow, screen))


def rendered() -> None:
    """A volume rendering came back (from the worker): no loading notice from now on."""
    _first.set()


def _slow(screen: Screen[Any]) -> None:
    if _first.is_set() or _said or not screen.is_attached:
        return
    _said.append(True)
    screen.notify(
        "loading the volume renderer: a second, or up to half a minute the first time on"
        " this machine (it is compiled once)",
        timeout=8,
    )
