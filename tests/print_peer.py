"""A scripted DICOM print SCP (pynetdicom) and a TCP proxy that drops a connection on cue.

dcmtk's dcmprscp is the real printer of the print tests; this peer plays what it cannot:
annotation boxes, N-EVENT-REPORTs from the printer and from print jobs (the Print Job SOP
Class, negotiated on its own as PS3.4 H.4.5 has it), a printer out of film, a film box it
refuses with a status of its own, DICOM over TLS (mutual when given a CA). It is a real SCP
on loopback answering our SCU over the network, not a stand-in for our code; it keeps what
it was sent in ``received``.

``silent_peer`` listens and takes connections and then never says a word (a printer hung
before the association); ``PrintPeer(hold_set=True)`` hangs in its first N-SET (hung after
it), both until the test ends: for cancelling a job the printer does not answer.

``DroppingProxy`` sits between our SCU and a printer and cuts the connection at a chosen
point (before the n-th N-SET of an association, or after an N-ACTION reached the printer
and before its answer comes back), so the retry rules are tested against a real printer.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt

from tests.servers import HOST, TlsFiles, free_port

META = "1.2.840.10008.5.1.1.9"
FILM_SESSION = "1.2.840.10008.5.1.1.1"
FILM_BOX = "1.2.840.10008.5.1.1.2"
IMAGE_BOX = "1.2.840.10008.5.1.1.4"
ANNOTATION_BOX = "1.2.840.10008.5.1.1.15"
PRESENTATION_LUT = "1.2.840.10008.5.1.1.23"
PRINTER = "1.2.840.10008.5.1.1.16"
PRINTER_INSTANCE = "1.2.840.10008.5.1.1.17"
PRINT_JOB = "1.2.840.10008.5.1.1.14"
UNCOMPRESSED = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]


@dataclass
class PrintPeer:
    """A print SCP on ``port``: what it answers is set by its fields, what it got is kept."""

    aet: str = "PRINTPEER"
    status: str = "NORMAL"  # PrinterStatus
    info: str = "NORMAL"  # PrinterStatusInfo
    annotation_boxes: int = 2  # per film box, when AnnotationDisplayFormatID is asked
    event: tuple[int, str] | None = None  # a printer N-EVENT-REPORT sent on each N-ACTION
    event_pause: float = 0.0  # seconds it waits after that event before answering the N-ACTION
    film_box_status: int = 0  # the status a film box N-CREATE gets (0: success)
    film_box_status_from: int = 1  # ... from its n-th film box N-CREATE on
    action_status_of: dict[int, int] = field(default_factory=dict)  # the n-th N-ACTION's status
    refuse: str = ""  # a film box with this attribute gets 0x0106, the attribute not named
    offer_annotations: bool = True
    # Print Job events (event type, ExecutionStatusInfo) of each printed film box: its
    # N-ACTION answer names the job (ReferencedPrintJobSequence), and the events follow
    # that answer, as a printer's do, sent before it answers our next request.
    job_events: list[tuple[int, str]] = field(default_factory=list)
    job_events_of: dict[int, list[tuple[int, str]]] = field(default_factory=dict)  # n-th film's
    offer_print_job: bool = True
    hold_set: bool = False  # never answer an N-SET (until the peer stops)
    tls: TlsFiles | None = None  # DICOM over TLS with the server certificate
    mutual: bool = True  # with tls: callers must show a certificate the test CA signed
    port: int = 0
    received: list[tuple[str, str, Dataset | None]] = field(default_factory=list)
    sent_events: list[tuple[str, int, str]] = field(default_factory=list)  # (class, type, info)
    unsent: list[str] = field(default_factory=list)  # events it could not send, and why
    callers: list[str] = field(default_factory=list)  # TLS: the caller certificates' CN
    _server: Any = None
    _pending: dict[int, list[tuple[str, int, str]]] = field(default_factory=dict)
    _held: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> PrintPeer:
        ae = AE(ae_title=self.aet)
        for uid in (
            META,
            PRESENTATION_LUT,
            *([ANNOTATION_BOX] if self.offer_annotations else []),
            *([PRINT_JOB] if self.offer_print_job else []),
        ):
            ae.add_supported_context(uid, UNCOMPRESSED)
        ae.add_supported_context("1.2.840.10008.1.1", UNCOMPRESSED)
        handlers = [
            (evt.EVT_N_GET, self._get),
            (evt.EVT_N_CREATE, self._create),
            (evt.EVT_N_SET, self._set),
            (evt.EVT_N_ACTION, self._action),
            (evt.EVT_N_DELETE, self._delete),
        ]
        self.port = free_port()
        self._server = ae.start_server(
            (HOST, self.port), block=False, evt_handlers=handlers, ssl_context=self._context()
        )
        return self

    def _context(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.tls.server_cert, self.tls.server_key)
        if self.mutual:
            context.load_verify_locations(cafile=self.tls.ca)
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def __exit__(self, *exc: object) -> None:
        self._held.set()
        self._server.shutdown()

    def of(self, operation: str, sop_class: str) -> list[Dataset | None]:
        return [ds for op, uid, ds in self.received if op == operation and uid == sop_class]

    # -- handlers --------------------------------------------------------------------------------

    def _flush(self, event: Any) -> None:
        """Send the print job events that follow an N-ACTION's answer (on its association)."""
        assoc = event.assoc
        for source, kind, info in self._pending.pop(id(assoc), []):
            report = Dataset()
            report.ExecutionStatusInfo = info
            report.PrinterName = self.aet
            try:
                assoc.send_n_event_report(report, kind, PRINT_JOB, source)
            except ValueError as exc:  # no Print Job context: the SCU did not offer it
                self.unsent.append(str(exc))
                continue
            self.sent_events.append((PRINT_JOB, kind, info))

    def _caller(self, event: Any) -> None:
        """Keep the TLS caller's certificate CN (once an association)."""
        sock = getattr(getattr(event.assoc.dul, "socket", None), "socket", None)
        if isinstance(sock, ssl.SSLSocket):
            subject = dict(item[0] for item in (sock.getpeercert() or {}).get("subject", ()))
            self.callers.append(str(subject.get("commonName", "")))

    def _get(self, event: Any) -> tuple[int, Dataset | None]:
        self._caller(event)
        self._flush(event)
        self.received.append(("N-GET", str(event.request.RequestedSOPClassUID), None))
        answer = Dataset()
        answer.PrinterStatus = self.status
        answer.PrinterStatusInfo = self.info
        return 0x0000, answer

    def _create(self, event: Any) -> tuple[int, Dataset | None]:
        self._flush(event)
        request = event.request
        sop_class = str(request.AffectedSOPClassUID)
        attributes = event.attribute_list
        self.received.append(("N-CREATE", sop_class, attributes))
        if sop_class != FILM_BOX:
            return 0x0000, attributes
        if self.film_box_status and len(self.of("N-CREATE", FILM_BOX)) >= self.film_box_status_from:
            return self.film_box_status, None
        if self.refuse and self.refuse in attributes:
            return 0x0106, None
        columns, rows = (
            int(n) for n in str(attributes.ImageDisplayFormat).split("\\")[1].split(",")
        )
        answer = Dataset()
        answer.ImageDisplayFormat = attributes.ImageDisplayFormat
        boxes = []
        for _ in range(columns * rows):
            item = Dataset()
            item.ReferencedSOPClassUID = IMAGE_BOX
            item.ReferencedSOPInstanceUID = generate_uid()
            boxes.append(item)
        answer.ReferencedImageBoxSequence = boxes
        if "AnnotationDisplayFormatID" in attributes:
            notes = []
            for _ in range(self.annotation_boxes):
                item = Dataset()
                item.ReferencedSOPClassUID = ANNOTATION_BOX
                item.ReferencedSOPInstanceUID = generate_uid()
                notes.append(item)
            answer.ReferencedBasicAnnotationBoxSequence = notes
        return 0x0000, answer

    def _set(self, event: Any) -> tuple[int, Dataset | None]:
        self._flush(event)
        request = event.request
        self.received.append(("N-SET", str(request.RequestedSOPClassUID), event.modification_list))
        if self.hold_set:
            self._held.wait(120)
        return 0x0000, None

    def _action(self, event: Any) -> tuple[int, Dataset | None]:
        self.received.append(("N-ACTION", str(event.request.RequestedSOPClassUID), None))
        if self.event is not None:
            kind, info = self.event
            report = Dataset()
            report.PrinterStatusInfo = info
            event.assoc.send_n_event_report(report, kind, PRINTER, PRINTER_INSTANCE, meta_uid=META)
            self.sent_events.append((PRINTER, kind, info))
            time.sleep(self.event_pause)
        actions = len(self.of("N-ACTION", FILM_BOX))
        if actions in self.action_status_of:
            return self.action_status_of[actions], None
        events = self.job_events_of.get(actions, self.job_events)
        if not events:
            return 0x0000, None
        job = generate_uid()
        self._pending[id(event.assoc)] = [(job, kind, info) for kind, info in events]
        answer = Dataset()
        reference = Dataset()
        reference.ReferencedSOPClassUID = PRINT_JOB
        reference.ReferencedSOPInstanceUID = job
        answer.ReferencedPrintJobSequence = [reference]
        return 0x0000, answer

    def _delete(self, event: Any) -> int:
        self._flush(event)
        self.received.append(("N-DELETE", str(event.request.RequestedSOPClassUID), None))
        return 0x0000


# -- a proxy that drops the connection on cue ----------------------------------------------------

N_SET_RQ, N_ACTION_RQ = 0x0120, 0x0130


def _command_field(pdu: bytes) -> int | None:
    """The CommandField of a P-DATA-TF PDU's command fragment (commands are implicit VR little
    endian: (0000,0100) UL... its tag then a 4-byte length then a 2-byte value), else None."""
    if not pdu or pdu[0] != 0x04:
        return None
    offset = 6
    while offset + 6 <= len(pdu):
        (length,) = struct.unpack(">I", pdu[offset : offset + 4])
        control = pdu[offset + 5]
        data = pdu[offset + 6 : offset + 4 + length]
        if control & 0x01:  # a command fragment
            at = data.find(b"\x00\x00\x00\x01\x02\x00\x00\x00")
            if at >= 0:
                return int(struct.unpack("<H", data[at + 8 : at + 10])[0])
        offset += 4 + length
    return None


def _read_pdu(sock: socket.socket) -> bytes:
    head = b""
    while len(head) < 6:
        chunk = sock.recv(6 - len(head))
        if not chunk:
            return b""
        head += chunk
    (length,) = struct.unpack(">I", head[2:6])
    body = bytearray()
    while len(body) < length:
        chunk = sock.recv(min(65536, length - len(body)))
        if not chunk:
            return b""
        body += chunk
    return head + bytes(body)


@dataclass
class DroppingProxy:
    """Forwards connections on ``port`` to ``target_port``; the association numbered
    ``association`` (1: the first) is cut before its ``before_set``-th N-SET request reaches
    the printer, or (``after_action``) once its first N-ACTION reached the printer and before
    the answer comes back. Other connections pass untouched."""

    target_port: int
    association: int = 1
    before_set: int = 0
    after_action: bool = False
    port: int = 0
    connections: int = 0
    dropped: list[str] = field(default_factory=list)
    _listener: socket.socket | None = None
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> DroppingProxy:
        self._listener = socket.create_server((HOST, 0))
        self.port = int(self._listener.getsockname()[1])
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection((HOST, self.target_port))
            cut = self.connections == self.association
            threading.Thread(target=self._pump, args=(client, upstream, cut), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket, cut: bool) -> None:
        action_sent = threading.Event()
        stop = threading.Event()

        def close() -> None:
            stop.set()
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()

        def back() -> None:  # printer -> us
            for pdu in iter(lambda: _safe_read(upstream), b""):
                if cut and action_sent.is_set() and pdu[0] == 0x04:
                    self.dropped.append("after N-ACTION")
                    close()
                    return
                with contextlib.suppress(OSError):
                    client.sendall(pdu)
            close()

        threading.Thread(target=back, daemon=True).start()
        sets = 0
        for pdu in iter(lambda: _safe_read(client), b""):
            command = _command_field(pdu)
            if cut and command == N_SET_RQ:
                sets += 1
                if self.before_set and sets == self.before_set:
                    self.dropped.append(f"before N-SET {sets}")
                    close()
                    return
            with contextlib.suppress(OSError):
                upstream.sendall(pdu)
            if cut and self.after_action and command == N_ACTION_RQ:
                action_sent.set()
        close()


def _safe_read(sock: socket.socket) -> bytes:
    try:
        return _read_pdu(sock)
    except OSError:
        return b""


@contextlib.contextmanager
def silent_peer() -> Iterator[int]:
    """A port that takes TCP connections and never answers on them; closed at the end."""
    listener = socket.create_server((HOST, 0))
    taken: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            taken.append(connection)

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accept
        for sock in (listener, *taken):
            with contextlib.suppress(OSError):
                sock.close()


@contextlib.contextmanager
def print_peer(**settings: Any) -> Iterator[PrintPeer]:
    with PrintPeer(**settings) as peer:
        yield peer
