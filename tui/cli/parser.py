"""The ``pacs-tui`` parser's assembly and :func:`main`, the entry point.

Each command group's module registers its sub-parsers with its ``add_commands``; the
handlers import what they need when they run, so that quick commands such as ``ls`` start
without loading pydicom. Errors a user can cause are printed as one line
(``pacs-tui: error: ...``) with exit status 1; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys
import warnings
from collections.abc import Iterable, Sequence
from typing import NoReturn

from tui import __version__
from tui.cli import archive, demo, edit, net, nodes, printing, render, triage, worklist
from tui.cli import open as opening
from tui.cli.app import run_app
from tui.cli.common import fail, keep_private, open_archive
from tui.config import Locations, locate
from tui.errors import UserError
from tui.permissions import private_file, private_folder
from tui.tables import printable
from tui.term.modes import BANDWIDTHS, GRAPHICS


class _Parser(argparse.ArgumentParser):
    """Usage mistakes get one line, like every other error, naming what was mistyped."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"pacs-tui: error: {message} (see: {self.prog} --help)\n")

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        # argparse sets an unknown option aside and takes the value after it for the
        # command (--archve X ls: "invalid choice: 'X'"): name the option first.
        self._check_words(list(sys.argv[1:] if args is None else args))
        return super().parse_args(args, namespace)

    def _check_words(self, words: list[str], outer: _Parser | None = None) -> None:
        """Refuse an unknown long option or command in ``words``, naming the nearest known
        (or, for a command's words, saying that a global option of ``outer`` goes first)."""
        commands = next(
            (a for a in self._actions if isinstance(a, argparse._SubParsersAction)), None
        )
        values = 0  # words still to come that are an option's values
        for at, word in enumerate(words):
            if values:
                values -= 1
            elif word == "--":
                return
            elif word.startswith("--"):
                name = word.split("=", 1)[0]
                action = self._option(name)
                if action is None and outer is not None and outer._option(name) is not None:
                    command = self.prog.rpartition(" ")[2]
                    self.error(
                        f"{name} is a global option: it goes before the command"
                        f" (pacs-tui {name} ... {command} ...)"
                    )
                if action is None:
                    known = [o for a in self._actions for o in a.option_strings]
                    self.error(f"unknown option {name}{_did_you_mean(name, known)}")
                if "=" not in word and isinstance(action, argparse.Action):
                    values = action.nargs if isinstance(action.nargs, int) else 1
                    values = 0 if action.nargs in ("?", "*", "+") else values
            elif commands is not None and not word.startswith("-"):
                chosen = commands.choices.get(word)
                if chosen is None:
                    self.error(f"unknown command {word!r}{_did_you_mean(word, commands.choices)}")
                assert isinstance(chosen, _Parser)  # sub-parsers take their parent's class
                chosen._check_words(words[at + 1 :], outer or self)  # the global options
                return

    def _option(self, name: str) -> argparse.Action | bool | None:
        """The option ``name`` is, whole or abbreviated; True if it is ambiguous (argparse
        says so), None if it is none."""
        exact = self._option_string_actions.get(name)
        if exact is not None:
            return exact
        matches = {a for o, a in self._option_string_actions.items() if o.startswith(name)}
        if len(matches) > 1:
            return True
        return next(iter(matches), None)


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    import difflib

    bare = {choice.lstrip("-"): choice for choice in choices}  # dashes are not a likeness
    close = difflib.get_close_matches(word.lstrip("-"), list(bare), n=1, cutoff=0.6)
    return f"; did you mean {bare[close[0]]}?" if close else ""


def build_parser() -> argparse.ArgumentParser:
    """The whole parser: the global options, then each command group's commands."""
    parser = _Parser(
        prog="pacs-tui",
        description="A keyboard-driven terminal PACS client.",
    )
    parser.add_argument("--version", action="version", version=f"pacs-tui {__version__}")
    parser.add_argument(
        "--archive",
        metavar="DIR",
        help="archive folder (default: $PACS_TUI_ARCHIVE or the user data folder)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug messages on stderr")
    parser.add_argument(
        "--graphics",
        choices=GRAPHICS,
        help="how images are drawn in the terminal (default: config.toml, else auto)",
    )
    parser.add_argument("--theme", metavar="NAME", help="reading-room, daylight, high-contrast...")
    parser.add_argument(
        "--privacy",
        action="store_true",
        help="mask names, IDs and birth dates (the app, ls, find)",
    )
    parser.add_argument(
        "--dither",
        choices=("none", "ordered", "diffusion"),
        help="dither half-block greys so gradients do not band (default: config.toml, else none)",
    )
    parser.add_argument(
        "--bandwidth",
        choices=BANDWIDTHS,
        help="colours, image size and frame rate (default: config.toml, else auto)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    # In this order in --help: the archive, editing it, the demo, images, files to view,
    # triage, the network, printing.
    for group in (archive, edit, demo, render, opening, triage, nodes, net, worklist, printing):
        group.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    args = build_parser().parse_args(argv)
    for stream in (sys.stdout, sys.stderr):
        # Names in any script must never crash a terminal or pipe that is not UTF-8.
        stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    if not args.verbose:
        warnings.simplefilter("ignore")  # libraries' warnings; our reports say what matters
    try:
        locations = locate(args.archive)
        keep_private(locations)
        _setup_logging(locations, args.verbose)
        if args.command is None:
            if not (sys.stdin.isatty() and sys.stdout.isatty()):
                build_parser().print_help()
                return 0
            return run_app(args, locations, open_archive(locations, create=True))
        return int(args.handler(args, locations) or 0)
    except UserError as exc:
        return fail(str(exc))
    except sqlite3.Error as exc:
        return fail(f"archive: {exc}")
    except KeyboardInterrupt:
        print("pacs-tui: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (``| head``): not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        return fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))


def _setup_logging(locations: Locations, verbose: bool) -> None:
    """Warnings (debug with -v) on stderr; a log file of what commands did, at INFO, that
    only its user can read.

    Messages at INFO and above never carry patient data: counts and timings, not
    names, UIDs or paths (folder names often hold patient names). A record with
    ``log_only`` set goes to the file alone (a crash's traceback: the terminal gets one
    line). Control characters show as escapes in both: a message may quote a peer's words.
    """
    console = logging.StreamHandler()
    console.setLevel(logging.DEBUG if verbose else logging.WARNING)
    console.addFilter(logging.Filter("tui"))  # -v means our debug messages, not plug-ins
    console.addFilter(lambda record: not getattr(record, "log_only", False))
    handlers: list[logging.Handler] = [console]
    try:
        private_folder(locations.log_dir)
        private_file(locations.log_file)  # 0600 before logging opens it, whatever the umask
        handlers.append(logging.FileHandler(locations.log_file, delay=True))
        handlers[-1].setLevel(logging.INFO)
        # Only our own messages: libraries' warnings quote tag values (patient data).
        handlers[-1].addFilter(logging.Filter("tui"))
    except OSError:
        pass  # an unwritable log folder must not stop the command
    formatter = _Printable("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in handlers:
        handler.setFormatter(formatter)
    if not verbose:  # the terminal gets a command's usual one line, the file its timestamp
        console.setFormatter(_OneLine())
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=handlers)


class _Printable(logging.Formatter):
    """Each line of a record with its control characters shown as escapes."""

    def format(self, record: logging.LogRecord) -> str:
        return "\n".join(printable(line) for line in super().format(record).split("\n"))


class _OneLine(_Printable):
    """``pacs-tui: warning: ...``, as the command's own one-line errors read."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return f"pacs-tui: {record.levelname.lower()}: {record.message}"
