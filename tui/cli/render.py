"""The image commands: ``render`` (a slice, projection or MPR view to an image file or
the terminal) and ``export`` (a cine loop or a contact sheet; ``--dicom``, the files
themselves, is handled in :mod:`tui.cli.share`)."""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from tui.cli import share
from tui.cli.common import Commands, done, open_archive, print_json, settings, tty
from tui.config import Locations
from tui.errors import UserError
from tui.tables import printable


def add_commands(commands: Commands) -> None:
    """Register ``render`` and ``export`` on ``commands``."""
    p = commands.add_parser(
        "render",
        help="render a slice, MIP/MinIP/average, MPR or oblique view, or a volume rendering,"
        " of a series to an image file",
    )
    _view_options(p)
    p.add_argument("--size", metavar="WxH", type=_size, help="output size in pixels")
    p.add_argument("--annotate", action="store_true", help="burn in corner text and orientation")
    p.add_argument("--no-phi", action="store_true", help="leave identifying text out")
    p.add_argument("--raw", action="store_true", help="16-bit PNG of modality values")
    p.add_argument("--term", action="store_true", help="print it in this terminal")
    p.add_argument("-o", "--output", metavar="OUT", help=".png, .jpg or .tif")
    p.set_defaults(handler=cmd_render)

    p = commands.add_parser(
        "export",
        help="export a series as a cine loop or a contact sheet, or studies as DICOM files",
    )
    p.add_argument(
        "uids", nargs="*", metavar="UID",
        help="--cine/--sheet: one SeriesInstanceUID; --dicom: Study, Series or SOP Instance UIDs",
    )  # fmt: skip
    _view_options(p, series=False)
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--cine", action="store_true", help="animated through the slices")
    kind.add_argument("--sheet", action="store_true", help="a contact sheet laid out like film")
    kind.add_argument(
        "--dicom", action="store_true", help="the DICOM files: to a folder, a .zip or media"
    )
    kind.add_argument(
        "--nifti", action="store_true",
        help="a NIfTI volume (.nii/.nii.gz; 4D for time points) and a BIDS sidecar, as dcm2niix",
    )  # fmt: skip
    p.add_argument("--no-sidecar", action="store_true", help="with --nifti: no .json sidecar")
    p.add_argument(
        "--rotate", action="store_true",
        help="with --cine: turned a full circle (a MIP; with --mode vr or smip, rendered)",
    )  # fmt: skip
    p.add_argument(
        "--time", action="store_true",
        help="with --cine: through the time points (4D) at this slice or view",
    )  # fmt: skip
    p.add_argument("--fps", type=float, default=10.0, help="cine frames per second")
    p.add_argument("--columns", type=int, default=6, help="sheet columns")
    p.add_argument("--size", metavar="WxH", type=_size, help="cine frame size in pixels")
    p.add_argument("--no-phi", action="store_true", help="leave identifying text out")
    p.add_argument(
        "-o", "--output", metavar="OUT", required=True,
        help=".gif/.webp or .pdf/.png; with --dicom a new (or empty) folder or a new .zip;"
        " with --nifti a new .nii or .nii.gz",
    )  # fmt: skip
    share.add_export_options(p)
    p.set_defaults(handler=cmd_export)


def _view_options(p: argparse.ArgumentParser, series: bool = True) -> None:
    # Let "--point -35,25,0" read as a value, as argparse reads "-35" (its own pattern,
    # which leaves out commas); this parser has no options that look like numbers.
    p._negative_number_matcher = re.compile(r"^-\d[\d.,eE+-]*$|^-\.\d")
    if series:
        p.add_argument(
            "series", metavar="SERIES_UID",
            help="a SeriesInstanceUID, or a file: .nii .nii.gz .nrrd .nhdr .tif .png .jpg .jp2",
        )  # fmt: skip
    p.add_argument(
        "--stack",
        type=int,
        help="which stack of the series, from 0 (4D: the time points in order; the app's t 1;"
        " default 0, and --nifti all the time points)",
    )
    p.add_argument(
        "--mode", choices=("slice", "mip", "minip", "avg", "vr", "smip"), default="slice",
        help="vr: volume rendering; smip: shaded MIP (with --azimuth, --elevation, --zoom)",
    )  # fmt: skip
    p.add_argument("--plane", choices=("axial", "coronal", "sagittal", "acquired"))
    where = p.add_mutually_exclusive_group()
    where.add_argument("--index", type=int, metavar="N", help="slice number, from 1")
    where.add_argument("--position", type=float, metavar="MM", help="position along the normal")
    p.add_argument("--slab", type=float, metavar="MM", help="projection thickness (default: all)")
    p.add_argument(
        "--normal", type=_vector, metavar="X,Y,Z",
        help="an oblique plane across this patient direction (LPS), with --point",
    )  # fmt: skip
    p.add_argument(
        "--point", type=_vector, metavar="X,Y,Z",
        help="the oblique plane's point, patient mm (default: the volume's centre)",
    )  # fmt: skip
    p.add_argument("--azimuth", type=_finite, default=0.0, help="vr/smip: degrees toward the left")
    p.add_argument(
        "--elevation", type=_finite, default=0.0, help="vr/smip: degrees toward the head, -90 to 90"
    )
    p.add_argument("--zoom", type=_finite, default=1.0, help="vr/smip: camera zoom")
    p.add_argument(
        "--over-time", action="store_true",
        help="the maximum over the series' time points (4D: fMRI, perfusion, cardiac)",
    )  # fmt: skip
    window = p.add_mutually_exclusive_group()
    window.add_argument("--window", type=_window, metavar="C,W", help="window centre,width")
    window.add_argument(
        "--preset", metavar="NAME",
        help="a window preset (CT: brain, lung, bone...); with --mode vr a rendering preset"
        " (CT: bone, skin, vessels, lung; MR: default)",
    )  # fmt: skip
    window.add_argument("--file-window", type=int, metavar="N", help="the file's own window N")
    p.add_argument("--invert", action="store_true")


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected WIDTHxHEIGHT, e.g. 512x512") from None
    if not (0 < width <= 16384 and 0 < height <= 16384):
        raise argparse.ArgumentTypeError(f"{text!r}: each side from 1 to 16384")
    return width, height


def _vector(text: str) -> tuple[float, float, float]:
    try:
        x, y, z = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected X,Y,Z, e.g. 0,0.5,1") from None
    if not all(math.isfinite(v) for v in (x, y, z)):
        raise argparse.ArgumentTypeError(f"{text!r}: expected finite numbers")
    return x, y, z


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a finite number")
    return value


def _window(text: str) -> Any:
    from tui.render.lut import Window

    try:
        center, width = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected CENTRE,WIDTH, e.g. 40,400") from None
    if width <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the width must be positive")
    return Window(center, width, name="")


def _request(args: argparse.Namespace) -> Any:
    from tui.render.pipeline import VR_MODES, Request

    volume_rendering = args.mode in VR_MODES
    if args.point is not None and args.normal is None:
        raise UserError("--point goes with --normal (an oblique plane)")
    if args.normal is not None:
        if args.plane or args.index is not None or args.position is not None:
            raise UserError(
                "--normal is a plane of its own: leave out --plane, --index, --position"
            )
        if volume_rendering:
            raise UserError(f"--normal is for slices and projections, not --mode {args.mode}")
    camera = {"--azimuth": args.azimuth, "--elevation": args.elevation, "--zoom": args.zoom != 1}
    if not volume_rendering and any(camera.values()):
        given = next(option for option, value in camera.items() if value)
        raise UserError(f"{given} goes with --mode vr or smip")
    if volume_rendering:  # the camera sees the whole volume: no plane, place or slab
        planar = {
            "--plane": args.plane, "--index": args.index is not None,
            "--position": args.position is not None, "--slab": args.slab is not None,
            "--file-window": args.file_window is not None, "--invert": args.invert,
            "--window": args.window is not None and args.mode == "vr",
        }  # fmt: skip
        planes = [option for option, value in planar.items() if value]
        if planes:
            raise UserError(f"{planes[0]} does not go with --mode {args.mode}")
    if not -90 <= args.elevation <= 90:
        raise UserError("--elevation is from -90 (from the feet) to 90 (from above the head)")
    if args.zoom <= 0:
        raise UserError("--zoom must be positive")
    return Request(
        stack=args.stack,
        mode=args.mode,
        plane=args.plane,
        index=None if args.index is None else args.index - 1,
        position=args.position,
        slab=args.slab,
        window=args.window,
        preset=args.preset,
        file_window=None if args.file_window is None else args.file_window - 1,
        invert=args.invert,
        azimuth=args.azimuth,
        elevation=args.elevation,
        zoom=args.zoom,
        size=args.size if volume_rendering else None,
        normal=args.normal,
        point=args.point,
        over_time=args.over_time,
    )


def _stacks(args: argparse.Namespace, locations: Locations) -> list[Any]:
    """The stacks of ``args.series``: a series of the archive by its UID, or a NIfTI, NRRD
    or picture file by its name (read into a scratch file, removed when the command ends;
    a UID is digits and dots, never a file name's suffix)."""
    from tui.archive.query import series_instances
    from tui.render.foreign import is_foreign
    from tui.render.volume import assemble, slices_of

    if is_foreign(args.series):
        import atexit

        from tui.render.foreign import open_foreign

        opened = open_foreign(Path(args.series).expanduser(), locations.cache_dir / "open")
        atexit.register(opened.close)
        return opened.stacks
    archive = open_archive(locations, create=False)
    return assemble(slices_of(series_instances(archive, args.series)))


def cmd_render(args: argparse.Namespace, locations: Locations) -> int:
    from tui.render import export
    from tui.render.pipeline import VR_MODES, pick_stack, render, time_points
    from tui.render.presets import load_presets
    from tui.render.series_export import picture
    from tui.render.transfer import load_transfers

    if not args.output and not args.term:
        raise UserError("render needs -o OUT (a .png, .jpg or .tif file) or --term")
    args.stack = args.stack or 0  # None: not given (only --nifti tells it from 0)
    request = _request(args)
    stacks = _stacks(args, locations)
    stack = pick_stack(stacks, args.stack)
    over = time_points(stacks, args.stack) if request.over_time else ()
    transfers = load_transfers(locations.config_dir) if request.mode in VR_MODES else None
    presets = load_presets(locations.config_dir)
    rendered = render(stack, request, presets, time_points=over, transfers=transfers)
    if args.raw:
        if rendered.view is None or not args.output:
            raise UserError("--raw needs a grey image and -o OUT.png")
        export.save_raw16(rendered.view.values, Path(args.output))
        return done(args.output)
    still = picture(rendered, args.size, args.annotate, args.no_phi)
    if args.term:
        _print_in_terminal(still, args, locations)
    if args.output:
        export.save_still(still, Path(args.output))
        return done(args.output)
    return 0


def _print_in_terminal(picture: Any, args: argparse.Namespace, locations: Locations) -> None:

    import numpy as np

    from tui.term.detect import cell_size
    from tui.term.modes import DEFAULT_CELL
    from tui.term.show import draw

    chosen = settings(args, locations)
    graphics, bandwidth = chosen.protocol(tty_fd=tty()), chosen.link()
    size = shutil.get_terminal_size()
    cell = cell_size(tty()) or DEFAULT_CELL
    image = np.asarray(picture)
    text = draw(
        image, graphics, bandwidth, size.columns - 1, size.lines - 2, cell=cell,
        tmux="TMUX" in os.environ,
    )  # fmt: skip
    sys.stdout.write(text)
    sys.stdout.flush()


# What the image exports take and ``--dicom`` does not: (option, its default).
_IMAGE_ONLY = [
    ("--stack", "stack", None), ("--mode", "mode", "slice"), ("--plane", "plane", None),
    ("--index", "index", None), ("--position", "position", None), ("--slab", "slab", None),
    ("--window", "window", None), ("--preset", "preset", None),
    ("--file-window", "file_window", None), ("--invert", "invert", False),
    ("--rotate", "rotate", False), ("--time", "time", False), ("--fps", "fps", 10.0),
    ("--columns", "columns", 6), ("--normal", "normal", None), ("--point", "point", None),
    ("--azimuth", "azimuth", 0.0), ("--elevation", "elevation", 0.0), ("--zoom", "zoom", 1.0),
    ("--over-time", "over_time", False),
    ("--size", "size", None), ("--no-phi", "no_phi", False),
]  # fmt: skip


def cmd_export(args: argparse.Namespace, locations: Locations) -> int:
    if args.no_sidecar and not args.nifti:
        raise UserError("--no-sidecar goes with --nifti")
    if args.dicom:
        given = [option for option, dest, default in _IMAGE_ONLY if getattr(args, dest) != default]
        if given:
            raise UserError(f"{given[0]} goes with --cine or --sheet, not --dicom")
        from tui.render.foreign import is_foreign

        files = [uid for uid in args.uids if is_foreign(uid)]
        if files:
            raise UserError(
                f"{printable(files[0])} is not DICOM: export it --nifti, --cine or --sheet"
            )
        return share.cmd_export_dicom(args, locations)
    dicom_only = share.given_filters(args) + [
        option
        for option, given in [
            ("--dicomdir", args.dicomdir), ("--json", args.json and not args.nifti),
            ("--anonymize", args.anonymize is not None),
        ]
        if given
    ]  # fmt: skip
    if dicom_only:
        raise UserError(f"{dicom_only[0]} goes with --dicom")
    if len(args.uids) != 1:
        raise UserError("--cine, --sheet and --nifti export one series: give one SeriesInstanceUID")
    args.series = args.uids[0]
    if args.nifti:
        return _export_nifti(args, locations)
    return _export_images(args, locations)


def _export_nifti(args: argparse.Namespace, locations: Locations) -> int:
    from tui.render.nifti import write_nifti
    from tui.render.pipeline import pick_stack, time_points
    from tui.render.volume import VolumeCache

    given = [
        option for option, dest, default in _IMAGE_ONLY
        if dest != "stack" and getattr(args, dest) != default
    ]  # fmt: skip
    if given:
        raise UserError(f"{given[0]} goes with --cine or --sheet, not --nifti")
    # a 4-D series whole (the time points of its first stack), or the one stack asked for
    every = _stacks(args, locations)
    stacks = time_points(every, 0) if args.stack is None else [pick_stack(every, args.stack)]
    cache = VolumeCache(settings(args, locations).cache_mb)
    files = write_nifti(stacks, Path(args.output), cache, sidecar=not args.no_sidecar)
    if args.json:
        import nibabel

        shape = [int(n) for n in nibabel.nifti1.load(files[0]).shape]  # the header only
        print_json({"Files": [str(f) for f in files], "Shape": shape})
        return 0
    return done(args.output)


def _export_images(args: argparse.Namespace, locations: Locations) -> int:
    from tui.render import export
    from tui.render.pipeline import VR_MODES, pick_stack, time_points
    from tui.render.presets import load_presets
    from tui.render.series_export import picture, time_pictures, write_cine, write_sheet
    from tui.render.transfer import load_transfers
    from tui.render.volume import VolumeCache

    args.stack = args.stack or 0  # None: not given (only --nifti tells it from 0)
    request = _request(args)
    if (args.rotate or args.time) and not args.cine:
        raise UserError(f"{'--rotate' if args.rotate else '--time'} goes with --cine")
    if args.rotate and args.time:
        raise UserError("--rotate and --time are two different loops: choose one")
    stacks = _stacks(args, locations)
    stack = pick_stack(stacks, args.stack)
    presets = load_presets(locations.config_dir)
    output = Path(args.output)
    cache = VolumeCache(settings(args, locations).cache_mb)
    transfers = load_transfers(locations.config_dir) if request.mode in VR_MODES else None
    if args.rotate and request.mode in VR_MODES:
        from tui.render.rotate import rotating_render

        turns = rotating_render(stack, request, presets, cache, transfers)
        frames = [picture(r, args.size, annotate=True, no_phi=args.no_phi) for r in turns]
        export.save_animation(frames, output, args.fps)
        return done(args.output)
    if args.rotate:
        from tui.render.rotate import rotating_mip

        frames = rotating_mip(stack, request, presets)
        export.save_animation([export.fit(f, args.size) for f in frames], output, args.fps)
        return done(args.output)
    if args.time:
        timeline = time_points(stacks, args.stack)
        if len(timeline) < 2:
            raise UserError("the series has one time point: no loop through time")
        _, frames = time_pictures(
            timeline, request, presets, cache, args.size, True, args.no_phi, transfers
        )
        export.save_animation(frames, output, args.fps)
        return done(args.output)
    if request.mode in VR_MODES:
        raise UserError(f"--mode {request.mode} goes with --cine --rotate (or render, one view)")
    over = time_points(stacks, args.stack) if request.over_time else ()
    if args.cine:
        write_cine(stack, request, presets, cache, output, args.fps, args.size, time_points=over)
    else:
        write_sheet(stack, request, presets, cache, output, args.columns, args.no_phi, over)
    return done(args.output)
