"""HTTP for DICOMweb nodes: connections, auth, TLS, timeouts, and failures in words.

Standard library :mod:`http.client` (why: the package docstring, :mod:`tui.net.dicomweb`).
One :class:`Client` keeps one keep-alive connection per scheme, host and port, so a paged
query or a retrieve series by series does not reconnect each time. Every failure becomes a
:class:`~tui.net.errors.NetError`: one line naming the node, what happened, and the fix.
"""

from __future__ import annotations

import base64
import http.client
import logging
import os
import socket
import ssl
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import cast
from urllib.parse import quote, urlencode, urlsplit

from tui.errors import UserError
from tui.net import errors
from tui.net.nodes import Node
from tui.net.tls import client_context

log = logging.getLogger(__name__)
_SAID_OPEN: set[str] = set()  # secret files already said to be open to others, this process

Params = Iterable[tuple[str, str]]


def secret(node: Node) -> str:
    """The node's password or token, read now from its file or environment variable."""
    if node.secret_env:
        value = os.environ.get(node.secret_env)
        if not value:
            raise UserError(
                f"node {node.name}: the environment variable {node.secret_env} (secret_env) "
                "is not set: export it with the password or token"
            )
        return value.strip()
    path = Path(node.secret_file).expanduser()
    try:
        text = path.read_text(encoding="utf-8").strip()
        mode = path.stat().st_mode
    except OSError as exc:
        raise UserError(
            f"node {node.name}: cannot read secret_file {node.secret_file}: {exc.strerror}"
        ) from None
    if mode & 0o077 and node.secret_file not in _SAID_OPEN:  # said once, not refused
        _SAID_OPEN.add(node.secret_file)
        log.warning("%s is readable by others: chmod 600 it", node.secret_file)
    return text


def auth_header(node: Node) -> dict[str, str]:
    """The Authorization header the node's ``auth`` asks for ({} for none)."""
    if node.auth == "basic":
        pair = f"{node.username}:{secret(node)}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
    if node.auth == "bearer":
        return {"Authorization": "Bearer " + secret(node)}
    return {}


def resource(*parts: str | None) -> str:
    """A resource path from names and UIDs in turn: ``resource("studies", uid, "series",
    None)`` is ``/studies/UID`` (a None or empty UID ends it). A UID (which may come from
    the server) is percent-encoded: it stays one path segment whatever it holds."""
    out = ""
    for name, uid in zip(parts[::2], parts[1::2], strict=False):
        if not uid:
            break
        out += f"/{name}/{quote(uid, safe='')}"
    return out


class Client:
    """Requests to one DICOMweb node (not thread-safe: one per thread).

    Connecting waits the node's ``connect_timeout``; an answer waits ``answer_timeout``
    seconds of silence (default the node's ``network_timeout``; an echo waits less).
    """

    def __init__(self, node: Node, answer_timeout: float | None = None) -> None:
        self.node = node
        self.answer_timeout = answer_timeout or node.network_timeout
        self._headers = {"User-Agent": "pacs-tui", **auth_header(node)}
        self._connections: dict[tuple[str, str, int], http.client.HTTPConnection] = {}
        self._ssl: ssl.SSLContext | None = None
        self._reading: dict[int, http.client.HTTPConnection] = {}  # by id of its response

    def url(self, service: str, path: str, params: Params = ()) -> str:
        """The URL of ``path`` under the node's ``service`` root (qido, wado or stow)."""
        query = urlencode(list(params), safe="*,?^")
        return self.node.web_roots[service] + path + (f"?{query}" if query else "")

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        body: Iterable[bytes] | bytes | None = None,
        what: str = "the request",
        ok: tuple[int, ...] = (),
    ) -> http.client.HTTPResponse:
        """Send one request; the response once its status says success (2xx, or one of
        ``ok``: a status whose body the caller reads, such as STOW-RS's 409).

        ``body`` may be an iterable of byte strings sent one after the other (the caller
        then gives its Content-Length), so a large upload is never joined in memory.

        Raises
        ------
        NetError
            The connection failed (refused, unknown host, TLS, timeout, dropped), or the
            status is not a success (401, 403, 404 and the others, in words).
        """
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection = self._connection(parts.scheme, parts.hostname or "", parts.port)
        if connection.sock is None:  # (re)connect within connect_timeout, then wait answers
            try:
                connection.connect()
            except (OSError, http.client.HTTPException) as exc:
                self._drop(connection)
                raise self.failure(exc, "the connection", url, connecting=True) from None
            cast(socket.socket, connection.sock).settimeout(self.answer_timeout)
        try:
            connection.putrequest(method, target, skip_accept_encoding=True)
            for name, value in {**self._headers, **(headers or {})}.items():
                connection.putheader(name, value)
            if isinstance(body, bytes):
                connection.putheader("Content-Length", str(len(body)))
                connection.endheaders(body)
            else:
                connection.endheaders()
                try:
                    for piece in body or ():
                        connection.send(piece)
                except OSError as exc:  # it may have answered before taking it all (401, 413)
                    answered = connection.getresponse()
                    if 200 <= answered.status < 300:
                        raise exc from None
                    return self._checked(answered, connection, what, url, ok)
            response = connection.getresponse()
        except BaseException as exc:
            self._drop(connection)
            if isinstance(exc, OSError | http.client.HTTPException):
                raise self.failure(exc, what, url) from None
            raise
        return self._checked(response, connection, what, url, ok)

    def _checked(
        self,
        response: http.client.HTTPResponse,
        connection: http.client.HTTPConnection,
        what: str,
        url: str,
        ok: tuple[int, ...],
    ) -> http.client.HTTPResponse:
        """``response``, or the error its status means."""
        if not 200 <= response.status < 300 and response.status not in ok:
            try:
                detail = response.read(4096)
            except (OSError, http.client.HTTPException):
                detail = b""
            self._drop(connection)  # the rest of the body may still be on it
            raise self.status_error(response.status, response.reason, what, url, detail)
        self._reading[id(response)] = connection
        return response

    def release(self, response: http.client.HTTPResponse) -> None:
        """Done with ``response``: its connection is kept for the next request when the body
        was read to its end, else closed (what is left of the body would come first)."""
        connection = self._reading.pop(id(response), None)
        if not response.isclosed():
            response.close()
            if connection is not None:
                self._drop(connection)

    def _connection(self, scheme: str, host: str, port: int | None) -> http.client.HTTPConnection:
        key = (scheme, host, port or (443 if scheme == "https" else 80))
        connection = self._connections.get(key)
        if connection is None:
            timeout = self.node.connect_timeout  # connecting; the answers: answer_timeout
            if scheme == "https":
                if self._ssl is None:
                    self._ssl = client_context(self.node)
                connection = http.client.HTTPSConnection(
                    host, key[2], timeout=timeout, context=self._ssl
                )
            else:
                connection = http.client.HTTPConnection(host, key[2], timeout=timeout)
            self._connections[key] = connection
        return connection

    def _drop(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        for key, known in list(self._connections.items()):
            if known is connection:
                del self._connections[key]

    # -- failures in words -----------------------------------------------------------------

    def failure(
        self, exc: BaseException, during: str, url: str = "", connecting: bool = False
    ) -> errors.NetError:
        """A connection-level failure (``exc``) during ``during`` (while ``connecting``,
        or after), as one line."""
        node = self.node
        where = f"{node.name} ({urlsplit(url).netloc or node.address})"
        if isinstance(exc, ssl.SSLCertVerificationError):
            why = exc.verify_message or str(exc)
            if "expired" in why:
                fix = (
                    "the server's certificate has expired: its admin must renew it (or the "
                    "clock here is wrong); tls_ca cannot mend that"
                )
            elif "hostname" in why.lower() or "ip address mismatch" in why.lower():
                fix = "it was issued for another name: use that name in the node's URL"
            else:
                fix = (
                    f"set tls_ca (pacs-tui node edit {node.name} --tls-ca PEM) to the CA "
                    "that signed it"
                )
            return errors.NetError(f"{where}: its TLS certificate is not trusted ({why}): {fix}")
        if isinstance(exc, ssl.SSLError):
            return errors.NetError(
                f"{where}: the TLS handshake failed ({exc.reason or exc}): check that the URL's "
                "scheme (https or http) is the one the server speaks"
            )
        if isinstance(exc, ConnectionRefusedError):
            return errors.NetError(f"{where}: connection refused: is the server running there?")
        if isinstance(exc, socket.gaierror):
            return errors.NetError(f"{where}: unknown host {urlsplit(url).hostname!r}")
        if isinstance(exc, TimeoutError | socket.timeout) and connecting:
            return errors.NetError(
                f"{where}: no connection within {node.connect_timeout:g} s (connect_timeout): "
                "is the host reachable from here? A firewall may drop the packets"
            )
        if isinstance(exc, TimeoutError | socket.timeout):
            return errors.NetError(
                f"{where} did not answer {during} within {self.answer_timeout:g} s: if the "
                f"server is just slow, pacs-tui node edit {node.name} --timeout S gives it longer"
            )
        if isinstance(exc, http.client.RemoteDisconnected | ConnectionError):
            return errors.NetError(
                f"{where} dropped the connection during {during}: see the server's log"
            )
        if isinstance(exc, http.client.IncompleteRead):
            return errors.NetError(f"{where} cut {during} short: the connection dropped")
        if isinstance(exc, http.client.HTTPException):
            return errors.NetError(f"{where} does not speak HTTP as expected during {during}")
        return errors.NetError(f"{where}: {during} failed: {exc}")

    def status_error(
        self, status: int, reason: str, during: str, url: str, detail: bytes = b""
    ) -> errors.NetError:
        """A response status that is not a success, as one line with its likely fix."""
        node = self.node
        where = f"{node.name} ({urlsplit(url).netloc})"
        said = f"{status} {reason}".strip()
        if status == 401:
            if node.auth == "none":
                fix = (
                    f"it wants a user name and password: pacs-tui node edit {node.name} "
                    "--auth basic --username U --secret-file F"
                )
            else:
                source = f"file {node.secret_file}" if node.secret_file else node.secret_env
                if node.auth == "bearer":
                    fix = f"the token was refused: check the token ({source}) and its expiry"
                else:
                    fix = (
                        f"wrong user name or password: check the user {node.username!r} and "
                        f"the secret ({source})"
                    )
            return errors.NetError(f"{where} refused {during} ({said}): {fix}")
        if status == 403:
            return errors.NetError(
                f"{where} refused {during} ({said}): the user is not allowed to do this there"
            )
        if status == 404:
            return errors.NetError(
                f"{where} answered {during} with {said}: no such study or series there, or "
                f"the URL is not the DICOMweb root (check pacs-tui node ls)"
            )
        if status == 400:  # what a server's other API says to a DICOMweb request (Orthanc's)
            return errors.NetError(
                f"{where} answered {during} with {said}: it did not understand it: is the URL "
                "the DICOMweb root? (e.g. Orthanc's is /dicom-web; check pacs-tui node ls)"
            )
        text = detail.decode("utf-8", "replace").strip().splitlines()
        log.debug("%s answered %s: %s", node.name, said, text[:3])
        return errors.NetError(f"{where} answered {during} with {said}")
