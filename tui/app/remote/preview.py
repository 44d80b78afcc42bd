"""A look at a remote series without retrieving it (``v`` on a series of a DICOMweb node).

The series' attributes come by WADO-RS ``/metadata`` and the picture by ``/rendered`` (or
``/thumbnail``) of its middle instance (:mod:`tui.net.dicomweb.wado`): the cheapest look at
a remote study on a slow link. The picture is the server's rendering (its window, its
lookup tables, its size), never pacs-tui's pipeline, and the panel says so in its title.
Tag values are :class:`~rich.text.Text` (never markup), their control characters shown as
"?"; with ``--privacy`` identifying values are masked.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Static
from textual.widgets.tree import TreeNode

from tui.app.image_view import ImageView
from tui.app.labels import one_line
from tui.errors import UserError
from tui.net.nodes import Node
from tui.privacy import masked

log = logging.getLogger(__name__)

PREVIEW_SIZE = 512  # pixels asked of the server (its viewport): enough for a terminal


def can_preview(node: Node | None) -> str:
    """Why ``node``'s series cannot be previewed here ("" when they can)."""
    if node is None:
        return "no node highlighted"
    if not node.dicomweb:
        return (
            f"{node.name} is a DIMSE node: a look without retrieving needs DICOMweb "
            "(WADO-RS /rendered); retrieve the series (g) to view it"
        )
    return ""


def open_preview(
    screen: Screen[Any], cursor: TreeNode[dict[str, Any]] | None, private: bool
) -> None:
    """``v`` on the remote screen: preview the series under the cursor (of a study: its
    first series, once its series are listed), or say why not."""
    data = (cursor.data or {}) if cursor is not None else {}
    if data.get("level") == "study":
        series = (
            [c for c in cursor.children if (c.data or {}).get("level") == "series"]
            if cursor
            else []
        )
        if not series:
            screen.notify("expand the study (Enter) and highlight one of its series to preview")
            return
        cursor, data = series[0], series[0].data or {}
    study = (cursor.parent.data or {}) if cursor is not None and cursor.parent else {}
    if data.get("level") != "series" or "node" not in study:
        screen.notify("highlight a series of the results to preview it")
        return
    node: Node = study["node"]
    why = can_preview(node)
    if why:
        screen.notify(why, severity="warning")
        return
    row = data["row"]
    uids = (study["row"]["StudyInstanceUID"], row.get("SeriesInstanceUID", ""))
    screen.app.push_screen(PreviewScreen(node, *uids, private=private))


class PreviewScreen(ModalScreen[None]):
    """The server's rendering of a series' middle instance, beside its attributes."""

    BINDINGS = [Binding("escape", "close", "Close", id="preview.close")]
    CSS_PATH = Path(__file__).with_name("preview.tcss")

    def __init__(self, node: Node, study: str, series: str, private: bool = False) -> None:
        super().__init__()
        self.node, self.study, self.series, self.private = node, study, series, private
        self.rows: list[dict[str, str]] = []
        self.source = ""  # "rendered" or "thumbnail", once shown

    def compose(self) -> ComposeResult:
        with Vertical(id="preview"):
            yield Static(
                Text.assemble(
                    ("SERVER RENDERING", "bold reverse"),
                    f"  {one_line(self.node.name)}'s own picture (WADO-RS), not pacs-tui's: "
                    "its window and size; retrieve the series (g) for the real thing",
                ),
                id="preview-title",
            )
            with Horizontal(id="preview-body"):
                yield ImageView(id="preview-image")
                table: DataTable[Text] = DataTable(id="preview-tags", cursor_type="row")
                table.add_columns("Keyword", "Value")
                yield table
            yield Static(Text("asking the server…", "dim"), id="preview-status")

    def on_mount(self) -> None:
        self.load()

    def action_close(self) -> None:
        self.dismiss(None)

    @work(thread=True, group="preview", exit_on_error=False)
    def load(self) -> None:
        from tui.net.dicomweb.wado import preview, series_metadata

        try:
            rows = series_metadata(self.node, self.study, self.series)
            middle = rows[len(rows) // 2] if rows else {}
            uid = middle.get("SOPInstanceUID") or None
            shown = preview(self.node, self.study, self.series, PREVIEW_SIZE, instance=uid)
            picture = shown.image
            array = np.asarray(picture.convert("RGB" if picture.mode in ("RGB", "RGBA", "P")
                                               else "L"))  # fmt: skip
        except UserError as exc:
            self.app.call_from_thread(self._failed, str(exc))
            return
        self.app.call_from_thread(self._show, rows, middle, array, shown.source)

    def _show(
        self, rows: list[dict[str, str]], middle: dict[str, str], array: Any, source: str
    ) -> None:
        if not self.is_attached:
            return  # closed meanwhile
        self.rows, self.source = rows, source
        self.query_one(ImageView).show(array)
        table = self.query_one(DataTable)
        for keyword, value in sorted(masked(middle, self.private).items()):
            table.add_row(Text(keyword), Text(one_line(str(value))[:200]))
        number = middle.get("InstanceNumber", "?")
        self.query_one("#preview-status", Static).update(
            Text(
                f"instance {number} of {len(rows)} in the series, as the server's /{source} "
                "draws it; Esc closes",
                "dim",
            )
        )

    def _failed(self, error: str) -> None:
        if self.is_attached:
            self.query_one("#preview-status", Static).update(Text(error, "bold red"))
