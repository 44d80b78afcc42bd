"""The node test panel: :func:`tui.net.diagnose.diagnose`'s steps, shown as they complete."""

from __future__ import annotations

import threading
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.errors import UserError
from tui.net.diagnose import Step, address_of, diagnose, steps_of
from tui.net.nodes import Node

_STYLES = {"ok": "green", "warning": "yellow", "failed": "bold red", "skipped": "dim"}
_MARKS = {"ok": "✔", "warning": "!", "failed": "✘", "skipped": "–"}


def step_text(step: Step) -> Text:
    """One step as the panel shows it: its mark, title, time and summary; its details and
    fix below. Text, never markup: a PACS's answers are shown as they came."""
    style = _STYLES.get(step.verdict, "")
    text = Text.assemble(
        (f"{_MARKS.get(step.verdict, '?')} {step.verdict:<7} ", style),
        (step.title, "bold"),
        ("" if step.verdict == "skipped" else f" {step.seconds * 1e3:.0f} ms", "dim"),
        "\n  ",
        step.summary,
    )
    for line in step.details:
        text.append(f"\n    {line}", "dim")
    if step.fix:
        text.append("\n  fix: ", "bold")
        text.append(step.fix)
    return text


class DiagnoseScreen(ModalScreen[None]):
    """A node tested step by step (``pacs-tui node test`` in the app): each step appears as
    it completes; Esc stops the test and closes the panel."""

    BINDINGS = [Binding("escape", "close", "Close", tooltip="Stop and close", id="diagnose.close")]
    CSS_PATH = Path(__file__).with_name("diagnose.tcss")

    def __init__(self, node: Node, config_file: Path | None) -> None:
        super().__init__()
        self.node = node
        self.config_file = config_file
        self.steps: list[Step] = []
        self.finished = False
        self.cancel = threading.Event()

    def compose(self) -> ComposeResult:
        with Vertical(id="diagnose"):
            heading = f"Testing {self.node.name} ({address_of(self.node)})"
            yield Static(Text(heading, "bold"), id="diagnose-heading")
            yield VerticalScroll(id="diagnose-steps")
            yield Static(Text("testing… Esc stops", "dim"), id="diagnose-status")

    def on_mount(self) -> None:
        self.run_test()

    def on_unmount(self) -> None:
        self.cancel.set()  # the worker stops after the step under way; nothing waits for it

    def action_close(self) -> None:
        self.cancel.set()
        self.dismiss(None)

    @work(thread=True, group="diagnose", exit_on_error=False)
    def run_test(self) -> None:
        from tui.net.nodes import RECEIVE_PORT, receiver_settings

        try:
            port = receiver_settings(self.config_file)["port"] if self.config_file else RECEIVE_PORT
            for step in diagnose(self.node, port, self.cancel):
                if self.cancel.is_set():
                    return
                self.app.call_from_thread(self._add, step)
        except UserError as exc:  # a broken [receiver] table, say
            self.app.call_from_thread(self._done, str(exc))
            return
        if not self.cancel.is_set():
            self.app.call_from_thread(self._done, "")

    def _add(self, step: Step) -> None:
        if not self.is_attached:
            return  # closed meanwhile: the step is no news
        self.steps.append(step)
        steps = self.query_one("#diagnose-steps", VerticalScroll)
        steps.mount(Static(step_text(step), classes=f"step {step.verdict}"))
        steps.scroll_end(animate=False)
        left = len(steps_of(self.node)) - len(self.steps)
        if left > 0:
            self.query_one("#diagnose-status", Static).update(
                Text(f"testing… {left} steps to go; Esc stops", "dim")
            )

    def _done(self, error: str) -> None:
        if not self.is_attached:
            return
        self.finished = True
        status = self.query_one("#diagnose-status", Static)
        if error:
            status.update(Text(error, "bold red"))
            return
        counts = [f"{sum(s.verdict == v for s in self.steps)} {v}" for v in _STYLES
                  if any(s.verdict == v for s in self.steps)]  # fmt: skip
        status.update(Text(", ".join(counts) + " · Esc closes"))
