"""What the browser shows belongs to the highlighted node, after any sequence of keys.

Random key sequences (seeded) run over an archive of several patients made of real files:
after every key the details pane and the preview must be the highlighted node's (or the
preview blank while it loads), and once the workers are done the preview must be there.
The defects this was written for (a stale details pane after filtering, another study's
image after ``]``, lost triage keys) each have a test of their own below.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pydicom
import pydicom.uid
import pytest
from textual.widgets import Input, Static, Tree

from tests.conftest import need_shared
from tests.synthetic import AXIAL, write_series
from tui.app.app import PacsApp
from tui.app.browser import ArchiveTree, BrowserScreen
from tui.app.image_view import ImagePanel
from tui.app.rows import node_key, parse_filter, preview_target
from tui.app.viewer import ViewerScreen
from tui.archive import triage
from tui.archive.importer import import_paths
from tui.archive.index import Archive
from tui.errors import UserError
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


async def test_hostile_names_are_text(tmp_path: Path) -> None:
    """Markup and terminal escapes in a name are shown as text, never obeyed."""
    import pydicom

    folder = tmp_path / "ct"
    write_series(folder, AXIAL, count=3, size=16)
    hostile = "X[/]Y[b]\x1b]0;owned\x07\x1b[2J"
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        ds.PatientName = hostile
        ds.StudyDescription = "[red]desc[/red]"
        ds.SeriesDescription = "oops [/bold] end"
        ds.save_as(path)
    archive = Archive(tmp_path / "archive")
    import_paths(archive, [folder])
    app = PacsApp(archive, BANDWIDTH["normal"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        await _to_first_series(app, pilot)
        await _settle(app, pilot)
        tree = app.screen.query_one(ArchiveTree)
        label = str(tree.root.children[0].label)
        assert "X[/]Y[b]" in label and "\x1b" not in label
        details = _text(app.screen.query_one("#details", Static))
        assert "\x1b" not in details
        study = str(tree.root.children[0].children[0].label)
        assert "[red]desc[/red]" in study
        series = str(tree.root.children[0].children[0].children[0].label)
        assert "oops [/bold] end" in series
        await pilot.press("v")
        await _settle(app, pilot)
        top = _text(app.screen.query_one("#overlay-top", Static))
        assert "X[/]Y[b]" in top and "\x1b" not in top
        await pilot.press("q")
        await _settle(app, pilot)
        await pilot.press("t")  # the tags screen: an unbalanced [/bold] crashed it
        await _settle(app, pilot)
        tags = app.screen.query_one(Tree)
        labels = {str(node.label) for node in tags.root.children}
        assert any("oops [/bold] end" in label for label in labels), labels
        assert any("X[/]Y[b]" in label and "\x1b" not in label for label in labels)
        for _ in range(len(tags.root.children)):
            if "(0008,103E)" in str(tags.cursor_node.label if tags.cursor_node else ""):
                break
            await pilot.press("down")
        await _settle(app, pilot)
        value = _text(app.screen.query_one("#tag-value", Static))
        assert "oops [/bold] end" in value
        await pilot.press("enter")  # the whole value as a notification: text too
        await _settle(app, pilot)
        shown = [n for n in app._notifications if "oops [/bold] end" in str(n.message)]
        assert shown and not any(n.markup for n in app._notifications)  # never parsed
        for toast in app.screen.query("Toast"):
            toast.render()  # what crashed: the toast parsing the value as markup
        await pilot.press("down")  # another element: the value shown goes with the old one
        await _settle(app, pilot)
        assert not app._notifications
    archive.close()
