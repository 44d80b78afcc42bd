"""The tag reader: a header as a tree (sequences open on demand, private tags named by
their creator), search, full values, copying a value, and what differs from the next
instance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Input, Static, Tree

from tui.app.context import pacs
from tui.app.keys import OrderedInput, type_into
from tui.app.labels import line, plain
from tui.archive.tags import Element, diff, elements, read_header
from tui.errors import UserError
from tui.privacy import mask

_IDENTIFYING_TAGS = {"(0010,0010)", "(0010,0020)", "(0010,0030)"}
_SHORT = 60


class TagScreen(Screen[None]):
    """The header of one instance; ``d`` shows only what differs from another."""

    BINDINGS = [
        Binding("slash", "search", "Search", id="tags.search", priority=True),
        Binding("enter", "full", "Full value", show=False, id="tags.full"),
        Binding("y", "copy", "Copy value", id="tags.copy"),
        Binding("d", "diff", "Diff next", id="tags.diff"),
        Binding("escape,q", "back", "Back", id="tags.back"),
    ]
    CSS_PATH = Path(__file__).with_name("tags.tcss")

    def __init__(self, paths: list[str], index: int = 0) -> None:
        super().__init__()
        self.paths = paths  # the series' files, in order; ``index`` is shown
        self.index = index
        self.elements: list[Element] = []

    def compose(self) -> ComposeResult:
        yield OrderedInput(placeholder="tag, keyword or value", id="tag-search")
        tree: Tree[Element] = Tree("header", id="tag-tree")
        tree.show_root = False
        yield tree
        yield Static("", id="tag-value")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(Tree).focus()
        self.load()

    @property
    def private(self) -> bool:
        return bool(pacs(self).privacy)

    @work(thread=True, exclusive=True, group="tags")
    def load(self) -> None:
        try:
            found = elements(read_header(self.paths[self.index]))
        except UserError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.app.call_from_thread(self._show, found)

    def _show(self, found: list[Element], query: str = "") -> None:
        self.elements = found
        tree = self.query_one(Tree)
        tree.clear()
        self.sub_title = f"{self.paths[self.index]} ({self.index + 1}/{len(self.paths)})"
        self._add(tree.root, found, query.lower())
        if query:
            tree.root.expand_all()

    def _value(self, element: Element, full: bool = False) -> str:
        if self.private and element.tag in _IDENTIFYING_TAGS:
            return mask(element.full)
        text = element.full if full else element.value
        return text if full or len(text) <= _SHORT else text[: _SHORT - 1] + "…"

    def _add(self, parent: Any, found: list[Element], query: str) -> bool:
        any_shown = False
        for element in found:
            label = line(f"{element.tag} {element.name}  ", (element.vr, "dim"), " ",
                         self._value(element))  # fmt: skip
            matches = not query or query in f"{element.tag} {element.name} {element.full}".lower()
            if element.items:
                node = parent.add(label, data=element)
                shown = False
                for number, item in enumerate(element.items, 1):
                    child = node.add(f"item {number}", data=None)
                    shown |= self._add(child, item, "" if matches else query)
                if not (matches or shown):
                    node.remove()
                else:
                    any_shown = True
            elif matches:
                parent.add_leaf(label, data=element)
                any_shown = True
        return any_shown

    @on(Tree.NodeHighlighted)
    def highlighted(self, event: Tree.NodeHighlighted[Element]) -> None:
        self.app.clear_notifications()  # a shown value goes with the element it was of
        element = event.node.data
        text = (
            "" if element is None else f"{element.tag} {element.name}\n{self._value(element, True)}"
        )
        self.query_one("#tag-value", Static).update(plain(text))

    def action_search(self) -> None:
        box = self.query_one("#tag-search", Input)
        type_into(box)
        box.add_class("shown")

    @on(Input.Changed, "#tag-search")
    def searched(self, event: Input.Changed) -> None:
        self._show(self.elements, event.value)

    @on(Input.Submitted, "#tag-search")
    def search_done(self) -> None:
        self.query_one(Tree).focus()

    @on(Tree.NodeSelected)
    def selected(self, event: Tree.NodeSelected[Element]) -> None:
        """Enter on an element: the tree takes the key, so its selection shows the value."""
        if event.node.data is not None and not event.node.children:
            self.action_full()

    def action_full(self) -> None:
        node = self.query_one(Tree).cursor_node
        if node is not None and node.data is not None:
            self.notify(self._value(node.data, True)[:2000], title=node.data.name, timeout=10)

    def action_copy(self) -> None:
        node = self.query_one(Tree).cursor_node
        if node is not None and node.data is not None:
            self.app.copy_to_clipboard(self._value(node.data, True))  # OSC 52: works over SSH
            self.notify("copied")

    def action_diff(self) -> None:
        if len(self.paths) < 2:
            self.notify("the series has one instance: nothing to compare")
            return
        self.show_diff((self.index + 1) % len(self.paths))

    @work(thread=True, exclusive=True, group="tags")
    def show_diff(self, other: int) -> None:
        first, second = read_header(self.paths[self.index]), read_header(self.paths[other])
        rows = diff(first, second)
        found = [
            Element(tag, name, "", f"{left}  →  {right}", f"{left}\n→\n{right}")
            for tag, name, left, right in rows
        ]
        self.app.call_from_thread(self._show, found)
        self.app.call_from_thread(
            self.notify, f"{len(rows)} elements differ from instance {other + 1}", timeout=4
        )

    def action_back(self) -> None:
        box = self.query_one("#tag-search", Input)
        if box.has_class("shown"):
            box.value = ""
            box.remove_class("shown")
            self.query_one(Tree).focus()
            return
        self.app.pop_screen()
