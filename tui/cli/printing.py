"""``print``: series (or one view of them) on a DICOM printer, as film, through the Basic
Grayscale Print Management service (:mod:`tui.net.printing` does the DIMSE side); and
``print PRINTER --status``, the printer's own word on itself.

The images are chosen by the view options of ``render``/``export`` (one view with
``--index``/``--position``, an oblique plane, a volume rendering or a projection without a
slab; else every Nth plane as on a contact sheet), rendered by :mod:`tui.render.print_images`.
Each series is laid out on films of its own, with its own annotation text: two series (two
patients) never share a film. ``--from-film K`` sends films K to the last of that layout.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from typing import Any

from tui.cli.common import Commands, print_json, settings
from tui.cli.render import _request, _stacks, _view_options
from tui.config import Locations
from tui.errors import UserError
from tui.tables import printable

# A film's settings: (the flag of ``print``, the flag of ``node add/edit --printer``, its
# argparse keywords). A node stores them under its flag's name (film_orientation, print_bits).
FILM_OPTIONS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("--film-size", "--film-size", {"type": str.upper, "metavar": "ID",
     "help": "FilmSizeID: 8INX10IN, 14INX17IN, 24CMX30CM, A4..."}),
    ("--orientation", "--film-orientation", {"type": str.upper, "metavar": "O",
     "choices": ("PORTRAIT", "LANDSCAPE"), "help": "FilmOrientation: PORTRAIT or LANDSCAPE"}),
    ("--medium", "--medium", {"type": str.upper,
     "help": "MediumType: PAPER, CLEAR FILM, BLUE FILM..."}),
    ("--destination", "--film-destination", {"type": str.upper, "metavar": "WHERE",
     "help": "FilmDestination: MAGAZINE, PROCESSOR, BIN_i"}),
    ("--magnification", "--magnification", {"type": str.upper, "metavar": "HOW",
     "help": "MagnificationType: REPLICATE, BILINEAR, CUBIC, NONE"}),
    ("--max-density", "--max-density", {"type": int, "metavar": "N",
     "help": "MaxDensity, hundredths of optical density"}),
    ("--min-density", "--min-density", {"type": int, "metavar": "N",
     "help": "MinDensity, hundredths of optical density"}),
    ("--copies", "--copies", {"type": int, "metavar": "N", "help": "NumberOfCopies (1 to 99)"}),
    ("--bits", "--print-bits", {"type": int, "choices": (8, 12),
     "help": "bits a pixel sent (default: 12 where the printer takes them, else 8)"}),
    ("--annotation-format", "--annotation-format", {"type": str.upper, "metavar": "ID",
     "help": "AnnotationDisplayFormatID, as the printer's manual names it: its annotation "
     "boxes get the patient, study and series (default: no text on the film)"}),
)  # fmt: skip


def add_film_options(group: Any, for_node: bool) -> None:
    """The film's settings on ``print`` (``for_node`` False) or on a printer node."""
    for print_flag, node_flag, keywords in FILM_OPTIONS:
        group.add_argument(node_flag if for_node else print_flag, **keywords)


def add_commands(commands: Commands) -> None:
    """Register ``print`` on ``commands``."""
    p = commands.add_parser(
        "print",
        help="print series, or a view of them, on a DICOM printer (film or paper)",
        description="Print on a DICOM printer node (node add NAME AET HOST PORT --printer): "
        "every Nth plane of each series as on a contact sheet, or one view (--index, "
        "--position, --normal, --mode vr, a projection without --slab), laid out C,R "
        "images a film; each series on films of its own, with its own text.",
    )
    p.add_argument("printer", metavar="PRINTER", help="a printer node (node add --printer)")
    p.add_argument(
        "uids", nargs="*", metavar="UID",
        help="SeriesInstanceUIDs (or NIfTI, NRRD, picture files), printed in this order",
    )  # fmt: skip
    _view_options(p, series=False)
    p.add_argument(
        "--every", type=int, metavar="N",
        help="every Nth plane (default: as the contact sheet, at most 60 images a series; "
        "not with one view, nor a projection without --slab, which is one image)",
    )  # fmt: skip
    p.add_argument(
        "--layout", type=_layout, metavar="C,R",
        help="columns,rows of images a film (STANDARD\\C,R; default: the smallest of 1,1 "
        "1,2 2,2 2,3 3,3 3,4 3,5 4,5 that holds them, else 4,5 on several films)",
    )  # fmt: skip
    p.add_argument(
        "--from-film", type=int, metavar="K",
        help="print films K to the last only (as numbered when all are laid out: to go on "
        "after a stopped or failed job)",
    )  # fmt: skip
    film = p.add_argument_group("film (default: the printer node's, else the printer's own)")
    add_film_options(film, for_node=False)
    film.add_argument(
        "--no-presentation-lut", action="store_true",
        help="send no IDENTITY Presentation LUT (else one where the printer offers it)",
    )  # fmt: skip
    p.add_argument(
        "--no-phi", action="store_true",
        help="no patient name or ID on the film (annotation boxes, film session label)",
    )  # fmt: skip
    p.add_argument(
        "--status", action="store_true", help="ask the printer how it is (N-GET Printer)"
    )
    p.add_argument(
        "--json", action="store_true",
        help="what the printer answered, DICOM keywords as keys",
    )  # fmt: skip
    p.set_defaults(handler=cmd_print)


def _layout(text: str) -> tuple[int, int] | None:
    from tui.net.printing.job import parse_layout

    try:
        return parse_layout(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_print(args: argparse.Namespace, locations: Locations) -> int:
    from tui.net.nodes import get_node
    from tui.net.printing.job import MAX_COPIES, MAX_DENSITY

    node = get_node(locations.config_file, args.printer)
    if not node.printer:  # not `node edit --printer`: that would end its find, get and send
        raise UserError(
            f"{node.name} is no printer: add the printer as its own node: "
            "pacs-tui node add NAME AET HOST PORT --printer"
        )
    if args.status:
        if args.uids:
            raise UserError("--status asks the printer only: leave the UIDs out")
        return _status(node, args.json)
    if not args.uids:
        raise UserError(f"print {node.name} UID... (the series to print), or --status")
    for flag, value, low, high in (  # by the flag's name, before anything is rendered
        ("--every", args.every, 1, None),
        ("--from-film", args.from_film, 1, None),
        ("--copies", args.copies, 1, MAX_COPIES),
        ("--max-density", args.max_density, 0, MAX_DENSITY),
        ("--min-density", args.min_density, 0, MAX_DENSITY),
    ):
        if value is not None and (value < low or (high is not None and value > high)):
            raise UserError(
                f"{flag} must be {low} or more, not {value}"
                if high is None
                else f"{flag} must be {low} to {high}, not {value}"
            )
    return _print(node, args, locations)


def _status(node: Any, as_json: bool) -> int:
    from tui.net.printing import printer_status

    status = printer_status(node)
    if as_json:
        print_json(
            {"node": node.name, "address": node.address, "PrinterStatus": status.status,
             "PrinterStatusInfo": status.info, "words": status.words,
             "attributes": status.attributes}
        )  # fmt: skip
    else:
        print(f"{status.status}: {node.name} ({node.address}) {status.words}")
    return 1 if status.status == "FAILURE" else 0


def _print(node: Any, args: argparse.Namespace, locations: Locations) -> int:
    import threading

    from tui.cli.common import interrupt_sets
    from tui.net.printing import PrintImage, lay_out, print_films, result_json, settings_for

    overrides = {
        "film_size": args.film_size, "orientation": args.orientation, "medium": args.medium,
        "destination": args.destination, "magnification": args.magnification,
        "max_density": args.max_density, "min_density": args.min_density,
        "copies": args.copies, "bits": args.bits,
        "presentation_lut": False if args.no_presentation_lut else None,
        "annotation_format": args.annotation_format or node.annotation_format or None,
    }  # fmt: skip
    film_settings = settings_for(
        node, label="pacs-tui", **{k: v for k, v in overrides.items() if v is not None}
    )
    films = []
    for pixels, text in _render(args, locations, 8 if film_settings.bits == 8 else 12):
        # each series on films of its own, with its own text: never two patients on a film
        images = [PrintImage(grey8, grey12, aspect) for grey8, grey12, aspect in pixels]
        films += lay_out(images, text, args.layout)
    start = (args.from_film or 1) - 1
    if start >= len(films):
        raise UserError(
            f"--from-film {args.from_film}: this job is {_count(len(films), 'film')}, "
            f"so {len(films)} at most"
        )

    def on_event(event: Any) -> None:  # the printer's word: always, a line each
        _progress("")
        print(f"{event.event}: {event.words}", file=sys.stderr, flush=True)

    cancel = threading.Event()
    try:
        with interrupt_sets(cancel):
            result = print_films(
                node, films, film_settings, progress=_progress, on_event=on_event,
                cancel=cancel, start=start,  # numbered as laid out: "film 3 of 5"
            )  # fmt: skip
    except UserError as exc:
        partial = getattr(exc, "result", None)
        if args.json and partial is not None:  # what did print, for a script to go on from
            print_json({**result_json(partial), "error": str(exc)})
        raise
    finally:
        _progress("")
    if args.json:
        print_json(result_json(result))
    else:
        for warning in result.warnings:
            print(f"pacs-tui: warning: {warning}", file=sys.stderr)
        print(_summary(node, result, films, start))
    if result.cancelled:
        return 130  # as an interrupted command: what was not printed is in the warnings
    return 0 if result.films == len(films) - start else 1


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _summary(node: Any, result: Any, films: list[Any], start: int) -> str:
    """The line a print ends with: films and images printed, how, on which printer; after a
    stop, how far it got (not a success)."""
    sent = films[start:]
    asked = len(sent)
    images = sum(len(film.images) for film in sent)
    layouts = list(dict.fromkeys(f"{film.columns},{film.rows}" for film in sent))
    layout = f"{' or '.join(layouts)} a film"
    if start:  # --from-film: which films of the job these were
        which = f"film {start + 1}" if asked == 1 else f"films {start + 1} to {len(films)}"
        layout += f"; {which} of {len(films)}"
    copies = "" if result.copies == 1 else f", {result.copies} copies"
    lut = ", with a Presentation LUT" if result.presentation_lut else ""
    how = f"on {node.name}{copies}, {result.bits} bits{lut}"
    if result.cancelled or result.films < asked:
        stopped = "stopped" if result.cancelled else "not all printed"
        return (
            f"{stopped}: printed {result.films} of {_count(asked, 'film')} "
            f"({_count(images, 'image')}, {layout}) {how}"
        )
    return f"printed {_count(result.films, 'film')} of {_count(images, 'image')} ({layout}) {how}"


def _progress(line: str) -> None:
    """One step on a terminal's stderr, each over the last ("" clears it); nothing when
    stderr is piped, so a script sees the result, or the error in one line."""
    if sys.stderr.isatty():
        width = shutil.get_terminal_size().columns - 1  # one row, or \r cannot take it back
        sys.stderr.write(f"\r{printable(line)[:width]}\x1b[K" if line else "\r\x1b[K")
        sys.stderr.flush()


def _render(
    args: argparse.Namespace, locations: Locations, bits: int
) -> list[tuple[list[Any], list[str]]]:
    """Each UID's images in order (grey8, grey12, aspect) with its own films' text (patient,
    study, series: :func:`tui.render.print_images.annotation_lines` of its first view)."""
    from tui.render.pipeline import VR_MODES, pick_stack, time_points
    from tui.render.presets import load_presets
    from tui.render.print_images import annotation_lines, one_view, print_images
    from tui.render.transfer import load_transfers
    from tui.render.volume import VolumeCache

    args.stack = args.stack or 0
    args.size = None  # a volume rendering is rendered for paper by print_images
    request = _request(args)
    if args.every is not None and one_view(request):
        raise UserError("--every steps through a series: not with one view (--index, "
                        "--position, --normal, --mode vr or smip, a projection without "
                        "--slab: it is the whole volume's, one image)")  # fmt: skip
    presets = load_presets(locations.config_dir)
    transfers = load_transfers(locations.config_dir) if request.mode in VR_MODES else None
    cache = VolumeCache(settings(args, locations).cache_mb)
    series: list[tuple[list[Any], list[str]]] = []
    for number, uid in enumerate(args.uids, 1):
        args.series = uid
        stacks = _stacks(args, locations)
        stack = pick_stack(stacks, args.stack)
        over = time_points(stacks, args.stack) if request.over_time else ()
        first, pixels = print_images(
            stack, request, presets, cache, every=args.every, bits=bits, time_points=over,
            transfers=transfers,
        )  # fmt: skip
        series.append((pixels, annotation_lines(first, args.no_phi)))
        _progress(f"rendered series {number} of {len(args.uids)}: {_count(len(pixels), 'image')}")
    return series
