"""Small modal dialogs that several screens use."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Input

from tui.app.keys import OrderedInput


class NoteScreen(ModalScreen[str | None]):
    """One line of text (a study's note, a file name): Enter keeps it, Esc cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="note.cancel")]
    CSS_PATH = Path(__file__).with_name("dialogs.tcss")

    def __init__(self, note: str, placeholder: str = "a short note for this study") -> None:
        super().__init__()
        self.note = note
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        yield OrderedInput(self.note, placeholder=self.placeholder, id="note")

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
