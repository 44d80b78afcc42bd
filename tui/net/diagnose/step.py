"""A diagnostic step's outcome, and the first step every node shares: name resolution and
the TCP (and TLS) connection."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tui.net import errors
from tui.net.nodes import Node

OK, WARNING, FAILED, SKIPPED = "ok", "warning", "failed", "skipped"
VERDICTS = (OK, WARNING, FAILED, SKIPPED)


@dataclass
class Step:
    """One step's outcome.

    Attributes
    ----------
    key
        What the step is, for programs: connect, associate, echo, find, get, move, worklist
        (a DICOMweb node: connect, endpoints, echo, find, get).
    title
        What the step is, for people.
    verdict
        ok, warning, failed, or skipped (a fatal failure earlier, or nothing to test with).
    summary
        One line: what was found.
    fix
        What to do about it, when something is wrong ("" when nothing is).
    seconds
        How long the step took.
    details
        More lines for people (what the peer accepts, each query level).
    facts
        The findings for ``--json``.
    untimed
        Seconds of the step spent on our own side, not the node's (starting and stopping our
        storage SCP): left out of ``seconds``.
    """

    key: str
    title: str
    verdict: str = OK
    summary: str = ""
    fix: str = ""
    seconds: float = 0.0
    details: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    untimed: float = field(default=0.0, repr=False)

    def set(self, verdict: str, summary: str, fix: str = "") -> None:
        self.verdict, self.summary, self.fix = verdict, summary, fix

    def as_json(self) -> dict[str, Any]:
        return {
            "step": self.key,
            "title": self.title,
            "verdict": self.verdict,
            "summary": self.summary,
            "fix": self.fix,
            "ms": round(self.seconds * 1e3, 1),
            "details": self.details,
            **self.facts,
        }


def exit_status(steps: list[Step]) -> int:
    """1 when any step failed, else 0."""
    return 1 if any(step.verdict == FAILED for step in steps) else 0


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.0f} ms" if seconds >= 0.01 else f"{seconds * 1e3:.1f} ms"


TlsWords = Callable[[BaseException], tuple[str, str]]


def connect(
    step: Step, node: Node, host: str, port: int, tls: bool, edit: str, tls_failed: TlsWords
) -> str | None:
    """Resolve ``host``, connect to ``port`` (and shake hands over TLS when ``tls``).

    Parameters
    ----------
    edit
        The ``pacs-tui node edit`` options that change the host and port (``--host HOST``),
        for the fix.
    tls_failed
        A failed TLS handshake in words: its summary and fix (a DIMSE node's differ from a
        DICOMweb node's: a port versus a URL's scheme).

    Returns
    -------
    str or None
        Our own address on the connection (where the peer sees us coming from, NAT aside);
        None when it failed: ``step`` then says why.
    """
    where = f"{host}:{port}"
    started = time.perf_counter()
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        step.set(
            FAILED,
            f"the name {host} is unknown ({exc.strerror}): no DNS or hosts entry",
            f"check the spelling of the host, or give its IP address "
            f"(pacs-tui node edit {node.name} {edit})",
        )
        return None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    step.details.append(f"{host} is {', '.join(addresses)} ({ms(time.perf_counter() - started)})")
    step.facts["addresses"] = addresses
    failure: OSError | None = None
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        sock.settimeout(node.connect_timeout)
        try:
            connected = time.perf_counter()
            sock.connect(address)
        except OSError as exc:
            sock.close()
            failure = exc
            continue
        with sock:
            local = str(sock.getsockname()[0])
            step.facts |= {"connected_to": str(address[0]), "local_address": local}
            step.details.append(
                f"connected to {address[0]} port {port} from {local} "
                f"({ms(time.perf_counter() - connected)})"
            )
            if tls and not _tls(step, node, host, sock, tls_failed):
                return None
        step.set(OK, f"{where} answers" + (" over TLS" if tls else ""))
        return local
    if isinstance(failure, ConnectionRefusedError):
        step.set(
            FAILED,
            f"nothing listens on {where}: is the PACS running, the port right?",
            f"start the PACS, or set the port its service listens on "
            f"(pacs-tui node edit {node.name} {edit})",
        )
    elif isinstance(failure, TimeoutError):
        step.set(
            FAILED,
            f"no answer from {where} within {node.connect_timeout:g} s: a firewall drops the "
            "connection, or the host is wrong or down",
            "check the host and the port; ask for the port to be opened in the firewalls "
            "between this machine and the PACS",
        )
    else:
        why = failure.strerror if failure is not None and failure.strerror else failure
        step.set(
            FAILED,
            f"cannot connect to {where}: {why}",
            "check the host, and this machine's network and routes to it",
        )
    return None


def _tls(step: Step, node: Node, host: str, sock: socket.socket, failed: TlsWords) -> bool:
    """The TLS handshake on the connection; False (the step failed) when it fails."""
    from tui.net.tls import client_context

    started = time.perf_counter()
    try:
        with client_context(node).wrap_socket(sock, server_hostname=host) as tls:
            version, cipher = tls.version(), tls.cipher()
    except OSError as exc:
        step.set(FAILED, *failed(exc))
        return False
    step.details.append(
        f"TLS {version or ''} with {cipher[0] if cipher else '?'} "
        f"({ms(time.perf_counter() - started)})"
    )
    step.facts["tls"] = version
    return True


def split_fix(error: BaseException) -> tuple[str, str]:
    """A one-line error of :mod:`tui.net.errors` or the DICOMweb client, ``what happened
    (why): the fix``, as a step's summary and fix (the fix follows the last ``): ``)."""
    text = str(error)
    said, colon, fix = text.rpartition("): ")
    return (f"{said})", fix) if colon else (text, "")


def dimse_tls_failed(node: Node) -> TlsWords:
    """A DIMSE node's failed TLS handshake in words (:func:`tui.net.errors.connect_failed`'s),
    its fix with the command that mends it."""

    def words(exc: BaseException) -> tuple[str, str]:
        said, fix = split_fix(errors.connect_failed(node, exc))
        if fix.startswith("set tls_ca"):
            fix = f"{fix} (pacs-tui node edit {node.name} --tls-ca PEM)"
        elif "tls_cert/tls_key" in fix:
            fix = f"{fix} (pacs-tui node edit {node.name} --tls-cert PEM --tls-key PEM)"
        return said, fix

    return words


def speaks_tls(host: str, port: int, timeout: float) -> bool:
    """Whether ``host:port`` completes a TLS handshake (its certificate not checked: this only
    asks whether the port speaks TLS, to say so when a node is set up without)."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout) as sock,
            context.wrap_socket(sock, server_hostname=host),
        ):
            return True
    except (OSError, ValueError):
        return False
