"""A minimal DICOM Upper Layer client (PS3.8): just enough for C-FIND without pynetdicom.

pynetdicom turns every C-FIND response into pydicom datasets and events; for 10,000 matches
that costs seconds (see ``benchmarks/bench_find.py``). Here an association is a socket and
a receive buffer: requests are written as bytes, responses come back as the raw bytes of
their command set and dataset, and the caller decodes only the elements it shows.
C-GET (:mod:`tui.net.get`) runs over it too, for the same reason; pynetdicom stays in charge
of everything else (echo, C-MOVE, send, our SCPs).

What is handled: A-ASSOCIATE-RQ with several presentation contexts and SCP/SCU role
selection (for C-GET, :mod:`tui.net.get`), A-ASSOCIATE-AC/RJ, P-DATA-TF fragmented to the
peer's maximum PDU length and reassembled from PDVs, A-RELEASE-RQ/RP and A-ABORT, over TCP
or TLS. Every failure, a peer speaking garbage included, becomes a one-line
:class:`~tui.net.errors.NetError`.

The peer is not trusted (issue 12). The rules of PS3.8 this layer keeps:

* ARTIM (9.1.5): negotiation and release each have one deadline, ``acse_timeout`` from the
  start, however the peer spaces its bytes (:class:`Deadline`).
* Maximum length (D.1): we advertise :attr:`Node.pdu_limit`, never 0 ("any"), and a PDU that
  announces more is a protocol error before a byte of it is read; the receive buffer grows
  only as bytes arrive. A message is capped too: its command set at 64 KiB, a dataset held in
  memory at 64 MiB, a dataset written to a sink (a C-GET's image, streamed to a file as it
  comes) at 2 GiB. A message must keep coming: its deadline starts at the caller's timeout
  and is renewed only by each 64 KiB received, so a trickle ends as a timeout.
* A-ASSOCIATE-AC (9.3.3): the protocol version must include version 1, the application
  context must be DICOM's, a context is taken only with a transfer syntax we proposed for
  it, and an SCP role is ours only where the role selection reply grants it (D.3.3.4).
* P-DATA-TF (9.3.5): every PDV names an accepted context, all fragments of a message name
  the same one, a command comes before its dataset, and a message ends with its last
  fragment.
* A-ABORT (9.3.8): the peer's source and reason are reported in words; we abort as the
  service provider (source 2) with reason 2 (unexpected PDU) or 6 (invalid parameter) when
  the peer breaks these rules, and as the service user on timeouts and cancels.
* A-RELEASE (7.2): the release collision of 7.2.2 (both sides ask at once) is answered.

What it skips: the association's state machine is implicit in the order of calls (we are
always the requestor; an A-ASSOCIATE-RQ from the peer is a protocol error), user identity,
asynchronous operations and extended negotiation are never proposed, and the AE titles in
the AC are not checked (PS3.8 9.3.3 says they are not to be tested).

One module of about 900 lines on purpose: the PDU encoding, the association's states and the
receive buffer that reassembles messages are one protocol, read and fuzzed together;
split, each part would lean on the others' private helpers.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import Protocol

from tui import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from tui.archive.elements import LONG_VRS, RawElements, Unsupported, _Buffer, _walk
from tui.net import errors
from tui.net.nodes import Node
from tui.net.status import COUNT_TAGS
from tui.net.tls import client_context

log = logging.getLogger(__name__)

IMPLICIT_VR_LE = "1.2.840.10008.1.2"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"  # the DICOM application context name

# PDU types (PS3.8 9.3).
_ASSOCIATE_RQ, _ASSOCIATE_AC, _ASSOCIATE_RJ = 0x01, 0x02, 0x03
_P_DATA, _RELEASE_RQ, _RELEASE_RP, _ABORT = 0x04, 0x05, 0x06, 0x07
_PDU_NAMES = {
    _ASSOCIATE_RQ: "A-ASSOCIATE-RQ",
    _ASSOCIATE_AC: "A-ASSOCIATE-AC",
    _ASSOCIATE_RJ: "A-ASSOCIATE-RJ",
    _P_DATA: "P-DATA-TF",
    _RELEASE_RQ: "A-RELEASE-RQ",
    _RELEASE_RP: "A-RELEASE-RP",
    _ABORT: "A-ABORT",
}
_HEADER = struct.Struct(">BxL")  # PDU type, reserved, length of what follows
_PDV = struct.Struct(">LBB")  # PDV item length, presentation context ID, message control header
_ITEM = struct.Struct(">BxH")  # variable item type, reserved, length
_NEGOTIATION_LIMIT = 1 << 20  # no A-ASSOCIATE-AC is this long; a longer one is garbage
_COMMAND_LIMIT = 1 << 16  # a command set is a few hundred bytes
_DATASET_LIMIT = 1 << 26  # a dataset held in memory (a C-FIND match): 64 MiB is garbage
_SINK_LIMIT = 1 << 31  # a dataset written to a sink (an image): 2 GiB, what PS3.10 files hold
_PROGRESS = 1 << 16  # bytes of a message that renew its deadline: a trickle times out
_FRAGMENT_COST = 256  # bytes a fragment counts for against the caps beyond its data
_CHUNK = 1 << 18  # bytes asked of the socket at a time
_POLL = 0.1  # seconds between looks at a cancel event while waiting
CANCEL_GRACE = 5.0  # seconds a PACS gets to end an operation after our C-CANCEL: then A-ABORT
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only

# Command set (PS3.7 E.1): the elements a message carries that we act on.
AFFECTED_SOP_CLASS, COMMAND_FIELD, MESSAGE_ID = 0x00000002, 0x00000100, 0x00000110
RESPONDED_TO, PRIORITY, DATASET_TYPE = 0x00000120, 0x00000700, 0x00000800
STATUS, ERROR_COMMENT, AFFECTED_SOP_INSTANCE = 0x00000900, 0x00000902, 0x00001000
MAX_CONTEXTS = 128  # PS3.8 9.3.2.2: context IDs are the odd numbers 1 to 255
NO_DATASET = 0x0101  # CommandDataSetType: no dataset follows
HAS_DATASET = 0x0001  # CommandDataSetType: any other value means a dataset follows
_COMMAND_WANTED = frozenset({AFFECTED_SOP_CLASS, COMMAND_FIELD, MESSAGE_ID, RESPONDED_TO,
                             DATASET_TYPE, STATUS, ERROR_COMMENT, AFFECTED_SOP_INSTANCE,
                             *COUNT_TAGS})  # fmt: skip
_IMPLICIT = struct.Struct("<HHL")  # group, element, length
_EXPLICIT = struct.Struct("<HH2sH")  # group, element, VR, length (short VRs)
_UNDEFINED = 0xFFFFFFFF
# VRs with a 2-byte length in explicit VR (PS3.5 7.1.2); anything else is not a VR.
_SHORT_VRS = frozenset({b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS",
                        b"LO", b"LT", b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL",
                        b"US"})  # fmt: skip
_AE_TAGS = frozenset({0x00000600, 0x00001030})  # the AE titles a command may carry


class Interrupted(Exception):
    """The cancel event was set while :meth:`Association.receive` waited."""


class Deadline:
    """A moment (on the monotonic clock) by which something must be done.

    One deadline runs through a whole phase (negotiation, release, the drain after a
    C-CANCEL, one message), so a peer that sends a byte now and then cannot stretch it:
    a timeout that restarted on every byte received could be held open forever.

    Parameters
    ----------
    seconds
        How long from now.
    renewable
        Whether :meth:`progress` may push it back: for a message, whose size we cannot know
        in advance, every 64 KiB received earns another ``seconds``.
    """

    __slots__ = ("_credit", "end", "renewable", "seconds")

    def __init__(self, seconds: float, renewable: bool = False) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.renewable = renewable
        self._credit = 0

    def left(self) -> float:
        """Seconds until the deadline (0 or less once it has passed)."""
        return self.end - time.monotonic()

    def progress(self, received: int) -> None:
        """Count ``received`` bytes of the message; renew the deadline per 64 KiB."""
        if self.renewable:
            self._credit += received
            if self._credit >= _PROGRESS:
                self._credit = 0
                self.end = time.monotonic() + self.seconds


class Sink(Protocol):
    """Where a message's dataset goes as its fragments arrive (:meth:`Association.receive`)."""

    def write(self, data: memoryview) -> None:
        """Take the next fragment (a view valid only during the call)."""

    def discard(self) -> None:
        """The message will never be whole (the association failed): drop what was written."""


SinkFor = Callable[[int, "Command"], Sink | None]  # (context ID, command) -> a sink, or None


@dataclass(frozen=True, slots=True)
class Context:
    """An accepted presentation context, and whether the peer granted us the SCP role for
    its SOP class (role selection, PS3.7 D.3.3.4: C-GET's storage contexts need it)."""

    id: int
    abstract_syntax: str
    transfer_syntax: str
    scp_role: bool = False

    @property
    def implicit(self) -> bool:
        return self.transfer_syntax == IMPLICIT_VR_LE


@dataclass(frozen=True, slots=True)
class Command:
    """The fields of a command set that we act on (see :func:`read_command`).

    A response has ``responded_to`` and ``status``; a request (a C-STORE-RQ during a C-GET)
    has ``message_id`` and the affected SOP class and instance. What a command lacks is -1
    (numbers), None (status) or "" (text).
    """

    field: int
    responded_to: int
    status: int | None
    has_dataset: bool
    error_comment: str
    counts: dict[int, int]  # sub-operation counts by tag (COUNT_TAGS), when the response has them
    message_id: int = -1
    affected_sop_class: str = ""
    affected_sop_instance: str = ""


class Message:
    """A DIMSE message as received: its context, its command (read) and its dataset.

    The dataset comes as ``fragments``, views of the PDUs it arrived in, joined once by
    ``dataset`` for a caller that reads it; or it went to ``sink`` as it came (a C-GET's
    image, written to a file), and ``fragments`` is None.
    """

    __slots__ = ("_dataset", "command", "context_id", "fragments", "sink")

    def __init__(
        self,
        context_id: int,
        command: Command,
        fragments: list[memoryview] | None,
        sink: Sink | None = None,
    ) -> None:
        self.context_id = context_id
        self.command = command
        self.fragments = fragments  # None: no dataset, or it went to the sink
        self.sink = sink
        self._dataset: bytes | None = None

    @property
    def dataset(self) -> bytes | None:
        """The dataset's bytes (None when it has none), joined on first use."""
        if self._dataset is None and self.fragments is not None:
            parts = self.fragments
            self._dataset = bytes(parts[0]) if len(parts) == 1 else b"".join(parts)
        return self._dataset


# -- encoding ------------------------------------------------------------------------------


def encode_command(fields: Sequence[tuple[int, int | str]]) -> bytes:
    """A command set in Implicit VR Little Endian with its group length, as PS3.7 6.3 asks.

    Parameters
    ----------
    fields
        ``(tag, value)`` in ascending tag order: an ``int`` is written as US, a ``str`` as a
        UID (padded with NUL) or, for the AE title tags, padded with a space.

    Returns
    -------
    bytes
        The encoded command set.
    """
    body = bytearray()
    for tag, value in fields:
        if isinstance(value, int):
            raw = struct.pack("<H", value)
        else:
            raw = value.encode("ascii")
            if len(raw) % 2:
                raw += b" " if tag in _AE_TAGS else b"\x00"
        body += struct.pack("<HHL", tag >> 16, tag & 0xFFFF, len(raw)) + raw
    return struct.pack("<HHLL", 0, 0, 4, len(body)) + bytes(body)


def read_command(node: Node, data: bytes) -> Command:
    """Decode the command set of a received message.

    Raises
    ------
    NetError
        When the bytes are not a command set.
    """
    found = read_elements(node, data, True, _COMMAND_WANTED)

    def number(tag: int) -> int | None:
        raw = found.get(tag)
        if not raw:
            return None
        if len(raw) != 2:
            raise errors.garbled(node, f"command element {tag:08X} of {len(raw)} bytes, not 2")
        return raw[0] | raw[1] << 8

    def text(tag: int) -> str:
        raw = found.get(tag)
        return raw.decode("ascii", "replace").strip(" \x00") if raw else ""

    field, dataset_type = number(COMMAND_FIELD), number(DATASET_TYPE)
    if field is None or dataset_type is None:
        raise errors.garbled(node, "a command set without CommandField or CommandDataSetType")
    responded, message_id = number(RESPONDED_TO), number(MESSAGE_ID)
    counts = {}
    for tag in COUNT_TAGS:
        count = number(tag)  # an empty count is no count
        if count is not None:
            counts[tag] = count
    return Command(
        field=field,
        responded_to=responded if responded is not None else -1,
        status=number(STATUS),
        has_dataset=dataset_type != NO_DATASET,
        error_comment=text(ERROR_COMMENT),
        counts=counts,
        message_id=message_id if message_id is not None else -1,
        affected_sop_class=text(AFFECTED_SOP_CLASS),
        affected_sop_instance=text(AFFECTED_SOP_INSTANCE),
    )


def read_elements(
    node: Node, data: bytes, implicit: bool, wanted: Collection[int]
) -> dict[int, bytes]:
    """The raw values of the ``wanted`` top-level elements of a dataset or command set.

    Parameters
    ----------
    data
        A dataset in Implicit (``implicit``) or Explicit VR Little Endian.
    wanted
        Tags to collect; all others are skipped unread.

    Raises
    ------
    NetError
        When the bytes are not a dataset in that transfer syntax.

    Notes
    -----
    A C-FIND answer is a flat list of short elements, read here by one tight loop: the
    archive's general walker (:mod:`tui.archive.elements`) took half of the per-response time
    with 10,000 answers (``benchmarks/bench_find.py``). Anything that loop does not handle,
    sequences of undefined length, goes to that walker.
    """
    try:
        found = (_scan_implicit if implicit else _scan_explicit)(data, wanted)
    except struct.error:
        found = None
    if found is not None:
        return found
    return _walk_bytes(node, data, implicit, wanted)


def _scan_implicit(data: bytes, wanted: Collection[int]) -> dict[int, bytes] | None:
    """Implicit VR Little Endian: tag, 4-byte length, value. None where it cannot go on."""
    found = {}
    unpack = _IMPLICIT.unpack_from
    pos, end = 0, len(data)
    while pos < end:
        group, element, length = unpack(data, pos)
        pos += 8
        if length == _UNDEFINED or pos + length > end:
            return None
        tag = group << 16 | element
        if tag in wanted:
            found[tag] = data[pos : pos + length]
        pos += length
    return found


def _scan_explicit(data: bytes, wanted: Collection[int]) -> dict[int, bytes] | None:
    """Explicit VR Little Endian: tag, VR, 2-byte length (or 2 reserved + 4 for long VRs)."""
    found = {}
    unpack = _EXPLICIT.unpack_from
    pos, end = 0, len(data)
    while pos < end:
        group, element, vr, length = unpack(data, pos)
        pos += 8
        if vr in LONG_VRS:
            # 2 reserved bytes (read as the short length), then the real 4-byte length
            length = int.from_bytes(data[pos : pos + 4], "little") if pos + 4 <= end else -1
            pos += 4
        elif vr not in _SHORT_VRS:
            return None
        if length < 0 or length == _UNDEFINED or pos + length > end:
            return None
        tag = group << 16 | element
        if tag in wanted:
            found[tag] = data[pos : pos + length]
        pos += length
    return found


def _walk_bytes(
    node: Node, data: bytes, implicit: bool, wanted: Collection[int]
) -> dict[int, bytes]:
    """The archive's general element walker, for what the fast loops leave."""
    out = RawElements()
    try:
        _walk(_Buffer(BytesIO(data)), 0, None, implicit, True, dict.fromkeys(wanted), out, top=True)
    except (Unsupported, struct.error, RecursionError, ValueError) as exc:
        raise errors.garbled(node, f"a dataset that cannot be read ({exc})") from None
    return {tag: value for tag, (_, value) in out.values.items()}


def _uid_item(item_type: int, uid: str) -> bytes:
    raw = uid.encode("ascii")
    return _ITEM.pack(item_type, len(raw)) + raw


def _associate_rq(
    node: Node, contexts: Sequence[tuple[str, Sequence[str]]], roles: Sequence[str] = ()
) -> bytes:
    """The A-ASSOCIATE-RQ PDU (PS3.8 9.3.2) proposing ``contexts`` with IDs 1, 3, 5...

    For each SOP class in ``roles`` an SCP/SCU Role Selection sub-item (PS3.7 D.3.3.4)
    proposes that we take the SCP role alone: the peer may then send us C-STORE requests of
    that class, as a C-GET needs.
    """
    items = bytearray(_uid_item(0x10, APPLICATION_CONTEXT))
    for index, (abstract, syntaxes) in enumerate(contexts):
        sub = _uid_item(0x30, abstract) + b"".join(_uid_item(0x40, ts) for ts in syntaxes)
        items += _ITEM.pack(0x20, 4 + len(sub)) + bytes([2 * index + 1, 0, 0, 0]) + sub
    user = bytearray(struct.pack(">BxHL", 0x51, 4, node.pdu_limit))
    user += _uid_item(0x52, IMPLEMENTATION_CLASS_UID)
    user += _uid_item(0x55, IMPLEMENTATION_VERSION_NAME)
    for uid in roles:
        raw = uid.encode("ascii")
        # UID length, UID, SCU role (0: not proposed), SCP role (1: proposed)
        user += _ITEM.pack(0x54, 4 + len(raw)) + struct.pack(">H", len(raw)) + raw + b"\x00\x01"
    if len(user) > 0xFFFF:
        raise ValueError(f"{len(roles)} role selections do not fit in an A-ASSOCIATE-RQ")
    items += _ITEM.pack(0x50, len(user)) + user
    fixed = struct.pack(">HH16s16s32x", 1, 0, _ae(node.aet), _ae(node.calling_aet))
    return _HEADER.pack(_ASSOCIATE_RQ, len(fixed) + len(items)) + fixed + bytes(items)


def _ae(title: str) -> bytes:
    return title.encode("ascii").ljust(16)


# -- the association -----------------------------------------------------------------------


class Association:
    """An established association with one node: send DIMSE messages, receive them whole.

    Open one with :meth:`open`; end it with :meth:`release` (orderly) or :meth:`abort`.
    A protocol error or timeout aborts it before the :class:`NetError` is raised, so the
    caller only has to release in a ``finally`` (a no-op once closed).
    """

    def __init__(
        self, node: Node, sock: socket.socket, contexts: dict[int, Context], peer_max_pdu: int
    ) -> None:
        self.node = node
        self.contexts = contexts
        self.peer_max_pdu = peer_max_pdu
        self.during = "the query"  # what to say we were doing when it fails
        self._sock: socket.socket | None = sock
        self._buffer = bytearray(_CHUNK)
        self._start = 0  # unread bytes are _buffer[_start:_end]
        self._end = 0
        self._timeout: float | None = None
        self._pdvs: list[tuple[int, int, memoryview]] = []  # (context, control, data) unread
        # The message being received, kept on self so an interrupted wait loses nothing:
        self._fragments: list[memoryview] = []  # what came of its command, or its dataset
        self._size = 0  # bytes of those fragments (or written to the sink)
        self._context = 0  # the context ID of its first fragment (0: none yet)
        self._command: Command | None = None  # its command, once whole, while its dataset comes
        self._sink: Sink | None = None  # where its dataset goes, if not into _fragments
        self._message_id = 0
        self._established = False  # A-ASSOCIATE-AC received: the peer speaks DICOM

    # -- opening ----------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        node: Node,
        abstract_syntaxes: Sequence[str | tuple[str, Sequence[str]]],
        transfer_syntaxes: Sequence[str] = (EXPLICIT_VR_LE, IMPLICIT_VR_LE),
        roles: Sequence[str] = (),
    ) -> Association:
        """Connect to ``node`` and negotiate one presentation context per abstract syntax.

        Parameters
        ----------
        node
            Where to connect, with our AE title, TLS files, timeouts and maximum PDU length.
        abstract_syntaxes
            The presentation contexts to propose (at most 128), in order: a SOP class (with
            ``transfer_syntaxes``) or a pair of a SOP class and its own transfer syntaxes.
            A SOP class may come more than once, with different syntaxes.
        transfer_syntaxes
            Proposed for each context given as a SOP class alone, in order of preference.
        roles
            SOP classes for which we propose to take the SCP role (and not the SCU role):
            the storage classes of a C-GET.

        Returns
        -------
        Association
            Established; ``contexts`` holds those the peer accepted (maybe none).

        Raises
        ------
        NetError
            The connection failed, the peer rejected or aborted the association, did not
            answer within ``acse_timeout`` or answered with something that is not DICOM.
        """
        proposed = [(a, transfer_syntaxes) if isinstance(a, str) else a for a in abstract_syntaxes]
        if len(proposed) > 128:  # context IDs are the odd numbers 1 to 255
            raise ValueError(f"{len(proposed)} presentation contexts: 128 at most")
        request = _associate_rq(node, proposed, roles)
        sock = _connect(node)
        assoc = cls(node, sock, {}, 0)
        assoc.during = "association negotiation"
        try:
            assoc._sendall(request)
            pdu_type, body = assoc._read_pdu(Deadline(node.acse_timeout), _NEGOTIATION_LIMIT)
            if pdu_type == _ASSOCIATE_RJ:
                if len(body) < 4:
                    raise assoc.protocol_error("an A-ASSOCIATE-RJ too short to read")
                assoc._close()
                raise errors.rejected(node, body[1], body[2], body[3])
            if pdu_type != _ASSOCIATE_AC:
                raise assoc.protocol_error(
                    f"{_PDU_NAMES.get(pdu_type, 'garbage')} instead of an answer"
                )
            assoc.contexts, assoc.peer_max_pdu = _read_ac(body, proposed, roles, assoc)
        except BaseException:
            assoc._close()
            raise
        assoc.during = "the query"
        assoc._established = True
        return assoc

    def context_for(self, abstract_syntax: str, what: str) -> Context:
        """The accepted context for ``abstract_syntax``, or a :class:`NetError` naming ``what``."""
        for context in self.contexts.values():
            if context.abstract_syntax == abstract_syntax:
                return context
        raise errors.no_context(self.node, what)

    def next_message_id(self) -> int:
        self._message_id = self._message_id % 0xFFFF + 1
        return self._message_id

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    def has_data(self) -> bool:
        """Whether received bytes wait to be read (so :meth:`receive` would not wait long)."""
        if self._pdvs or self._end > self._start:
            return True
        sock = self._sock
        if sock is None:
            return False
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        return bool(select.select([sock], [], [], 0)[0])

    # -- sending ----------------------------------------------------------------------------

    def send(self, context_id: int, command: bytes, dataset: bytes | None = None) -> None:
        """Send one DIMSE message, fragmented to fit the peer's maximum PDU length.

        Each P-DATA-TF PDU carries one PDV; the command and the dataset never share one, as
        some peers expect (PS3.8 9.3.5 allows either).
        """
        # A PDV item adds 6 bytes (length, context ID, control header) to its fragment.
        room = self.peer_max_pdu - 6 if self.peer_max_pdu > 6 else max(len(command), 1 << 20)
        out = bytearray()
        for control, data in ((0x01, command), (0x00, dataset)):
            if data is None:
                continue
            view = memoryview(data)
            for start in range(0, max(len(data), 1), room):
                piece = view[start : start + room]
                last = 0x02 if start + room >= len(data) else 0x00
                out += _HEADER.pack(_P_DATA, len(piece) + 6)
                out += _PDV.pack(len(piece) + 2, context_id, control | last) + piece
        self._sendall(bytes(out))

    # -- receiving --------------------------------------------------------------------------

    def receive(
        self,
        timeout: float | Deadline,
        interrupt: threading.Event | None = None,
        sink_for: SinkFor | None = None,
    ) -> Message:
        """The next whole DIMSE message.

        Parameters
        ----------
        timeout
            Seconds for the message to start coming, renewed by each 64 KiB of it that
            arrives (:class:`Deadline`); or a deadline of the caller's, kept as it is.
        interrupt
            Looked at every 0.1 s while waiting: when set, :class:`Interrupted` is raised
            and the association stays usable (to send C-CANCEL, for example); the next call
            goes on with the message whose fragments had come so far.
        sink_for
            Asked, once a command with a dataset is whole, where its dataset goes: a
            :class:`Sink` gets each fragment as it arrives (up to 2 GiB), so an image of any
            size never sits whole in memory; None keeps the dataset in memory (64 MiB at most).

        Raises
        ------
        NetError
            The peer aborted, closed, timed out, sent too much or sent something that is not
            DICOM. A sink of the message being received is discarded first.
        Interrupted
            ``interrupt`` was set while waiting.
        """
        deadline = timeout if isinstance(timeout, Deadline) else Deadline(timeout, True)
        try:
            while True:
                message = self._next_fragment(deadline, interrupt, sink_for)
                if message is not None:
                    return message
        except (Interrupted, KeyboardInterrupt):
            raise  # the association stays usable: a C-CANCEL may follow
        except BaseException:
            self._drop_message()
            raise

    def _next_fragment(
        self, deadline: Deadline, interrupt: threading.Event | None, sink_for: SinkFor | None
    ) -> Message | None:
        """Take one PDV into the message being received; the message once it is whole."""
        if not self._pdvs:
            self._next_pdvs(deadline, interrupt)
        context_id, control, data = self._pdvs.pop()
        is_command = bool(control & 0x01)
        if is_command != (self._command is None):  # the command comes first
            raise self.protocol_error("a dataset fragment before its command, or the reverse")
        if self._context and context_id != self._context:
            raise self.protocol_error(
                f"fragments of one message on presentation contexts {self._context} and "
                f"{context_id}"
            )
        self._context = context_id
        # Each fragment is counted with what it costs to hold, not only its bytes: a peer
        # sending empty PDVs by the million would otherwise grow the list past any cap.
        self._size += len(data) + _FRAGMENT_COST
        deadline.progress(len(data))  # data renews the deadline, headers do not
        if is_command and self._size > _COMMAND_LIMIT:
            raise self.protocol_error(f"a command set of more than {_COMMAND_LIMIT} bytes")
        if self._sink is not None:
            if self._size > _SINK_LIMIT:
                raise self.protocol_error(f"a dataset of more than {_SINK_LIMIT >> 30} GiB")
            self._sink.write(data)
        else:
            if not is_command and self._size > _DATASET_LIMIT:
                raise self.protocol_error(f"a dataset of more than {_DATASET_LIMIT >> 20} MiB")
            self._fragments.append(data)
        if not control & 0x02:
            return None  # more fragments follow
        fragments, command, sink = self._fragments, self._command, self._sink
        self._fragments, self._size, self._context = [], 0, 0
        if command is not None:  # the dataset is whole
            self._command = self._sink = None
            return Message(context_id, command, None if sink else fragments, sink)
        whole = bytes(fragments[0]) if len(fragments) == 1 else b"".join(fragments)
        try:
            command = read_command(self.node, whole)
        except errors.NetError:
            self._abort_quietly(source=2, reason=6)  # invalid PDU parameter value
            raise
        if not command.has_dataset:
            return Message(context_id, command, None)
        self._command = command
        self._context = context_id  # the dataset must follow on the command's context
        self._sink = sink_for(context_id, command) if sink_for is not None else None
        return None

    def _drop_message(self) -> None:
        """Forget the message being received (the association failed): discard its sink."""
        sink, self._sink = self._sink, None
        self._fragments, self._size, self._context, self._command = [], 0, 0, None
        if sink is not None:
            sink.discard()

    def _next_pdvs(self, deadline: Deadline, interrupt: threading.Event | None) -> None:
        """Read PDUs until a P-DATA-TF brings PDVs; queue them (reversed, for ``pop``)."""
        while True:
            pdu_type, body = self._read_pdu(deadline, self.node.pdu_limit, interrupt)
            if pdu_type == _P_DATA:
                break
            if pdu_type == _RELEASE_RQ:  # the peer ends it while we wait for an answer
                self._send_quietly(_HEADER.pack(_RELEASE_RP, 4) + bytes(4))
                self._close()
                raise errors.aborted(self.node, self.during)
            raise self.protocol_error(f"{_PDU_NAMES.get(pdu_type, 'garbage')} during a message")
        pdvs = []
        view = memoryview(body)  # fragments stay views of the PDU until joined
        pos, end = 0, len(body)
        while pos < end:
            if end - pos < 6:
                raise self.protocol_error("a P-DATA-TF item cut short")
            length, context_id, control = _PDV.unpack_from(body, pos)
            if length < 2 or pos + 4 + length > end:
                raise self.protocol_error(f"a PDV of length {length} in a PDU of {end}")
            if context_id not in self.contexts:
                raise self.protocol_error(
                    f"data on presentation context {context_id}, which was not accepted"
                )
            pdvs.append((context_id, control, view[pos + 6 : pos + 4 + length]))
            pos += 4 + length
        if not pdvs:
            raise self.protocol_error("an empty P-DATA-TF")
        pdvs.reverse()
        self._pdvs = pdvs

    def _read_pdu(
        self, deadline: Deadline, limit: int, interrupt: threading.Event | None = None
    ) -> tuple[int, bytes]:
        """One PDU: its type and the bytes after its 6-byte header.

        An A-ABORT raises at once; a length beyond ``limit`` is a protocol error before any
        of it is read (PS3.8 D.1: the peer may not send more than we advertised).
        """
        self._fill(6, deadline, interrupt)
        pdu_type, length = _HEADER.unpack_from(self._buffer, self._start)
        if pdu_type not in _PDU_NAMES:
            head = bytes(self._buffer[self._start : self._start + 6]).hex(" ")
            raise self.protocol_error(f"bytes that are not a DICOM PDU ({head})")
        if length > limit:
            raise self.protocol_error(
                f"a PDU ({_PDU_NAMES[pdu_type]}) of {length} bytes, more than the {limit} we take"
            )
        self._fill(6 + length, deadline, interrupt)
        start = self._start + 6
        with memoryview(self._buffer) as view:
            body = view[start : start + length].tobytes()  # one copy, not two
        self._start = start + length
        if pdu_type == _ABORT:
            self._close()
            source, reason = (body[2], body[3]) if len(body) >= 4 else (-1, -1)
            raise errors.peer_aborted(self.node, self.during, source, reason)
        return pdu_type, body

    def _fill(self, size: int, deadline: Deadline, interrupt: threading.Event | None) -> None:
        """Make ``size`` unread bytes available in the buffer, receiving by ``deadline``."""
        while self._end - self._start < size:
            if self._sock is None:
                raise errors.aborted(self.node, self.during)
            left = deadline.left()
            if left <= 0:
                self._abort_quietly()
                raise errors.timed_out(self.node, self.during, deadline.seconds)
            self._make_room(size)
            wait = min(left, _POLL) if interrupt is not None else left
            if wait != self._timeout:
                self._sock.settimeout(wait)
                self._timeout = wait
            free = memoryview(self._buffer)[self._end :]
            try:
                got = self._sock.recv_into(free)
                if _QUICKACK is not None:
                    # Acknowledge at once, every time (Linux clears the flag as it goes).
                    # A PACS that leaves Nagle's algorithm on (Orthanc does) holds the
                    # short tail of each image until the previous segment is acknowledged,
                    # and a delayed acknowledgement makes that 40 ms: a C-GET of 300
                    # images spent 1.9 s of its 2.9 s there (benchmarks/bench_get.py).
                    self._sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except TimeoutError:
                if interrupt is not None and interrupt.is_set():
                    raise Interrupted from None
                continue  # the deadline is looked at on the next round
            except (OSError, ssl.SSLError):
                self._close()
                raise errors.aborted(self.node, self.during) from None
            finally:
                free.release()  # the buffer may grow later: no view may outlive this
            if not got:
                # In the middle of a PDU: before the association that is a peer speaking
                # something else; after it, a PACS that died or was stopped mid-transfer.
                if self._end > self._start and not self._established:
                    raise self.protocol_error(
                        f"{self._end - self._start} bytes of a PDU, then closed the connection"
                    )
                self._close()
                raise errors.aborted(self.node, self.during)
            self._end += got

    def _make_room(self, size: int) -> None:
        """Leave room for a useful receive towards ``size`` unread bytes.

        Unread bytes move to the buffer's start when little room is left behind them. The
        buffer grows by a chunk at most beyond the bytes that came, never to a length the
        peer merely announced.
        """
        unread = self._end - self._start
        tail = len(self._buffer) - self._end
        if self._start and (
            unread == 0 or tail < _CHUNK // 4 or self._start + size > len(self._buffer)
        ):
            self._buffer[:unread] = self._buffer[self._start : self._end]
            self._start, self._end = 0, unread
        want = min(self._start + size, self._end + _CHUNK)
        need = max(want, self._end + _CHUNK // 4)
        if need > len(self._buffer):
            self._buffer.extend(bytes(need - len(self._buffer)))

    # -- ending -----------------------------------------------------------------------------

    def release(self) -> None:
        """Release the association (A-RELEASE-RQ, wait for A-RELEASE-RP) and close it.

        Data still arriving for an earlier message is skipped. When the peer does not answer
        within ``acse_timeout`` the association is aborted instead: a release never raises,
        the work is done by then.
        """
        self._drop_message()  # a half-received image's file goes, whatever state we are in
        if self._sock is None:
            return
        self.during = "release"
        released = False
        try:
            self._sendall(_HEADER.pack(_RELEASE_RQ, 4) + bytes(4))
            deadline = Deadline(self.node.acse_timeout)  # ARTIM: however the peer trickles
            while not released:
                pdu_type, _ = self._read_pdu(deadline, self.node.pdu_limit)
                if pdu_type == _RELEASE_RQ:  # both released at once (PS3.8 7.2.2)
                    self._sendall(_HEADER.pack(_RELEASE_RP, 4) + bytes(4))
                released = pdu_type in (_RELEASE_RP, _RELEASE_RQ)
        except errors.NetError:
            pass  # already closed by whichever step failed
        except BaseException:
            self._abort_quietly()
            raise
        if released:
            log.debug("released the association with %s", self.node.name)
            self._close()
        else:
            self._abort_quietly()

    def abort(self) -> None:
        """Abort the association (A-ABORT from the service user) and close the socket."""
        self._drop_message()
        self._abort_quietly()

    def _abort_quietly(self, source: int = 0, reason: int = 0) -> None:
        if self._sock is not None:
            log.debug("aborting the association with %s", self.node.name)
            self._send_quietly(_HEADER.pack(_ABORT, 4) + bytes([0, 0, source, reason]))
        self._close()

    def response_status(
        self, command: Command, field: int, message_id: int, service: str, instead: str = ""
    ) -> int:
        """The status of ``command``, which must be the ``service`` response (CommandField
        ``field``) to ``message_id``: anything else aborts the association as a protocol
        error (``instead`` names what else the caller takes, for the message)."""
        if command.field != field or command.responded_to != message_id:
            raise self.protocol_error(
                f"command 0x{command.field:04X} for message {command.responded_to} "
                f"instead of a {service} response to message {message_id}{instead}"
            )
        if command.status is None:
            raise self.protocol_error(f"a {service} response without a status")
        return command.status

    def protocol_error(self, what: str) -> errors.NetError:
        """Abort as the service provider (PS3.8 9.3.8: unexpected PDU) and say what came."""
        self._abort_quietly(source=2, reason=2)
        return errors.garbled(self.node, what)

    def _sendall(self, data: bytes) -> None:
        if self._sock is None:
            raise errors.aborted(self.node, self.during)
        try:
            if self._timeout != self.node.network_timeout:
                self._sock.settimeout(self.node.network_timeout)
                self._timeout = self.node.network_timeout
            self._sock.sendall(data)
        except TimeoutError:
            self._close()
            raise errors.timed_out(self.node, self.during, self.node.network_timeout) from None
        except (OSError, ssl.SSLError):
            self._close()
            raise errors.aborted(self.node, self.during) from None

    def _send_quietly(self, data: bytes) -> None:
        if self._sock is None:
            return
        try:
            self._sock.settimeout(1.0)
            self._timeout = 1.0
            self._sock.sendall(data)
        except (OSError, ssl.SSLError):
            pass

    def _close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    def __enter__(self) -> Association:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is None:
            self.release()
        else:
            self.abort()


def _connect(node: Node) -> socket.socket:
    """A TCP (or TLS) connection to ``node``, Nagle off: requests go out at once."""
    try:
        sock = socket.create_connection((node.host, node.port), timeout=node.connect_timeout)
    except OSError as exc:
        raise errors.connect_failed(node, exc) from None
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if node.tls:
            sock = client_context(node).wrap_socket(sock, server_hostname=node.host)
    except OSError as exc:  # ssl.SSLError is an OSError
        sock.close()
        raise errors.connect_failed(node, exc) from None
    except BaseException:
        sock.close()
        raise
    return sock


def _read_ac(
    body: bytes,
    proposed: Sequence[tuple[str, Sequence[str]]],
    roles: Collection[str],
    assoc: Association,
) -> tuple[dict[int, Context], int]:
    """The accepted presentation contexts and the peer's maximum PDU length (0: no limit).

    A context is accepted only with a transfer syntax we proposed for it; its ``scp_role``
    is set only where the peer's role selection reply grants the SCP role we proposed for
    its SOP class (no reply means the default roles: not granted, PS3.7 D.3.3.4).
    """
    if len(body) < 68:
        raise assoc.protocol_error("an A-ASSOCIATE-AC too short to read")
    if not body[1] & 0x01:  # the protocol version is a bit field; bit 0 is version 1
        raise assoc.protocol_error(f"an A-ASSOCIATE-AC for protocol version {body[:2].hex()}")
    accepted: list[tuple[int, int, str]] = []  # (context ID, proposal index, transfer syntax)
    granted: set[str] = set()
    application_context = ""
    peer_max = 0
    for item_type, item in _items(body, 68, assoc):
        if item_type == 0x10:
            application_context = _uid_text(item)
        elif item_type == 0x21 and len(item) >= 4:
            context_id, result = item[0], item[2]
            index = (context_id - 1) // 2
            if result != 0 or context_id % 2 == 0 or not 0 <= index < len(proposed):
                continue  # refused, or not one we proposed
            syntaxes = [_uid_text(s) for t, s in _items(item, 4, assoc) if t == 0x40]
            if syntaxes and syntaxes[0] in proposed[index][1]:
                accepted.append((context_id, index, syntaxes[0]))
        elif item_type == 0x50:
            for sub_type, sub in _items(item, 0, assoc):
                if sub_type == 0x51:
                    if len(sub) != 4:
                        raise assoc.protocol_error(f"a maximum length item of {len(sub)} bytes")
                    peer_max = int.from_bytes(sub, "big")
                elif sub_type == 0x54:
                    granted |= _granted_role(sub, roles, assoc)
    if application_context != APPLICATION_CONTEXT:
        got = f"application context {application_context!r}" if application_context else "none"
        raise assoc.protocol_error(f"an A-ASSOCIATE-AC with {got}, not DICOM's")
    contexts = {
        context_id: Context(context_id, proposed[index][0], syntax, proposed[index][0] in granted)
        for context_id, index, syntax in accepted
    }
    return contexts, peer_max


def _granted_role(item: bytes, roles: Collection[str], assoc: Association) -> set[str]:
    """The SOP class of one SCP/SCU Role Selection reply, if it grants us the SCP role."""
    if len(item) < 2 or len(item) != 4 + (uid_length := int.from_bytes(item[:2], "big")):
        raise assoc.protocol_error("a role selection item whose lengths do not add up")
    uid = _uid_text(item[2 : 2 + uid_length])
    scp_role = item[3 + uid_length]
    return {uid} if uid in roles and scp_role == 1 else set()


def _uid_text(raw: bytes) -> str:
    return bytes(raw).decode("ascii", "replace").strip("\x00 ")


def _items(data: bytes, pos: int, assoc: Association) -> list[tuple[int, bytes]]:
    """The variable items (type, value) of an A-ASSOCIATE PDU or item from ``pos`` on."""
    found = []
    while pos < len(data):
        if len(data) - pos < 4:
            raise assoc.protocol_error("an A-ASSOCIATE-AC item cut short")
        item_type, length = _ITEM.unpack_from(data, pos)
        if pos + 4 + length > len(data):
            raise assoc.protocol_error("an A-ASSOCIATE-AC item longer than the PDU")
        found.append((item_type, data[pos + 4 : pos + 4 + length]))
        pos += 4 + length
    return found
