"""Opening the Textual app from the command line (``pacs-tui`` without a command, and
``pacs-tui demo``); Textual is imported only here, when the app starts."""

from __future__ import annotations

import argparse
import os
from typing import Any

from tui.cli.common import settings, tty
from tui.config import Locations


def run_app(args: argparse.Namespace, locations: Locations, archive: Any) -> int:
    """Open the Textual app on ``archive``."""
    from tui.app.app import PacsApp
    from tui.term.detect import cell_size
    from tui.term.modes import PROTOCOLS

    chosen = settings(args, locations)
    graphics = chosen.protocol(tty_fd=tty())
    if graphics in ("ascii", "none"):
        graphics = "halfblock"  # the app draws in cells; text art is for printing
    app = PacsApp(
        archive,
        chosen.link(),  # the dither too (it did nothing in the app before)
        config_dir=locations.config_dir,
        theme=chosen.theme,
        privacy=chosen.privacy,
        keymap=chosen.keymap,
        cache_mb=chosen.cache_mb,
        graphics=graphics,
        cell=cell_size(tty()) if graphics in PROTOCOLS else None,
        tmux="TMUX" in os.environ,
    )
    app.run()
    return 0
