"""What every command of the command line shares: the archive's opening, ``--json``
output, the one-line error, privacy masking, the progress bar and stopping on signals.

Imports stay light here (no pydicom, numpy or Textual): ``pacs-tui ls`` loads this module.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from tui.config import Locations
from tui.errors import UserError
from tui.permissions import make_private, private_folder
from tui.settings import Settings
from tui.tables import printable

if TYPE_CHECKING:
    from tui.archive.index import Archive

# What a command module's ``add_commands`` registers its sub-parsers on.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def fail(message: str) -> int:
    """Print ``message`` as the one line ``pacs-tui: error: ...`` on stderr; exit status 1.
    Control characters show as escapes: a message may quote a file name or a tag value."""
    print(f"pacs-tui: error: {printable(' '.join(message.split()))}", file=sys.stderr)
    return 1


def print_json(value: Any) -> None:
    """``value`` as indented JSON on stdout (``\\u`` escapes when stdout is not UTF-8)."""
    utf8 = (sys.stdout.encoding or "").lower().replace("-", "") == "utf8"
    json.dump(value, sys.stdout, ensure_ascii=not utf8, indent=1)
    sys.stdout.write("\n")


def done(path: str) -> int:
    """Print the path of the file a command wrote, for scripts; exit status 0."""
    print(path)
    return 0


def open_archive(locations: Locations, create: bool = True) -> Archive:
    """Open the archive; reading commands do not create one."""
    from tui.archive.index import INDEX_NAME, Archive

    folder = locations.archive
    if not create and not (folder / INDEX_NAME).exists() and not folder.is_file():
        if locations.archive_chosen and not folder.exists():
            raise UserError(f"no archive at {locations.archive}: import files into it first")
        hint = "the archive is empty: add files with `pacs-tui import PATH`"
        if (locations.demo_archive / INDEX_NAME).exists():
            hint += f" (the demo has its own: pacs-tui --archive {locations.demo_archive} ls)"
        print(hint, file=sys.stderr)
    return Archive(locations.archive, create=create)


def keep_private(locations: Locations) -> None:
    """Make what pacs-tui keeps private to its user, on every start: the archive folder, its
    index and store, config.toml and the log (folders 0700, files 0600). What cannot be
    changed (another user's archive, a read-only mount) is said in one line on stderr and
    used as it is."""
    from tui.archive.index import INDEX_NAME, STORE_NAME

    with contextlib.suppress(OSError):  # a config folder that cannot be made: found out later
        private_folder(locations.config_dir)  # before anything writes config.toml into it
    paths = [locations.config_dir, locations.config_file, locations.log_dir, locations.log_file]
    index = locations.archive / INDEX_NAME
    if index.exists():  # an archive: not any folder that --archive names
        paths += [locations.archive, locations.archive / STORE_NAME, index]
        paths += [Path(f"{index}{suffix}") for suffix in ("-wal", "-shm", "-journal")]
    open_to_others = make_private(paths)
    if open_to_others:
        print(
            f"pacs-tui: warning: other users may read {printable(', '.join(open_to_others))}",
            file=sys.stderr,
        )


def settings(args: argparse.Namespace | None, locations: Locations) -> Settings:
    """The options of this command line over config.toml's (checked: one line if wrong)."""
    return Settings.resolve(args, locations.config_file)


def tty() -> int | None:
    """The terminal's file descriptor, to ask it what it can draw; None when piped."""
    return sys.stdin.fileno() if sys.stdin.isatty() and sys.stdout.isatty() else None


class ProgressBar:
    """A one-line progress bar on stderr (only used when stderr is a terminal)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.last = -1

    def __call__(self, done: int, total: int) -> None:
        percent = 100 * done // total if total else 100
        if percent == self.last:
            return
        self.last = percent
        text = f" {done}/{total} files"
        room = shutil.get_terminal_size().columns - len(self.label) - len(text) - 4
        size = max(0, min(40, room))
        filled = percent * size // 100
        bar = f" [{'#' * filled}{'.' * (size - filled)}]" if size >= 10 else ""
        sys.stderr.write(f"\r{self.label}{bar}{text}\x1b[K")
        sys.stderr.flush()

    def close(self) -> None:
        if self.last >= 0:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def wait_until_stopped() -> None:
    """Block until Ctrl-C, SIGTERM (how service managers stop a daemon) or SIGHUP."""
    with stopped_by_signals(), contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()


@contextlib.contextmanager
def interrupt_sets(cancel: threading.Event) -> Iterator[None]:
    """Within: Ctrl-C sets ``cancel``, and work that checks it stops cleanly; a second
    Ctrl-C raises KeyboardInterrupt.

    The first raises nothing because a KeyboardInterrupt lands wherever the main thread is:
    in logging's lock release after a fork (as worker processes start), Python drops it
    ("Exception ignored in _releaseLock"), the export went on and logging's lock stayed
    taken, so a worker's management thread could hang the exit.
    """
    import signal

    def interrupted(signum: int, frame: Any) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def stopped_by_signals(on_hangup: Callable[[], None] | None = None) -> Iterator[None]:
    """Within: SIGTERM and SIGHUP (the terminal or the SSH link closed) raise
    KeyboardInterrupt, as Ctrl-C does, so that what cleans up on the way out runs. A signal
    ignored already (``nohup``) stays ignored.

    With ``on_hangup``, SIGHUP runs it (and an enclosing block's) and then ends the
    process as SIGHUP does by default:
    with its terminal gone, an app may never reach its own way out (Textual's output thread
    dies on the closed terminal), so what must not be left behind goes first.
    """
    import signal

    def stop(signum: int, frame: Any) -> None:
        if signum == signal.SIGHUP and on_hangup is not None:
            on_hangup()
            outer = previous.get(signal.SIGHUP)
            if callable(outer):  # an enclosing block's hangup clean-up runs too
                outer(signum, frame)
            signal.signal(signal.SIGHUP, signal.SIG_DFL)
            signal.raise_signal(signal.SIGHUP)
        raise KeyboardInterrupt

    previous = {
        number: signal.signal(number, stop)
        for number in (signal.SIGTERM, signal.SIGHUP)
        if signal.getsignal(number) is not signal.SIG_IGN
    }
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
