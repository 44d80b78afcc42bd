"""The remote nodes' commands: ``node`` (add, edit, ls, rm) and ``echo``.

The handlers are thin: the work is done in :mod:`tui.net`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tui.cli.common import Commands, print_json
from tui.config import Locations


def add_commands(commands: Commands) -> None:
    """Register ``node`` and ``echo`` on ``commands``."""
    p = commands.add_parser("node", help="remote DICOM nodes: add, ls, rm, edit")
    actions = p.add_subparsers(dest="node_action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add a node (or replace one of that name)")
    add.add_argument("name", metavar="NAME")
    add.add_argument("aet", metavar="AET", help="its AE title")
    add.add_argument("host", metavar="HOST")
    add.add_argument("port", metavar="PORT", type=int)
    add.add_argument("--replace", action="store_true", help="replace a node of that name")
    _node_options(add)
    add.set_defaults(handler=cmd_node_add)
    edit = actions.add_parser("edit", help="change some of a node's settings")
    edit.add_argument("name", metavar="NAME")
    edit.add_argument("--aet", help="its AE title")
    edit.add_argument("--host")
    edit.add_argument("--port", type=int)
    _node_options(edit)
    edit.set_defaults(handler=cmd_node_edit)
    ls = actions.add_parser("ls", help="list the nodes")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=cmd_node_ls)
    rm = actions.add_parser("rm", help="remove a node")
    rm.add_argument("name", metavar="NAME")
    rm.set_defaults(handler=cmd_node_rm)

    p = commands.add_parser("echo", help="C-ECHO a node: is it there, and how fast")
    p.add_argument("node", metavar="NODE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_echo)


def _node_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calling-aet", help="our AE title, as the node knows it (default PACSTUI)")
    p.add_argument("--method", choices=("get", "move"), help="how to retrieve (default get)")
    p.add_argument("--move-destination", metavar="AET", help="C-MOVE destination (default: ours)")
    p.add_argument("--tls-ca", metavar="PEM", help="CA that signed its certificate (TLS on)")
    p.add_argument("--tls-cert", metavar="PEM", help="our certificate, for mutual TLS")
    p.add_argument("--tls-key", metavar="PEM", help="our private key, for mutual TLS")
    p.add_argument(
        "--timeout", type=float, metavar="S",
        help="seconds to wait for the PACS (to associate, to answer, on the wire)",
    )  # fmt: skip
    p.add_argument(
        "--max-pdu", type=int, metavar="BYTES", help="largest PDU we take (0: the most, 16 MiB)"
    )


def _node_changes(args: argparse.Namespace) -> dict[str, Any]:
    changes = {
        "calling_aet": args.calling_aet, "method": args.method,
        "move_destination": args.move_destination, "tls_ca": args.tls_ca,
        "tls_cert": args.tls_cert, "tls_key": args.tls_key, "max_pdu": args.max_pdu,
        "acse_timeout": args.timeout, "dimse_timeout": args.timeout,
        "network_timeout": args.timeout,
    }  # fmt: skip
    for key in ("aet", "host", "port"):
        changes[key] = getattr(args, key, None)
    for key in ("tls_ca", "tls_cert", "tls_key"):
        if changes[key]:
            changes[key] = str(Path(changes[key]).expanduser().resolve())
    return {k: v for k, v in changes.items() if v is not None}


def cmd_node_add(args: argparse.Namespace, locations: Locations) -> int:
    from tui.net.nodes import Node, add_node

    node = Node(args.name, **_node_changes(args))
    add_node(locations.config_file, node, replace=args.replace)
    print(f"node {node.name}: {node.address}" + (" over TLS" if node.tls else ""))
    return 0


def cmd_node_edit(args: argparse.Namespace, locations: Locations) -> int:
    from tui.net.nodes import edit_node

    node = edit_node(locations.config_file, args.name, _node_changes(args))
    print(f"node {node.name}: {node.address}" + (" over TLS" if node.tls else ""))
    return 0


def cmd_node_rm(args: argparse.Namespace, locations: Locations) -> int:
    from tui.net.nodes import remove_node

    remove_node(locations.config_file, args.name)
    print(f"node {args.name} removed")
    return 0


def cmd_node_ls(args: argparse.Namespace, locations: Locations) -> int:
    from dataclasses import asdict

    from tui.net.nodes import read_nodes

    nodes, broken = read_nodes(locations.config_file)
    for name, problem in broken.items():
        print(f"pacs-tui: node {name} is broken: {problem}", file=sys.stderr)
    if args.json:
        print_json([asdict(n) for n in nodes.values()])
        return 1 if broken else 0
    if not nodes and not broken:
        print("no nodes yet: pacs-tui node add NAME AET HOST PORT")
        return 0
    from tui.tables import format_table

    rows = [
        {"name": n.name, "aet": n.aet, "address": f"{n.host}:{n.port}", "calling": n.calling_aet,
         "method": n.method if n.method == "get" else f"move to {n.destination}",
         "tls": "yes" if n.tls else ""}
        for n in nodes.values()
    ]  # fmt: skip
    columns = [("name", "Node", 0), ("aet", "AE title", 0), ("address", "Address", 0),
               ("calling", "Our AE", 0), ("method", "Retrieve", 0), ("tls", "TLS", 0)]  # fmt: skip
    print(format_table(rows, columns))
    return 1 if broken else 0


def cmd_echo(args: argparse.Namespace, locations: Locations) -> int:
    from tui.net.nodes import get_node
    from tui.net.scu import echo

    node = get_node(locations.config_file, args.node)
    total, round_trip = echo(node)
    if args.json:
        print_json({"node": node.name, "total_ms": total * 1e3, "echo_ms": round_trip * 1e3})
    else:
        print(
            f"{node.name} ({node.address}) answered C-ECHO in {round_trip * 1e3:.1f} ms "
            f"({total * 1e3:.0f} ms with the association)"
        )
    return 0
