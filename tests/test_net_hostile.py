"""Hostile peers (issue 12): our upper layer (tui/net/dul.py, under find and get) against a
scripted PACS on loopback that breaks PS3.8 in every way a PACS we do not control could, and
our pynetdicom-based servers (`serve`, `receive`) against the same bytes from a caller.

Every case runs the real command in its own process and checks that it ends within its
deadline with one clear line and a non-zero exit, that its peak memory stays bounded (the
process's own, from ``os.wait4``) and that nothing partial is filed or indexed. The servers
must stay up and answer the next good C-ECHO.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.conftest import cli_json, run_cli
from tests.hostile import (
    EXPLICIT,
    HUGE_P_DATA,
    IMPLICIT,
    LAST_COMMAND,
    LAST_DATA,
    MORE_COMMAND,
    MORE_DATA,
    VERIFICATION,
    Peer,
    Request,
    abort,
    associate_ac,
    associate_rq,
    call,
    encode,
    item,
    p_data,
    pdu,
    pdv,
    read_message,
    read_pdu,
    read_request,
    release,
    response,
    send_message,
    trickle,
)
from tests.rusage import launched, usage
from tests.servers import free_port
from tests.synthetic import AXIAL, write_series
from tui.net.dul import encode_command

TIMEOUT = 2.0  # the node's timeouts (association, response, network) in seconds
SLACK = 3.0  # process start and exit, on a loaded 2-core machine
GET_STUDY = "1.2.840.10008.5.1.4.1.2.2.3"
FIND_STUDY = "1.2.840.10008.5.1.4.1.2.2.1"
CT = "1.2.840.10008.5.1.4.1.1.2"
C_STORE_RQ, C_FIND_RSP, C_GET_RSP = 0x0001, 0x8020, 0x8010
MIB = 1 << 20


@dataclass
class Run:
    """One run of the real command: its exit, output, time and peak memory."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_mb: float

    @property
    def lines(self) -> list[str]:
        return self.stderr.strip().splitlines()


def measured(*args: str, archive: Path, tmp_path: Path) -> Run:
    """``pacs-tui --archive ARCHIVE ARGS`` in its own process, with its own peak RSS."""
    out, err, report = tmp_path / "stdout", tmp_path / "stderr", tmp_path / "usage"
    command = launched([sys.executable, "-m", "tui", "--archive", str(archive), *args], report)
    start = time.monotonic()
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, start_new_session=True)
        try:
            process.wait(60)  # a hang must fail the test, not stall it
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"pacs-tui {' '.join(args)} still running after 60 s")
    seconds = time.monotonic() - start
    return Run(process.returncode, out.read_text(), err.read_text(), seconds, usage(report)[1])


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Dataset]:
    """Three small CT slices of one study: what the scripted PACS sends."""
    folder = tmp_path_factory.mktemp("images")
    write_series(folder, AXIAL, size=32, count=3)
    return [pydicom.dcmread(p) for p in sorted(folder.iterdir())]


@pytest.fixture(scope="module")
def idle_mb(tmp_path_factory: pytest.TempPathFactory) -> float:
    """The peak memory of a command that does nothing much: what a bound is counted from."""
    tmp = tmp_path_factory.mktemp("idle")
    return measured("node", "ls", archive=tmp / "archive", tmp_path=tmp).peak_mb


def hostile_node(peer: Peer) -> None:
    run_cli("node", "add", "hostile", "PACS", "127.0.0.1", str(peer.port),
            "--timeout", str(TIMEOUT), "--replace")  # fmt: skip


def assert_one_line(run: Run, *said: str, within: float = TIMEOUT + SLACK) -> None:
    assert run.returncode == 1, (run.returncode, run.stderr)
    assert len(run.lines) == 1 and "Traceback" not in run.stderr, run.stderr
    for words in said:
        assert words in run.lines[0], run.lines[0]
    assert run.seconds < within, f"{run.seconds:.1f} s: {run.lines[0]}"


# -- the scripted PACS's parts ---------------------------------------------------------------


def answer_find(sock: socket.socket, request: Request, matches: list[Dataset]) -> None:
    """Accept, answer one C-FIND with ``matches``, release."""
    sock.sendall(associate_ac(request))
    cid, command, _ = read_message(sock)
    for match in matches:
        pending = response(C_FIND_RSP, FIND_STUDY, command.MessageID, 0xFF00)
        send_message(sock, cid, pending, encode(match))
    send_message(sock, cid, response(C_FIND_RSP, FIND_STUDY, command.MessageID, 0))
    release(sock)


def instance_keys(images: list[Dataset]) -> list[Dataset]:
    """The image-level matches a retrieve asks for first (what the PACS holds)."""
    out = []
    for image in images:
        match = Dataset()
        match.QueryRetrieveLevel = "IMAGE"
        for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
            setattr(match, keyword, getattr(image, keyword))
        out.append(match)
    return out


def store_rq(image: Dataset, message_id: int) -> bytes:
    return encode_command(
        [(0x00000002, image.SOPClassUID), (0x00000100, C_STORE_RQ), (0x00000110, message_id),
         (0x00000700, 0), (0x00000800, 0x0001), (0x00001000, image.SOPInstanceUID)]
    )  # fmt: skip


def get_rsp(message_id: int, status: int, remaining: int, done: int, failed: int) -> bytes:
    return response(C_GET_RSP, GET_STUDY, message_id, status,
                    (0x00001020, remaining), (0x00001021, done), (0x00001022, failed),
                    (0x00001023, 0))  # fmt: skip


class Pacs(Peer):
    """A PACS whose image-level C-FIND answers honestly (``images``) and whose C-GET
    association is played by ``on_get(sock, request, get_message_id, get_context)``."""

    def __init__(self, images: list[Dataset], on_get, grant_roles: bool = True) -> None:
        self.images, self.on_get, self.grant_roles = images, on_get, grant_roles
        super().__init__(self._route)

    def _route(self, sock: socket.socket) -> None:
        request = read_request(sock)
        if not any(abstract == GET_STUDY for abstract, _ in request.contexts.values()):
            answer_find(sock, request, instance_keys(self.images))
            return
        sock.sendall(associate_ac(request, grant_roles=self.grant_roles))
        cid, command, _ = read_message(sock)
        self.on_get(sock, request, command.MessageID, cid)

    def send_image(self, sock: socket.socket, request: Request, image: Dataset, n: int) -> int:
        """Send one whole image; the status we answered with."""
        send_message(sock, request.context_of(CT), store_rq(image, n), dataset_of(image))
        _, answer, _ = read_message(sock)
        self.seen.append(answer.Status)
        return int(answer.Status)


def dataset_of(image: Dataset) -> bytes:
    return encode(image, implicit=False)  # the storage contexts are Explicit VR LE here


# -- a hostile PACS: C-FIND ----------------------------------------------------------------


def find(peer: Peer, tmp_path: Path, *keys: str) -> Run:
    hostile_node(peer)
    return measured("find", "hostile", *keys, archive=tmp_path / "archive", tmp_path=tmp_path)


def _after_request(then):
    """A script: accept, read the C-FIND request, then ``then(sock, context)``."""

    def script(sock: socket.socket) -> None:
        sock.sendall(associate_ac(read_request(sock)))
        cid, _, _ = read_message(sock)
        then(sock, cid)
        time.sleep(30)  # and keep the connection open: only a deadline ends this

    return script


def test_a_gigabyte_announced_during_negotiation_is_refused_before_a_byte_of_it(
    tmp_path: Path, idle_mb: float
) -> None:
    def script(sock: socket.socket) -> None:
        read_request(sock)
        sock.sendall(HUGE_P_DATA)
        time.sleep(30)

    run = find(Peer(script), tmp_path)
    assert_one_line(run, "does not speak DICOM", "1073741808 bytes, more than the 1048576",
                    within=SLACK)  # fmt: skip
    assert run.peak_mb < idle_mb + 60


def test_a_gigabyte_announced_after_association_is_refused_before_a_byte_of_it(
    tmp_path: Path, idle_mb: float
) -> None:
    run = find(Peer(_after_request(lambda sock, cid: sock.sendall(HUGE_P_DATA))), tmp_path)
    assert_one_line(run, "1073741808 bytes, more than the 262144 we take", within=SLACK)
    assert run.peak_mb < idle_mb + 60


@pytest.mark.parametrize("when", ["negotiation", "response"])
def test_a_truncated_pdu_then_silence_or_a_hang_up_ends_at_once_or_by_the_deadline(
    tmp_path: Path, when: str
) -> None:
    def script(sock: socket.socket) -> None:
        request = read_request(sock)
        if when == "negotiation":
            whole = associate_ac(request)
        else:
            sock.sendall(associate_ac(request))
            cid, _, _ = read_message(sock)
            whole = p_data(pdv(cid, LAST_COMMAND, response(C_FIND_RSP, FIND_STUDY, 1, 0)))
        sock.sendall(whole[: len(whole) // 2])
        if peer.seen:  # the second time round: silence instead of a hang-up
            time.sleep(30)
        peer.seen.append(True)

    peer = Peer(script)
    hang_up = find(peer, tmp_path)
    if when == "negotiation":  # before an answer: perhaps not a DICOM port at all
        assert_one_line(hang_up, "bytes of a PDU, then closed the connection", within=SLACK)
        during = "association negotiation"
    else:
        during = "the query"
        assert_one_line(hang_up, f"dropped the association during {during}", within=SLACK)
    silence = find(peer, tmp_path)
    assert_one_line(silence, f"did not answer {during} within 2 s")


@pytest.mark.parametrize("when", ["negotiation", "response", "release"])
def test_a_peer_trickling_bytes_cannot_stretch_the_deadline(tmp_path: Path, when: str) -> None:
    """A byte every 0.2 s would once have held each phase open for ever: the deadline runs
    from the phase's start, not from the last byte."""

    def script(sock: socket.socket) -> None:
        request = read_request(sock)
        if when == "negotiation":
            trickle(sock, associate_ac(request), 0.2)
            return
        sock.sendall(associate_ac(request))
        cid, command, _ = read_message(sock)
        final = response(C_FIND_RSP, FIND_STUDY, command.MessageID, 0)
        if when == "response":
            trickle(sock, p_data(pdv(cid, LAST_COMMAND, final)), 0.2)
            return
        sock.sendall(p_data(pdv(cid, LAST_COMMAND, final)))
        read_pdu(sock)  # the A-RELEASE-RQ: answered by a PDU that never ends
        trickle(sock, bytes([0x06, 0, 0, 0, 0x10, 0]) + bytes(4096), 0.2)

    run = find(Peer(script), tmp_path)
    if when == "release":
        # The query is answered; a release that never completes is aborted, not waited for.
        assert run.returncode == 0 and run.seconds < TIMEOUT + SLACK, (run.seconds, run.stderr)
    else:
        during = "association negotiation" if when == "negotiation" else "the query"
        assert_one_line(run, f"did not answer {during} within 2 s")


def test_endless_fragments_of_a_match_stop_at_the_cap_with_memory_bounded(
    tmp_path: Path, idle_mb: float
) -> None:
    """A match that never ends (no last fragment) is refused at 64 MiB, not held for ever."""

    def endless(sock: socket.socket, cid: int) -> None:
        sock.sendall(p_data(pdv(cid, LAST_COMMAND, response(C_FIND_RSP, FIND_STUDY, 1, 0xFF00))))
        chunk = p_data(pdv(cid, MORE_DATA, bytes(200_000)))
        while True:
            sock.sendall(chunk)

    run = find(Peer(_after_request(endless)), tmp_path)
    assert_one_line(run, "a dataset of more than 64 MiB", within=TIMEOUT + SLACK)
    assert run.peak_mb < idle_mb + 64 + 80, (run.peak_mb, idle_mb)


def test_empty_fragments_by_the_million_are_capped_too(tmp_path: Path, idle_mb: float) -> None:
    """PDVs that carry no data cost memory to hold and renewed the deadline: they count."""

    def empty(sock: socket.socket, cid: int) -> None:
        sock.sendall(p_data(pdv(cid, LAST_COMMAND, response(C_FIND_RSP, FIND_STUDY, 1, 0xFF00))))
        chunk = p_data(*[pdv(cid, MORE_DATA, b"")] * 10_000)
        while True:
            sock.sendall(chunk)

    run = find(Peer(_after_request(empty)), tmp_path)
    assert_one_line(run, "a dataset of more than 64 MiB")
    assert run.peak_mb < idle_mb + 64 + 80, (run.peak_mb, idle_mb)


def test_a_character_set_that_is_not_one_is_read_as_latin_1(tmp_path: Path) -> None:
    """pydicom takes an unknown term for a Python codec name: rot13 is one, not for text."""
    match = instance_match()
    match.SpecificCharacterSet = "ISO_IR 100"
    raw = encode(match).replace(b"ISO_IR 100", b"rot13     ")  # pydicom would not write it

    def send(sock: socket.socket, cid: int) -> None:
        send_message(sock, cid, response(C_FIND_RSP, FIND_STUDY, 1, 0xFF00), raw)
        send_message(sock, cid, response(C_FIND_RSP, FIND_STUDY, 1, 0))

    run = find(Peer(_after_request(send)), tmp_path, "--json")
    assert run.returncode == 0, run.stderr
    assert [r["PatientName"] for r in json.loads(run.stdout)] == ["Hostile^Peer"]


def test_an_endless_command_stops_at_its_cap(tmp_path: Path) -> None:
    def endless(sock: socket.socket, cid: int) -> None:
        while True:
            sock.sendall(p_data(pdv(cid, MORE_COMMAND, bytes(4000))))

    run = find(Peer(_after_request(endless)), tmp_path)
    assert_one_line(run, "a command set of more than 65536 bytes")


def _broken_ac(request: Request, how: str) -> bytes:
    if how == "version":
        return associate_ac(request, version=0)
    if how == "application context":
        return associate_ac(request, application_context=b"1.2.3.4")
    if how == "maximum length":
        return associate_ac(request, user_items=item(0x51, b"\x00\x40\x00"))
    if how == "role item":  # a role selection reply whose UID length runs past the item
        return associate_ac(request, user_items=item(0x54, b"\x00\x40" + b"1.2" + b"\x00\x01"))
    good = associate_ac(request)  # an item whose length runs past the PDU's end
    return good[:-10] + struct.pack(">BxH", 0x50, 0xFFF0) + good[-6:]


@pytest.mark.parametrize(
    "how, said",
    [("version", "protocol version 0000"),
     ("application context", "application context '1.2.3.4', not DICOM's"),
     ("maximum length", "a maximum length item of 3 bytes"),
     ("role item", "a role selection item whose lengths do not add up"),
     ("item length", "an A-ASSOCIATE-AC item longer than the PDU")],
)  # fmt: skip
def test_an_association_answer_with_garbage_items_is_refused(
    tmp_path: Path, how: str, said: str
) -> None:
    def script(sock: socket.socket) -> None:
        sock.sendall(_broken_ac(read_request(sock), how))
        time.sleep(30)

    run = find(Peer(script), tmp_path)
    assert_one_line(run, said, within=SLACK)


def test_data_on_a_context_that_was_not_accepted_is_refused(tmp_path: Path) -> None:
    final = response(C_FIND_RSP, FIND_STUDY, 1, 0)
    run = find(Peer(_after_request(lambda s, cid: s.sendall(p_data(pdv(99, 3, final))))), tmp_path)
    assert_one_line(run, "presentation context 99, which was not accepted", within=SLACK)


@pytest.mark.parametrize("garbage", ["random", "long length", "truncated"])
def test_a_garbage_match_is_one_line_not_a_traceback(tmp_path: Path, garbage: str) -> None:
    identifier = encode(instance_match())
    data = {
        "random": random.Random(12).randbytes(300),
        # PatientName whose length says 1 GiB
        "long length": identifier[:4] + b"\xf0\xff\xff\x3f" + identifier[8:],
        "truncated": identifier[: len(identifier) - 3],
    }[garbage]

    def send(sock: socket.socket, cid: int) -> None:
        send_message(sock, cid, response(C_FIND_RSP, FIND_STUDY, 1, 0xFF00), data)
        send_message(sock, cid, response(C_FIND_RSP, FIND_STUDY, 1, 0))

    run = find(Peer(_after_request(send)), tmp_path)
    assert run.returncode != 0 or run.stdout, run.stderr
    assert "Traceback" not in run.stderr and len(run.lines) <= 1, run.stderr
    assert run.seconds < TIMEOUT + SLACK


def instance_match() -> Dataset:
    match = Dataset()
    match.PatientName = "Hostile^Peer"
    match.QueryRetrieveLevel = "STUDY"
    match.StudyInstanceUID = "1.2.3.4"
    return match


def test_a_pacs_that_ignores_c_cancel_is_aborted_after_a_grace_period(tmp_path: Path) -> None:
    """``--limit 1`` cancels after the first match; this PACS goes on sending matches every
    0.3 s, each of which used to restart the wait: now the cancel has a deadline."""

    def flood(sock: socket.socket, cid: int) -> None:
        while True:
            send_message(sock, cid, response(C_FIND_RSP, FIND_STUDY, 1, 0xFF00),
                         encode(instance_match()))  # fmt: skip
            time.sleep(0.3)

    run = find(Peer(_after_request(flood)), tmp_path, "--limit", "1", "--json")
    assert run.returncode == 0, run.stderr
    assert [r["PatientName"] for r in json.loads(run.stdout)] == ["Hostile^Peer"]
    assert run.seconds < TIMEOUT + SLACK


# -- a hostile PACS: C-GET ----------------------------------------------------------------


def get(peer: Pacs, tmp_path: Path, images: list[Dataset]) -> Run:
    hostile_node(peer)
    study = images[0].StudyInstanceUID
    return measured("get", "hostile", "--study", study, archive=tmp_path / "archive",
                    tmp_path=tmp_path)  # fmt: skip


def indexed(tmp_path: Path) -> list[str]:
    """The SOP Instance UIDs the archive holds; no file is left in its incoming folder."""
    archive = tmp_path / "archive"
    incoming = archive / "store" / "incoming"
    assert not incoming.exists() or not list(incoming.iterdir()), list(incoming.iterdir())
    if not (archive / "index.sqlite").exists():
        return []
    return sorted(r["SOPInstanceUID"] for r in cli_json("ls", "--level", "instance",
                                                        archive=archive))  # fmt: skip


def test_a_get_without_our_storage_role_is_refused_before_it_starts(
    tmp_path: Path, images: list[Dataset]
) -> None:
    peer = Pacs(images, lambda *a: time.sleep(30), grant_roles=False)
    run = get(peer, tmp_path, images)
    assert_one_line(run, "grants us no storage role", "--method move")
    assert indexed(tmp_path) == []


def test_fragments_of_one_message_on_two_contexts_are_refused(
    tmp_path: Path, images: list[Dataset]
) -> None:
    def on_get(sock, request, message_id, cid) -> None:
        command = store_rq(images[0], 1)
        storage = request.context_of(CT)
        sock.sendall(p_data(pdv(storage, MORE_COMMAND, command[:20]),
                            pdv(cid, LAST_COMMAND, command[20:])))  # fmt: skip
        time.sleep(30)

    run = get(Pacs(images, on_get), tmp_path, images)
    assert_one_line(run, "fragments of one message on presentation contexts")
    assert indexed(tmp_path) == []


def test_a_truncated_image_is_answered_with_a_failure_and_never_indexed(
    tmp_path: Path, images: list[Dataset]
) -> None:
    def on_get(sock, request, message_id, cid) -> None:
        assert peer.send_image(sock, request, images[0], 1) == 0
        storage = request.context_of(CT)
        cut = dataset_of(images[1])[:-700]  # the last fragment, but the pixels cut short
        send_message(sock, storage, store_rq(images[1], 2), cut)
        _, answer, _ = read_message(sock)
        peer.seen.append(answer.Status)
        sock.sendall(p_data(pdv(cid, LAST_COMMAND, get_rsp(message_id, 0xB000, 0, 1, 1))))
        release(sock)

    peer = Pacs(images, on_get)
    run = get(peer, tmp_path, images)
    assert peer.seen == [0, 0xC000], peer.seen  # success, then "cannot understand"
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert indexed(tmp_path) == [images[0].SOPInstanceUID]
    assert not peer.failures, peer.failures


def test_an_abort_in_the_middle_of_an_image_keeps_the_whole_ones_and_says_why(
    tmp_path: Path, images: list[Dataset], idle_mb: float
) -> None:
    def on_get(sock, request, message_id, cid) -> None:
        assert peer.send_image(sock, request, images[0], 1) == 0
        storage = request.context_of(CT)
        half = dataset_of(images[1])[:1000]
        sock.sendall(p_data(pdv(storage, LAST_COMMAND, store_rq(images[1], 2))))
        sock.sendall(p_data(pdv(storage, MORE_DATA, half)))
        sock.sendall(abort(2, 1))

    peer = Pacs(images, on_get)
    run = get(peer, tmp_path, images)
    assert_one_line(run, "A-ABORT from its DICOM layer", "a PDU it did not recognize")  # fmt: skip
    assert indexed(tmp_path) == [images[0].SOPInstanceUID]
    assert not peer.failures, peer.failures


def test_an_image_of_any_size_is_streamed_to_disk_not_held(
    tmp_path: Path, images: list[Dataset], idle_mb: float
) -> None:
    """A 400 MiB image (a made-up CT of 14,000 x 14,000 pixels): memory stays flat."""
    big = images[0].copy()
    big.SOPInstanceUID = generate_uid()
    big.Rows = big.Columns = 14_500
    head = encode(big, implicit=False).split(b"\xe0\x7f\x10\x00")[0]  # up to PixelData
    pixels = 14_500 * 14_500 * 2
    chunk = bytes(1 << 20)

    def on_get(sock, request, message_id, cid) -> None:
        storage = request.context_of(CT)
        sock.sendall(p_data(pdv(storage, LAST_COMMAND, store_rq(big, 1))))
        first = head + b"\xe0\x7f\x10\x00OW\x00\x00" + struct.pack("<L", pixels)
        sock.sendall(p_data(pdv(storage, MORE_DATA, first)))
        sent = 0
        while sent < pixels:
            piece = chunk[: min(len(chunk), pixels - sent, 16000)]
            sent += len(piece)
            sock.sendall(p_data(pdv(storage, LAST_DATA if sent == pixels else MORE_DATA, piece)))
        _, answer, _ = read_message(sock)
        peer.seen.append(answer.Status)
        sock.sendall(p_data(pdv(cid, LAST_COMMAND, get_rsp(message_id, 0, 0, 1, 0))))
        release(sock)

    peer = Pacs([big], on_get)
    run = get(peer, tmp_path, [big])
    assert run.returncode == 0 and peer.seen == [0], (run.stderr, peer.seen, peer.failures)
    assert indexed(tmp_path) == [big.SOPInstanceUID]
    assert run.peak_mb < idle_mb + 100, (run.peak_mb, idle_mb)


def test_a_get_the_pacs_will_not_stop_is_aborted_after_a_grace_period(
    tmp_path: Path, images: list[Dataset]
) -> None:
    """Cancelled, the C-GET gets a few seconds to end; a PACS that ignores the C-CANCEL and
    keeps sending is aborted, and what came whole is kept."""
    from tui.net.nodes import Node
    from tui.net.scu import retrieve

    def on_get(sock, request, message_id, cid) -> None:
        n = 0
        while True:  # the same image again and again, whatever we say
            n += 1
            peer.send_image(sock, request, images[n % 3], n)
            time.sleep(0.2)

    peer = Pacs(images, on_get)
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    node = Node("hostile", "PACS", "127.0.0.1", peer.port, dimse_timeout=TIMEOUT)
    start = time.monotonic()
    transfer = retrieve(node, tmp_path / "archive", images[0].StudyInstanceUID, cancel=cancel)
    assert time.monotonic() - start < 0.5 + TIMEOUT + 1.5
    assert transfer.tally.received >= 1 and not transfer.tally.failed
    assert len(indexed(tmp_path)) == min(transfer.tally.new, 3)


# -- hostile callers of our servers -----------------------------------------------------------


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    archive: Path
    held: list[str]  # the SOP Instance UIDs its archive holds

    def echo(self) -> None:
        assert self.process.poll() is None, "the server died"
        run = run_cli("echo", "ours", check=False)
        assert run.returncode == 0, run.stderr


@pytest.fixture(params=["serve", "receive"])
def server(request, tmp_path: Path, images: list[Dataset]) -> Iterator[Server]:
    archive = tmp_path / "served"
    held = []
    if request.param == "serve":
        folder = tmp_path / "files"
        folder.mkdir()
        for n, image in enumerate(images):
            image.save_as(folder / f"{n}.dcm", enforce_file_format=True)
        run_cli("import", str(folder), archive=archive)
        held = sorted(image.SOPInstanceUID for image in images)
    port = free_port()
    command = [sys.executable, "-m", "tui", "--archive", str(archive), request.param,
               "--port", str(port), "--host", "127.0.0.1"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, process.stderr
            time.sleep(0.1)
    run_cli("node", "add", "ours", "ANY-SCP", "127.0.0.1", str(port), "--timeout", "10")
    try:
        yield Server(process, port, archive, held)
    finally:
        process.terminate()
        process.wait(10)


def _associated(port: int, contexts: list[tuple[str, str]]) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(associate_rq(contexts))
    answer = read_pdu(sock)
    assert answer[0] == 0x02, answer[:6].hex()
    return sock


def _then_close(sock: socket.socket, data: bytes) -> None:
    with sock:
        sock.sendall(data)
        time.sleep(0.2)


def test_our_servers_survive_a_hostile_caller_and_answer_the_next_echo(
    server: Server, images: list[Dataset]
) -> None:
    port = server.port
    verification = [(VERIFICATION, IMPLICIT)]
    store = [(CT, EXPLICIT)]
    ping = encode_command(
        [(0x00000002, VERIFICATION), (0x00000100, 0x0030), (0x00000110, 1), (0x00000800, 0x0101)]
    )  # fmt: skip
    good_rq = associate_rq(verification)
    cases = {
        "a gigabyte announced before association": lambda: call(port, HUGE_P_DATA),
        "a gigabyte announced after it": lambda: _then_close(
            _associated(port, verification), HUGE_P_DATA + bytes(100)),
        "a truncated request": lambda: call(port, good_rq[: len(good_rq) // 2]),
        "garbage items": lambda: call(port, good_rq[:80] + struct.pack(">BxH", 0x20, 0xFFF0)
                                      + good_rq[84:]),
        "a request that is not one": lambda: call(port, pdu(0x01, random.Random(3).randbytes(90))),
        "data on a context never proposed": lambda: _then_close(
            _associated(port, verification), p_data(pdv(99, LAST_COMMAND, ping))),
        "endless command fragments": lambda: _then_close(
            _associated(port, verification),
            p_data(*[pdv(1, MORE_COMMAND, bytes(4000))] * 4) * 300),
        "a truncated image": lambda: _then_close(
            _associated(port, store),
            p_data(pdv(1, LAST_COMMAND, store_rq(images[0], 1)))
            + p_data(pdv(1, LAST_DATA, dataset_of(images[0])[:-700]))),
        "an abort in the middle of an image": lambda: _then_close(
            _associated(port, store),
            p_data(pdv(1, LAST_COMMAND, store_rq(images[1], 1)))
            + p_data(pdv(1, MORE_DATA, dataset_of(images[1])[:900])) + abort(0, 0)),
        "a garbage query": lambda: _then_close(
            _associated(port, [(FIND_STUDY, IMPLICIT)]),
            p_data(pdv(1, LAST_COMMAND, encode_command(
                [(0x00000002, FIND_STUDY), (0x00000100, 0x0020), (0x00000110, 1),
                 (0x00000700, 0), (0x00000800, 1)])))
            + p_data(pdv(1, LAST_DATA, random.Random(5).randbytes(200)))),
    }  # fmt: skip
    # A trickling caller holds only its own association: the echo goes on beside it.
    trickler = threading.Thread(target=call, args=(port, b"", lambda s: trickle(s, good_rq, 0.1)))
    trickler.start()
    for what, case in cases.items():
        case()
        try:
            server.echo()
        except AssertionError as failure:
            raise AssertionError(f"after {what}: {failure}") from None
    trickler.join(30)
    server.echo()
    # Nothing partial was filed: the mini-PACS holds what it held, the receiver nothing.
    instances = cli_json("ls", "--level", "instance", archive=server.archive)
    assert sorted(r["SOPInstanceUID"] for r in instances) == server.held
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    peak_kb = int(next(line.split()[1] for line in status.splitlines() if "VmHWM" in line))
    assert peak_kb < 400 * 1024, f"the server peaked at {peak_kb // 1024} MB"
