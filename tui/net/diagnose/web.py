"""Diagnostics of a DICOMweb node: the connection to each root, each endpoint (QIDO-RS,
WADO-RS, STOW-RS) and the auth, a QIDO-RS echo, QIDO-RS at each level, and a WADO-RS
retrieve of one instance into a throwaway archive."""

from __future__ import annotations

import http.client
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tui.net.diagnose.dimse import DimseRun
from tui.net.diagnose.step import (
    FAILED,
    OK,
    SKIPPED,
    WARNING,
    Step,
    TlsWords,
    connect,
    ms,
    split_fix,
)
from tui.net.errors import NetError
from tui.net.nodes import Node

_JSON = {"Accept": "application/dicom+json"}
_DICOM = {"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}
_ANY_STATUS = tuple(range(300, 600))  # every status comes back to be read here
_EMPTY_BOUNDARY = "pacs-tui-empty-upload"
_EMPTY_STOW = {
    "Content-Type": f'multipart/related; type="application/dicom"; boundary={_EMPTY_BOUNDARY}',
    "Accept": "application/dicom+json",
}
_EMPTY_BODY = f"--{_EMPTY_BOUNDARY}--\r\n".encode()  # no part: nothing is stored
_SAID = {401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed"}


class WebRun(DimseRun):
    """The steps for a DICOMweb node; the levels of C-FIND are QIDO-RS's (no patient root)."""

    STEPS = (
        ("connect", "name resolution and TCP connect"),
        ("endpoints", "DICOMweb endpoints and auth"),
        ("echo", "QIDO-RS echo"),
        ("find", "QIDO-RS at each level"),
        ("get", "WADO-RS of one instance"),
    )
    LEVELS = ("study", "series", "image")
    MODULES = (
        "tui.net.dicomweb.client", "tui.net.dicomweb.qido", "tui.net.dicomweb.multipart",
        "tui.net.find", "tui.net.storage", "tui.net.tls", "pydicom.uid", "pydicom.dataset",
    )  # fmt: skip

    def __init__(self, node: Node, cancel: threading.Event | None) -> None:
        super().__init__(node, 0, cancel)

    # -- 1. each root's host ---------------------------------------------------------------------

    def connect(self, step: Step) -> None:
        node = self.node
        seen: set[tuple[str, int]] = set()
        for service, root in node.web_roots.items():
            parts = urlsplit(root)
            host = parts.hostname or ""
            port = parts.port or (443 if parts.scheme == "https" else 80)
            if (host, port) in seen:
                continue
            seen.add((host, port))
            edit = "--dicomweb URL" if root == node.dicomweb.rstrip("/") else f"--{service}-url URL"
            where = Step(step.key, step.title)
            https = parts.scheme == "https"
            if connect(where, node, host, port, https, edit, _tls_failed(node, root)) is None:
                step.details += where.details
                if service == "qido" or not step.summary:
                    self.fatal = f"no connection to {host}:{port}" if service == "qido" else ""
                step.set(FAILED, where.summary, where.fix)
                return
            step.details += where.details
            step.facts.setdefault("hosts", []).append(f"{host}:{port}")
        hosts = step.facts["hosts"]
        step.set(OK, f"{', '.join(hosts)} answer{'s' if len(hosts) == 1 else ''}")

    # -- 2. each endpoint, and the auth ----------------------------------------------------------

    def endpoints(self, step: Step) -> None:
        from tui.net.dicomweb.client import Client

        node = self.node
        statuses: dict[str, int] = {}
        step.facts["status"] = statuses
        with Client(node) as client:
            # QIDO-RS: a query for one study. STOW-RS: an upload of nothing (a multipart body
            # that closes at once): the server must take a POST there, and stores nothing.
            probes = [
                ("qido", "GET", client.url("qido", "/studies", [("limit", "1")]), _JSON, None),
                ("stow", "POST", client.url("stow", "/studies"), _EMPTY_STOW, _EMPTY_BODY),
            ]
            for service, method, url, headers, body in probes:
                status, reason, seconds = _status(client, method, url, headers, body)
                statuses[service] = status
                step.details.append(
                    f"{service.upper()}-RS {method} {url}: {status} {reason} ({ms(seconds)})"
                )
                if service == "qido" and not 200 <= status < 300:
                    self._qido_refused(step, client, status, reason, url)
                    return
        auth = {"none": "no auth", "basic": "basic auth", "bearer": "a bearer token"}[node.auth]
        stow = statuses["stow"]
        if 200 <= stow < 300 or stow in (400, 409, 415):
            # An empty upload may be answered as a bad request: the endpoint is there all
            # the same, and took our credentials
            step.set(
                OK,
                f"QIDO-RS answers, STOW-RS takes uploads (an empty one tried, {stow}), with "
                f"{auth} (WADO-RS: the retrieve step)",
            )
        elif stow in (401, 403):
            step.set(
                WARNING,
                f"QIDO-RS answers, but STOW-RS answers {stow} {_SAID[stow]}: the user may query "
                "but not store there (sending to this node will fail)",
                "ask the server's admin for the right to store" if stow == 403 else _auth_fix(node),
            )
        elif stow in (404, 405):
            step.set(
                WARNING,
                f"QIDO-RS answers, but there is no STOW-RS at {node.web_roots['stow']} (a POST "
                f"there answers {stow} {_SAID[stow]}): sending to this node will fail",
                f"set its STOW-RS root: pacs-tui node edit {node.name} --stow-url URL (or fix "
                "--dicomweb URL); some servers take no uploads at all",
            )
        else:
            step.set(
                WARNING,
                f"QIDO-RS answers; STOW-RS answers an empty upload with {stow}",
                "see the server's log",
            )

    def _qido_refused(self, step: Step, client: Any, status: int, reason: str, url: str) -> None:
        """QIDO-RS does not answer a query: nothing more can be tested."""
        node = self.node
        if status in (401, 403):
            self.fatal = "the server refuses our credentials"
            if status == 403:
                why = "the user is not allowed to use QIDO-RS there"
            elif node.auth == "none":
                why = "the server wants credentials"
            else:
                why = "the server refuses our credentials"
            step.set(FAILED, f"QIDO-RS answers {status} {_SAID[status]}: {why}", _auth_fix(node))
            return
        self.fatal = "QIDO-RS does not answer"
        error = client.status_error(status, reason, "the QIDO-RS probe", url)
        step.set(FAILED, str(error), "check the node's URL (pacs-tui node ls)")

    # -- 3. echo ---------------------------------------------------------------------------------

    def echo(self, step: Step) -> None:
        from tui.net.dicomweb.qido import echo

        total, request = echo(self.node)
        step.facts |= {"echo_ms": round(request * 1e3, 2), "total_ms": round(total * 1e3, 1)}
        step.set(OK, f"a QIDO-RS of one study in {ms(request)} ({ms(total)} with the connection)")

    # -- 4. QIDO-RS at each level: DimseRun's, with HTTP's fix ---------------------------------

    def _query_fix(self) -> str:
        node = self.node
        return (
            "the server is slow or does not answer queries: see its log; check the QIDO-RS "
            f"URL {node.web_roots['qido']} (pacs-tui node ls); give it longer: pacs-tui node "
            f"edit {node.name} --timeout S (now {node.network_timeout:g} s)"
        )

    def _check_called_aet(self, step: Step) -> None:
        """A DICOMweb node has no AE title to check."""

    # -- 5. WADO-RS of one instance --------------------------------------------------------------

    def get(self, step: Step) -> None:
        from tui.net.dicomweb.client import Client
        from tui.net.dicomweb.multipart import MultipartError, boundary_of, read_multipart
        from tui.net.storage import Filer, Tally

        if self.instance is None:
            step.set(SKIPPED, "skipped: no instance found at image level to retrieve")
            return
        found = self.instance
        path = (
            f"/studies/{found['StudyInstanceUID']}/series/{found['SeriesInstanceUID']}"
            f"/instances/{found['SOPInstanceUID']}"
        )
        tally = Tally()
        started = time.perf_counter()
        with (
            tempfile.TemporaryDirectory(prefix="pacs-tui-test-") as folder,
            Client(self.node) as client,
        ):
            filer = Filer(Path(folder) / "archive")  # a throwaway archive, never the user's
            try:
                try:
                    response = client.request(
                        "GET", client.url("wado", path), _DICOM, what="the WADO-RS"
                    )
                except NetError as exc:
                    step.set(FAILED, str(exc), self._wado_fix(str(exc)))
                    return
                try:
                    read_multipart(
                        lambda size: response.read1(size),
                        boundary_of(response.getheader("Content-Type", "")),
                        lambda _: filer.incoming(tally),
                    )
                except (MultipartError, OSError, http.client.HTTPException) as exc:
                    step.set(
                        FAILED,
                        f"the WADO-RS answer is broken: {exc}",
                        "see the server's log: it did not send the instance as DICOM parts",
                    )
                    return
                finally:
                    client.release(response)
            finally:
                filer.close()
        seconds = time.perf_counter() - started
        step.facts |= {"received": tally.received, "bytes": tally.bytes}
        if tally.received:
            step.set(OK, f"one instance ({tally.bytes / 1e3:.0f} kB) in {ms(seconds)}")
        else:
            why = tally.errors[0] if tally.errors else "no part in the answer"
            step.set(
                FAILED,
                f"the instance did not arrive: {why}",
                "see the server's log; " + self._wado_fix(why),
            )

    def _wado_fix(self, error: str) -> str:
        """What to do when the WADO-RS of an instance QIDO-RS found fails."""
        node = self.node
        if " 401 " in error or " 403 " in error:
            return _auth_fix(node)
        if "within" in error and "--timeout" in error:  # the client's timeout: its own fix
            return f"give it longer: pacs-tui node edit {node.name} --timeout S"
        edit = "--dicomweb URL" if not node.wado_url else "--wado-url URL"
        return (
            f"check the WADO-RS root {node.web_roots['wado']}: pacs-tui node edit {node.name} "
            f"{edit} (the server found the instance by QIDO-RS)"
        )


def _status(
    client: Any, method: str, url: str, headers: dict[str, str], body: bytes | None
) -> tuple[int, str, float]:
    """One request: its status, reason and time (the body read and dropped)."""
    started = time.perf_counter()
    response = client.request(method, url, headers, body, what="the probe", ok=_ANY_STATUS)
    try:
        response.read()
    finally:
        client.release(response)
    return response.status, response.reason, time.perf_counter() - started


def _tls_failed(node: Node, root: str) -> TlsWords:
    """A failed TLS handshake with ``root``'s host in the DICOMweb client's words (echo's):
    an https URL on a plain HTTP port is told to check the URL's scheme."""
    from dataclasses import replace

    from tui.net.dicomweb.client import Client

    # The client's words need no credentials: none are read for them
    client = Client(replace(node, auth="none", secret_file="", secret_env=""))
    return lambda exc: split_fix(client.failure(exc, "the TLS handshake", root))


def _auth_fix(node: Node) -> str:
    """What to do when the server refuses our credentials (or wants some)."""
    if node.auth == "none":
        return (
            f"give the node a user and password: pacs-tui node edit {node.name} --auth basic "
            "--username USER --secret-file FILE (or --auth bearer with a token)"
        )
    source = f"the file {node.secret_file}" if node.secret_file else f"${node.secret_env}"
    who = f"the user {node.username!r} and " if node.auth == "basic" else ""
    return f"wrong credentials: check {who}the {'password' if who else 'token'} in {source}"
