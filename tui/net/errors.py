"""Network failures as one line that says what happened and the likely fix."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

from tui.archive.index import ArchiveError
from tui.errors import UserError
from tui.net.nodes import Node


class NetError(UserError):
    """A DICOM network operation failed in a way the user (or the PACS admin) can fix."""


class QueryRefused(NetError):
    """The PACS ran the query and answered it with a failure status (as opposed to a
    connection or association that failed): a caller may try another way."""


# A-ASSOCIATE-RJ (PS3.8 9.3.4): (source, reason) -> what it means and what to do.
_REJECTIONS = {
    (1, 2): "the application context is not supported",
    (1, 3): "it does not know our AE title {calling}: add {calling} ({host_hint}) to its "
    "modalities or known nodes, or set calling_aet to one it knows",
    (1, 7): "it does not answer to AE title {aet}: check the node's aet",
    (2, 1): "it does not support the DICOM protocol version we asked for",
    (3, 1): "it is busy or has no resources right now: try again later",
    (3, 2): "it is busy or has no resources right now: try again later",
}


def rejected(node: Node, result: int, source: int, reason: int) -> NetError:
    """The PACS refused the association."""
    hint = _REJECTIONS.get((source, reason))
    text = (hint or "reason {reason} from source {source}").format(
        calling=node.calling_aet, aet=node.aet, host_hint="this machine's address",
        reason=reason, source=source,
    )  # fmt: skip
    permanent = "permanently" if result == 1 else "for now"
    return NetError(f"{node.name} ({node.address}) refused the association {permanent}: {text}")


def connect_failed(node: Node, exc: BaseException, *, peer: str = "PACS") -> NetError:
    """Opening the connection (or its TLS handshake) failed; ``peer`` names what the node is
    (a "printer" for the print SCU)."""
    where = f"{node.name} ({node.host}:{node.port})"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return NetError(
            f"{where}: its TLS certificate is not trusted ({exc.verify_message}): "
            "set tls_ca to the CA that signed it"
        )
    if isinstance(exc, ssl.SSLError):
        return NetError(
            f"{where}: the TLS handshake failed ({exc.reason or exc}): check that the port "
            "speaks TLS and that tls_cert/tls_key are ones it accepts"
        )
    if isinstance(exc, ConnectionRefusedError):
        return NetError(f"{where}: connection refused: is the {peer} running on that port?")
    if isinstance(exc, socket.gaierror):
        return NetError(f"{where}: unknown host {node.host!r}")
    if isinstance(exc, TimeoutError | socket.timeout):
        return NetError(
            f"{where}: no answer within {node.connect_timeout:g} s: check the host, the port "
            "and any firewall between"
        )
    return NetError(f"{where}: cannot connect: {exc}")


def aborted(node: Node, during: str, *, peer: str = "PACS") -> NetError:
    """The connection closed under us (no A-ABORT came, or it was cut)."""
    return NetError(
        f"{node.name} ({node.address}) dropped the association during {during}: "
        f"{_likely_cause(node, during, peer)}"
    )


def _likely_cause(node: Node, during: str, peer: str = "PACS") -> str:
    if during == "association negotiation":
        return (
            f"it may not accept our AE title {node.calling_aet} (add it there with this "
            "machine's address, or set calling_aet to one it knows) or its TLS settings "
            "differ from the node's; its log says which"
        )
    return f"see the {peer} log (a wrong TLS setting or an AE title it does not accept can do this)"


# A-ABORT (PS3.8 9.3.8): the source, and the reasons a service provider gives.
_ABORT_SOURCES = {0: "the {peer} itself", 2: "its DICOM layer"}
_ABORT_REASONS = {
    0: "no reason given",
    1: "a PDU it did not recognize",
    2: "a PDU it did not expect",
    4: "a PDU parameter it did not recognize",
    5: "a PDU parameter it did not expect",
    6: "a PDU parameter with an invalid value",
}


def peer_aborted(
    node: Node, during: str, source: int, reason: int, *, peer: str = "PACS"
) -> NetError:
    """The peer sent an A-ABORT: say who, and why in words where the standard has them."""
    who = _ABORT_SOURCES.get(source, f"source {source}").format(peer=peer)
    if source == 2:
        why = _ABORT_REASONS.get(reason, f"reason {reason}")
        because = f"{who} objected to {why}" if reason else f"{who}, {why}"
    else:
        because = who  # a service user gives no reason (PS3.8 9.3.8: it is 0)
    return NetError(
        f"{node.name} ({node.address}) aborted the association during {during} "
        f"(A-ABORT from {because}): {_likely_cause(node, during, peer)}"
    )


def timed_out(node: Node, during: str, seconds: float, *, peer: str = "PACS") -> NetError:
    """No answer in time; a PACS's query can also be narrowed (not a printer's steps)."""
    narrow = during != "association negotiation" and peer == "PACS"
    return NetError(
        f"{node.name} ({node.address}) did not answer {during} within {seconds:g} s: if the "
        f"{peer} is just slow, pacs-tui node edit {node.name} --timeout S gives it longer"
        + ("; or narrow the query" if narrow else "")
    )


def no_storage_role(node: Node) -> NetError:
    """The PACS took the C-GET but not our SCP role for any storage class (PS3.7 D.3.3.4)."""
    return NetError(
        f"{node.name} ({node.address}) accepts C-GET but grants us no storage role (SCP/SCU "
        "role selection), so it cannot send the images back: retrieve by C-MOVE instead "
        f"(pacs-tui node edit {node.name} --method move)"
    )


def disk_full(store: Path, why: str, filed: int) -> ArchiveError:
    """The archive's disk filled up during a retrieve, which was then stopped."""
    return ArchiveError(
        f"the archive's disk is full ({why}: {store}): the retrieve stopped after {filed} new "
        "instances, all whole; free some space and run the same command again: it resumes"
    )


def no_context(node: Node, what: str) -> NetError:
    return NetError(f"{node.name} ({node.address}) accepts no presentation context for {what}")


def garbled(node: Node, what: str, *, peer: str = "PACS") -> NetError:
    """The peer sent something that is not DICOM (or not what DICOM allows at that point)."""
    return NetError(
        f"{node.name} ({node.address}) does not speak DICOM as expected: it sent {what}; "
        f"check that the port is the {peer}'s DICOM port"
        + ("" if node.tls else " (or whether it wants TLS)")
    )
