"""The colours pacs-tui sends, as a terminal receives them: the real app in a real
pseudo-terminal stepping through slices, 24-bit colours only where the terminal says it has
them; the colour rule the same as Textual's; bad settings in config.toml as one line."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from textual.app import App

from benchmarks.bench_app import HALF_BLOCKS, PtyChild, pty_env
from tests.conftest import ROOT, run_cli
from tests.synthetic import AXIAL, phantom, write_series
from tui.archive.importer import import_paths
from tui.archive.index import Archive
from tui.archive.query import search
from tui.errors import UserError
from tui.term.detect import BANDWIDTH, choose_bandwidth, choose_graphics, colour_system
from tui.term.halfblock import encode, to_cells
from tui.term.modes import BANDWIDTHS, GRAPHICS, HIGH, NORMAL
from tui.term.palette import nearest_colours, palette_rgb

TRUE_COLOUR = re.compile(rb"\x1b\[[\d;]*[34]8;2;")  # an SGR with a 24-bit colour in it
SLICES = 30


def _waves(points: np.ndarray) -> np.ndarray:
    """The phantom under waves that move from slice to slice: every step changes cells."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    return phantom(points) + 300 * np.sin((x + y + 3 * z) / 6)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("colours")
    write_series(work / "ct", AXIAL, count=SLICES, values=_waves)
    with Archive(work / "archive") as opened:
        import_paths(opened, [work / "ct"])
    return work / "archive"


def _quiet(child: PtyChild, seconds: float = 0.6, timeout: float = 20.0) -> None:
    """Read until nothing more arrives for ``seconds``."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        before = len(child.output)
        child.drain(seconds)
        if len(child.output) == before:
            return


def _slice_step(
    archive: Path, tmp_path: Path, bandwidth: str, colorterm: str | None, term: str = ""
) -> bytes:
    """What ``pacs-tui`` sends for one ``j`` in the viewer, in a 120 x 40 pty (TERM
    xterm-256color unless given, COLORTERM as given), from the browser to the series as a
    user gets there."""
    env = pty_env(dict(os.environ), tmp_path)
    env.pop("COLORTERM")
    env["TERM"] = term or env["TERM"]
    if colorterm is not None:
        env["COLORTERM"] = colorterm
    argv = [sys.executable, "-m", "tui", "--archive", str(archive), "--bandwidth", bandwidth]
    with PtyChild(argv, env, ROOT, 120, 40) as child:
        child.wait_for(b"Phantom", 60)
        for key in (b" ", b"\x1b[B", b" ", b"\x1b[B"):  # patient, study, series
            _quiet(child, 0.3)
            child.write(key)
        _quiet(child)
        child.write(b"v")
        child.wait_for(f"{SLICES // 2 + 1}/{SLICES}".encode(), 60)
        _quiet(child)
        start = len(child.output)
        child.write(b"j")
        child.wait_for(f"{SLICES // 2 + 2}/{SLICES}".encode(), 30)
        _quiet(child)
        step = bytes(child.output[start:])
        child.quit(30)
    assert any(block in step for block in HALF_BLOCKS), "the step drew no image cells"
    return step


@pytest.mark.parametrize("bandwidth", ["high", "normal", "auto"])
def test_a_256_colour_terminal_gets_no_24_bit_colours(
    archive: Path, tmp_path: Path, bandwidth: str
) -> None:
    step = _slice_step(archive, tmp_path, bandwidth, colorterm=None)
    assert not TRUE_COLOUR.search(step), TRUE_COLOUR.search(step)
    assert re.search(rb"\x1b\[[\d;]*48;5;(23[2-9]|24\d|25[0-5]|16|231)[;m]", step)  # palette greys


def test_a_16_colour_terminal_gets_only_its_16_colours(archive: Path, tmp_path: Path) -> None:
    """TERM=xterm: Textual draws everything in the 16 colours; so must the image cells."""
    step = _slice_step(archive, tmp_path, "high", colorterm=None, term="xterm")
    assert not TRUE_COLOUR.search(step), TRUE_COLOUR.search(step)
    palette = re.search(rb"\x1b\[[\d;]*[34]8;5;\d+", step)
    assert palette is None, palette
    greys = set(re.findall(rb"\x1b\[(?:[\d;]*;)?(30|37|90|97|40|47|100|107)[;m]", step))
    assert len(greys) >= 3, greys  # black, greys and white: the image, in what there is


def test_a_truecolour_terminal_gets_24_bit_images_at_high_bandwidth(
    archive: Path, tmp_path: Path
) -> None:
    step = _slice_step(archive, tmp_path, "high", colorterm="truecolor")
    assert len(TRUE_COLOUR.findall(step)) > 100  # the changed cells, not only Textual's labels


@pytest.mark.parametrize(
    "env",
    [
        {"TERM": "xterm-256color"},
        {"TERM": "xterm-256color", "COLORTERM": "truecolor"},
        {"TERM": "xterm-256color", "COLORTERM": "24bit"},
        {"TERM": "xterm-256color", "COLORTERM": "yes"},
        {"TERM": "tmux-256color"},  # inside tmux: what tmux says, 256 unless COLORTERM
        {"TERM": "screen-256color", "COLORTERM": "truecolor", "TMUX": "/tmp/tmux-0/default"},
        {"TERM": "xterm-kitty"},
        {"TERM": "xterm"},
        {"TERM": "rxvt-unicode-16color"},
        {"TERM": "xterm-direct"},
        {"TERM": "dumb", "COLORTERM": "truecolor"},
        {},
    ],
)
def test_the_colours_are_the_ones_textual_uses(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("TERM", "COLORTERM", "TMUX"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert colour_system(env) == App().console.color_system
    assert (choose_bandwidth("high", env).mode == HIGH) == (colour_system(env) == "truecolor")


def test_high_bandwidth_without_24_bit_colours_keeps_the_rest_of_high() -> None:
    chosen = choose_bandwidth("high", {"TERM": "xterm-256color"})
    assert chosen.mode == NORMAL and chosen.max_cells == BANDWIDTH["high"].max_cells
    assert choose_bandwidth("high", {"TEXTUAL_COLOR_SYSTEM": "truecolor"}).mode == HIGH
    assert choose_bandwidth("auto", {"TERM": "xterm-256color", "SSH_TTY": "/dev/pts/1"}).name == (
        "normal"
    )


def test_colour_images_on_the_palette_take_its_nearest_colours() -> None:
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (4000, 3))
    table = palette_rgb()[16:].astype(np.int64)
    best = ((pixels[:, None, :] - table[None]) ** 2).sum(axis=-1).min(axis=1)
    chosen = nearest_colours(pixels)
    assert chosen.min() >= 16  # never the 16 colours themes redefine
    got = ((pixels - palette_rgb()[chosen].astype(np.int64)) ** 2).sum(axis=-1)
    assert np.array_equal(got, best)
    image = np.zeros((40, 40, 3), np.uint8)
    image[:20, :, 0] = 255  # red over blue
    image[20:, :, 2] = 255
    cells = to_cells(image, 20, 10, NORMAL)
    assert set(np.unique(cells.top)) | set(np.unique(cells.bottom)) == {196, 21}
    assert not TRUE_COLOUR.search(encode(cells).encode())
    assert "8;2;255;0;0" in encode(to_cells(image, 20, 10, HIGH))


def test_unknown_settings_are_one_line_naming_the_choices() -> None:
    with pytest.raises(UserError, match="auto, low, normal, high"):
        choose_bandwidth("fast", {})
    with pytest.raises(UserError, match="halfblock"):
        choose_graphics("pixels", {})
    for setting in GRAPHICS:  # every choice the command line offers is one detection knows
        if setting != "auto":
            assert choose_graphics(setting, {}) == setting
    assert {choose_bandwidth(s, {}).name for s in BANDWIDTHS} == {"low", "normal", "high"}


def test_a_bad_bandwidth_in_config_toml_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    write_series(tmp_path / "ct", AXIAL, count=4)
    archive = tmp_path / "archive"
    with Archive(archive) as opened:
        import_paths(opened, [tmp_path / "ct"])
        uid = search(opened, "series")[0]["SeriesInstanceUID"]
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "pacs-tui" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('bandwidth = "fast"\n')
    done = run_cli("render", uid, "--term", archive=archive, check=False)
    assert done.returncode == 1, done
    assert done.stderr.strip().splitlines() == [
        f"pacs-tui: error: {config}: bandwidth 'fast': choose one of auto, low, normal, high"
    ]
