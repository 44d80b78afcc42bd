"""What we ask of a remote node: echo, retrieve (C-GET or C-MOVE), send.

Queries go through :mod:`tui.net.find` and C-GET through :mod:`tui.net.get`, both over our
own upper layer (:mod:`tui.net.dul`): pynetdicom's per-message work was their bottleneck.
Echo, C-MOVE and send use pynetdicom. Every failure becomes a
:class:`~tui.net.errors.NetError`: one line, with what the DICOM status means and the
likely fix.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tui.archive.holdings import study_instances
from tui.net import errors
from tui.net.dul import Command
from tui.net.get import Identifier, Instance, c_get
from tui.net.nodes import RECEIVE_PORT, Node
from tui.net.status import (
    CANCELLED,
    COMPLETED,
    COUNT_TAGS,
    FAILED,
    GET,
    MOVE,
    PENDING,
    REMAINING,
    STORAGE,
    Statuses,
    category,
    status_text,
)
from tui.net.storage import Filer, Incoming, Tally
from tui.net.tls import client_context, server_context

if TYPE_CHECKING:  # pydicom and pynetdicom are imported where used: a C-GET loads neither
    from pydicom.dataset import Dataset
    from pynetdicom import AE
    from pynetdicom.association import Association
    from pynetdicom.presentation import PresentationContext

log = logging.getLogger(__name__)

_MOVE_HINT = {
    0xA801: "the PACS does not know the move destination {dest}: add {dest} with this "
    "machine's address and port {port} (where we listen) to the PACS's known nodes, or use "
    'C-GET (method = "get")',
    0xA701: "the PACS is out of resources for the matches: retrieve fewer at a time",
    0xA702: "the PACS could not send the images: check that it knows {dest} at this "
    "machine's port {port} (where we listen) and can reach it",
}


# -- associations ------------------------------------------------------------------------


def make_ae(node: Node) -> AE:
    from pynetdicom import AE

    import tui.net.contexts  # noqa: F401  (sets pynetdicom up: no identifiers in its logs)

    ae = AE(ae_title=node.calling_aet)
    ae.connection_timeout = node.connect_timeout
    ae.acse_timeout = node.acse_timeout
    ae.dimse_timeout = node.dimse_timeout
    ae.network_timeout = node.network_timeout
    ae.maximum_pdu_size = node.pdu_limit
    return ae


@contextmanager
def associate(node: Node, contexts: list[PresentationContext]) -> Iterator[Association]:
    """An established association with ``node``, released (or aborted) afterwards."""
    ae = make_ae(node)
    ae.requested_contexts = contexts
    tls = (client_context(node), node.host) if node.tls else None
    started = time.monotonic()
    assoc = ae.associate(node.host, node.port, ae_title=node.aet, tls_args=tls)
    if not assoc.is_established:
        raise _not_established(node, assoc, time.monotonic() - started)
    try:
        yield assoc
    except BaseException:
        if assoc.is_established:
            assoc.abort()
        raise
    else:
        if assoc.is_established:
            assoc.release()
        if assoc.is_aborted:
            raise errors.aborted(node, "the transfer")
    finally:
        ae.shutdown()


def _not_established(
    node: Node, assoc: Association, waited: float, peer: str = "PACS", what: str = "DICOM"
) -> errors.NetError:
    """Why there is no association, in words; ``peer`` names what the node is (a printer's
    errors say "printer") and ``what`` the port it should be."""
    if assoc.is_rejected and assoc.acceptor.primitive is not None:
        rj = assoc.acceptor.primitive
        return errors.rejected(node, rj.result or 0, rj.result_source or 0, rj.diagnostic or 0)
    failure = connection_failure(node, peer)
    if failure is not None:
        return failure
    if waited >= node.acse_timeout * 0.95:  # pynetdicom reports its timeout as an abort
        return errors.timed_out(node, "association negotiation", node.acse_timeout, peer=peer)
    if assoc.is_aborted:
        return errors.aborted(node, "association negotiation", peer=peer)
    return errors.NetError(
        f"{node.name} ({node.address}) accepted the connection but no association followed: "
        f"check the port speaks {what}" + ("" if node.tls else " (or whether it wants TLS)")
    )


def connection_failure(node: Node, peer: str = "PACS") -> errors.NetError | None:
    """Why we cannot connect (pynetdicom only logs it), found by connecting again."""
    import socket

    try:
        with socket.create_connection((node.host, node.port), node.connect_timeout) as sock:
            if node.tls:
                with client_context(node).wrap_socket(sock, server_hostname=node.host):
                    pass
    except OSError as exc:
        return errors.connect_failed(node, exc, peer=peer)
    return None


# -- echo --------------------------------------------------------------------------------


def echo(node: Node) -> tuple[float, float]:
    """C-ECHO ``node``: seconds for the whole exchange and for the C-ECHO alone (for a
    DICOMweb node, a QIDO-RS of one study: with the connection, and alone)."""
    if node.dicomweb:
        from tui.net.dicomweb.qido import echo as qido_echo

        return qido_echo(node)
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

    from tui.net.contexts import UNCOMPRESSED, context

    started = time.perf_counter()
    with associate(node, [context(Verification, UNCOMPRESSED)]) as assoc:
        sent = time.perf_counter()
        status = assoc.send_c_echo()
        answered = time.perf_counter()
        if not status or "Status" not in status:
            raise errors.timed_out(node, "the C-ECHO", node.dimse_timeout)
        if status.Status != 0:
            raise errors.NetError(f"{node.name}: C-ECHO answered {status_text(status.Status)}")
    return time.perf_counter() - started, answered - sent


# -- retrieve ----------------------------------------------------------------------------


@dataclass
class Transfer:
    """A retrieve as it goes: for progress lines and the app's transfer queue."""

    expected: int | None = None  # instances the PACS said it would send
    tally: Tally = field(default_factory=Tally)
    skipped: int = 0  # already in the archive: not asked for again
    failed_remote: int = 0  # sub-operations the PACS reported as failed
    warnings: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.tally.received + self.tally.failed

    @property
    def present(self) -> int:
        """Instances already here: not asked for, or sent and found identical."""
        return self.skipped + self.tally.present

    @property
    def failed(self) -> int:
        """Instances that did not arrive: refused here, or failed at the PACS."""
        return self.tally.failed + self.failed_remote


Progress = Callable[[Transfer], None]


def retrieve(
    node: Node,
    archive_root: Path,
    study: str,
    series: str | None = None,
    method: str | None = None,
    model: str = "study",
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    receive_port: int = RECEIVE_PORT,
) -> Transfer:
    """Bring a study (or one series) from ``node`` into the archive at ``archive_root``.

    Instances already in the archive are not asked for again (a retrieve that was stopped
    resumes); the others are filed into the managed store and indexed as they arrive.
    ``method`` is ``get`` (C-GET: one association, through firewalls) or ``move`` (C-MOVE
    to our storage SCP on ``receive_port``, or to the receiver already running there).
    """
    if not study:
        raise errors.NetError("which study? a retrieve needs its StudyInstanceUID")
    if node.dicomweb:  # WADO-RS, with the same counts and progress
        if method == "move":
            raise errors.NetError(
                f"{node.name} is a DICOMweb node: it has no C-MOVE (leave out --method move: "
                "WADO-RS brings the images on its own)"
            )
        from tui.net.dicomweb.wado import retrieve as wado_retrieve

        return wado_retrieve(node, archive_root, study, series, Transfer(), progress, cancel)
    method = method or node.method
    transfer = Transfer()
    # A C-GET's arrivals come on this thread, one after another: indexed in batches of
    # 50 ms. C-MOVE's come on the receiver's threads, each indexed on its own.
    filer = Filer(archive_root, batch=0.05 if method == "get" else 0.0)
    try:
        wanted, classes = _what_to_ask(node, filer, study, series, transfer)
        if not wanted:
            return transfer  # everything is here already
        if method == "get":
            _get(node, filer, wanted, classes, model, transfer, progress, cancel)
        else:
            _move(node, filer, wanted, model, transfer, progress, cancel, receive_port)
    finally:
        filer.close()
    return transfer


def _what_to_ask(
    node: Node, filer: Filer, study: str, series: str | None, transfer: Transfer
) -> tuple[list[Identifier], set[str]]:
    """The identifiers to retrieve with, and the SOP classes coming.

    The PACS is asked which instances it holds (a C-FIND at IMAGE level): those the
    archive has are left out, and the storage contexts we offer are exactly the SOP
    classes that will come. A PACS that does not answer image-level queries gets a plain
    study (or series) retrieve with all the usual storage classes offered.
    """
    from tui.net.find import find

    keys = {"StudyInstanceUID": study, "SeriesInstanceUID": series or "",
            "SOPInstanceUID": "", "SOPClassUID": ""}  # fmt: skip
    try:
        remote = list(find(node, "image", keys))
    except errors.QueryRefused:  # not a dead PACS: that would fail the retrieve just the same
        log.info("image-level query refused; retrieving the whole level")
        whole = _identifier("SERIES" if series else "STUDY", study, series)
        return [whole], set()
    if not remote:
        where = f"series {series}" if series else f"study {study}"
        raise errors.NetError(f"{node.name} ({node.address}) has no {where}")
    have = study_instances(filer.archive, study)
    missing = [r for r in remote if r.get("SOPInstanceUID") not in have]
    transfer.skipped = len(remote) - len(missing)
    transfer.expected = len(missing)
    classes = {r["SOPClassUID"] for r in missing if r.get("SOPClassUID")}
    if not missing:
        return [], classes
    if not transfer.skipped:
        return [_identifier("SERIES" if series else "STUDY", study, series)], classes
    by_series: dict[str, list[str]] = {}
    for r in missing:
        by_series.setdefault(r.get("SeriesInstanceUID", ""), []).append(r["SOPInstanceUID"])
    identifiers = []
    for series_uid, uids in by_series.items():
        for start in range(0, len(uids), 500):  # a UID list of sane length per request
            identifiers.append(
                Identifier("IMAGE", study, series_uid, tuple(uids[start : start + 500]))
            )
    return identifiers, classes


def _identifier(level: str, study: str, series: str | None) -> Identifier:
    return Identifier(level, study, series or "")


def _get(
    node: Node,
    filer: Filer,
    identifiers: list[Identifier],
    classes: set[str],
    model: str,
    transfer: Transfer,
    progress: Progress | None,
    cancel: threading.Event | None,
) -> None:
    def store(_: Instance) -> Incoming:
        if transfer.tally.full:  # the next instance would fail too: stop the PACS sending
            raise errors.disk_full(filer.store, transfer.tally.full, transfer.tally.new)
        return filer.incoming(transfer.tally, (lambda: progress(transfer)) if progress else None)

    def on_response(command: Command) -> None:
        assert command.status is not None  # c_get hands on only responses with a status
        _on_status(
            node, transfer, GET, command.status, command.counts,
            command.error_comment, "",
        )  # fmt: skip

    c_get(node, identifiers, classes, model, store, on_response, cancel)


def _move(
    node: Node,
    filer: Filer,
    identifiers: list[Identifier],
    model: str,
    transfer: Transfer,
    progress: Progress | None,
    cancel: threading.Event | None,
    receive_port: int,
) -> None:
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        PatientRootQueryRetrieveInformationModelMove,
        StudyRootQueryRetrieveInformationModelMove,
    )

    from tui.net.contexts import UNCOMPRESSED, context

    move_model = (
        PatientRootQueryRetrieveInformationModelMove
        if model == "patient"
        else StudyRootQueryRetrieveInformationModelMove
    )
    from tui.net.receiver import Receiver, receiving_here

    # Over TLS, the PACS calls our storage SCP over TLS too: it shows our certificate
    # (tls_cert/tls_key) and trusts callers the node's CA signed.
    ssl_context = (
        server_context(node.tls_cert, node.tls_key, node.tls_ca)
        if node.tls and node.tls_cert
        else None
    )
    receiver: Receiver | None = Receiver(
        filer, node.destination, port=receive_port, tally=transfer.tally,
        on_filed=(lambda _: progress(transfer)) if progress else None, ssl_context=ssl_context,
    )  # fmt: skip
    try:
        receiver.start()  # type: ignore[union-attr]
    except OSError:  # taken: fine if by a receiver (pacs-tui receive) filing here
        receiver = None
        if not receiving_here(filer.store, receive_port):
            raise errors.NetError(
                f"port {receive_port} is taken, and not by a receiver filing into this archive: "
                f"the images would go there; stop it, or use get --port with a free port the "
                f"PACS knows for {node.destination}"
            ) from None
        transfer.warnings.append(f"the receiver already on port {receive_port} files the images")
    try:
        with associate(node, [context(move_model, UNCOMPRESSED)]) as assoc:
            for identifier in identifiers:
                if cancel is not None and cancel.is_set():
                    break  # stopped: the identifiers after it are not asked for
                responses = assoc.send_c_move(
                    identifier.dataset(), node.destination, move_model, msg_id=1
                )
                _follow(
                    node, assoc, responses, move_model, transfer, MOVE,
                    cancel, node.destination, progress if receiver is None else None,
                    receive_port,
                )  # fmt: skip
    finally:
        if receiver is not None:
            receiver.stop()


def _follow(
    node: Node,
    assoc: Association,
    responses: Iterator[tuple[Dataset, Dataset | None]],
    query_model: str,
    transfer: Transfer,
    service: Statuses,
    cancel: threading.Event | None,
    destination: str,
    progress: Progress | None = None,
    port: int = RECEIVE_PORT,
) -> None:
    """Read pynetdicom's C-MOVE responses to the end; cancel (C-CANCEL) when asked."""
    cancelled = False
    for status, _ in responses:
        if cancel is not None and cancel.is_set() and not cancelled:
            cancelled = True
            assoc.send_c_cancel(1, query_model=query_model)
        if not status or "Status" not in status:
            if not assoc.is_established:
                raise errors.aborted(node, "the retrieve")
            raise errors.timed_out(node, "the retrieve", node.dimse_timeout)
        counts = {tag: int(status[tag].value) for tag in COUNT_TAGS
                  if tag in status and status[tag].value is not None}  # fmt: skip
        comment = str(status.get("ErrorComment") or "").strip()
        code = int(status.Status)
        _on_status(node, transfer, service, code, counts, comment, destination, progress, port)
        if code not in PENDING:
            return


def _on_status(
    node: Node,
    transfer: Transfer,
    service: Statuses,
    code: int,
    counts: Mapping[int, int],
    comment: str,
    destination: str,
    progress: Progress | None = None,
    port: int = RECEIVE_PORT,
) -> None:
    """What one C-GET or C-MOVE response means for ``transfer``; a failure raises.

    Parameters
    ----------
    service
        The service's status meanings (C-GET's or C-MOVE's), for messages.
    code
        The response's status: pending, or the final one.
    counts
        Its sub-operation counts by tag (:data:`~tui.net.status.COUNT_TAGS`), those it has.
    comment
        Its ErrorComment ("" when none).
    destination
        The C-MOVE destination, named in hints; "" for a C-GET.
    progress
        For a C-MOVE into another process (the running receiver), which files what comes
        where we cannot count it: the PACS's counts are reported instead.
    port
        Where our storage SCP listened for the C-MOVE, named in hints.

    Raises
    ------
    NetError
        For a failure status: what it means and, where one is known, the likely fix.
    """
    remaining = counts.get(REMAINING)
    if remaining is not None and transfer.expected is None:
        done = sum(counts.get(tag, 0) for tag in COUNT_TAGS if tag != REMAINING)
        transfer.expected = remaining + done
    if progress is not None:
        if COMPLETED in counts:
            transfer.tally.new = counts[COMPLETED]
        progress(transfer)
    if code in PENDING:
        return
    transfer.failed_remote += counts.get(FAILED, 0)
    if code == CANCELLED:
        return  # cancelled, as asked
    if category(code) == "Failure":
        hint = _MOVE_HINT.get(code, "") if destination else ""
        if not hint and destination and not transfer.done:
            hint = _MOVE_HINT[0xA801].replace("does not know", "may not know")
        raise errors.NetError(
            f"{node.name} ({node.address}): {status_text(code, service)}"
            + (f" ({comment})" if comment else "")
            + (f": {hint.format(dest=destination, port=port)}" if hint else "")
        )
    if code != 0:
        transfer.warnings.append(status_text(code, service))


# -- send --------------------------------------------------------------------------------


@dataclass
class Sent:
    sent: int = 0
    transcoded: int = 0
    failed: list[str] = field(default_factory=list)  # one line per instance that failed
    refused: list[str] = field(default_factory=list)  # left out by the transform, and why
    bytes: int = 0


def send(
    node: Node,
    files: list[tuple[str, str, str]],
    progress: Callable[[Sent, int], None] | None = None,
    cancel: threading.Event | None = None,
    transform: Callable[[Dataset], None] | None = None,
) -> Sent:
    """C-STORE ``files`` (path, SOP class, transfer syntax) to ``node``.

    Each SOP class is offered in its stored transfer syntax and, separately,
    uncompressed: a peer that refuses the stored (compressed) syntax gets the instance
    decoded to one it accepts.

    ``transform`` (the de-identifier) changes each instance before it goes; an
    exception with a ``reason`` from it (an image refused for burned-in text) leaves
    that instance out, listed in ``refused``; any other leaves it out as failed: an
    instance the transform could not make safe never goes out as it is.
    """
    from pydicom import dcmread
    from pydicom.uid import UID

    from tui.net.contexts import UNCOMPRESSED, context

    result = Sent()
    if node.dicomweb:  # STOW-RS in bounded requests, with the same counts
        from tui.net.dicomweb.stow import send as stow

        return stow(node, files, result, progress, cancel, transform)
    pairs = sorted({(sop_class, syntax) for _, sop_class, syntax in files})
    contexts = [context(c, [s]) for c, s in pairs]
    contexts += [context(c, UNCOMPRESSED) for c in sorted({c for c, _ in pairs})]
    if len(contexts) > 128:
        raise errors.NetError(
            f"{len(pairs)} kinds of instance in one send: more than one association allows; "
            "send fewer series at a time"
        )
    with associate(node, contexts) as assoc:
        accepted = {(cx.abstract_syntax, cx.transfer_syntax[0]) for cx in assoc.accepted_contexts}
        for path, sop_class, syntax in files:
            if cancel is not None and cancel.is_set():
                break
            try:
                ds = _transformed(path, transform) if transform else None
            except Exception as exc:  # unreadable, refused or not made safe: it does not go
                reason = getattr(exc, "reason", None)  # pixels.Refused: burned-in text
                if isinstance(reason, str):
                    result.refused.append(f"{path}: {reason}")
                else:
                    result.failed.append(f"{path}: {type(exc).__name__}: {exc}".splitlines()[0])
                continue
            if ds is not None:
                syntax = str(ds.file_meta.TransferSyntaxUID)  # blanking may decode it
            try:
                if (sop_class, syntax) in accepted:
                    status = assoc.send_c_store(ds if ds is not None else Path(path))
                else:
                    target = next((s for s in UNCOMPRESSED if (sop_class, s) in accepted), None)
                    if target is None:
                        result.failed.append(f"{path}: {node.name} accepts no {sop_class}")
                        continue
                    ds = ds if ds is not None else dcmread(path)
                    # to Explicit VR Little Endian, which every peer takes; the same instance,
                    # so the same UID (pydicom would make a new one)
                    ds.decompress(generate_instance_uid=False)
                    if target != ds.file_meta.TransferSyntaxUID:
                        ds.file_meta.TransferSyntaxUID = UID(target)
                    status = assoc.send_c_store(ds)
                    result.transcoded += 1
            except Exception as exc:  # a file changed or broken since it was indexed: the
                # others still go (pydicom and pynetdicom raise several kinds for such files)
                result.failed.append(f"{path}: {type(exc).__name__}: {exc}".splitlines()[0])
                continue
            if not status or "Status" not in status:
                raise errors.aborted(node, "the send")
            if category(int(status.Status)) == "Failure":
                text = status_text(int(status.Status), STORAGE)
                result.failed.append(f"{path}: {text}")
            else:
                result.sent += 1
                result.bytes += Path(path).stat().st_size
            if progress:
                progress(result, len(files))
    return result


def _transformed(path: str, transform: Callable[[Dataset], None]) -> Dataset:
    """``path`` read whole and passed through ``transform``."""
    from pydicom import dcmread

    ds = dcmread(path)
    transform(ds)
    return ds
