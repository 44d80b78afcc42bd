"""The share dialog and the edit form with Textual's pilot: export a series to a folder,
de-identified or not; Esc stops a long export and leaves nothing; an edit reviewed, saved
and shown by the browser, then undone from the history; the dialog's title and what it
exports belong to the node highlighted when it opened."""

from __future__ import annotations

import os
from pathlib import Path

import pydicom
import pytest
from textual.widgets import Checkbox, Input, OptionList, ProgressBar, Tree

from tests.synthetic import AXIAL, write_series
from tests.test_app import _open_first_series, _settle
from tui.app.app import PacsApp
from tui.app.browser import BrowserScreen
from tui.app.edit import EditScreen
from tui.app.share import ShareScreen
from tui.archive import edit
from tui.archive.importer import import_paths
from tui.archive.index import Archive
from tui.archive.query import Filters, search
from tui.term.detect import BANDWIDTH


@pytest.fixture
def filled(tmp_path: Path, shared: Path) -> Archive:
    archive = Archive(tmp_path / "archive")
    write_series(tmp_path / "ct", AXIAL, count=30)
    import_paths(archive, [tmp_path / "ct", shared / "pydicom_test_files" / "charset"])
    return archive


def _app(archive: Archive, tmp_path: Path, **kw) -> PacsApp:
    return PacsApp(archive, BANDWIDTH["normal"], config_dir=tmp_path / "config", **kw)


async def _until(app, pilot, ready, what: str, rounds: int = 400) -> None:
    for _ in range(rounds):
        if ready():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"waited in vain for {what}")


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


async def test_share_a_series_to_a_folder(filled: Archive, tmp_path: Path) -> None:
    app = _app(filled, tmp_path)
    target = tmp_path / "out"
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        tree = await _open_first_series(app, pilot)
        series = tree.cursor_node.data["row"]["SeriesInstanceUID"]
        await pilot.press("S")
        await _settle(app, pilot)
        assert isinstance(app.screen, ShareScreen)
        assert app.screen.query_one("#share-path", Input).has_focus
        await pilot.press(*str(target), "enter")
        await _until(app, pilot, lambda: isinstance(app.screen, BrowserScreen), "the export")
    files = _files(target)
    assert len(files) == 30
    assert {str(pydicom.dcmread(f).SeriesInstanceUID) for f in files} == {series}
    assert pydicom.dcmread(files[0]).PatientName == "Synthetic^Phantom"  # not de-identified


async def test_share_a_series_as_nifti(filled: Archive, tmp_path: Path) -> None:
    """A series' share dialog offers NIfTI (a study's does not): the volume and its
    sidecar, of the series highlighted when the dialog opened."""
    import nibabel as nib

    app = _app(filled, tmp_path)
    target = tmp_path / "ct.nii.gz"
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        await _open_first_series(app, pilot)
        await pilot.press("S")
        await _settle(app, pilot)
        assert app.screen.query_one("#kind-nifti").display  # a series: offered
        await pilot.press("shift+tab", "down", "down", "down", "down", "enter")  # NIfTI
        await pilot.press("tab", *str(target), "enter")
        await _until(app, pilot, lambda: isinstance(app.screen, BrowserScreen), "the export")
        await pilot.press("up", "S")  # its study: DICOM only
        await _settle(app, pilot)
        assert not app.screen.query_one("#kind-nifti").display
    image = nib.load(target)
    assert image.shape == (64, 64, 30)  # tests/synthetic's series: 30 slices of 64 x 64
    assert (tmp_path / "ct.json").is_file()


async def test_share_de_identified(filled: Archive, tmp_path: Path) -> None:
    app = _app(filled, tmp_path)
    target = tmp_path / "anon"
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        await _open_first_series(app, pilot)
        await pilot.press("S")
        await _settle(app, pilot)
        await pilot.press(*str(target), "tab", "space")  # the path, then "de-identify"
        await _settle(app, pilot)
        assert app.screen.query_one("#share-anonymize", Checkbox).value
        assert not app.screen.query_one("#share-options").disabled
        await pilot.press("tab", "space")  # its first option: retain safe private
        assert app.screen.query_one("#opt-retain-safe-private", Checkbox).value
        await pilot.press("ctrl+s")
        await _until(app, pilot, lambda: isinstance(app.screen, BrowserScreen), "the export")
    files = _files(target)
    assert len(files) == 30
    for path in files:
        ds = pydicom.dcmread(path)
        assert ds.PatientName != "Synthetic^Phantom" and ds.PatientID != "SYN1"
        assert ds.PatientIdentityRemoved == "YES"
        assert b"Synthetic" not in path.read_bytes()
    assert (tmp_path / "config" / "deid.key").stat().st_mode & 0o077 == 0


async def test_share_to_a_node_de_identified(filled: Archive, tmp_path: Path) -> None:
    """Sent with C-STORE to dcmtk's storescp (a real peer), chosen by keys."""
    from tests.servers import free_port, start_storescp
    from tui.net.nodes import Node, save_node

    scp = start_storescp(tmp_path / "scp", port=free_port())
    try:
        save_node(tmp_path / "config" / "config.toml", Node("scp", scp.aet, scp.host, scp.port))
        app = _app(filled, tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            await _settle(app, pilot)
            await _open_first_series(app, pilot)
            await pilot.press("S")
            await _settle(app, pilot)
            screen = app.screen
            await pilot.press("shift+tab", "down", "down", "down", "enter")  # "a DICOM node"
            await _settle(app, pilot)
            assert screen.kind == "node" and not screen.query_one("#share-path").display
            await pilot.press("tab", "enter", "down", "enter")  # the node list: scp
            await _settle(app, pilot)
            assert screen.query_one("#share-node").value == "scp"
            await pilot.press("tab", "space", "ctrl+s")  # de-identified
            await _until(app, pilot, lambda: isinstance(app.screen, BrowserScreen), "the send")
    finally:
        scp.stop()
    received = [p for p in scp.received.rglob("*") if p.is_file()]
    assert len(received) == 30
    for path in received:
        ds = pydicom.dcmread(path)
        assert ds.PatientName != "Synthetic^Phantom" and ds.PatientIdentityRemoved == "YES"


async def test_share_a_filtered_patient_as_media(tmp_path: Path) -> None:
    """A patient under a filter: its studies as the tree shows them, on media with a
    DICOMDIR (chosen by keys)."""
    archive = Archive(tmp_path / "archive")
    write_series(tmp_path / "a", AXIAL, count=4, size=16)
    write_series(tmp_path / "b", AXIAL, count=3, size=16)
    for path in (tmp_path / "b").iterdir():  # the same patient's other study, a year before
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID, ds.StudyDate = "1.2.826.0.1.3680043.8.498.2", "20250101"
        ds.save_as(path)
    import_paths(archive, [tmp_path / "a", tmp_path / "b"])
    app = _app(archive, tmp_path)
    target = tmp_path / "media"
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        await pilot.press("slash", *"date:2025", "enter")
        await _settle(app, pilot)
        tree = app.screen.query_one(Tree)
        assert "1 study" in str(tree.cursor_node.label)
        await pilot.press("S")
        await _settle(app, pilot)
        screen = app.screen
        await pilot.press("shift+tab", "down", "down", "enter")  # media, with a DICOMDIR
        assert screen.kind == "media"
        await pilot.press("tab", *str(target), "enter")
        await _until(app, pilot, lambda: isinstance(app.screen, BrowserScreen), "the export")
    assert (target / "DICOMDIR").is_file()
    files = [f for f in _files(target) if f.name != "DICOMDIR"]
    assert len(files) == 3
    assert {pydicom.dcmread(f).StudyDate for f in files} == {"20250101"}


async def test_esc_stops_a_long_export_and_leaves_nothing(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "archive")
    write_series(tmp_path / "big", AXIAL, size=128, count=400)
    import_paths(archive, [tmp_path / "big"])
    app = _app(archive, tmp_path)
    parent = tmp_path / "out"
    parent.mkdir()
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        await _open_first_series(app, pilot)
        await pilot.press("S")
        await _settle(app, pilot)
        screen = app.screen
        await pilot.press(*str(parent / "share"), "tab", "space", "ctrl+s")  # de-identified
        bar = screen.query_one("#share-progress", ProgressBar)
        await _until(app, pilot, lambda: (bar.progress or 0) >= 1, "the export to start")
        assert (bar.progress or 0) < 400 and os.listdir(parent)  # under way: a partial folder
        await pilot.press("escape")
        await _until(app, pilot, lambda: not screen.running, "the stop")
        assert app.screen is screen  # still open: it says it stopped
        assert "stopped" in str(screen.query_one("#share-status").render())
        assert os.listdir(parent) == []  # the partial output is gone
        await pilot.press("escape")  # idle: Esc closes
        await _settle(app, pilot)
        assert isinstance(app.screen, BrowserScreen)


async def test_share_title_and_target_belong_to_the_highlighted_node(
    filled: Archive, tmp_path: Path
) -> None:
    app = _app(filled, tmp_path)
    target = tmp_path / "patient"
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        tree = app.screen.query_one(Tree)
        tree.focus()
        await pilot.press("home", "down", "down", "down", "S", "down")  # a burst of keys
        await _settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, ShareScreen)
        browser = app.screen_stack[-2]
        highlighted = tree.cursor_node.data["row"]
        name = str(highlighted["PatientName"])
        title = str(screen.query_one("#share-title").render())
        assert name in title and screen.row["PatientName"] == highlighted["PatientName"]
        assert "[" not in title or name.count("[") == title.count("[")  # text, not markup
        browser.archive_tree.action_cursor_down()  # the highlight moves behind the dialog
        await _settle(app, pilot)
        assert tree.cursor_node.data["row"]["PatientName"] != highlighted["PatientName"]
        assert name in str(screen.query_one("#share-title").render())
        screen.query_one("#share-path", Input).focus()
        await pilot.press(*str(target), "enter")
        await _until(app, pilot, lambda: isinstance(app.screen, BrowserScreen), "the export")
    names = {str(pydicom.dcmread(f).PatientName) for f in _files(target)}
    assert names == {str(pydicom.dcmread(_any_file(filled, highlighted)).PatientName)}


def _any_file(archive: Archive, patient: dict) -> str:
    identity = (
        patient["PatientID"] or "",
        patient["PatientName"] or "",
        patient["PatientBirthDate"] or "",
    )
    study = search(archive, "study", Filters(patient=identity))[0]["StudyInstanceUID"]
    series = search(archive, "series", Filters(study=study))[0]["SeriesInstanceUID"]
    return search(archive, "instance", Filters(series=series))[0]["path"]


async def test_edit_a_study_review_save_and_undo(filled: Archive, tmp_path: Path) -> None:
    app = _app(filled, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        tree = await _open_first_series(app, pilot)
        await pilot.press("up")  # the study
        study = tree.cursor_node.data["row"]["StudyInstanceUID"]
        originals = {r["path"] for r in search(filled, "instance", Filters(study=study))}
        await pilot.press("e")
        await _settle(app, pilot)
        form = app.screen
        assert isinstance(form, EditScreen) and form.level == "study"
        box = form.query_one("#field-StudyDescription", Input)
        await _until(app, pilot, lambda: not box.disabled, "the current values")
        assert box.value == ""  # the synthetic study has none
        await pilot.press("down", "down", "down", "down")  # from StudyDate, field by field
        assert box.has_focus
        await pilot.press(*"CT CHEST")
        await pilot.press("ctrl+s")  # not reviewed yet: Save reviews first
        await _until(app, pilot, lambda: form.plan is not None, "the review")
        diff = str(form.query_one("#edit-diff").render())
        assert "StudyDescription: (absent) -> 'CT CHEST'" in diff and "30 instances" in diff
        await pilot.press("ctrl+s")
        await _until(app, pilot, lambda: isinstance(app.screen, BrowserScreen), "the save")
        await _settle(app, pilot)
        labels = [str(node.label) for node in _every(tree)]
        assert any("CT CHEST" in label for label in labels), labels
        now = {r["path"] for r in search(filled, "instance", Filters(study=study))}
        assert now.isdisjoint(originals)  # the index points at new files; the old stay
        assert all(os.path.exists(p) for p in originals)

        # The history, and the undo of the edit (reviewed, then saved).
        await pilot.press("e")
        await _settle(app, pilot)
        form = app.screen
        await pilot.press("ctrl+t")
        history = form.query_one("#edit-history", OptionList)
        loaded = lambda: history.option_count and history.get_option_at_index(0).id  # noqa: E731
        await _until(app, pilot, loaded, "the history")
        assert "CT CHEST" in str(history.get_option_at_index(0).prompt)
        await pilot.press("enter")
        await _until(app, pilot, lambda: form.plan is not None, "the undo's plan")
        assert "Undo edit" in str(form.query_one("#edit-diff").render())
        await pilot.press("ctrl+s")
        await _until(app, pilot, lambda: isinstance(app.screen, BrowserScreen), "the undo")
        await _settle(app, pilot)
    assert {r["path"] for r in search(filled, "instance", Filters(study=study))} == originals
    assert [e.undoes for e in edit.history(filled)] == [1, None]


def _every(tree: Tree) -> list:
    out, todo = [], list(tree.root.children)
    while todo:
        node = todo.pop()
        out.append(node)
        todo += node.children
    return out


async def test_edit_refuses_a_bad_value_and_esc_cancels(filled: Archive, tmp_path: Path) -> None:
    app = _app(filled, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        await _open_first_series(app, pilot)  # a series: its attributes
        await pilot.press("e")
        await _settle(app, pilot)
        form = app.screen
        box = form.query_one("#field-SeriesNumber", Input)
        await _until(app, pilot, lambda: not box.disabled, "the current values")
        assert box.value == "1"
        assert not form.query("#field-StudyDescription")  # a study attribute: not here
        box.focus()
        await pilot.press("ctrl+u", *"one", "enter")
        await _settle(app, pilot)
        assert form.plan is None
        assert "not a valid IS" in str(form.query_one("#edit-diff").render())
        await pilot.press("escape")
        await _settle(app, pilot)
        assert isinstance(app.screen, BrowserScreen)
    assert edit.history(filled) == []


async def test_share_and_edit_are_listed_as_keys(filled: Archive, tmp_path: Path) -> None:
    app = _app(filled, tmp_path, keymap={"browser.share": "X"})
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        keys = {active.binding.id: key for key, active in app.screen.active_bindings.items()}
        assert keys["browser.share"] == "X" and keys["browser.edit"] == "e"
        titles = {command.title for command in app.get_system_commands(app.screen)}
        assert any(t.startswith("Share:") for t in titles)
        assert any(t.startswith("Edit attributes") for t in titles)
        await pilot.press("question_mark")
        await _settle(app, pilot)
        from tui.app.keys import ScreenFirstTable

        table = app.screen.query_one(ScreenFirstTable).render()
        descriptions = [str(cell) for cell in table.columns[1].cells]
        assert any(d.startswith("Share:") for d in descriptions)
        await pilot.press("question_mark", "X")
        await _settle(app, pilot)
        assert isinstance(app.screen, ShareScreen)
        ids = {active.binding.id for active in app.screen.active_bindings.values()}
        assert {"share.cancel", "share.go"} <= ids


async def test_hostile_values_in_the_share_dialog_and_edit_form_are_text(tmp_path: Path) -> None:
    from tests.test_app_trust import AS_INDEXED, _screen
    from tests.test_privacy import AS_TEXT, write_hostile_series

    archive = Archive(tmp_path / "archive")
    import_paths(archive, [write_hostile_series(tmp_path / "in")])
    app = _app(archive, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await _settle(app, pilot)
        await pilot.press("home", "space")
        await _settle(app, pilot)
        await pilot.press("down", "S")  # the study
        await _settle(app, pilot)
        assert isinstance(app.screen, ShareScreen)
        shown = _screen(app)
        assert "Share study: " in shown and f"S:{AS_INDEXED}" in shown
        assert f"N:{AS_INDEXED}" in shown
        await pilot.press("escape", "e")
        await _settle(app, pilot)
        assert isinstance(app.screen, EditScreen)
        box = app.screen.query_one("#field-StudyDescription", Input)
        await _until(app, pilot, lambda: not box.disabled, "the current values")
        shown = _screen(app)
        assert "Edit study: " in shown and f"N:{AS_INDEXED}" in shown
        assert box.value == f"S:{AS_TEXT}"  # a box shows control characters as "?"


async def test_edit_a_patients_name(filled: Archive, tmp_path: Path) -> None:
    app = _app(filled, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        tree = await _open_first_series(app, pilot)
        await pilot.press("up", "up")  # the patient
        assert tree.cursor_node.data["level"] == "patient"
        await pilot.press("e")
        await _settle(app, pilot)
        form = app.screen
        box = form.query_one("#field-PatientName", Input)
        await _until(app, pilot, lambda: not box.disabled, "the current values")
        assert box.value == "Synthetic^Phantom" and box.has_focus
        await pilot.press("ctrl+u", *"DOE^JANE", "enter")
        await _until(app, pilot, lambda: form.plan is not None, "the review")
        assert "'Synthetic^Phantom' -> 'DOE^JANE'" in str(form.query_one("#edit-diff").render())
        await pilot.press("ctrl+s")
        await _until(app, pilot, lambda: isinstance(app.screen, BrowserScreen), "the save")
        await _settle(app, pilot)
        names = [str(node.label) for node in tree.root.children]
        assert any(n.startswith("DOE^JANE") for n in names)
        assert not any(n.startswith("Synthetic^Phantom") for n in names)
