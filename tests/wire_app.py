"""A tiny app for tests/test_image_view.py: shows two frames in a real terminal (a pty),
with markers in the output around the second, covers it with another screen, then exits.

``python -m tests.wire_app low|normal|kitty|sixel``
"""

from __future__ import annotations

import sys

from textual.app import App, ComposeResult
from textual.screen import Screen

from tests.test_image_view import _image
from tui.app.image_view import ImageView
from tui.term.modes import LOW, NORMAL

MARK = "\x1b_pacs-tui-test-mark\x1b\\"


class WireApp(App):
    def __init__(self, mode, graphics: str = "halfblock") -> None:
        super().__init__()
        self.view = ImageView(mode, fps=100, graphics=graphics)

    def compose(self) -> ComposeResult:
        yield self.view

    def on_mount(self) -> None:
        self.set_timer(0.5, lambda: self.view.show(_image()))
        self.set_timer(1.5, self._step)
        self.set_timer(2.5, self._cover)
        self.set_timer(3.0, self._done)

    def _step(self) -> None:
        self._driver.write(MARK)
        self.view.show(_image(shift=10))

    def _cover(self) -> None:
        self._driver.write(MARK)
        self.push_screen(Screen())

    def _done(self) -> None:
        self._driver.write(MARK)
        self.exit()


if __name__ == "__main__":
    name = sys.argv[1]
    graphics = name if name in ("kitty", "sixel") else "halfblock"
    WireApp(LOW if name == "low" else NORMAL, graphics).run()
