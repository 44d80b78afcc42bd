"""The Print SCU (tui.net.printing) against dcmtk's print server emulator dcmprscp, which stores
each printed film as a Stored Print and its images as Hardcopy Grayscale Images we read back;
and against a scripted pynetdicom print SCP (tests/print_peer.py) for what dcmprscp cannot
do: annotation boxes, printer events, a printer out of film, a refusal that names nothing."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import PYDICOM_ROOT_UID

from tests.conftest import run_cli
from tests.print_peer import (
    ANNOTATION_BOX,
    FILM_BOX,
    FILM_SESSION,
    IMAGE_BOX,
    DroppingProxy,
    PrintPeer,
    print_peer,
    silent_peer,
)
from tests.servers import (
    PACSTUI,
    Dcmprscp,
    TlsFiles,
    free_port,
    hardcopy_images,
    start_dcmprscp,
    start_storescp,
    stored_prints,
)
from tests.test_cli import _one_line_error
from tui.errors import UserError
from tui.net.diagnose import FAILED, OK, diagnose, steps_of
from tui.net.errors import NetError
from tui.net.nodes import Node
from tui.net.printing import (
    LAYOUTS,
    FilmSettings,
    PrinterEvent,
    PrintError,
    PrintImage,
    auto_layout,
    lay_out,
    print_films,
    printer_status,
    result_json,
    settings_for,
)

PATIENT = "DOE^JANE 4711"  # annotation text: patient data, never in a log or a progress line


def printer_node(server: Dcmprscp | PrintPeer, port: int | None = None) -> Node:
    return Node(
        name="film", aet=server.aet, host="127.0.0.1", port=port or server.port,
        printer=True, dimse_timeout=20, network_timeout=20, acse_timeout=10,
    )  # fmt: skip


def images(count: int, shape: tuple[int, int] = (63, 81), seed: int = 7) -> list[PrintImage]:
    """Distinct random pictures at 8 and 12 bits (odd sizes: the 8-bit pixel data is padded)."""
    rng = np.random.default_rng(seed)
    return [
        PrintImage(
            rng.integers(0, 256, shape, dtype=np.uint8),
            rng.integers(0, 4096, shape, dtype=np.uint16),
            (1, 1),
        )
        for _ in range(count)
    ]


def printed_pixels(server: Dcmprscp) -> list[np.ndarray]:
    return [image.pixel_array for image in hardcopy_images(server)]


def referenced_pixels(server: Dcmprscp) -> list[np.ndarray]:
    """Only the images a Stored Print references (dcmprscp also keeps the images of a film box
    whose association was cut before it was printed)."""
    referenced = {
        ref.ReferencedSOPInstanceUID
        for stored in stored_prints(server)
        for box in stored.ImageBoxContentSequence
        for ref in box.get("ReferencedImageSequence", [])
    }
    return [
        image.pixel_array for image in hardcopy_images(server) if image.SOPInstanceUID in referenced
    ]


# -- laying out, settings, JSON (no printer) ---------------------------------------------------


def test_auto_layout_is_the_smallest_that_holds_them() -> None:
    assert [auto_layout(n) for n in (1, 2, 3, 4, 5, 7, 12, 15, 20)] == [
        (1, 1), (1, 2), (2, 2), (2, 2), (2, 3), (3, 3), (3, 4), (3, 5), (4, 5),
    ]  # fmt: skip
    assert auto_layout(21) == LAYOUTS[-1] == (4, 5)


def test_lay_out_fills_films_in_order() -> None:
    pictures = images(23, (4, 4))
    films = lay_out(pictures, ["a", "b"])
    assert [(f.columns, f.rows, len(f.images)) for f in films] == [(4, 5, 20), (4, 5, 3)]
    assert films[1].images[0] is pictures[20]
    assert films[0].annotations == ["a", "b"]
    assert [len(f.images) for f in lay_out(pictures, [], (2, 2))] == [4] * 5 + [3]
    with pytest.raises(UserError, match="nothing to print"):
        lay_out([], [])


def test_settings_for_takes_the_node_and_overrides() -> None:
    node = Node(
        name="p", aet="P", host="h", port=1, printer=True, film_size="14INX17IN",
        medium="BLUE FILM", copies=2, print_bits=8, max_density=300,
    )  # fmt: skip
    settings = settings_for(node, copies=3, film_size=None, orientation="LANDSCAPE")
    assert settings.film_size == "14INX17IN" and settings.medium == "BLUE FILM"
    assert (settings.copies, settings.bits, settings.max_density) == (3, 8, 300)
    assert settings.orientation == "LANDSCAPE" and settings.label == "pacs-tui"
    with pytest.raises(UserError, match="bits must be 8 or 12"):
        settings_for(node, bits=10)
    with pytest.raises(UserError, match="copies must be 1 to 99"):
        settings_for(node, copies=0)


def test_settings_out_of_range_are_refused_in_words_before_anything_is_sent() -> None:
    """What the film session and film box cannot carry (MaxDensity is US, NumberOfCopies as
    node add takes it) is refused in words, not as pynetdicom's encoding error, and before any
    connection: the node's port has nothing listening, so a connection would fail otherwise."""
    node = Node(name="p", aet="P", host="127.0.0.1", port=free_port(), printer=True)
    with pytest.raises(PrintError, match=r"^max density must be 0 to 65535 .*not 99999$"):
        settings_for(node, max_density=99999)
    with pytest.raises(PrintError, match=r"^min density must be 0 to 65535 .*not -1$"):
        settings_for(node, min_density=-1)
    with pytest.raises(PrintError, match=r"^copies must be 1 to 99, not 100$"):
        settings_for(node, copies=100)
    with pytest.raises(PrintError, match=r"^min density 300 must be below max density 200$"):
        settings_for(node, min_density=300, max_density=200)
    film = lay_out(images(1, (8, 8)), [], None)
    for settings in (FilmSettings(max_density=99999), FilmSettings(copies=1000)):
        with pytest.raises(PrintError, match="must be"):
            print_films(node, film, settings)
    assert settings_for(node, max_density=65535, min_density=0, copies=99).copies == 99


# -- against dcmprscp ----------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [8, 12])
def test_images_read_back_are_what_was_sent(dcmprscp_printer: Dcmprscp, bits: int) -> None:
    pictures = images(3)
    films = lay_out(pictures, [], (2, 2))
    result = print_films(printer_node(dcmprscp_printer), films, FilmSettings(bits=bits))
    assert (result.films, result.bits, result.associations) == (1, bits, 1)
    back = hardcopy_images(dcmprscp_printer)
    assert len(back) == 3 and len(stored_prints(dcmprscp_printer)) == 1
    for sent, got in zip(pictures, back, strict=True):
        assert (got.Rows, got.Columns) == (63, 81)
        assert (got.BitsAllocated, got.BitsStored) == ((8, 8) if bits == 8 else (16, 12))
        expected = sent.grey8 if bits == 8 else sent.grey12
        np.testing.assert_array_equal(got.pixel_array, expected)


def test_automatic_bits_send_12_where_the_printer_takes_them(
    dcmprscp_printer: Dcmprscp,
) -> None:
    pictures = images(2)
    pictures.append(PrintImage(pictures[0].grey8))  # no 12-bit view: this one goes at 8
    result = print_films(
        printer_node(dcmprscp_printer), lay_out(pictures, [], (1, 1)), FilmSettings()
    )
    assert (result.films, result.bits, result.warnings) == (3, 12, [])
    got = hardcopy_images(dcmprscp_printer)
    assert [g.BitsStored for g in got] == [12, 12, 8]
    np.testing.assert_array_equal(got[1].pixel_array, pictures[1].grey12)
    np.testing.assert_array_equal(got[2].pixel_array, pictures[0].grey8)


def test_film_box_and_session_attributes_as_asked(dcmprscp_printer: Dcmprscp) -> None:
    settings = FilmSettings(
        film_size="14INX17IN", orientation="LANDSCAPE", medium="BLUE FILM",
        destination="PROCESSOR", magnification="CUBIC", max_density=300, min_density=25,
        copies=2, label="pacs-tui",
    )  # fmt: skip
    result = print_films(
        printer_node(dcmprscp_printer), lay_out(images(4, (16, 16)), [], (2, 2)), settings
    )
    assert result.copies == 2 and result.session["NumberOfCopies"] == 2
    assert result.session["MediumType"] == "BLUE FILM"
    assert result.session["FilmDestination"] == "PROCESSOR"
    assert result.session["FilmSessionLabel"] == "pacs-tui"
    (stored,) = stored_prints(dcmprscp_printer)
    (box,) = stored.FilmBoxContentSequence
    assert box.ImageDisplayFormat == "STANDARD\\2,2"
    assert (box.FilmSizeID, box.FilmOrientation, box.MagnificationType) == (
        "14INX17IN", "LANDSCAPE", "CUBIC",
    )  # fmt: skip
    assert (box.MaxDensity, box.MinDensity) == (300, 25)
    assert result.film_boxes[0]["FilmSizeID"] == "14INX17IN"
    # The IDENTITY Presentation LUT, referenced from the film box.
    assert result.presentation_lut
    (lut,) = stored.PresentationLUTContentSequence
    assert lut.PresentationLUTShape == "IDENTITY"
    reference = box.ReferencedPresentationLUTSequence[0].ReferencedSOPInstanceUID
    assert reference == lut.SOPInstanceUID and reference.startswith(PYDICOM_ROOT_UID)
    json.dumps(result_json(result))  # what --json prints is JSON


def test_no_presentation_lut_when_not_asked(dcmprscp_printer: Dcmprscp) -> None:
    result = print_films(
        printer_node(dcmprscp_printer),
        lay_out(images(1, (8, 8)), [], None),
        FilmSettings(presentation_lut=False),
    )
    assert not result.presentation_lut
    (stored,) = stored_prints(dcmprscp_printer)
    # dcmprscp references a default LUT of its own (dcmtk's UID root), not one of ours
    for reference in stored.FilmBoxContentSequence[0].get("ReferencedPresentationLUTSequence", []):
        assert not reference.ReferencedSOPInstanceUID.startswith(PYDICOM_ROOT_UID)


def test_a_film_size_the_printer_forbids_is_refused_by_name(tmp_path: Path) -> None:
    with start_dcmprscp(tmp_path / "prs", FilmSizeID="8INX10IN\\10INX12IN") as server:
        with pytest.raises(PrintError) as refused:
            print_films(
                printer_node(server),
                lay_out(images(2, (8, 8)), [], None),
                FilmSettings(film_size="14INX17IN", orientation="PORTRAIT"),
            )
        # dcmprscp names no attribute: the probe found it
        assert "FilmSizeID 14INX17IN" in str(refused.value)
        assert "0x0106" in str(refused.value)
        assert "FilmOrientation" not in str(refused.value)
        assert stored_prints(server) == []
        assert refused.value.result is None  # nothing was printed
    # A refusal leaves the association fine: it is released, not aborted.
    said = server.log.read_text(errors="replace")
    assert "Association Release" in said and "Abort" not in said


def test_a_medium_the_printer_lacks_is_refused_by_name(dcmprscp_printer: Dcmprscp) -> None:
    with pytest.raises(PrintError) as refused:
        print_films(
            printer_node(dcmprscp_printer),
            lay_out(images(1, (8, 8)), [], None),
            FilmSettings(medium="GREEN FILM", copies=2, destination="MAGAZINE"),
        )
    # dcmprscp names no attribute in a refused film session either: the probe found it
    assert "MediumType GREEN FILM" in str(refused.value)
    assert "NumberOfCopies" not in str(refused.value)
    assert stored_prints(dcmprscp_printer) == []


def test_a_layout_the_printer_lacks_is_refused_by_name(dcmprscp_printer: Dcmprscp) -> None:
    layout = r"ImageDisplayFormat STANDARD\\5,5 \(0x0106.*\): try another layout \(columns,rows\)$"
    with pytest.raises(PrintError, match=layout):
        print_films(
            printer_node(dcmprscp_printer),
            lay_out(images(2, (8, 8)), [], (5, 5)),
            FilmSettings(),
        )


def test_12_bits_refused_fall_back_to_8_with_a_warning(tmp_path: Path) -> None:
    with start_dcmprscp(tmp_path / "prs", Supports12Bit="false") as server:
        pictures = images(3)
        result = print_films(printer_node(server), lay_out(pictures, [], (2, 2)), FilmSettings())
        assert (result.films, result.bits) == (1, 8)
        assert any("refused 12-bit images" in w for w in result.warnings)
        got = hardcopy_images(server)
        assert [g.BitsStored for g in got] == [8, 8, 8]
        for sent, back in zip(pictures, got, strict=True):
            np.testing.assert_array_equal(back.pixel_array, sent.grey8)
        with pytest.raises(PrintError, match=r"refused the image at 12 bits .*--bits 8"):
            print_films(printer_node(server), lay_out(pictures, [], None), FilmSettings(bits=12))
        assert len(stored_prints(server)) == 1  # the refused job printed nothing


def test_two_copies_one_stored_print_per_film(dcmprscp_printer: Dcmprscp) -> None:
    result = print_films(
        printer_node(dcmprscp_printer),
        lay_out(images(2, (8, 8)), [], (1, 1)),
        FilmSettings(copies=2),
    )
    assert (result.films, result.copies, result.session["NumberOfCopies"]) == (2, 2, 2)
    assert len(stored_prints(dcmprscp_printer)) == 2


def test_a_retried_association_prints_each_film_once(dcmprscp_printer: Dcmprscp) -> None:
    pictures = images(6, (20, 30))
    lines: list[str] = []
    # The first association is cut before its 4th N-SET: film 1 printed, film 2 half sent.
    with DroppingProxy(dcmprscp_printer.port, before_set=4) as proxy:
        result = print_films(
            printer_node(dcmprscp_printer, proxy.port),
            lay_out(pictures, [], (1, 2)),
            FilmSettings(bits=8),
            progress=lines.append,
        )
        assert proxy.dropped == ["before N-SET 4"] and proxy.connections == 2
    assert (result.films, result.associations) == (3, 2)
    assert any("trying again (1 of 2)" in line for line in lines)
    assert result.warnings == [
        "the connection dropped during film 2; retried on a new association (film 2 had not "
        "been sent to print)"
    ]
    assert len(stored_prints(dcmprscp_printer)) == 3  # one per film: none twice
    back = referenced_pixels(dcmprscp_printer)
    assert len(back) == 6
    for sent, got in zip(pictures, back, strict=True):
        np.testing.assert_array_equal(got, sent.grey8)


def test_a_drop_after_n_action_is_not_retried(dcmprscp_printer: Dcmprscp) -> None:
    with DroppingProxy(dcmprscp_printer.port, after_action=True) as proxy:
        with pytest.raises(PrintError) as dropped:
            print_films(
                printer_node(dcmprscp_printer, proxy.port),
                lay_out(images(2, (8, 8)), [], (1, 1)),
                FilmSettings(),
            )
        assert proxy.connections == 1  # no second association
    text = str(dropped.value)
    assert "may have printed film 1" in text and "film 2 not sent" in text
    assert "nothing prints twice" in text
    assert len(stored_prints(dcmprscp_printer)) == 1


def test_retries_run_out(dcmprscp_printer: Dcmprscp) -> None:
    dropped = r"dropped the association during film 1 of 1 \(image box 2\) \(1 association"
    with (
        DroppingProxy(dcmprscp_printer.port, before_set=2) as proxy,
        pytest.raises(PrintError, match=dropped),
    ):
        print_films(
            printer_node(dcmprscp_printer, proxy.port),
            lay_out(images(2, (8, 8)), [], (1, 2)),
            FilmSettings(),
            retries=0,
        )
    assert stored_prints(dcmprscp_printer) == []


def test_cancel_stops_between_films(dcmprscp_printer: Dcmprscp) -> None:
    cancel = threading.Event()

    def progress(line: str) -> None:
        if line == "film 1 of 3 printed":
            cancel.set()

    result = print_films(
        printer_node(dcmprscp_printer),
        lay_out(images(3, (8, 8)), [], (1, 1)),
        FilmSettings(),
        progress=progress,
        cancel=cancel,
    )
    assert result.cancelled and result.films == 1
    assert "stopped: film 1 of 3 printed; films 2 to 3 not printed" in result.warnings
    assert len(stored_prints(dcmprscp_printer)) == 1


def test_printer_status_and_no_annotation_boxes(dcmprscp_printer: Dcmprscp) -> None:
    state = printer_status(printer_node(dcmprscp_printer))
    assert (state.status, state.info, state.words) == ("NORMAL", "NORMAL", "is ready")
    result = print_films(
        printer_node(dcmprscp_printer),
        lay_out(images(1, (8, 8)), [PATIENT], None),
        FilmSettings(annotation_format="ANNOTATION"),
    )
    assert result.annotation_boxes == 0
    assert result.warnings == [
        "the printer has no annotation boxes: the patient and study text was not printed"
    ]


def test_node_test_on_a_printer(dcmprscp_printer: Dcmprscp) -> None:
    node = printer_node(dcmprscp_printer)
    steps = list(diagnose(node))
    assert [s.key for s in steps] == [key for key, _ in steps_of(node)]
    assert [s.key for s in steps] == ["connect", "associate", "echo", "printer"]
    assert steps[-1].verdict == OK and "NORMAL" in steps[-1].summary
    assert "Basic Annotation Box" in " ".join(steps[1].details)


# -- against the scripted print peer -------------------------------------------------------------


def test_annotation_boxes_get_the_text(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    lines: list[str] = []
    with print_peer(annotation_boxes=2) as peer:
        result = print_films(
            printer_node(peer),
            lay_out(images(2, (8, 8)), [PATIENT, "20240101 CT HEAD", "series 3"], (1, 2)),
            FilmSettings(annotation_format="LABEL"),
            progress=lines.append,
        )
        creates = peer.of("N-CREATE", FILM_BOX)
        notes = peer.of("N-SET", ANNOTATION_BOX)
    assert creates[0] is not None and creates[0].AnnotationDisplayFormatID == "LABEL"
    assert [(n.AnnotationPosition, n.TextString) for n in notes if n is not None] == [
        (1, PATIENT), (2, "20240101 CT HEAD"),
    ]  # fmt: skip
    assert result.annotation_boxes == 2
    assert any("1 line of text left out" in w for w in result.warnings)
    # No patient data in progress lines nor in logs at INFO or above.
    assert not any("DOE" in line or "4711" in line for line in lines)
    assert "DOE" not in caplog.text and "4711" not in caplog.text


def test_no_annotation_format_asks_for_no_boxes() -> None:
    with print_peer() as peer:
        result = print_films(
            printer_node(peer), lay_out(images(1, (8, 8)), [PATIENT], None), FilmSettings()
        )
        creates = peer.of("N-CREATE", FILM_BOX)
    assert creates[0] is not None and "AnnotationDisplayFormatID" not in creates[0]
    assert result.annotation_boxes == 0
    assert any("AnnotationDisplayFormatID" in w for w in result.warnings)


def test_printer_events_come_as_they_happen() -> None:
    events: list[PrinterEvent] = []
    with print_peer(event=(2, "SUPPLY LOW")) as peer:
        result = print_films(
            printer_node(peer),
            lay_out(images(2, (8, 8)), [], (1, 1)),
            FilmSettings(),
            on_event=events.append,
        )
    expected = ("printer", "WARNING", "SUPPLY LOW")
    assert [(e.source, e.event, e.info) for e in events] == [expected, expected]
    assert events[0].words == "the printer is low on film (SUPPLY LOW)"
    assert result.events == events and result.films == 2
    assert "the printer is low on film (SUPPLY LOW)" in result.warnings


def test_a_printer_out_of_film_gets_no_job() -> None:
    with print_peer(status="FAILURE", info="SUPPLY EMPTY") as peer:
        node = printer_node(peer)
        state = printer_status(node)
        assert state.words == "is out of film (SUPPLY EMPTY)"
        out = r"film is out of film \(PrinterStatusInfo SUPPLY EMPTY\): nothing was sent"
        with pytest.raises(PrintError, match=out):
            print_films(node, lay_out(images(1, (8, 8)), [], None), FilmSettings())
        assert peer.of("N-CREATE", FILM_SESSION) == []
        steps = list(diagnose(node))
        assert steps[-1].verdict == FAILED and "out of film" in steps[-1].summary


def test_a_refusal_naming_nothing_is_probed_attribute_by_attribute() -> None:
    with print_peer(refuse="FilmOrientation") as peer:
        with pytest.raises(PrintError, match=r"refused FilmOrientation LANDSCAPE \(0x0106"):
            print_films(
                printer_node(peer),
                lay_out(images(1, (8, 8)), [], None),
                FilmSettings(film_size="8INX10IN", orientation="LANDSCAPE", magnification="CUBIC"),
            )
        # every probe box the printer took was deleted again; no image was sent
        created = [ds for ds in peer.of("N-CREATE", FILM_BOX)]
        assert len(created) >= 3
        assert len(peer.of("N-DELETE", FILM_BOX)) == len(created) - 2  # all but two refused
        assert peer.of("N-SET", IMAGE_BOX) == []


# -- over TLS, as other nodes --------------------------------------------------------------------


def tls_node(peer: PrintPeer, files: TlsFiles, *, cert: bool = True) -> Node:
    node = printer_node(peer)
    keys = {"tls_cert": str(files.client_cert), "tls_key": str(files.client_key)} if cert else {}
    return replace(node, tls_ca=str(files.ca), **keys)


def test_printing_over_mutual_tls(tls_files: TlsFiles) -> None:
    """A printer node with tls_ca, tls_cert and tls_key prints over TLS to a printer that asks
    for our certificate; without our certificate it refuses us, in one line."""
    with print_peer(tls=tls_files, job_events=[(3, "NORMAL")]) as peer:
        node = tls_node(peer, tls_files)
        assert node.tls
        assert printer_status(node).status == "NORMAL"
        pictures = images(2, (8, 8))
        result = print_films(node, lay_out(pictures, [], (1, 2)), FilmSettings(bits=8))
        assert (result.films, result.associations, result.warnings) == (1, 1, [])
        assert peer.callers == [PACSTUI, PACSTUI]  # our client certificate, each association
        sent = [ds for ds in peer.of("N-SET", IMAGE_BOX) if ds is not None]
        got = [ds.BasicGrayscaleImageSequence[0].PixelData for ds in sent]
        assert got == [p.grey8.tobytes() for p in pictures]  # the pixels, through TLS
        assert [e.event for e in result.events] == ["DONE"]  # events come over TLS too
        with pytest.raises(UserError) as refused:
            print_films(
                tls_node(peer, tls_files, cert=False),
                lay_out(pictures, [], None),
                FilmSettings(),
            )
        said = str(refused.value)
        assert "\n" not in said and said.startswith(f"film ({peer.aet}@127.0.0.1:{peer.port})")
        assert "TLS settings differ from the node's" in said
        assert len(peer.of("N-ACTION", FILM_BOX)) == 1  # nothing more printed


def test_a_tls_printer_node_on_a_plain_port_fails_in_one_line(tls_files: TlsFiles) -> None:
    with print_peer() as peer:  # no TLS
        node = tls_node(peer, tls_files)
        with pytest.raises(UserError, match="the TLS handshake failed") as failed:
            print_films(node, lay_out(images(1, (8, 8)), [], None), FilmSettings())
        assert "\n" not in str(failed.value)
        run_cli("node", "add", "film", peer.aet, "127.0.0.1", str(peer.port), "--printer",
                "--tls-ca", str(tls_files.ca), "--tls-cert", str(tls_files.client_cert),
                "--tls-key", str(tls_files.client_key))  # fmt: skip
        for command in (["print", "film", "--status"], ["print", "film", "--status", "--json"]):
            _one_line_error(run_cli(*command, check=False), "TLS handshake failed")
        assert peer.received == []  # nothing reached the printer as DICOM


# -- print job events ----------------------------------------------------------------------------

JOB_DONE = [(1, "QUEUED"), (2, "NORMAL"), (3, "NORMAL")]  # PENDING, PRINTING, DONE


def test_print_job_events_come_in_words_naming_their_film() -> None:
    events: list[PrinterEvent] = []
    with print_peer(job_events=JOB_DONE) as peer:
        result = print_films(
            printer_node(peer),
            lay_out(images(2, (8, 8)), [], (1, 1)),
            FilmSettings(),
            on_event=events.append,
        )
        assert peer.unsent == []  # the printer had a Print Job context to send them on
    assert [(e.source, e.event, e.info) for e in events] == [
        ("print job", "PENDING", "QUEUED"), ("print job", "PRINTING", "NORMAL"),
        ("print job", "DONE", "NORMAL"),
    ] * 2  # fmt: skip
    assert [e.words for e in events[:3]] == [
        "film 1 of 2: the print job is pending: the printer has the job in its queue (QUEUED)",
        "film 1 of 2: the print job is printing",
        "film 1 of 2: the print job is done",
    ]
    assert events[5].words == "film 2 of 2: the print job is done"
    assert result.events == events
    assert (result.films, result.warnings) == (2, [])
    assert result_json(result)["events"][2]["words"] == "film 1 of 2: the print job is done"


def test_a_failed_print_job_is_a_film_not_printed() -> None:
    """The printer took film 2 (its N-ACTION answered success), then its print job failed:
    film 2 is not counted as printed, and the warning says why in words."""
    events: list[PrinterEvent] = []
    failed = [(1, "QUEUED"), (4, "SUPPLY EMPTY")]
    with print_peer(job_events=JOB_DONE, job_events_of={2: failed}) as peer:
        result = print_films(
            printer_node(peer),
            lay_out(images(3, (8, 8)), [], (1, 1)),
            FilmSettings(),
            on_event=events.append,
        )
        assert len(peer.of("N-ACTION", FILM_BOX)) == 3  # the printer's own queue goes on
    failure = events[4]
    assert (failure.source, failure.event, failure.info) == ("print job", "FAILURE", "SUPPLY EMPTY")
    assert failure.words == (
        "film 2 of 3: the print job failed: the printer is out of film (SUPPLY EMPTY)"
    )
    assert (result.films, result.total) == (2, 3)
    assert result.warnings == [
        "film 2 of 3 did not print: the print job failed: the printer is out of film (SUPPLY EMPTY)"
    ]
    assert result_json(result)["films"] == 2


def test_a_printer_without_print_jobs_still_prints() -> None:
    with print_peer(offer_print_job=False) as peer:
        result = print_films(
            printer_node(peer), lay_out(images(1, (8, 8)), [], None), FilmSettings()
        )
    assert (result.films, result.events, result.warnings) == (1, [], [])


# -- what a new user meets: a hung printer, the wrong node, a job stopped part way -------------


def _new_threads(before: set[threading.Thread], within: float = 5.0) -> list[str]:
    """Non-daemon threads started since ``before`` and still running after ``within`` s: they
    would hold the process at exit (threading._shutdown joins them)."""
    deadline = time.monotonic() + within
    while True:
        left = [t for t in threading.enumerate() if t not in before and not t.daemon]
        if not left or time.monotonic() > deadline:
            return [t.name for t in left if t.is_alive()]
        time.sleep(0.05)


def _cancel_after(seconds: float) -> threading.Event:
    cancel = threading.Event()
    timer = threading.Timer(seconds, cancel.set)
    timer.daemon = True
    timer.start()
    return cancel


def test_cancel_while_the_printer_does_not_answer_before_the_association() -> None:
    before = set(threading.enumerate())
    with silent_peer() as port:
        node = replace(Node(name="film", aet="MUTE", host="127.0.0.1", port=port,
                            printer=True), acse_timeout=30, dimse_timeout=30)  # fmt: skip
        started = time.monotonic()
        result = print_films(
            node, lay_out(images(2, (8, 8)), [], (1, 1)), FilmSettings(),
            cancel=_cancel_after(0.5),
        )  # fmt: skip
        assert time.monotonic() - started < 5  # not the 30 s of the ACSE timeout
        assert result.cancelled and result.films == 0
        assert result.warnings == ["stopped: no film was printed; films 1 to 2 not printed"]
        started = time.monotonic()
        with pytest.raises(PrintError, match="stopped before the printer gave its status"):
            printer_status(node, cancel=_cancel_after(0.5))
        assert time.monotonic() - started < 5
    assert _new_threads(before) == []


def test_cancel_while_the_printer_does_not_answer_an_n_set() -> None:
    before = set(threading.enumerate())
    with print_peer(hold_set=True) as peer:
        node = replace(printer_node(peer), dimse_timeout=30, network_timeout=30)
        cancel = threading.Event()

        def progress(line: str) -> None:
            if "film box" in line:  # its first image box's N-SET is next, and never answered
                threading.Timer(0.3, cancel.set).start()

        started = time.monotonic()
        result = print_films(
            node, lay_out(images(3, (8, 8)), [], (1, 1)), FilmSettings(), progress=progress,
            cancel=cancel,
        )  # fmt: skip
        assert time.monotonic() - started < 5
        assert len(peer.of("N-SET", IMAGE_BOX)) == 1 and peer.of("N-ACTION", FILM_BOX) == []
    assert result.cancelled and (result.films, result.associations) == (0, 1)
    assert result.warnings == ["stopped: no film was printed; films 1 to 3 not printed"]
    assert _new_threads(before) == []


def test_a_storage_scp_saved_as_a_printer_is_told_as_node_test_tells_it(tmp_path: Path) -> None:
    """dcmtk's storescp takes the association but none of the print classes (pynetdicom then
    aborts it): that is said as node test says it, not as an AE title or TLS problem."""
    from tui.net.printing.words import NO_GRAYSCALE_PRINT, NO_GRAYSCALE_PRINT_FIX

    with start_storescp(tmp_path / "storescp", port=free_port(), aet="STORE") as server:
        node = Node(name="film", aet="STORE", host="127.0.0.1", port=server.port, printer=True)
        said = f"{NO_GRAYSCALE_PRINT}: {NO_GRAYSCALE_PRINT_FIX}"
        with pytest.raises(PrintError) as refused:
            print_films(node, lay_out(images(1, (8, 8)), [], None), FilmSettings())
        assert str(refused.value) == f"film (STORE@127.0.0.1:{server.port}) {said}"
        assert "print port" in said and "AE title" in said
        with pytest.raises(PrintError, match="refuses Basic Grayscale Print Management"):
            printer_status(node)
        associate = next(step for step in diagnose(node) if step.key == "associate")
        assert associate.verdict == FAILED and NO_GRAYSCALE_PRINT in associate.summary
        assert associate.fix == NO_GRAYSCALE_PRINT_FIX


def test_a_job_stopped_part_way_carries_its_result_and_resumes(
    dcmprscp_printer: Dcmprscp,
) -> None:
    pictures = images(3, (8, 8))
    films = lay_out(pictures, [], (1, 1))
    # Cut before the 2nd N-SET: film 1 printed, film 2's image never reached the printer.
    with (
        DroppingProxy(dcmprscp_printer.port, before_set=2) as proxy,
        pytest.raises(PrintError) as dropped,
    ):
        print_films(printer_node(dcmprscp_printer, proxy.port), films, FilmSettings(), retries=0)
    text = str(dropped.value)
    assert "film 1 of 3 printed; films 2 to 3 not printed (print them with --from-film 2)" in text
    partial = dropped.value.result
    assert partial is not None and (partial.films, partial.total) == (1, 3)
    assert result_json(partial)["films"] == 1
    # Resume at film 2: films before it are not sent, the words keep the job's numbers.
    lines: list[str] = []
    result = print_films(
        printer_node(dcmprscp_printer), films, FilmSettings(), start=1, progress=lines.append
    )
    assert (result.films, result.total, result.start) == (2, 3, 1)
    assert result_json(result)["from_film"] == 2
    assert "film 2 of 3 printed" in lines and "film 3 of 3 printed" in lines
    assert not any("film 1 of 3" in line for line in lines)
    assert len(referenced_pixels(dcmprscp_printer)) == 3  # each film once
    for sent, got in zip(pictures, referenced_pixels(dcmprscp_printer), strict=True):
        np.testing.assert_array_equal(got, sent.grey12 if sent.grey12 is not None else sent.grey8)
    with pytest.raises(PrintError, match="no film 4 to start from: the job has 3 films"):
        print_films(printer_node(dcmprscp_printer), films, FilmSettings(), start=3)


def test_a_drop_after_n_action_says_how_to_resume(dcmprscp_printer: Dcmprscp) -> None:
    films = lay_out(images(4, (8, 8)), [], (1, 1))
    with (
        DroppingProxy(dcmprscp_printer.port, after_action=True) as proxy,
        pytest.raises(PrintError) as dropped,
    ):
        print_films(printer_node(dcmprscp_printer, proxy.port), films, FilmSettings(), start=1)
    text = str(dropped.value)
    assert "after film 2 of 4 was sent to print" in text and "may have printed film 2" in text
    assert "films 3 to 4 not sent (print them with --from-film 3)" in text
    assert "printed before it" not in text  # film 1 was not part of this run
    assert dropped.value.result is None


def test_printer_errors_name_the_printer_not_a_pacs() -> None:
    closed = Node(name="film", aet="P", host="127.0.0.1", port=free_port(), printer=True)
    with pytest.raises(NetError, match="connection refused: is the printer running"):
        print_films(closed, lay_out(images(1, (8, 8)), [], None), FilmSettings())
    with pytest.raises(NetError, match="connection refused: is the printer running"):
        printer_status(closed)
    with silent_peer() as port:
        mute = replace(closed, port=port, acse_timeout=1)
        with pytest.raises(NetError) as slow:
            printer_status(mute)
    said = str(slow.value)
    assert "if the printer is just slow" in said and "PACS" not in said
    assert "narrow the query" not in said


def test_no_annotation_warning_when_no_text_was_asked_for(dcmprscp_printer: Dcmprscp) -> None:
    result = print_films(
        printer_node(dcmprscp_printer),
        lay_out(images(1, (8, 8)), [PATIENT], None),
        FilmSettings(),  # no annotation_format: no text was asked for
    )
    assert (result.films, result.annotation_boxes, result.warnings) == (1, 0, [])


def test_a_refusal_after_films_printed_says_what_printed_and_carries_the_result() -> None:
    films = lay_out(images(3, (8, 8)), [], (1, 1))
    with print_peer(action_status_of={2: 0xC602}) as peer:  # film 2: the queue is full
        with pytest.raises(PrintError) as refused:
            print_films(printer_node(peer), films, FilmSettings())
        assert len(peer.of("N-ACTION", FILM_BOX)) == 2
    assert str(refused.value).endswith(
        "; film 1 of 3 printed; films 2 to 3 not printed (print them with --from-film 2)"
    )
    assert "refused to print film 2 of 3 (0xC602" in str(refused.value)
    assert refused.value.result is not None and refused.value.result.films == 1
    # A refusal of another step after film 1 printed says it too.
    with (
        print_peer(film_box_status=0xC616, film_box_status_from=2) as peer,
        pytest.raises(PrintError) as refused,
    ):
        print_films(printer_node(peer), films, FilmSettings())
    said = str(refused.value)
    assert said.endswith("; film 1 of 3 printed; films 2 to 3 not printed (print them with "
                         "--from-film 2)")  # fmt: skip
    assert refused.value.result is not None and refused.value.result.films == 1
