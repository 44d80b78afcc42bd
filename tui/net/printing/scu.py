"""The Print SCU: Basic Grayscale Print Management with pynetdicom.

One association prints films one after another: N-GET the printer's status (a printer that
reports FAILURE gets no job), N-CREATE an IDENTITY Presentation LUT where the printer offers
the class, N-CREATE the film session, then per film N-CREATE its film box, N-SET its image
boxes (and annotation boxes) and N-ACTION it, and N-DELETE the session at the end.

Never a job twice: a film is printed by its film box's N-ACTION. An association that drops
before a film's N-ACTION was sent is retried on a new one (a new film session) from that
film; once the N-ACTION was sent, nothing is resent, and the error says the printer may have
printed that film. Nothing here logs patient data (annotation text) at any level.

A cancel stops between steps, or aborts the association at once while we wait for a printer
that does not answer (``_Watch``); a refusal releases the association, a broken link or an
interrupt aborts it. pynetdicom's DUL thread is no daemon, so no path leaves one running.

One module past 600 lines: the steps of a job share one association, one film session and
the retry's bookkeeping (which film was last sent to N-ACTION), all held by ``_Job``;
the words for statuses live in ``words.py`` and the job's data in ``job.py``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tui.errors import UserError
from tui.net import errors
from tui.net.nodes import Node
from tui.net.printing.job import (
    Film,
    FilmSettings,
    PrinterEvent,
    PrintError,
    PrinterStatus,
    PrintImage,
    PrintResult,
    check_films,
    check_settings,
    dataset_json,
)
from tui.net.printing.words import (
    JOB_EVENTS,
    NO_GRAYSCALE_PRINT,
    NO_GRAYSCALE_PRINT_FIX,
    PRINTER_EVENTS,
    info_words,
    job_words,
    print_status,
    status_words,
)
from tui.net.tls import client_context

if TYPE_CHECKING:
    from pydicom.dataset import Dataset
    from pynetdicom.association import Association

log = logging.getLogger(__name__)

META = "1.2.840.10008.5.1.1.9"  # Basic Grayscale Print Management Meta SOP Class
FILM_SESSION = "1.2.840.10008.5.1.1.1"
FILM_BOX = "1.2.840.10008.5.1.1.2"
IMAGE_BOX = "1.2.840.10008.5.1.1.4"  # Basic Grayscale Image Box
ANNOTATION_BOX = "1.2.840.10008.5.1.1.15"
PRESENTATION_LUT = "1.2.840.10008.5.1.1.23"
PRINTER = "1.2.840.10008.5.1.1.16"
PRINTER_INSTANCE = "1.2.840.10008.5.1.1.17"  # the Printer's well-known SOP instance
PRINT_JOB = "1.2.840.10008.5.1.1.14"
PRINTER_STATUS, PRINTER_STATUS_INFO = 0x21100010, 0x21100020
PEER = "printer"  # how tui.net.errors names the other end in its words
HANG_UP = 1.0  # seconds an abort waits for the peer to close before closing itself

Progress = Callable[[str], None]
OnEvent = Callable[[PrinterEvent], None]

# Film box attributes a user may set, in the order a refusal is probed: (keyword, setting).
_FILM_BOX_SETTINGS = (
    ("FilmSizeID", "film_size"),
    ("FilmOrientation", "orientation"),
    ("MagnificationType", "magnification"),
    ("MaxDensity", "max_density"),
    ("MinDensity", "min_density"),
)
_SESSION_SETTINGS = (
    ("NumberOfCopies", "copies"),
    ("MediumType", "medium"),
    ("FilmDestination", "destination"),
    ("FilmSessionLabel", "label"),
)


class _Dropped(Exception):
    """The association went away (or the printer stopped answering) during ``during``."""

    def __init__(self, during: str, after_action: bool) -> None:
        super().__init__(during)
        self.during = during
        self.after_action = after_action


# -- associations ----------------------------------------------------------------------------


def _contexts() -> list[Any]:
    from tui.net.contexts import UNCOMPRESSED, context

    # The Print Job SOP Class is no part of the Meta SOP Class (PS3.4 H.3.1, H.4.5): without
    # its own context a printer cannot send the job's events (PENDING ... DONE, FAILURE).
    uids = (META, PRESENTATION_LUT, ANNOTATION_BOX, PRINT_JOB)
    return [context(uid, UNCOMPRESSED) for uid in uids]


@contextmanager
def _associate(
    node: Node,
    on_report: Callable[[Any], Any] | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[Association]:
    """An association with the printer offering the print classes: released after the job or
    a refusal (the link is fine), aborted when the link broke or on ``cancel`` (at once, even
    while the printer does not answer: see :class:`_Watch`)."""
    from pynetdicom import evt

    from tui.net.scu import make_ae

    if node.dicomweb:
        raise PrintError(f"{node.name} is a DICOMweb node: printing needs a DICOM printer node")
    ae = make_ae(node)
    ae.requested_contexts = _contexts()
    watch = _Watch(cancel)
    # pynetdicom waits out the whole DIMSE timeout for an answer even when the connection has
    # closed under it: wake the wait at once, so a dropped printer is retried (or reported)
    # in a moment rather than minutes later.
    handlers: list[Any] = [
        (evt.EVT_CONN_CLOSE, _wake),
        (evt.EVT_ABORTED, _wake),
        (evt.EVT_REQUESTED, watch.requested),
    ]
    if on_report is not None:
        handlers.append((evt.EVT_N_EVENT_REPORT, on_report))
    tls = (client_context(node), node.host) if node.tls else None
    started = time.monotonic()
    watch.start()
    try:
        try:
            assoc = ae.associate(
                node.host, node.port, ae_title=node.aet, tls_args=tls, evt_handlers=handlers
            )
        except BaseException:  # an interrupt while negotiating: stop pynetdicom's thread too
            if watch.assoc is not None:  # (its DUL thread is no daemon: it would hold the exit)
                with suppress(Exception):
                    _hang_up(watch.assoc)
            raise
        if not assoc.is_established:
            if cancel is not None and cancel.is_set():
                raise _Cancelled
            raise _not_established(node, assoc, time.monotonic() - started)
        _no_delay(assoc)
        try:
            if not _accepted(assoc, META):
                raise _no_print(node)
            yield assoc
        except PrintError:  # a refusal: the association is fine, so end it as a job ends
            if assoc.is_established:
                assoc.release()
            raise
        except BaseException:  # the link broke, a cancel, an interrupt
            if assoc.is_established:
                _hang_up(assoc)
            raise
        else:
            if assoc.is_established:
                assoc.release()
    finally:
        watch.stop()
        ae.shutdown()


class _Watch:
    """Cancels an association at once when ``cancel`` is set, even while our thread waits for
    an answer that does not come: during negotiation it ends the wait (pynetdicom then aborts
    the association), once established it aborts the association (which ends any DIMSE
    wait). A daemon thread, stopped with the association."""

    def __init__(self, cancel: threading.Event | None) -> None:
        self.cancel = cancel
        self.assoc: Association | None = None
        self.done = threading.Event()
        self.thread: threading.Thread | None = None

    def requested(self, event: Any) -> None:
        """EVT_REQUESTED: the association exists (its A-ASSOCIATE-RQ is on its way)."""
        self.assoc = event.assoc

    def start(self) -> None:
        if self.cancel is not None:
            self.thread = threading.Thread(target=self._run, name="print-cancel", daemon=True)
            self.thread.start()

    def stop(self) -> None:
        self.done.set()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout=5)

    def _run(self) -> None:
        assert self.cancel is not None
        woken = False
        while not self.done.wait(0.05):
            assoc = self.assoc
            if not self.cancel.is_set() or assoc is None:
                continue
            try:
                if assoc.is_established:
                    _hang_up(assoc)
                    return
                if not woken:  # negotiating: no answer yet, so wake the wait for one
                    woken = True
                    assoc.dul.artim_timer.timeout = HANG_UP
                    answers: Any = assoc.dul.to_user_queue  # typed for A-* primitives only:
                    answers.put(None)  # pynetdicom takes None as "no answer" and gives up
            except Exception:  # the association ended under us: nothing left to stop
                log.debug("print: cancelling the association", exc_info=True)
                return


def _hang_up(assoc: Association) -> None:
    """Abort ``assoc`` without waiting long for a printer that does not answer: pynetdicom
    waits its ARTIM timer (the ACSE timeout) for the peer to close after an A-ABORT."""
    with suppress(Exception):
        assoc.dul.artim_timer.timeout = HANG_UP
    assoc.abort()


def _no_print(node: Node) -> PrintError:
    return PrintError(
        f"{node.name} ({node.address}) {NO_GRAYSCALE_PRINT}: {NO_GRAYSCALE_PRINT_FIX}"
    )


def _not_established(node: Node, assoc: Association, waited: float) -> UserError:
    """Why there is no association, in a printer's words."""
    from tui.net.scu import _not_established as in_words

    answer = assoc.acceptor.primitive
    if answer is not None and answer.result == 0 and not assoc.accepted_contexts:
        # It took the association but none of the print classes (a storage SCP, say), and
        # pynetdicom aborts an association with no context: the printer's words, not an abort's.
        return _no_print(node)
    return in_words(node, assoc, waited, peer=PEER, what="the printer's DICOM protocol")


def _no_delay(assoc: Association) -> None:
    """Send each PDU at once: with Nagle's algorithm on, an image box's last small PDU
    waits for the printer's delayed ACK (tens of milliseconds an image box)."""
    import socket

    sock = getattr(getattr(assoc.dul, "socket", None), "socket", None)
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _wake(event: Any) -> None:
    """The connection closed (or was aborted): end any wait for a DIMSE answer now."""
    with suppress(Exception):
        event.assoc.dimse.msg_queue.put((None, None))


def _accepted(assoc: Association, uid: str) -> bool:
    return any(str(cx.abstract_syntax) == uid for cx in assoc.accepted_contexts)


def _code(status: Dataset | None) -> int | None:
    """The status code, or None when no answer came (the association dropped or timed out)."""
    if status is None or "Status" not in status:
        return None
    return int(status.Status)


def _ok(code: int) -> bool:
    return code == 0 or 0xB000 <= code <= 0xBFFF or code in (0x0001, 0x0107, 0x0116)


def _named(status: Dataset) -> str:
    """The attributes a failure status names (OffendingElement, AttributeIdentifierList), and
    its ErrorComment, as words; "" when it names none."""
    from pydicom.datadict import keyword_for_tag
    from pydicom.multival import MultiValue

    tags: list[int] = []
    for key in ("OffendingElement", "AttributeIdentifierList"):
        value = status.get(key)
        if value is not None:
            tags += [int(t) for t in (value if isinstance(value, MultiValue | list) else [value])]
    names = [keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})" for tag in tags]
    return ", ".join(dict.fromkeys(names))


def _comment(status: Dataset) -> str:
    comment = str(status.get("ErrorComment", "") or "").strip()
    return f": {comment}" if comment else ""


# -- printer status ----------------------------------------------------------------------------


def printer_status(node: Node, *, cancel: threading.Event | None = None) -> PrinterStatus:
    """N-GET the printer's PrinterStatus and PrinterStatusInfo.

    Raises
    ------
    PrintError
        Also when ``cancel`` was set before the printer answered: the association is aborted
        at once, even while the printer does not answer.
    """
    try:
        with _associate(node, cancel=cancel) as assoc:
            return _get_status(node, assoc)
    except (_Cancelled, errors.NetError):
        if cancel is None or not cancel.is_set():
            raise
    raise PrintError(f"{node.name} ({node.address}): stopped before the printer gave its status")


def _get_status(node: Node, assoc: Association) -> PrinterStatus:
    from pydicom.tag import Tag

    wanted = [Tag(PRINTER_STATUS), Tag(PRINTER_STATUS_INFO)]
    status, answer = assoc.send_n_get(wanted, PRINTER, PRINTER_INSTANCE, meta_uid=META)
    code = _code(status)
    if code is None:
        raise errors.aborted(node, "the printer status (N-GET)", peer=PEER)
    if not _ok(code) or answer is None:
        raise PrintError(
            f"{node.name} ({node.address}) did not give its status (N-GET Printer answered "
            f"{print_status(code)}{_comment(status)})"
        )
    state = str(answer.get("PrinterStatus", "") or "").strip().upper()
    info = str(answer.get("PrinterStatusInfo", "") or "").strip()
    return PrinterStatus(state, info, status_words(state, info), dataset_json(answer))


# -- printing -----------------------------------------------------------------------------------


def print_films(
    node: Node,
    films: list[Film],
    settings: FilmSettings,
    *,
    progress: Progress | None = None,
    on_event: OnEvent | None = None,
    cancel: threading.Event | None = None,
    retries: int = 2,
    start: int = 0,
) -> PrintResult:
    """Print ``films`` on the printer ``node``; see the module's doc for the steps.

    Parameters
    ----------
    progress
        Called with one line per step (no patient data in it).
    on_event
        Called with each N-EVENT-REPORT of the printer or a print job, as it comes (on
        pynetdicom's thread).
    cancel
        When set, printing stops: between steps the film session is deleted; while waiting
        for the printer the association is aborted at once. The result (``cancelled``) says
        which films were printed.
    retries
        New associations tried after one drops before a film's N-ACTION was sent.
    start
        The first film to send (0-based; films before it are not sent, and the words keep
        the films' own numbers: "film 3 of 10"), to finish a job that stopped part way.

    Raises
    ------
    PrintError
        With ``result`` set to what was printed when some films were.
    """
    check_settings(settings)
    check_films(films)
    if not 0 <= start < len(films):
        raise PrintError(
            f"there is no film {start + 1} to start from: the job has {_count(len(films))}"
        )
    job = _Job(node, films, settings, progress, on_event, cancel, start)
    try:
        return _run(job, retries)
    except PrintError as exc:
        if exc.result is not None or not job.printed:
            raise
        printed, left = job.printed_words()
        if job.next > job.start and printed not in str(exc):  # say what did print
            raise PrintError(f"{exc}; {printed}; {left}{job.resume()}", job.result) from None
        exc.result = job.result
        raise


def _run(job: _Job, retries: int) -> PrintResult:
    """The job, retried on a new association when one drops before a film's N-ACTION."""
    node, total = job.node, len(job.films)
    attempt = 0
    while True:
        try:
            job.run()
            return job.result
        except _Cancelled:  # before the association was made
            job.stop()
            return job.result
        except errors.NetError as exc:  # e.g. no new association after a drop
            if job.cancelled():
                job.stop()
                return job.result
            if job.next == job.start:
                raise
            printed, left = job.printed_words()
            raise PrintError(f"{exc}; {printed}; {left}{job.resume()}") from None
        except _Dropped as dropped:
            if job.cancelled():  # the cancel aborted the association under a wait
                job.stop(maybe=job.next if dropped.after_action else None)
                return job.result
            printed, left = job.printed_words()
            if dropped.after_action:
                number = job.next + 1
                before = (
                    f"{_films(job.start + 1, number - 1)} printed before it; "
                    if number > job.start + 1
                    else ""
                )
                after = (
                    f"{_films(number + 1, total)} not sent "
                    f"(print them with --from-film {number + 1}); "
                    if number < total
                    else ""
                )
                raise PrintError(
                    f"{node.name} ({node.address}) dropped the association after film {number} "
                    f"of {total} was sent to print (N-ACTION) and before it answered: it may "
                    f"have printed film {number}; {before}{after}nothing was sent again, so "
                    "nothing prints twice: check the printer before printing again"
                ) from None
            if attempt >= retries:
                raise PrintError(
                    f"{node.name} ({node.address}) dropped the association during "
                    f"{dropped.during} ({_associations(attempt + 1)} tried): {printed}; "
                    f"{left}{job.resume()}"
                ) from None
            attempt += 1
            number = job.next + 1
            during = f"film {number}" if dropped.during.startswith("film ") else dropped.during
            job.result.warn(
                f"the connection dropped during {during}; retried on a new association "
                f"(film {number} had not been sent to print)"
            )
            job.say(
                f"the association dropped during {dropped.during}, before film "
                f"{number} was printed: trying again ({attempt} of {retries})"
            )
            if job.cancel is not None and job.cancel.wait(min(0.2 * attempt, 1.0)):
                job.stop()
                return job.result
            if job.cancel is None:
                time.sleep(min(0.2 * attempt, 1.0))


def _count(films: int) -> str:
    return "1 film" if films == 1 else f"{films} films"


def _associations(count: int) -> str:
    return "1 association" if count == 1 else f"{count} associations"


def _films(first: int, last: int) -> str:
    return f"film {first}" if first == last else f"films {first} to {last}"


@dataclass
class _Session:
    uid: str
    lut: str  # the Presentation LUT's instance, or ""


class _Job:
    """One print job across its associations: which film is next, what was learned."""

    def __init__(
        self,
        node: Node,
        films: list[Film],
        settings: FilmSettings,
        progress: Progress | None,
        on_event: OnEvent | None,
        cancel: threading.Event | None,
        start: int = 0,
    ) -> None:
        self.node = node
        self.films = films
        self.settings = settings
        self.progress = progress
        self.on_event = on_event
        self.cancel = cancel
        self.result = PrintResult(copies=settings.copies, total=len(films), start=start)
        self.start = start  # the first film sent: those before it were not asked for
        self.next = start  # the first film not printed
        self.bits = settings.bits  # 0 until the printer took (or refused) 12 bits
        self.sent_bits: set[int] = set()
        self.lock = threading.Lock()
        self.annotation_warned = False
        self.annotations_offered = False
        self.printed: set[int] = set()  # films whose N-ACTION the printer answered with success
        self.failed: set[int] = set()  # films whose print job the printer reports FAILURE
        self.jobs: dict[str, int] = {}  # print job instance -> film (its N-ACTION's answer)
        self.acting: int | None = None  # the film whose N-ACTION awaits its answer

    # -- words ---------------------------------------------------------------------------------

    def say(self, line: str) -> None:
        log.info("print: %s", line)
        if self.progress is not None:
            self.progress(line)

    def printed_words(self) -> tuple[str, str]:
        total = len(self.films)
        printed = (
            "no film was printed"
            if self.next == self.start
            else f"{_films(self.start + 1, self.next)} of {total} printed"
        )
        left = (
            "all films printed"
            if self.next >= total
            else f"{_films(self.next + 1, total)} not printed"
        )
        return printed, left

    def resume(self) -> str:
        """How to print the films not printed, when some were: " (print them with ...)"."""
        if self.next == self.start or self.next >= len(self.films):
            return ""
        return f" (print them with --from-film {self.next + 1})"

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    # -- events ----------------------------------------------------------------------------------

    def on_report(self, event: Any) -> tuple[int, None]:
        """An N-EVENT-REPORT: record it, tell the caller, answer success."""
        try:
            request = event.request
            source_uid = str(request.AffectedSOPClassUID or "")
            kind = int(request.EventTypeID or 0)
            info_set = event.event_information
            if source_uid == PRINT_JOB:
                self._job_report(str(request.AffectedSOPInstanceUID or ""), kind, info_set)
                return 0x0000, None
            source, name = "printer", PRINTER_EVENTS.get(kind, f"event {kind}")
            info = str(info_set.get("PrinterStatusInfo", "") or "") if info_set else ""
            words = f"the {source} {info_words(info) if info else 'says ' + name}" + (
                f" ({info})" if info else ""
            )
            report = PrinterEvent(source, name, info, words)
            with self.lock:
                self.result.events.append(report)
                if name in ("WARNING", "FAILURE"):
                    self.result.warn(f"{report.words}")
            if self.on_event is not None:
                self.on_event(report)
        except Exception:  # an odd report must not break the association
            log.debug("print: unreadable N-EVENT-REPORT", exc_info=True)
        return 0x0000, None

    def _job_report(self, job: str, kind: int, info_set: Dataset | None) -> None:
        """A print job's event: in words, naming its film; a FAILURE takes the film off the
        films printed (the printer took it, then says it did not print it)."""
        name = JOB_EVENTS.get(kind, f"event {kind}")
        info = str(info_set.get("ExecutionStatusInfo", "") or "").strip() if info_set else ""
        with self.lock:
            index = self.jobs.get(job, self.acting)
            where = f"film {index + 1} of {len(self.films)}: " if index is not None else ""
            report = PrinterEvent("print job", name, info, where + job_words(name, info))
            self.result.events.append(report)
            if name == "FAILURE":
                if index is not None:
                    self.failed.add(index)
                    self._count()
                    self.result.warn(
                        f"film {index + 1} of {len(self.films)} did not print: "
                        + job_words(name, info)
                    )
                else:
                    self.result.warn(f"a film may not have printed: {job_words(name, info)}")
        if self.on_event is not None:
            self.on_event(report)

    def _count(self) -> None:
        """Films printed: the printer took them, and no print job of theirs failed."""
        self.result.films = len(self.printed - self.failed)

    # -- the association ------------------------------------------------------------------------

    def run(self) -> None:
        node = self.node
        self.result.associations += 1
        self.say(
            f"association {self.result.associations} with {node.aet} at {node.host}:{node.port}"
        )
        with _associate(node, self.on_report, self.cancel) as assoc:
            try:
                state = _get_status(node, assoc)
            except errors.NetError:
                if assoc.is_established:
                    raise
                raise _Dropped("the printer status (N-GET)", after_action=False) from None
            self.result.printer = state
            self.say(
                f"printer status {state.status or '?'}" + (f" ({state.info})" if state.info else "")
            )
            if state.status == "FAILURE":
                said = (
                    f"{info_words(state.info)} (PrinterStatusInfo {state.info})"
                    if state.info
                    else "reports FAILURE (PrinterStatus)"
                )
                raise PrintError(f"{node.name} {said}: nothing was sent to it")
            if state.status == "WARNING":
                self.result.warn(f"the printer {state.words}")
            asked = self.settings.annotation_format and any(f.annotations for f in self.films)
            if asked and not _accepted(assoc, ANNOTATION_BOX):
                self._warn_annotations("the printer has no annotation boxes")
            session = self._open(assoc)
            try:
                self._print_all(assoc, session)
            except PrintError:  # a refusal: the association is fine, so tidy up
                self._close(assoc, session)
                raise
            # (A broken link, an interrupt: the association is aborted, no N-DELETE waited for.)
            self._close(assoc, session)

    def _print_all(self, assoc: Association, session: _Session) -> None:
        while self.next < len(self.films):
            if self.cancelled():
                self.stop()
                return
            try:
                self._film(assoc, session, self.next)
            except _Cancelled:
                return
            self.next += 1

    def _close(self, assoc: Association, session: _Session) -> None:
        """N-DELETE the film session and the Presentation LUT, best effort."""
        if assoc.is_established:
            self._delete(assoc, FILM_SESSION, session.uid, "the film session")
            if session.lut:
                self._delete(
                    assoc, PRESENTATION_LUT, session.lut, "the Presentation LUT", meta=False
                )

    def stop(self, maybe: int | None = None) -> None:
        """Cancelled: say what was printed; ``maybe``: the film whose N-ACTION was sent and
        not answered when the association was aborted."""
        if self.result.cancelled:
            return
        printed, left = self.printed_words()
        if maybe is not None:
            total = len(self.films)
            rest = f"; {_films(maybe + 2, total)} not printed" if maybe + 1 < total else ""
            left = f"film {maybe + 1} may have printed (it was sent to print){rest}"
        self.result.cancelled = True
        self.result.warn(f"stopped: {printed}; {left}")
        self.say(f"stopped: {printed}; {left}")

    def _warn_annotations(self, why: str) -> None:
        if not self.annotation_warned:
            self.annotation_warned = True
            self.result.warn(f"{why}: the patient and study text was not printed")

    def _delete(
        self, assoc: Association, sop_class: str, uid: str, what: str, meta: bool = True
    ) -> None:
        """N-DELETE, best effort: a printer that keeps it is no reason to fail the job."""
        try:
            status = assoc.send_n_delete(sop_class, uid, meta_uid=META if meta else None)
        except Exception:
            log.debug("print: N-DELETE %s failed", what, exc_info=True)
            return
        code = _code(status)
        if code is not None and not _ok(code):
            log.info("print: the printer kept %s (N-DELETE answered %s)", what, print_status(code))

    def _open(self, assoc: Association) -> _Session:
        """The Presentation LUT (where offered and wanted) and the film session."""
        from pydicom.dataset import Dataset
        from pydicom.uid import generate_uid

        settings = self.settings
        lut = ""
        if settings.presentation_lut and _accepted(assoc, PRESENTATION_LUT):
            request = Dataset()
            request.PresentationLUTShape = "IDENTITY"
            uid = generate_uid()
            status, _ = assoc.send_n_create(request, PRESENTATION_LUT, uid)
            code = _code(status)
            if code is None:
                raise _Dropped("the Presentation LUT (N-CREATE)", after_action=False)
            if _ok(code):
                lut = uid
                self.say("Presentation LUT IDENTITY created")
            else:
                self.result.warn(
                    f"the printer refused a Presentation LUT ({print_status(code)}): printed "
                    "with its own"
                )
        self.result.presentation_lut = bool(lut)
        request = Dataset()
        for keyword, name in _SESSION_SETTINGS:
            value = getattr(settings, name)
            if value:
                setattr(request, keyword, value)
        uid = generate_uid()
        status, answer = assoc.send_n_create(request, FILM_SESSION, uid, meta_uid=META)
        code = _code(status)
        if code is None:
            raise _Dropped("the film session (N-CREATE)", after_action=False)
        if not _ok(code):
            raise self._session_refused(assoc, status, request)
        self._status_warning(code, "the film session")
        self.result.session = dataset_json(answer)
        copies = answer.get("NumberOfCopies") if answer is not None else None
        self.result.copies = int(copies) if copies else settings.copies
        copies = self.result.copies
        self.say(f"film session created ({copies} {'copy' if copies == 1 else 'copies'})")
        return _Session(uid, lut)

    def _session_refused(self, assoc: Association, status: Dataset, request: Dataset) -> PrintError:
        """Name what the printer refused in a film session: its words, else ask for a session
        with one attribute at a time (each probe session deleted again)."""
        from pydicom.dataset import Dataset

        if _named(status) or len(request) < 2:
            return self._refused("the film session", status, request)
        probes = []
        for keyword in request.dir():
            probe = Dataset()
            setattr(probe, keyword, request.get(keyword))
            probes.append((keyword, probe))
        found = self._first_refused(assoc, FILM_SESSION, probes)
        if found is not None:
            return found
        return self._refused("the film session", status, request)

    def _status_warning(self, code: int, what: str) -> None:
        if code != 0:
            self.result.warn(f"{what}: the printer answered {print_status(code)}")

    def _refused(self, what: str, status: Dataset, request: Dataset) -> PrintError:
        """A refusal in words, naming the attribute when the printer did."""
        code = int(status.Status)
        named = _named(status)
        if named:
            values = []
            for keyword in named.split(", "):
                if keyword in request:
                    values.append(f"{keyword} {_shown(request.get(keyword))}")
                else:
                    values.append(keyword)
            return PrintError(
                f"{self.node.name} refused {', '.join(values)} in {what} "
                f"({print_status(code)}{_comment(status)})"
            )
        return PrintError(
            f"{self.node.name} refused {what} ({print_status(code)}{_comment(status)})"
        )

    # -- one film --------------------------------------------------------------------------------

    def _film_box_request(self, session: _Session, film: Film, only: str | None = None) -> Dataset:
        """The film box N-CREATE; with ``only``, the display format and that one attribute."""
        from pydicom.dataset import Dataset

        settings = self.settings
        request = Dataset()
        request.ImageDisplayFormat = film.display_format
        reference = Dataset()
        reference.ReferencedSOPClassUID = FILM_SESSION
        reference.ReferencedSOPInstanceUID = session.uid
        request.ReferencedFilmSessionSequence = [reference]
        for keyword, name in _FILM_BOX_SETTINGS:
            value = getattr(settings, name)
            if value and only in (None, keyword):
                setattr(request, keyword, value)
        if session.lut and only in (None, "ReferencedPresentationLUTSequence"):
            lut = Dataset()
            lut.ReferencedSOPClassUID = PRESENTATION_LUT
            lut.ReferencedSOPInstanceUID = session.lut
            request.ReferencedPresentationLUTSequence = [lut]
        if self._wants_annotations(film) and only in (None, "AnnotationDisplayFormatID"):
            request.AnnotationDisplayFormatID = settings.annotation_format
        return request

    def _wants_annotations(self, film: Film) -> bool:
        return bool(
            film.annotations and self.settings.annotation_format and self.annotations_offered
        )

    def _film(self, assoc: Association, session: _Session, index: int) -> None:
        from pydicom.uid import generate_uid

        film = self.films[index]
        where = f"film {index + 1} of {len(self.films)}"
        self.annotations_offered = _accepted(assoc, ANNOTATION_BOX)
        if film.annotations and self.annotations_offered and not self.settings.annotation_format:
            self._warn_annotations(
                "the printer's annotation display format is not set (AnnotationDisplayFormatID)"
            )
        request = self._film_box_request(session, film)
        uid = generate_uid()
        status, answer = assoc.send_n_create(request, FILM_BOX, uid, meta_uid=META)
        code = _code(status)
        if code is None:
            raise _Dropped(f"{where} (film box N-CREATE)", after_action=False)
        if not _ok(code) or answer is None:
            raise self._film_box_refused(assoc, session, film, status, request, where)
        self._status_warning(code, f"{where}'s film box")
        self.result.film_boxes.append(dataset_json(answer))
        boxes = list(answer.get("ReferencedImageBoxSequence", []))
        self.say(f"{where}: film box {film.columns},{film.rows} created")
        if len(boxes) < len(film.images):
            raise PrintError(
                f"{self.node.name} made {len(boxes)} image boxes for a {film.columns},"
                f"{film.rows} film box, fewer than its {len(film.images)} images"
            )
        for position, (image, box) in enumerate(zip(film.images, boxes, strict=False), 1):
            if self.cancelled():
                self._delete(assoc, FILM_BOX, uid, "the film box")
                self.stop()
                raise _Cancelled
            self._image_box(assoc, box, position, image, where)
            self.say(f"{where}: image {position} of {len(film.images)} sent")
        self._annotations(assoc, film, answer, where)
        if self.cancelled():
            self._delete(assoc, FILM_BOX, uid, "the film box")
            self.stop()
            raise _Cancelled
        self.say(f"{where}: printing (N-ACTION)")
        with self.lock:
            self.acting = index
        status, reply = assoc.send_n_action(None, 1, FILM_BOX, uid, meta_uid=META)
        with self.lock:
            self.acting = None
            for job in reply.get("ReferencedPrintJobSequence", []) if reply is not None else []:
                self.jobs[str(job.get("ReferencedSOPInstanceUID", ""))] = index
        code = _code(status)
        if code is None:
            raise _Dropped(f"{where} (N-ACTION)", after_action=True)
        if not _ok(code):
            printed, left = self.printed_words()
            raise PrintError(
                f"{self.node.name} refused to print {where} ({print_status(code)}"
                f"{_comment(status)}); {printed}; {left}{self.resume()}"
            )
        self._status_warning(code, f"{where}")
        with self.lock:
            self.printed.add(index)
            self._count()
        self.say(f"{where} printed")
        self._delete(assoc, FILM_BOX, uid, "the printed film box")

    def _film_box_refused(
        self,
        assoc: Association,
        session: _Session,
        film: Film,
        status: Dataset,
        request: Dataset,
        where: str,
    ) -> PrintError:
        """Name what the printer refused in a film box: its words, else probe one attribute at
        a time (each probe box deleted again)."""
        code = int(status.Status)
        if _named(status):
            return self._refused(f"{where}'s film box", status, request)
        candidates = [
            keyword
            for keyword in request.dir()
            if keyword not in ("ImageDisplayFormat", "ReferencedFilmSessionSequence")
        ]
        probes = [
            (keyword, self._film_box_request(session, film, only=keyword))
            for keyword in ("ImageDisplayFormat", *candidates)
        ]
        found = self._first_refused(assoc, FILM_BOX, probes)
        if found is not None:
            return found
        return PrintError(
            f"{self.node.name} refused {where}'s film box ({print_status(code)}"
            f"{_comment(status)}), though it took each of its attributes alone"
        )

    def _first_refused(
        self, assoc: Association, sop_class: str, probes: list[tuple[str, Dataset]]
    ) -> PrintError | None:
        """N-CREATE each probe (``keyword``, one attribute of a refused request) in turn,
        deleting those taken: the first refused, in words; None if all were taken or the
        link broke."""
        from pydicom.uid import generate_uid

        for keyword, probe in probes:
            uid = generate_uid()
            status, _ = assoc.send_n_create(probe, sop_class, uid, meta_uid=META)
            code = _code(status)
            if code is None:
                return None
            if _ok(code):
                self._delete(assoc, sop_class, uid, "a probe")
                continue
            value = _shown(probe.get(keyword)) if keyword in probe else ""
            hint = ": try another layout (columns,rows)" if keyword == "ImageDisplayFormat" else ""
            return PrintError(
                f"{self.node.name} refused {keyword} {value} ({print_status(code)}"
                f"{_comment(status)}){hint}"
            )
        return None

    def _image_box(
        self, assoc: Association, box: Dataset, position: int, image: PrintImage, where: str
    ) -> None:
        from pydicom.dataset import Dataset

        uid = str(box.ReferencedSOPInstanceUID)
        sop_class = str(box.get("ReferencedSOPClassUID", IMAGE_BOX) or IMAGE_BOX)
        want = self.bits
        if image.grey12 is None:
            if want == 12 and self.settings.bits == 12:
                self.result.warn(
                    "an image had no 12-bit view (colour, VR or a VOI LUT): sent at 8 bits"
                )
            bits = 8
        else:
            bits = 8 if want == 8 else 12
        while True:
            request = Dataset()
            request.ImageBoxPosition = position
            request.BasicGrayscaleImageSequence = [_pixels(image, bits)]
            status, _ = assoc.send_n_set(request, sop_class, uid, meta_uid=META)
            code = _code(status)
            if code is None:
                raise _Dropped(f"{where} (image box {position})", after_action=False)
            if _ok(code):
                if bits == 12 and self.bits == 0:
                    self.bits = 12
                self.sent_bits.add(bits)
                self.result.bits = max(self.sent_bits)
                self._status_warning(code, f"{where}, image {position}")
                return
            if bits == 12 and self.bits == 0:  # auto: the first refused 12-bit box goes at 8
                self.bits = 8
                self.result.warn(
                    f"the printer refused 12-bit images ({print_status(code)}): printed at 8 bits"
                )
                self.say("the printer refused 12 bits: sending at 8 bits")
                bits = 8
                continue
            if bits == 12:
                raise PrintError(
                    f"{self.node.name} refused the image at 12 bits (BitsStored 12, "
                    f"{print_status(code)}{_comment(status)}): print at 8 bits (--bits 8)"
                )
            raise self._refused(f"{where}, image box {position}", status, request)

    def _annotations(self, assoc: Association, film: Film, answer: Dataset, where: str) -> None:
        from pydicom.dataset import Dataset

        if not film.annotations:
            return
        boxes = list(answer.get("ReferencedBasicAnnotationBoxSequence", []))
        if not boxes:
            if self._wants_annotations(film):
                self._warn_annotations("the printer made no annotation boxes")
            return
        for position, (text, box) in enumerate(zip(film.annotations, boxes, strict=False), 1):
            request = Dataset()
            request.AnnotationPosition = position
            request.TextString = text[:64]  # LO
            sop_class = str(box.get("ReferencedSOPClassUID", ANNOTATION_BOX) or ANNOTATION_BOX)
            status, _ = assoc.send_n_set(
                request, sop_class, str(box.ReferencedSOPInstanceUID), meta_uid=META
            )
            code = _code(status)
            if code is None:
                raise _Dropped(f"{where} (annotation box {position})", after_action=False)
            if not _ok(code):
                self._warn_annotations(
                    f"the printer refused an annotation box ({print_status(code)})"
                )
                return
            self.result.annotation_boxes += 1
        if len(film.annotations) > len(boxes):
            self.result.warn(
                f"the printer has {len(boxes)} annotation boxes: "
                f"{_lines(len(film.annotations) - len(boxes))} of text left out"
            )


class _Cancelled(Exception):
    """Stopped by the caller between steps (the result says so)."""


def _lines(count: int) -> str:
    return f"{count} line" if count == 1 else f"{count} lines"


def _shown(value: Any) -> str:
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    if isinstance(value, int | str | float):
        return str(value)
    return type(value).__name__


def _pixels(image: PrintImage, bits: int) -> Dataset:
    """The BasicGrayscaleImageSequence item: MONOCHROME2 at 8 or 12 bits."""
    import numpy as np
    from pydicom.dataset import Dataset

    data = image.grey12 if bits == 12 and image.grey12 is not None else image.grey8
    item = Dataset()
    item.SamplesPerPixel = 1
    item.PhotometricInterpretation = "MONOCHROME2"
    item.Rows, item.Columns = int(data.shape[0]), int(data.shape[1])
    item.PixelAspectRatio = [int(image.aspect[0]), int(image.aspect[1])]
    if bits == 12:
        item.BitsAllocated, item.BitsStored, item.HighBit = 16, 12, 11
        pixels = np.ascontiguousarray(np.minimum(data, 4095), dtype="<u2").tobytes()
    else:
        item.BitsAllocated, item.BitsStored, item.HighBit = 8, 8, 7
        pixels = np.ascontiguousarray(data, dtype=np.uint8).tobytes()
        if len(pixels) % 2:
            pixels += b"\x00"
    item.PixelRepresentation = 0
    item.PixelData = pixels
    item["PixelData"].VR = "OW" if bits == 12 else "OB"
    return item
