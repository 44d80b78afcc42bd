"""``demo``: build the demo archive (once) and open it, with a demo PACS to query."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tui.cli.app import run_app
from tui.cli.archive import print_rows, studies
from tui.cli.common import (
    Commands,
    ProgressBar,
    print_json,
    stopped_by_signals,
    wait_until_stopped,
)
from tui.cli.net import move_destinations
from tui.config import Locations
from tui.errors import UserError


def add_commands(commands: Commands) -> None:
    """Register ``demo`` on ``commands``."""
    p = commands.add_parser(
        "demo", help="build the demo archive (once) and open it, with a demo PACS to query"
    )
    p.add_argument("--rebuild", action="store_true", help="build it again from scratch")
    p.add_argument(
        "--serve", action="store_true", help="only run the demo PACS (node 'demo') until Ctrl-C"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace, locations: Locations) -> int:
    from tui.archive.demo import build_demo, forget_retrieved

    root = Path(args.archive) if args.archive or os.environ.get("PACS_TUI_ARCHIVE") else None
    root = locations.archive if root else locations.demo_archive
    bar = ProgressBar("building demo") if sys.stderr.isatty() else None
    try:
        archive = build_demo(root, rebuild=args.rebuild, progress=bar)
    finally:
        if bar:
            bar.close()
    rows = studies(archive)
    interactive = not args.json and sys.stdin.isatty() and sys.stdout.isatty()
    if interactive or args.serve:
        forget_retrieved(archive)  # a demo before retrieved it: it is offered again
        with _demo_pacs(root, locations) as node:
            if args.serve:
                print(f"demo PACS: node {node.name} ({node.address}); Ctrl-C stops", flush=True)
                wait_until_stopped()
                return 0
            return run_app(args, locations, archive)
    if args.json:
        print_json({"archive": str(root), "studies": rows})
    else:
        print(f"demo archive: {root}")
        print_rows("study", rows)
    # Compile the volume renderer now (about 25 s the first time on a machine, then
    # cached; 1 to 2 s after that), so the viewer's first 3D view does not wait for it.
    from tui.render.vr import warm_up

    sys.stdout.flush()
    warm_up()
    return 0


@contextmanager
def _demo_pacs(root: Path, locations: Locations) -> Iterator[Any]:
    """The demo PACS on loopback while the demo runs, known as node ``demo``: a new user
    can query and retrieve with nothing else installed. It serves every demo study and
    one more that only it has."""
    from tui.archive.demo import build_demo_pacs
    from tui.net.nodes import (
        DEFAULT_CALLING_AET,
        Node,
        get_node,
        receiver_settings,
        remove_node,
        save_node,
    )
    from tui.net.server import MiniPacs

    # C-MOVE goes to the configured nodes, and to us: PACSTUI at our receive port
    ours = (DEFAULT_CALLING_AET, receiver_settings(locations.config_file)["port"])
    destinations = {**move_destinations(locations), ours[0]: ("127.0.0.1", ours[1])}
    server = MiniPacs(
        build_demo_pacs(root), aet="DEMOPACS", host="127.0.0.1", port=0, destinations=destinations
    )
    server.start()
    node = Node("demo", "DEMOPACS", "127.0.0.1", server.port)

    def forget_node() -> None:
        with contextlib.suppress(UserError):  # gone with the demo: no dead port left behind
            if get_node(locations.config_file, "demo").port == server.port:
                remove_node(locations.config_file, "demo")

    try:
        save_node(locations.config_file, node)  # the port changes from run to run
        # SIGTERM or a closed terminal (SIGHUP) removes the node too
        with stopped_by_signals(on_hangup=forget_node):
            yield node
    finally:
        server.stop()
        forget_node()
