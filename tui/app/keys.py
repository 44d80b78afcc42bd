"""The `?` panel: this screen's own keys first, then those that work everywhere, then the
focused widget's (moving in a list). Textual's panel lists the focused widget's first, so
a tree's generic cursor keys came before the app's."""

from __future__ import annotations

from collections import defaultdict

from rich.table import Table
from rich.text import Text
from textual import events
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.dom import DOMNode
from textual.widget import Widget
from textual.widgets import HelpPanel, Input, KeyPanel, Markdown, Static

from tui.app.labels import one_line


def type_into(box: Widget) -> None:
    """Focus `box` before the next key is read, for a priority binding that opens a box
    to type into ("/" for a filter). Keys typed or pasted in one burst are all read before
    a widget handles the first, so a focus given later sends the rest elsewhere. In a box
    already, the key is typed as text instead (SkipAction lets it through)."""
    if isinstance(box.screen.focused, Input):
        raise SkipAction()
    box.screen.set_focus(box)


class OrderedInput(Input):
    """An Input whose editing keys keep their place among typed characters.

    Textual inserts a typed character as its key arrives, but runs a bound key (Backspace,
    Ctrl-U, the arrows) only after the key has bubbled up to the app: in a burst (a paste,
    a fast typist, an SSH link that coalesces keys) "/", Ctrl-U, "abc" ended with an empty
    box, Ctrl-U deleting what came after it (Textual issue 6605). The widget's own bindings
    run here, in order. Every text box of the app is one of these.
    """

    def validate_value(self, value: str) -> str:
        """Control characters (a paste can carry escapes) become "?": a box's text is drawn
        on the terminal as it is."""
        return one_line(value)

    async def _on_key(self, event: events.Key) -> None:
        for binding in self._bindings.key_to_bindings.get(event.key, ()):
            if not binding.priority and await self.app.run_action(binding.action, self):
                event.stop()
                event.prevent_default()
                return
        await super()._on_key(event)


class ScreenFirstTable(Static):
    """The keys, this screen's first (Textual's table lists the focused widget's first);
    the panel composes it anew whenever the bindings change."""

    DEFAULT_CSS = "ScreenFirstTable { width: auto; height: auto; }"

    def render(self) -> Table:
        screen, app = self.screen, self.app
        groups: dict[DOMNode, list[Binding]] = defaultdict(list)
        for namespace, binding, _enabled, _tooltip in screen.active_bindings.values():
            if not binding.system:
                groups[namespace].append(binding)
        order = sorted(groups, key=lambda ns: 0 if ns is screen else 1 if ns is app else 2)
        key_style = f"bold {self.app.current_theme.accent or ''}".strip()
        table = Table(show_header=False, box=None, padding=(0, 1, 0, 0))
        table.add_column("", justify="right")
        table.add_column("")
        for namespace in order:
            title = (
                "This screen" if namespace is screen
                else "Everywhere" if namespace is app
                else getattr(namespace, "BINDING_GROUP_TITLE", None) or "In the list"
            )  # fmt: skip
            table.add_row("", Text(title, style="bold"))
            by_action: dict[str, list[Binding]] = defaultdict(list)
            for binding in sorted(groups[namespace], key=lambda b: b.id is None):  # ours first
                by_action[binding.action].append(binding)
            for bindings in by_action.values():
                keys = " ".join(dict.fromkeys(app.get_key_display(b) for b in bindings))
                first = bindings[0]
                # the long name where the footer has a short one
                description = Text(first.tooltip or first.description or first.action)
                table.add_row(Text(keys, style=key_style), description)
            table.add_row("", "")
        return table


class ScreenFirstKeys(KeyPanel):
    def compose(self) -> ComposeResult:
        yield ScreenFirstTable(shrink=True, expand=False)


class KeysHelp(HelpPanel):
    """Textual's help panel (a widget's help text above) with :class:`ScreenFirstKeys`."""

    def compose(self) -> ComposeResult:
        yield Markdown(id="widget-help")
        yield ScreenFirstKeys(id="keys-help")
