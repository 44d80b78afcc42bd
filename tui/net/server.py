"""The embedded mini-PACS: the local archive as a DICOM Query/Retrieve SCP.

C-ECHO, C-FIND, C-GET and C-MOVE in the Patient Root and Study Root information models.
C-FIND is answered from the archive's SQLite index alone (no file is opened). C-GET and
C-MOVE send the indexed files: one in a transfer syntax the peer accepted is streamed from
disk as stored, not even parsed; one in Implicit or Explicit VR Little Endian goes converted
to the other by pynetdicom; a compressed one is decompressed to Explicit VR Little Endian
(pydicom's decoders) when the peer takes that; anything else (Big Endian to a Little Endian
peer, say) is counted as a failed sub-operation and listed in Failed SOP Instance UID List.

pynetdicom runs each association in a thread of its own. Each request opens its own
connection to the index, reads what it needs and closes it before the first response goes
out, so requests never share a connection and an import may write meanwhile (WAL).

Logging: counts and timings at INFO, never patient data (:mod:`tui.net.contexts` keeps
pynetdicom, which logs identifiers at INFO, to warnings).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, _config, evt
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import (  # type: ignore[attr-defined]  # made at import time
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from tui.archive.identifier import IdentifierError, IdentifierMismatch, Instance, Query
from tui.archive.index import INDEX_NAME, Archive
from tui.errors import UserError
from tui.net.contexts import context  # importing it also keeps identifiers out of pynetdicom's logs
from tui.net.dul import MAX_CONTEXTS
from tui.net.status import (
    CANCELLED,
    CONTINUING,
    IDENTIFIER_MISMATCH,
    NOT_AUTHORISED,
    SUCCESS,
    UNABLE_TO_PROCESS,
)

log = logging.getLogger(__name__)

DEFAULT_AET = "PACSTUI"
DEFAULT_PORT = 11112

# Statuses (PS3.4 C.4.1.1.4, C.4.2.1.5, C.4.3.1.4).


# The transfer syntax we pick when a peer offers several for one context: files are mostly
# stored in Explicit VR Little Endian, which is also what a compressed file decompresses to;
# Big Endian (retired) last. pynetdicom takes the acceptor's order, not the requestor's.
_PREFERRED_SYNTAXES = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    *(
        UID(s)
        for s in ALL_TRANSFER_SYNTAXES
        if s not in (ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian)
    ),
    ExplicitVRBigEndian,
]
_UNCOMPRESSED_LE = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)

_FIND_MODELS = {
    PatientRootQueryRetrieveInformationModelFind: "patient",
    StudyRootQueryRetrieveInformationModelFind: "study",
}
_GET_MODELS = {
    PatientRootQueryRetrieveInformationModelGet: "patient",
    StudyRootQueryRetrieveInformationModelGet: "study",
}
_MOVE_MODELS = {
    PatientRootQueryRetrieveInformationModelMove: "patient",
    StudyRootQueryRetrieveInformationModelMove: "study",
}


# -- the server ----------------------------------------------------------------------------------


class MiniPacs:
    """The archive at ``archive_root`` served as a Query/Retrieve SCP.

    Parameters
    ----------
    archive_root
        The archive folder (``index.sqlite`` and ``store/``). A folder without an index is
        served as an empty archive.
    aet
        Our AE title.
    host
        The address to listen on; loopback by default, ``"0.0.0.0"`` for every interface.
    port
        The TCP port; 0 picks a free one (read :attr:`port` after :meth:`start`).
    destinations
        C-MOVE destinations by AE title: ``{aet: (host, port)}``. A C-MOVE to any other AE
        title fails with status 0xA801 (Refused: Move Destination unknown).
    allow
        The calling AE titles accepted; None accepts any. Others are refused with
        A-ASSOCIATE-RJ (calling AE title not recognised).
    ssl_context
        Serve DICOM over TLS with this server context (see :func:`tui.net.tls.server_context`).
        C-MOVE sub-associations stay plain TCP.

    Examples
    --------
    >>> with MiniPacs(Path("~/archive").expanduser(), port=0) as pacs:  # doctest: +SKIP
    ...     print(pacs.port)
    """

    def __init__(
        self,
        archive_root: Path,
        aet: str = DEFAULT_AET,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        destinations: dict[str, tuple[str, int]] | None = None,
        allow: set[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.archive_root = archive_root
        self.aet = aet
        self.host = host
        self._port = port
        self.destinations = {title.strip(): where for title, where in (destinations or {}).items()}
        self.allow = None if allow is None else {title.strip() for title in allow}
        self.ssl_context = ssl_context
        self._ae: AE | None = None
        self._server: Any = None  # pynetdicom's ThreadedAssociationServer
        self._stopped = threading.Event()

    @property
    def port(self) -> int:
        """The port listened on (the one picked when constructed with port 0)."""
        return self._port

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        """Listen in background threads; return at once.

        Raises
        ------
        UserError
            If the address cannot be bound (the port is taken, the host is not ours).
        """
        if self._server is not None:
            return
        # Stream files given as paths to send_c_store instead of parsing them (see
        # _stream_stored_files). Process-wide, but it changes nothing for a caller that,
        # like tui.net.scu, passes a path only when the peer accepted the file's own syntax.
        _config.STORE_SEND_CHUNKED_DATASET = True
        ae = self._build_ae()
        try:
            server = ae.start_server(
                (self.host, self._port),
                block=False,
                ssl_context=self.ssl_context,
                evt_handlers=self._handlers(),
            )
        except OSError as exc:
            raise UserError(
                f"cannot listen on {self.host}:{self._port}: {exc.strerror or exc}"
                + (" (another program uses the port?)" if _in_use(exc) else "")
            ) from None
        assert server is not None  # start_server(block=False) returns it
        self._port = int(server.server_address[1])  # before `running` says so
        self._ae, self._server = ae, server
        self._stopped.clear()
        if not (self.archive_root / INDEX_NAME).exists():
            log.warning("serving an empty archive: no index in the archive folder yet")
        log.info("mini-PACS %s listening on %s:%d", self.aet, self.host, self._port)

    def stop(self) -> None:
        """Stop listening and abort the associations in progress."""
        ae, self._ae, self._server = self._ae, None, None
        if ae is not None:
            ae.shutdown()
            log.info("mini-PACS stopped")
        self._stopped.set()

    def serve_forever(self) -> None:
        """Serve until :meth:`stop` is called from another thread or Ctrl-C is pressed."""
        self.start()
        try:
            # A timeout keeps the main thread responsive to Ctrl-C on every platform.
            while not self._stopped.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> MiniPacs:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- setup ---------------------------------------------------------------------------------

    def _build_ae(self) -> AE:
        ae = AE(ae_title=self.aet)
        ae.maximum_associations = 16
        if self.allow is not None:
            # pynetdicom refuses others with A-ASSOCIATE-RJ (1, 1, 3): calling AE not recognised.
            # An empty list would mean "anyone", so an empty allow set lists an impossible title.
            ae.require_calling_aet = sorted(self.allow) or ["\\"]
        ae.add_supported_context(Verification)
        for model in (*_FIND_MODELS, *_GET_MODELS, *_MOVE_MODELS):
            ae.add_supported_context(model)
        # Storage contexts carry C-GET's C-STORE sub-operations back to the requestor: the
        # requestor proposes them with itself as SCP (role selection), which we accept.
        for storage in AllStoragePresentationContexts:
            if storage.abstract_syntax is not None:
                ae.add_supported_context(
                    storage.abstract_syntax, _PREFERRED_SYNTAXES, scu_role=False, scp_role=True
                )
        return ae

    def _handlers(self) -> list[Any]:
        return [
            (evt.EVT_CONN_OPEN, _no_delay),
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_C_ECHO, _on_echo),
            (evt.EVT_C_FIND, self._on_find),
            (evt.EVT_C_GET, self._on_get),
            (evt.EVT_C_MOVE, self._on_move),
            (evt.EVT_C_STORE, _on_store),
        ]

    # -- handlers ------------------------------------------------------------------------------

    def _on_requested(self, event: evt.Event) -> None:
        # At this point only the A-ASSOCIATE-RQ itself knows who is calling.
        request = event.assoc.requestor.primitive
        calling = str(request.calling_ae_title or "").strip() if request is not None else ""
        if self.allow is not None and calling not in self.allow:
            log.warning("refusing an association from AE title %r: not in the allow list", calling)
        else:
            log.debug("association from %r at %s", calling, event.assoc.requestor.address)

    def _on_find(self, event: evt.Event) -> Iterator[tuple[int | Dataset, Dataset | None]]:
        """C-FIND: one pending response per matching row of the index."""
        started = time.perf_counter()
        model = _FIND_MODELS.get(event.request.AffectedSOPClassUID, "study")
        try:
            query = Query.from_identifier(event.identifier, model)
            with self._open() as archive:
                rows = query.find(archive)
        except IdentifierError as exc:
            log.warning("C-FIND refused: %s", exc.comment)
            yield _status_dataset(exc), None
            return
        log.info(
            "C-FIND %s: %d matches in %.3f s", query.level, len(rows), time.perf_counter() - started
        )
        for row in rows:
            if event.is_cancelled:
                log.info("C-FIND cancelled by the requestor")
                yield CANCELLED, None
                return
            yield CONTINUING, query.response(row, self.aet)

    def _on_get(self, event: evt.Event) -> Iterator[Any]:
        """C-GET: the matched instances go back over the requestor's own association."""
        model = _GET_MODELS.get(event.request.AffectedSOPClassUID, "study")
        # An IdentifierError raised here reaches pynetdicom, which answers 0xC413 (unable to
        # process): its first yield must be a count, so a status of our own cannot go first.
        instances = self._matched(event.identifier, model, "C-GET")
        _stream_stored_files(event.assoc)
        yield len(instances)
        yield from _send(instances, lambda: event.assoc, event, "C-GET")

    def _on_move(self, event: evt.Event) -> Iterator[Any]:
        """C-MOVE: the matched instances go to the destination AE, on an association we open."""
        model = _MOVE_MODELS.get(event.request.AffectedSOPClassUID, "study")
        title = (event.move_destination or "").strip()
        where = self.destinations.get(title)
        if where is None:
            log.warning("C-MOVE refused: unknown move destination %r", title)
            yield None, None  # pynetdicom answers 0xA801 Refused: Move Destination unknown
            return
        instances = self._matched(event.identifier, model, "C-MOVE")  # raises: 0xC514
        # pynetdicom opens the sub-association itself; keep it as it is accepted (before
        # associate() returns) to learn which transfer syntaxes the destination takes.
        store: dict[str, Association] = {}
        kept = threading.Event()

        def keep(accepted: evt.Event) -> None:
            _stream_stored_files(accepted.assoc)
            store["assoc"] = accepted.assoc
            kept.set()

        def sub_association() -> Association | None:
            # pynetdicom asks for the first dataset once the sub-association is up, but runs
            # this handler in the association's own thread: on a busy machine it could still
            # be on its way, and without it the files went in their stored syntax, refused.
            kept.wait(timeout=30)
            return store.get("assoc")

        options = {
            "contexts": _store_contexts(instances),
            "evt_handlers": [(evt.EVT_ACCEPTED, keep), (evt.EVT_CONN_OPEN, _no_delay)],
        }
        yield (*where, options)
        yield len(instances)
        yield from _send(instances, sub_association, event, "C-MOVE")

    def _matched(self, identifier: Dataset, model: str, operation: str) -> list[Instance]:
        started = time.perf_counter()
        try:
            query = Query.from_identifier(identifier, model, retrieve=True)
            with self._open() as archive:
                instances = query.instances(archive)
        except IdentifierError as exc:
            log.warning("%s refused: %s", operation, exc.comment)
            raise
        log.info(
            "%s %s: %d instances matched in %.3f s",
            operation,
            query.level,
            len(instances),
            time.perf_counter() - started,
        )
        return instances

    def _open(self) -> Archive:
        try:
            return Archive(self.archive_root, create=False)
        except UserError as exc:
            raise IdentifierError("the archive cannot be read") from exc


def _on_echo(event: evt.Event) -> int:
    return SUCCESS


def _on_store(event: evt.Event) -> int:
    # Storage contexts are accepted for C-GET; a plain C-STORE is the receiver's job.
    log.warning("refused a C-STORE: the mini-PACS serves the archive, it does not receive")
    return NOT_AUTHORISED


def _no_delay(event: evt.Event) -> None:
    """Send each PDU at once. With Nagle's algorithm on, a small PDU (a C-STORE command, a
    pending response) waits for the peer's delayed ACK: about 40 ms per instance on Linux."""
    sock = getattr(event.assoc.dul.socket, "socket", None)
    if sock is not None:
        with contextlib.suppress(OSError):  # not a TCP socket: correct, only slower
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _in_use(exc: OSError) -> bool:
    return exc.errno == errno.EADDRINUSE


# -- sending instances ---------------------------------------------------------------------------


def _send(
    instances: list[Instance],
    association: Callable[[], Association | None],
    event: evt.Event,
    operation: str,
) -> Iterator[tuple[int, Dataset | None]]:
    """Yield the (status, dataset) pairs pynetdicom turns into C-STORE sub-operations.

    A file in a transfer syntax the peer accepted goes as a :class:`_StoredFile`, streamed
    from disk unparsed; one that needs converting is read with :func:`pydicom.dcmread`; one
    that cannot go is yielded as a stub that pynetdicom fails to send: that is how it is
    counted in the failed sub-operations and listed in Failed SOP Instance UID List.
    """
    started = time.perf_counter()
    sent_bytes = 0
    unsendable: dict[str, int] = {}
    for instance in instances:
        if event.is_cancelled:
            log.info("%s cancelled by the requestor", operation)
            yield CANCELLED, None
            return
        dataset, problem = _prepare(instance, association())
        if problem:
            unsendable[problem] = unsendable.get(problem, 0) + 1
        else:
            sent_bytes += instance.size
        yield CONTINUING, dataset
    seconds = time.perf_counter() - started
    log.info(
        "%s: %d instances, %.1f MB in %.2f s (%.1f MB/s)",
        operation,
        len(instances) - sum(unsendable.values()),
        sent_bytes / 1e6,
        seconds,
        sent_bytes / 1e6 / max(seconds, 1e-6),
    )
    for problem, count in unsendable.items():
        log.warning("%s: %d instances not sent: %s", operation, count, problem)


def _prepare(instance: Instance, assoc: Association | None) -> tuple[Dataset, str]:
    """The dataset to yield for ``instance``, and why it cannot be sent ('' if it can)."""
    if not Path(instance.path).is_file():
        return _stub(instance), "their files are gone (moved or deleted since indexed?)"
    stored = UID(instance.transfer_syntax)
    accepted = _accepted_syntaxes(assoc, instance.sop_class)
    if accepted is not None and stored in accepted:
        return _StoredFile(instance), ""
    decompress = False
    if accepted is not None:
        if not accepted:
            return _stub(instance), "the peer accepted no context for their SOP class"
        convertible = not stored.is_compressed and any(
            not s.is_compressed and s.is_little_endian == stored.is_little_endian for s in accepted
        )  # pynetdicom converts between implicit and explicit VR, and inflates
        if stored not in accepted and not convertible:
            if not stored.is_compressed or not accepted.intersection(_UNCOMPRESSED_LE):
                return _stub(instance), "the peer accepted none of their transfer syntaxes"
            decompress = True
    try:
        dataset = _read(instance)
    except (OSError, ValueError, EOFError):
        return _stub(instance), "their files cannot be read"
    if decompress:
        try:
            # To Explicit VR Little Endian with pydicom's decoders (pylibjpeg). The same SOP
            # Instance UID: pydicom would mint a new one, and the peer would hold it twice.
            dataset.decompress(generate_instance_uid=False)
        except Exception:  # any decoder failure: the instance fails, the retrieve goes on
            return _stub(instance), "their compression cannot be decoded here"
    return dataset, ""


def _read(instance: Instance) -> Dataset:
    dataset = dcmread(instance.path, force=True)
    if "TransferSyntaxUID" not in dataset.file_meta:  # a file without meta information
        dataset.file_meta.TransferSyntaxUID = UID(instance.transfer_syntax)
    return dataset


class _StoredFile(Dataset):
    """An instance sent as stored, from its file.

    pynetdicom 3.0 takes only a Dataset for a C-GET or C-MOVE sub-operation (a path counts
    as a failure), and a Dataset is encoded again: for a file with a few hundred (private)
    elements that costs more than sending it. This stand-in carries the path to
    :func:`_stream_stored_files`, which gives pynetdicom the path instead. Its SOP Instance
    UID is what pynetdicom lists should the sub-operation fail.
    """

    def __init__(self, instance: Instance) -> None:
        super().__init__()
        self.SOPClassUID = instance.sop_class
        self.SOPInstanceUID = instance.sop_uid
        self.instance = instance


def _stream_stored_files(assoc: Association) -> None:
    """Make ``assoc`` send each :class:`_StoredFile` from its path.

    With ``STORE_SEND_CHUNKED_DATASET`` (set by :meth:`MiniPacs.start`) pynetdicom streams a
    path from disk without parsing it (and without converting it, which is why only files
    whose own transfer syntax the peer accepted go this way). Shadowing the method on the
    instance touches this association only.
    """
    send = assoc.send_c_store
    if getattr(send, "streams_stored_files", False):
        return  # a second C-GET on the same association

    def send_c_store(dataset: Any, *args: Any, **kwargs: Any) -> Dataset:
        if isinstance(dataset, _StoredFile):
            try:
                return send(Path(dataset.instance.path), *args, **kwargs)
            except (AttributeError, ValueError):
                # Raised before anything is sent: no file meta information to stream by, or
                # a file rewritten in another syntax since it was indexed. Read it instead.
                dataset = _read(dataset.instance)
        return send(dataset, *args, **kwargs)

    send_c_store.streams_stored_files = True  # type: ignore[attr-defined]
    assoc.send_c_store = send_c_store  # type: ignore[method-assign]


def _accepted_syntaxes(assoc: Association | None, sop_class: str) -> set[UID] | None:
    """Transfer syntaxes the peer accepted for ``sop_class`` with us as SCU; None if unknown."""
    if assoc is None:
        return None
    return {
        UID(cx.transfer_syntax[0])
        for cx in assoc.accepted_contexts
        if cx.abstract_syntax == sop_class and cx.as_scu
    }


def _stub(instance: Instance) -> Dataset:
    # No SOP Class UID: pynetdicom's send_c_store refuses it before anything goes on the wire,
    # counts a failed sub-operation and lists the SOP Instance UID as failed.
    stub = Dataset()
    stub.SOPInstanceUID = instance.sop_uid
    return stub


def _store_contexts(instances: list[Instance]) -> list[PresentationContext]:
    """What to propose to a C-MOVE destination: per SOP class, each stored transfer syntax
    (so files go as they are) and uncompressed Little Endian (for decompressed copies)."""
    syntaxes: dict[str, list[str]] = {}
    for instance in instances:
        wanted = syntaxes.setdefault(instance.sop_class, [])
        if instance.transfer_syntax not in wanted and instance.transfer_syntax not in (
            _UNCOMPRESSED_LE
        ):
            wanted.append(instance.transfer_syntax)
    # The uncompressed contexts come first: with too many to propose, every class keeps one.
    contexts = [context(sop_class, list(_UNCOMPRESSED_LE)) for sop_class in syntaxes]
    contexts += [
        context(sop_class, [syntax]) for sop_class, stored in syntaxes.items() for syntax in stored
    ]
    return contexts[:MAX_CONTEXTS]


# -- queries -------------------------------------------------------------------------------------


def _status_dataset(exc: IdentifierError) -> Dataset:
    """The failure status a request the archive cannot answer gets, with its reason."""
    status = Dataset()
    status.Status = (
        IDENTIFIER_MISMATCH if isinstance(exc, IdentifierMismatch) else UNABLE_TO_PROCESS
    )
    status.ErrorComment = exc.comment[:64]  # LO: 64 characters at most
    return status
