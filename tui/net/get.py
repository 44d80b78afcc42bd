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

from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

from tui.net import errors
from tui.net.contexts import UNCOMPRESSED, storage_proposals
from tui.net.dul import (
    AFFECTED_SOP_CLASS,
    AFFECTED_SOP_INSTANCE,
    COMMAND_FIELD,
    DATASET_TYPE,
    HAS_DATASET,
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    MAX_CONTEXTS,
    MESSAGE_ID,
    NO_DATASET,
    PRIORITY,
    RESPONDED_TO,
    STATUS,
    Association,
    Command,
    Context,
    Interrupted,
    Message,
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
class Instance:
    """One instance a C-STORE request brought: what it says it is, and its bytes as sent.

    ``transfer_syntax`` is the one accepted for the presentation context it came on, the
    syntax the dataset is written in. The dataset is ``fragments``, in order, as they came
    (views of the received PDUs): written one after the other they are the dataset, with no
    copy made to join them first.
    """

    sop_class: str
    sop_uid: str
    transfer_syntax: str
    fragments: list[memoryview]

    def file_meta(self) -> bytes:
        """The preamble, ``DICM`` and the File Meta Information (PS3.10 7.1) for this
        instance: followed by its fragments, a DICOM file's bytes."""
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


Store = Callable[[Instance], int]  # file one instance; return the C-STORE status to answer
OnResponse = Callable[[Command], None]  # one C-GET response (pending or final); may raise


def c_get(
    node: Node,
    identifiers: Sequence[Dataset],
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
        The C-GET identifiers (QueryRetrieveLevel and the UIDs), sent in turn.
    classes
        The SOP classes coming (empty: unknown), for the storage contexts proposed
        (:func:`~tui.net.contexts.storage_proposals`).
    model
        study (Study Root) or patient (Patient Root).
    store
        Called with each instance that arrives; its return is the status of the C-STORE
        response (0x0000, or a failure such as 0xA700 out of resources). The PACS waits for
        that answer before it sends the next instance.
    on_response
        Called with each C-GET response, the final one included: it reads the counts and
        the status, and raises (a :class:`~tui.net.errors.NetError`) for a failure.
    cancel
        When set, the C-GET is cancelled (C-CANCEL): instances still coming are filed and
        answered until the PACS's final response; identifiers after it are not sent.

    Raises
    ------
    NetError
        The association failed (refused, aborted, timed out, garbage), the PACS accepts no
        C-GET context, or ``on_response`` raised one.
    """
    sop_class, name = MODELS[model]
    # The query context first, so storage contexts are the ones cut when there are too many.
    proposed = [(sop_class, UNCOMPRESSED), *storage_proposals(classes)][:MAX_CONTEXTS]
    roles = list(dict.fromkeys(abstract for abstract, _ in proposed[1:]))
    assoc = Association.open(node, proposed, roles=roles)
    assoc.during = "the retrieve"
    try:
        context = assoc.context_for(sop_class, name)
        for identifier in identifiers:
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


def _encode(identifier: Dataset, implicit: bool) -> bytes:
    """The identifier in (Implicit or Explicit VR) Little Endian, as the context wants."""
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
    cancelled = False
    while True:
        if not cancelled and cancel is not None and cancel.is_set():
            cancelled = True
            log.debug("cancelling C-GET %d on %s", message_id, node.name)
            fields = [(COMMAND_FIELD, C_CANCEL_RQ), (RESPONDED_TO, message_id),
                      (DATASET_TYPE, NO_DATASET)]  # fmt: skip
            assoc.send(context.id, encode_command(fields))
        try:
            # Once cancelled, wait without looking at the event: only the PACS ends it now.
            message = assoc.receive(node.dimse_timeout, None if cancelled else cancel)
        except Interrupted:
            continue  # the C-CANCEL goes out at the top of the loop
        command = message.command
        if command.field == C_STORE_RQ:
            _answer_store(assoc, message, store)
            continue
        status = assoc.response_status(
            command, C_GET_RSP, message_id, "C-GET", instead=" or a C-STORE request"
        )
        on_response(command)
        if status not in PENDING:
            return not cancelled


def _answer_store(assoc: Association, message: Message, store: Store) -> None:
    """Give one C-STORE request's instance to ``store``; answer with the status it returns."""
    command, fragments = message.command, message.fragments
    if fragments is None:
        raise assoc.protocol_error("a C-STORE request without a dataset")
    context = assoc.contexts[message.context_id]
    sop_class, sop_uid = command.affected_sop_class, command.affected_sop_instance
    if command.message_id < 0 or not (sop_class + sop_uid).isascii():
        raise assoc.protocol_error("a C-STORE request without a MessageID or with non-UID UIDs")
    if context.abstract_syntax != sop_class:  # also the query context: not for storage
        status = SOP_CLASS_NOT_SUPPORTED
    elif not 0 < len(sop_uid) <= _UID_LENGTH or len(sop_class) > _UID_LENGTH:
        status = CANNOT_UNDERSTAND
    else:
        status = store(Instance(sop_class, sop_uid, context.transfer_syntax, fragments))
    response = encode_command(
        [(AFFECTED_SOP_CLASS, sop_class), (COMMAND_FIELD, C_STORE_RSP),
         (RESPONDED_TO, command.message_id), (DATASET_TYPE, NO_DATASET), (STATUS, status),
         (AFFECTED_SOP_INSTANCE, sop_uid)]
    )  # fmt: skip
    assoc.send(message.context_id, response)
