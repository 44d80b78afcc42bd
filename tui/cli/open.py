"""``open``: view a NIfTI, NRRD or picture file in the app, or describe it (``--json``);
nothing is written to the archive."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from tui.cli.app import run_app
from tui.cli.common import Commands, open_archive, print_json
from tui.config import Locations
from tui.errors import UserError


def add_commands(commands: Commands) -> None:
    """Register ``open`` on ``commands``."""
    p = commands.add_parser(
        "open",
        help="view a NIfTI, NRRD or picture file (TIFF, PNG, JPEG, JPEG 2000) without importing it",
    )
    p.add_argument("file", metavar="FILE", help=".nii .nii.gz .nrrd .nhdr .tif .png .jpg .jp2 ...")
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
    from tui.render.foreign import open_foreign

    path = Path(args.file).expanduser()
    modality = args.modality.strip().upper() if args.modality else None
    if modality is not None and not re.fullmatch(r"[A-Z0-9_]{1,16}", modality):
        raise UserError(f"--modality {args.modality!r}: a DICOM modality such as CT, MR, PT, OT")
    if not args.json and not (sys.stdin.isatty() and sys.stdout.isatty()):
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
