"""Opening the Textual app from the command line (``pacs-tui`` without a command,
``pacs-tui demo`` and ``pacs-tui open FILE``); Textual is imported only here, when the app
starts."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import tui
from tui.cli.common import fail, settings, stopped_by_signals, tty
from tui.config import Locations
from tui.errors import UserError

log = logging.getLogger(__name__)


def run_app(
    args: argparse.Namespace,
    locations: Locations,
    archive: Any,
    file: Path | None = None,
    modality: str | None = None,
) -> int:
    """Open the Textual app on ``archive``; exit status 1 if it ended on an exception.

    With ``file`` (a NIfTI, NRRD or picture file), the app starts in its viewer, the
    browser below it; a file that cannot be read is one line before the app starts. Its
    scratch DICOM file (in the cache folder, never the archive) goes when the app ends.
    """
    from tui.app.app import PacsApp
    from tui.term.detect import cell_size
    from tui.term.modes import PROTOCOLS

    chosen = settings(args, locations)
    graphics = chosen.protocol(tty_fd=tty())
    if graphics in ("ascii", "none"):
        graphics = "halfblock"  # the app draws in cells; text art is for printing
    app = PacsApp(
        archive,
        chosen.link(),  # the dither too (it did nothing in the app before)
        config_dir=locations.config_dir,
        theme=chosen.theme,
        privacy=chosen.privacy,
        keymap=chosen.keymap,
        cache_mb=chosen.cache_mb,
        graphics=graphics,
        cell=cell_size(tty()) if graphics in PROTOCOLS else None,
        tmux="TMUX" in os.environ,
        scratch_dir=locations.cache_dir / "open",
    )
    try:
        if file is not None:
            app.start_with = app.open_file(file, modality).series
        # a closed terminal (SIGHUP) may end the process before the app's way out
        with _warnings_as_notices(app), stopped_by_signals(on_hangup=app.close_files):
            app.run()
    finally:
        app.close_files()
    if app.crashed is None:
        return 0
    return crashed(app.crashed, locations.log_file)


class _Notices(logging.Handler):
    """Our warnings posted to the app as notices: ``post_message`` is thread-safe and never
    waits, so a worker that logs cannot be held up by the app (nor the app by it)."""

    def __init__(self, app: Any) -> None:
        super().__init__(logging.WARNING)
        self.app = app
        self.addFilter(logging.Filter("tui"))
        self.addFilter(lambda record: not getattr(record, "log_only", False))

    def emit(self, record: logging.LogRecord) -> None:
        from tui.app.messages import Notice

        try:
            self.app.post_message(Notice(record.getMessage(), record.levelno >= logging.ERROR))
        except Exception:  # a notice that cannot be shown must not break the worker
            self.handleError(record)


@contextlib.contextmanager
def _warnings_as_notices(app: Any) -> Iterator[None]:
    """While the app owns the terminal, a warning written to stderr would land on top of its
    screen: the console handler steps aside and warnings become notices (the log file still
    gets them)."""
    root = logging.getLogger()
    console = [h for h in root.handlers if type(h) is logging.StreamHandler]
    notices = _Notices(app)
    for handler in console:
        root.removeHandler(handler)
    root.addHandler(notices)
    try:
        yield
    finally:
        root.removeHandler(notices)
        for handler in console:
            root.addHandler(handler)


def crashed(error: BaseException, log_file: Path) -> int:
    """Log the traceback of what ended the app, say in one line what broke and where the
    traceback is; exit status 1.

    The traceback in the log is its frames and the exceptions' types: their messages may
    quote tag values, so they are logged at DEBUG (seen with -v only). A :class:`UserError`
    (an archive that turns out corrupt while browsing) is its own one line, as in commands.
    """
    log.error("the app stopped:\n%s", _frames(error), extra={"log_only": True})
    log.debug("the app stopped on %s: %s", type(error).__name__, error)
    # The log is created on start unless its folder cannot be written.
    logged = f"in {log_file}" if log_file.is_file() else "not kept: no log could be written"
    if isinstance(error, UserError):
        return fail(f"{error} (the app stopped; details {logged})")
    return fail(
        f"the app stopped on an unexpected {type(error).__name__} at {_where(error)};"
        f" the traceback is {logged}"
    )


def _frames(error: BaseException) -> str:
    """The traceback of ``error`` and the exceptions it came from, without their messages."""
    chain: list[BaseException] = []
    cause: BaseException | None = error
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
    lines = []
    for exc in reversed(chain):
        lines += ["Traceback (most recent call last):\n", *traceback.format_tb(exc.__traceback__)]
        lines.append(f"{type(exc).__module__}.{type(exc).__qualname__}\n")
    return "".join(lines).rstrip("\n")


def _where(error: BaseException) -> str:
    """The last line of our own code the exception passed through, as ``tui/app/x.py:12``."""
    package = Path(tui.__file__).parent
    ours = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if Path(frame.filename).is_relative_to(package)
    ]
    if not ours:
        return "an unknown place"
    frame = ours[-1]
    return f"{Path(frame.filename).relative_to(package.parent)}:{frame.lineno}"
