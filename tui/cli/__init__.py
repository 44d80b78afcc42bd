"""The ``pacs-tui`` command line: one parser, one small handler per command.

:mod:`tui.cli.parser` assembles the parser and runs a command; each command group has its
module (:mod:`~tui.cli.archive`, :mod:`~tui.cli.render`, :mod:`~tui.cli.triage`,
:mod:`~tui.cli.nodes`, :mod:`~tui.cli.net`, :mod:`~tui.cli.demo`) that registers its
sub-parsers and handlers; :mod:`tui.cli.common` holds what they share.
"""

# The module is not called main.py: ``main`` here would hide it (tui.cli.main the function).
from tui.cli.parser import main

__all__ = ["main"]
