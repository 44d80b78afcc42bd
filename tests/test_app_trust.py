"""What the browser shows belongs to the highlighted node, after any sequence of keys.

Random key sequences (seeded) run over an archive of several patients made of real files:
after every key the details pane and the preview must be the highlighted node's (or the
preview blank while it loads), and once the workers are done the preview must be there.
The defects this was written for (a stale details pane after filtering, another study's
image after ``]``, lost triage keys) each have a test of their own below.
"""

from __future__ import annotations

import html
import os
import random
import re
from pathlib import Path
from typing import Any

import pydicom
import pydicom.uid
import pytest
from textual import events
from textual.widgets import Input, Static, Tree

from tests.conftest import need_shared
from tests.servers import clear, upload
from tests.synthetic import AXIAL, write_series
from tests.test_privacy import AS_ESCAPED, AS_TEXT, HOSTILE, SHOWN, write_hostile_series
from tui.app.app import PacsApp
from tui.app.browser import ArchiveTree, BrowserScreen
from tui.app.image_view import ImagePanel
from tui.app.rows import node_key, parse_filter, preview_target
from tui.app.viewer import ViewerScreen
from tui.archive import triage
from tui.archive.importer import import_paths
from tui.archive.index import Archive
from tui.errors import UserError
from tui.net.nodes import Node, save_node
from tui.term.detect import BANDWIDTH

FRAG = "MR_Siemens_6001_anat-T1w_J2K_lossless_multifragment"
SEQUENCES = int(os.environ.get("TRUST_SEQUENCES", 150))  # of 4 keys each, in one session
KEYS = ["down"] * 6 + ["up"] * 3 + ["space"] * 3 + ["home", "end", "pagedown"]
KEYS += ["right_square_bracket", "left_square_bracket", "u", "f", "escape", "view", "filter"]
KEYS += ["remote", "reload"]


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Several patients: synthetic CTs (one patient with two studies), real MR series (one
    study with two series), the character-set files and a DICOMDIR's tiny studies; and
    patients told apart by what a careless match would lose: two with no ID and no name
    (by birth date), an ID with a "*" in it beside one it would match as a wildcard."""
    shared = need_shared()
    root = tmp_path_factory.mktemp("many")
    write_series(root / "ct1", AXIAL, count=12, size=32)
    for number, (pid, name, birth) in enumerate(
        [("", "", ""), ("", "", "20000101"), ("SYN*", "Star^Id", ""), ("SYNX", "Not^Star", "")]
    ):
        folder = root / f"odd{number}"
        write_series(folder, AXIAL, count=3, size=16)
        study = pydicom.uid.generate_uid()
        for path in folder.iterdir():
            ds = pydicom.dcmread(path)
            ds.PatientID, ds.PatientName, ds.PatientBirthDate = pid, name, birth
            ds.StudyInstanceUID = study
            ds.save_as(path)
    archive = Archive(root / "archive")
    import_paths(
        archive,
        [
            root / "ct1",
            *(root / f"odd{number}" for number in range(4)),
            shared / "neurolabusc_dcm_qa_xa30i",
            shared
            / "neurolabusc_dcm_qa_frag"
            / "MR_Siemens_6001_anat-T1w_J2K_lossless_multifragment",
            shared / "neurolabusc_dcm_qa_toshiba",
            shared / "pydicom_test_files" / "charset",
            shared / "pydicom_test_files" / "dicomdir",
        ],
    )
    archive.close()
    return root / "archive"


async def _settle(app: PacsApp, pilot: Any) -> None:
    for _ in range(4):
        await pilot.pause()
        await app.workers.wait_for_complete()
    await pilot.pause()


async def _to_first_series(app: PacsApp, pilot: Any) -> None:
    """Open the first patient and its first study, then down to that study's first series."""
    await pilot.press("home", "space")
    await _settle(app, pilot)
    await pilot.press("down", "space")
    await _settle(app, pilot)
    await pilot.press("down")


def _text(widget: Static) -> str:
    return str(widget.render())


def check_browser(screen: BrowserScreen, settled: bool) -> None:
    """The details and the preview are the highlighted node's; settled, the preview is
    there (or says why not)."""
    node = screen.query_one(ArchiveTree).cursor_node
    data = node.data if node is not None else None
    details = _text(screen.query_one("#details", Static))
    key = node_key(data)
    if key is None:
        assert "No patient matches" in details or not screen.query_one(ArchiveTree).root.children
    else:
        assert key[1] in details, (key, details[:200])  # the node's UID (a patient's ID)
    _studies_are_their_patients(screen)
    panel = screen.query_one("#preview", ImagePanel)
    wanted = preview_target(data)
    assert panel.key in (None, wanted), (panel.key, wanted)
    if panel.key is None:
        assert panel.view.cells is None or not settled
    if settled:
        caption = _text(screen.query_one("#preview-caption", Static))
        if wanted is None:
            assert panel.key is None and panel.view.cells is None and caption == ""
        else:
            assert panel.key == wanted or caption.startswith("no preview"), (caption, wanted)
            if panel.key == wanted:
                assert panel.view.cells is not None


def _studies_are_their_patients(screen: BrowserScreen) -> None:
    """Every study listed under a patient is that patient's, as the index holds it."""
    conn = screen.app.archive.conn  # type: ignore[attr-defined]
    for patient in screen.query_one(ArchiveTree).root.children:
        row = patient.data["row"]  # type: ignore[index]
        listed = {child.data["row"]["StudyInstanceUID"] for child in patient.children}  # type: ignore[index]
        held = {
            uid
            for (uid,) in conn.execute(
                "SELECT st.study_uid FROM study st JOIN patient p USING (patient_pk) WHERE"
                " p.patient_id = ? AND p.patient_name = ? AND p.birth_date = ?",
                (row["PatientID"], row["PatientName"], row["PatientBirthDate"]),
            )
        }
        assert listed <= held, (row, listed - held)


async def _press(app: PacsApp, pilot: Any, key: str, names: list[str], rng: random.Random) -> None:
    screen = app.screen
    if key == "view":
        node = screen.query_one(ArchiveTree).cursor_node
        await pilot.press("v")
        await _settle(app, pilot)
        if isinstance(app.screen, ViewerScreen):
            viewer = app.screen
            assert node is not None and viewer.series is node.data["row"]
            top = _text(viewer.query_one("#overlay-top", Static))
            assert str(node.data["row"]["PatientID"] or "") in top, top
            await pilot.press("q")
    elif key == "filter":
        await pilot.press("slash", *rng.choice(names), "enter")
    elif key == "remote":
        await pilot.press("p")
        await _settle(app, pilot)
        await pilot.press("escape")
    elif key == "reload":
        await pilot.press("r")
    else:
        await pilot.press(key)


async def test_random_keys_never_show_another_nodes_data(many: Path) -> None:
    archive = Archive(many)
    names = ["mul", "rud", "yama", "syn", "SCS", "id:S", "MR", "2025", "x", "foo:"]
    app = PacsApp(archive, BANDWIDTH["normal"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        for seed in range(SEQUENCES):
            rng = random.Random(seed)
            for _ in range(4):
                await _press(app, pilot, rng.choice(KEYS), names, rng)
                await pilot.pause()
                if isinstance(app.screen, BrowserScreen):
                    check_browser(app.screen, settled=False)
            await _settle(app, pilot)
            assert isinstance(app.screen, BrowserScreen), app.screen
            check_browser(app.screen, settled=True)
    archive.close()


async def test_a_patient_opens_to_its_own_studies_only(many: Path) -> None:
    """A patient with no ID and no name opened to every study of the archive; an ID with a
    "*" in it matched as a wildcard. Open every patient: each lists its own studies."""
    with Archive(many) as archive:
        app = PacsApp(archive, BANDWIDTH["normal"])
        async with app.run_test(size=(120, 40)) as pilot:
            await _settle(app, pilot)
            tree = app.screen.query_one(ArchiveTree)
            for patient in list(tree.root.children):
                patient.expand()
                await _settle(app, pilot)
            _studies_are_their_patients(app.screen)  # type: ignore[arg-type]
            odd = [p for p in tree.root.children if p.data["row"]["PatientID"] in ("", "SYN*")]  # type: ignore[index]
            assert len(odd) == 3 and all(len(p.children) == 1 for p in odd)


async def test_filtering_shows_the_remaining_patients_details(many: Path) -> None:
    archive = Archive(many)
    app = PacsApp(archive, BANDWIDTH["normal"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        await pilot.press("slash", *"rudiger", "enter")
        await _settle(app, pilot)
        tree = app.screen.query_one(ArchiveTree)
        assert [node_key(n.data)[2] for n in tree.root.children] == ["Äneas^Rüdiger"]
        assert "Äneas^Rüdiger" in _text(app.screen.query_one("#details", Static))
        check_browser(app.screen, settled=True)
        await pilot.press("slash", *" nobody-at-all", "enter")
        await _settle(app, pilot)
        assert not tree.root.children
        assert "No patient matches" in _text(app.screen.query_one("#details", Static))
    archive.close()


async def test_next_unreviewed_after_the_viewer_previews_that_study(many: Path) -> None:
    archive = Archive(many)
    app = PacsApp(archive, BANDWIDTH["normal"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        tree = app.screen.query_one(ArchiveTree)
        await _to_first_series(app, pilot)
        await _settle(app, pilot)
        await pilot.press("v")
        await _settle(app, pilot)
        await pilot.press("q")
        await _settle(app, pilot)
        before = node_key(tree.cursor_node.data)
        await pilot.press("right_square_bracket")
        await _settle(app, pilot)
        assert (
            tree.cursor_node.data["level"] == "study" and node_key(tree.cursor_node.data) != before
        )
        check_browser(app.screen, settled=True)
        panel = app.screen.query_one("#preview", ImagePanel)
        assert panel.key == preview_target(tree.cursor_node.data)
    archive.close()


async def test_every_triage_key_counts_however_fast(many: Path) -> None:
    archive = Archive(many)
    app = PacsApp(archive, BANDWIDTH["normal"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        tree = app.screen.query_one(ArchiveTree)
        await pilot.press("home", "space")
        await _settle(app, pilot)
        await pilot.press("down")
        await _settle(app, pilot)
        uid = tree.cursor_node.data["row"]["StudyInstanceUID"]
        before = app.read(triage.get, uid)  # the archive is shared: start from what it holds
        await pilot.press("u", "u", "f", "f", "f", "x")  # no pause between them
        priority = (before.priority + 2) % len(triage.PRIORITIES)
        expected = triage.Triage(not before.flagged, priority, not before.reviewed)
        label = str(tree.cursor_node.label)  # shown at once, before any write
        assert label.startswith(expected.marks() + " ") == (expected != triage.Triage()), label
        await _settle(app, pilot)
        state = app.read(triage.get, uid)
        assert (state.priority, state.flagged, state.reviewed) == (
            priority, not before.flagged, not before.reviewed,
        )  # fmt: skip
        await pilot.press("n", *"aorta", "enter")
        await _settle(app, pilot)
        details = _text(app.screen.query_one("#details", Static))
        assert "Note  aorta" in details and f"priority {triage.PRIORITIES[priority]}" in details
        # first, where the pane's height (12 lines at most) never cuts them off
        assert [row.split("  ")[0] for row in details.splitlines()[:2]] == ["Triage", "Note"]
        assert "✎" in str(tree.cursor_node.label)
    archive.close()


async def test_escape_and_coming_back_keep_the_tree_open(many: Path) -> None:
    archive = Archive(many)
    app = PacsApp(archive, BANDWIDTH["normal"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        tree = app.screen.query_one(ArchiveTree)
        await _to_first_series(app, pilot)
        await _settle(app, pilot)
        where = node_key(tree.cursor_node.data)
        for keys in (["escape"], ["p", "escape"], ["r"], ["slash", "zzz", "escape"]):
            await pilot.press(*keys)  # "zzz" matches no one: the cursor comes back
            await _settle(app, pilot)
            assert isinstance(app.screen, BrowserScreen)
            assert node_key(tree.cursor_node.data) == where, keys
            assert (
                tree.cursor_node.parent.is_expanded and tree.cursor_node.parent.parent.is_expanded
            )
            check_browser(app.screen, settled=True)
        # Filtered, the user moves on to another patient's study: Esc keeps the cursor there,
        # and the nodes open before the filter stay open.
        await pilot.press("slash", *"wang", "enter")
        await _settle(app, pilot)
        await pilot.press("home", "space")
        await _settle(app, pilot)
        await pilot.press("down")
        await _settle(app, pilot)
        chosen = node_key(tree.cursor_node.data)
        assert chosen[0] == "study" and chosen != where
        await pilot.press("escape")
        await _settle(app, pilot)
        assert node_key(tree.cursor_node.data) == chosen
        opened = {node_key(n.data) for n in app.screen._every_node() if n.is_expanded}
        assert node_key(_parent_data(tree, where)) in opened
        check_browser(app.screen, settled=True)
    archive.close()


def _parent_data(tree: ArchiveTree, key: Any) -> Any:
    """The data of the parent of the node with ``key``."""
    todo = list(tree.root.children)
    while todo:
        node = todo.pop()
        if node_key(node.data) == key:
            return node.parent.data
        todo += node.children
    raise AssertionError(f"no node {key}")


def test_filter_syntax() -> None:
    filters = parse_filter("alice mod:CT date:20240101- acc:A1")
    assert (filters.name_or_id, filters.modality, filters.date, filters.accession) == (
        "alice", "CT", "20240101-", "A1*",
    )  # fmt: skip
    assert parse_filter("date:2025").date == "20250101-20251231"
    assert parse_filter("date:2024-").date == "20240101-"  # years in ranges, as 2024 alone
    assert parse_filter("date:2020-2023").date == "20200101-20231231"
    assert parse_filter("id:SCS").patient_id == "SCS*"
    assert parse_filter("id:SCS*X").patient_id == "SCS*X"
    assert parse_filter("priority:2 is:flagged").priority == 2
    for bad in ("foo:bar", "date:2024-13", "date:2024-2020", "priority:9", "mod:", "is:nothing"):
        with pytest.raises(UserError):
            parse_filter(bad)


async def test_filters_by_id_and_year_and_says_what_is_wrong(many: Path) -> None:
    archive = Archive(many)
    app = PacsApp(archive, BANDWIDTH["normal"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        tree = app.screen.query_one(ArchiveTree)
        everyone = len(tree.root.children)
        for typed in ("SCSGERM", "scsgerm", "id:SCSGE", "SCSGE"):
            app.screen.query_one("#filter", Input).value = typed
            await _settle(app, pilot)
            ids = [n.data["row"]["PatientID"] for n in tree.root.children]
            assert ids == ["SCSGERM"], (typed, ids)
        for typed in ("foo:bar", "date:2024-13"):
            app.screen.query_one("#filter", Input).value = typed
            await _settle(app, pilot)
            error = app.screen.query_one("#filter-error", Static)
            assert error.has_class("shown") and _text(error), typed
            assert [n.data["row"]["PatientID"] for n in tree.root.children] == ["SCSGERM"]
            check_browser(app.screen, settled=True)
        app.screen.query_one("#filter", Input).value = ""
        await _settle(app, pilot)
        assert len(tree.root.children) == everyone
        assert not app.screen.query_one("#filter-error", Static).has_class("shown")
    archive.close()


# -- hostile values: markup and terminal escapes in every field a screen shows -----------------

AS_INDEXED = AS_TEXT.replace("?", "\ufffd")  # the index keeps control characters as U+FFFD


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An archive of one series with HOSTILE in every value shown (tests/test_privacy.py)."""
    root = tmp_path_factory.mktemp("hostile")
    with Archive(root / "archive") as archive:
        import_paths(archive, [write_hostile_series(root / "in")])
    return root / "archive"


def _screen(app: PacsApp) -> str:
    """The screen's text as Textual draws it (its screenshot), checked first for escape and
    bell characters: a value shown must never drive the terminal."""
    svg = app.export_screenshot()
    assert "\x1b" not in svg and "\x07" not in svg
    return html.unescape(re.sub(r"<[^>]+>", "", svg)).replace("\xa0", " ")


async def test_hostile_values_in_the_browser_are_text(hostile: Path) -> None:
    with Archive(hostile) as archive:
        app = PacsApp(archive, BANDWIDTH["normal"])
        async with app.run_test(size=(160, 48), notifications=True) as pilot:
            await _settle(app, pilot)
            await pilot.press("home", "space")
            await _settle(app, pilot)
            await pilot.press("down")  # the study: its details and its preview's caption
            await _settle(app, pilot)
            shown = _screen(app)
            assert f"N:{AS_INDEXED}" in shown and f"S:{AS_INDEXED}" in shown
            assert f"preview: series CT 1 R:{AS_INDEXED}" in shown
            await pilot.press("space")
            await _settle(app, pilot)
            await pilot.press("down")  # the series
            await _settle(app, pilot)
            assert f"R:{AS_INDEXED}" in _screen(app)  # the series' details
            # Pasted into the filter: the box and its error show it as text.
            await pilot.press("slash")
            app.screen.query_one("#filter", Input).post_message(events.Paste(f"priority:{HOSTILE}"))
            await _settle(app, pilot)
            assert _screen(app).count(f"priority:{AS_TEXT}") == 2


async def test_hostile_values_in_the_tags_screen_are_text(hostile: Path) -> None:
    with Archive(hostile) as archive:
        app = PacsApp(archive, BANDWIDTH["normal"])
        async with app.run_test(size=(160, 48), notifications=True) as pilot:
            await _settle(app, pilot)
            await _to_first_series(app, pilot)
            await _settle(app, pilot)
            await pilot.press("t")
            await _settle(app, pilot)
            assert f"H:{AS_ESCAPED}" in _screen(app)  # each element's value, as pydicom shows it
            tags = app.screen.query_one(Tree)
            while "(0008,103E)" not in str(tags.cursor_node.label if tags.cursor_node else ""):
                await pilot.press("down")
            await _settle(app, pilot)
            assert f"R:{AS_TEXT}" in _text(app.screen.query_one("#tag-value", Static))
            await pilot.press("enter")  # the whole value as a notification: text too
            await _settle(app, pilot)
            assert f"R:{AS_TEXT}" in _screen(app)
            assert app._notifications and not any(n.markup for n in app._notifications)
            await pilot.press("down")  # another element: the value shown goes with the old one
            await _settle(app, pilot)
            assert not app._notifications


async def test_hostile_values_in_the_viewer_and_mpr_are_text(hostile: Path) -> None:
    with Archive(hostile) as archive:
        app = PacsApp(archive, BANDWIDTH["normal"])
        async with app.run_test(size=(160, 48), notifications=True) as pilot:
            await _settle(app, pilot)
            await _to_first_series(app, pilot)
            await pilot.press("v")
            await _settle(app, pilot)
            shown = _screen(app)  # the name and ID from the file, the series from the index
            assert f"N:{AS_TEXT}" in shown and f"I:{AS_TEXT}" in shown
            assert f"R:{AS_INDEXED}" in shown and f"W:{AS_TEXT}" in shown  # the file's window
            await pilot.hover("#viewer", offset=(40, 12))  # the value under the mouse
            await _settle(app, pilot)
            bottom = _text(app.screen.query_one("#overlay-bottom", Static))
            assert " HU at (" in bottom and f"W:{AS_TEXT}" in bottom
            await pilot.press("g")  # MPR: its status names the window
            await _settle(app, pilot)
            assert "axial panel  point" in _screen(app) and f"W:{AS_TEXT}" in _screen(app)


async def test_hostile_paths_in_the_import_dialog_are_text(tmp_path: Path) -> None:
    folder = write_hostile_series(tmp_path / "in", count=3)
    with Archive(tmp_path / "archive") as archive:
        app = PacsApp(archive, BANDWIDTH["normal"])
        async with app.run_test(size=(160, 48), notifications=True) as pilot:
            await _settle(app, pilot)
            await pilot.press("ctrl+o")
            await _settle(app, pilot)
            app.screen.query_one("#import-path", Input).value = f"/nowhere/{HOSTILE}"
            await pilot.press("enter")  # no such path: the error names it
            await _settle(app, pilot)
            assert f"/nowhere/{AS_TEXT}" in _screen(app)  # the box (the notice may wrap)
            assert [n.message for n in app._notifications] == [
                f"no such file or folder: /nowhere/{AS_TEXT}"
            ]
            app.screen.query_one("#import-path", Input).value = str(folder)
            await pilot.press("enter")
            await _settle(app, pilot)
            assert "3 new, 0 updated" in _screen(app)  # the report, and the tree behind it
            assert f"N:{AS_INDEXED}" in _screen(app)


async def test_hostile_answers_on_the_remote_screen_are_text(tmp_path: Path, orthanc) -> None:
    """Orthanc answers with the escapes as they are: the results, the transfer queue, its
    notice; an AE title and a typed date with markup in them are text too."""
    clear(orthanc)
    upload(orthanc, sorted(write_hostile_series(tmp_path / "in", count=3).iterdir()))
    config = tmp_path / "config" / "config.toml"
    save_node(config, Node("hostile", orthanc.aet, orthanc.host, orthanc.port))
    save_node(config, Node("odd", SHOWN, "127.0.0.1", 104))
    with Archive(tmp_path / "archive") as archive:
        app = PacsApp(archive, BANDWIDTH["normal"], config_dir=config.parent)
        async with app.run_test(size=(160, 48), notifications=True) as pilot:
            await _settle(app, pilot)
            await pilot.press("p")
            await _settle(app, pilot)
            screen = app.screen
            screen.query_one("#q-name", Input).focus()
            await pilot.press("enter")
            for _ in range(50):
                await _settle(app, pilot)
                if screen.run is not None and screen.run.finished:
                    break
            shown = _screen(app)
            assert f"N:{AS_TEXT}" in shown and f"S:{AS_TEXT}" in shown and "acc A[/]?[2J" in shown
            await pilot.press("down", "enter")  # the study's series, on demand
            await _settle(app, pilot)
            await pilot.press("space", "g")  # mark the study, retrieve it
            for _ in range(50):
                await _settle(app, pilot)
                if screen.jobs and screen.jobs[0].reported:
                    break
            shown = _screen(app)
            assert f"R:{AS_TEXT}" in shown  # the series' answer
            label = f"N:{AS_TEXT}  2026-01-01  S:{AS_TEXT}"  # the study's, in the queue
            assert screen.jobs[0].label.plain == label
            assert any(str(n.message).startswith(label) for n in app._notifications)
            screen.query_one("#q-date", Input).value = SHOWN
            screen.query_one("#q-date", Input).focus()
            await pilot.press("enter")  # a date with markup in it: said in place, as typed
            await _settle(app, pilot)
            assert f"date '{SHOWN}'" in _screen(app)
            screen.query_one("#nodes").focus()
            await pilot.press("down")  # the node whose AE title is markup
            await _settle(app, pilot)
            assert SHOWN in _text(screen.query_one("#node-status", Static))
