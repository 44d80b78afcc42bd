"""The real pacs-tui in real graphical terminals, under Xvfb: xterm as a VT340 (sixel) and
kitty (its own graphics protocol, on software OpenGL). Screenshots of the X server are
checked against the rendering core's PNG of the same view (``pacs-tui render -o``).

How it works: the terminal first runs a small shell script that marks its top-left and
bottom-right cells in red; a screenshot of them gives the cell grid in pixels, measured
rather than computed from the fonts, so the checks do not share the arithmetic of the
code under test. Then the script runs the app (or ``render --term``); keys go in
with xdotool, each after the screen has settled. The image is found in a screenshot as
the rows that hold a run of at least three cells' width of pixels unlike the background
(text never does), which holds for the XA30 sagittal T1 used here: its darkest grey under
its own window is about 20/255, never the black of the background.

Protocol choice is the real one: xterm has TERM=xterm and answers the device attributes
query with 4 (sixel); kitty sets KITTY_WINDOW_ID for the app, and for ``render --term``
the test hides it (as ssh or sudo would) so that kitty's answer to the graphics query
decides. That the picture came from a graphics protocol, not half-block cells, is seen
in the screenshot: its colour changes along a row fall between cell boundaries.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT, need_shared, run_cli
from tests.servers import need_binary

pytestmark = pytest.mark.slow

XA30 = "neurolabusc_dcm_qa_xa30"  # one enhanced multiframe file: 96 sagittal 128 x 128 frames
SCREEN = (1280, 900)
MIN_CORRELATION = 0.9
XTERM_SIXEL_LIMIT = 1000  # xterm's default maxGraphicSize, in pixels, VT340 mode included
# The viewer's image pane in cells (tui/app/viewer.py's compose, pacs.tcss, image_view.py):
# loading bar, overlay and top label above it; bottom label, overlay and footer below it;
# a side label two cells wide either side.
PANE_TOP, PANE_BOTTOM, PANE_SIDE = 3, 3, 2
# What the terminals' own environment must not decide for them (a developer running the
# tests inside tmux, kitty or over ssh).
FOREIGN = ("TMUX", "TERM", "TERM_PROGRAM", "COLORTERM", "NO_COLOR", "SSH_CONNECTION", "SSH_TTY",
           "WAYLAND_DISPLAY", "WINDOWID", "TEXTUAL_COLOR_SYSTEM")  # fmt: skip


@dataclass(frozen=True)
class Grid:
    """Where a terminal's cells are on the screen, in pixels."""

    x: int
    y: int
    cell_width: int
    cell_height: int
    columns: int
    rows: int

    def box(self, column: int, row: int, end_column: int, end_row: int) -> tuple[int, ...]:
        """The pixel box (x0, y0, x1, y1) of cells [column, end_column) x [row, end_row)."""
        w, h = self.cell_width, self.cell_height
        x, y = self.x, self.y
        return (x + column * w, y + row * h, x + end_column * w, y + end_row * h)


@dataclass
class Display:
    """An Xvfb server and the processes the test starts on it."""

    name: str
    env: dict[str, str]
    folder: Path
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def shot(self) -> np.ndarray:
        """A screenshot of the whole X screen, RGB."""
        return screenshot(self.name, self.env)

    def xdotool(self, *args: str) -> str:
        done = subprocess.run(
            ["xdotool", *args], env=self.env, capture_output=True, text=True, timeout=10
        )
        return done.stdout


def screenshot(display: str, env: dict[str, str]) -> np.ndarray:
    """The X server's screen, as Pillow reads it over XCB, else as ImageMagick's import."""
    from PIL import ImageGrab

    try:
        image = ImageGrab.grab(xdisplay=display)
    except OSError:  # a Pillow built without XCB
        png = subprocess.run(
            ["import", "-window", "root", "png:-"], env=env, capture_output=True, timeout=20
        ).stdout
        image = Image.open(BytesIO(png))
    return np.asarray(image.convert("RGB"))


@pytest.fixture
def display(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Display]:
    """A fresh Xvfb on a free display number, of ``SCREEN`` pixels or the size a test
    passes as its parameter (indirect); everything started on it ends with it."""
    width, height = getattr(request, "param", SCREEN)
    xvfb = need_binary("Xvfb")
    need_binary("xdotool")
    server = None
    for number in range(90, 200):
        if Path(f"/tmp/.X11-unix/X{number}").exists() or Path(f"/tmp/.X{number}-lock").exists():
            continue
        size = f"{width}x{height}x24"
        server = subprocess.Popen(
            [xvfb, f":{number}", "-screen", "0", size, "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while server.poll() is None and time.monotonic() < deadline:
            if Path(f"/tmp/.X11-unix/X{number}").exists():
                break
            time.sleep(0.05)
        if server.poll() is None and Path(f"/tmp/.X11-unix/X{number}").exists():
            break
        server.kill()  # another took this number meanwhile: the next one
        server.wait()
        server = None
    if server is None:
        pytest.fail("no free X display number from :90 to :199")
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN and not k.startswith("KITTY")}
    env["DISPLAY"] = f":{number}"
    opened = Display(f":{number}", env, tmp_path)
    try:
        yield opened
    finally:
        for process in opened.started:
            _end(process)
        pid_file = tmp_path / "app.pid"
        if pid_file.exists():  # the script and its command, if the terminal's hangup missed them
            with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
                os.killpg(int(pid_file.read_text()), signal.SIGKILL)
        _end(server)


def _end(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass(frozen=True)
class Series:
    """The series on screen: its archive and UID, and the CLI's PNGs (grey) of the view
    the viewer opens on and of another slice."""

    archive: Path
    uid: str
    view: np.ndarray
    other: np.ndarray


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> Series:
    """An archive of the XA30 sagittal series (``pacs-tui import``), its UID, and the CLI's
    PNGs of the viewer's first view (the middle slice, the file's window) and of a far
    slice (to show the correlation tells views apart)."""
    shared = need_shared()
    folder = tmp_path_factory.mktemp("e2e-terminals")
    env = {**os.environ, **{v: str(folder / v.lower()) for v in _XDG}}
    archive = folder / "archive"
    run_cli("import", str(shared / XA30), archive=archive, env=env)
    listed = run_cli("ls", "--level", "series", "--json", archive=archive, env=env).stdout
    (uid,) = [s["SeriesInstanceUID"] for s in json.loads(listed)]
    view, other = folder / "view.png", folder / "other.png"
    run_cli("render", uid, "-o", str(view), archive=archive, env=env)
    run_cli("render", uid, "--index", "20", "-o", str(other), archive=archive, env=env)
    return Series(archive, uid, _grey(view), _grey(other))


_XDG = ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME")


def _grey(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"), dtype=np.float64)


# -- terminals ------------------------------------------------------------------------------------


def start_terminal(
    screen: Display, kind: str, command: str, cells: tuple[int, int] = (120, 40)
) -> tuple[Grid, np.ndarray]:
    """Open ``kind`` (xterm of ``cells`` columns and rows, or kitty of 1200 x 800 pixels)
    at the screen's top left, running ``command`` in bash once the test has measured the
    cell grid; returns the grid and the screen then."""
    go, size_file = screen.folder / "go", screen.folder / "size"
    script = (
        # hidden cursor; red spaces in the first and the last cell
        "printf '\\033[?25l\\033[2J\\033[H\\033[41m \\033[%s;%sH \\033[0m' $(stty size); "
        f"stty size > {shlex.quote(str(size_file))}; "
        f"while [ ! -e {shlex.quote(str(go))} ]; do sleep 0.05; done; "
        f"echo $$ > {shlex.quote(str(screen.folder / 'app.pid'))}; "  # the terminal's session
        f"cd {shlex.quote(str(ROOT))}; {command}; "
        "sleep 600"
    )
    shell = ["bash", "--norc", "--noprofile", "-c", script]
    env = dict(screen.env)
    if kind == "xterm":
        # A VT340 with sixel and 256 colour registers, in xterm's default font (6 x 13):
        # it refuses to report its cell size (allowWindowOps is off by default).
        argv = [need_binary("xterm"), "-ti", "vt340", "-xrm", "XTerm*decTerminalID: vt340",
                "-xrm", "XTerm*numColorRegisters: 256", "-geometry", "{}x{}+0+0".format(*cells),
                "-e", *shell]  # fmt: skip
    else:
        env["LIBGL_ALWAYS_SOFTWARE"] = "1"  # no GPU under Xvfb: Mesa's llvmpipe
        argv = [need_binary("kitty"), "--config", "NONE", "-o", "linux_display_server=x11",
                "-o", "initial_window_width=1200", "-o", "initial_window_height=800",
                "-o", "remember_window_size=no", "-o", "cursor_blink_interval=0",
                *shell]  # fmt: skip
    log = (screen.folder / f"{kind}.log").open("wb")
    screen.started.append(subprocess.Popen(argv, env=env, stdout=log, stderr=log))
    grid, shot = _measure(screen, size_file, kind)
    go.touch()
    return grid, shot


def _measure(screen: Display, size_file: Path, kind: str) -> tuple[Grid, np.ndarray]:
    """The cell grid from the two marked cells (see :func:`start_terminal`)."""
    deadline = time.monotonic() + 30
    while not size_file.exists() or not size_file.read_text().strip():
        if time.monotonic() > deadline:
            log = (screen.folder / f"{kind}.log").read_text(errors="replace")
            pytest.fail(f"{kind} never started its shell:\n{log}")
        time.sleep(0.1)
    rows, columns = (int(v) for v in size_file.read_text().split())

    def red(shot: np.ndarray) -> np.ndarray:
        r, g, b = (shot[..., n].astype(int) for n in range(3))
        return (r > 150) & (g < 80) & (b < 80)  # nothing else on these screens is red

    def marked(shot: np.ndarray) -> bool:
        return bool(red(shot).any())

    shot = settle(screen, None, f"the marks {kind} draws", ready=marked, quiet=0.5)
    mask = red(shot)
    ys, xs = np.nonzero(mask)
    top, left, bottom, right = ys.min(), xs.min(), ys.max() + 1, xs.max() + 1
    width = int(np.argmin(mask[top, left:])) or right - left  # the first mark's run
    height = int(np.argmin(mask[top:, left])) or bottom - top
    grid = Grid(int(left), int(top), width, height, columns, rows)
    assert (right - left, bottom - top) == (columns * width, rows * height), (
        f"{kind}: the marks are not {columns} x {rows} cells of {width} x {height} apart: "
        f"{_save(shot, screen, f'{kind}-marks')}"
    )
    # keys go to the window under the pointer (there is no window manager to focus one)
    centre = grid.box(columns // 2, rows // 2, columns // 2, rows // 2)
    screen.xdotool("mousemove", str(centre[0]), str(centre[1]))
    return grid, shot


def settle(
    screen: Display,
    since: np.ndarray | None,
    what: str,
    ready: Callable[[np.ndarray], bool] | None = None,
    quiet: float = 0.8,
    timeout: float = 25.0,
) -> np.ndarray:
    """The screen once it differs from ``since``, ``ready`` holds, and nothing has changed
    for ``quiet`` seconds (the app has finished what the last key asked)."""
    deadline = time.monotonic() + timeout
    last: np.ndarray | None = None
    changed = time.monotonic()
    while time.monotonic() < deadline:
        shot = screen.shot()
        moved = since is None or not np.array_equal(shot, since)
        if moved and (ready is None or ready(shot)):
            if last is not None and np.array_equal(shot, last):
                if time.monotonic() - changed >= quiet:
                    return shot
            else:
                last, changed = shot, time.monotonic()
        else:
            last = None
        time.sleep(0.1)
    failed = screen.folder / "timeout.png"
    Image.fromarray(screen.shot()).save(failed)
    pytest.fail(f"waited {timeout:.0f} s for {what}; the screen: {failed}")


def press(screen: Display, shot: np.ndarray, *keys: str) -> np.ndarray:
    """Each key once the screen has settled after the one before, as a careful user types."""
    for key in keys:
        screen.xdotool("key", key)
        shot = settle(screen, shot, f"the screen to change after {key!r}")
    return shot


# -- what the screenshot shows --------------------------------------------------------------------


def image_box(shot: np.ndarray, area: tuple[int, ...], min_run: int) -> tuple[int, ...] | None:
    """The box (x0, y0, x1, y1) of the picture inside ``area``: the rows holding a run of at
    least ``min_run`` pixels unlike the area's background (its most common colour)."""
    x0, y0, x1, y1 = area
    region = shot[y0:y1, x0:x1].astype(np.int32)
    packed = (region[..., 0] << 16) | (region[..., 1] << 8) | region[..., 2]
    colours, counts = np.unique(packed, return_counts=True)
    background = np.array([(colours[np.argmax(counts)] >> s) & 255 for s in (16, 8, 0)])
    mask = np.abs(region - background).sum(axis=2) > 12
    ends = np.cumsum(mask, axis=1)
    sums = ends[:, min_run - 1 :] - np.pad(ends, ((0, 0), (1, 0)))[:, :-min_run]
    starts = sums >= min_run  # a run of min_run pixels starts here
    rows = np.nonzero(starts.any(axis=1))[0]
    if len(rows) == 0:
        return None
    columns = np.nonzero(starts.any(axis=0))[0]
    left, right = int(columns[0]), int(columns[-1]) + min_run
    return (x0 + left, y0 + int(rows[0]), x0 + right, y0 + int(rows[-1]) + 1)


def correlation(picture: np.ndarray, png: np.ndarray) -> float:
    """Pearson correlation of the screenshot's picture (grey) with the PNG resized to it."""
    resized = Image.fromarray(png.astype(np.uint8)).resize(
        (picture.shape[1], picture.shape[0]), Image.Resampling.BILINEAR
    )
    return float(np.corrcoef(picture.ravel(), np.asarray(resized, np.float64).ravel())[0, 1])


def off_grid_share(picture: np.ndarray, left: int, grid: Grid) -> float:
    """The share of the picture's colour changes along its rows that fall inside a cell.
    Half-block cells change colour only at cell boundaries (0); a picture drawn by the
    terminal from pixels changes anywhere."""
    steps = np.abs(np.diff(picture, axis=1)) > 4
    columns = np.nonzero(steps.any(axis=0))[0]  # a change between x and x + 1
    if len(columns) == 0:
        return 0.0
    boundary = (left + columns + 1 - grid.x) % grid.cell_width == 0
    return float((~boundary).mean())


def check_picture(
    shot: np.ndarray, box: tuple[int, ...], grid: Grid, series: Series, name: str
) -> None:
    """The picture in ``box`` is the rendering core's view, drawn from pixels."""
    x0, y0, x1, y1 = box
    picture = shot[y0:y1, x0:x1].astype(np.float64).mean(axis=2)
    same = correlation(picture, series.view)
    other = correlation(picture, series.other)
    assert same >= MIN_CORRELATION, f"{name}: correlation {same:.3f} with the CLI's PNG"
    assert same > other + 0.1, f"{name}: the far slice correlates as well ({other:.3f})"
    share = off_grid_share(picture, x0, grid)
    assert share > 0.5, f"{name}: drawn in cells, not by a graphics protocol ({share:.2f})"
    aspect = series.view.shape[1] / series.view.shape[0]
    assert abs((x1 - x0) / (y1 - y0) - aspect) < 0.05, f"{name}: {box} is not the PNG's shape"


def _save(shot: np.ndarray, screen: Display, name: str) -> Path:
    path = screen.folder / f"{name}.png"
    Image.fromarray(shot).save(path)
    return path


# -- the tests ------------------------------------------------------------------------------------


def _app_command(series: Series, *options: str) -> str:
    archive = shlex.quote(str(series.archive))
    return shlex.join([sys.executable, "-m", "tui", *options]) + f" --archive {archive}"


@pytest.mark.parametrize("kind", ["xterm", "kitty"])
def test_the_viewer_draws_the_series_inside_its_pane(
    kind: str, display: Display, series: Series
) -> None:
    """Open the series in the viewer with keys: the picture lies inside the viewer's pane,
    fills it on one side, and is the rendering core's view of the series."""
    grid, shot = start_terminal(display, kind, _app_command(series))
    w, h = grid.cell_width, grid.cell_height
    pane = grid.box(PANE_SIDE, PANE_TOP, grid.columns - PANE_SIDE, grid.rows - PANE_BOTTOM)
    # search from the top label to the bottom overlay: a picture past its pane shows there
    search = grid.box(0, PANE_TOP - 1, grid.columns, grid.rows - 1)
    shot = settle(display, shot, "the browser", quiet=1.5)
    shot = press(display, shot, "space", "Down", "space", "Down")

    def drawn(shot: np.ndarray) -> bool:
        box = image_box(shot, search, 3 * w)
        return box is not None and box[3] - box[1] > 10 * h

    display.xdotool("key", "v")
    shot = settle(display, shot, "the viewer's picture", ready=drawn, quiet=1.5)
    path = _save(shot, display, f"{kind}-viewer")
    box = image_box(shot, search, 3 * w)
    assert box is not None
    x0, y0, x1, y1 = box
    assert pane[0] <= x0 and pane[1] <= y0 and x1 <= pane[2] and y1 <= pane[3], (
        f"{kind}: the picture {box} is not inside its pane {pane}: {path}"
    )
    fills = x1 - x0 >= pane[2] - pane[0] - 2 * w or y1 - y0 >= pane[3] - pane[1] - h
    assert fills, f"{kind}: the picture {box} is much smaller than its pane {pane}: {path}"
    check_picture(shot, box, grid, series, f"{kind}: {path}")


def _render_term(
    display: Display, series: Series, kind: str, cells: tuple[int, int] = (120, 40)
) -> tuple[Grid, np.ndarray, tuple[int, ...], Path]:
    """``render --term`` at the bottom of a terminal full of earlier output, after its
    command line, with a prompt after it: the grid, the screen, the image's box in it (in
    the window, or the test fails) and the screenshot's path.

    KITTY_WINDOW_ID is hidden from the command (as ssh or sudo would), so kitty's answer to
    the graphics query decides."""
    uid, archive = series.uid, shlex.quote(str(series.archive))
    done = display.folder / "done"
    hide = "env -u KITTY_WINDOW_ID TERM=xterm-256color " if kind == "kitty" else ""
    command = (
        "printf '\\033[2J\\033[H\\033[?25h'; "  # a clear screen and a cursor again
        'for n in $(seq 2 "$(tput lines)"); do echo "earlier output $n"; done; '
        f"echo '$ pacs-tui render --term'; "
        f"{hide}{shlex.quote(sys.executable)} -m tui --archive {archive} render {uid} --term; "
        f"printf 'prompt$ '; touch {shlex.quote(str(done))}"
    )
    grid, shot = start_terminal(display, kind, command, cells)
    window = grid.box(0, 0, grid.columns, grid.rows)

    deadline = time.monotonic() + 30
    while not done.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    shot = settle(display, shot, "the image", quiet=1.0)
    path = _save(shot, display, f"{kind}-render-term")
    assert done.exists(), f"{kind}: render --term did not finish in 30 s: {path}"
    box = image_box(shot, window, 3 * grid.cell_width)
    assert box is not None, f"{kind}: no image on the screen: {path}"
    x0, y0, x1, y1 = box
    assert window[0] <= x0 and window[1] <= y0 and x1 <= window[2] and y1 <= window[3], (
        f"{kind}: the image {box} is not inside the window {window}: {path}"
    )
    return grid, shot, box, path


def _has_text(shot: np.ndarray, grid: Grid, top: int) -> bool:
    """Does the row of cells from pixel row ``top`` hold text (unlike its last pixel)?"""
    x0, _, x1, _ = grid.box(0, 0, grid.columns, grid.rows)
    row = shot[top : top + grid.cell_height, x0:x1].astype(int)
    return bool((np.abs(row - row[0, -1]).sum(axis=2) > 60).any())


@pytest.mark.parametrize("kind", ["xterm", "kitty"])
def test_render_term_shows_the_whole_image_in_the_window(
    kind: str, display: Display, series: Series
) -> None:
    """``render --term`` at the bottom of a full terminal: the image, as tall as the window
    allows, scrolls into view whole, with the command line above it and the prompt below.

    xterm's default font has 6 x 13 cells and xterm does not report them: an image sized
    for 10 x 20 cells was taller than the window and its top scrolled away. In kitty the
    cursor stayed at the image's top, so the prompt was drawn under it.
    """
    grid, shot, box, path = _render_term(display, series, kind)
    h = grid.cell_height
    y0, y1 = box[1], box[3]
    # as tall as the window allows: its rows less the command line and the prompt
    assert y1 - y0 >= (grid.rows - 3) * h, f"{kind}: the image {box} is small: {path}"
    assert y0 - h >= grid.y and _has_text(shot, grid, y0 - h), (
        f"{kind}: the command line is gone: {path}"
    )
    below = y1 + h <= grid.y + grid.rows * h and _has_text(shot, grid, y1)
    assert below, f"{kind}: the prompt is not below the image: {path}"
    check_picture(shot, box, grid, series, f"{kind}: {path}")


@pytest.mark.parametrize("display", [(1920, 1200)], indirect=True)
def test_render_term_keeps_a_sixel_image_within_what_xterm_shows(
    display: Display, series: Series
) -> None:
    """xterm draws no sixel image past its maxGraphicSize, 1000 x 1000 pixels by default:
    in a window of 300 x 90 cells of 6 x 13 (1800 x 1170 pixels) an image sized from the
    window alone (1144 pixels tall) was not drawn at all. It is drawn whole, at its aspect,
    as large as xterm shows, with the prompt below it."""
    grid, shot, box, path = _render_term(display, series, "xterm", cells=(300, 90))
    w, h = grid.cell_width, grid.cell_height
    assert grid.rows * h > XTERM_SIXEL_LIMIT + 2 * h, f"the window is within the limit: {path}"
    x0, y0, x1, y1 = box
    assert max(x1 - x0, y1 - y0) <= XTERM_SIXEL_LIMIT, f"{box} is past the limit: {path}"
    larger = max(x1 - x0 + w, y1 - y0 + h) > XTERM_SIXEL_LIMIT
    assert larger, f"the image {box} could be a cell larger: {path}"
    assert _has_text(shot, grid, y1), f"the prompt is not below the image: {path}"
    check_picture(shot, box, grid, series, f"xterm: {path}")  # whole: its shape and content


def test_halfblocks_leave_the_rest_of_the_pane_in_the_background_colour(
    display: Display, series: Series
) -> None:
    """``--graphics halfblock`` in xterm (TERM=xterm: 16 colours): the viewer's pane either
    side of the picture is in the app's background colour, as the side labels beside it
    are, not in xterm's default background (white)."""
    grid, shot = start_terminal(display, "xterm", _app_command(series, "--graphics", "halfblock"))
    side = grid.box(0, PANE_TOP, PANE_SIDE, grid.rows - PANE_BOTTOM)
    pane = grid.box(PANE_SIDE, PANE_TOP, grid.columns - PANE_SIDE, grid.rows - PANE_BOTTOM)

    def colours(shot: np.ndarray, box: tuple[int, ...]) -> np.ndarray:
        x0, y0, x1, y1 = box
        return np.unique(shot[y0:y1, x0:x1].reshape(-1, 3), axis=0)

    def drawn(shot: np.ndarray) -> bool:  # greys of the picture in the pane's middle third
        third = (pane[2] - pane[0]) // 3
        return len(colours(shot, (pane[0] + third, pane[1], pane[2] - third, pane[3]))) > 2

    shot = settle(display, shot, "the browser", quiet=1.5)
    shot = press(display, shot, "space", "Down", "space", "Down")
    display.xdotool("key", "v")
    shot = settle(display, shot, "the viewer's picture", ready=drawn, quiet=1.5)
    path = _save(shot, display, "xterm-halfblock-viewer")
    x0, y0, x1, y1 = side
    counted, counts = np.unique(shot[y0:y1, x0:x1].reshape(-1, 3), axis=0, return_counts=True)
    background = counted[np.argmax(counts)]  # the side label's, but for its letter
    w = grid.cell_width
    for edge in (
        (pane[0], pane[1], pane[0] + w, pane[3]),
        (pane[2] - w, pane[1], pane[2], pane[3]),
    ):
        found = colours(shot, edge)
        assert (found == background).all(), (
            f"the pane's edge {edge} is {found.tolist()}, not the background {background}: {path}"
        )
