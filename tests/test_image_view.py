"""The image widget inside a running Textual app: it draws the encoded cells, refreshes
only the rows that changed, coalesces rapid frames and follows resizes."""

from __future__ import annotations

import numpy as np
from textual.app import App, ComposeResult
from textual.geometry import Region

from tui.app.image_view import ImagePanel, ImageView
from tui.term.halfblock import NORMAL, to_cells


def _image(shift: int = 0) -> np.ndarray:
    y, x = np.mgrid[0:120, 0:120]
    image = ((x * 2 + y) % 256).astype(np.uint8)
    image[40:60, 20 + shift : 50 + shift] = 255  # a bright bar that moves
    return image


class RecordingView(ImageView):
    def __init__(self) -> None:
        super().__init__(NORMAL)
        self.regions: list[Region | None] = []

    def refresh(self, *regions, **kwargs):  # type: ignore[override]
        self.regions.extend(regions or [None])
        return super().refresh(*regions, **kwargs)


class ViewApp(App):
    def compose(self) -> ComposeResult:
        yield RecordingView()


async def _settle(app: App, pilot) -> None:
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


async def test_draws_the_cells_and_refreshes_only_changed_rows() -> None:
    app = ViewApp()
    async with app.run_test(size=(80, 40)) as pilot:
        view = app.query_one(RecordingView)
        view.show(_image())
        await _settle(app, pilot)
        assert view.cells is not None
        expected = to_cells(_image(), *view.cells.shape[::-1], NORMAL)
        assert np.array_equal(view.cells.top, expected.top)
        line = view.render_line(view._offset[1] + 5)
        assert line.cell_length == 80 and "▀" in line.text
        view.regions.clear()
        view.show(_image(shift=10))
        await _settle(app, pilot)
        rows = {r.y - view._offset[1] for r in view.regions if r is not None}
        assert None not in view.regions, "a partial change must not repaint the whole widget"
        assert rows and rows <= set(
            range(40 * view.cells.shape[0] // 120 - 2, 60 * view.cells.shape[0] // 120 + 2)
        )


async def test_rapid_frames_are_coalesced_and_the_latest_wins() -> None:
    app = ViewApp()
    async with app.run_test(size=(80, 40)) as pilot:
        view = app.query_one(RecordingView)
        for shift in range(30):
            view.show(_image(shift))
        await _settle(app, pilot)
        assert view.encodes < 30
        last = to_cells(_image(29), *view.cells.shape[::-1], NORMAL)
        assert np.array_equal(view.cells.top, last.top)


async def test_follows_terminal_resizes() -> None:
    app = ViewApp()
    async with app.run_test(size=(80, 40)) as pilot:
        view = app.query_one(RecordingView)
        view.show(_image())
        await _settle(app, pilot)
        before = view.cells.shape
        await pilot.resize_terminal(40, 20)
        await _settle(app, pilot)
        assert view.cells.shape != before and view.cells.shape[1] <= 40


class PanelApp(App):
    def compose(self) -> ComposeResult:
        yield ImagePanel()


async def test_labels_are_text_around_the_image() -> None:
    app = PanelApp()
    async with app.run_test(size=(60, 30)) as pilot:
        panel = app.query_one(ImagePanel)
        panel.show(_image(), {"top": "A", "bottom": "P", "left": "R", "right": "L"})
        await _settle(app, pilot)
        view = panel.view.region
        for edge, letter in {"top": "A", "bottom": "P", "left": "R", "right": "L"}.items():
            label = app.query_one(f"#label-{edge}")
            assert str(label.render()).strip() == letter
            assert not label.region.overlaps(view)  # around the image, never inside it
