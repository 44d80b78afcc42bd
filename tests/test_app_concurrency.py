"""The app while an import runs: the browser's reads never wait for it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from textual.widgets import Static, Tree

from tests.synthetic import AXIAL, write_series
from tests.test_app import _settle
from tui.app.app import PacsApp
from tui.archive.importer import import_paths
from tui.archive.index import Archive
from tui.term.detect import BANDWIDTH

_ANSWER_S = 5.0  # generous on a busy 2-core machine; a reader behind the import never answers


async def _soon(pilot, condition: Callable[[], bool]) -> float:
    """Seconds until ``condition`` holds, failing after :data:`_ANSWER_S`."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < _ANSWER_S, "the browser did not answer in time"
        await pilot.pause(0.02)
    return time.monotonic() - start


async def test_the_browser_answers_keys_while_an_import_runs(tmp_path: Path, shared: Path) -> None:
    archive = Archive(tmp_path / "archive")
    write_series(tmp_path / "ct", AXIAL, count=30)
    import_paths(archive, [tmp_path / "ct", shared / "pydicom_test_files" / "charset"])
    for n in range(10):  # 3,000 small files to import from the app
        write_series(tmp_path / "big" / f"s{n}", AXIAL, size=16, count=300)
    held, resume = threading.Event(), threading.Event()

    def progress(done: int, total: int) -> None:
        # A third of the way in, the import pauses between batches (as on a slow disk),
        # so the checks below run while it is under way however fast this machine is.
        if done >= total // 3 and not held.is_set():
            held.set()
            resume.wait(60)

    app = PacsApp(archive, BANDWIDTH["normal"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        # What the import dialog runs (ImportScreen.run_import), in a worker of the app.
        importing = app.run_worker(
            partial(app.read, import_paths, [str(tmp_path / "big")], progress=progress),
            thread=True,
        )
        try:
            await _soon(pilot, held.is_set)
            tree = app.screen.query_one(Tree)
            tree.focus()
            await pilot.press("home")
            for _ in range(40):
                if (tree.cursor_node.data or {}).get("row", {}).get("PatientID") == "SYN1":
                    break
                await pilot.press("down")
            answers = []
            for _ in range(2):  # the patient's studies, then the study's series: the index
                node = tree.cursor_node
                await pilot.press("space")
                answers.append(await _soon(pilot, lambda node=node: bool(node.children)))
                await pilot.press("down")
            details = app.screen.query_one("#details", Static)
            assert "SeriesInstanceUID" in str(details.render())
            caption = app.screen.query_one("#preview-caption", Static)
            # the preview reads the series' instances from the index, then a file
            answers.append(
                await _soon(pilot, lambda: str(caption.render()).startswith("preview: acquired"))
            )
            await pilot.press("slash", *"rudiger")
            answers.append(
                await _soon(
                    pilot,
                    lambda: (
                        [str(n.label).split()[0] for n in tree.root.children] == ["Äneas^Rüdiger"]
                    ),
                )
            )
            assert not importing.is_finished  # all of it while the import was under way
        finally:
            resume.set()
        summary = await importing.wait()
        assert summary is not None and summary.new == 3000
    print(f"answers during the import (s): {', '.join(f'{a:.2f}' for a in answers)}")
