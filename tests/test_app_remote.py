"""The remote screen against a real Orthanc on loopback: query, series on demand, marks,
retrieve into the archive (and the browser), what is here already, echo, failures as notices,
stopping what hangs, the form's keys, privacy."""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from pathlib import Path

import pydicom
import pytest
from textual.widgets import Input, OptionList, Tree

from tests.conftest import need_shared
from tests.servers import clear, rest, upload
from tests.test_app import _settle
from tui.app.app import PacsApp
from tui.app.browser import BrowserScreen
from tui.app.labels import fit
from tui.app.remote import RemoteScreen, query_keys, study_label
from tui.archive.holdings import held_studies
from tui.archive.index import Archive
from tui.errors import UserError
from tui.net.nodes import Node, save_node
from tui.net.typed import date_range
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


async def _until(pilot, until, seconds: float = 5.0) -> None:
    """Pause until ``until()`` holds while workers still run (``_wait`` would wait for
    them to end); a busy machine starts a worker later than an idle one."""
    for _ in range(int(seconds / 0.05)):
        if until():
            return
        await pilot.pause(0.05)
    assert until()


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


def _errors(app) -> list[str]:
    return [str(n.message) for n in app._notifications if n.severity == "error"]


def _count(screen: RemoteScreen) -> str:
    return str(screen.query_one("#count").render())


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
    for several in ("CT,MR", "ct, mr", "CT MR", " CT\\MR "):  # DICOM's value list
        assert query_keys(modality=several)["ModalitiesInStudy"] == "CT\\MR"
    with pytest.raises(UserError, match="'last week'"):  # as typed, not as normalised
        date_range("last week", today)


def test_a_narrow_line_cuts_the_description_first() -> None:
    row = {
        "StudyDate": "20240310", "ModalitiesInStudy": "CT", "AccessionNumber": "A123456",
        "StudyDescription": "THORAX ABDOMEN PELVIS WITH CONTRAST",
        "NumberOfStudyRelatedSeries": "3", "NumberOfStudyRelatedInstances": "301",
    }  # fmt: skip
    label = study_label({"row": row, "here": 26}, private=False)
    assert "◐ 26/301 here" in label.plain
    narrow = fit(label, label.cut, 75).plain
    assert len(narrow) == 75 and narrow.endswith("acc A123456  3 series, 301 images")
    assert "THORAX A…" in narrow and narrow.startswith("2024-03-10  CT  ◐ 26/301 here")
    assert fit(label, label.cut, 200) is label  # room enough: as it is
    assert "● here" in study_label({"row": row, "here": 301}, private=False).plain
    assert "here" not in study_label({"row": row}, private=False).plain


async def test_query_mark_retrieve_and_the_browser_shows_it(loaded, tmp_path: Path) -> None:
    config = _config(tmp_path, Node("pacs", loaded.aet, loaded.host, loaded.port))
    app = _app(tmp_path, config)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _query(app, pilot)
        tree = screen.query_one(Tree)
        assert [p.data["level"] for p in tree.root.children] == ["patient"]
        studies = tree.root.children[0].children
        assert len(studies) == 1 and "1 study from pacs" in _count(screen)

        await pilot.press("down")  # the study: its series come on demand
        await pilot.press("enter")
        await _wait(app, pilot, lambda: _series_loaded(screen), "series")
        assert "40 images" in str(studies[0].children[0].label)

        assert "here" not in str(studies[0].label)  # nothing of it in the archive yet
        await pilot.press("space")  # marks the study (and moves down)
        assert studies[0].data["marked"] and "✔" in str(studies[0].label)
        await pilot.press("g")
        await _wait(app, pilot, lambda: screen.jobs and screen.jobs[0].reported, "the retrieve")
        assert not studies[0].data["marked"]  # queued: the mark is spent
        assert screen.jobs[0].transfer.tally.new == 40
        assert any("40 new" in m for m in _messages(app))
        # Here now: the study and its (open) series say so, and the counter counts it.
        await _wait(app, pilot, lambda: "● here" in str(studies[0].label), "the badge")
        assert "● here" in str(studies[0].children[0].label)
        assert "1 here" in _count(screen)

        uid = studies[0].data["row"]["StudyInstanceUID"]
        statements: list[str] = []
        app.archive.conn.set_trace_callback(statements.append)
        others = [f"1.2.3.{n}" for n in range(300)]
        patient = studies[0].data["row"]["PatientID"]
        assert app.read(held_studies, [*others, uid]) == {uid: (40, patient)}
        app.archive.conn.set_trace_callback(None)
        assert len(statements) == 1  # one look-up for a batch of 301 results

        await pilot.press("escape")  # back: the browser shows the study already
        await _settle(app, pilot)
        assert isinstance(app.screen, BrowserScreen)
        patients = app.screen.query_one(Tree).root.children
        assert len(patients) == 1  # the archive was empty before the retrieve

        await pilot.press("p")  # the same screen again, results kept
        await _settle(app, pilot)
        assert app.screen is screen and len(screen.query_one(Tree).root.children) == 1
        first = screen.jobs[0]
        await pilot.press("g")  # again: everything is here already
        await _wait(app, pilot, lambda: screen.jobs[0] is not first, "the new batch")
        assert len(screen.jobs) == 1  # the finished one made way for the new batch
        await _wait(app, pilot, lambda: screen.jobs[0].reported, "the retrieve")
        assert (
            screen.jobs[0].transfer.tally.new == 0 and "40 here already" in screen.jobs[0].summary
        )
        await pilot.press("c")  # clears what is finished: the queue goes
        await _settle(app, pilot)
        assert not screen.jobs and not screen.query_one("#queue").has_class("shown")


async def test_a_study_filed_under_two_patients_is_here_only_under_ours(
    loaded, tmp_path: Path
) -> None:
    """The PACS holds one StudyInstanceUID under two patients (a mix-up a sysadmin is hunting
    for); the archive holds it under one. Only that patient's row says "here"."""
    from tui.archive.importer import import_paths

    source = _files(TOSHIBA)[0]  # the study `loaded` holds
    other = pydicom.dcmread(source)
    other.PatientID, other.PatientName = "OTHER-ID", "OTHER^PATIENT"
    other.SOPInstanceUID = pydicom.uid.generate_uid()
    other.file_meta.MediaStorageSOPInstanceUID = other.SOPInstanceUID
    copy = tmp_path / "other.dcm"
    other.save_as(copy)
    added = upload(loaded, [copy])
    try:
        import_paths(Archive(tmp_path / "archive"), [source])
        ours = pydicom.dcmread(source, stop_before_pixels=True).PatientID
        config = _config(tmp_path, Node("pacs", loaded.aet, loaded.host, loaded.port))
        app = _app(tmp_path, config)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await _query(app, pilot)
            tree = screen.query_one(Tree)
            rows = {p.data["row"]["PatientID"]: p.children[0] for p in tree.root.children}
            assert set(rows) == {ours, "OTHER-ID"}
            await _wait(app, pilot, lambda: "here" in str(rows[ours].label), "the badge")
            assert "here" not in str(rows["OTHER-ID"].label)
    finally:
        for instance in added:  # `loaded` as it was, for the tests after this one
            rest(loaded, f"/instances/{instance}", method="DELETE")


async def test_filters_narrow_the_query(loaded, tmp_path: Path) -> None:
    app = _app(tmp_path, _config(tmp_path, Node("pacs", loaded.aet, loaded.host, loaded.port)))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _query(app, pilot, mod="CT")
        assert not screen.query_one(Tree).root.children
        assert str(screen.query_one("#count").render()).startswith("0 studies")
        for modalities, found in (("MR", 1), ("CT,MR", 1), ("CT PT", 0)):
            screen.query_one("#q-mod", Input).value = modalities
            await pilot.press("ctrl+r")
            await _wait(app, pilot, lambda: screen.run.finished, "the query")
            await _settle(app, pilot)
            assert len(screen.query_one(Tree).root.children) == found, modalities

        screen.query_one("#q-mod", Input).value = ""
        await pilot.press("ctrl+r")
        await _wait(app, pilot, lambda: screen.run.finished, "the query")
        await pilot.press("slash")  # to the form
        assert app.focused is screen.query_one("#q-name")
        await pilot.press("escape")  # out of the field, to the results: not out of the screen
        assert app.screen is screen and app.focused is screen.query_one(Tree)
        await pilot.press("escape")  # again: back
        await _settle(app, pilot)
        assert isinstance(app.screen, BrowserScreen)


async def test_a_bad_date_says_so_in_place(tmp_path: Path) -> None:
    app = _app(tmp_path, _config(tmp_path, Node("pacs", "ORTHANC", "127.0.0.1", _free_port())))
    async with app.run_test(size=(80, 24)) as pilot:
        await _settle(app, pilot)
        await pilot.press("p")
        await _settle(app, pilot)
        screen = app.screen
        assert "F1" in _count(screen)  # how to learn the syntax, before anything is typed
        date = screen.query_one("#q-date", Input)
        date.value = "last week"
        await pilot.press("slash", "enter")  # Enter in the name field
        await _settle(app, pilot)
        assert screen.run is None  # nothing was sent
        assert app.focused is date and date.has_class("error")  # to the field to put right
        assert "'last week'" in _count(screen) and "7d" in _count(screen)
        await pilot.press("backspace")  # editing clears the error
        await _settle(app, pilot)
        assert not date.has_class("error") and "last week" not in _count(screen)
        await pilot.press("escape")  # out of the field: no results yet, so to the nodes
        assert app.focused is screen.query_one("#nodes") and app.screen is screen


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
        status = str(screen.query_one("#node-status").render())
        assert f"127.0.0.1\nport {down.port}" in status and "NOBODY" in status
        assert screen.query_one("#remote-nodes").outer_size.width <= 20  # of 80 columns
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


@pytest.fixture
def silent():
    """A port that takes the TCP connection and never says a word: a PACS hung, or a
    firewall that swallows the association."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)  # never accepted: the kernel completes the handshake, nobody answers
        yield int(sock.getsockname()[1])


async def test_esc_stops_what_hangs_at_once(silent, tmp_path: Path) -> None:
    """A query and an echo to a node that never answers: Esc shows them stopped at once, and
    the failure their workers meet later (at the association timeout) is not news."""
    hung = Node("hung", "NOBODY", "127.0.0.1", silent, acse_timeout=2.0)
    app = _app(tmp_path, _config(tmp_path, hung))
    async with app.run_test(size=(80, 24)) as pilot:
        await _settle(app, pilot)
        await pilot.press("p")
        await _settle(app, pilot)
        screen = app.screen
        await pilot.press("e")  # pilot.pause, not _settle: it waits for the workers to end
        await _until(pilot, lambda: "echo…" in screen.echoes.get("hung", ""))
        await pilot.press("escape")
        assert screen.echoes["hung"] == "echo stopped" and app.screen is screen
        assert "echo stopped" in str(screen.query_one("#node-status").render())

        await pilot.press("enter", "enter")  # to the form, and run the query
        await _until(pilot, lambda: "querying" in _count(screen))
        await pilot.press("escape")
        assert _count(screen).endswith("· stopped")  # at once, not after the timeout
        assert not screen.run.finished and app.screen is screen

        await _wait(app, pilot, lambda: screen.run.finished, "the timeout")
        await _settle(app, pilot)
        assert screen.run.error  # the worker did fail, later
        assert _count(screen).endswith("· stopped") and not _errors(app)
        assert screen.echoes["hung"] == "echo stopped"
        await pilot.press("escape")  # nothing left to stop: back
        await _settle(app, pilot)
        assert isinstance(app.screen, BrowserScreen)


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
        await pilot.press("question_mark")  # the keys panel: Esc closes it, and only it
        await _settle(app, pilot)
        assert screen.query("HelpPanel")
        await pilot.press("escape")
        await _settle(app, pilot)
        assert app.screen is screen and not screen.query("HelpPanel")
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
        # The footer shows the screen's keys in this order: at 80 columns the first fit.
        assert screen_ids[:2] == ["remote.retrieve", "remote.stop"]

        await pilot.press("f1")  # the help: the keys, and the query syntax beside them
        await _settle(app, pilot)
        help_text = app.screen.query_one("HelpPanel #widget-help").source
        for syntax in ("CT,MR", "7d", "2024", "today", "20240101-20240331", "*", "◐"):
            assert syntax in help_text


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


async def test_a_move_listens_on_the_configured_receiver_port(
    loaded, tmp_path: Path, pacstui_port: int
) -> None:
    """C-MOVE: the PACS sends to where it knows us, ``[receiver] port`` in config.toml (as
    ``pacs-tui get`` reads it), not DICOM's default port."""
    node = Node("pacs", loaded.aet, loaded.host, loaded.port, method="move")
    config = _config(tmp_path, node)
    with (config / "config.toml").open("a") as f:
        f.write(f"\n[receiver]\nport = {pacstui_port}\n")
    app = _app(tmp_path, config)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _query(app, pilot)
        await pilot.press("down", "g")
        await _wait(app, pilot, lambda: screen.jobs and screen.jobs[0].reported, "the retrieve")
        job = screen.jobs[0]
        assert (job.state, job.error) == ("done", "")
        assert job.transfer.tally.new == len(_files(TOSHIBA))


def test_remote_snapshot(snap_compare, tmp_path: Path) -> None:
    """Results with a study open on its series and marked, part of it here already, and
    another node highlighted: its address is fixed, the PACS's port is not (no echo, no times:
    it is fixed).

    Served by our own mini-PACS from synthetic files, so that it runs wherever the tests
    run: syrupy 4.8 (pinned by pytest-textual-snapshot) counts the snapshot of a test that
    skipped (no ../shared, no Orthanc) as unused, which fails the whole run."""
    from tests.synthetic import AXIAL, write_series
    from tui.archive.importer import import_paths
    from tui.net.server import MiniPacs

    uid = "1.2.826.0.1.3680043.8.498.7"
    write_series(tmp_path / "ct", AXIAL, count=40, series_uid=uid, sop_uid_root=f"{uid}.1")
    with Archive(tmp_path / "pacs") as served:
        import_paths(served, [tmp_path / "ct"])
    with Archive(tmp_path / "archive") as archive:
        import_paths(archive, sorted((tmp_path / "ct").iterdir())[:26])

    async def results(pilot) -> None:
        screen = await _query(pilot.app, pilot)
        await pilot.press("down", "enter")
        await _wait(pilot.app, pilot, lambda: _series_loaded(screen), "series")
        await pilot.press("space")
        screen.query_one("#nodes", OptionList).highlighted = 1
        pilot.app.clear_notifications()
        await _settle(pilot.app, pilot)

    with MiniPacs(tmp_path / "pacs", aet="MINIPACS", port=0) as pacs:
        other = Node("site-b", "ARCHIVE", "pacs.example.org", 104)
        config = _config(tmp_path, Node("pacs", pacs.aet, "127.0.0.1", pacs.port), other)
        assert snap_compare(_app(tmp_path, config), terminal_size=(80, 24), run_before=results)


@pytest.fixture
def big(loaded):
    """Orthanc holding a 15 MB study too (96 J2K instances): slow enough to stop on its way.
    Put back as the other tests expect it afterwards."""
    upload(loaded, _files(J2K))
    yield loaded
    clear(loaded)
    upload(loaded, _files(TOSHIBA))


def _stop_partway(job, after: int = 10) -> None:
    """What ``x`` does (the job's cancel), from a thread watching the transfer: the study takes
    a fraction of a second over loopback, less than a busy event loop may take for a key."""

    def watch() -> None:
        for _ in range(20_000):
            if job.transfer is not None and job.transfer.done >= after:
                job.cancel.set()
                return
            time.sleep(0.0005)

    threading.Thread(target=watch, daemon=True).start()


async def test_a_transfer_stopped_then_resumed_in_a_batch(big, tmp_path: Path) -> None:
    """Stopped (x), then stopped on its way: part of the study is here, and says so. Retrieved
    again with the other study, as one batch: the stopped line makes way, one notice tells the
    outcome, and both are here whole."""
    from tests.test_net import Breaker

    # The PACS pauses 0.6 s in the first image, so x lands while the transfer runs: our
    # C-GET is fast enough to finish a small study between two key presses otherwise.
    breaker = Breaker(big, "stall", at=1)
    config = _config(tmp_path, Node("pacs", big.aet, "127.0.0.1", breaker.port))
    app = _app(tmp_path, config)
    async with app.run_test(size=(80, 24)) as pilot:
        patient_id = pydicom.dcmread(_files(J2K)[0], stop_before_pixels=True).PatientID
        screen = await _query(app, pilot)
        tree = screen.query_one(Tree)
        studies = [study for patient in tree.root.children for study in patient.children]
        assert len(studies) == 2
        j2k = next(s for s in studies if s.data["row"]["PatientID"] == patient_id)
        tree.move_cursor(j2k)
        await pilot.press("g", "x")  # the highlighted study, stopped at once
        job = screen.jobs[0]
        await _wait(app, pilot, lambda: job.reported, "the stop")
        assert job.state == "stopped", job.error
        assert [m for m in _messages(app) if "stopped" in m]
        here = job.transfer.tally.new if job.transfer else 0  # an instance may have come

        await pilot.press("g")  # again, stopped on its way this time
        job = screen.jobs[0]
        _stop_partway(job)
        await _wait(app, pilot, lambda: job.reported, "the stop")
        assert job.state == "stopped", job.error
        here += job.transfer.tally.new
        assert 0 < here < 96
        await _wait(app, pilot, lambda: "◐" in str(j2k.label), "the badge")
        assert f"◐ {here}/96 here" in str(j2k.label)

        app.clear_notifications()
        await pilot.press("a", "g")  # both, as one batch
        await _settle(app, pilot)
        assert job not in screen.jobs and len(screen.jobs) == 2  # the stopped one made way
        await _wait(app, pilot, lambda: all(j.reported for j in screen.jobs), "the batch")
        assert [j.state for j in screen.jobs] == ["done", "done"]
        assert _messages(app) == [f"2 of 2 retrieved: {136 - here} new images, {here} here already"]
        rows = [str(row.render()) for row in screen.query("TransferRow")]
        assert len(rows) == 2 and all(row.startswith("✔") for row in rows)
        assert all("● here" in str(study.label) for study in studies)
        assert "2 here" in _count(screen)
    breaker.close()


async def test_a_retrieve_ending_behind_the_browser_shows_there(big, tmp_path: Path) -> None:
    """Back in the browser while a retrieve runs: the remote screen is hidden (installed, out
    of the stack), and its ArchiveChanged still reaches the app, which reloads the browser."""
    from tests.test_net import Breaker

    breaker = Breaker(big, "stall", at=1)  # 0.6 s in the first image: Esc lands before the end
    config = _config(tmp_path, Node("pacs", big.aet, "127.0.0.1", breaker.port))
    app = _app(tmp_path, config)
    async with app.run_test(size=(80, 24)) as pilot:
        patient_id = pydicom.dcmread(_files(J2K)[0], stop_before_pixels=True).PatientID
        screen = await _query(app, pilot)
        tree = screen.query_one(Tree)
        studies = [study for patient in tree.root.children for study in patient.children]
        tree.move_cursor(next(s for s in studies if s.data["row"]["PatientID"] == patient_id))
        await pilot.press("g", "escape")  # the 15 MB study: seconds, with the stall
        job = screen.jobs[0]
        assert isinstance(app.screen, BrowserScreen) and not job.reported
        assert not app.screen.query_one(Tree).root.children  # the archive is empty yet
        await _wait(app, pilot, lambda: job.reported, "the retrieve")
        assert job.state == "done", job.error
        await _wait(app, pilot, lambda: app.screen.query_one(Tree).root.children, "the reload")
        assert isinstance(app.screen, BrowserScreen)
    breaker.close()
