"""SVG snapshots of the main screens (pytest-textual-snapshot): a change to how they look
shows up as a diff to review. Update with ``pytest --snapshot-update`` after checking."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.synthetic import AXIAL, write_series
from tests.test_app import _open_first_series, _open_viewer, _settle
from tui.app.app import PacsApp
from tui.archive.importer import import_paths
from tui.archive.index import Archive
from tui.term.detect import BANDWIDTH


@pytest.fixture
def archive(tmp_path: Path) -> Archive:
    opened = Archive(tmp_path / "archive")
    uid = "1.2.826.0.1.3680043.8.498.5"
    write_series(tmp_path / "ct", AXIAL, count=20, series_uid=uid, sop_uid_root=f"{uid}.1")
    import_paths(opened, [tmp_path / "ct"])
    return opened


def test_browser(snap_compare, archive: Archive) -> None:
    async def ready(pilot) -> None:
        await _settle(pilot.app, pilot)

    assert snap_compare(
        PacsApp(archive, BANDWIDTH["normal"]), terminal_size=(100, 30), run_before=ready
    )


def test_browser_80x24_opened(snap_compare, archive: Archive) -> None:
    """At 80 x 24 the rows keep their counts (descriptions give way) and the footer its
    triage keys."""

    async def opened(pilot) -> None:
        await _settle(pilot.app, pilot)
        await _open_first_series(pilot.app, pilot)
        await _settle(pilot.app, pilot)

    assert snap_compare(
        PacsApp(archive, BANDWIDTH["normal"]), terminal_size=(80, 24), run_before=opened
    )


def test_viewer_mip(snap_compare, archive: Archive) -> None:
    async def viewer(pilot) -> None:
        await _settle(pilot.app, pilot)
        await _open_first_series(pilot.app, pilot)
        await pilot.press("v")
        await _settle(pilot.app, pilot)
        await pilot.press("m", "p", "p")  # a coronal MIP
        await _settle(pilot.app, pilot)

    assert snap_compare(
        PacsApp(archive, BANDWIDTH["normal"]), terminal_size=(100, 30), run_before=viewer
    )


def test_tags(snap_compare, archive: Archive) -> None:
    async def tags(pilot) -> None:
        await _settle(pilot.app, pilot)
        await _open_first_series(pilot.app, pilot)
        await pilot.press("t")
        await _settle(pilot.app, pilot)
        await pilot.press(*["down"] * 18)  # to Instance Number: its full value below

    assert snap_compare(
        PacsApp(archive, BANDWIDTH["normal"]), terminal_size=(100, 30), run_before=tags
    )


def test_mpr(snap_compare, archive: Archive) -> None:
    from tui.render.vr import warm_up

    warm_up()  # loaded before, as after any other rendering: no "loading the renderer" notice

    async def mpr(pilot) -> None:
        await _open_viewer(pilot.app, pilot)
        await pilot.press("g")
        await _settle(pilot.app, pilot)

    assert snap_compare(
        PacsApp(archive, BANDWIDTH["normal"]), terminal_size=(100, 30), run_before=mpr
    )


def test_import_dialog(snap_compare, archive: Archive) -> None:
    async def dialog(pilot) -> None:
        pilot.app.animation_level = "none"  # the waiting bar stands still, not where time put it
        await _settle(pilot.app, pilot)
        await pilot.press("ctrl+o")
        await _settle(pilot.app, pilot)
        await pilot.press(*"/media/cdrom/DICOMDIR")
        await pilot.click("#ephemeral")  # a CD: just a look
        await _settle(pilot.app, pilot)

    assert snap_compare(
        PacsApp(archive, BANDWIDTH["normal"]), terminal_size=(100, 30), run_before=dialog
    )
