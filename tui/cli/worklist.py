"""The ``worklist`` command: a node's modality worklist (C-FIND, PS3.4 K).

The work is :func:`tui.net.worklist.worklist`; the table is find's (:class:`StreamTable`).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time

from tui.cli.common import Commands, print_json, settings
from tui.cli.net import StreamTable, parse_keys
from tui.config import Locations
from tui.errors import UserError

# The table's columns, in this order: when, where, who, what.
COLUMNS = [
    ("ScheduledProcedureStepStartDate", 8), ("ScheduledProcedureStepStartTime", 6),
    ("Modality", 4), ("ScheduledStationAETitle", 10), ("PatientName", 22), ("PatientID", 12),
    ("AccessionNumber", 12), ("ScheduledProcedureStepID", 10),
    ("ScheduledProcedureStepDescription", 26),
]  # fmt: skip
HEADINGS = {
    "ScheduledProcedureStepStartDate": "Date", "ScheduledProcedureStepStartTime": "Time",
    "Modality": "Mod", "ScheduledStationAETitle": "Station", "PatientName": "Name",
    "PatientID": "ID", "AccessionNumber": "Accession", "ScheduledProcedureStepID": "Step",
    "ScheduledProcedureStepDescription": "Description",
}  # fmt: skip


def add_commands(commands: Commands) -> None:
    """Register ``worklist`` on ``commands``."""
    p = commands.add_parser("worklist", help="a node's modality worklist (scheduled steps)")
    p.add_argument("node", metavar="NODE")
    p.add_argument(
        "--date", default="",
        help="scheduled date: today (default), tomorrow, 20240101, a range A-B, 7d, or any",
    )  # fmt: skip
    p.add_argument("--modality", default="", metavar="MOD", help="CT, MR, ...")
    p.add_argument("--station", default="", metavar="AET", help="the scheduled station AE title")
    p.add_argument("--patient", default="", metavar="NAME", help="patient name, wildcards * ?")
    p.add_argument("--accession", default="", metavar="NUMBER")
    p.add_argument("--step", default="", metavar="ID", help="the scheduled procedure step ID")
    p.add_argument(
        "-k", "--key", action="append", default=[], metavar="KEYWORD=VALUE",
        help="match (wildcards * ?, date ranges A-B) or, without a value, return a key",
    )  # fmt: skip
    p.add_argument("--limit", type=int, metavar="N", help="stop after N steps (C-CANCEL)")
    p.add_argument("--json", action="store_true", help="a JSON array, keyed by DICOM keyword")
    p.set_defaults(handler=cmd_worklist)


def cmd_worklist(args: argparse.Namespace, locations: Locations) -> int:
    from contextlib import closing

    from tui.net.nodes import get_node, not_a_printer
    from tui.net.worklist import worklist, worklist_keys
    from tui.privacy import masked

    node = not_a_printer(get_node(locations.config_file, args.node), "worklist")
    if args.limit is not None and args.limit <= 0:
        raise UserError("--limit must be 1 or more")
    extra = parse_keys(args.key)
    keys = worklist_keys(
        date=args.date, modality=args.modality, station=args.station, patient=args.patient,
        accession=args.accession, step_id=args.step, extra=extra,
    )  # fmt: skip
    hide = settings(args, locations).privacy
    started = time.monotonic()
    with closing(worklist(node, keys, limit=args.limit)) as results:  # Ctrl-C: C-CANCEL
        steps = list(results)  # a day's worklist: small, and shown in time order
    steps.sort(key=lambda s: (s.get("ScheduledProcedureStepStartDate", ""),
                              s.get("ScheduledProcedureStepStartTime", "")))  # fmt: skip
    steps = [masked(step, hide) for step in steps]
    if args.json:
        print_json(steps)
        return 0
    widths = dict(COLUMNS) | {k: 16 for k in extra if k not in dict(COLUMNS)}  # -k's too
    terminal = sys.stdout.isatty() and shutil.get_terminal_size().columns
    table = StreamTable(widths, terminal, HEADINGS)
    for count, step in enumerate(steps):
        sys.stdout.write(table.lines(step, header=not count))
    elapsed = time.monotonic() - started
    print(f"{len(steps)} scheduled step(s) from {node.name} in {elapsed:.2f} s", file=sys.stderr)
    return 0
