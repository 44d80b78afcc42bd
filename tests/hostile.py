"""A scripted DICOM peer on loopback that breaks PS3.8 on purpose (tests/test_net_hostile.py).

The PDUs are built here byte by byte, not with the upper layer under test, so a bug there
cannot hide itself: only the command sets use ``encode_command``, whose output the real
servers in tests/test_net.py accept. :class:`Peer` plays a PACS (a script per association
it accepts); :func:`call` plays a caller of our own servers.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from io import BytesIO

from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset

from tui.net.dul import encode_command

APPLICATION_CONTEXT = b"1.2.840.10008.3.1.1.1"
VERIFICATION = "1.2.840.10008.1.1"
STORAGE = "1.2.840.10008.5.1.4.1.1."  # the root of the storage SOP classes
IMPLICIT, EXPLICIT = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1"
LAST_COMMAND, MORE_COMMAND, LAST_DATA, MORE_DATA = 0x03, 0x01, 0x02, 0x00  # PDV control
A_RELEASE_RP = bytes([0x06, 0, 0, 0, 0, 4, 0, 0, 0, 0])
HUGE_P_DATA = bytes.fromhex("04003FFFFFF0")  # a P-DATA-TF announcing 1 GiB


def pdu(kind: int, body: bytes) -> bytes:
    return struct.pack(">BxL", kind, len(body)) + body


def item(kind: int, body: bytes) -> bytes:
    return struct.pack(">BxH", kind, len(body)) + body


def pdv(context: int, control: int, data: bytes) -> bytes:
    return struct.pack(">LBB", len(data) + 2, context, control) + data


def p_data(*pdvs: bytes) -> bytes:
    return pdu(0x04, b"".join(pdvs))


def abort(source: int, reason: int) -> bytes:
    return pdu(0x07, bytes([0, 0, source, reason]))


def encode(ds: Dataset, implicit: bool = True) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, implicit
    write_dataset(fp, ds)
    return fp.getvalue()


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return bytes(data)


def read_pdu(sock: socket.socket) -> bytes:
    head = read_exactly(sock, 6)
    return head + read_exactly(sock, int.from_bytes(head[2:], "big"))


@dataclass
class Request:
    """An A-ASSOCIATE-RQ as the peer reads it."""

    contexts: dict[int, tuple[str, list[str]]]  # ID -> (abstract syntax, transfer syntaxes)
    scp_roles: list[str]  # SOP classes the caller asked the SCP role for

    def context_of(self, abstract: str) -> int:
        return next(cid for cid, (a, _) in self.contexts.items() if a == abstract)


def _uid(raw: bytes) -> str:
    return raw.decode("ascii").strip("\x00 ")


def _items(data: bytes, pos: int) -> list[tuple[int, bytes]]:
    found = []
    while pos + 4 <= len(data):
        kind, length = data[pos], int.from_bytes(data[pos + 2 : pos + 4], "big")
        found.append((kind, data[pos + 4 : pos + 4 + length]))
        pos += 4 + length
    return found


def read_request(sock: socket.socket) -> Request:
    raw = read_pdu(sock)
    assert raw[0] == 0x01, f"not an A-ASSOCIATE-RQ: {raw[:6].hex()}"
    contexts, roles = {}, []
    for kind, body in _items(raw[6:], 68):
        if kind == 0x20:
            subs = _items(body, 4)
            abstract = next(_uid(s) for k, s in subs if k == 0x30)
            contexts[body[0]] = (abstract, [_uid(s) for k, s in subs if k == 0x40])
        elif kind == 0x50:
            for sub_kind, sub in _items(body, 0):
                if sub_kind == 0x54:
                    length = int.from_bytes(sub[:2], "big")
                    if sub[3 + length]:
                        roles.append(_uid(sub[2 : 2 + length]))
    return Request(contexts, roles)


def associate_ac(
    request: Request,
    *,
    version: int = 1,
    application_context: bytes = APPLICATION_CONTEXT,
    grant_roles: bool = True,
    max_pdu: int = 16384,
    user_items: bytes | None = None,
) -> bytes:
    """An A-ASSOCIATE-AC accepting every context: storage in Explicit VR Little Endian, the
    others in Implicit, where proposed."""
    items = item(0x10, application_context)
    for cid, (abstract, syntaxes) in request.contexts.items():
        wanted = EXPLICIT if abstract.startswith(STORAGE) else IMPLICIT
        syntax = wanted if wanted in syntaxes else syntaxes[0]
        items += item(0x21, bytes([cid, 0, 0, 0]) + item(0x40, syntax.encode()))
    if user_items is None:
        user_items = item(0x51, struct.pack(">L", max_pdu)) + item(0x52, b"1.2.3.4")
        if grant_roles:
            for uid in request.scp_roles:
                raw = uid.encode()
                user_items += item(0x54, struct.pack(">H", len(raw)) + raw + b"\x00\x01")
    items += item(0x50, user_items)
    head = struct.pack(">H", version) + bytes(2) + b"PACS".ljust(16) + b"PACSTUI".ljust(16)
    return pdu(0x02, head + bytes(32) + items)


def associate_rq(
    contexts: list[tuple[str, str]], calling: bytes = b"PACSTUI", called: bytes = b"ANY"
) -> bytes:
    """An A-ASSOCIATE-RQ proposing each (abstract syntax, transfer syntax) as contexts 1, 3, …"""
    items = item(0x10, APPLICATION_CONTEXT)
    for index, (abstract, syntax) in enumerate(contexts):
        sub = item(0x30, abstract.encode()) + item(0x40, syntax.encode())
        items += item(0x20, bytes([2 * index + 1, 0, 0, 0]) + sub)
    items += item(0x50, item(0x51, struct.pack(">L", 16384)) + item(0x52, b"1.2.3.4"))
    head = struct.pack(">H", 1) + bytes(2) + called.ljust(16) + calling.ljust(16)
    return pdu(0x01, head + bytes(32) + items)


def read_message(sock: socket.socket) -> tuple[int, Dataset, bytes | None]:
    """The next DIMSE message: its context, its command, its dataset (None: none came)."""
    command, dataset = b"", b""
    while True:
        raw = read_pdu(sock)
        if raw[0] != 0x04:
            raise ConnectionError(f"PDU type {raw[0]:#x}")
        pos = 6
        while pos < len(raw):
            length, cid, control = struct.unpack_from(">LBB", raw, pos)
            fragment = raw[pos + 6 : pos + 4 + length]
            pos += 4 + length
            if control & 1:
                command += fragment
            else:
                dataset += fragment
            if control & 2:
                if control & 1:
                    parsed = read_dataset(BytesIO(command), True, True)
                    if parsed.CommandDataSetType == 0x0101:
                        return cid, parsed, None
                else:
                    return cid, parsed, dataset


def send_message(
    sock: socket.socket, cid: int, command: bytes, dataset: bytes | None = None, size: int = 16000
) -> None:
    """One message, its dataset cut into PDUs of ``size`` bytes of data."""
    out = p_data(pdv(cid, LAST_COMMAND, command))
    if dataset is not None:
        chunks = [dataset[i : i + size] for i in range(0, len(dataset), size)] or [b""]
        for n, chunk in enumerate(chunks):
            out += p_data(pdv(cid, LAST_DATA if n == len(chunks) - 1 else MORE_DATA, chunk))
    sock.sendall(out)


def response(field: int, sop_class: str, responded_to: int, status: int, *more) -> bytes:
    """A response command: (tag, value) pairs in ``more`` go after the status, in order."""
    has_dataset = 0x0001 if field == 0x8020 and status in (0xFF00, 0xFF01) else 0x0101
    return encode_command(
        [(0x00000002, sop_class), (0x00000100, field), (0x00000120, responded_to),
         (0x00000800, has_dataset), (0x00000900, status), *more]
    )  # fmt: skip


def release(sock: socket.socket) -> None:
    """Answer the caller's A-RELEASE-RQ, if it sends one."""
    with contextlib.suppress(OSError, ConnectionError):
        if read_pdu(sock)[0] == 0x05:
            sock.sendall(A_RELEASE_RP)


def trickle(sock: socket.socket, data: bytes, pause: float) -> None:
    """``data`` a byte at a time, ``pause`` seconds apart (until the other side hangs up)."""
    for byte in data:
        sock.sendall(bytes([byte]))
        time.sleep(pause)


Script = Callable[[socket.socket], None]


@dataclass
class Peer:
    """A PACS on loopback that plays ``script`` on every connection it accepts.

    ``failures`` collects scripts that broke other than by the caller hanging up (an
    assertion of the script's own, say); ``seen`` is for what a script wants to report.
    """

    script: Script
    failures: list[str] = field(default_factory=list)
    seen: list[object] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._play, args=(sock,), daemon=True).start()

    def _play(self, sock: socket.socket) -> None:
        with sock:
            try:
                self.script(sock)
            except (OSError, ConnectionError):
                pass  # the caller hung up: what these scripts expect of it
            except Exception:
                self.failures.append(traceback.format_exc())

    def close(self) -> None:
        self.listener.close()


def call(port: int, data: bytes, then: Callable[[socket.socket], None] | None = None) -> bytes:
    """Connect to our server at ``port``, send ``data``, run ``then``; what came back."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        if then is not None:
            then(sock)
        sock.settimeout(2)
        got = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                got += chunk
        return got
