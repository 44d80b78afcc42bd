"""The print dialog with Textual's pilot, against dcmtk's print server emulator dcmprscp: P
in the viewer prints the view on screen (the Hardcopy Grayscale Image the printer stored
equals the viewer's rendering within one grey level), P in the browser a sheet of the
series; no printer says how to add one, a refused film size says so in words, P on a
patient says print works on a series; printers are neither send targets nor PACS nodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from textual.widgets import Input, Select

from tests.servers import Dcmprscp, hardcopy_images, stored_prints
from tests.synthetic import AXIAL, write_series
from tests.test_app import _open_first_series, _settle
from tui.app.app import PacsApp
from tui.app.browser import BrowserScreen
from tui.app.printing import ADD_PRINTER, PrintScreen, parse_copies, parse_layout
from tui.app.viewer import ViewerScreen
from tui.archive.importer import import_paths
from tui.archive.index import Archive
from tui.errors import UserError
from tui.net.nodes import Node, save_node
from tui.render.pipeline import Request
from tui.term.detect import BANDWIDTH


@pytest.fixture
def filled(tmp_path: Path) -> Archive:
    archive = Archive(tmp_path / "archive")
    write_series(tmp_path / "ct", AXIAL, count=30)
    import_paths(archive, [tmp_path / "ct"])
    return archive


def _config(tmp_path: Path, printer: Dcmprscp | None = None) -> Path:
    """config.toml with a PACS node (never offered for printing) and the printer, if any."""
    config = tmp_path / "config" / "config.toml"
    save_node(config, Node("pacs", "PACS", "127.0.0.1", 11112))
    if printer is not None:
        save_node(config, Node("film", printer.aet, printer.host, printer.port, printer=True))
    return config


def _app(archive: Archive, tmp_path: Path, **kw) -> PacsApp:
    return PacsApp(archive, BANDWIDTH["normal"], config_dir=tmp_path / "config", **kw)


async def _until(pilot, ready, what: str, rounds: int = 600) -> None:
    for _ in range(rounds):
        if ready():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"waited in vain for {what}")


async def _dialog(app, pilot) -> PrintScreen:
    """P pressed: the dialog, with its printers loaded."""
    await pilot.press("P")
    await _until(pilot, lambda: isinstance(app.screen, PrintScreen), "the print dialog")
    screen = app.screen
    await _until(pilot, lambda: screen.printers is not None, "the printer list")
    await pilot.pause()
    return screen


async def _keys_panel(app, pilot) -> list[str]:
    """``?`` pressed: the descriptions its table lists (the panel stays open)."""
    from tui.app.keys import ScreenFirstTable

    await pilot.press("question_mark")
    await _settle(app, pilot)
    table = app.screen.query_one(ScreenFirstTable).render()
    return [str(cell) for cell in table.columns[1].cells]


async def _series_dialog(app, pilot) -> PrintScreen:
    """The browser settled, its first series highlighted, then P: the dialog."""
    await _settle(app, pilot)
    await _open_first_series(app, pilot)
    return await _dialog(app, pilot)


async def _viewer(app, pilot) -> None:
    """The browser settled, then its first series open in the viewer."""
    await _settle(app, pilot)
    await _open_first_series(app, pilot)
    await pilot.press("v")
    await _settle(app, pilot)


async def _printed(pilot, screen: PrintScreen) -> str:
    await _until(pilot, lambda: screen.running, "the job to start", rounds=40)
    await _until(pilot, lambda: not screen.running, "the printer's answer")
    return screen.answer


def _as_8_bits(image) -> np.ndarray:
    """A Hardcopy Grayscale Image's pixels as 8-bit P-values."""
    pixels = image.pixel_array.astype(np.float64)
    if int(image.BitsStored) == 12:
        pixels = pixels * 255 / 4095
    return pixels


def _within_one_grey(printed, expected: np.ndarray) -> None:
    pixels = _as_8_bits(printed)
    assert pixels.shape == expected.shape
    assert np.abs(pixels - expected.astype(np.float64)).max() <= 1.0


async def test_the_viewer_prints_the_view_on_screen(
    filled: Archive, tmp_path: Path, dcmprscp_printer: Dcmprscp
) -> None:
    _config(tmp_path, dcmprscp_printer)
    app = _app(filled, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await _viewer(app, pilot)
        await pilot.press("j", "j", "j", "j", "w", "w", "i")  # slice 19 of 30, narrower, inverted
        await _settle(app, pilot)
        viewer = app.screen
        assert isinstance(viewer, ViewerScreen)
        shown, request = viewer._shown, viewer._shown_request
        assert request is viewer.request and request.index == 19 and request.invert
        screen = await _dialog(app, pilot)
        assert list(screen.printers) == ["film"]  # the PACS node is no printer
        assert screen.query_one("#print-printer", Select).value == "film"
        assert "Synthetic^Phantom" in screen.title_text.plain
        assert screen.what == "view"
        assert screen.focused is screen.query_one("#print-printer", Select)
        screen.query_one("#print-go").focus()
        await pilot.press("enter")  # Enter on the Print button: the node's defaults
        answer = await _printed(pilot, screen)
        assert answer.startswith("film printed 1 film, 1 copy each, 12 bits"), answer
        assert isinstance(app.screen, PrintScreen)  # the answer stays until Esc
        await pilot.press("escape")
        await _settle(app, pilot)
        assert app.screen is viewer
    (printed,) = hardcopy_images(dcmprscp_printer)
    assert int(printed.BitsStored) == 12
    _within_one_grey(printed, shown.image)  # what was on screen: slice 19, its window, inverted
    (stored,) = stored_prints(dcmprscp_printer)
    film = stored.FilmBoxContentSequence[0]
    assert film.ImageDisplayFormat == "STANDARD\\1,1"


async def test_the_viewer_prints_a_sheet_of_its_plane_at_8_bits(
    filled: Archive, tmp_path: Path, dcmprscp_printer: Dcmprscp
) -> None:
    """ "a sheet of this plane": every slice in the shown plane, in one window; a layout
    typed in the dialog; 8 bits where the node asks for them."""
    config = _config(tmp_path)
    printer = dcmprscp_printer
    save_node(config, Node("film", printer.aet, printer.host, printer.port, printer=True,
                           print_bits=8, film_size="10INX12IN"))  # fmt: skip
    app = _app(filled, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await _viewer(app, pilot)
        screen = await _dialog(app, pilot)
        assert screen.query_one("#print-film-size", Input).value == "10INX12IN"  # the node's
        await pilot.click("#what-plane")
        assert screen.what == "plane"
        layout = screen.query_one("#print-layout", Input)
        layout.value = "3,5"
        layout.focus()
        await pilot.press("ctrl+s")
        answer = await _printed(pilot, screen)
        assert answer.startswith("film printed 2 films, 1 copy each, 8 bits, film size 10INX12IN")
    images = hardcopy_images(printer)
    assert len(images) == 30
    assert {int(image.BitsStored) for image in images} == {8}
    formats = [s.FilmBoxContentSequence[0].ImageDisplayFormat for s in stored_prints(printer)]
    assert formats == ["STANDARD\\3,5", "STANDARD\\3,5"]
    sizes = {s.FilmBoxContentSequence[0].FilmSizeID for s in stored_prints(printer)}
    assert sizes == {"10INX12IN"}


async def test_the_browser_prints_a_sheet_of_the_series(
    filled: Archive, tmp_path: Path, dcmprscp_printer: Dcmprscp
) -> None:
    _config(tmp_path, dcmprscp_printer)
    app = _app(filled, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        tree = await _open_first_series(app, pilot)
        uid = tree.cursor_node.data["row"]["SeriesInstanceUID"]
        screen = await _dialog(app, pilot)
        assert screen.what == "series"
        assert "CT" in screen.title_text.plain and "Synthetic^Phantom" in screen.title_text.plain
        copies = screen.query_one("#print-copies", Input)
        copies.value = "2"
        copies.focus()
        await pilot.press("ctrl+s")
        answer = await _printed(pilot, screen)
        assert "2 copies each" in answer, answer  # as the printer's film session took it
        await pilot.press("escape")
        await _settle(app, pilot)
        assert isinstance(app.screen, BrowserScreen)
        middle = app.render_series(uid, Request(index=15))
        slices = [
            app.render_series(uid, Request(index=n, window=middle.window)).image for n in range(30)
        ]  # every slice (30 is under a contact sheet's 60), all in the middle one's window
    images = hardcopy_images(dcmprscp_printer)
    assert len(images) == 30
    found: set[int] = set()
    for image in images:  # each printed image is one of the slices, within a grey level
        pixels = _as_8_bits(image)
        same = [n for n, s in enumerate(slices) if np.abs(pixels - s).max() <= 1.0]
        assert same, "a printed image is none of the series' slices"
        found.update(same)
    assert found == set(range(30))
    films = stored_prints(dcmprscp_printer)
    assert sum(len(s.ImageBoxContentSequence) for s in films) == 30
    assert len(films) == int(answer.split(" printed ")[1].split()[0])  # as the answer says


async def test_no_printer_says_how_to_add_one(filled: Archive, tmp_path: Path) -> None:
    _config(tmp_path)  # a PACS node only
    app = _app(filled, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _series_dialog(app, pilot)
        assert not screen.printers
        assert "pacs-tui node add NAME AET HOST PORT --printer" in screen.answer
        await pilot.press("ctrl+s")  # Print: nothing to print on, said again
        await _settle(app, pilot)
        assert not screen.running and ADD_PRINTER in screen.answer
        notices = [str(n.message) for n in app._notifications]
        assert any("--printer" in n for n in notices)


async def test_a_refused_film_size_is_said_in_words(
    filled: Archive, tmp_path: Path, dcmprscp_printer: Dcmprscp
) -> None:
    _config(tmp_path, dcmprscp_printer)
    app = _app(filled, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await _viewer(app, pilot)
        screen = await _dialog(app, pilot)
        size = screen.query_one("#print-film-size", Input)
        size.value = "24cmx24cm"  # the printer offers 8INX10IN, 10INX12IN, 14INX17IN
        size.focus()
        await pilot.press("ctrl+s")
        answer = await _printed(pilot, screen)
        assert "FilmSizeID" in answer and "24CMX24CM" in answer, answer
        assert "refused" in answer
        assert screen.query_one("#print-status").has_class("error")
    assert stored_prints(dcmprscp_printer) == []  # nothing printed


async def test_print_on_a_patient_says_it_works_on_a_series(
    filled: Archive, tmp_path: Path
) -> None:
    _config(tmp_path)
    app = _app(filled, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        tree = app.screen.query_one("Tree")
        assert tree.cursor_node.data["level"] == "patient"
        await pilot.press("P")
        await _settle(app, pilot)
        assert isinstance(app.screen, BrowserScreen)
        notices = [str(n.message) for n in app._notifications]
        assert any("print works on a series" in n for n in notices)


async def test_printers_are_no_send_target_nor_pacs(
    filled: Archive, tmp_path: Path, dcmprscp_printer: Dcmprscp
) -> None:
    from tui.app.remote.nodes import NodePane
    from tui.app.share import ShareScreen

    _config(tmp_path, dcmprscp_printer)
    app = _app(filled, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        await _open_first_series(app, pilot)
        await pilot.press("S")
        await _settle(app, pilot)
        assert isinstance(app.screen, ShareScreen)
        assert app.screen.nodes == ["pacs"]
        await pilot.press("escape")
        await _settle(app, pilot)
        await pilot.press("p")
        await _settle(app, pilot)
        assert list(app.screen.query_one(NodePane).nodes) == ["pacs"]


def test_the_forms_values() -> None:
    assert parse_layout("auto") is None and parse_layout(" ") is None
    assert parse_layout("2,3") == (2, 3) and parse_layout("4x5") == (4, 5)
    assert parse_copies("") == 1 and parse_copies(" 3 ") == 3
    for bad in ("2", "a,b", "0,3", "11,1"):
        with pytest.raises(UserError, match="layout"):
            parse_layout(bad)
    for bad in ("0", "100", "two"):
        with pytest.raises(UserError, match="copies"):
            parse_copies(bad)


async def test_esc_stops_a_running_job(
    filled: Archive, tmp_path: Path, dcmprscp_printer: Dcmprscp
) -> None:
    """Thirty films of one image each: Esc after the first is printed stops the job between
    films; the answer says how many of the thirty printed, and the printer has just those."""
    _config(tmp_path, dcmprscp_printer)
    app = _app(filled, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _series_dialog(app, pilot)
        layout = screen.query_one("#print-layout", Input)
        layout.value = "1,1"
        layout.focus()
        await pilot.press("ctrl+s")
        await _until(pilot, lambda: "film 1 of 30 printed" in screen.log_lines, "a first film")
        await pilot.press("escape")  # stops the job; the dialog stays
        await _until(pilot, lambda: not screen.running, "the job to stop")
        assert isinstance(app.screen, PrintScreen)
        answer = screen.answer
        assert "of 30 films (stopped)" in answer, answer
        printed = int(answer.split(" printed ")[1].split()[0])
        await pilot.press("escape")  # closes
        await _settle(app, pilot)
        assert isinstance(app.screen, BrowserScreen)
    assert 1 <= printed < 30
    assert len(stored_prints(dcmprscp_printer)) == printed


async def test_hostile_values_in_the_print_dialog_are_text(tmp_path: Path) -> None:
    from tests.test_app_trust import AS_INDEXED, _screen
    from tests.test_privacy import write_hostile_series

    archive = Archive(tmp_path / "archive")
    import_paths(archive, [write_hostile_series(tmp_path / "in")])
    _config(tmp_path)
    app = _app(archive, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await _settle(app, pilot)
        await pilot.press("home", "space")
        await _settle(app, pilot)
        await pilot.press("down", "space")  # the study, opened
        await _settle(app, pilot)
        await pilot.press("down")  # its series
        await _dialog(app, pilot)
        shown = _screen(app)
        assert "Print series: " in shown and f"R:{AS_INDEXED}" in shown
        assert f"N:{AS_INDEXED}" in shown
        await pilot.press("escape", "v")
        await _settle(app, pilot)
        assert isinstance(app.screen, ViewerScreen)
        await _dialog(app, pilot)
        shown = _screen(app)
        assert f"R:{AS_INDEXED}" in shown and "view: " in shown


async def test_print_is_listed_as_a_key_and_remappable(filled: Archive, tmp_path: Path) -> None:

    _config(tmp_path)
    app = _app(filled, tmp_path, keymap={"browser.print": "Y"})
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        await _open_first_series(app, pilot)
        keys = {active.binding.id: key for key, active in app.screen.active_bindings.items()}
        assert keys["browser.print"] == "Y"
        assert any(
            d.startswith("Print a sheet of the series") for d in await _keys_panel(app, pilot)
        )
        await pilot.press("question_mark", "Y")
        await _until(pilot, lambda: isinstance(app.screen, PrintScreen), "the print dialog")
        ids = {active.binding.id for active in app.screen.active_bindings.values()}
        assert {"print.cancel", "print.go"} <= ids
        await pilot.press("escape", "v")
        await _settle(app, pilot)
        keys = {active.binding.id: key for key, active in app.screen.active_bindings.items()}
        assert keys["viewer.print"] == "P"


async def test_a_volume_rendering_prints_as_one_image(
    filled: Archive, tmp_path: Path, dcmprscp_printer: Dcmprscp
) -> None:
    """In VR "this view" only (no planes to lay out): rendered for paper, at 8 bits (a
    rendering has no values for 12)."""
    _config(tmp_path, dcmprscp_printer)
    app = _app(filled, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await _viewer(app, pilot)
        await pilot.press("v")  # volume rendering
        viewer = app.screen
        await _until(pilot, lambda: viewer._shown_request is viewer.request, "the rendering")
        await _until(pilot, lambda: not viewer._coarse, "the full frame")
        screen = await _dialog(app, pilot)
        assert not screen.query_one("#what-plane").display
        await pilot.press("ctrl+s")
        answer = await _printed(pilot, screen)
        assert answer.startswith("film printed 1 film, 1 copy each, 8 bits"), answer
    (printed,) = hardcopy_images(dcmprscp_printer)
    assert int(printed.BitsStored) == 8 and max(printed.Rows, printed.Columns) >= 512


async def test_printer_events_show_in_the_log_as_they_come(filled: Archive, tmp_path: Path) -> None:
    """A printer that warns it is low on film at each film's N-ACTION (and pauses there): the
    dialog's log shows the warning in words while the job runs, the job still finishes, and
    the answer repeats the warning; print job events show, naming their film."""
    from textual.widgets import Static

    from tests.print_peer import print_peer

    config = _config(tmp_path)
    with print_peer(event=(2, "SUPPLY LOW"), event_pause=0.5, job_events=[(3, "NORMAL")]) as peer:
        save_node(config, Node("film", peer.aet, "127.0.0.1", peer.port, printer=True))
        app = _app(filled, tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await _series_dialog(app, pilot)
            await pilot.press("ctrl+s")  # a sheet of the series: 30 images on two 4,5 films
            log = screen.query_one("#print-log", Static)
            low = "the printer is low on film (SUPPLY LOW)"
            await _until(pilot, lambda: low in str(log.content), "the printer's warning")
            assert screen.running  # shown as it came, while the printer holds the N-ACTION
            answer = await _printed(pilot, screen)
            assert not screen.query_one("#print-status").has_class("error")
        lines = screen.log_lines
    assert answer.startswith("film printed 2 films, 1 copy each"), answer
    assert f"warning: {low}" in answer
    assert lines.count(low) == 2  # one a film, each in its place among the steps
    assert (
        lines.index(low) < lines.index("film 1 of 2 printed") < lines.index("film 2 of 2 printed")
    )
    assert "film 1 of 2: the print job is done" in lines
    assert len(peer.of("N-ACTION", "1.2.840.10008.5.1.1.2")) == 2


async def test_enter_never_prints_on_a_printer_not_chosen(
    filled: Archive, tmp_path: Path, dcmprscp_printer: Dcmprscp
) -> None:
    """The dialog opens on the printer list, not on Print: Enter opens the list (it printed
    two films on the first printer, "down", for a user who meant to open it); Enter in a
    box goes on to the next; the Print button or ctrl+s prints; the next dialog of the run
    opens on the printer printed on last."""
    config = _config(tmp_path, dcmprscp_printer)
    printer = dcmprscp_printer
    save_node(config, Node("down", printer.aet, printer.host, printer.port, printer=True))
    app = _app(filled, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await _viewer(app, pilot)
        screen = await _dialog(app, pilot)
        select = screen.query_one("#print-printer", Select)
        assert list(screen.printers) == ["down", "film"] and select.value == "down"
        assert screen.focused is select
        await pilot.press("enter")  # opens the list, as a Select does
        await _settle(app, pilot)
        assert select.expanded and not screen.running
        assert stored_prints(printer) == []  # nothing printed
        await pilot.press("down", "enter")  # "film", chosen in the list
        await _settle(app, pilot)
        assert select.value == "film" and not select.expanded
        copies = screen.query_one("#print-copies", Input)
        copies.focus()
        await pilot.press("enter")  # on to the next box, no job
        await _settle(app, pilot)
        assert not screen.running and screen.focused is not copies
        assert stored_prints(printer) == []
        await pilot.press("ctrl+s")
        answer = await _printed(pilot, screen)
        assert answer.startswith("film printed 1 film"), answer
        await pilot.press("escape")
        await _settle(app, pilot)
        again = await _dialog(app, pilot)
        assert again is not screen
        assert again.query_one("#print-printer", Select).value == "film"  # the last used
        assert again.focused is again.query_one("#print-printer", Select)
    assert len(stored_prints(printer)) == 1


async def test_the_mpr_prints_the_active_panes_view(
    filled: Archive, tmp_path: Path, dcmprscp_printer: Dcmprscp
) -> None:
    """P in the 2x2 MPR: the active pane's view as rendered (its oblique plane through the
    point, its window; no crosshair), named in the dialog's title; one image, equal to the
    pane's rendering within one grey level. `?` lists the key."""
    from tui.app.mpr import MPRScreen

    _config(tmp_path, dcmprscp_printer)
    app = _app(filled, tmp_path)
    async with app.run_test(size=(140, 50)) as pilot:
        await _viewer(app, pilot)
        await pilot.press("g")
        await _settle(app, pilot)
        mpr = app.screen
        assert isinstance(mpr, MPRScreen)
        await pilot.press("tab", "j", "j")  # the coronal pane, two planes further back
        await _settle(app, pilot)
        await _until(pilot, lambda: "coronal" in mpr.shown, "the coronal pane")
        keys = {active.binding.id: key for key, active in mpr.active_bindings.items()}
        assert keys["mpr.print"] == "P"
        assert any(
            d.startswith("Print the active pane's view") for d in await _keys_panel(app, pilot)
        )
        await pilot.press("question_mark")
        await _settle(app, pilot)
        shown = mpr.shown["coronal"]
        screen = await _dialog(app, pilot)
        title = screen.title_text.plain
        assert "CT" in title and "Synthetic^Phantom" in title, title
        assert "coronal pane" in title and shown.description in title, title
        assert screen.what == "view" and not screen.query_one("#what-plane").display
        await pilot.press("ctrl+s")
        answer = await _printed(pilot, screen)
        assert answer.startswith("film printed 1 film, 1 copy each"), answer
        await pilot.press("escape")
        await _settle(app, pilot)
        assert app.screen is mpr
    (printed,) = hardcopy_images(dcmprscp_printer)
    _within_one_grey(printed, shown.image)  # the pane's rendering, not its crosshair


async def test_a_refused_layout_is_said_in_the_apps_words(
    filled: Archive, tmp_path: Path, dcmprscp_printer: Dcmprscp
) -> None:
    """A layout the printer does not take: said with the box to change, no command-line
    flags (the dialog has a layout box, not a --layout)."""
    _config(tmp_path, dcmprscp_printer)
    app = _app(filled, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _series_dialog(app, pilot)
        screen.query_one("#print-layout", Input).value = "2,4"  # it takes 2,3 and 3,3, not 2,4
        await pilot.press("ctrl+s")
        answer = await _printed(pilot, screen)
        assert "refused ImageDisplayFormat" in answer and "layout" in answer, answer
        notices = [str(n.message) for n in app._notifications]
        for said in [answer, screen.query_one("#print-status").content, *notices]:
            assert "--" not in str(said), said
    assert stored_prints(dcmprscp_printer) == []
