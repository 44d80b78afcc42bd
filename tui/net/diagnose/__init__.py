"""Node diagnostics: why a node does not answer, step by step, in words.

:func:`diagnose` runs the steps one after another and yields each :class:`Step` as it
completes (the CLI prints it, the app shows it live). For a DIMSE node (:mod:`.dimse`): name
resolution and TCP connect, the association (what the peer accepts), C-ECHO, C-FIND at each
level, a C-GET of one instance, a C-MOVE round trip to a storage SCP we start, and the
modality worklist; for a printer (:mod:`.printer`), after the association and C-ECHO, the
printer's status (N-GET Printer) instead. For a DICOMweb node (:mod:`.web`): the
connection to each root, each endpoint and the auth, a QIDO-RS echo, QIDO-RS at each
level, a WADO-RS of one instance.

Each step has a verdict (ok, warning, failed, or skipped after a fatal failure), a one-line
summary and, when something is wrong, the fix in words. Nothing goes into the user's
archive: what is retrieved lands in a throwaway archive in a temporary folder.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

from tui.errors import UserError
from tui.net.diagnose.step import FAILED, OK, SKIPPED, VERDICTS, WARNING, Step, exit_status
from tui.net.nodes import RECEIVE_PORT, Node

__all__ = [
    "FAILED",
    "OK",
    "SKIPPED",
    "VERDICTS",
    "WARNING",
    "Step",
    "address_of",
    "diagnose",
    "exit_status",
    "steps_of",
]  # fmt: skip

log = logging.getLogger(__name__)


def address_of(node: Node) -> str:
    """What is tested, for the heading: ``AET@host:port``, or a DICOMweb node's root, or
    its QIDO-RS, WADO-RS and STOW-RS roots when they are not all the same."""
    if not node.dicomweb:
        return node.address
    roots = node.web_roots
    if len(set(roots.values())) == 1:
        return roots["qido"]
    return ", ".join(f"{service.upper()}-RS {root}" for service, root in roots.items())


def steps_of(node: Node) -> tuple[tuple[str, str], ...]:
    """The steps :func:`diagnose` runs for ``node``: (key, title) pairs, in order."""
    from tui.net.diagnose.dimse import DimseRun
    from tui.net.diagnose.printer import PrinterRun
    from tui.net.diagnose.web import WebRun

    if node.dicomweb:
        return WebRun.STEPS
    return PrinterRun.STEPS if getattr(node, "printer", False) else DimseRun.STEPS


def diagnose(
    node: Node, receive_port: int = RECEIVE_PORT, cancel: threading.Event | None = None
) -> Iterator[Step]:
    """Test ``node`` step by step, yielding each :class:`Step` as it completes.

    Parameters
    ----------
    node
        The node to test.
    receive_port
        Where our storage SCP listens for the C-MOVE round trip (0: any free port).
    cancel
        When set, the step under way stops as soon as it can and no other starts.
    """
    from tui.net.diagnose.dimse import DimseRun
    from tui.net.diagnose.printer import PrinterRun
    from tui.net.diagnose.web import WebRun

    run: DimseRun | WebRun
    if node.dicomweb:
        run = WebRun(node, cancel)
    elif getattr(node, "printer", False):
        run = PrinterRun(node, receive_port, cancel)
    else:
        run = DimseRun(node, receive_port, cancel)
    for key, title in run.STEPS:
        if cancel is not None and cancel.is_set():
            return
        step = Step(key, title)
        if run.fatal:
            step.set(SKIPPED, f"skipped: {run.fatal}")
            yield step
            continue
        check: Callable[[Step], None] = getattr(run, key)
        started = time.perf_counter()
        try:
            check(step)
        except UserError as exc:  # a failure the step did not foresee: its own words
            step.set(FAILED, str(exc))
        except Exception as exc:  # pynetdicom's surprises: a verdict, never a traceback
            log.debug("step %s failed", key, exc_info=True)
            step.set(FAILED, f"{type(exc).__name__}: {exc}".splitlines()[0])
        step.seconds = max(0.0, time.perf_counter() - started - step.untimed)
        yield step
