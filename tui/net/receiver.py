"""A storage SCP: images pushed to us (C-STORE) are filed into the archive.

``pacs-tui receive`` runs one in the foreground; a C-MOVE starts one for its transfer
when none is running. Only calling AE titles in the allow-list may store, when one is
given. Each instance is filed atomically and indexed on arrival (:mod:`tui.net.storage`).
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pynetdicom import evt

from tui.net.contexts import storage_ae
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
    """

    def __init__(
        self,
        filer: Filer | Path,
        aet: str = "PACSTUI",
        host: str = "",
        port: int = 11112,
        allow: set[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        on_filed: Callable[[Tally], None] | None = None,
        tally: Tally | None = None,
    ) -> None:
        self._owns_filer = not isinstance(filer, Filer)
        self.filer = Filer(filer) if not isinstance(filer, Filer) else filer
        self.tally = tally if tally is not None else Tally()
        self.ae = storage_ae(aet, allow)
        self.address = (host, port)
        self.ssl_context = ssl_context
        self.on_filed = on_filed
        self._server: Any = None

    @property
    def port(self) -> int:
        if self._server is None:
            return self.address[1]
        return int(self._server.server_address[1])

    def handlers(self) -> list[Any]:
        return [(evt.EVT_C_STORE, self._on_store), (evt.EVT_C_ECHO, lambda event: 0x0000)]

    def _on_store(self, event: Any) -> int:
        _, status = self.filer.file(event.encoded_dataset(), self.tally)
        if self.on_filed is not None:
            self.on_filed(self.tally)
        return status

    def start(self) -> None:
        """Listen in the background (raises OSError when the port is taken)."""
        self._server = self.ae.start_server(
            self.address, block=False, evt_handlers=self.handlers(), ssl_context=self.ssl_context
        )
        log.info("receiving on port %d", self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._owns_filer:
            self.filer.close()

    def serve_forever(self, stop: threading.Event | None = None) -> None:
        """Receive until Ctrl-C (or ``stop`` is set)."""
        self.start()
        try:
            (stop or threading.Event()).wait()
        finally:
            self.stop()
