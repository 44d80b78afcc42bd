"""Modality worklist (tui.net.worklist, ``pacs-tui worklist``) against a real Orthanc.

Orthanc's ModalityWorklists plugin serves the ``.wl`` files this module writes with pydicom
(Part 10 files, as dcmtk's dump2dcm makes them): scheduled steps today, tomorrow and years
ago, on several modalities and stations, with names in UTF-8. Answers are checked against
what was written and their count against dcmtk's ``findscu -W``, an independent client; a
plain Orthanc (no plugin) is the node that does not offer the worklist.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from rich.text import Text
from textual.widgets import DataTable, OptionList

from tests.conftest import cli_json, run_cli
from tests.servers import Orthanc, find_scu, start_orthanc
from tests.test_app import _settle
from tests.test_app_remote import _app, _config, _wait
from tui.app.remote import RemoteScreen, ResultTree
from tui.app.remote.worklist import WorklistLoaded, WorklistView
from tui.errors import UserError
from tui.net.errors import NetError
from tui.net.nodes import Node
from tui.net.worklist import (
    DEFAULT_KEYS,
    DEFAULT_STEP_KEYS,
    WorklistNotOffered,
    WorklistQuery,
    worklist,
    worklist_keys,
    worklist_offered,
)

TODAY = dt.date.today()
DAY = f"{TODAY:%Y%m%d}"
TOMORROW = f"{TODAY + dt.timedelta(days=1):%Y%m%d}"
# step ID, patient name, SpecificCharacterSet, date, time, modality, station, accession
STEPS = [
    ("SPS1", "SMITH^JOHN", "", DAY, "080000", "CT", "CT1", "ACC1"),
    ("SPS2", "Müller^Jürgen", "ISO_IR 192", DAY, "093000", "MR", "MR1", "ACC2"),
    ("SPS3", "SMITHERS^WAYLON", "", DAY, "110000", "CT", "CT2", "ACC3"),
    ("SPS4", "DOE^JANE", "", TOMORROW, "090000", "CT", "CT1", "ACC4"),
    ("SPS5", "OLD^CASE", "", "20200115", "100000", "MR", "MR1", "ACC5"),
    ("SPS6", "Ωμέγα^Δέλτα", "ISO_IR 192", DAY, "070000", "US", "US1", "ACC6"),
]
ALL_KEYS = {*DEFAULT_KEYS, *DEFAULT_STEP_KEYS}


def _step(step_id: str, name: str, charset: str, date: str, time: str, modality: str,
          station: str, accession: str) -> dict[str, str]:  # fmt: skip
    """One scheduled step as the flat dict a worklist answer should be."""
    n = step_id[3:]
    return {
        "PatientName": name, "PatientID": f"PID{n}", "PatientBirthDate": f"1970010{n}",
        "PatientSex": "F" if int(n) % 2 else "M", "AccessionNumber": accession,
        "RequestedProcedureID": f"RP{n}", "RequestedProcedureDescription": f"request {n}",
        "StudyInstanceUID": f"1.2.826.0.1.3680043.8.498.7{n}",
        "ScheduledStationAETitle": station, "ScheduledProcedureStepStartDate": date,
        "ScheduledProcedureStepStartTime": time, "Modality": modality,
        "ScheduledPerformingPhysicianName": f"Doctor^{n}",
        "ScheduledProcedureStepDescription": f"{modality} step {n}",
        "ScheduledProcedureStepID": step_id,
    }  # fmt: skip


EXPECTED = {s[0]: _step(*s) for s in STEPS}


def _write_worklist(folder: Path, steps: list[tuple[str, ...]] = STEPS) -> None:
    """One ``.wl`` file per step: the patient and request at the top, the step in the item."""
    for step in steps:
        values = _step(*step)
        ds, item = Dataset(), Dataset()
        if step[2]:
            ds.SpecificCharacterSet = step[2]
        for keyword, value in values.items():
            setattr(item if keyword in DEFAULT_STEP_KEYS else ds, keyword, value)
        ds.ScheduledProcedureStepSequence = Sequence([item])
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.31"
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(folder / f"{step[0]}.wl", enforce_file_format=True)


def _serve(workdir: Path, move_port: int, steps: list[tuple[str, ...]] = STEPS) -> Orthanc:
    """Orthanc with its worklist plugin, serving ``steps``."""
    database = workdir / "worklists"
    database.mkdir(parents=True)
    _write_worklist(database, steps)
    # Orthanc transcodes answers to its DefaultEncoding (Latin-1 unless told): Greek needs UTF-8.
    config = {"Worklists": {"Enable": True, "Database": str(database)}, "DefaultEncoding": "Utf8"}
    return start_orthanc(
        workdir, move_port=move_port, plugins=["ModalityWorklists"], extra_config=config
    )


@pytest.fixture(scope="module")
def wl_orthanc(tmp_path_factory: pytest.TempPathFactory, pacstui_port: int) -> Iterator[Orthanc]:
    """Orthanc with its worklist plugin, serving :data:`STEPS`."""
    with _serve(tmp_path_factory.mktemp("orthanc_wl"), pacstui_port) as server:
        yield server


def _node(server: Orthanc, name: str = "ris") -> Node:
    return Node(name, server.aet, server.host, server.port)


def _ids(rows: list[dict[str, str]]) -> set[str]:
    return {row["ScheduledProcedureStepID"] for row in rows}


def _query(server: Orthanc, **filters: Any) -> list[dict[str, str]]:
    return list(worklist(_node(server), worklist_keys(**filters)))


# -- the query ------------------------------------------------------------------------------


def test_today_lists_every_step_scheduled_today_flattened_by_keyword(wl_orthanc) -> None:
    rows = list(worklist(_node(wl_orthanc)))  # no keys: today, the default keys
    assert _ids(rows) == {"SPS1", "SPS2", "SPS3", "SPS6"}
    for row in rows:
        assert set(row) == ALL_KEYS  # the step's attributes beside the patient's
        assert row == EXPECTED[row["ScheduledProcedureStepID"]]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"modality": "ct"}, {"SPS1", "SPS3"}),
        ({"station": "CT1"}, {"SPS1"}),
        ({"station": "CT1", "date": "any"}, {"SPS1", "SPS4"}),
        ({"patient": "SMITH*"}, {"SPS1", "SPS3"}),
        ({"accession": "ACC2"}, {"SPS2"}),
        ({"step_id": "SPS3"}, {"SPS3"}),
        ({"date": "tomorrow"}, {"SPS4"}),
        ({"date": "20200101-20201231"}, {"SPS5"}),
        ({"date": "2020-"}, {s[0] for s in STEPS}),
        ({"date": "any", "extra": {"RequestedProcedureID": "RP5"}}, {"SPS5"}),
        ({"modality": "MR", "date": "any"}, {"SPS2", "SPS5"}),
    ],
)
def test_filters_select_the_matching_steps(wl_orthanc, filters, expected) -> None:
    assert _ids(_query(wl_orthanc, **filters)) == expected


def test_names_in_utf8_match_and_come_back_whole(wl_orthanc) -> None:
    (row,) = _query(wl_orthanc, patient="Müller*")  # the request goes as ISO_IR 192
    assert row["PatientName"] == "Müller^Jürgen"
    (row,) = _query(wl_orthanc, patient="Ωμέγα*")
    assert row == EXPECTED["SPS6"]


def test_return_keys_chosen_and_a_limit(wl_orthanc) -> None:
    keys = {"ScheduledProcedureStepStartDate": "", "PatientName": "", "ScheduledStationName": ""}
    rows = list(worklist(_node(wl_orthanc), keys))
    assert len(rows) == len(STEPS)  # no filter at all: every step
    assert all(list(r) == list(keys) for r in rows)  # only what was asked, in that order
    assert {r["ScheduledStationName"] for r in rows} == {""}  # asked, not in the files
    assert len(list(worklist(_node(wl_orthanc), worklist_keys(date="any"), limit=2))) == 2


def test_findscu_counts_the_same_steps(wl_orthanc) -> None:
    """dcmtk's findscu -W, an independent client, against the same worklist."""
    step = "ScheduledProcedureStepSequence[0]"
    for ours, keys in [
        (_query(wl_orthanc), [f"{step}.ScheduledProcedureStepStartDate={DAY}"]),
        (_query(wl_orthanc, modality="CT", date="any"), [f"{step}.Modality=CT"]),
        (_query(wl_orthanc, patient="SMITH*"),
         [f"{step}.ScheduledProcedureStepStartDate={DAY}", "PatientName=SMITH*"]),
    ]:  # fmt: skip
        theirs = find_scu(wl_orthanc, *keys, f"{step}.ScheduledProcedureStepID", model="-W")
        assert len(theirs) == len(ours) > 0
        their_ids = {str(ds.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID)
                     for ds in theirs}  # fmt: skip
        assert their_ids == _ids(ours)


def test_a_node_without_the_worklist_says_so(wl_orthanc, orthanc) -> None:
    with pytest.raises(WorklistNotOffered, match="does not offer the modality worklist"):
        list(worklist(_node(orthanc, "plain")))
    assert worklist_offered(_node(orthanc)) is False
    assert worklist_offered(_node(wl_orthanc)) is True


def test_a_dicomweb_node_is_refused_in_words() -> None:
    web = Node("web", dicomweb="http://127.0.0.1:1/dicom-web")
    with pytest.raises(UserError, match="DICOMweb node"):
        worklist(web)


# -- the identifier -------------------------------------------------------------------------


@pytest.mark.parametrize("implicit", [True, False])
def test_the_request_carries_one_step_item_and_utf8_when_needed(implicit: bool) -> None:
    query = WorklistQuery(worklist_keys(patient="Ωμέγα*", modality="CT"))
    ds = read_dataset(BytesIO(query.identifier(implicit)), implicit, True)
    assert ds.SpecificCharacterSet == "ISO_IR 192" and str(ds.PatientName) == "Ωμέγα*"
    assert "QueryRetrieveLevel" not in ds  # the worklist model has no levels
    (item,) = ds.ScheduledProcedureStepSequence
    assert item.Modality == "CT" and item.ScheduledProcedureStepStartDate == DAY
    assert {element.keyword for element in item} == set(DEFAULT_STEP_KEYS)
    ascii_only = WorklistQuery(worklist_keys(patient="SMITH*"))
    assert "SpecificCharacterSet" not in read_dataset(
        BytesIO(ascii_only.identifier(implicit)), implicit, True
    )


@pytest.mark.parametrize(("implicit", "undefined"), [(True, True), (False, True), (True, False)])
def test_answers_of_any_encoding_decode_and_garbage_is_an_error(
    implicit: bool, undefined: bool
) -> None:
    """Defined lengths go by find's fast reader, undefined ones by pydicom: the same text."""
    query = WorklistQuery(worklist_keys())
    ds, item = Dataset(), Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"  # Latin-1, in the step's item too
    ds.PatientName = "Müller^Jürgen"
    item.ScheduledPerformingPhysicianName = "Gödel^Kurt"
    item.Modality, item.ScheduledProcedureStepID = "MR", "S1"
    ds.ScheduledProcedureStepSequence = Sequence([item])
    ds.ScheduledProcedureStepSequence.is_undefined_length = undefined
    item.is_undefined_length_sequence_item = undefined
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, implicit
    write_dataset(out, ds)
    assert (b"\xff\xff\xff\xff" in out.getvalue()) == undefined  # as some PACS send
    node = Node("ris", "RIS", "127.0.0.1", 104)
    row = query.decode(node, out.getvalue(), implicit)
    assert row["PatientName"] == "Müller^Jürgen"
    assert row["ScheduledPerformingPhysicianName"] == "Gödel^Kurt"
    assert (row["Modality"], row["ScheduledProcedureStepID"]) == ("MR", "S1")
    assert row["AccessionNumber"] == ""  # asked, left out: ""
    with pytest.raises(NetError, match="cannot be read"):
        query.decode(node, b"\x10\x00\x10\x00\xff\xff\x00\x10cut short", True)


def test_keys_are_checked_before_anything_is_sent() -> None:
    with pytest.raises(UserError, match="not a DICOM keyword"):
        WorklistQuery({"Modalty": "CT"})
    with pytest.raises(UserError, match="built by pacs-tui"):
        WorklistQuery({"ScheduledProcedureStepSequence": ""})
    with pytest.raises(UserError, match="date"):
        worklist_keys(date="last week")


# -- the command ----------------------------------------------------------------------------


def _add_node(server: Orthanc, name: str = "ris") -> None:
    run_cli("node", "add", name, server.aet, server.host, str(server.port))


def test_the_command_prints_a_table_and_json_keyed_by_dicom_keywords(wl_orthanc) -> None:
    _add_node(wl_orthanc)
    rows = cli_json("worklist", "ris")
    assert [r["ScheduledProcedureStepID"] for r in rows] == ["SPS6", "SPS1", "SPS2", "SPS3"]
    assert rows == [EXPECTED[r["ScheduledProcedureStepID"]] for r in rows]  # in time order
    rows = cli_json("worklist", "ris", "--date", "any", "--modality", "CT", "--station", "CT1")
    assert _ids(rows) == {"SPS1", "SPS4"}
    rows = cli_json("worklist", "ris", "--patient", "Müller*", "-k", "ScheduledStationName")
    assert _ids(rows) == {"SPS2"} and rows[0]["ScheduledStationName"] == ""
    done = run_cli("worklist", "ris", "--accession", "ACC1")
    header, line = done.stdout.splitlines()
    assert header.split()[:4] == ["Date", "Time", "Mod", "Station"]
    assert line.split()[:7] == [DAY, "080000", "CT", "CT1", "SMITH^JOHN", "PID1", "ACC1"]
    assert "1 scheduled step(s) from ris" in done.stderr


def test_the_command_masks_patients_with_privacy(wl_orthanc) -> None:
    _add_node(wl_orthanc)
    (row,) = cli_json("--privacy", "worklist", "ris", "--step", "SPS2")
    masked = (row["PatientName"], row["PatientID"], row["PatientBirthDate"])
    assert masked == ("M•••", "P•••", "1•••")
    assert row["AccessionNumber"] == "ACC2"
    table = run_cli("--privacy", "worklist", "ris", "--step", "SPS2").stdout
    assert "Müller" not in table and "M•••" in table


def test_the_command_fails_in_one_line(wl_orthanc, orthanc) -> None:
    _add_node(orthanc, "plain")
    done = run_cli("worklist", "plain", check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        "pacs-tui: error: plain does not offer the modality worklist (its association refused"
        " the Modality Worklist FIND context)"
    )
    _add_node(wl_orthanc)
    for args, words in [
        (["--date", "someday"], "date 'someday'"),
        (["-k", "Modalty=CT"], "not a DICOM keyword"),
        (["--limit", "0"], "--limit must be 1 or more"),
    ]:
        done = run_cli("worklist", "ris", *args, check=False)
        assert done.returncode == 1 and words in done.stderr and "Traceback" not in done.stderr


# -- the app ----------------------------------------------------------------------------------


def _cells(view: WorklistView) -> list[list[Text]]:
    table = view.query_one(DataTable)
    return [table.get_row_at(i) for i in range(table.row_count)]


async def test_the_remote_screen_shows_the_highlighted_nodes_worklist(
    wl_orthanc, orthanc, tmp_path: Path, pacstui_port: int
) -> None:
    """``w`` shows today's steps of the highlighted node; another node highlighted clears
    them at once and shows its own (or why it has none): never one node's steps under
    another's name. A name with markup in it shows as typed."""
    hostile = ("SPS9", "[bold]Other[/bold]^Patient", "", DAY, "120000", "CR", "CR1", "ACC9")
    with _serve(tmp_path / "other", pacstui_port, [hostile]) as other:
        config = _config(
            tmp_path,
            _node(wl_orthanc, "a-ris"), _node(other, "b-other"), _node(orthanc, "c-plain"),
        )  # fmt: skip
        app = _app(tmp_path, config)
        async with app.run_test(size=(120, 30)) as pilot:
            await _settle(app, pilot)
            await pilot.press("p")
            await _settle(app, pilot)
            screen = app.screen
            assert isinstance(screen, RemoteScreen)
            view = screen.query_one(WorklistView)
            assert not view.display
            await pilot.press("w")
            await _wait(app, pilot, lambda: view.rows and not view.loading, "a-ris's worklist")
            assert view.display and not screen.query_one(ResultTree).display
            assert view.node is not None and view.node.name == "a-ris"
            assert [r["ScheduledProcedureStepID"] for r in view.rows] == [
                "SPS6", "SPS1", "SPS2", "SPS3"
            ]  # fmt: skip
            assert [c[3].plain for c in _cells(view)] == [r["PatientName"] for r in view.rows]
            assert [c[0].plain for c in _cells(view)] == ["07:00", "08:00", "09:30", "11:00"]
            status = str(screen.query_one("#worklist-status").render())
            assert "a-ris" in status and "4 scheduled steps" in status

            nodes = screen.query_one("#nodes", OptionList)
            nodes.highlighted = 1  # b-other
            await pilot.pause()
            assert view.rows == [] and view.query_one(DataTable).row_count == 0  # at once
            await _wait(app, pilot, lambda: view.rows and not view.loading, "b-other's")
            assert view.node is not None and view.node.name == "b-other"
            ((*_, patient, _, _, step, _),) = _cells(view)
            assert (patient.plain, step.plain) == (hostile[1], "SPS9") and not patient.spans

            # An answer that comes after another node was highlighted is dropped.
            view.show(_node(wl_orthanc, "a-ris"))
            nodes.highlighted = 2  # c-plain, while a-ris's query runs
            await _wait(app, pilot, lambda: view.error, "c-plain's refusal")
            assert view.node is not None and view.node.name == "c-plain"
            assert view.rows == [] and "c-plain does not offer the modality worklist" in view.error
            stale = [EXPECTED["SPS1"]]
            view.post_message(WorklistLoaded(view._load, _node(wl_orthanc, "a-ris"), stale, ""))
            view.post_message(WorklistLoaded(view._load - 1, view.node, stale, ""))
            await _settle(app, pilot)
            assert view.rows == [] and view.query_one(DataTable).row_count == 0

            nodes.highlighted = 0
            await _wait(app, pilot, lambda: len(view.rows) == 4, "a-ris's again")
            view.query_one(DataTable).focus()
            before = view.rows
            await pilot.press("r")  # reload: asked again, the same four
            await _wait(app, pilot, lambda: view.rows is not before and len(view.rows) == 4, "r")
            await pilot.press("escape")  # back to the query, not out of the screen
            await _settle(app, pilot)
            assert app.screen is screen
            assert not view.display and screen.query_one(ResultTree).display
            await pilot.press("w", "w")  # w shows it, w hides it
            await _settle(app, pilot)
            assert not view.display and screen.query_one("#form").display


async def test_the_worklist_view_masks_patients_with_privacy(wl_orthanc, tmp_path: Path) -> None:
    app = _app(tmp_path, _config(tmp_path, _node(wl_orthanc)), privacy=True)
    async with app.run_test(size=(120, 30)) as pilot:
        await _settle(app, pilot)
        await pilot.press("p")
        await _settle(app, pilot)
        await pilot.press("w")
        view = app.screen.query_one(WorklistView)
        await _wait(app, pilot, lambda: view.rows and not view.loading, "the worklist")
        names = [c[3].plain for c in _cells(view)]
        assert names and all(n.endswith("•••") for n in names)
        assert all(c[4].plain.endswith("•••") for c in _cells(view))  # IDs too
