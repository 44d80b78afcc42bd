"""``edit``: correct patient, study or series attributes, move a study to another patient,
merge two patients; list the edits and undo one. The work is :mod:`tui.archive.edit`'s."""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
from typing import TYPE_CHECKING, Any

from tui.archive.edit import LEVELS, PATIENT, SERIES, STUDY
from tui.cli.common import Commands, ProgressBar, open_archive, print_json, settings
from tui.config import Locations
from tui.errors import UserError
from tui.tables import printable

if TYPE_CHECKING:
    from tui.archive.edit import Change, Entry, Plan

log = logging.getLogger("tui")


def _levels_text() -> str:
    lines = []
    for level, target in ((PATIENT, "--patient ID"), (STUDY, "STUDY_UID"), (SERIES, "SERIES_UID")):
        names = ", ".join(k for k, v in LEVELS.items() if v == level)
        lines += textwrap.wrap(
            f"{level} attributes (with {target}): {names}",
            width=88,
            subsequent_indent="  ",
        )
    return "\n".join(lines)


_DESCRIPTION = """\
Correct patient, study or series attributes. The original files are never touched: each
instance that changes is written anew, with the same UIDs, into the archive's managed store,
and the index points at the new file. Every edit is recorded in the index (when, who, what,
old -> new) and can be undone. An attribute is edited on every instance of its level's
target: a patient attribute on all the patient's instances, a study attribute on the study's,
a series attribute on the series'. UIDs, what describes the pixels (group 0028), file meta,
sequences and private attributes are refused.

examples:
  pacs-tui edit --patient 12345 --set PatientName=DOE^JANE --dry-run
  pacs-tui edit 1.2.3... --set StudyDescription='CT CHEST' --set AccessionNumber=A77
  pacs-tui edit 1.2.3... --move-to-patient 12345
  pacs-tui edit --merge-patient OLD-ID --into 12345
  pacs-tui edit --history
  pacs-tui edit --undo 3
"""


def add_commands(commands: Commands) -> None:
    """Register ``edit`` on ``commands``."""
    p = commands.add_parser(
        "edit",
        help="correct patient, study or series attributes; move a study, merge patients; undo",
        description=_DESCRIPTION,
        epilog=_levels_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("uid", nargs="?", metavar="STUDY_UID|SERIES_UID")
    p.add_argument("--patient", metavar="ID", help="edit patient attributes of this PatientID")
    p.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="Keyword=Value",
        help="the new value (repeatable; empty to empty it)",
    )
    p.add_argument(
        "--move-to-patient",
        metavar="ID",
        help="file the study under the patient with this PatientID (its name, ID, birth date"
        " and sex as the archive has them)",
    )
    p.add_argument(
        "--merge-patient", metavar="ID", help="move every study of this PatientID (with --into)"
    )
    p.add_argument("--into", metavar="ID", help="the patient --merge-patient moves them to")
    p.add_argument("--history", action="store_true", help="list the edits, newest first")
    p.add_argument("--undo", type=int, metavar="N", help="undo edit N of the history")
    p.add_argument("--dry-run", action="store_true", help="show what would change; write nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_edit)


def cmd_edit(args: argparse.Namespace, locations: Locations) -> int:
    from tui.archive import edit

    actions = [
        bool(args.assignments), args.move_to_patient is not None,
        args.merge_patient is not None, args.history, args.undo is not None,
    ]  # fmt: skip
    if sum(actions) != 1:
        raise UserError(
            "edit what? give one of --set Keyword=Value, --move-to-patient ID,"
            " --merge-patient ID --into ID, --history, --undo N"
        )
    if (args.into is None) != (args.merge_patient is None):
        raise UserError("--merge-patient FROM_ID and --into ID go together")
    if (args.uid or args.patient) and (args.history or args.undo is not None or args.into):
        raise UserError("--history, --undo and --merge-patient take no UID nor --patient")
    private = settings(args, locations).privacy
    archive = open_archive(locations, create=False)
    if args.history:
        entries = edit.history(archive)
        if args.json:
            print_json([_masked(e.to_json(), private) for e in entries])
        else:
            _print_history(entries, private)
        return 0
    if args.undo is not None:
        plan = edit.plan_undo(archive, args.undo)
    elif args.merge_patient is not None:
        plan = edit.plan_merge(archive, args.merge_patient, args.into)
    elif args.uid and args.patient:
        raise UserError("give a STUDY_UID or SERIES_UID, or --patient ID, not both")
    elif args.move_to_patient is not None:
        if not args.uid:
            raise UserError("--move-to-patient moves a study: give its STUDY_UID")
        plan = edit.plan_move(archive, args.uid, args.move_to_patient)
    else:
        plan = edit.plan_set(archive, args.uid, args.assignments, patient=args.patient)
    edit_id = None
    if plan.instances and not args.dry_run:
        archive.require_writable()
        bar = ProgressBar("editing") if sys.stderr.isatty() else None
        try:
            edit_id = edit.apply(archive, plan, progress=bar)
        finally:
            if bar:
                bar.close()
        log.info("edit %d: %d instance(s)", edit_id, plan.instances)
    if args.json:
        print_json({"dry_run": args.dry_run, "edit": edit_id, **_masked(plan.to_json(), private)})
    else:
        _print_plan(plan, edit_id, args.dry_run, private)
    return 0


def _print_plan(plan: Plan, edit_id: int | None, dry_run: bool, private: bool) -> None:
    target = _shown_target(plan.level, plan.target, private)
    if not plan.instances:
        print(f"nothing to change: the instances of {target} have these values already")
        return
    print(f"{target}: {plan.instances} instance(s)")
    for change in plan.changes:
        print(f"  {_change_text(change, private)}")
    if dry_run:
        print("dry run: nothing written")
    elif edit_id is not None:
        print(f"edit {edit_id} done (undo: pacs-tui edit --undo {edit_id})")


def _print_history(entries: list[Entry], private: bool) -> None:
    if not entries:
        print("no edits", file=sys.stderr)
        return
    for e in entries:
        command = "" if private else f"  {printable(e.command)}"
        print(
            f"{e.edit_id}  {e.at}  {printable(e.user)}  "
            f"{_shown_target(e.level, e.target, private)}  {len(e.files)} instance(s){command}"
        )
        for change in e.changes:
            print(f"    {_change_text(change, private)}")


def _shown_target(level: str, target: str, private: bool) -> str:
    from tui.privacy import mask

    return f"{level} {printable(mask(target) if private and level == PATIENT else target)}"


def _change_text(change: Change, private: bool) -> str:
    def shown(value: str | None) -> str:
        if value is None:
            return "(absent)"
        return repr(_mask_value(change.keyword, value, private))

    return (
        f"{change.keyword}: {printable(shown(change.old))} -> {printable(shown(change.new))}"
        f" ({change.instances})"
    )


def _mask_value(keyword: str, value: str, private: bool) -> str:
    from tui.privacy import IDENTIFYING, mask

    return mask(value) if private and keyword in IDENTIFYING and value else value


def _masked(row: dict[str, Any], private: bool) -> dict[str, Any]:
    """``row`` (a plan or history entry as JSON) with identifying values masked."""
    if not private:
        return row
    from tui.privacy import mask

    row = dict(row)
    row["changes"] = [
        {**c, "old": _mask_value(c["keyword"], c["old"] or "", True) or c["old"],
         "new": _mask_value(c["keyword"], c["new"] or "", True) or c["new"]}
        for c in row["changes"]
    ]  # fmt: skip
    if row["level"] == PATIENT:
        row["target"] = mask(row["target"])
    row.pop("command", None)
    return row
