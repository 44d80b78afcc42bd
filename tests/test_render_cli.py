"""``pacs-tui render`` and ``export`` as a user runs them: every file opens with Pillow
with the requested size, mode and frame count."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_cli
from tests.synthetic import AXIAL, write_series
from tests.test_cli import _one_line_error


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("render")
    uid = write_series(root / "files", AXIAL, count=40)
    run_cli("import", str(root / "files"), archive=root / "archive")
    return root / "archive", uid


@pytest.mark.parametrize("name", ["out.png", "out.jpg", "out.tif"])
def test_render_writes_the_requested_size(series, tmp_path: Path, name: str) -> None:
    archive, uid = series
    out = tmp_path / name
    run_cli("render", uid, "--size", "300x200", "--annotate", "-o", str(out), archive=archive)
    with Image.open(out) as image:
        assert image.size == (300, 200)
        assert image.mode in ("L", "RGB")


@pytest.mark.parametrize(
    "options",
    [
        ["--mode", "mip"],
        ["--mode", "minip", "--plane", "coronal", "--slab", "10"],
        ["--mode", "avg", "--plane", "sagittal", "--position", "10"],
        ["--plane", "coronal", "--preset", "bone"],
        ["--window", "40,400", "--index", "3", "--invert"],
    ],
)
def test_render_modes_and_planes(series, tmp_path: Path, options: list[str]) -> None:
    archive, uid = series
    out = tmp_path / "view.png"
    run_cli("render", uid, *options, "-o", str(out), archive=archive)
    with Image.open(out) as image:
        pixels = np.asarray(image)
    assert pixels.std() > 5  # an image, not a blank


def test_raw_png_keeps_hounsfield_units(series, tmp_path: Path) -> None:
    archive, uid = series
    out = tmp_path / "raw.png"
    run_cli("render", uid, "--raw", "--mode", "mip", "-o", str(out), archive=archive)
    with Image.open(out) as image:
        offset = int(image.text["pacs-tui:offset"])
        values = np.asarray(image).astype(int) - offset
    assert values.min() == -1000 and values.max() == 1500  # air and the dense marker


def test_cine_and_sheet_exports(series, tmp_path: Path) -> None:
    archive, uid = series
    gif = tmp_path / "loop.gif"
    run_cli("export", uid, "--cine", "--size", "128x128", "-o", str(gif), archive=archive)
    with Image.open(gif) as image:
        assert image.size == (128, 128)
        total = 0
        for n in range(image.n_frames):
            image.seek(n)
            total += image.info["duration"]
        assert total == 40 * 100  # 40 slices at 10 frames per second
    webp = tmp_path / "loop.webp"
    run_cli("export", uid, "--cine", "--plane", "coronal", "-o", str(webp), archive=archive)
    with Image.open(webp) as image:
        assert image.n_frames > 1
    rotating = tmp_path / "mip.gif"
    run_cli("export", uid, "--cine", "--rotate", "-o", str(rotating), archive=archive)
    with Image.open(rotating) as image:
        assert image.n_frames > 1
    pdf = tmp_path / "sheet.pdf"
    run_cli("export", uid, "--sheet", "--no-phi", "-o", str(pdf), archive=archive)
    assert pdf.read_bytes().startswith(b"%PDF")
    png = tmp_path / "sheet.png"
    run_cli("export", uid, "--sheet", "--columns", "5", "-o", str(png), archive=archive)
    with Image.open(png) as image:
        assert image.width > 5 * 200


def test_term_prints_half_blocks(series) -> None:
    archive, uid = series
    shown = run_cli(
        "--graphics", "halfblock", "--bandwidth", "normal", "render", uid, "--term", archive=archive
    ).stdout
    assert "▀" in shown or "▄" in shown
    assert "\x1b[38;5;" in shown or "\x1b[48;5;" in shown  # the 256-colour grey ramp
    dithered = run_cli(
        "--graphics", "halfblock", "--dither", "ordered", "render", uid, "--term", archive=archive
    ).stdout
    assert dithered != shown
    braille = run_cli("--graphics", "braille", "render", uid, "--term", archive=archive).stdout
    assert "\x1b" not in braille and any(0x2800 <= ord(c) <= 0x28FF for c in braille)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (["-o", "out.bmp"], "choose a file name ending in"),
        (["--preset", "nonsense", "-o", "x.png"], "no window preset"),
        (["--index", "999", "-o", "x.png"], "no slice 999"),
        (["--plane", "axial", "--position", "5000", "-o", "x.png"], "outside the volume"),
        (["--stack", "3", "-o", "x.png"], "no stack 3"),
        (["--file-window", "2", "-o", "x.png"], "no window 2 in the file"),
        (["--size", "0x10", "-o", "x.png"], "each side from 1"),
        ([], "needs -o OUT"),
        (["--normal", "0,0,0", "-o", "x.png"], "normal that is not zero"),
        (["--normal", "1,2", "-o", "x.png"], "expected X,Y,Z"),
        (["--point", "0,0,0", "-o", "x.png"], "--point goes with --normal"),
        (["--normal", "0,0,1", "--plane", "axial", "-o", "x.png"], "a plane of its own"),
        (["--azimuth", "30", "-o", "x.png"], "--azimuth goes with --mode vr"),
        (["--mode", "vr", "--preset", "brain", "-o", "x.png"], "no transfer preset"),
        (["--mode", "vr", "--over-time", "-o", "x.png"], "not volume rendering"),
        (["--normal", "inf,0,1", "-o", "x.png"], "expected finite numbers"),
        (["--mode", "vr", "--azimuth", "nan", "-o", "x.png"], "expected a finite number"),
        (["--normal", "0,0,1", "--point", "0,0,99999", "-o", "x.png"], "outside the volume"),
        (["--over-time", "-o", "x.png"], "one time point"),
        (["--mode", "vr", "--slab", "10", "-o", "x.png"], "--slab does not go with --mode vr"),
        (["--mode", "vr", "--elevation", "400", "-o", "x.png"], "--elevation is from -90"),
    ],
)
def test_render_errors_are_one_line(series, tmp_path: Path, options, fragment) -> None:
    archive, uid = series
    result = run_cli("render", uid, *options, archive=archive, check=False, cwd=tmp_path)
    _one_line_error(result, fragment)


def test_an_unknown_series_is_one_line(series) -> None:
    archive, _ = series
    _one_line_error(
        run_cli("render", "1.2.3", "-o", "x.png", archive=archive, check=False), "no series"
    )


def test_an_oblique_plane_from_the_command_line(series, tmp_path: Path) -> None:
    """``--normal``/``--point`` cut the plane asked for: through the marker (1500 HU at
    -35, 25, 0) it shows, 20 mm beside it it does not; a MIP slab over it does."""
    archive, uid = series
    normal = "0.3,0.2,0.93"
    through = tmp_path / "through.png"
    run_cli(
        "render", uid, "--normal", normal, "--point", "-35,25,0", "--raw", "-o", str(through),
        archive=archive,
    )  # fmt: skip
    beside = tmp_path / "beside.png"
    run_cli(
        "render", uid, "--normal", normal, "--point", "-29,29,19", "--raw", "-o", str(beside),
        archive=archive,
    )  # fmt: skip
    slab = tmp_path / "slab.png"
    run_cli(
        "render", uid, "--normal", normal, "--point", "-29,29,19", "--mode", "mip",
        "--slab", "50", "--raw", "-o", str(slab), archive=archive,
    )  # fmt: skip
    peaks = []
    for path in (through, beside, slab):
        with Image.open(path) as image:
            peaks.append(int(np.asarray(image).max()) - int(image.text["pacs-tui:offset"]))
    assert peaks[0] > 1000 and peaks[1] < 1000 and peaks[2] > 1000


def test_volume_rendering_from_the_command_line(series, tmp_path: Path) -> None:
    archive, uid = series
    front = tmp_path / "front.png"
    run_cli("render", uid, "--mode", "vr", "--preset", "bone", "--size", "96x96", "-o",
            str(front), archive=archive)  # fmt: skip
    side = tmp_path / "side.png"
    run_cli("render", uid, "--mode", "vr", "--preset", "bone", "--azimuth", "90",
            "--elevation", "15", "--size", "96x96", "--annotate", "-o", str(side),
            archive=archive)  # fmt: skip
    shaded = tmp_path / "smip.png"
    run_cli("render", uid, "--mode", "smip", "--size", "96x96", "-o", str(shaded),
            archive=archive)  # fmt: skip
    images = []
    for path in (front, side, shaded):
        with Image.open(path) as image:
            assert image.mode == "RGB" and image.size == (96, 96)
            images.append(np.asarray(image).astype(int))
    assert images[0].max() > 100 and images[2].max() > 100  # the bone and marker show
    assert np.abs(images[0] - images[1]).mean() > 2  # another side, another picture
    loop = tmp_path / "turn.gif"
    run_cli("export", uid, "--cine", "--rotate", "--mode", "vr", "--size", "64x64", "-o",
            str(loop), archive=archive)  # fmt: skip
    with Image.open(loop) as image:
        assert image.n_frames == 36 and image.size == (64, 64)


def test_time_points_from_the_command_line(tmp_path: Path) -> None:
    """A 4D series: a loop through its time points in order, and their MIP."""
    series = "1.2.826.0.1.3680043.8.498.81"
    level = {1: 100.0, 2: 600.0, 3: 300.0}
    for t in (3, 1, 2):
        write_series(
            tmp_path / "files" / f"t{t}", AXIAL, count=8, step=4.0, temporal=t, series_uid=series,
            values=lambda p, t=t: np.where(np.abs(p).max(axis=-1) < 60, level[t], -1000.0),
        )  # fmt: skip
    archive = tmp_path / "archive"
    run_cli("import", str(tmp_path / "files"), archive=archive)
    loop = tmp_path / "time.gif"
    run_cli("export", series, "--cine", "--time", "--window", "300,1000", "-o", str(loop),
            archive=archive)  # fmt: skip
    middles = []
    with Image.open(loop) as image:
        assert image.n_frames == 3
        for n in range(3):
            image.seek(n)
            frame = np.asarray(image.convert("L"))
            middles.append(int(frame[frame.shape[0] // 2, frame.shape[1] // 2]))
    assert middles[0] < middles[2] < middles[1]  # t1, t2, t3 in order: 100, 600, 300 HU
    over = tmp_path / "over.png"
    run_cli("render", series, "--over-time", "--raw", "-o", str(over), archive=archive)
    with Image.open(over) as image:
        values = np.asarray(image).astype(int) - int(image.text["pacs-tui:offset"])
    assert values.max() == 600
    # A loop through the slices of the MIP over time: every frame is the brightest phase.
    slices = tmp_path / "over.gif"
    run_cli("export", series, "--cine", "--over-time", "--window", "300,1000", "-o",
            str(slices), archive=archive)  # fmt: skip
    with Image.open(slices) as image:
        total = 0
        for n in range(image.n_frames):  # the same frames are merged: count their time
            image.seek(n)
            total += image.info["duration"]
        assert total == 8 * 100  # 8 slices at 10 frames per second
        frame = np.asarray(image.convert("L"))
        assert abs(int(frame[frame.shape[0] // 2, frame.shape[1] // 2]) - middles[1]) <= 2
    result = run_cli("export", series, "--cine", "--time", "--rotate", "-o", "x.gif",
                     archive=archive, check=False, cwd=tmp_path)  # fmt: skip
    _one_line_error(result, "choose one")


def test_a_volume_rendering_saved_from_a_small_pane_is_rendered_again_sharp(
    series, tmp_path: Path
) -> None:
    """The viewer's export of a VR view: not the pane's few pixels blown up, a new
    rendering of the same camera at a still's size."""
    from tui.archive.index import Archive
    from tui.archive.query import series_instances
    from tui.render.pipeline import Request, render
    from tui.render.series_export import STILL_SIDE, write_any
    from tui.render.volume import VolumeCache, assemble, slices_of

    archive, uid = series
    with Archive(archive) as opened:
        [stack] = assemble(slices_of(series_instances(opened, uid)))
    cache = VolumeCache()
    request = Request(mode="vr", preset="bone", azimuth=30, size=(60, 40))
    small = render(stack, request, {}, cache)
    assert small.image.shape[:2] == (40, 60)
    out = tmp_path / "vr.png"
    write_any(out, small, stack, request, {}, cache)
    with Image.open(out) as image:
        assert image.size == (STILL_SIDE, round(40 * STILL_SIDE / 60))
        pixels = np.asarray(image.convert("L")).astype(int)
    # Sharp: neighbouring pixels differ as a real rendering's do, not in 13-pixel blocks.
    lit = (pixels[:, 1:] > 10) & (pixels[:, :-1] > 10)
    assert lit.sum() > 1000 and (np.diff(pixels, axis=1)[lit] != 0).mean() > 0.2
