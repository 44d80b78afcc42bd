"""The network commands: ``find``, ``get``, ``send``, ``receive`` and ``serve``.

The handlers are thin: the work is done in :mod:`tui.net`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import Counter
from typing import Any

from tui.cli.common import Commands, open_archive, print_json, settings, wait_until_stopped
from tui.cli.share import add_anonymize_options, anonymize_options, deidentifier
from tui.config import Locations
from tui.errors import UserError
from tui.tables import cell_width, clip, printable

LEVELS = ("patient", "study", "series", "image")


def add_commands(commands: Commands) -> None:
    """Register ``find``, ``get``, ``send``, ``receive`` and ``serve`` on ``commands``."""

    p = commands.add_parser(
        "find", help="query a node (C-FIND, or QIDO-RS on a DICOMweb node); results print as "
        "they come",
    )  # fmt: skip
    p.add_argument("node", metavar="NODE")
    p.add_argument("--level", choices=LEVELS, default="study")
    p.add_argument(
        "-k", "--key", action="append", default=[], metavar="KEYWORD=VALUE",
        help="match (wildcards * ?, date ranges A-B) or, without a value, return a key",
    )  # fmt: skip
    p.add_argument(
        "--model", choices=("study", "patient"), default="study",
        help="the query model (DIMSE nodes; DICOMweb has the study model only)",
    )  # fmt: skip
    p.add_argument(
        "--limit", type=int, metavar="N",
        help="stop after N results (C-CANCEL; QIDO-RS: asked as its limit)",
    )  # fmt: skip
    p.add_argument(
        "--split-days", type=int, metavar="DAYS",
        help="query a StudyDate range DAYS at a time, for PACS that cut long answers short",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="a JSON array, keyed by DICOM keyword")
    p.set_defaults(handler=cmd_find)

    p = commands.add_parser(
        "get", help="retrieve a study or series into the archive (C-GET or C-MOVE; WADO-RS on "
        "a DICOMweb node); resumes, asking only what is missing",
    )  # fmt: skip
    p.add_argument("node", metavar="NODE")
    p.add_argument(
        "--study", required=True, action="append", metavar="UID",
        help="a study to retrieve (repeat for several)",
    )  # fmt: skip
    p.add_argument("--series", metavar="UID", help="only this series (of one --study)")
    p.add_argument(
        "--method", choices=("get", "move"),
        help="C-GET or C-MOVE, DIMSE nodes only (default: the node's method)",
    )  # fmt: skip
    p.add_argument(
        "--model", choices=("study", "patient"), default="study",
        help="the query/retrieve model, DIMSE nodes only",
    )  # fmt: skip
    p.add_argument(
        "--port", type=int,
        help="our storage port for C-MOVE, DIMSE nodes only (default: config, else 11112)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="the summary as JSON")
    p.set_defaults(handler=cmd_get)

    p = commands.add_parser(
        "send", help="send studies, series or instances (C-STORE, or STOW-RS to a DICOMweb node)"
    )
    p.add_argument("node", metavar="NODE")
    p.add_argument("uids", nargs="+", metavar="UID", help="Study, Series or SOP Instance UIDs")
    p.add_argument("--json", action="store_true", help="the summary as JSON")
    add_anonymize_options(p)
    p.set_defaults(handler=cmd_send)

    p = commands.add_parser("receive", help="a storage SCP: file what is sent to us")
    _listen_options(p, default_port=None)
    p.set_defaults(handler=cmd_receive)

    p = commands.add_parser("serve", help="serve the archive as a mini-PACS (Q/R SCP)")
    _listen_options(p, default_port=None)
    p.set_defaults(handler=cmd_serve)


def _listen_options(p: argparse.ArgumentParser, default_port: int | None) -> None:
    p.add_argument("--aet", help="our AE title (default: config [receiver] aet, else PACSTUI)")
    p.add_argument("--port", type=int, default=default_port, help="default: config, else 11112")
    p.add_argument("--host", default="", help="address to listen on (default: all)")
    p.add_argument("--allow", metavar="AET,AET", help="only these calling AE titles (default: any)")
    p.add_argument("--tls-cert", metavar="PEM", help="our certificate (TLS on)")
    p.add_argument("--tls-key", metavar="PEM", help="its private key")
    p.add_argument("--tls-ca", metavar="PEM", help="callers must show a certificate it signed")


# -- find ------------------------------------------------------------------------------


# What a find shows per level when no -k names return keys, in this order.
COLUMNS = {
    "patient": [("PatientName", 28), ("PatientID", 16), ("PatientBirthDate", 10),
                ("PatientSex", 3), ("NumberOfPatientRelatedStudies", 7)],
    "study": [("PatientName", 24), ("PatientID", 14), ("StudyDate", 8),
              ("ModalitiesInStudy", 8), ("AccessionNumber", 12), ("StudyDescription", 28),
              ("NumberOfStudyRelatedInstances", 6), ("StudyInstanceUID", 0)],
    "series": [("SeriesNumber", 5), ("Modality", 4), ("SeriesDescription", 30),
               ("NumberOfSeriesRelatedInstances", 6), ("SeriesInstanceUID", 0)],
    "image": [("InstanceNumber", 6), ("SOPClassUID", 28), ("SOPInstanceUID", 0)],
}  # fmt: skip


# Column headings for the keywords above, short enough for their columns.
HEADINGS = {
    "PatientName": "Name", "PatientID": "ID", "PatientBirthDate": "Born", "PatientSex": "Sex",
    "NumberOfPatientRelatedStudies": "Studies", "StudyDate": "Date", "ModalitiesInStudy": "Mods",
    "AccessionNumber": "Accession", "StudyDescription": "Description",
    "NumberOfStudyRelatedInstances": "Images", "SeriesNumber": "No.", "Modality": "Mod",
    "SeriesDescription": "Description", "NumberOfSeriesRelatedInstances": "Images",
    "InstanceNumber": "No.", "SOPClassUID": "SOP class",
}  # fmt: skip


def parse_keys(pairs: list[str]) -> dict[str, str]:
    """``-k`` options as C-FIND keys: dates as people type them (2024, 7d, today, ranges)
    become DICOM date ranges, and UIDs are checked, before anything goes to the PACS."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    from tui.archive.query import check_uid
    from tui.net.typed import date_range, modalities

    keys: dict[str, str] = {}
    for pair in pairs:
        keyword, _, value = (part.strip() for part in pair.partition("="))
        if not keyword:
            raise UserError(f"-k {pair!r}: expected KEYWORD=VALUE (PatientName=SMITH*) or KEYWORD")
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise UserError(f"-k {pair}: {keyword!r} is not a DICOM keyword (e.g. PatientName)")
        vr = dictionary_VR(tag)
        if value and vr == "DA":
            value = date_range(value)
        elif value and keyword in ("Modality", "ModalitiesInStudy"):
            value = modalities(value)
        elif value and vr == "UI":
            try:
                for uid in value.split("\\"):
                    check_uid(uid, "k")
            except UserError:
                raise UserError(f"-k {pair}: {value!r} is not a UID (nor a list of UIDs)") from None
        keys[keyword] = value
    return keys


def cmd_find(args: argparse.Namespace, locations: Locations) -> int:
    from tui.net.find import find, find_split
    from tui.net.nodes import get_node, not_a_printer
    from tui.privacy import masked

    node = not_a_printer(get_node(locations.config_file, args.node), "find")
    keys = parse_keys(args.key)
    if args.limit is not None and args.limit <= 0:
        raise UserError("--limit must be 1 or more")
    columns = COLUMNS[args.level]
    for keyword, _ in columns:
        keys.setdefault(keyword, "")
    if args.split_days is not None and args.split_days <= 0:
        raise UserError("--split-days must be 1 or more")
    if args.split_days:
        results = find_split(node, args.level, keys, args.split_days, model=args.model,
                             limit=args.limit)  # fmt: skip
    else:
        results = find(node, args.level, keys, model=args.model, limit=args.limit)
    widths = dict(columns) | {k: 16 for k in keys if k not in dict(columns)}
    table = StreamTable(widths, sys.stdout.isatty() and shutil.get_terminal_size().columns)
    count = 0
    started = time.monotonic()
    out = sys.stdout
    try:
        if args.json:
            out.write("[")
        hide = settings(args, locations).privacy
        for result in results:
            result = masked(result, hide)
            if args.json:
                out.write(("," if count else "") + "\n " + json.dumps(result, ensure_ascii=False))
            else:
                out.write(table.lines(result, header=not count))
            out.flush()  # a result is on screen as soon as it arrives
            count += 1
    finally:
        results.close()  # Ctrl-C while printing still sends the C-CANCEL, at once
        if args.json:
            out.write("\n]\n")
    if not args.json:
        elapsed = time.monotonic() - started
        print(f"{count} result(s) from {node.name} in {elapsed:.2f} s", file=sys.stderr)
    return 0


class StreamTable:
    """Results as fixed-width columns, printed as they arrive (so widths cannot be fitted
    to the data): fitted to the terminal instead. UIDs are never cut: when they do not
    fit on the line, they go on their own line below it. ``headings``: keyword to column
    heading (default :data:`HEADINGS`; a keyword without one is its own heading)."""

    MIN_WIDTH = 6

    def __init__(
        self,
        widths: dict[str, int],
        terminal_columns: int | bool,
        headings: dict[str, str] | None = None,
    ) -> None:
        from pydicom.datadict import dictionary_VR, tag_for_keyword

        def is_uid(keyword: str) -> bool:
            tag = tag_for_keyword(keyword)
            return tag is not None and dictionary_VR(tag) == "UI" and keyword != "SOPClassUID"

        self.headings = HEADINGS if headings is None else headings
        self.uids = [k for k in widths if is_uid(k)]
        self.widths = {k: w or 16 for k, w in widths.items() if k not in self.uids}
        self.uids_below = False
        if terminal_columns:
            room = int(terminal_columns) - 1
            needed = sum(self.widths.values()) + 2 * len(self.widths) + 66 * len(self.uids)
            if needed > room and self.uids:
                self.uids_below = True
            self._fit(room - (0 if self.uids_below else 66 * len(self.uids)))

    def _fit(self, room: int) -> None:
        """Narrow the widest columns first until the line fits in ``room`` cells."""
        while sum(self.widths.values()) + 2 * (len(self.widths) - 1) > room:
            widest = max(self.widths, key=lambda k: self.widths[k])
            if self.widths[widest] <= self.MIN_WIDTH:
                return
            self.widths[widest] -= 1

    def lines(self, values: dict[str, str], header: bool = False) -> str:
        text = ""
        if header:
            text = self.lines({k: self.headings.get(k, k) for k in [*self.widths, *self.uids]})
        cells = []
        for key, width in self.widths.items():
            cell = clip(printable(str(values.get(key, ""))), width)
            cells.append(cell + " " * (width - cell_width(cell)))
        uids = [printable(str(values.get(k, ""))) for k in self.uids]
        if self.uids_below:
            return text + "  ".join(cells).rstrip() + "".join(f"\n  {u}" for u in uids) + "\n"
        return text + "  ".join([*cells, *uids]).rstrip() + "\n"


# -- get and send ------------------------------------------------------------------------


def _port(value: int, option: str = "--port") -> int:
    if not 0 < value < 65536:
        raise UserError(f"{option} {value}: not a port number (1-65535)")
    return value


def cmd_get(args: argparse.Namespace, locations: Locations) -> int:
    from tui.archive.query import check_uid
    from tui.net.nodes import get_node, not_a_printer, receiver_settings
    from tui.net.scu import Transfer, retrieve

    node = not_a_printer(get_node(locations.config_file, args.node), "get")
    for uid in [*args.study, args.series or ""]:
        check_uid(uid, "study" if uid != args.series else "series")
    if args.series and len(args.study) > 1:
        raise UserError("--series goes with one --study")
    open_archive(locations, create=True).close()  # the archive exists before anything arrives
    port = _port(args.port) if args.port else receiver_settings(locations.config_file)["port"]
    live = sys.stderr.isatty()
    last = [0.0]

    def progress(transfer: Transfer) -> None:
        now = time.monotonic()
        if live and now - last[0] > 0.1:
            last[0] = now
            sys.stderr.write("\r" + _progress_line(transfer) + "\x1b[K")
            sys.stderr.flush()

    summaries = []
    for study in dict.fromkeys(args.study):  # each once, in the order given
        try:
            transfer = retrieve(
                node, locations.archive, study, args.series, method=args.method,
                model=args.model, progress=progress, receive_port=port,
            )  # fmt: skip
        except KeyboardInterrupt:
            print(
                "\npacs-tui: interrupted: what arrived is in the archive; the same command "
                "resumes", file=sys.stderr,
            )  # fmt: skip
            return 130
        if live:
            sys.stderr.write("\r\x1b[K")
        summaries.append(_get_summary(study, transfer))
        if not args.json:
            _print_get(transfer)
    totals = {
        key: sum(s[key] for s in summaries) for key in ("new", "already_present", "bytes")
    } | {"failed": sum(s["failed"] for s in summaries)}
    if args.json:
        print_json({"node": node.name, **totals, "studies": summaries})
    return 1 if totals["failed"] else 0


def _get_summary(study: str, transfer: Any) -> dict[str, Any]:
    tally = transfer.tally
    return {
        "StudyInstanceUID": study, "new": tally.new,
        "already_present": transfer.present,
        "failed": transfer.failed, "bytes": tally.bytes,
        "seconds": round(time.monotonic() - tally.started, 3),
        "errors": tally.errors, "warnings": transfer.warnings,
    }  # fmt: skip


def _print_get(transfer: Any) -> None:
    if transfer.expected == 0:
        print(f"nothing to retrieve: all {transfer.skipped} instances are already here")
    else:
        print(_progress_line(transfer) + f", {transfer.skipped} already here")
    # Each reason once, with its count: a PACS refusing 300 instances says why once.
    for line, count in Counter(transfer.tally.errors + transfer.warnings).items():
        print(f"  {line}" + (f" ({count} instances)" if count > 1 else ""), file=sys.stderr)


def _progress_line(transfer: Any) -> str:
    tally = transfer.tally
    of = f"/{transfer.expected}" if transfer.expected is not None else ""
    elapsed = time.monotonic() - tally.started
    return (
        f"{tally.received}{of} instances, {tally.bytes / 1e6:.1f} MB in {elapsed:.1f} s "
        f"({tally.megabytes_per_second:.1f} MB/s)"
        + (f", {tally.failed} failed" if tally.failed else "")
    )


def cmd_send(args: argparse.Namespace, locations: Locations) -> int:
    from tui.archive.holdings import files_of
    from tui.net.nodes import get_node, not_a_printer
    from tui.net.scu import Sent, send

    options = anonymize_options(args)
    node = not_a_printer(get_node(locations.config_file, args.node), "send")
    deid = deidentifier(args, locations)
    archive = open_archive(locations, create=False)
    files = files_of(archive, args.uids)
    transform = None
    if deid is not None and options is not None:
        from tui.archive.deid.verify import checked

        transform = checked(deid.apply, options)
    live = sys.stderr.isatty()

    def progress(sent: Sent, total: int) -> None:
        if live:
            sys.stderr.write(f"\r{sent.sent}/{total} sent, {sent.bytes / 1e6:.1f} MB\x1b[K")
            sys.stderr.flush()

    started = time.monotonic()
    try:
        result = send(node, files, progress, transform=transform)
    except KeyboardInterrupt:
        print("\npacs-tui: interrupted: some instances may have been sent", file=sys.stderr)
        return 130
    if live:
        sys.stderr.write("\r\x1b[K")
    summary = {
        "node": node.name, "sent": result.sent, "transcoded": result.transcoded,
        "failed": result.failed, "refused": result.refused, "bytes": result.bytes,
        "seconds": round(time.monotonic() - started, 3), "deidentified": transform is not None,
    }  # fmt: skip
    if args.json:
        print_json(summary)
    else:
        extra = (
            f" ({result.transcoded} decoded to a syntax it accepts)" if result.transcoded else ""
        )
        deidentified = ", de-identified" if transform is not None else ""
        print(f"{result.sent}/{len(files)} instances sent to {node.name}{deidentified}{extra}")
        for line in result.failed:
            print(f"  {line}", file=sys.stderr)
        for line in result.refused:
            print(f"  refused {line}", file=sys.stderr)
    return 1 if result.failed or result.refused else 0


# -- receive and serve -------------------------------------------------------------------


def _listening(args: argparse.Namespace, locations: Locations) -> dict[str, Any]:
    """AE title, port, allow-list and TLS for our SCPs, from options then config.toml."""
    from tui.net.nodes import check_aet, receiver_settings

    settings = receiver_settings(locations.config_file)
    aet = check_aet(args.aet or str(settings.get("aet", "PACSTUI")), "--aet")
    port = args.port if args.port is not None else settings["port"]
    if not 0 <= port < 65536:
        raise UserError(f"--port {port}: not a port number")
    allow_text = args.allow if args.allow is not None else ",".join(settings["allow"])
    allow = {check_aet(a.strip(), "--allow") for a in allow_text.split(",") if a.strip()}
    ssl_context = None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            raise UserError("--tls-cert and --tls-key go together")
        from tui.net.tls import server_context

        ssl_context = server_context(args.tls_cert, args.tls_key, args.tls_ca or "")
    return {"aet": aet, "port": port, "allow": allow or None, "ssl_context": ssl_context}


def cmd_receive(args: argparse.Namespace, locations: Locations) -> int:
    from tui.net.receiver import Receiver

    settings = _listening(args, locations)
    open_archive(locations, create=True).close()
    receiver = Receiver(
        locations.archive, settings["aet"], args.host, settings["port"], settings["allow"],
        settings["ssl_context"], on_filed=_count_line, on_event=_event_line,
    )  # fmt: skip
    try:
        receiver.start()
    except OSError as exc:
        raise UserError(f"cannot listen on port {settings['port']}: {exc.strerror}") from None
    _until_stopped(receiver, "receiving", settings)
    tally = receiver.tally
    print(f"\n{tally.new} new, {tally.present} already here, {tally.failed} failed")
    return 0


def _event_line(line: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    sys.stdout.write(("\r\x1b[K" if sys.stdout.isatty() else "") + f"{stamp} {line}\n")
    sys.stdout.flush()


def _count_line(tally: Any) -> None:
    if sys.stderr.isatty():
        sys.stderr.write(f"\r{tally.new} new, {tally.present} already here\x1b[K")
        sys.stderr.flush()


def cmd_serve(args: argparse.Namespace, locations: Locations) -> int:
    from tui.net.server import MiniPacs

    settings = _listening(args, locations)
    open_archive(locations, create=True).close()
    server = MiniPacs(
        locations.archive, aet=settings["aet"], host=args.host, port=settings["port"],
        destinations=move_destinations(locations), allow=settings["allow"],
        ssl_context=settings["ssl_context"],
    )  # fmt: skip
    server.start()  # a port it cannot bind is a UserError, one line
    _until_stopped(server, "serving the archive", settings)
    return 0


def _until_stopped(service: Any, doing: str, settings: dict[str, Any]) -> None:
    """Say where a started SCP listens, run it until Ctrl-C or SIGTERM, stop it."""
    tls = " over TLS" if settings["ssl_context"] else ""
    print(f"{doing} as {settings['aet']} on port {service.port}{tls}; Ctrl-C stops", flush=True)
    try:
        wait_until_stopped()
    finally:
        service.stop()


def move_destinations(locations: Locations) -> dict[str, tuple[str, int]]:
    """Where C-MOVE may send: every configured DIMSE node, by its AE title."""
    from tui.net.nodes import load_nodes

    nodes = load_nodes(locations.config_file).values()
    return {n.aet: (n.host, n.port) for n in nodes if not n.dicomweb and not n.printer}
