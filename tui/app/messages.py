"""What screens ask of the app: screens never import each other, they post one of these to
the app (``self.app.post_message``) and :class:`tui.app.app.PacsApp` decides which screen
answers. A message is data only: what to open, not how."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:  # numpy and pydicom load when a series is first viewed, not at start
    from rich.text import Text

    from tui.archive.query import Filters
    from tui.render.lut import Window
    from tui.render.pipeline import Request


class OpenViewer(Message):
    """View a series (its archive row, as the browser lists it)."""

    def __init__(self, series: dict[str, Any]) -> None:
        super().__init__()
        self.series = series


class OpenTags(Message):
    """Read the headers of ``paths`` (a series' files, in order), from ``index`` on."""

    def __init__(self, paths: list[str], index: int = 0) -> None:
        super().__init__()
        self.paths, self.index = paths, index


class OpenMpr(Message):
    """The 2x2 MPR of a series' stack ``stack`` (a 4-D series' time point), in the viewer's
    window (``None``: the series' own)."""

    def __init__(
        self, series: dict[str, Any], window: Window | None = None, stack: int = 0
    ) -> None:
        super().__init__()
        self.series, self.window, self.stack = series, window, stack


class OpenRemote(Message):
    """Query and retrieve from a PACS (one remote screen for the app's whole run)."""


class OpenImport(Message):
    """Ask for files to import; the browser shows them when the import is over."""


class OpenShare(Message):
    """Export or send a patient, study or series (``level``, its archive row as the browser
    lists it, and its label as the tree shows it: what the dialog's title names). A
    patient's ``filters`` are the browser's: its studies as the tree shows them."""

    def __init__(
        self, level: str, row: dict[str, Any], label: Text, filters: Filters | None = None
    ) -> None:
        super().__init__()
        self.level, self.row, self.label, self.filters = level, row, label, filters


class OpenEdit(Message):
    """Edit a patient's, study's or series' attributes (as :class:`OpenShare`)."""

    def __init__(self, level: str, row: dict[str, Any], label: Text) -> None:
        super().__init__()
        self.level, self.row, self.label = level, row, label


class OpenPrint(Message):
    """Print a series on a DICOM printer: ``series`` (its archive row) and ``label`` (as the
    tree shows it: what the dialog's title names). From the viewer or the MPR, ``request`` is
    the view on screen (its plane index set; the MPR's active pane: an oblique plane through
    its point, or its rendering) and ``view`` what it is in words (the title names it): the
    dialog offers "this view" and, where the view is one plane of many, "a sheet of this
    plane"; from the browser (``request`` None) a sheet of the series."""

    def __init__(
        self,
        series: dict[str, Any],
        label: Text,
        request: Request | None = None,
        view: str = "",
    ) -> None:
        super().__init__()
        self.series, self.label, self.request, self.view = series, label, request, view


class ArchiveChanged(Message):
    """The archive holds more than it did (a retrieve, an import) or other values (an
    edit): the browser reloads, under its current filter."""


class Notice(Message):
    """A warning logged by the domain layers while the app owns the terminal (posted from
    any thread, by the log handler ``tui.cli.app`` installs): shown as a notice, as text."""

    def __init__(self, text: str, error: bool = False) -> None:
        super().__init__()
        self.text, self.error = text, error
