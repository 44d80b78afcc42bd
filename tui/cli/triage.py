"""``triage``: flag, prioritise, mark reviewed and annotate studies, or export the list."""

from __future__ import annotations

import argparse
from pathlib import Path

from tui.cli.common import Commands, done, open_archive, print_json
from tui.config import Locations
from tui.errors import UserError


def add_commands(commands: Commands) -> None:
    """Register ``triage`` on ``commands``."""
    p = commands.add_parser(
        "triage",
        help="flag, prioritise, mark reviewed and annotate studies, or export the triage list",
    )
    p.add_argument("study", nargs="?", metavar="STUDY_UID")
    flag = p.add_mutually_exclusive_group()
    flag.add_argument("--flag", dest="flagged", action="store_const", const=True)
    flag.add_argument("--unflag", dest="flagged", action="store_const", const=False)
    review = p.add_mutually_exclusive_group()
    review.add_argument("--reviewed", dest="reviewed", action="store_const", const=True)
    review.add_argument("--unreviewed", dest="reviewed", action="store_const", const=False)
    p.add_argument("--priority", type=int, choices=range(4), help="0 none, 1 low, 2 high, 3 urgent")
    p.add_argument("--note", help="a short note (empty to clear)")
    p.add_argument("--export", metavar="OUT", help="write the triage list to OUT.csv or OUT.json")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_triage)


def cmd_triage(args: argparse.Namespace, locations: Locations) -> int:
    from dataclasses import asdict

    from tui.archive import triage

    archive = open_archive(locations, create=False)
    if args.export:
        out = Path(args.export)
        text = triage.export(archive, out.suffix.lower().lstrip("."))
        out.write_text(text, encoding="utf-8")
        return done(args.export)
    if not args.study:
        raise UserError("triage what? give a STUDY_UID, or --export OUT.csv|OUT.json")
    changes = {
        key: value
        for key, value in (
            ("flagged", args.flagged), ("reviewed", args.reviewed),
            ("priority", args.priority), ("note", args.note),
        )
        if value is not None
    }  # fmt: skip
    state = (
        triage.update(archive, args.study, **changes)
        if changes
        else triage.get(archive, args.study)
    )
    if args.json:
        print_json({"StudyInstanceUID": args.study, **asdict(state)})
    else:
        print(f"{args.study}: {state.marks().strip() or 'not triaged'} {state.note}".rstrip())
    return 0
