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
