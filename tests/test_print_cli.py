"""``pacs-tui print`` against dcmtk's print server emulator dcmprscp, read back from its
database: the Hardcopy Grayscale Images it stored are our rendering of the same view; film
box and session attributes are the node's defaults and the options'; the errors a user can
cause are one line. And below it: printer nodes, the 12-bit window, the images chosen."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_cli
from tests.servers import DCMPRSCP_PRINTER, hardcopy_images, start_dcmprscp, stored_prints
from tests.synthetic import AXIAL, write_series
from tests.test_cli import _one_line_error
from tui.archive.importer import import_paths
from tui.archive.index import Archive
from tui.archive.query import series_instances
from tui.render.lut import Window, apply_window, values_to_display
from tui.render.pipeline import Request, render
from tui.render.print_images import annotation_lines, aspect_ratio, print_images
from tui.render.volume import VolumeCache, assemble, slices_of

XA30 = "neurolabusc_dcm_qa_xa30i/MR_Siemens_PrismaFit_XA30_5001_anat-T1w_acq-tfl"  # 96 sagittal
RGB = "pydicom-data/color_palette_ultrasound/SC_rgb.dcm"


def _stack(archive: Archive, path: Path):
    import_paths(archive, [path])
    uid = archive.conn.execute("SELECT series_uid FROM series").fetchone()[0]
    return max(assemble(slices_of(series_instances(archive, uid))), key=lambda s: len(s.slices))


# -- the 12-bit window ---------------------------------------------------------------------------


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_twelve_bits_are_the_eight_bit_window_finer(
    archive: Archive, shared: Path, function: str
) -> None:
    from pydicom.dataset import Dataset

    stack = _stack(archive, shared / XA30)
    values = render(stack, Request(), {}).view.values
    window = Window(float(np.median(values)), float(np.ptp(values)) / 2, function)
    eight = apply_window(values, window)
    twelve = apply_window(values, window, 12)
    assert eight.dtype == np.uint8 and twelve.dtype == np.uint16
    assert twelve.max() <= 4095 and twelve.max() > 255  # a range of its own, not 8 bits shifted
    scaled = np.rint(twelve.astype(float) * 255 / 4095)
    assert np.abs(scaled - eight).max() <= 1
    assert len(np.unique(twelve)) > len(np.unique(eight))  # finer steps
    # MONOCHROME1 and invert turn 12 bits about 4095, as 8 bits about 255
    mono1 = Dataset()
    mono1.PhotometricInterpretation = "MONOCHROME1"
    assert np.array_equal(values_to_display(values, mono1, window, bits=12), 4095 - twelve)
    assert np.array_equal(values_to_display(values, mono1, window, invert=True, bits=12), twelve)
    assert np.array_equal(values_to_display(values, mono1, window), 255 - eight)


# -- the images a print is made of ---------------------------------------------------------------


def test_print_images_are_the_sheet_every_nth_or_one_view(archive: Archive, shared: Path) -> None:
    stack = _stack(archive, shared / XA30)
    cache = VolumeCache()
    first, sheet = print_images(stack, Request(), {}, cache)
    assert len(sheet) == 48  # the contact sheet's rule: 96 slices, at most 60 a sheet, every 2nd
    first, every5 = print_images(stack, Request(), {}, cache, every=5)
    assert len(every5) == 20  # slices 1, 6, ... 96
    for number, (grey8, grey12, aspect) in enumerate(every5):
        # the pipeline's own image of that slice, in the middle slice's window
        view = render(stack, Request(index=number * 5, window=first.window), {}, cache)
        assert np.array_equal(grey8, view.image)
        assert grey12 is not None and grey12.dtype == np.uint16
        assert np.abs(np.rint(grey12.astype(float) * 255 / 4095) - grey8).max() <= 1
        assert aspect == (1, 1)
    one, [(grey8, grey12, _)] = print_images(stack, Request(index=40), {}, cache, bits=8)
    assert np.array_equal(grey8, render(stack, Request(index=40), {}, cache).image)
    assert grey12 is None  # 8 bits asked
    lines = annotation_lines(one, no_phi=False)
    assert lines[0] == f"{one.header.PatientName} {one.header.PatientID}"
    assert any("anat-T1w" in line for line in lines)
    no_phi = annotation_lines(one, no_phi=True)
    assert no_phi == lines[1:]
    assert not any(str(one.header.PatientName) in line for line in no_phi)


def test_a_projection_through_the_whole_volume_is_one_image(tmp_path: Path) -> None:
    """Without a slab every plane of a MIP is the same picture: one image, not one a plane;
    with a slab, the slabs plane by plane as a sheet."""
    uid = write_series(tmp_path / "files", AXIAL, size=32, count=40)
    with Archive(tmp_path / "archive") as archive:
        import_paths(archive, [tmp_path / "files"])
        stack = assemble(slices_of(series_instances(archive, uid)))[0]
        cache = VolumeCache()
        for mode in ("mip", "minip", "avg"):
            _, images = print_images(stack, Request(mode=mode), {}, cache)
            assert len(images) == 1, mode
            whole = render(stack, Request(mode=mode), {}, cache)
            assert np.array_equal(images[0][0], whole.image)
        _, slabs = print_images(stack, Request(mode="mip", slab=10.0), {}, cache)
    assert len(slabs) == 40  # a sheet of slabs, as before


def test_print_images_of_a_reslice_keep_its_pixel_aspect(tmp_path: Path) -> None:
    """A coronal reslice of 3 mm slices at 1 mm pixels: sent as it is, 3:1 (a printer is
    told the aspect ratio, the pixels are not resampled)."""
    uid = write_series(tmp_path / "files", AXIAL, size=48, count=20, spacing=1.0, step=3.0)
    with Archive(tmp_path / "archive") as archive:
        import_paths(archive, [tmp_path / "files"])
        stack = assemble(slices_of(series_instances(archive, uid)))[0]
        first, images = print_images(stack, Request(plane="coronal", index=24), {}, VolumeCache())
    grey8, grey12, aspect = images[0]
    assert grey8.shape == first.image.shape and grey12 is not None
    row, column = first.view.pixel_spacing
    assert aspect == aspect_ratio(first)
    assert aspect[0] / aspect[1] == pytest.approx(row / column, rel=0.01)


def test_print_images_of_colour_and_volume_renderings_are_grey8_only(
    tmp_path: Path, shared: Path
) -> None:
    with Archive(tmp_path / "archive") as archive:
        stack = _stack(archive, shared / RGB)
        rendered, [(grey8, grey12, aspect)] = print_images(stack, Request(), {}, VolumeCache())
    assert rendered.image.ndim == 3 and grey12 is None and aspect == (1, 1)
    luma = rendered.image.astype(float) @ [0.299, 0.587, 0.114]
    assert np.abs(grey8 - luma).max() <= 0.5 + 1e-3
    uid = write_series(tmp_path / "ct", AXIAL, size=48, count=24)
    with Archive(tmp_path / "archive2") as archive:
        import_paths(archive, [tmp_path / "ct"])
        stack = assemble(slices_of(series_instances(archive, uid)))[0]
        rendered, images = print_images(stack, Request(mode="smip"), {}, VolumeCache())
    assert len(images) == 1 and images[0][1] is None
    assert max(images[0][0].shape) == 768  # rendered for paper, not a pane's few pixels


# -- printer nodes --------------------------------------------------------------------------------


def test_printer_nodes_keep_their_defaults_and_are_refused_where_they_cannot_serve(
    tmp_path: Path,
) -> None:
    run_cli(
        "node", "add", "film", "PRINTSCP", "127.0.0.1", "10005", "--printer",
        "--film-size", "14inx17in", "--medium", "blue film", "--copies", "2",
        "--print-bits", "8",
    )  # fmt: skip
    [film] = json.loads(run_cli("node", "ls", "--json").stdout)
    assert film["kind"] == "printer" and film["printer"] is True
    assert (film["film_size"], film["medium"], film["copies"], film["print_bits"]) == (
        "14INX17IN", "BLUE FILM", 2, 8,
    )  # fmt: skip
    listing = run_cli("node", "ls").stdout
    assert "printer" in listing and "film_size 14INX17IN" in listing
    for command in (["find", "film"], ["get", "film", "--study", "1.2.3"],
                    ["send", "film", "1.2.3"], ["worklist", "film"]):  # fmt: skip
        refused = run_cli(*command, check=False)
        _one_line_error(refused, "film is a printer")
    # print settings on a node that is no printer: refused, as a DICOMweb node's would be
    _one_line_error(
        run_cli("node", "add", "pacs", "ORTHANC", "127.0.0.1", "4242", "--copies", "2",
                check=False),
        "a printer's settings",
    )  # fmt: skip
    _one_line_error(
        run_cli("node", "add", "web", "--dicomweb", "http://127.0.0.1/dicom-web", "--printer",
                check=False),
        "a printer is a DIMSE node",
    )  # fmt: skip
    _one_line_error(
        run_cli("node", "edit", "film", "--min-density", "300", "--max-density", "200",
                check=False),
        "min_density must be below max_density",
    )  # fmt: skip
    edited = run_cli("node", "edit", "film", "--no-printer").stdout
    assert "dropped its print settings" in edited
    [plain] = json.loads(run_cli("node", "ls", "--json").stdout)
    assert plain["kind"] == "DIMSE" and plain["copies"] == 1 and plain["film_size"] == ""
    # the hint: a node of its own (making the PACS a printer would end its find, get, send)
    refused = run_cli("print", "film", "1.2.3", check=False)
    _one_line_error(
        refused, "film is no printer: add the printer as its own node: "
        "pacs-tui node add NAME AET HOST PORT --printer",
    )  # fmt: skip
    assert "node edit" not in refused.stderr


# -- printing on dcmprscp -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """An archive holding one synthetic CT series of 30 slices."""
    root = tmp_path_factory.mktemp("print")
    uid = write_series(root / "files", AXIAL, size=64, count=30)
    run_cli("import", str(root / "files"), archive=root / "archive")
    return root / "archive", uid


def _printer_node(server, *options: str) -> None:
    run_cli("node", "add", "film", server.aet, server.host, str(server.port), "--printer",
            *options)  # fmt: skip


def _views(archive_dir: Path, uid: str, requests: list[Request]) -> list:
    with Archive(archive_dir) as archive:
        stack = assemble(slices_of(series_instances(archive, uid)))[0]
        return [render(stack, request, {}, VolumeCache()) for request in requests]


def test_a_sheet_of_every_5th_slice_prints_one_film_of_six_as_rendered(
    series, tmp_path: Path
) -> None:
    archive, uid = series
    formats = DCMPRSCP_PRINTER["DisplayFormat"] + "\\3,2"  # 3 columns, 2 rows
    with start_dcmprscp(tmp_path / "prs", DisplayFormat=formats) as printer:
        _printer_node(printer)
        done = run_cli(
            "print", "film", uid, "--every", "5", "--layout", "3,2", "--json", archive=archive
        )
        _check_sheet(printer, archive, uid, json.loads(done.stdout))


def _check_sheet(dcmprscp_printer, archive: Path, uid: str, answer: dict) -> None:
    assert answer["films"] == 1 and answer["bits"] == 12
    [stored] = stored_prints(dcmprscp_printer)
    [box] = stored.FilmBoxContentSequence
    assert box.ImageDisplayFormat == "STANDARD\\3,2"
    images = hardcopy_images(dcmprscp_printer)
    assert len(images) == 6
    # our rendering of the same views: slices 1, 6, ... 26 in the middle slice's window
    middle = _views(archive, uid, [Request(index=15)])[0]
    views = _views(archive, uid, [Request(index=k, window=middle.window) for k in range(0, 30, 5)])
    for image, view in zip(images, views, strict=True):
        assert (image.BitsStored, image.PhotometricInterpretation) == (12, "MONOCHROME2")
        sent = image.pixel_array.astype(int)
        ours = values_to_display(view.view.values, view.header, view.window, bits=12).astype(int)
        assert sent.shape == ours.shape
        assert np.abs(sent - ours).max() <= 1  # 12 bits compared at 12 bits
        assert np.abs(np.rint(sent * 255 / 4095) - view.image).max() <= 1  # and the 8-bit view


def test_one_view_at_8_bits_with_the_node_defaults_and_the_options_over_them(
    series, dcmprscp_printer, tmp_path: Path
) -> None:
    archive, uid = series
    _printer_node(
        dcmprscp_printer, "--film-size", "8INX10IN", "--medium", "BLUE FILM",
        "--magnification", "CUBIC", "--film-destination", "PROCESSOR",
    )  # fmt: skip
    done = run_cli(
        "print", "film", uid, "--index", "12", "--window", "40,400", "--bits", "8",
        "--film-size", "14INX17IN", "--orientation", "landscape", "--max-density", "300",
        "--min-density", "30", "--json", archive=archive,
    )  # fmt: skip
    answer = json.loads(done.stdout)
    assert answer["films"] == 1 and answer["bits"] == 8
    [image] = hardcopy_images(dcmprscp_printer)
    assert image.BitsStored == 8
    # the same view as pacs-tui render draws it
    png = tmp_path / "view.png"
    run_cli("render", uid, "--index", "12", "--window", "40,400", "-o", str(png), archive=archive)
    with Image.open(png) as picture:
        rendered = np.asarray(picture.convert("L")).astype(int)
    assert np.abs(image.pixel_array.astype(int) - rendered).max() <= 1
    [stored] = stored_prints(dcmprscp_printer)
    [box] = stored.FilmBoxContentSequence
    assert box.ImageDisplayFormat == "STANDARD\\1,1"
    assert box.FilmSizeID == "14INX17IN"  # the option over the node's 8INX10IN
    assert box.FilmOrientation == "LANDSCAPE"
    assert box.MagnificationType == "CUBIC"  # the node's
    assert (int(box.MaxDensity), int(box.MinDensity)) == (300, 30)
    session = answer["session"]
    assert session["MediumType"] == "BLUE FILM" and session["FilmDestination"] == "PROCESSOR"


def test_two_copies_without_patient_text(series, dcmprscp_printer) -> None:
    archive, uid = series
    _printer_node(dcmprscp_printer)
    done = run_cli(
        "print", "film", uid, "--index", "3", "--copies", "2", "--no-phi", "--json",
        archive=archive,
    )  # fmt: skip
    answer = json.loads(done.stdout)
    assert answer["copies"] == 2 and int(answer["session"]["NumberOfCopies"]) == 2
    assert len(stored_prints(dcmprscp_printer)) == 1  # one job, two copies of it
    # nothing the printer keeps names the patient: not the session label, not the images
    for path in dcmprscp_printer.workdir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"Synthetic" not in data and b"SYN1" not in data, path
    assert "Synthetic" not in done.stdout + done.stderr and "SYN1" not in done.stdout
    assert answer["session"].get("FilmSessionLabel", "pacs-tui") == "pacs-tui"


def test_a_film_size_the_printer_forbids_is_one_line(series, tmp_path: Path) -> None:
    archive, uid = series
    with start_dcmprscp(tmp_path / "prs", FilmSizeID="8INX10IN\\14INX17IN") as server:
        _printer_node(server)
        refused = run_cli(
            "print", "film", uid, "--index", "3", "--film-size", "24CMX24CM", archive=archive,
            check=False,
        )  # fmt: skip
        _one_line_error(refused, "FilmSizeID")
        assert "24CMX24CM" in refused.stderr
        assert stored_prints(server) == [] and hardcopy_images(server) == []


def test_printer_status_as_json(dcmprscp_printer) -> None:
    _printer_node(dcmprscp_printer)
    answer = json.loads(run_cli("print", "film", "--status", "--json").stdout)
    assert answer["PrinterStatus"] == "NORMAL"
    assert answer["node"] == "film"
    said = run_cli("print", "film", "--status").stdout
    assert "NORMAL" in said


def test_what_a_user_gets_wrong_is_one_line(series, dcmprscp_printer) -> None:
    archive, uid = series
    _printer_node(dcmprscp_printer)
    cases = [
        (["print", "film"], "UID"),
        (["print", "film", uid, "--status"], "--status"),
        (["print", "film", uid, "--index", "3", "--every", "2"], "--every"),
        (["print", "film", uid, "--copies", "0"], "--copies"),
        (["print", "film", uid, "--index", "3", "--copies", "150"], "--copies"),
        (["print", "film", uid, "--index", "3", "--max-density", "99999"], "--max-density"),
        (["print", "film", uid, "--index", "3", "--min-density", "70000"], "--min-density"),
        (["print", "film", uid, "--mode", "mip", "--every", "2"], "projection without --slab"),
        (["print", "film", uid, "--index", "3", "--from-film", "0"], "--from-film"),
        (["print", "film", uid, "--index", "3", "--from-film", "2"], "this job is 1 film"),
        (["print", "film", "1.2.3.4"], ""),  # no such series
        (["print", "nobody", uid], "no node 'nobody'"),
    ]
    for command, fragment in cases:
        _one_line_error(run_cli(*command, archive=archive, check=False), fragment)
    bad_layout = run_cli("print", "film", uid, "--layout", "3;2", archive=archive, check=False)
    assert bad_layout.returncode == 2 and "COLUMNS,ROWS" in bad_layout.stderr
    assert stored_prints(dcmprscp_printer) == []


def test_a_projection_without_a_slab_prints_one_image(series, dcmprscp_printer) -> None:
    archive, uid = series
    _printer_node(dcmprscp_printer)
    done = run_cli("print", "film", uid, "--mode", "mip", "--bits", "8", archive=archive)
    assert done.stdout.startswith("printed 1 film of 1 image (1,1 a film)"), done.stdout
    [image] = hardcopy_images(dcmprscp_printer)
    [mip] = _views(archive, uid, [Request(mode="mip")])
    assert np.abs(image.pixel_array.astype(int) - mip.image.astype(int)).max() <= 1


def test_from_film_k_prints_films_k_to_the_last(series, dcmprscp_printer) -> None:
    """Every 5th of 30 slices at 1,2: films of slices (1, 6), (11, 16), (21, 26); from film 2
    the last two only, numbered as in the whole job."""
    archive, uid = series
    _printer_node(dcmprscp_printer)
    job = ["print", "film", uid, "--every", "5", "--layout", "1,2", "--bits", "8"]
    done = run_cli(*job, "--from-film", "2", archive=archive)
    assert done.stdout.startswith("printed 2 films of 4 images (1,2 a film; films 2 to 3 of 3)"), (
        done.stdout
    )
    assert len(stored_prints(dcmprscp_printer)) == 2
    images = hardcopy_images(dcmprscp_printer)
    middle = _views(archive, uid, [Request(index=15)])[0]
    views = _views(archive, uid, [Request(index=k, window=middle.window) for k in (10, 15, 20, 25)])
    assert len(images) == 4
    for image, view in zip(images, views, strict=True):
        assert np.abs(image.pixel_array.astype(int) - view.image.astype(int)).max() <= 1
    beyond = run_cli(*job, "--from-film", "4", archive=archive, check=False)
    _one_line_error(beyond, "--from-film 4: this job is 3 films, so 3 at most")
    assert len(stored_prints(dcmprscp_printer)) == 2  # nothing more


def test_a_job_failing_after_a_film_with_json_says_what_printed_and_the_error(
    tmp_path: Path,
) -> None:
    """Series A (4 images, 2,2) prints; series B (2 images, 1,2) is refused by a printer of
    2,2 films only: --json still prints what was printed, with the error; the error is one
    line on stderr; exit 1."""
    first = write_series(tmp_path / "a", AXIAL, size=32, count=16)
    second = write_series(tmp_path / "b", AXIAL, size=32, count=8)
    archive = tmp_path / "archive"
    run_cli("import", str(tmp_path / "a"), str(tmp_path / "b"), archive=archive)
    with start_dcmprscp(tmp_path / "prs", DisplayFormat="2,2") as printer:
        _printer_node(printer)
        failed = run_cli(
            "print", "film", first, second, "--every", "4", "--json", archive=archive,
            check=False,
        )  # fmt: skip
        assert len(stored_prints(printer)) == 1
    _one_line_error(failed, "ImageDisplayFormat")
    assert failed.returncode == 1
    answer = json.loads(failed.stdout)
    assert "ImageDisplayFormat" in answer["error"]
    assert (answer["films"], answer["films_asked"]) == (1, 2)
    assert answer["film_boxes"][0]["ImageDisplayFormat"] == "STANDARD\\2,2"


def test_a_stopped_print_does_not_read_as_printed(series) -> None:
    """Ctrl-C while film 1 prints: films 2 and 3 are not sent, the summary says it stopped
    (not "printed"), exit 130."""
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT
    from tests.print_peer import print_peer

    archive, uid = series
    with print_peer(event=(1, "NORMAL"), event_pause=1.5) as peer:
        run_cli("node", "add", "film", peer.aet, "127.0.0.1", str(peer.port), "--printer")
        command = [sys.executable, "-m", "tui", "--archive", str(archive), "print", "film", uid,
                   "--every", "10", "--layout", "1,1"]  # fmt: skip
        with subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as process:
            deadline = time.monotonic() + 60
            while not peer.of("N-ACTION", "1.2.840.10008.5.1.1.2"):
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.05)
            process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=60)
        assert len(peer.of("N-ACTION", "1.2.840.10008.5.1.1.2")) == 1
    assert process.returncode == 130, stderr
    # film 1 printed, or (the cancel aborts a wait for the printer) maybe printed
    assert re.match(r"stopped: printed [01] of 3 films \(3 images, 1,1 a film\)", stdout), stdout
    assert not stdout.startswith("printed")


def _two_patients(root: Path) -> tuple[Path, str, str]:
    """An archive of two series of two patients (48 and 64 pixels square): (archive, first
    UID, second UID)."""
    from pydicom import dcmread

    small = write_series(root / "a", AXIAL, size=48, count=12)
    big = write_series(root / "b", AXIAL, size=64, count=12)
    for path in (root / "b").iterdir():
        ds = dcmread(path)
        ds.PatientName, ds.PatientID = "Other^Person", "OTH2"
        ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.2"
        ds.StudyDate, ds.SeriesNumber = "20250505", 7
        ds.save_as(path, enforce_file_format=True)
    archive = root / "archive"
    run_cli("import", str(root / "a"), str(root / "b"), archive=archive)
    return archive, small, big


def test_each_series_on_films_of_its_own_at_8_bits_where_the_printer_takes_no_12(
    tmp_path: Path,
) -> None:
    """Each UID starts a film: two patients never share one. Images in the order given; a
    printer without 12 bits is sent the 8-bit view, as rendered."""
    archive, small, big = _two_patients(tmp_path)
    with start_dcmprscp(tmp_path / "prs", Supports12Bit="false") as printer:
        _printer_node(printer)
        done = run_cli("print", "film", small, big, "--index", "4", "--json", archive=archive)
        answer = json.loads(done.stdout)
        assert answer["films"] == 2 and answer["bits"] == 8
        stored = stored_prints(printer)
        images = hardcopy_images(printer)
        said = run_cli("print", "film", small, big, "--index", "4", archive=archive).stdout
    assert len(stored) == 2
    for film in stored:  # one image box each, the smallest layout for one image
        assert film.FilmBoxContentSequence[0].ImageDisplayFormat == "STANDARD\\1,1"
        assert len(film.ImageBoxContentSequence) == 1
    assert [(i.Rows, i.BitsStored) for i in images] == [(48, 8), (64, 8)]
    assert said.startswith("printed 2 films of 2 images (1,1 a film)"), said
    for image, uid in zip(images, (small, big), strict=True):
        [view] = _views(archive, uid, [Request(index=3)])
        assert np.abs(image.pixel_array.astype(int) - view.image.astype(int)).max() <= 1


def test_a_sheet_of_each_series_fills_films_of_its_own(tmp_path: Path) -> None:
    """12 and 12 images at 3,3: series A on films 1 and 2, series B on films 3 and 4; none
    holds both (laid together they would be 3 films, the second of both patients)."""
    archive, small, big = _two_patients(tmp_path)
    with start_dcmprscp(tmp_path / "prs", Supports12Bit="false") as printer:
        _printer_node(printer)
        run_cli("print", "film", small, big, "--every", "1", "--layout", "3,3", archive=archive)
        stored = stored_prints(printer)
        images = hardcopy_images(printer)
    boxes = [len(film.ImageBoxContentSequence) for film in stored]
    assert boxes == [9, 3, 9, 3]
    rows = [image.Rows for image in images]
    assert rows == [48] * 12 + [64] * 12


# -- what dcmprscp cannot play: annotation boxes, printer events, a printer out of film ----------


def _texts(peer) -> list[str]:
    """Every text value the peer was sent, in every dataset and sequence item."""
    texts: list[str] = []

    def walk(dataset) -> None:
        for element in dataset:
            if element.VR == "SQ":
                for item in element.value:
                    walk(item)
            elif isinstance(element.value, str):
                texts.append(element.value)

    for _, _, dataset in peer.received:
        if dataset is not None:
            walk(dataset)
    return texts


def test_annotation_boxes_carry_the_patient_unless_no_phi(series) -> None:
    from tests.print_peer import ANNOTATION_BOX, print_peer

    archive, uid = series
    with print_peer(annotation_boxes=3) as peer:
        run_cli("node", "add", "film", peer.aet, "127.0.0.1", str(peer.port), "--printer",
                "--annotation-format", "label")  # fmt: skip
        done = run_cli("print", "film", uid, "--index", "3", "--json", archive=archive)
        notes = [ds.TextString for ds in peer.of("N-SET", ANNOTATION_BOX)]
        assert json.loads(done.stdout)["annotation_boxes"] == 3
        assert notes[0] == "Synthetic^Phantom SYN1"
        assert notes[1].startswith("20260101") and notes[2].startswith("CT 1")
        peer.received.clear()
        done = run_cli("print", "film", uid, "--index", "3", "--no-phi", archive=archive)
        sent = _texts(peer)
        assert [ds.TextString for ds in peer.of("N-SET", ANNOTATION_BOX)] == notes[1:]
    assert not any("Synthetic" in text or "SYN1" in text for text in sent)
    assert "Synthetic" not in done.stdout + done.stderr


def test_each_series_film_carries_its_own_patient(tmp_path: Path) -> None:
    from tests.print_peer import ANNOTATION_BOX, print_peer

    archive, small, big = _two_patients(tmp_path)
    with print_peer(annotation_boxes=3) as peer:
        run_cli("node", "add", "film", peer.aet, "127.0.0.1", str(peer.port), "--printer",
                "--annotation-format", "label")  # fmt: skip
        done = run_cli("print", "film", small, big, "--index", "3", "--json", archive=archive)
        notes = [ds.TextString for ds in peer.of("N-SET", ANNOTATION_BOX)]
        films = peer.of("N-CREATE", "1.2.840.10008.5.1.1.2")
    assert json.loads(done.stdout)["films"] == 2 and len(films) == 2
    assert notes[0] == "Synthetic^Phantom SYN1" and notes[1].startswith("20260101")
    assert notes[3] == "Other^Person OTH2" and notes[4].startswith("20250505")
    assert notes[5].startswith("CT 7")
    assert not any("OTH2" in note for note in notes[:3])
    assert not any("SYN1" in note for note in notes[3:])


def test_printer_events_show_as_they_come_and_a_printer_out_of_film_is_one_line(series) -> None:
    from tests.print_peer import print_peer

    archive, uid = series
    with print_peer(event=(2, "SUPPLY LOW")) as peer:
        run_cli("node", "add", "film", peer.aet, "127.0.0.1", str(peer.port), "--printer")
        done = run_cli("print", "film", uid, "--index", "3", archive=archive)
    assert "WARNING: " in done.stderr and "low on film" in done.stderr
    assert done.stdout.startswith("printed 1 film of 1 image (1,1 a film) on film"), done.stdout
    with print_peer(status="FAILURE", info="SUPPLY EMPTY") as peer:
        run_cli("node", "edit", "film", "--port", str(peer.port))
        refused = run_cli("print", "film", uid, "--index", "3", archive=archive, check=False)
        _one_line_error(refused, "out of film")
        assert not peer.of("N-ACTION", "1.2.840.10008.5.1.1.2")  # not sent a job
        status = run_cli("print", "film", "--status", check=False)
        assert status.returncode == 1 and "FAILURE" in status.stdout
