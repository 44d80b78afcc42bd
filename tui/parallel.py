"""Worker processes for CPU-bound work (reading headers, decoding compressed pixels)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import redirect_stderr
from multiprocessing import resource_tracker
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
        _start_tracker()
    return ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(os.getpid(),)
    )


def _start_tracker() -> None:
    """Start multiprocessing's resource tracker with the process's own stderr: inside the
    app, ``sys.stderr`` is Textual's capture, whose ``fileno()`` of -1 makes starting it
    fail ("bad value(s) in fds_to_keep")."""
    if sys.__stderr__ is not None and sys.stderr is not sys.__stderr__:
        with redirect_stderr(sys.__stderr__):
            resource_tracker.ensure_running()


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
