"""Worker processes for CPU-bound work (reading headers, decoding compressed pixels)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.context import BaseContext


def process_pool(workers: int, preload: str) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes that leave Ctrl-C to us and die with us.

    fork starts workers in milliseconds with everything imported; it is only safe
    while this process has a single thread (the CLI). Otherwise (the app's worker
    threads) a fork server is used, which imports ``preload`` once.
    """
    context: BaseContext
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("fork")
    else:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([preload])
    return ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(os.getpid(),)
    )


def _start_worker(parent: int) -> None:
    """Leave Ctrl-C to the parent, and exit if the parent dies.

    A killed parent stops reading results; without the watchdog its workers would
    block forever on a full pipe.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
