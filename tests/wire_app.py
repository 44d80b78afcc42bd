"""A tiny app for tests/test_image_view.py: shows two frames in a real terminal (a pty),
with markers in the output around the second, then exits."""

from __future__ import annotations

import sys

from textual.app import App, ComposeResult

from tests.test_image_view import _image
from tui.app.image_view import ImageView
from tui.term.modes import LOW, NORMAL

MARK = "\x1b_pacs-tui-test-mark\x1b\\"


class WireApp(App):
    def __init__(self, mode) -> None:
        super().__init__()
        self.view = ImageView(mode, fps=100)

    def compose(self) -> ComposeResult:
        yield self.view

    def on_mount(self) -> None:
        self.set_timer(0.5, lambda: self.view.show(_image()))
        self.set_timer(1.5, self._step)
        self.set_timer(2.5, self._done)

    def _step(self) -> None:
        self._driver.write(MARK)
        self.view.show(_image(shift=10))

    def _done(self) -> None:
        self._driver.write(MARK)
        self.exit()


if __name__ == "__main__":
    WireApp(LOW if sys.argv[1] == "low" else NORMAL).run()
