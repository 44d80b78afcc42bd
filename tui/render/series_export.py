"""Writing what is shown to files: one view (PNG/JPEG/TIFF), a cine loop through a plane
(GIF/WebP) or a contact sheet (PDF/PNG). The CLI's ``render``/``export`` and the app's
export key both come through here."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from PIL import Image

from tui.render import export
from tui.render.lut import Window
from tui.render.pipeline import VR_MODES, Rendered, Request, plane_count, render
from tui.render.volume import Stack, VolumeCache

SHEET_TILES = 60  # a contact sheet shows at most this many images, evenly spaced
STILL_SIDE = 768  # a volume rendering saved as a still: its longer side, pixels


def corner_text(rendered: Rendered, no_phi: bool) -> dict[str, list[str]]:
    """Burned-in text: patient (unless ``no_phi``), study, series, what and window."""
    ds = rendered.header
    top_left = [] if no_phi else [str(ds.get("PatientName", "")), str(ds.get("PatientID", ""))]
    top_left.append(f"{ds.get('StudyDate', '')} {ds.get('StudyDescription', '')}".strip())
    series = (ds.get("Modality", ""), ds.get("SeriesNumber", ""), ds.get("SeriesDescription", ""))
    return {
        "top-left": top_left,
        "top-right": [" ".join(str(v) for v in series if v != "")],
        "bottom-left": [rendered.description],
        "bottom-right": [str(rendered.window)] if rendered.window else [],
    }


def picture(
    rendered: Rendered,
    size: tuple[int, int] | None = None,
    annotate: bool = False,
    no_phi: bool = False,
) -> Image.Image:
    """The rendered view with square pixels, fitted to ``size``, annotated if asked (a
    small image without a ``size`` is enlarged first, so its text can be read)."""
    view = rendered.view
    spacing = view.pixel_spacing if view is not None else (1.0, 1.0)
    out = export.fit(export.square_pixels(rendered.image, spacing), size)
    if annotate:
        if size is None:
            out = export.enlarge_for_text(out)
        out = export.annotate(out, corner_text(rendered, no_phi), rendered.labels or None)
    return out


def plane_pictures(
    stack: Stack,
    request: Request,
    presets: dict[str, dict[str, Window]],
    cache: VolumeCache,
    step: int = 1,
    size: tuple[int, int] | None = None,
    annotate: bool = False,
    no_phi: bool = False,
    time_points: Sequence[Stack] = (),
) -> tuple[Rendered, list[Image.Image]]:
    """Every ``step``-th plane of the request's plane, all in the middle one's window
    (annotated if asked: a cine loop's frames carry their text); ``time_points`` for a
    MIP over time."""
    first, planes = plane_renders(stack, request, presets, cache, step, time_points)
    return first, [picture(rendered, size, annotate, no_phi) for rendered in planes]


def plane_renders(
    stack: Stack,
    request: Request,
    presets: dict[str, dict[str, Window]],
    cache: VolumeCache,
    step: int = 1,
    time_points: Sequence[Stack] = (),
) -> tuple[Rendered, Iterator[Rendered]]:
    """The middle plane of the request's plane, and every ``step``-th plane rendered in its
    window as they are asked for (a cine loop, a contact sheet, a film)."""
    count = plane_count(stack, request, cache)
    middle = replace(request, index=count // 2, position=None)
    first = render(stack, middle, presets, cache, time_points=time_points)

    def planes() -> Iterator[Rendered]:
        for index in range(0, count, step):
            one = replace(request, index=index, position=None, window=first.window, preset=None)
            yield render(stack, one, presets, cache, time_points=time_points)

    return first, planes()


def sheet_step(count: int) -> int:
    """A contact sheet's step through ``count`` planes: at most :data:`SHEET_TILES` images."""
    return max(1, -(-count // SHEET_TILES))


def time_pictures(
    timeline: list[Stack],
    request: Request,
    presets: dict[str, dict[str, Window]],
    cache: VolumeCache,
    size: tuple[int, int] | None = None,
    annotate: bool = False,
    no_phi: bool = False,
    transfers: dict[str, Any] | None = None,
) -> tuple[Rendered, list[Image.Image]]:
    """The request's view at every time point (``pipeline.time_points``), in time order and
    all in the middle one's window; annotated frames say which time point they are."""
    first = render(timeline[len(timeline) // 2], request, presets, cache, transfers=transfers)
    if first.window is not None:  # a volume rendering keeps its transfer preset instead
        request = replace(request, window=first.window, preset=None)
    pictures = []
    for number, stack in enumerate(timeline, 1):
        rendered = render(stack, request, presets, cache, transfers=transfers)
        rendered.description = f"t {number}/{len(timeline)}, {rendered.description}"
        pictures.append(picture(rendered, size, annotate, no_phi))
    return first, pictures


def write_cine(
    stack: Stack,
    request: Request,
    presets: dict[str, dict[str, Window]],
    cache: VolumeCache,
    path: Path,
    fps: float = 10.0,
    size: tuple[int, int] | None = None,
    annotate: bool = False,
    no_phi: bool = False,
    time_points: Sequence[Stack] = (),
) -> None:
    _, pictures = plane_pictures(
        stack, request, presets, cache, 1, size, annotate, no_phi, time_points
    )
    export.save_animation(pictures, path, fps)


def write_sheet(
    stack: Stack,
    request: Request,
    presets: dict[str, dict[str, Window]],
    cache: VolumeCache,
    path: Path,
    columns: int = 6,
    no_phi: bool = False,
    time_points: Sequence[Stack] = (),
) -> None:
    export.save_sheet(sheet(stack, request, presets, cache, columns, no_phi, time_points), path)


def sheet(
    stack: Stack,
    request: Request,
    presets: dict[str, dict[str, Window]],
    cache: VolumeCache,
    columns: int = 6,
    no_phi: bool = False,
    time_points: Sequence[Stack] = (),
) -> Image.Image:
    """A contact sheet of the request's plane under a header: patient, series, what."""
    step = sheet_step(plane_count(stack, request, cache))
    first, pictures = plane_pictures(stack, request, presets, cache, step, time_points=time_points)
    corners = corner_text(first, no_phi)
    title = [" ".join(corners["top-left"]), " ".join(corners["top-right"])]
    what = first.description.split(" at ")[0]
    title.append(f"{what}, every {step}: {len(pictures)} images, {first.window}")
    return export.contact_sheet(pictures, [t for t in title if t.strip()], max(1, columns))


def write_any(
    path: Path,
    rendered: Rendered,
    stack: Stack,
    request: Request,
    presets: dict[str, dict[str, Window]],
    cache: VolumeCache,
    no_phi: bool = False,
    transfers: dict[str, Any] | None = None,
    time_points: Sequence[Stack] = (),
) -> Any:
    """By the file's extension: a still of the view or a cine loop (through the plane; a
    volume rendering turns a full circle), annotated, or a contact sheet under its header.
    ``time_points``: the series' (``pipeline.time_points``), for a MIP over time."""
    suffix = path.suffix.lower()
    volume_rendering = request.mode in VR_MODES
    if suffix in export.ANIMATED and volume_rendering:
        from tui.render.rotate import rotating_render

        turns = rotating_render(stack, request, presets, cache, transfers)
        frames = [picture(r, annotate=True, no_phi=no_phi) for r in turns]
        export.save_animation(frames, path, 10.0)
    elif suffix in export.ANIMATED:
        write_cine(
            stack, request, presets, cache, path, annotate=True, no_phi=no_phi,
            time_points=time_points,
        )  # fmt: skip
    elif suffix == ".pdf" and not volume_rendering:
        write_sheet(stack, request, presets, cache, path, no_phi=no_phi, time_points=time_points)
    else:
        if volume_rendering:  # rendered again for the file, not the pane's few pixels
            width, height = request.size or (256, 256)
            scale = max(1.0, STILL_SIDE / max(width, height))
            sharp = replace(request, size=(round(width * scale), round(height * scale)))
            rendered = render(
                stack, replace(sharp, coarse=False), presets, cache, transfers=transfers
            )
        export.save_still(picture(rendered, annotate=True, no_phi=no_phi), path)
