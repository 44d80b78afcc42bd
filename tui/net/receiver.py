"""A storage SCP: images pushed to us (C-STORE) are filed into the archive.

``pacs-tui receive`` runs one in the foreground; a C-MOVE starts one for its transfer
when none is running. Only calling AE titles in the allow-list may store, when one is
given. Each instance is filed atomically and indexed on arrival (:mod:`tui.net.storage`).
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pynetdicom import evt

from tui.net.contexts import storage_ae
from tui.net.nodes import RECEIVE_PORT
from tui.net.storage import Filer, Tally

log = logging.getLogger(__name__)


class Receiver:
    """A storage SCP filing into the archive at ``root``.

    Parameters
    ----------
    filer : Filer or pathlib.Path
        What files the instances, or the archive folder to file them into.
    aet, host, port : str, str, int
        Where to listen; port 0 picks a free one (see :attr:`port` once started).
    allow : set of str, optional
        Calling AE titles that may store; any when not given.
    ssl_context : ssl.SSLContext, optional
        DICOM over TLS (:func:`tui.net.tls.server_context`).
    on_filed : callable, optional
        Called with the running :class:`Tally` after every instance (from pynetdicom's
        threads).
    tally : Tally, optional
        Where to count (a retrieve passes its own).
    on_event : callable, optional
        Called with a line when a peer calls or is refused.
    """

    def __init__(
        self,
        filer: Filer | Path,
        aet: str = "PACSTUI",
        host: str = "",
        port: int = RECEIVE_PORT,
        allow: set[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        on_filed: Callable[[Tally], None] | None = None,
        tally: Tally | None = None,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self._owns_filer = not isinstance(filer, Filer)
        self.filer = Filer(filer) if not isinstance(filer, Filer) else filer
        self.tally = tally if tally is not None else Tally()
        self.ae = storage_ae(aet, allow)
        self.address = (host, port)
        self.ssl_context = ssl_context
        self.on_filed = on_filed
        self.on_event = on_event
        self._server: Any = None

    @property
    def port(self) -> int:
        if self._server is None:
            return self.address[1]
        return int(self._server.server_address[1])

    def handlers(self) -> list[Any]:
        return [
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_C_ECHO, lambda event: 0x0000),
            (evt.EVT_ACCEPTED, lambda event: self._tell(event, "sending")),
            (evt.EVT_REJECTED, lambda event: self._tell(event, "refused (not in the allow-list)")),
        ]

    def _tell(self, event: Any, what: str) -> None:
        """Who called: AE titles and addresses, never patient data, in the log and to
        ``on_event`` (``pacs-tui receive`` prints them)."""
        requestor = event.assoc.requestor
        line = f"{requestor.ae_title} at {requestor.address}: {what}"
        log.info("%s", line)
        if self.on_event is not None:
            self.on_event(line)

    def _on_store(self, event: Any) -> int:
        status = self.filer.file(event.encoded_dataset(), self.tally)
        if self.on_filed is not None:
            self.on_filed(self.tally)
        return status

    def start(self) -> None:
        """Listen in the background (raises OSError when the port is taken)."""
        self._server = self.ae.start_server(
            self.address, block=False, evt_handlers=self.handlers(), ssl_context=self.ssl_context
        )
        # Say which port files into this archive: a C-MOVE finding the port taken can
        # tell this receiver from another program (or one filing somewhere else).
        try:
            marker = receiver_marker(self.filer.store, self.port)
            marker.write_text(json.dumps({"port": self.port, "pid": os.getpid()}))
        except OSError:
            self.stop()
            raise
        log.info("receiving on port %d", self.port)

    def stop(self) -> None:
        if self._server is not None:
            port = self.port
            self.ae.shutdown()  # stops listening and ends associations still storing
            self._server = None
            receiver_marker(self.filer.store, port).unlink(missing_ok=True)
        if self._owns_filer:
            self.filer.close()

    def serve_forever(self, stop: threading.Event | None = None) -> None:
        """Receive until Ctrl-C (or ``stop`` is set)."""
        self.start()
        try:
            (stop or threading.Event()).wait()
        finally:
            self.stop()


def receiver_marker(store: Path, port: int) -> Path:
    """The file saying a receiver files what arrives on ``port`` into this archive."""
    return store / "incoming" / f"receiver-{port}.json"


def receiving_here(store: Path, port: int) -> bool:
    """Whether a live receiver files what arrives on ``port`` into this archive."""
    try:
        marker = json.loads(receiver_marker(store, port).read_text())
        os.kill(int(marker["pid"]), 0)  # still running?
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return bool(marker.get("port") == port)
