"""Tree labels that are text, never markup, and fit the width: one way to draw a row for
the browser and the remote screen."""

from __future__ import annotations

from typing import Any, cast

from rich.cells import cell_len
from rich.style import Style
from rich.text import Span, Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from tui.privacy import shown


def plural(count: int | str, word: str, words: str = "") -> str:
    return f"{count} {word if str(count) == '1' else words or word + 's'}"


def iso_date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 else value or "----------"


# C0 and C1 controls and DEL, shown as "?": a hostile tag value must not drive the terminal.
_CONTROLS = dict.fromkeys([*range(0x20), *range(0x7F, 0xA0)], "?")


_CONTROLS_BUT_LINES = {k: v for k, v in _CONTROLS.items() if k not in (0x09, 0x0A)}


def one_line(value: str) -> str:
    """``value`` with its control characters shown as "?", for what takes a string that is
    never markup (a text box's value)."""
    return value.translate(_CONTROLS)


def plain(value: str) -> Text:
    """Text of several lines (a tag's whole value) that is text: no markup parsed, control
    characters but tab and newline shown as "?"."""
    return Text(value.translate(_CONTROLS_BUT_LINES))


class Fitted(Text):
    """A label that knows which of its parts gives way first on a narrow screen: ``cut``
    (start, end) is the description, so the date, accession and counts stay readable."""

    __slots__ = ("cut",)
    cut: tuple[int, int] | None  # set by line, which makes them all


def line(*parts: str | tuple[str, str], cut: int = -1) -> Fitted:
    """A one-line label from ``text`` or ``(text, style)`` parts: :meth:`Text.assemble`,
    several times faster (10,000 results make 20,000 labels). Part ``cut`` is the one
    shortened first when the line does not fit (see :func:`fit`). Control characters in the
    parts are shown as "?": a hostile tag value must not drive the terminal; no markup is
    parsed."""
    plain: list[str] = []
    spans = []
    at = 0
    where = None
    for index, part in enumerate(parts):
        text, style = (part, "") if isinstance(part, str) else part
        if not text:
            continue
        text = one_line(text)
        if style:
            spans.append(Span(at, at + len(text), style))
        if index == cut:
            where = (at, at + len(text))
        plain.append(text)
        at += len(text)
    label = Fitted("".join(plain), spans=spans)
    label.cut = where
    return label


def fit(text: Text, cut: tuple[int, int], room: int) -> Text:
    """``text`` in ``room`` cells by shortening the part ``cut`` (to one "…" at the least);
    what still does not fit is cut off at the right as usual."""
    excess = text.cell_len - room
    start, end = cut
    if excess <= 0 or end <= start:
        return text
    middle = text[start:end]
    middle.truncate(max(middle.cell_len - excess, 1), overflow="ellipsis")
    return text[:start] + middle + text[end:]


def patient_label(row: dict[str, str], studies: int, private: bool) -> Text:
    birth = shown(row, "PatientBirthDate", private)
    return line(
        (shown(row, "PatientName", private) or "(no name)", "bold"),
        "  ",
        (shown(row, "PatientID", private), "dim"),
        ("  " + plural(studies, "study", "studies"), "dim"),
        ("  born " + (birth if private else iso_date(birth)) if birth else "", "dim"),
    )  # on a narrow screen, the birth date is cut first


class FittedTree(Tree[dict[str, Any]]):
    """A tree of one-line :class:`Text` labels (no markup is parsed, so tag values stay
    text), fitted to the width as they are drawn: a :class:`Fitted` label's ``cut`` part
    gives way first, so the tree never scrolls sideways and counts stay readable."""

    _width = 0  # the width the lines were laid out for

    def process_label(self, label: str | Text) -> Text:
        return label if isinstance(label, Text) else super().process_label(label)

    def _build(self) -> None:
        # Private Textual API, kept to this one hook: Tree._build lays the lines out (calling
        # get_label_width for each), and no public hook runs before it. The width is measured
        # here once per layout, not once per line: looking the region up costs more than the
        # rest of a line's width. The scrollbar's gutter is kept whether or not it shows
        # (scrollbar-gutter: stable), so only a resize changes it, and a resize lays out again.
        self._width = self.scrollable_content_region.width
        super()._build()

    def _room(self, node: TreeNode[dict[str, Any]]) -> int:
        """The cells a node's label (with its icon) has beside its guides."""
        depth = 0
        parent = node.parent
        while parent is not None and parent is not self.root:
            depth += 1
            parent = parent.parent
        return max(1, self._width - depth * self.guide_depth)

    def get_label_width(self, node: TreeNode[dict[str, Any]]) -> int:
        icon = ""
        if node.allow_expand:
            icon = self.ICON_NODE_EXPANDED if node.is_expanded else self.ICON_NODE
        return min(cell_len(icon) + cast(Text, node.label).cell_len, self._room(node))

    def render_label(self, node: TreeNode[dict[str, Any]], base_style: Style, style: Style) -> Text:
        text = super().render_label(node, base_style, style)
        label = node.label
        if isinstance(label, Fitted) and label.cut is not None:
            icon = len(text) - len(label)
            start, end = label.cut
            text = fit(text, (start + icon, end + icon), self._room(node))
        return text
