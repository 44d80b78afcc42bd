"""Sharing DICOM: ``export UID... --dicom`` (a folder, a ZIP or media with a DICOMDIR) and
the de-identification options (``--anonymize``) it shares with ``send``.

The work is done in :mod:`tui.archive.media` and :mod:`tui.archive.deid`; this module turns
options into their arguments and the report into lines or JSON.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui.cli.common import ProgressBar, interrupt_sets, open_archive, print_json
from tui.config import Locations
from tui.errors import UserError
from tui.tables import printable

if TYPE_CHECKING:
    from tui.archive.deid.options import Options
    from tui.archive.deid.profile import Deidentifier
    from tui.archive.query import Filters

# The ``ls`` filters an export takes: (option, Filters field, metavar, help).
FILTERS = [
    ("--patient-name", "patient_name", "PATTERN", "wildcards * and ?, case and accents ignored"),
    ("--patient-id", "patient_id", "PATTERN", "wildcards * and ?"),
    ("--birth-date", "birth_date", "RANGE", "as --date"),
    ("--modality", "modality", "CT[,MR...]", "series of these modalities"),
    ("--date", "date", "RANGE", "study date: YYYYMMDD, A-B, A- or -B"),
    ("--accession", "accession", "PATTERN", "accession number"),
    ("--description", "description", "TEXT", "text in the series description"),
    ("--study", "study", "UID", "StudyInstanceUID"),
    ("--series", "series", "UID", "SeriesInstanceUID"),
]


def add_export_options(p: argparse.ArgumentParser) -> None:
    """The options of ``export --dicom`` (``--dicom`` itself is in the export's kind group)."""
    p.add_argument(
        "--dicomdir",
        action="store_true",
        help="with --dicom: removable media (a DICOMDIR, 8-character file IDs) in the folder",
    )
    p.add_argument("--json", action="store_true", help="with --dicom: the summary as JSON")
    filters = p.add_argument_group(
        "what --dicom exports besides UIDs: every series these match, as `ls --level series`"
    )
    for option, dest, metavar, text in FILTERS:
        filters.add_argument(option, dest=f"filter_{dest}", default="", metavar=metavar, help=text)
    add_anonymize_options(p)


def add_anonymize_options(p: argparse.ArgumentParser) -> None:
    """``--anonymize [OPTS]``, ``--key``, ``--map``, ``--blank`` and ``--allow-burned-in``."""
    from tui.archive.deid.options import OPTION_NAMES

    group = p.add_argument_group("de-identification (PS3.15 Basic Profile)")
    group.add_argument(
        "--anonymize",
        nargs="?",
        const="",
        default=None,
        metavar="OPTIONS",
        help="de-identify; OPTIONS, comma-separated, retain or clean more: "
        + ", ".join(OPTION_NAMES),
    )
    group.add_argument(
        "--key", metavar="FILE", help="the secret of the pseudonyms (default: one kept in config)"
    )
    group.add_argument("--map", metavar="CSV", help="original patient ID -> new ID, new name")
    group.add_argument(
        "--blank",
        action="append",
        default=[],
        type=_rect,
        metavar="X,Y,W,H",
        help="zero this rectangle of pixels (repeat for several); images with burned-in text "
        "are refused without it",
    )
    group.add_argument(
        "--allow-burned-in", action="store_true", help="let images with burned-in text through"
    )


def _rect(text: str) -> tuple[int, int, int, int]:
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected X,Y,WIDTH,HEIGHT in pixels") from None
    if x < 0 or y < 0 or w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a corner from 0 and a positive size")
    return x, y, w, h


def anonymize_options(args: argparse.Namespace) -> Options | None:
    """The de-identification ``args`` ask for; None without ``--anonymize``.

    Raises
    ------
    UserError
        For an unknown option name, both date options, or ``--key``, ``--map``,
        ``--blank`` or ``--allow-burned-in`` without ``--anonymize``.
    """
    from tui.archive.deid.options import OPTION_NAMES, Options

    if args.anonymize is None:
        for given, option in [
            (args.key, "--key"), (args.map, "--map"), (args.blank, "--blank"),
            (args.allow_burned_in, "--allow-burned-in"),
        ]:  # fmt: skip
            if given:
                raise UserError(f"{option} goes with --anonymize")
        return None
    chosen: dict[str, Any] = {}
    for name in (n.strip() for n in args.anonymize.split(",")):
        if not name:
            continue
        if name not in OPTION_NAMES:
            hint = (
                " (UIDs go before --anonymize, or write --anonymize= before them)"
                if name[:1].isdigit()
                else ""
            )
            raise UserError(
                f"--anonymize {name!r}: not an option; choose from {', '.join(OPTION_NAMES)}{hint}"
            )
        field = OPTION_NAMES[name]
        if field == "dates":
            value = "full" if name == "retain-full-dates" else "shifted"
            if chosen.get("dates", value) != value:
                raise UserError("--anonymize: retain-full-dates or retain-shifted-dates, not both")
            chosen["dates"] = value
        else:
            chosen[field] = True
    return Options(**chosen, blank=tuple(args.blank), allow_burned_in=args.allow_burned_in)


def deidentifier(args: argparse.Namespace, locations: Locations) -> Deidentifier | None:
    """The de-identifier ``--anonymize`` and its options ask for (its key from ``--key``
    or the one kept in the config folder, made on first use); None without it."""
    options = anonymize_options(args)
    if options is None:
        return None
    from tui.archive.deid.profile import Deidentifier
    from tui.archive.deid.pseudonyms import load_key, load_map

    key = load_key(Path(args.key) if args.key else None, locations.config_dir)
    mapping = load_map(Path(args.map)) if args.map else None
    return Deidentifier(options, key, mapping)


def filters_of(args: argparse.Namespace) -> Filters | None:
    """The ``ls`` filters given (checked before the archive opens); None for none."""
    from tui.archive.query import Filters

    given = {dest: getattr(args, f"filter_{dest}") for _, dest, _, _ in FILTERS}
    if not any(given.values()):
        return None
    return Filters(**given)


def given_filters(args: argparse.Namespace) -> list[str]:
    """The filter options given, by name (the image exports take none)."""
    return [option for option, dest, _, _ in FILTERS if getattr(args, f"filter_{dest}")]


def cmd_export_dicom(args: argparse.Namespace, locations: Locations) -> int:
    """``export UID... --dicom -o DIR|FILE.zip [--dicomdir] [--anonymize ...]``."""
    from tui.archive.deid import verify
    from tui.archive.media import Cancelled, VerificationFailed, export, kind_of, select

    if not args.output:
        raise UserError("export --dicom needs -o FOLDER or -o FILE.zip")
    target = Path(args.output)
    kind = kind_of(target, args.dicomdir)
    options = anonymize_options(args)  # first: it names a UID taken as its OPTIONS
    filters = filters_of(args)
    if not args.uids and filters is None:
        raise UserError("export what? give Study, Series or SOP Instance UIDs, or filters")
    deid = deidentifier(args, locations)
    archive = open_archive(locations, create=False)
    rows = select(archive, args.uids, filters)
    archive.close()
    bar = ProgressBar("exporting") if sys.stderr.isatty() else None
    cancel = threading.Event()
    try:
        with interrupt_sets(cancel):
            report = export(
                rows, target, kind,
                transform=deid.apply if deid is not None else None,
                audit=verify.audit(options) if options is not None else None,
                progress=(lambda done, total, _bytes: bar(done, total)) if bar else None,
                cancel=cancel,
            )  # fmt: skip
    except (KeyboardInterrupt, Cancelled):
        if bar:
            bar.close()
        print("pacs-tui: interrupted: nothing was written", file=sys.stderr)
        return 130
    except VerificationFailed as failed:
        if bar:
            bar.close()
        if args.json:
            print_json(failed.report.to_json() | {"output": None})
        raise
    if bar:
        bar.close()
    if args.json:
        print_json(report.to_json())
    else:
        print(_summary(report))
        for uid, reason in report.refused:
            print(f"  refused {uid}: {reason}", file=sys.stderr)
    return 1 if report.refused else 0


def _summary(report: Any) -> str:
    kind = {"folder": "a folder", "zip": "a ZIP", "media": "media with a DICOMDIR"}[report.kind]
    refused = f", {len(report.refused)} refused" if report.refused else ""
    return (
        f"{report.instances} instances ({report.patients} patients, {report.studies} studies,"
        f" {report.series} series, {report.bytes / 1e6:.1f} MB) to {kind} in"
        f" {report.seconds:.1f} s{refused}, checked: {printable(report.output)}"
    )
