"""``open``: view a NIfTI, NRRD or picture file in the app, or describe it (``--json``);
or browse DICOM files or folders without importing them (an index in memory). Nothing is
written to the archive."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from tui.cli.app import run_app
from tui.cli.common import Commands, ProgressBar, open_archive, print_json
from tui.config import Locations
from tui.errors import UserError
from tui.tables import printable


def add_commands(commands: Commands) -> None:
    """Register ``open`` on ``commands``."""
    p = commands.add_parser(
        "open",
        help="view a NIfTI, NRRD or picture file (TIFF, PNG, JPEG, JPEG 2000), or DICOM files"
        " or folders, without importing them",
    )
    p.add_argument(
        "file", metavar="FILE",
        help=".nii .nii.gz .nrrd .nhdr .tif .png .jpg .jp2 ..., or a DICOM file or folder",
    )  # fmt: skip
    p.add_argument(
        "--modality", metavar="CT",
        help="its modality (windows, presets) when no BIDS sidecar FILE.json says (default: OT)",
    )  # fmt: skip
    p.add_argument(
        "--json", action="store_true",
        help="print its geometry and what was read (the app is not opened)",
    )  # fmt: skip
    p.set_defaults(handler=cmd_open)


def cmd_open(args: argparse.Namespace, locations: Locations) -> int:
    from tui.archive.index import INDEX_NAME, Archive
    from tui.render.foreign import is_foreign, open_foreign

    path = Path(args.file).expanduser()
    modality = args.modality.strip().upper() if args.modality else None
    if modality is not None and not re.fullmatch(r"[A-Z0-9_]{1,16}", modality):
        raise UserError(f"--modality {args.modality!r}: a DICOM modality such as CT, MR, PT, OT")
    if not is_foreign(path):
        return _look_at_dicom(args, locations, path)
    if not args.json and not _in_terminal():
        raise UserError("open shows FILE in the app: run it in a terminal, or add --json")
    if args.json:
        opened = open_foreign(path, locations.cache_dir / "open", modality)
        try:
            print_json(opened.info())
        finally:
            opened.close()
        return 0
    # The archive is only browsed (Esc from the viewer); none yet: an empty one in memory.
    exists = (locations.archive / INDEX_NAME).exists()
    archive = open_archive(locations, create=False) if exists else Archive(None)
    return run_app(args, locations, archive, file=path, modality=modality)


def _look_at_dicom(args: argparse.Namespace, locations: Locations, path: Path) -> int:
    """DICOM files or a folder (a CD, a USB stick) indexed in memory and browsed: the
    import dialog's "just look", from the command line."""
    from tui.archive.importer import import_paths
    from tui.archive.index import Archive

    if args.json or args.modality:
        option = "--json" if args.json else "--modality"
        raise UserError(f"{option} goes with a NIfTI, NRRD or picture file, not DICOM")
    if not path.exists():
        raise UserError(f"{printable(str(path))}: no such file or folder")
    if not _in_terminal():
        raise UserError("open shows the files in the app: run it in a terminal")
    archive = Archive(None)
    bar = ProgressBar("reading") if sys.stderr.isatty() else None
    try:
        summary = import_paths(archive, [path], progress=bar)
    finally:
        if bar:
            bar.close()
    if summary.instances_found == 0:
        archive.close()
        name = printable(str(path))
        raise UserError(f"{name}: no DICOM file found (nor a NIfTI, NRRD or picture file)")
    return run_app(args, locations, archive)


def _in_terminal() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()
