"""The remote nodes' commands: ``node`` (add, edit, ls, rm, test) and ``echo``.

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
    p = commands.add_parser("node", help="remote DICOM nodes: add, ls, rm, edit, test")
    actions = p.add_subparsers(dest="node_action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add a node (or replace one of that name)")
    add.add_argument("name", metavar="NAME")
    add.add_argument("aet", metavar="AET", nargs="?", help="its AE title (not with --dicomweb)")
    add.add_argument("host", metavar="HOST", nargs="?")
    add.add_argument("port", metavar="PORT", type=int, nargs="?")
    add.add_argument("--replace", action="store_true", help="replace a node of that name")
    _node_options(add)
    add.add_argument(
        "--printer", action="store_true", default=None,
        help="a DICOM printer (Basic Grayscale Print Management): pacs-tui print prints on it",
    )  # fmt: skip
    _print_options(add)
    add.set_defaults(handler=cmd_node_add)
    edit = actions.add_parser("edit", help="change some of a node's settings")
    edit.add_argument("name", metavar="NAME")
    edit.add_argument("--aet", help="its AE title")
    edit.add_argument("--host")
    edit.add_argument("--port", type=int)
    _node_options(edit)
    edit.add_argument(
        "--printer", action=argparse.BooleanOptionalAction, default=None,
        help="make it a DICOM printer, or no printer (which drops its print settings)",
    )  # fmt: skip
    _print_options(edit)
    edit.set_defaults(handler=cmd_node_edit)
    ls = actions.add_parser("ls", help="list the nodes")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=cmd_node_ls)
    rm = actions.add_parser("rm", help="remove a node")
    rm.add_argument("name", metavar="NAME")
    rm.set_defaults(handler=cmd_node_rm)
    test = actions.add_parser(
        "test", help="diagnose a node step by step: connect, associate, echo, find, get, move"
    )
    test.add_argument("name", metavar="NAME")
    test.add_argument("--json", action="store_true")
    test.add_argument(
        "--port", type=int, metavar="P",
        help="our storage port for the C-MOVE round trip (default: config, else 11112; 0: any)",
    )  # fmt: skip
    test.set_defaults(handler=cmd_node_test)

    p = commands.add_parser(
        "echo",
        help="is a node there, and how fast: a C-ECHO (DIMSE), a cheap QIDO-RS (DICOMweb)",
    )
    p.add_argument("node", metavar="NODE")
    p.add_argument(
        "--json", action="store_true", help="the times as JSON (node, total_ms, echo_ms)"
    )
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
    web = p.add_argument_group("DICOMweb nodes")
    web.add_argument(
        "--dicomweb", metavar="URL",
        help="its base URL (then no AET HOST PORT; node edit drops a DIMSE node's AET, host, "
        "port, calling AE title, move destination and max PDU)",
    )  # fmt: skip
    for service in ("qido", "wado", "stow"):
        web.add_argument(
            f"--{service}-url", metavar="URL", help=f"a separate {service.upper()}-RS root"
        )
    web.add_argument(
        "--auth", choices=("none", "basic", "bearer"),
        help="default: basic with --username, bearer with only a secret, else none "
        "(none clears the user and the secret)",
    )  # fmt: skip
    web.add_argument("--username", metavar="USER", help="the user name (--auth basic)")
    web.add_argument("--secret-file", metavar="FILE", help="read the password or token from FILE")
    web.add_argument("--secret-env", metavar="VAR", help="... or from environment variable VAR")
    web.add_argument("--fuzzy-matching", choices=("on", "off"), help="QIDO-RS fuzzy name matching")
    for refused in ("--password", "--token", "--secret"):  # said why, not "unrecognized"
        web.add_argument(refused, dest=f"refused_{refused[2:]}", help=argparse.SUPPRESS)


def _print_options(p: argparse.ArgumentParser) -> None:
    """A printer's defaults for its jobs (``print`` options override them)."""
    from tui.cli.printing import add_film_options

    printer = p.add_argument_group("printers (with --printer; default: the printer's own)")
    add_film_options(printer, for_node=True)


_PRINT_KEYS = ("printer", "film_size", "film_orientation", "medium", "film_destination",
               "magnification", "max_density", "min_density", "copies", "print_bits",
               "annotation_format")  # fmt: skip


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
    changes |= _web_changes(args)
    changes |= {key: getattr(args, key) for key in _PRINT_KEYS}
    for key in ("tls_ca", "tls_cert", "tls_key", "secret_file"):
        if changes[key]:
            changes[key] = str(Path(changes[key]).expanduser().resolve())
    return {k: v for k, v in changes.items() if v is not None}


def _web_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The DICOMweb options; a secret given on the command line is refused (shell history
    and ``ps`` would show it to others)."""
    from tui.errors import UserError

    for refused in ("password", "token", "secret"):
        if getattr(args, f"refused_{refused}", None) is not None:
            raise UserError(
                f"--{refused}: a secret on the command line is seen by others (ps, shell "
                "history): put it in a file (--secret-file F) or an environment variable "
                "(--secret-env VAR)"
            )
    changes = {key: getattr(args, key) for key in ("dicomweb", "qido_url", "wado_url",
               "stow_url", "auth", "username", "secret_file", "secret_env")}  # fmt: skip
    if args.fuzzy_matching is not None:
        changes["fuzzymatching"] = args.fuzzy_matching == "on"
    return changes


def cmd_node_add(args: argparse.Namespace, locations: Locations) -> int:
    from tui.errors import UserError
    from tui.net.nodes import Node, add_node, with_auth_inferred

    given = [v for v in (args.aet, args.host, args.port) if v is not None]
    if args.dicomweb and given:
        raise UserError("a DICOMweb node has a URL (--dicomweb), no AET HOST PORT: leave them out")
    if not args.dicomweb and len(given) < 3:
        raise UserError("node add NAME AET HOST PORT, or node add NAME --dicomweb URL")
    changes = _node_changes(args)
    node = Node(args.name, **(changes if "auth" in changes else with_auth_inferred(changes)))
    add_node(locations.config_file, node, replace=args.replace)
    print(f"node {node.name}: {_described(node)}")
    if node.auth != "none" and "auth" not in changes:
        why = "a username" if node.auth == "basic" else "a secret without a username"
        print(f"auth {node.auth}: inferred from {why} (--auth sets it)")
    return 0


def cmd_node_edit(args: argparse.Namespace, locations: Locations) -> int:
    from tui.net.nodes import edit_node

    dropped: list[str] = []
    changes = _node_changes(args)
    node = edit_node(locations.config_file, args.name, changes, dropped)
    print(f"node {node.name}: {_described(node)}")
    from tui.net.nodes import PRINT_ONLY

    unprinted = [key for key in dropped if key in PRINT_ONLY]
    if unprinted:
        print(f"no longer a printer: dropped its print settings ({', '.join(unprinted)})")
    dropped = [key for key in dropped if key not in PRINT_ONLY]
    if dropped:
        print(f"now a DICOMweb node: dropped its DIMSE settings ({', '.join(dropped)})")
    return 0


def _described(node: Any) -> str:
    """``AET@HOST:PORT over TLS, a printer``: what ``node add`` and ``edit`` say was saved."""
    return (
        node.address + (" over TLS" if node.tls else "") + (", a printer" if node.printer else "")
    )


def cmd_node_rm(args: argparse.Namespace, locations: Locations) -> int:
    from tui.net.nodes import remove_node

    remove_node(locations.config_file, args.name)
    print(f"node {args.name} removed")
    return 0


def cmd_node_ls(args: argparse.Namespace, locations: Locations) -> int:
    from tui.net.nodes import read_nodes

    nodes, broken = read_nodes(locations.config_file)
    for name, problem in broken.items():
        print(f"pacs-tui: node {name} is broken: {problem}", file=sys.stderr)
    if args.json:
        print_json([_node_json(n) for n in nodes.values()])
        return 1 if broken else 0
    if not nodes and not broken:
        print("no nodes yet: pacs-tui node add NAME AET HOST PORT (or NAME --dicomweb URL)")
        return 0
    from tui.tables import format_table

    rows = [_node_row(n) for n in nodes.values()]
    columns = [("name", "Node", 0), ("kind", "Kind", 0), ("address", "Address", 0),
               ("aet", "AE title", 0), ("calling", "Our AE", 0), ("method", "Retrieve", 0),
               ("auth", "Auth", 0), ("tls", "TLS", 0)]  # fmt: skip
    if not any(n.dicomweb for n in nodes.values()):
        columns = [c for c in columns if c[0] != "auth"]
    print(format_table(rows, columns))
    for n in nodes.values():  # separate roots, a printer's defaults: under the table
        for service in ("qido", "wado", "stow"):
            if getattr(n, f"{service}_url"):
                print(f"  {n.name}: {service.upper()}-RS at {n.web_roots[service]}")
        if n.printer and _print_defaults(n):
            print(f"  {n.name} prints with {_print_defaults(n)}")
    return 1 if broken else 0


def _node_json(node: Any) -> dict[str, Any]:
    """A node as ``node ls --json`` gives it: its settings, its kind and its roots."""
    from dataclasses import asdict

    out: dict[str, Any] = asdict(node) | {"kind": _kind(node), "address": node.address}
    if node.dicomweb:
        out["roots"] = node.web_roots
    return out


def _kind(node: Any) -> str:
    return "DICOMweb" if node.dicomweb else "printer" if node.printer else "DIMSE"


def _print_defaults(node: Any) -> str:
    """A printer's defaults in one line (``film_size 14INX17IN, copies 2``), or ""."""
    from tui.net.nodes import PRINT_ONLY, Node

    blank = Node("blank")
    return ", ".join(f"{key} {getattr(node, key)}" for key in PRINT_ONLY
                     if getattr(node, key) != getattr(blank, key))  # fmt: skip


def _node_row(n: Any) -> dict[str, str]:
    """A node's row in ``node ls``: a DICOMweb node has a URL and its auth, no AE titles."""
    if n.dicomweb:
        auth = {"none": "", "basic": f"basic ({n.username})", "bearer": "bearer token"}
        return {"name": n.name, "kind": "DICOMweb", "address": n.address, "aet": "",
                "calling": "", "method": "WADO-RS", "auth": auth.get(n.auth, n.auth),
                "tls": "yes" if n.tls else ""}  # fmt: skip
    method = n.method if n.method == "get" else f"move to {n.destination}"
    return {"name": n.name, "kind": _kind(n), "address": f"{n.host}:{n.port}", "aet": n.aet,
            "calling": n.calling_aet, "auth": "", "tls": "yes" if n.tls else "",
            "method": "(prints)" if n.printer else method}  # fmt: skip


def cmd_echo(args: argparse.Namespace, locations: Locations) -> int:
    from tui.net.nodes import get_node
    from tui.net.scu import echo

    node = get_node(locations.config_file, args.node)
    total, round_trip = echo(node)
    if args.json:
        print_json({"node": node.name, "total_ms": total * 1e3, "echo_ms": round_trip * 1e3})
    else:
        what, setup = ("a QIDO-RS", "connection") if node.dicomweb else ("C-ECHO", "association")
        print(
            f"{node.name} ({node.address}) answered {what} in {round_trip * 1e3:.1f} ms "
            f"({total * 1e3:.0f} ms with the {setup})"
        )
    return 0


_MARKS = {"ok": "ok", "warning": "WARNING", "failed": "FAILED", "skipped": "skipped"}


def cmd_node_test(args: argparse.Namespace, locations: Locations) -> int:
    from tui.errors import UserError
    from tui.net.diagnose import address_of, diagnose, exit_status
    from tui.net.nodes import get_node, receiver_settings

    node = get_node(locations.config_file, args.name)
    if args.port is not None and not 0 <= args.port < 65536:
        raise UserError(f"--port {args.port}: not a port number (0 for any, or 1-65535)")
    port = args.port if args.port is not None else receiver_settings(locations.config_file)["port"]
    if not args.json:
        print(f"testing {node.name} ({address_of(node)})", flush=True)
    steps = []
    for step in diagnose(node, receive_port=port):
        steps.append(step)
        if args.json:
            continue
        ms = "" if step.verdict == "skipped" else f" ({step.seconds * 1e3:.0f} ms)"
        print(f"{_MARKS[step.verdict]:<8} {step.title}{ms}: {step.summary}")
        for line in step.details:
            print(f"         {line}")
        if step.fix:
            print(f"         fix: {step.fix}")
        sys.stdout.flush()  # each step shows as it completes
    if args.json:
        print_json({"node": node.name, "address": address_of(node),
                    "steps": [step.as_json() for step in steps]})  # fmt: skip
    else:
        counts = [f"{sum(s.verdict == v for s in steps)} {v}" for v in _MARKS
                  if any(s.verdict == v for s in steps)]  # fmt: skip
        print(", ".join(counts))
    return exit_status(steps)
