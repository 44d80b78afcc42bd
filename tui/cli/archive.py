"""The archive's commands: ``import``, ``ls``, ``tags`` and ``forget``."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from typing import Any

from tui.cli.common import Commands, ProgressBar, open_archive, print_json, settings
from tui.config import Locations
from tui.errors import UserError

log = logging.getLogger("tui")


def add_commands(commands: Commands) -> None:
    """Register ``import``, ``ls``, ``tags`` and ``forget`` on ``commands``."""
    p = commands.add_parser("import", help="index DICOM files and folders into the archive")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files, folders or DICOMDIR files")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--copy", action="store_true", help="copy into the archive's managed store")
    mode.add_argument(
        "--ephemeral",
        action="store_true",
        help="index in memory for this run only; nothing about these patients is written",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=cmd_import)

    p = commands.add_parser("ls", help="list and search the archive")
    p.add_argument("--level", choices=("patient", "study", "series", "instance"), default="study")
    p.add_argument(
        "--patient-name",
        default="",
        metavar="PATTERN",
        help="wildcards * and ?, case and accents ignored; without wildcards, a whole name"
        " or any one name (family, given)",
    )
    p.add_argument("--patient-id", default="", metavar="PATTERN")
    p.add_argument("--birth-date", default="", metavar="RANGE", help="as --date")
    p.add_argument("--modality", default="", metavar="CT[,MR...]")
    p.add_argument(
        "--date",
        default="",
        metavar="RANGE",
        help="study date: YYYYMMDD, YYYYMMDD-YYYYMMDD, YYYYMMDD- (from) or -YYYYMMDD (until)",
    )
    p.add_argument("--accession", default="", metavar="PATTERN")
    p.add_argument(
        "--description",
        default="",
        metavar="TEXT",
        help="text in the study or series description (wildcards * and ? match the whole)",
    )
    p.add_argument("--study", default="", metavar="UID", help="StudyInstanceUID")
    p.add_argument("--series", default="", metavar="UID", help="SeriesInstanceUID")
    p.add_argument("--flagged", action="store_true", help="only flagged studies")
    p.add_argument("--unreviewed", action="store_true", help="only studies not yet reviewed")
    p.add_argument("--priority", type=int, default=0, metavar="N", help="at least this priority")
    p.add_argument(
        "--duplicates",
        action="store_true",
        help="list the files not indexed because another file holds their UID (no filters)",
    )
    p.add_argument("--json", action="store_true", help="a JSON list keyed by DICOM keywords")
    p.set_defaults(handler=cmd_ls)

    p = commands.add_parser("tags", help="print the whole header of a file or indexed instance")
    p.add_argument("target", metavar="FILE|SOPInstanceUID|SeriesInstanceUID")
    p.add_argument("--json", action="store_true", help="the DICOM JSON model, bulk data left out")
    p.add_argument(
        "--diff",
        metavar="FILE|UID",
        help="only what differs from another instance; with a series, the elements that differ "
        "between the series and those that vary per instance",
    )
    p.set_defaults(handler=cmd_tags)

    p = commands.add_parser(
        "forget",
        help="remove patients, studies or series from the index",
        description="Remove from the index. Files indexed in place are never touched; "
        "copies in the archive's managed store are deleted.",
    )
    p.add_argument("--patient", action="append", default=[], metavar="PatientID")
    p.add_argument("--study", action="append", default=[], metavar="UID")
    p.add_argument("--series", action="append", default=[], metavar="UID")
    p.add_argument("--yes", action="store_true", help="delete managed files without asking")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_forget)


# -- import --------------------------------------------------------------------------


def cmd_import(args: argparse.Namespace, locations: Locations) -> int:
    from tui.archive.importer import import_paths
    from tui.archive.index import Archive

    archive = Archive(None) if args.ephemeral else open_archive(locations)
    bar = ProgressBar("reading") if sys.stderr.isatty() else None
    try:
        try:
            summary = import_paths(archive, args.paths, copy=args.copy, progress=bar)
        finally:
            if bar:
                bar.close()
    except KeyboardInterrupt:
        print(
            "pacs-tui: interrupted; what was read so far is indexed: import again to finish",
            file=sys.stderr,
        )
        return 130
    log.info(
        "import: %d new, %d updated, %d unchanged, %d skipped, %d duplicates in %.1f s",
        summary.new, summary.updated, summary.unchanged, len(summary.skipped),
        len(summary.duplicates), summary.seconds,
    )  # fmt: skip
    for path, reason in summary.skipped:
        log.debug("skipped %s: %s", path, reason)
    if args.json:
        result = summary.to_json()
        if args.ephemeral:
            result["studies"] = studies(archive)
        print_json(result)
    else:
        print(_import_text(summary))
        if args.ephemeral:
            print()
            print_rows("study", studies(archive))
    archive.close()
    if summary.instances_found == 0:  # a script must be able to tell that nothing came in
        raise UserError(
            f"no DICOM file found in {' '.join(map(str, args.paths))}: nothing was imported"
        )
    return 0


def studies(archive: Any) -> list[dict[str, Any]]:
    from tui.archive.query import search

    return search(archive, "study")


def _import_text(summary: Any) -> str:
    from collections import Counter

    from tui.tables import printable

    lines = [
        f"{summary.new} new, {summary.updated} updated, {summary.unchanged} unchanged"
        f" ({summary.vanished} vanished) in {summary.seconds:.1f} s"
    ]
    if summary.dicomdirs:
        lines.append(f"{summary.dicomdirs} DICOMDIR file(s) used")
    if summary.skipped:
        lines.append(f"skipped {len(summary.skipped)} file(s) (--json lists every one):")
        first: dict[str, Any] = {}
        for path, reason in summary.skipped:
            first.setdefault(reason, path)
        for reason, count in Counter(r for _, r in summary.skipped).most_common(10):
            example = "" if count == 1 else "e.g. "
            lines.append(
                f"  {count:6d}  {printable(reason)}: {example}{printable(str(first[reason]))}"
            )
    if summary.duplicates:
        lines.append(
            f"{len(summary.duplicates)} duplicate(s): same SOPInstanceUID as an indexed file;"
            " the file indexed first keeps it (pacs-tui ls --duplicates lists them):"
        )
        lines += [
            f"  {printable(d.path)}  ({'identical copy of' if d.identical else 'indexed:'}"
            f" {printable(d.indexed_path)})"
            for d in summary.duplicates[:10]
        ]
        if len(summary.duplicates) > 10:
            lines.append(f"  ... and {len(summary.duplicates) - 10} more (--json lists all)")
    if summary.conflicts:
        lines.append(
            f"{len(summary.conflicts)} file(s) name another patient than the study they belong"
            " to; they are filed under the study's first patient:"
        )
        lines += [f"  {printable(path)}" for path in summary.conflicts[:10]]
    if summary.missing:
        lines.append(f"{len(summary.missing)} file(s) referenced by a DICOMDIR are missing:")
        lines += [f"  {printable(path)}" for path, _ in summary.missing[:10]]
    return "\n".join(lines)


# -- ls ------------------------------------------------------------------------------

_TABLES: dict[str, list[tuple[str, str, int]]] = {
    "patient": [
        ("PatientID", "ID", 20),
        ("PatientName", "Name", 32),
        ("PatientBirthDate", "Birth", 8),
        ("PatientSex", "Sex", 3),
        ("NumberOfPatientRelatedStudies", "Studies", 0),
        ("NumberOfPatientRelatedInstances", "Inst", 0),
        ("NumberOfPatientRelatedImages", "Img", 0),
    ],
    "study": [
        ("StudyDate", "Date", 8),
        ("PatientName", "Name", 24),
        ("PatientID", "ID", 14),
        ("ModalitiesInStudy", "Mod", 10),
        ("StudyDescription", "Description", 28),
        ("AccessionNumber", "Accession", 16),
        ("NumberOfStudyRelatedSeries", "Ser", 0),
        ("NumberOfStudyRelatedInstances", "Inst", 0),
        ("NumberOfStudyRelatedImages", "Img", 0),
        ("StudyInstanceUID", "StudyInstanceUID", 0),
    ],
    "series": [
        ("StudyDate", "Date", 8),
        ("PatientName", "Name", 20),
        ("Modality", "Mod", 4),
        ("SeriesNumber", "#", 0),
        ("SeriesDescription", "Description", 30),
        ("NumberOfSeriesRelatedInstances", "Inst", 0),
        ("NumberOfSeriesRelatedImages", "Img", 0),
        ("SeriesInstanceUID", "SeriesInstanceUID", 0),
    ],
    "instance": [
        ("InstanceNumber", "#", 0),
        ("Modality", "Mod", 4),
        ("Rows", "Rows", 0),
        ("Columns", "Cols", 0),
        ("NumberOfFrames", "Fr", 0),
        ("SOPInstanceUID", "SOPInstanceUID", 0),
        ("path", "File", 0),
    ],
    "duplicate": [
        ("SOPInstanceUID", "SOPInstanceUID", 0),
        ("path", "File", 0),
        ("indexed_path", "Indexed file", 0),
    ],
}


def cmd_ls(args: argparse.Namespace, locations: Locations) -> int:
    from tui.archive.query import Filters, search
    from tui.privacy import masked

    filters = Filters(
        patient_name=args.patient_name,
        patient_id=args.patient_id,
        birth_date=args.birth_date,
        modality=args.modality,
        date=args.date,
        accession=args.accession,
        description=args.description,
        study=args.study,
        series=args.series,
        flagged=args.flagged,
        unreviewed=args.unreviewed,
        priority=args.priority,
    )  # checked before the archive is opened: a typo is reported as such
    archive = open_archive(locations, create=False)
    if args.duplicates:
        rows = archive.duplicates()
        level = "duplicate"
    else:
        rows = search(archive, args.level, filters)
        level = args.level
    if settings(args, locations).privacy:
        rows = [masked(row) for row in rows]
    if args.json:
        print_json(rows)
    else:
        print_rows(level, rows)
    return 0


def print_rows(level: str, rows: list[dict[str, Any]]) -> None:
    from tui.tables import format_table

    if not rows:
        print(f"no {level} matches", file=sys.stderr)
        return
    width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
    print(format_table(rows, _TABLES[level], width))


# -- tags ----------------------------------------------------------------------------


def cmd_tags(args: argparse.Namespace, locations: Locations) -> int:
    from tui.archive.tags import check_whole, diff, read_header, to_json, to_text

    paths, series = _target_files(args.target, locations)
    if args.diff:
        other, other_series = _target_files(args.diff, locations)
        if series or other_series:  # an instance against a series is a series of one
            _print_series_diff(paths, other, args.json)
            return 0
        rows = [
            {"tag": tag, "name": name, "first": first, "second": second}
            for tag, name, first, second in diff(read_header(paths[0]), read_header(other[0]))
        ]
        if args.json:
            print_json(rows)
        else:
            print(_diff_table(rows))
        for path in (paths[0], other[0]):
            check_whole(path)
        return 0
    ds = read_header(paths[0])
    if args.json:
        print_json(to_json(ds, paths[0]))
    else:
        print(to_text(ds))
    sys.stdout.flush()  # what could be read, then why it ends there
    check_whole(paths[0])
    return 0


def _print_series_diff(first: list[str], second: list[str], as_json: bool) -> None:
    """The instance counts, the elements that differ between two series, then those that
    vary within one; headers only, read one at a time."""
    from tui.archive.tags import diff_series, read_header

    found = diff_series(map(read_header, first), map(read_header, second))
    if as_json:
        print_json(found.to_json())
        return
    print(f"instances: {found.counts[0]} | {found.counts[1]}")
    for varies, heading in [(False, "differ between the series"), (True, "vary within a series")]:
        rows = [
            {"tag": r.tag, "name": r.name, "first": str(r.first), "second": str(r.second)}
            for r in found.rows
            if r.varies == varies
        ]
        print(f"\n{heading}: {len(rows) or 'none'}")
        if rows:
            print(_diff_table(rows))


def _diff_table(rows: list[dict[str, str]]) -> str:
    from tui.tables import format_table

    width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
    columns = [("tag", "Tag", 0), ("name", "Name", 36), ("first", "First", 60)]
    return format_table(rows, [*columns, ("second", "Second", 60)], width)


def _target_files(target: str, locations: Locations) -> tuple[list[str], bool]:
    """The files ``target`` names, and whether it names a series: a file path, the file of
    an indexed SOP Instance UID, or the files of an indexed series, in order.

    Raises
    ------
    UserError
        If it is none of these.
    """
    if os.path.exists(target):
        return [target], False
    archive = open_archive(locations, create=False)
    found = archive.indexed_path(target)
    if found is not None:
        return [str(found)], False
    from tui.archive.query import series_instances

    try:
        rows = series_instances(archive, target)
    except UserError:
        raise UserError(
            f"{target}: no such file, nor an indexed SOPInstanceUID or SeriesInstanceUID"
        ) from None
    return [str(row["path"]) for row in rows], True


# -- forget --------------------------------------------------------------------------


def cmd_forget(args: argparse.Namespace, locations: Locations) -> int:
    targets = [("patient", args.patient), ("study", args.study), ("series", args.series)]
    if not any(uids for _, uids in targets):
        raise UserError("forget what? give --patient ID, --study UID or --series UID")
    archive = open_archive(locations, create=False)
    removed, deleted = 0, 0
    for level, uids in targets:
        if not uids:
            continue
        with archive.transaction():
            count, managed = archive.forget(level, uids)
            if count == 0:
                raise UserError(f"no {level} {', '.join(uids)} in the archive")
            if managed and not args.yes:
                if not sys.stdin.isatty():
                    raise UserError(
                        f"would delete {len(managed)} file(s) from the managed store: add --yes"
                    )
                if not _confirm(len(managed)):
                    raise UserError("cancelled: nothing was forgotten")
        removed += count
        for path in managed:
            try:
                os.unlink(path)
                deleted += 1
            except FileNotFoundError:
                pass
    log.info("forget: %d instances, %d managed files deleted", removed, deleted)
    if args.json:
        print_json({"instances": removed, "deleted_files": deleted})
    else:
        print(f"forgot {removed} instance(s); deleted {deleted} file(s) from the managed store")
    return 0


def _confirm(count: int) -> bool:
    answer = input(f"Delete {count} file(s) from the managed store? [y/N] ")
    return answer.strip().lower() in ("y", "yes")
