"""The remote screen against a real Orthanc on loopback: query, series on demand, marks,
retrieve into the archive (and the browser), echo, failures as notices, privacy."""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path

import pydicom
import pytest
from textual.widgets import Input, OptionList, Tree

from tests.conftest import need_shared
from tests.servers import clear, upload
from tests.test_app import _settle
from tui.app.app import PacsApp
from tui.app.browser import BrowserScreen
from tui.app.remote import RemoteScreen, date_range, query_keys
from tui.archive.index import Archive
from tui.errors import UserError
from tui.net.nodes import Node, save_node
from tui.term.detect import BANDWIDTH

TOSHIBA = "neurolabusc_dcm_qa_toshiba/MR_Toshiba_Galan3T_DTI_ortho_b0_volume"  # 40 x 64x64
J2K = "neurolabusc_dcm_qa_frag/MR_Siemens_6001_anat-T1w_J2K_lossless_multifragment"  # 96, 15 MB


def _files(folder: str) -> list[Path]:
    found = []
    for path in sorted((need_shared() / folder).rglob("*")):
        if path.is_file():
            with path.open("rb") as f:
                if f.read(132)[128:] == b"DICM":
                    found.append(path)
    return found


@pytest.fixture(scope="module")
def loaded(orthanc):
    """Orthanc holding one small MR study (40 instances, one series)."""
    clear(orthanc)
    upload(orthanc, _files(TOSHIBA))
    return orthanc


def _config(tmp_path: Path, *nodes: Node) -> Path:
    config_dir = tmp_path / "config"
    for node in nodes:
        save_node(config_dir / "config.toml", node)
    return config_dir


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _app(tmp_path: Path, config_dir: Path | None, **kw) -> PacsApp:
    return PacsApp(Archive(tmp_path / "archive"), BANDWIDTH["normal"], config_dir=config_dir, **kw)


async def _wait(app, pilot, until, what: str, tries: int = 100) -> None:
    """Pause until ``until()`` holds (workers run threads; their results come as messages)."""
    for _ in range(tries):
        await _settle(app, pilot)
        if until():
            return
    raise AssertionError(f"timed out waiting for {what}")


async def _query(app, pilot, **fields: str) -> RemoteScreen:
    """From the browser to the remote screen, then a query by keys."""
    await _settle(app, pilot)
    await pilot.press("p")
    await _settle(app, pilot)
    screen = app.screen
    assert isinstance(screen, RemoteScreen)
    for key, value in fields.items():
        screen.query_one(f"#q-{key}", Input).value = value
    screen.query_one("#q-name", Input).focus()
    await pilot.press("enter")
    await _wait(app, pilot, lambda: screen.run is not None and screen.run.finished, "the query")
    await _settle(app, pilot)
    return screen


def _messages(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


def test_dates_take_ranges_years_and_presets() -> None:
    today = dt.date(2024, 3, 10)
    assert date_range("", today) == ""
    assert date_range("today", today) == "20240310"
    assert date_range("yesterday", today) == "20240309"
    assert date_range("7d", today) == "20240304-20240310"
    assert date_range("1y", today) == "20230312-20240310"
    assert date_range("2023", today) == "20230101-20231231"
    assert date_range("20240101-", today) == "20240101-"
    assert date_range("20240101-20241231", today) == "20240101-20241231"
    for bad in ("20241301", "20240201-20240101", "last week"):
        with pytest.raises(UserError):
            date_range(bad, today)
    keys = query_keys("smi", modality="ct")
    assert keys["PatientName"] == "smi*" and keys["ModalitiesInStudy"] == "CT"
    assert keys["StudyInstanceUID"] == ""  # the usual return keys come too


async def test_query_mark_retrieve_and_the_browser_shows_it(loaded, tmp_path: Path) -> None:
    config = _config(tmp_path, Node("pacs", loaded.aet, loaded.host, loaded.port))
    app = _app(tmp_path, config)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _query(app, pilot)
        tree = screen.query_one(Tree)
        assert [p.data["level"] for p in tree.root.children] == ["patient"]
        studies = tree.root.children[0].children
        assert len(studies) == 1 and "1 study" in str(screen.query_one("#count").render())

        await pilot.press("down")  # the study: its series come on demand
        await pilot.press("enter")
        await _wait(app, pilot, lambda: _series_loaded(screen), "series")
        assert "40 images" in str(studies[0].children[0].label)

        await pilot.press("space")  # marks the study (and moves down)
        assert studies[0].data["marked"] and "✔" in str(studies[0].label)
        await pilot.press("g")
        await _wait(
            app, pilot, lambda: screen.jobs and screen.jobs[0].state == "done", "the retrieve"
        )
        assert not studies[0].data["marked"]  # queued: the mark is spent
        assert screen.jobs[0].transfer.tally.new == 40
        assert any("40 new" in m for m in _messages(app))

        await pilot.press("escape")  # back: the browser shows the study already
        await _settle(app, pilot)
        assert isinstance(app.screen, BrowserScreen)
        patients = app.screen.query_one(Tree).root.children
        assert len(patients) == 1  # the archive was empty before the retrieve

        await pilot.press("p")  # the same screen again, results kept
        await _settle(app, pilot)
        assert app.screen is screen and len(screen.query_one(Tree).root.children) == 1
        await pilot.press("g")  # again: everything is here already
        await _wait(
            app, pilot, lambda: len(screen.jobs) == 2 and screen.jobs[1].state == "done", "retrieve"
        )
        assert (
            screen.jobs[1].transfer.tally.new == 0 and "40 here already" in screen.jobs[1].summary
        )


async def test_filters_narrow_the_query(loaded, tmp_path: Path) -> None:
    app = _app(tmp_path, _config(tmp_path, Node("pacs", loaded.aet, loaded.host, loaded.port)))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _query(app, pilot, mod="CT")
        assert not screen.query_one(Tree).root.children
        assert str(screen.query_one("#count").render()).startswith("0 studies")
        screen.query_one("#q-mod", Input).value = "MR"
        await pilot.press("ctrl+r")
        await _wait(app, pilot, lambda: screen.run.finished, "the query")
        await _settle(app, pilot)
        assert len(screen.query_one(Tree).root.children) == 1


async def test_echo_and_an_unreachable_node(loaded, tmp_path: Path) -> None:
    down = Node("down", "NOBODY", "127.0.0.1", _free_port())
    config = _config(tmp_path, Node("pacs", loaded.aet, loaded.host, loaded.port), down)
    app = _app(tmp_path, config)
    async with app.run_test(size=(80, 24)) as pilot:
        await _settle(app, pilot)
        await pilot.press("p")
        await _settle(app, pilot)
        screen = app.screen
        nodes = screen.query_one("#nodes", OptionList)
        nodes.focus()
        assert nodes.get_option_at_index(nodes.highlighted).id == "down"  # sorted by name
        await pilot.press("e")
        await _wait(app, pilot, lambda: "no echo" in screen.echoes.get("down", ""), "the echo")
        assert any("connection refused" in m for m in _messages(app))

        await pilot.press("enter")  # to the form; a query to it fails with the same notice
        await pilot.press("enter")
        await _wait(app, pilot, lambda: screen.run is not None and screen.run.finished, "query")
        assert screen.run.error and "connection refused" in screen.run.error
        assert "failed" in str(screen.query_one("#count").render())

        nodes.focus()
        await pilot.press("down", "e")  # pacs
        await _wait(app, pilot, lambda: "ms" in screen.echoes.get("pacs", ""), "the echo")
        assert any(m.startswith("pacs (") and m.endswith(" ms") for m in _messages(app))


async def test_no_node_says_how_to_add_one(tmp_path: Path) -> None:
    app = _app(tmp_path, None)
    async with app.run_test(size=(80, 24)) as pilot:
        await _settle(app, pilot)
        await pilot.press("p")
        await _settle(app, pilot)
        screen = app.screen
        assert screen.has_class("no-nodes")
        text = str(screen.query_one("#empty").render())
        assert "pacs-tui node add NAME AET HOST PORT" in text and "pacs-tui demo" in text
        await pilot.press("ctrl+r")  # a query has nowhere to go: the notice says what to do
        await _settle(app, pilot)
        assert any("pacs-tui node add" in m for m in _messages(app))
        await pilot.press("escape")
        await _settle(app, pilot)
        assert isinstance(app.screen, BrowserScreen)


async def test_privacy_masks_the_results(loaded, tmp_path: Path) -> None:
    from tests.servers import rest

    patient = rest(loaded, f"/patients/{rest(loaded, '/patients')[0]}")["MainDicomTags"]
    config = _config(tmp_path, Node("pacs", loaded.aet, loaded.host, loaded.port))
    app = _app(tmp_path, config, privacy=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _query(app, pilot)
        label = str(screen.query_one(Tree).root.children[0].label)
        assert "•••" in label
        assert patient["PatientID"] not in label
        assert patient["PatientName"].replace("^", " ") not in label.replace("^", " ")


async def test_every_key_has_an_id_and_the_palette_lists_them(tmp_path: Path) -> None:
    screen_ids = [b.id for b in RemoteScreen.BINDINGS]
    assert all(i and i.startswith("remote.") for i in screen_ids)
    app = _app(tmp_path, None, keymap={"remote.echo": "E"})
    async with app.run_test(size=(80, 24)) as pilot:
        await _settle(app, pilot)
        await pilot.press("p")
        await _settle(app, pilot)
        keys = {active.binding.id: key for key, active in app.screen.active_bindings.items()}
        assert keys["remote.echo"] == "E"
        names = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Echo", "Retrieve", "Run query", "Stop transfer"} <= set(names)


def _series_loaded(screen: RemoteScreen) -> bool:
    study = screen.query_one(Tree).root.children[0].children[0]
    return bool(study.children) and study.children[0].data["level"] == "series"


async def test_a_series_alone(loaded, tmp_path: Path) -> None:
    config = _config(tmp_path, Node("pacs", loaded.aet, loaded.host, loaded.port))
    app = _app(tmp_path, config)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _query(app, pilot)
        await pilot.press("down", "enter")  # the study's series
        await _wait(app, pilot, lambda: _series_loaded(screen), "series")
        await pilot.press("down", "space")
        series = screen.query_one(Tree).root.children[0].children[0].children[0]
        assert series.data["marked"]
        await pilot.press("g")
        await _wait(app, pilot, lambda: screen.jobs and screen.jobs[-1].state == "done", "retrieve")
        job = screen.jobs[-1]
        assert job.series == series.data["row"]["SeriesInstanceUID"]
        assert job.transfer.tally.new == 40


def test_remote_snapshot(snap_compare, loaded, tmp_path: Path) -> None:
    """Results with a study open on its series and marked (no echo, no times: it is fixed)."""
    config = _config(tmp_path, Node("pacs", loaded.aet, loaded.host, loaded.port))

    async def results(pilot) -> None:
        screen = await _query(pilot.app, pilot)
        await pilot.press("down", "enter")
        await _wait(pilot.app, pilot, lambda: _series_loaded(screen), "series")
        await pilot.press("space")
        pilot.app.clear_notifications()
        await _settle(pilot.app, pilot)

    assert snap_compare(_app(tmp_path, config), terminal_size=(80, 24), run_before=results)


@pytest.fixture
def big(loaded):
    """Orthanc holding a 15 MB study too (96 J2K instances): slow enough to stop on its way.
    Put back as the other tests expect it afterwards."""
    upload(loaded, _files(J2K))
    yield loaded
    clear(loaded)
    upload(loaded, _files(TOSHIBA))


async def test_a_transfer_can_be_stopped(big, tmp_path: Path) -> None:
    config = _config(tmp_path, Node("pacs", big.aet, big.host, big.port))
    app = _app(tmp_path, config)
    async with app.run_test(size=(80, 24)) as pilot:
        patient_id = pydicom.dcmread(_files(J2K)[0], stop_before_pixels=True).PatientID
        screen = await _query(app, pilot, id=patient_id)
        await pilot.press("down", "g")  # the highlighted study
        for _ in range(1000):  # not _settle: it would wait for the transfer to end
            await pilot.pause(0.005)
            job = screen.jobs[0]
            if job.transfer is not None and job.transfer.done:
                break
        await pilot.press("x")  # stopped on its way: a C-CANCEL
        await _wait(app, pilot, lambda: job.state != "running", "the stop")
        assert job.state == "stopped", job.error
        assert job.transfer.tally.new < 96 and any("stopped" in m for m in _messages(app))
