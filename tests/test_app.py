"""The app with Textual's pilot: browse, filter, preview and view a series by keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input, Tree

from tests.synthetic import AXIAL, write_series
from tui.app.app import PacsApp
from tui.app.browser import BrowserScreen
from tui.app.image_view import ImageView
from tui.archive.importer import import_paths
from tui.archive.index import Archive
from tui.term.detect import BANDWIDTH


@pytest.fixture
def filled(tmp_path: Path, shared: Path) -> Archive:
    archive = Archive(tmp_path / "archive")
    write_series(tmp_path / "ct", AXIAL, count=30)
    import_paths(archive, [tmp_path / "ct", shared / "pydicom_test_files" / "charset"])
    return archive


async def _settle(app, pilot) -> None:
    for _ in range(3):
        await pilot.pause()
        await app.workers.wait_for_complete()
    await pilot.pause()


async def _open_first_series(app, pilot) -> Tree:
    """Keys only, as a user would: to the synthetic patient, open it, open its study, down
    to its series."""
    tree = app.screen.query_one(Tree)
    tree.focus()
    await pilot.press("home")
    for _ in range(40):
        if (tree.cursor_node.data or {}).get("row", {}).get("PatientID") == "SYN1":
            break
        await pilot.press("down")
    for _ in range(2):  # the patient, then its study
        await pilot.press("space")
        await _settle(app, pilot)
        await pilot.press("down")
        await _settle(app, pilot)
    assert tree.cursor_node.data["level"] == "series"
    return tree


async def _open_viewer(app, pilot) -> None:
    """From start-up to the viewer on the synthetic series."""
    await _settle(app, pilot)
    await _open_first_series(app, pilot)
    await pilot.press("v")
    await _settle(app, pilot)


async def test_browse_to_a_series_and_preview_it(filled: Archive) -> None:
    app = PacsApp(filled, BANDWIDTH["normal"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        assert isinstance(app.screen, BrowserScreen)
        tree = app.screen.query_one(Tree)
        assert len(tree.root.children) >= 10  # the synthetic patient and the charset ones
        await _open_first_series(app, pilot)
        preview = app.screen.query_one("#preview").query_one(ImageView)
        assert preview.cells is not None  # the middle slice is shown
        assert "SeriesInstanceUID" in str(app.screen.query_one("#details").render())


async def test_the_filter_narrows_live(filled: Archive) -> None:
    app = PacsApp(filled, BANDWIDTH["normal"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        await pilot.press("slash")
        await pilot.press(*"rudiger")
        await _settle(app, pilot)
        tree = app.screen.query_one(Tree)
        assert [str(n.label).split()[0] for n in tree.root.children] == ["Äneas^Rüdiger"]
        await pilot.press("escape")
        await _settle(app, pilot)
        assert len(tree.root.children) >= 10
        assert app.screen.query_one("#filter", Input).value == ""


async def test_viewer_keys(filled: Archive) -> None:
    app = PacsApp(filled, BANDWIDTH["normal"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_viewer(app, pilot)
        viewer = app.screen
        assert viewer.count == 30
        first = viewer.query_one(ImageView).cells.top.copy()
        await pilot.press("j", "j", "j")
        await _settle(app, pilot)
        assert viewer.request.index == 18
        await pilot.press("m")  # MIP
        await _settle(app, pilot)
        assert viewer.request.mode == "mip"
        await pilot.press("p")  # next plane: axial
        await pilot.press("p")  # coronal
        await _settle(app, pilot)
        assert viewer.request.plane == "coronal"
        await pilot.press("w", "i")
        await _settle(app, pilot)
        assert viewer.request.invert and viewer.request.window is not None
        assert viewer.query_one(ImageView).cells.top.shape != first.shape  # a coronal MIP
        await pilot.press("escape")
        await _settle(app, pilot)
        assert isinstance(app.screen, BrowserScreen)


async def test_privacy_masks_names_and_ids(filled: Archive) -> None:
    app = PacsApp(filled, BANDWIDTH["normal"], privacy=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        labels = " ".join(str(n.label) for n in app.screen.query_one(Tree).root.children)
        assert "Jérôme" not in labels and "SCSFREN" not in labels and "•••" in labels


async def test_help_lists_the_keys(filled: Archive) -> None:
    app = PacsApp(filled, BANDWIDTH["normal"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        await pilot.press("question_mark")
        await _settle(app, pilot)
        assert app.screen.query("HelpPanel")
        from tui.app.keys import ScreenFirstTable

        table = app.screen.query_one(ScreenFirstTable).render()  # what the panel draws
        descriptions = [str(cell) for cell in table.columns[1].cells]
        assert descriptions[0] == "This screen" and descriptions[1] == "Filter", descriptions
        assert descriptions.index("Everywhere") < descriptions.index("Moving in the list")
        await pilot.press("question_mark")
        await _settle(app, pilot)
        assert not app.screen.query("HelpPanel")


async def test_keys_can_be_remapped(filled: Archive) -> None:
    app = PacsApp(filled, BANDWIDTH["normal"], keymap={"browser.filter": "f"})
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        await pilot.press("f")
        await _settle(app, pilot)
        assert app.screen.query_one("#filter").has_focus


async def test_themes_load_from_files(filled: Archive) -> None:
    app = PacsApp(filled, BANDWIDTH["normal"], theme="high-contrast")
    async with app.run_test(size=(80, 24)) as pilot:
        await _settle(app, pilot)
        assert app.theme == "high-contrast"
        assert {"reading-room", "daylight", "high-contrast"} <= set(app.available_themes)


async def test_triage_keys_persist_and_jump_to_unreviewed(filled: Archive) -> None:
    from tui.archive import triage
    from tui.archive.query import Filters, search

    app = PacsApp(filled, BANDWIDTH["normal"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        tree = await _open_first_series(app, pilot)
        await pilot.press("up")  # the study
        await pilot.press("f", "u", "u", "x")
        await _settle(app, pilot)
        await pilot.press("n")
        await _settle(app, pilot)
        await pilot.press(*"aorta", "enter")
        await _settle(app, pilot)
        uid = tree.cursor_node.data["row"]["StudyInstanceUID"]
        assert "⚑" in str(tree.cursor_node.label) and "✓" in str(tree.cursor_node.label)
        await pilot.press("right_square_bracket")  # to a study not yet reviewed
        await _settle(app, pilot)
        await _settle(app, pilot)
        node = tree.cursor_node
        assert node.data["level"] == "study" and node.data["row"]["StudyInstanceUID"] != uid
    state = triage.get(filled, uid)
    assert (state.flagged, state.priority, state.reviewed, state.note) == (True, 2, True, "aorta")
    flagged = search(filled, "study", Filters(flagged=True))
    assert [r["StudyInstanceUID"] for r in flagged] == [uid]
    assert uid not in {
        r["StudyInstanceUID"] for r in search(filled, "study", Filters(unreviewed=True))
    }


async def test_tag_reader_search_diff_and_privacy(filled: Archive) -> None:
    from tui.app.tags import TagScreen

    app = PacsApp(filled, BANDWIDTH["normal"], privacy=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        await _open_first_series(app, pilot)
        await pilot.press("t")
        await _settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, TagScreen)
        tree = screen.query_one(Tree)
        labels = [str(n.label) for n in tree.root.children]
        assert any("(0028,0010) Rows" in label for label in labels)
        assert not any("Synthetic^Phantom" in label for label in labels)  # masked
        await pilot.press("slash", *"spacing")
        await _settle(app, pilot)
        found = [str(n.label) for n in tree.root.children]
        assert found and all("Spacing" in label for label in found)
        assert any(label.startswith("(0028,0030)") for label in found)
        await pilot.press("escape")
        await pilot.press("d")
        await _settle(app, pilot)
        differing = [str(n.label) for n in tree.root.children]
        assert any("SOP Instance UID" in d for d in differing)
        assert not any("Rows" in d for d in differing)
        await pilot.press("escape")
        await _settle(app, pilot)
        assert isinstance(app.screen, BrowserScreen)


async def test_import_from_the_app_and_a_cd_without_writing(filled: Archive, shared: Path) -> None:
    app = PacsApp(filled, BANDWIDTH["normal"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        before = len(app.screen.query_one(Tree).root.children)
        await pilot.press("ctrl+o")
        await _settle(app, pilot)
        app.screen.query_one("#import-path").value = str(shared / "neurolabusc_dcm_qa_toshiba")
        await pilot.press("enter")
        await _settle(app, pilot)
        await _settle(app, pilot)
        assert len(app.screen.query_one(Tree).root.children) == before + 1
        # A CD: just a look, in memory; the archive on disk does not change.
        count = filled.conn.execute("SELECT count(*) FROM instance").fetchone()[0]
        await pilot.press("ctrl+o")
        await _settle(app, pilot)
        dicomdir = shared / "pydicom_test_files" / "dicomdir" / "DICOMDIR"
        app.screen.query_one("#import-path").value = str(dicomdir)
        await pilot.click("#ephemeral")
        app.screen.query_one("#import-path").focus()
        await pilot.press("enter")
        for _ in range(3):
            await _settle(app, pilot)
        names = [str(n.label) for n in app.screen.query_one(Tree).root.children]
        assert any("Doe^Archibald" in name for name in names)
        assert app.archive is not filled and app.archive.root is None
        assert filled.conn.execute("SELECT count(*) FROM instance").fetchone()[0] == count


async def test_the_command_palette_offers_the_screens_keys(filled: Archive) -> None:
    app = PacsApp(filled, BANDWIDTH["normal"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        titles = {command.title for command in app.get_system_commands(app.screen)}
        assert {"Filter", "View", "Flag", "Next unreviewed study", "Import"} <= titles


async def test_cine_export_and_value_under_the_mouse(
    filled: Archive, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app = PacsApp(filled, BANDWIDTH["high"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_viewer(app, pilot)
        viewer = app.screen
        start = viewer._index()
        await pilot.press("space")
        await pilot.pause(0.6)
        await pilot.press("space")
        await _settle(app, pilot)
        assert viewer._index() != start  # it played
        await pilot.press("e")
        await _settle(app, pilot)
        await pilot.press("enter")  # the proposed name: a PNG of the view
        await _settle(app, pilot)
        assert list(tmp_path.glob("pacs-tui-series*.png"))
        await pilot.press("e")
        await _settle(app, pilot)
        app.screen.query_one("#note").value = "loop.gif"
        await pilot.press("enter")
        await _settle(app, pilot)
        from PIL import Image

        with Image.open(tmp_path / "loop.gif") as loop:
            playing = 0
            for n in range(loop.n_frames):  # equal frames are merged: count the time
                loop.seek(n)
                playing += loop.info["duration"]
        assert playing == 30 * 100  # every slice of the plane, at 10 frames a second
        view = viewer.query_one(ImageView)
        await pilot.hover(ImageView, offset=(view.placement.x + 5, view.placement.y + 5))
        await _settle(app, pilot)
        text = str(viewer.query_one("#overlay-bottom").render())
        assert " at (" in text and "mm" in text and "HU" in text
        full = view.cells.shape
        await pilot.press("z", "z", "shift+left")
        await _settle(app, pilot)
        _, c0, h, w = viewer._crop
        assert h < 64 and w < 64 and c0 < (64 - w) / 2  # zoomed in, panned left
        assert view.cells.shape[1] >= full[1] - 1  # magnified to the same size on screen


async def test_mpr_layout_with_linked_crosshairs(filled: Archive) -> None:
    from tui.app.mpr import MPRScreen

    app = PacsApp(filled, BANDWIDTH["normal"])
    async with app.run_test(size=(140, 50)) as pilot:
        await _open_viewer(app, pilot)
        await pilot.press("g")
        await _settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, MPRScreen)
        assert set(screen.views) == {"axial", "coronal", "sagittal"}
        before = screen.point.copy()
        await pilot.press("j", "j")  # two slices deeper in the axial panel: z changes
        await _settle(app, pilot)
        assert screen.point[2] == pytest.approx(before[2] + 4.0)
        await pilot.press("tab", "right")  # coronal panel: to the patient's left, x grows
        await _settle(app, pilot)
        assert screen.point[0] > before[0] and screen.point[2] == pytest.approx(before[2] + 4.0)
        axial = screen.views["axial"]
        assert (
            "oblique slice at" in axial.description
            and f"{screen.point[2]:.1f}" in axial.description
        )
        await pilot.press("escape")
        await _settle(app, pilot)
        assert not isinstance(app.screen, MPRScreen)


async def test_sorting_patients_by_latest_study(filled: Archive) -> None:
    app = PacsApp(filled, BANDWIDTH["normal"])
    async with app.run_test(size=(80, 24)) as pilot:  # the smallest terminal we promise
        await _settle(app, pilot)
        tree = app.screen.query_one(Tree)
        by_name = [n.data["row"]["PatientID"] for n in tree.root.children]
        await pilot.press("s")
        await _settle(app, pilot)
        by_date = [n.data["row"]["PatientID"] for n in tree.root.children]
        assert sorted(by_name) == sorted(by_date) and by_name != by_date
        assert by_date[0] == "SYN1"  # the synthetic study (2026) is the latest


async def test_dragging_sets_the_window(filled: Archive) -> None:
    from types import SimpleNamespace

    app = PacsApp(filled, BANDWIDTH["normal"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_viewer(app, pilot)
        viewer = app.screen
        start = viewer._current_window()
        viewer.on_mouse_down(SimpleNamespace(screen_x=50, screen_y=20))
        moved = viewer._drag_window(SimpleNamespace(button=1, screen_x=60, screen_y=15))
        await _settle(app, pilot)
        assert moved and viewer.request.window.width > start.width
        assert viewer.request.window.center > start.center  # dragged up: the centre rises
        viewer.on_mouse_up(SimpleNamespace())
        assert not viewer._drag_window(SimpleNamespace(button=0, screen_x=70, screen_y=15))


async def test_instances_on_demand_and_their_tags(filled: Archive) -> None:
    from tui.app.tags import TagScreen

    app = PacsApp(filled, BANDWIDTH["normal"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        tree = await _open_first_series(app, pilot)
        await pilot.press("space")  # the series opens: its instances
        await _settle(app, pilot)
        await pilot.press("down", "down", "down")
        await _settle(app, pilot)
        node = tree.cursor_node
        assert node.data["level"] == "instance" and node.data["row"]["InstanceNumber"] == 3
        await pilot.press("t")
        await _settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, TagScreen)
        assert screen.paths[screen.index] == node.data["row"]["path"]


async def test_a_refused_view_keeps_the_one_on_screen(tmp_path: Path) -> None:
    """A single slice refuses the patient planes; the viewer says why and stays in the
    acquired plane: the next keys project there (they were refused as well)."""
    archive = Archive(tmp_path / "archive")
    write_series(tmp_path / "one", AXIAL, count=1)
    import_paths(archive, [tmp_path / "one"])
    app = PacsApp(archive, BANDWIDTH["normal"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_viewer(app, pilot)
        viewer = app.screen
        await pilot.press("p")  # axial: refused, one slice has no volume
        await _settle(app, pilot)
        assert any("cannot show an axial view" in str(n.message) for n in app._notifications)
        assert viewer.request.plane in (None, "acquired")
        await pilot.press("m")  # the MIP in the acquired plane
        await _settle(app, pilot)
        assert viewer._shown_request.mode == "mip"
    archive.close()


async def test_a_tilted_stack_is_resliced_and_says_so(tmp_path: Path) -> None:
    """A gantry-tilted stack shows its patient planes, resampled, with a note on screen."""
    archive = Archive(tmp_path / "archive")
    write_series(tmp_path / "tilt", AXIAL, count=20, shear=(0.0, 0.35, 0.0))
    import_paths(archive, [tmp_path / "tilt"])
    app = PacsApp(archive, BANDWIDTH["normal"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_viewer(app, pilot)
        viewer = app.screen
        assert "gantry tilt" not in str(viewer.query_one("#overlay-bottom").render())
        await pilot.press("p", "p")  # coronal
        await _settle(app, pilot)
        assert viewer._shown_request.plane == "coronal"
        bottom = str(viewer.query_one("#overlay-bottom").render())
        assert "coronal slice" in bottom and "gantry tilt 9.9° resampled" in bottom
    archive.close()


async def test_editing_keys_keep_their_place_in_a_burst(filled: Archive) -> None:
    """Keys that arrive together (a paste, an SSH link that coalesces them) are applied in
    order in every text box: Ctrl-U and Backspace after a word, then more text."""
    from textual import events

    app = PacsApp(filled, BANDWIDTH["normal"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        burst = [("slash", "/"), ("a", "a"), ("ctrl+u", None), ("b", "b"), ("c", "c")]
        burst += [("x", "x"), ("backspace", None), ("d", "d")]
        for key, character in burst:  # posted at once: none waits for the one before
            app.post_message(events.Key(key, character))
        await _settle(app, pilot)
        assert app.screen.query_one("#filter", Input).value == "bcd"


async def test_warnings_become_notices_not_text_over_the_screen(tmp_path: Path, capfd) -> None:
    """A warning logged while the app owns the terminal (a worker's, as a QIDO-RS paging
    warning) is a notice, its text as text; nothing is written to the terminal under it.
    Outside the app, the console prints it as the command's one line."""
    import logging
    import sys
    import threading

    from tui.cli.app import _warnings_as_notices
    from tui.cli.parser import _OneLine

    root = logging.getLogger()
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(_OneLine())
    root.addHandler(console)
    try:
        app = PacsApp(Archive(tmp_path / "archive"), BANDWIDTH["normal"])
        with _warnings_as_notices(app):
            assert console not in root.handlers
            async with app.run_test() as pilot:
                await _settle(app, pilot)
                capfd.readouterr()
                worker = threading.Thread(
                    target=logging.getLogger("tui.net.dicomweb.qido").warning,
                    args=("web ignores offset [b]bold?[/b]",),
                )
                worker.start()
                worker.join()
                await _settle(app, pilot)
                shown = [(str(n.message), n.severity, n.markup) for n in app._notifications]
                assert ("web ignores offset [b]bold?[/b]", "warning", False) in shown
                assert "ignores offset" not in capfd.readouterr().err
        assert console in root.handlers
        logging.getLogger("tui").warning("after the app")
        assert "pacs-tui: warning: after the app" in capfd.readouterr().err
    finally:
        root.removeHandler(console)
