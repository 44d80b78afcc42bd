"""Opening the Textual app from the command line (``pacs-tui`` without a command, and
``pacs-tui demo``); Textual is imported only here, when the app starts."""

from __future__ import annotations

import argparse
import os
from typing import Any

from tui.cli.common import cache_mb, private, tty
from tui.config import Locations, load_config
from tui.errors import UserError


def run_app(args: argparse.Namespace, locations: Locations, archive: Any) -> int:
    """Open the Textual app on ``archive``."""
    from tui.app.app import PacsApp
    from tui.term.detect import cell_size, choose_bandwidth, choose_graphics
    from tui.term.modes import PROTOCOLS

    config = load_config(locations.config_file)
    keymap = config.get("keys", {})
    if not isinstance(keymap, dict) or not all(isinstance(v, str) for v in keymap.values()):
        raise UserError(f"{locations.config_file}: [keys] maps binding ids to keys, as strings")
    bandwidth = choose_bandwidth(args.bandwidth or str(config.get("bandwidth", "auto")))
    graphics = choose_graphics(args.graphics or str(config.get("graphics", "auto")), tty_fd=tty())
    if graphics in ("ascii", "none"):
        graphics = "halfblock"  # the app draws in cells; text art is for printing
    app = PacsApp(
        archive,
        bandwidth,
        config_dir=locations.config_dir,
        theme=args.theme or config.get("theme"),
        privacy=private(args, locations),
        keymap=keymap,
        cache_mb=cache_mb(locations),
        graphics=graphics,
        cell=cell_size(tty()) if graphics in PROTOCOLS else None,
        tmux="TMUX" in os.environ,
    )
    app.run()
    return 0
