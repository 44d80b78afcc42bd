"""The ``pacs-tui`` command line: one parser, one small handler per command.

Handlers import what they need when they run, so that quick commands such as
``ls`` start without loading pydicom. Errors a user can cause are printed as one
line (``pacs-tui: error: ...``) with exit status 1; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sqlite3
import sys
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from tui import __version__
from tui.config import Locations, locate
from tui.errors import UserError
from tui.term.modes import BANDWIDTHS, GRAPHICS

log = logging.getLogger("tui")


class _Parser(argparse.ArgumentParser):
    """Usage mistakes get one line, like every other error, naming what was mistyped."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"pacs-tui: error: {message} (see: {self.prog} --help)\n")

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        # argparse sets an unknown option aside and takes the value after it for the
        # command (--archve X ls: "invalid choice: 'X'"): name the option first.
        self._check_words(list(sys.argv[1:] if args is None else args))
        return super().parse_args(args, namespace)

    def _check_words(self, words: list[str]) -> None:
        """Refuse an unknown long option or command in ``words``, naming the nearest known."""
        commands = next(
            (a for a in self._actions if isinstance(a, argparse._SubParsersAction)), None
        )
        values = 0  # words still to come that are an option's values
        for at, word in enumerate(words):
            if values:
                values -= 1
            elif word == "--":
                return
            elif word.startswith("--"):
                name = word.split("=", 1)[0]
                action = self._option(name)
                if action is None:
                    known = [o for a in self._actions for o in a.option_strings]
                    self.error(f"unknown option {name}{_did_you_mean(name, known)}")
                if "=" not in word and isinstance(action, argparse.Action):
                    values = action.nargs if isinstance(action.nargs, int) else 1
                    values = 0 if action.nargs in ("?", "*", "+") else values
            elif commands is not None and not word.startswith("-"):
                chosen = commands.choices.get(word)
                if chosen is None:
                    self.error(f"unknown command {word!r}{_did_you_mean(word, commands.choices)}")
                chosen._check_words(words[at + 1 :])
                return

    def _option(self, name: str) -> argparse.Action | bool | None:
        """The option ``name`` is, whole or abbreviated; True if it is ambiguous (argparse
        says so), None if it is none."""
        exact = self._option_string_actions.get(name)
        if exact is not None:
            return exact
        matches = {a for o, a in self._option_string_actions.items() if o.startswith(name)}
        if len(matches) > 1:
            return True
        return next(iter(matches), None)


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    import difflib

    bare = {choice.lstrip("-"): choice for choice in choices}  # dashes are not a likeness
    close = difflib.get_close_matches(word.lstrip("-"), list(bare), n=1, cutoff=0.6)
    return f"; did you mean {bare[close[0]]}?" if close else ""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pacs-tui",
        description="A keyboard-driven terminal PACS client.",
    )
    parser.add_argument("--version", action="version", version=f"pacs-tui {__version__}")
    parser.add_argument(
        "--archive",
        metavar="DIR",
        help="archive folder (default: $PACS_TUI_ARCHIVE or the user data folder)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug messages on stderr")
    parser.add_argument(
        "--graphics",
        choices=GRAPHICS,
        help="how images are drawn in the terminal (default: config.toml, else auto)",
    )
    parser.add_argument("--theme", metavar="NAME", help="reading-room, daylight, high-contrast...")
    parser.add_argument(
        "--privacy",
        action="store_true",
        help="mask names, IDs and birth dates (the app, ls, find)",
    )
    parser.add_argument(
        "--dither",
        choices=("none", "ordered", "diffusion"),
        help="dither half-block greys so gradients do not band (default: config.toml, else none)",
    )
    parser.add_argument(
        "--bandwidth",
        choices=BANDWIDTHS,
        help="colours, image size and frame rate (default: config.toml, else auto)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

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

    p = commands.add_parser(
        "demo", help="build the demo archive (once) and open it, with a demo PACS to query"
    )
    p.add_argument("--rebuild", action="store_true", help="build it again from scratch")
    p.add_argument(
        "--serve", action="store_true", help="only run the demo PACS (node 'demo') until Ctrl-C"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_demo)

    p = commands.add_parser(
        "render",
        help="render a slice, MIP/MinIP/average or MPR view of a series to an image file",
    )
    _view_options(p)
    p.add_argument("--size", metavar="WxH", type=_size, help="output size in pixels")
    p.add_argument("--annotate", action="store_true", help="burn in corner text and orientation")
    p.add_argument("--no-phi", action="store_true", help="leave identifying text out")
    p.add_argument("--raw", action="store_true", help="16-bit PNG of modality values")
    p.add_argument("--term", action="store_true", help="print it in this terminal")
    p.add_argument("-o", "--output", metavar="OUT", help=".png, .jpg or .tif")
    p.set_defaults(handler=cmd_render)

    p = commands.add_parser("export", help="export a series as a cine loop or a contact sheet")
    _view_options(p)
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--cine", action="store_true", help="animated through the slices")
    kind.add_argument("--sheet", action="store_true", help="a contact sheet laid out like film")
    p.add_argument("--rotate", action="store_true", help="with --cine: a rotating MIP")
    p.add_argument("--fps", type=float, default=10.0, help="cine frames per second")
    p.add_argument("--columns", type=int, default=6, help="sheet columns")
    p.add_argument("--size", metavar="WxH", type=_size, help="cine frame size in pixels")
    p.add_argument("--no-phi", action="store_true", help="leave identifying text out")
    p.add_argument("-o", "--output", metavar="OUT", required=True, help=".gif/.webp or .pdf/.png")
    p.set_defaults(handler=cmd_export)

    p = commands.add_parser(
        "triage",
        help="flag, prioritise, mark reviewed and annotate studies, or export the triage list",
    )
    p.add_argument("study", nargs="?", metavar="STUDY_UID")
    flag = p.add_mutually_exclusive_group()
    flag.add_argument("--flag", dest="flagged", action="store_const", const=True)
    flag.add_argument("--unflag", dest="flagged", action="store_const", const=False)
    done = p.add_mutually_exclusive_group()
    done.add_argument("--reviewed", dest="reviewed", action="store_const", const=True)
    done.add_argument("--unreviewed", dest="reviewed", action="store_const", const=False)
    p.add_argument("--priority", type=int, choices=range(4), help="0 none, 1 low, 2 high, 3 urgent")
    p.add_argument("--note", help="a short note (empty to clear)")
    p.add_argument("--export", metavar="OUT", help="write the triage list to OUT.csv or OUT.json")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_triage)

    from tui.cli_net import add_commands  # node, echo, find, get, send, receive, serve

    add_commands(commands)
    return parser


def _view_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("series", metavar="SERIES_UID")
    p.add_argument("--stack", type=int, default=0, help="which stack of the series (time point)")
    p.add_argument("--mode", choices=("slice", "mip", "minip", "avg"), default="slice")
    p.add_argument("--plane", choices=("axial", "coronal", "sagittal", "acquired"))
    where = p.add_mutually_exclusive_group()
    where.add_argument("--index", type=int, metavar="N", help="slice number, from 1")
    where.add_argument("--position", type=float, metavar="MM", help="position along the normal")
    p.add_argument("--slab", type=float, metavar="MM", help="projection thickness (default: all)")
    window = p.add_mutually_exclusive_group()
    window.add_argument("--window", type=_window, metavar="C,W", help="window centre,width")
    window.add_argument(
        "--preset", metavar="NAME", help="a window preset (CT: brain, lung, bone...)"
    )
    window.add_argument("--file-window", type=int, metavar="N", help="the file's own window N")
    p.add_argument("--invert", action="store_true")


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected WIDTHxHEIGHT, e.g. 512x512") from None
    if not (0 < width <= 16384 and 0 < height <= 16384):
        raise argparse.ArgumentTypeError(f"{text!r}: each side from 1 to 16384")
    return width, height


def _window(text: str) -> Any:
    from tui.render.lut import Window

    try:
        center, width = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected CENTRE,WIDTH, e.g. 40,400") from None
    if width <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the width must be positive")
    return Window(center, width, name="")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for stream in (sys.stdout, sys.stderr):
        # Names in any script must never crash a terminal or pipe that is not UTF-8.
        stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    if not args.verbose:
        warnings.simplefilter("ignore")  # libraries' warnings; our reports say what matters
    try:
        locations = locate(args.archive)
        _setup_logging(locations, args.verbose)
        if args.command is None:
            if not (sys.stdin.isatty() and sys.stdout.isatty()):
                build_parser().print_help()
                return 0
            return run_app(args, locations, _open(locations, create=True))
        return int(args.handler(args, locations) or 0)
    except UserError as exc:
        return _fail(str(exc))
    except sqlite3.Error as exc:
        return _fail(f"archive: {exc}")
    except KeyboardInterrupt:
        print("pacs-tui: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (``| head``): not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        return _fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))


def _setup_logging(locations: Locations, verbose: bool) -> None:
    """Warnings (debug with -v) on stderr; a log file of what commands did, at INFO.

    Messages at INFO and above never carry patient data: counts and timings, not
    names, UIDs or paths (folder names often hold patient names).
    """
    console = logging.StreamHandler()
    console.setLevel(logging.DEBUG if verbose else logging.WARNING)
    console.addFilter(logging.Filter("tui"))  # -v means our debug messages, not plug-ins
    handlers: list[logging.Handler] = [console]
    try:
        locations.log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(locations.log_dir / "pacs-tui.log", delay=True))
        handlers[-1].setLevel(logging.INFO)
        # Only our own messages: libraries' warnings quote tag values (patient data).
        handlers[-1].addFilter(logging.Filter("tui"))
    except OSError:
        pass  # an unwritable log folder must not stop the command
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
    )


def _fail(message: str) -> int:
    print(f"pacs-tui: error: {' '.join(message.split())}", file=sys.stderr)
    return 1


def _print_json(value: Any) -> None:
    utf8 = (sys.stdout.encoding or "").lower().replace("-", "") == "utf8"
    json.dump(value, sys.stdout, ensure_ascii=not utf8, indent=1)  # \u escapes if not UTF-8
    sys.stdout.write("\n")


def _open(locations: Locations, create: bool = True) -> Any:
    """Open the archive; reading commands do not create one."""
    from tui.archive.index import INDEX_NAME, Archive

    folder = locations.archive
    if not create and not (folder / INDEX_NAME).exists() and not folder.is_file():
        if locations.archive_chosen and not folder.exists():
            raise UserError(f"no archive at {locations.archive}: import files into it first")
        hint = "the archive is empty: add files with `pacs-tui import PATH`"
        if (locations.demo_archive / INDEX_NAME).exists():
            hint += f" (the demo has its own: pacs-tui --archive {locations.demo_archive} ls)"
        print(hint, file=sys.stderr)
    return Archive(locations.archive, create=create)


# -- import --------------------------------------------------------------------------


def cmd_import(args: argparse.Namespace, locations: Locations) -> int:
    from tui.archive.importer import import_paths
    from tui.archive.index import Archive

    archive = Archive(None) if args.ephemeral else _open(locations)
    bar = _ProgressBar("reading") if sys.stderr.isatty() else None
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
            result["studies"] = _studies(archive)
        _print_json(result)
    else:
        print(_import_text(summary))
        if args.ephemeral:
            print()
            _print_rows("study", _studies(archive))
    archive.close()
    if summary.instances_found == 0:  # a script must be able to tell that nothing came in
        raise UserError(
            f"no DICOM file found in {' '.join(map(str, args.paths))}: nothing was imported"
        )
    return 0


def _studies(archive: Any) -> list[dict[str, Any]]:
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
        lines.append(f"skipped {len(summary.skipped)} file(s):")
        for reason, count in Counter(r for _, r in summary.skipped).most_common(10):
            lines.append(f"  {count:6d}  {printable(reason)}")
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


class _ProgressBar:
    """A one-line progress bar on stderr (only used when stderr is a terminal)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.last = -1

    def __call__(self, done: int, total: int) -> None:
        percent = 100 * done // total if total else 100
        if percent == self.last:
            return
        self.last = percent
        text = f" {done}/{total} files"
        room = shutil.get_terminal_size().columns - len(self.label) - len(text) - 4
        size = max(0, min(40, room))
        filled = percent * size // 100
        bar = f" [{'#' * filled}{'.' * (size - filled)}]" if size >= 10 else ""
        sys.stderr.write(f"\r{self.label}{bar}{text}\x1b[K")
        sys.stderr.flush()

    def close(self) -> None:
        if self.last >= 0:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


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
    archive = _open(locations, create=False)
    if args.duplicates:
        rows = archive.duplicates()
        level = "duplicate"
    else:
        rows = search(archive, args.level, filters)
        level = args.level
    if private(args, locations):
        rows = [masked(row) for row in rows]
    if args.json:
        _print_json(rows)
    else:
        _print_rows(level, rows)
    return 0


def private(args: argparse.Namespace, locations: Locations) -> bool:
    """``--privacy``, or ``privacy = true`` in config.toml: mask names, IDs, birth dates."""
    from tui.config import load_config

    return bool(args.privacy or load_config(locations.config_file).get("privacy", False))


def _print_rows(level: str, rows: list[dict[str, Any]]) -> None:
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
            _print_json(rows)
        else:
            print(_diff_table(rows))
        for path in (paths[0], other[0]):
            check_whole(path)
        return 0
    ds = read_header(paths[0])
    if args.json:
        _print_json(to_json(ds, paths[0]))
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
        _print_json(found.to_json())
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
    archive = _open(locations, create=False)
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
    archive = _open(locations, create=False)
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
        _print_json({"instances": removed, "deleted_files": deleted})
    else:
        print(f"forgot {removed} instance(s); deleted {deleted} file(s) from the managed store")
    return 0


def _confirm(count: int) -> bool:
    answer = input(f"Delete {count} file(s) from the managed store? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


# -- demo ----------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace, locations: Locations) -> int:
    from tui.archive.demo import build_demo, forget_retrieved

    root = Path(args.archive) if args.archive or os.environ.get("PACS_TUI_ARCHIVE") else None
    root = locations.archive if root else locations.demo_archive
    bar = _ProgressBar("building demo") if sys.stderr.isatty() else None
    try:
        archive = build_demo(root, rebuild=args.rebuild, progress=bar)
    finally:
        if bar:
            bar.close()
    rows = _studies(archive)
    interactive = not args.json and sys.stdin.isatty() and sys.stdout.isatty()
    if interactive or args.serve:
        forget_retrieved(archive)  # a demo before retrieved it: it is offered again
        with _demo_pacs(root, locations) as node:
            if args.serve:
                print(f"demo PACS: node {node.name} ({node.address}); Ctrl-C stops", flush=True)
                from tui.cli_net import wait_until_stopped

                wait_until_stopped()
                return 0
            return run_app(args, locations, archive)
    if args.json:
        _print_json({"archive": str(root), "studies": rows})
    else:
        print(f"demo archive: {root}")
        _print_rows("study", rows)
    return 0


@contextmanager
def _demo_pacs(root: Path, locations: Locations) -> Iterator[Any]:
    """The demo PACS on loopback while the demo runs, known as node ``demo``: a new user
    can query and retrieve with nothing else installed. It serves every demo study and
    one more that only it has."""
    from tui.archive.demo import build_demo_pacs
    from tui.cli_net import move_destinations, stopped_by_signals
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


# -- render and export ---------------------------------------------------------------


def _request(args: argparse.Namespace) -> Any:
    from tui.render.pipeline import Request

    return Request(
        stack=args.stack,
        mode=args.mode,
        plane=args.plane,
        index=None if args.index is None else args.index - 1,
        position=args.position,
        slab=args.slab,
        window=args.window,
        preset=args.preset,
        file_window=None if args.file_window is None else args.file_window - 1,
        invert=args.invert,
    )


def _stacks(args: argparse.Namespace, locations: Locations) -> list[Any]:
    from tui.archive.query import series_instances
    from tui.render.volume import assemble, slices_of

    archive = _open(locations, create=False)
    return assemble(slices_of(series_instances(archive, args.series)))


def cmd_render(args: argparse.Namespace, locations: Locations) -> int:
    from tui.render import export
    from tui.render.pipeline import pick_stack, render
    from tui.render.presets import load_presets
    from tui.render.series_export import picture

    if not args.output and not args.term:
        raise UserError("render needs -o OUT (a .png, .jpg or .tif file) or --term")
    stack = pick_stack(_stacks(args, locations), args.stack)
    rendered = render(stack, _request(args), load_presets(locations.config_dir))
    if args.raw:
        if rendered.view is None or not args.output:
            raise UserError("--raw needs a grey image and -o OUT.png")
        export.save_raw16(rendered.view.values, Path(args.output))
        return _done(args.output)
    still = picture(rendered, args.size, args.annotate, args.no_phi)
    if args.term:
        _print_in_terminal(still, args, locations)
    if args.output:
        export.save_still(still, Path(args.output))
        return _done(args.output)
    return 0


def _done(path: str) -> int:
    print(path)
    return 0


def _print_in_terminal(picture: Any, args: argparse.Namespace, locations: Locations) -> None:
    from dataclasses import replace

    import numpy as np

    from tui.config import load_config
    from tui.term.detect import cell_size, choose_bandwidth, choose_graphics
    from tui.term.modes import DEFAULT_CELL
    from tui.term.show import draw

    config = load_config(locations.config_file)
    graphics = choose_graphics(args.graphics or str(config.get("graphics", "auto")), tty_fd=_tty())
    bandwidth = choose_bandwidth(args.bandwidth or str(config.get("bandwidth", "auto")))
    dither = args.dither or str(config.get("dither", "none"))
    if dither not in ("none", "ordered", "diffusion"):
        raise UserError(f"{locations.config_file}: dither must be none, ordered or diffusion")
    bandwidth = replace(bandwidth, mode=replace(bandwidth.mode, dither=dither))
    size = shutil.get_terminal_size()
    cell = cell_size(_tty()) or DEFAULT_CELL
    image = np.asarray(picture)
    text = draw(
        image, graphics, bandwidth, size.columns - 1, size.lines - 2, cell=cell,
        tmux="TMUX" in os.environ,
    )  # fmt: skip
    sys.stdout.write(text)
    sys.stdout.flush()


def _tty() -> int | None:
    return sys.stdin.fileno() if sys.stdin.isatty() and sys.stdout.isatty() else None


def cmd_export(args: argparse.Namespace, locations: Locations) -> int:
    from tui.render import export
    from tui.render.pipeline import pick_stack
    from tui.render.presets import load_presets
    from tui.render.series_export import write_cine, write_sheet
    from tui.render.volume import VolumeCache

    stack = pick_stack(_stacks(args, locations), args.stack)
    presets = load_presets(locations.config_dir)
    request = _request(args)
    output = Path(args.output)
    if args.rotate:
        if not args.cine:
            raise UserError("--rotate goes with --cine")
        from tui.render.rotate import rotating_mip

        frames = rotating_mip(stack, request, presets)
        export.save_animation([export.fit(f, args.size) for f in frames], output, args.fps)
        return _done(args.output)
    cache = VolumeCache(_cache_mb(locations))
    if args.cine:
        write_cine(stack, request, presets, cache, output, args.fps, args.size)
    else:
        write_sheet(stack, request, presets, cache, output, args.columns, args.no_phi)
    return _done(args.output)


def _cache_mb(locations: Locations) -> float:
    """``[render] cache_mb`` in config.toml: memory for decoded volumes (default 1024)."""
    from tui.config import load_config

    value = load_config(locations.config_file).get("render", {}).get("cache_mb", 1024)
    if not isinstance(value, int | float) or value <= 0:
        raise UserError(f"{locations.config_file}: [render] cache_mb must be a positive number")
    return float(value)


# -- the app ---------------------------------------------------------------------------


def run_app(args: argparse.Namespace, locations: Locations, archive: Any) -> int:
    """Open the Textual app on ``archive``."""
    from tui.app.app import PacsApp
    from tui.config import load_config
    from tui.term.detect import cell_size, choose_bandwidth, choose_graphics
    from tui.term.modes import PROTOCOLS

    config = load_config(locations.config_file)
    keymap = config.get("keys", {})
    if not isinstance(keymap, dict) or not all(isinstance(v, str) for v in keymap.values()):
        raise UserError(f"{locations.config_file}: [keys] maps binding ids to keys, as strings")
    bandwidth = choose_bandwidth(args.bandwidth or str(config.get("bandwidth", "auto")))
    graphics = choose_graphics(args.graphics or str(config.get("graphics", "auto")), tty_fd=_tty())
    if graphics in ("ascii", "none"):
        graphics = "halfblock"  # the app draws in cells; text art is for printing
    app = PacsApp(
        archive,
        bandwidth,
        config_dir=locations.config_dir,
        theme=args.theme or config.get("theme"),
        privacy=private(args, locations),
        keymap=keymap,
        cache_mb=_cache_mb(locations),
        graphics=graphics,
        cell=cell_size(_tty()) if graphics in PROTOCOLS else None,
        tmux="TMUX" in os.environ,
    )
    app.run()
    return 0


# -- triage ------------------------------------------------------------------------------


def cmd_triage(args: argparse.Namespace, locations: Locations) -> int:
    from dataclasses import asdict

    from tui.archive import triage

    archive = _open(locations, create=False)
    if args.export:
        out = Path(args.export)
        text = triage.export(archive, out.suffix.lower().lstrip("."))
        out.write_text(text, encoding="utf-8")
        return _done(args.export)
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
        _print_json({"StudyInstanceUID": args.study, **asdict(state)})
    else:
        print(f"{args.study}: {state.marks().strip() or 'not triaged'} {state.note}".rstrip())
    return 0
