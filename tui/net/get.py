"""C-GET over our own upper layer (:mod:`tui.net.dul`), without pynetdicom.

A C-GET brings each image back on the same association as a C-STORE request that we answer.
Through pynetdicom that costs about as much again as the transfer itself: its upper layer
polls with 1 ms sleeps and hands every message between threads, each C-STORE response is a
pydicom dataset encoded, and each image is copied into a file meta rebuilt by pydicom
(``benchmarks/bench_get.py``). Here an image is the bytes that came, a file meta written by
hand in front of them, and a response of six elements encoded straight to bytes.

What happens to an image is the caller's (``store``: file it, say how it went); what a
C-GET response means is the caller's too (``on_response``: counts, and the final status).
This module speaks the protocol: role selection, storage contexts, C-STORE answers,
C-CANCEL, the end of the exchange.
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, cast

from tui import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from tui.net import errors
from tui.net.dul import (
    AFFECTED_SOP_CLASS,
    AFFECTED_SOP_INSTANCE,
    CANCEL_GRACE,
    COMMAND_FIELD,
    DATASET_TYPE,
    HAS_DATASET,
    MAX_CONTEXTS,
    MESSAGE_ID,
    NO_DATASET,
    PRIORITY,
    RESPONDED_TO,
    STATUS,
    Association,
    Command,
    Context,
    Deadline,
    Interrupted,
    Message,
    Sink,
    encode_command,
)
from tui.net.nodes import Node
from tui.net.status import (
    C_CANCEL_RQ,
    C_GET_RQ,
    C_GET_RSP,
    C_STORE_RQ,
    C_STORE_RSP,
    CANNOT_UNDERSTAND,
    PENDING,
    SOP_CLASS_NOT_SUPPORTED,
)
from tui.net.syntaxes import UNCOMPRESSED, storage_proposals

if TYPE_CHECKING:  # an identifier of ours needs no pydicom: a retrieve never loads it
    from pydicom.dataset import Dataset

log = logging.getLogger(__name__)

MODELS = {
    # model: (GET SOP class UID, its name for messages)
    "study": ("1.2.840.10008.5.1.4.1.2.2.3", "Study Root Query/Retrieve - GET"),
    "patient": ("1.2.840.10008.5.1.4.1.2.1.3", "Patient Root Query/Retrieve - GET"),
}
_UID_LENGTH = 64  # PS3.5 9.1: a UID longer than this is not one
_PREAMBLE = bytes(128) + b"DICM"
_META_VERSION = struct.pack("<HH2sHL", 2, 1, b"OB", 0, 2) + b"\x00\x01"


@dataclass(frozen=True, slots=True)
class Identifier:
    """What a C-GET (or C-MOVE) asks for: a study, a series, or instances of one series.

    Encoded here, as C-FIND requests are (:mod:`tui.net.find`): pydicom's dataset and
    writer were a third of a second of a retrieve's start-up (``benchmarks/bench_get.py``).
    """

    level: str  # STUDY, SERIES or IMAGE
    study: str
    series: str = ""
    instances: tuple[str, ...] = ()  # SOPInstanceUIDs, at IMAGE level

    def encode(self, implicit: bool) -> bytes:
        """The identifier in Implicit or Explicit VR Little Endian, as pydicom writes it."""
        elements = [(0x00080052, b"CS", self.level), (0x0020000D, b"UI", self.study)]
        if self.instances:
            elements.insert(0, (0x00080018, b"UI", "\\".join(self.instances)))
        if self.series:
            elements.append((0x0020000E, b"UI", self.series))
        out = bytearray()
        for tag, vr, value in elements:
            raw = value.encode("ascii")
            if len(raw) % 2:
                raw += b"\x00" if vr == b"UI" else b" "
            if implicit:
                out += struct.pack("<HHL", tag >> 16, tag & 0xFFFF, len(raw)) + raw
            else:
                out += struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr, len(raw)) + raw
        return bytes(out)

    def dataset(self) -> Dataset:
        """The identifier as a pydicom dataset, for pynetdicom (C-MOVE)."""
        from pydicom.dataset import Dataset

        ident = Dataset()
        ident.QueryRetrieveLevel = self.level
        ident.StudyInstanceUID = self.study
        if self.series:
            ident.SeriesInstanceUID = self.series
        if self.instances:
            ident.SOPInstanceUID = list(self.instances)
        return ident


@dataclass(frozen=True, slots=True)
class Instance:
    """One instance a C-STORE request announces: what it says it is.

    ``transfer_syntax`` is the one accepted for the presentation context it came on, the
    syntax its dataset is written in.
    """

    sop_class: str
    sop_uid: str
    transfer_syntax: str

    def file_meta(self) -> bytes:
        """The preamble, ``DICM`` and the File Meta Information (PS3.10 7.1) for this
        instance: followed by its dataset, a DICOM file's bytes."""
        body = bytearray(_META_VERSION)
        for element, vr, value in (
            (0x0002, b"UI", self.sop_class),
            (0x0003, b"UI", self.sop_uid),
            (0x0010, b"UI", self.transfer_syntax),
            (0x0012, b"UI", IMPLEMENTATION_CLASS_UID),
            (0x0013, b"SH", IMPLEMENTATION_VERSION_NAME),
        ):
            raw = value.encode("ascii", "replace")
            if len(raw) % 2:
                raw += b"\x00" if vr == b"UI" else b" "
            body += struct.pack("<HH2sH", 2, element, vr, len(raw)) + raw
        group_length = struct.pack("<HH2sHL", 2, 0, b"UL", 4, len(body))
        return _PREAMBLE + group_length + bytes(body)


class Spool(Sink, Protocol):
    """Where one arriving instance is written as its fragments come (a file in the store):
    :meth:`finish` files it once whole and returns the C-STORE status to answer with."""

    def finish(self) -> int: ...


class _Refused:
    """The spool of an instance we refuse: its bytes are read off the wire and dropped."""

    def __init__(self, status: int) -> None:
        self.status = status

    def write(self, data: memoryview) -> None:
        pass

    def discard(self) -> None:
        pass

    def finish(self) -> int:
        return self.status


Store = Callable[[Instance], Spool]  # where one instance goes; its file meta comes first
OnResponse = Callable[[Command], None]  # one C-GET response (pending or final); may raise


def c_get(
    node: Node,
    identifiers: Sequence[Identifier | Dataset],
    classes: Collection[str],
    model: str,
    store: Store,
    on_response: OnResponse,
    cancel: threading.Event | None = None,
) -> None:
    """Retrieve by C-GET, one request per identifier, on one association.

    Parameters
    ----------
    node
        The PACS.
    identifiers
        The C-GET identifiers (QueryRetrieveLevel and the UIDs), sent in turn: ours, or
        pydicom datasets.
    classes
        The SOP classes coming (empty: unknown), for the storage contexts proposed
        (:func:`~tui.net.syntaxes.storage_proposals`).
    model
        study (Study Root) or patient (Patient Root).
    store
        Called with each instance as its C-STORE request begins: the :class:`Spool` it
        returns is given the file meta, then each fragment of the dataset as it arrives
        (so memory stays flat whatever the image size), then asked to ``finish``, which
        returns the status of the C-STORE response (0x0000, or a failure such as 0xA700 out
        of resources); the PACS waits for that answer before it sends the next instance.
        Should the association fail first, the spool is discarded.
    on_response
        Called with each C-GET response, the final one included: it reads the counts and
        the status, and raises (a :class:`~tui.net.errors.NetError`) for a failure.
    cancel
        When set, the C-GET is cancelled (C-CANCEL): instances still coming are filed and
        answered until the PACS's final response; identifiers after it are not sent. A PACS
        that has not ended the C-GET within a few seconds (``CANCEL_GRACE``) is aborted.

    Raises
    ------
    NetError
        The association failed (refused, aborted, timed out, garbage), the PACS accepts no
        C-GET context or grants us the storage role for no SOP class, or ``on_response``
        raised one.
    """
    sop_class, name = MODELS[model]
    # The query context first, so storage contexts are the ones cut when there are too many.
    proposed = [(sop_class, UNCOMPRESSED), *storage_proposals(classes)][:MAX_CONTEXTS]
    roles = list(dict.fromkeys(abstract for abstract, _ in proposed[1:]))
    assoc = Association.open(node, proposed, roles=roles)
    assoc.during = "the retrieve"
    try:
        context = assoc.context_for(sop_class, name)
        if not any(c.scp_role for c in assoc.contexts.values()):
            raise errors.no_storage_role(node)
        for identifier in identifiers:
            if cancel is not None and cancel.is_set():
                break  # cancelled between two requests: the next is not sent
            request = _encode(identifier, context.implicit)
            if not _get(assoc, context, request, store, on_response, cancel):
                break  # cancelled: what the identifiers after it name is not asked for
    except errors.NetError:
        # Our upper layer has closed the association on its own failures; after a failure
        # status (from on_response) it is sound, and is released in order.
        assoc.release()
        raise
    except BaseException:  # Ctrl-C, or a bug in a callback: the PACS must not wait for us
        assoc.abort()
        raise
    assoc.release()


def _encode(identifier: Identifier | Dataset, implicit: bool) -> bytes:
    """The identifier in (Implicit or Explicit VR) Little Endian, as the context wants."""
    if isinstance(identifier, Identifier):
        return identifier.encode(implicit)
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = implicit
    write_dataset(fp, identifier)
    return fp.getvalue()


def _get(
    assoc: Association,
    context: Context,
    identifier: bytes,
    store: Store,
    on_response: OnResponse,
    cancel: threading.Event | None,
) -> bool:
    """One C-GET request, answered to its final response. False when it was cancelled."""
    node = assoc.node
    message_id = assoc.next_message_id()
    request = encode_command(
        [(AFFECTED_SOP_CLASS, context.abstract_syntax), (COMMAND_FIELD, C_GET_RQ),
         (MESSAGE_ID, message_id), (PRIORITY, 0), (DATASET_TYPE, HAS_DATASET)]
    )  # fmt: skip
    assoc.send(context.id, request, identifier)

    def spool_for(context_id: int, command: Command) -> Spool | None:
        return _spool(assoc, context_id, command, store) if command.field == C_STORE_RQ else None

    grace: Deadline | None = None  # once cancelled, the PACS has until then to end it
    while True:
        if grace is None and cancel is not None and cancel.is_set():
            grace = Deadline(min(node.dimse_timeout, CANCEL_GRACE))
            log.debug("cancelling C-GET %d on %s", message_id, node.name)
            fields = [(COMMAND_FIELD, C_CANCEL_RQ), (RESPONDED_TO, message_id),
                      (DATASET_TYPE, NO_DATASET)]  # fmt: skip
            assoc.send(context.id, encode_command(fields))
        try:
            if grace is None:
                message = assoc.receive(node.dimse_timeout, cancel, spool_for)
            else:  # only the PACS ends it now, by the grace deadline
                message = assoc.receive(grace, None, spool_for)
        except Interrupted:
            continue  # the C-CANCEL goes out at the top of the loop
        except errors.NetError:
            if grace is None:
                raise
            log.debug("%s did not end the cancelled C-GET in time: aborted", node.name)
            return False  # the timeout has aborted the association; the user asked to stop
        command = message.command
        if command.field == C_STORE_RQ:
            _answer_store(assoc, message)
            continue
        status = assoc.response_status(
            command, C_GET_RSP, message_id, "C-GET", instead=" or a C-STORE request"
        )
        on_response(command)
        if status not in PENDING:
            return grace is None


def _spool(assoc: Association, context_id: int, command: Command, store: Store) -> Spool:
    """Where the dataset of one C-STORE request goes: the caller's spool, or a refusal."""
    context = assoc.contexts[context_id]
    sop_class, sop_uid = command.affected_sop_class, command.affected_sop_instance
    if command.message_id < 0 or not (sop_class + sop_uid).isascii():
        raise assoc.protocol_error("a C-STORE request without a MessageID or with non-UID UIDs")
    if context.abstract_syntax != sop_class or not context.scp_role:
        return _Refused(SOP_CLASS_NOT_SUPPORTED)  # the query context, or a role not granted
    if not 0 < len(sop_uid) <= _UID_LENGTH or len(sop_class) > _UID_LENGTH:
        return _Refused(CANNOT_UNDERSTAND)
    instance = Instance(sop_class, sop_uid, context.transfer_syntax)
    spool = store(instance)
    spool.write(memoryview(instance.file_meta()))
    return spool


def _answer_store(assoc: Association, message: Message) -> None:
    """File one C-STORE request's instance (its spool); answer with the status that gives."""
    command = message.command
    if message.sink is None:  # the request has no dataset: spool_for was not asked
        raise assoc.protocol_error("a C-STORE request without a dataset")
    status = cast(Spool, message.sink).finish()  # what spool_for gave for a C-STORE request
    sop_class, sop_uid = command.affected_sop_class, command.affected_sop_instance
    response = encode_command(
        [(AFFECTED_SOP_CLASS, sop_class), (COMMAND_FIELD, C_STORE_RSP),
         (RESPONDED_TO, command.message_id), (DATASET_TYPE, NO_DATASET), (STATUS, status),
         (AFFECTED_SOP_INSTANCE, sop_uid)]
    )  # fmt: skip
    assoc.send(message.context_id, response)
