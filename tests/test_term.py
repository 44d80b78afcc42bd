"""Terminal encoders on fixed images: bytes, fidelity, well-formed protocol output, and
detection with canned terminal replies (and a terminal that never replies)."""

from __future__ import annotations

import base64
import fcntl
import io
import os
import pty
import re
import select
import struct
import termios
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from PIL import Image

from tui.term import protocols, text
from tui.term.cells import area_resize, fit_cells
from tui.term.detect import (
    cell_from_replies,
    cell_size,
    choose_bandwidth,
    choose_graphics,
    from_environment,
    from_replies,
    query,
)
from tui.term.halfblock import encode, to_cells
from tui.term.modes import HIGH, LOW, NORMAL, SIXEL_LIMIT, Cell
from tui.term.show import draw, fit_box

ROWS, COLUMNS = 50, 100


def _gradient() -> np.ndarray:
    y, x = np.mgrid[0:200, 0:200]
    image = (x + y) * 255 // 398
    image[60:140, 60:140] = 255 - image[60:140, 60:140]
    return image.astype(np.uint8)


def _moved(image: np.ndarray) -> np.ndarray:
    out = image.copy()
    out[60:140, 60:140] = np.roll(out[60:140, 60:140], 6, axis=1)
    return out


def _shown_error(image: np.ndarray, mode) -> float:
    cells = to_cells(image, COLUMNS, ROWS, mode)
    reference = area_resize(image, COLUMNS, ROWS * 2).astype(np.int16)
    return float(np.abs(cells.shown() - reference).mean())


def _mr_slice() -> np.ndarray:
    """A real brain MR slice (Siemens 3T T1), auto-windowed to 8 bits."""
    from tests.conftest import need_shared
    from tui.render.decode import display_header
    from tui.render.lut import to_display
    from tui.render.pipeline import Request, render
    from tui.render.presets import load_presets
    from tui.render.volume import Stack, slices_of

    folder = need_shared() / "neurolabusc_dcm_qa_xa30i"
    del display_header, to_display  # the pipeline below does the reading
    from tui.archive.header import read_record

    path = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix != ".txt" and "README" not in p.name
    )[48]
    record = read_record(str(path))
    row = {
        "path": str(path), "sop_uid": record.sop_uid, "transfer_syntax": record.transfer_syntax,
        "rows": record.rows, "columns": record.columns, "frames": 1, "samples_per_pixel": 1,
        "photometric": record.photometric, "bits_allocated": record.bits_allocated,
        "bits_stored": record.bits_stored, "pixel_representation": record.pixel_representation,
        "pixel_offset": record.pixels.offset if record.pixels else None,
        "pixel_length": record.pixels.length if record.pixels else None,
        "position": record.position, "orientation": record.orientation,
        "pixel_spacing": record.pixel_spacing, "rescale_slope": record.rescale_slope,
        "rescale_intercept": record.rescale_intercept, "acquisition_number": 1,
        "temporal_position": None, "instance_number": 1,
    }  # fmt: skip
    return render(Stack(slices_of([row])), Request(), load_presets()).image


@pytest.mark.parametrize(("mode", "limit"), [(LOW, 8.0), (NORMAL, 4.0), (HIGH, 0.5)])
def test_fidelity_against_the_area_averaged_image(mode, limit: float) -> None:
    assert _shown_error(_mr_slice(), mode) <= limit
    if mode is not LOW:  # a full-range gradient is the worst case for 8 levels
        assert _shown_error(_gradient(), mode) <= limit


def test_a_step_sends_only_the_changed_runs() -> None:
    before, after = _gradient(), _moved(_gradient())
    old = to_cells(before, COLUMNS, ROWS, NORMAL)
    new = to_cells(after, COLUMNS, ROWS, NORMAL)
    full, step = encode(new), encode(new, old)
    assert len(step) < len(full) / 2
    assert encode(new, new) == ""  # nothing changed, nothing sent
    # What the step draws, applied over the old frame, is the new frame.
    assert _replay(step, old) == _replay(full, None)


def _replay(sequence: str, previous) -> list[list[tuple[int, int]]]:
    """A tiny terminal: apply cursor moves, SGR colours and half blocks to a cell grid."""
    grid = [[(-1, -1)] * COLUMNS for _ in range(ROWS)]
    if previous is not None:
        top, bottom = previous.top.tolist(), previous.bottom.tolist()
        grid = [[(top[r][c], bottom[r][c]) for c in range(COLUMNS)] for r in range(ROWS)]
    fg = bg = -1
    row = column = 0
    for token in re.findall(r"\x1b\[(\d+);(\d+)H|\x1b\[([\d;]*)m|(.)", sequence, re.S):
        move_row, move_column, sgr, char = token
        if move_row:
            row, column = int(move_row) - 1, int(move_column) - 1
        elif (sgr is not None and token[2] != "") or (sgr == "" and char == ""):
            params = [int(p) for p in sgr.split(";")] if sgr else [0]
            i = 0
            while i < len(params):
                if params[i] in (38, 48) and params[i + 1] == 5:
                    if params[i] == 38:
                        fg = params[i + 2]
                    else:
                        bg = params[i + 2]
                    i += 3
                else:
                    i += 1
        elif char:
            cell = {"▀": (fg, bg), "▄": (bg, fg), " ": (bg, bg), "█": (fg, fg)}[char]
            grid[row][column] = cell
            column += 1
    return grid


def test_kitty_output_is_well_formed() -> None:
    image = _gradient()
    sequence = protocols.kitty(image, 40, 20)
    chunks = re.findall(r"\x1b_G([^;]*);([^\x1b]*)\x1b\\", sequence)
    assert chunks and chunks[0][0].startswith("a=T,f=100") and chunks[-1][0].endswith("m=0")
    assert all(len(payload) <= 4096 for _, payload in chunks)
    data = base64.standard_b64decode("".join(payload for _, payload in chunks))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), image)


def test_a_printed_kitty_image_moves_the_cursor_below_it() -> None:
    """In the app the cursor stays (C=1: a move at the bottom row would scroll the screen);
    printed by ``render --term`` it goes to the image's last row, so the prompt follows
    the image instead of being drawn under it (seen in a real kitty)."""
    assert ",C=1," in protocols.kitty(_gradient(), 40, 20)
    printed = draw(_gradient(), "kitty", choose_bandwidth("high", {}), 40, 20)
    assert ",C=0," in printed and printed.endswith("\x1b\\\n")


def test_iterm_output_is_well_formed() -> None:
    image = _gradient()
    found = re.fullmatch(
        r"\x1b\]1337;File=inline=1;size=(\d+);[^:]*:([A-Za-z0-9+/=]+)\x07",
        protocols.iterm(image, 40, 20),
    )
    assert found
    data = base64.standard_b64decode(found.group(2))
    assert len(data) == int(found.group(1))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), image)


def _decode_sixel(sequence: str) -> np.ndarray:
    """A minimal sixel decoder: raster size, grey palette, RLE, bands."""
    body = sequence[sequence.index("q") + 1 : sequence.rindex("\x1b\\")]
    size = re.match(r'"1;1;(\d+);(\d+)', body)
    assert size
    width, height = int(size.group(1)), int(size.group(2))
    body = body[size.end() :]
    palette: dict[int, int] = {}
    for number, _, r, _g, _b in re.findall(r"#(\d+);(2);(\d+);(\d+);(\d+)", body):
        palette[int(number)] = round(int(r) * 255 / 100)
    body = re.sub(r"#\d+;2;\d+;\d+;\d+", "", body)
    out = np.zeros((height + 6, width), np.int16)
    band = x = colour = 0
    for token in re.findall(r"#(\d+)|!(\d+)(.)|([?-~])|(\$)|(-)", body):
        select, repeat, repeated, single, back, down = token
        if select:
            colour = int(select)
        elif repeat or single:
            count, char = (int(repeat), repeated) if repeat else (1, single)
            bits = ord(char) - 63
            for _ in range(count):
                for k in range(6):
                    if bits >> k & 1:
                        out[band * 6 + k, x] = palette[colour]
                x += 1
        elif back:
            x = 0
        elif down:
            band, x = band + 1, 0
    return out[:height]


def test_sixel_decodes_back_to_the_image_within_the_palette_error() -> None:
    image = _gradient()[:97, :150]  # a height that is not a multiple of six
    decoded = _decode_sixel(protocols.sixel(image, levels=64))
    assert decoded.shape == image.shape
    assert np.abs(decoded - image.astype(np.int16)).max() <= 255 / 63 / 2 + 1


def test_text_fallbacks_have_one_character_per_cell() -> None:
    art = text.ascii_art(_gradient(), 40, 20).splitlines()
    assert len(art) == 20 and {len(line) for line in art} == {40}
    assert art[0][0] == " " and art[-1][-1] in "%@"
    dots = text.braille(_gradient(), 40, 20).splitlines()
    assert len(dots) == 20 and all(0x2800 <= ord(c) <= 0x28FF for line in dots for c in line)


def test_cells_keep_the_physical_aspect() -> None:
    # 512 x 512 at 0.7 mm, a coronal view 240 rows of 1.25 mm: wider than tall.
    columns, rows = fit_cells(512, 240, 100, 50, pixel_aspect=1.25 / 0.7, cell=(10, 20))
    assert (columns, rows) == (100, round(100 * (240 * 1.25 / 0.7 / 512) / 2))
    assert fit_cells(100, 100, 100, 50, cell=(10, 20)) == (100, 50)
    assert fit_cells(100, 100, 100, 20, cell=(10, 20)) == (40, 20)


def test_a_sixel_image_fits_within_the_largest_the_terminal_shows() -> None:
    """xterm draws no sixel image past its maxGraphicSize (1000 x 1000 by default): in a
    window of 300 x 90 cells of 6 x 13 (1800 x 1170 pixels) the image stays inside it,
    at its aspect, as large as it allows; kitty scales its images, so it is not held."""
    tall = np.zeros((400, 300), np.uint8)  # three wide, four tall
    window = (299, 88)
    kitty = fit_box(tall, "kitty", *window, cell=(6, 13))
    assert kitty[1] == 88 and kitty[1] * 13 > 1000  # the window's height: past the limit
    for cell, limit in [((6, 13), SIXEL_LIMIT), (Cell(6, 13, (800, 480)), (800, 480))]:
        columns, rows = fit_box(tall, "sixel", *window, cell=cell)
        assert columns * 6 <= limit[0] and rows * 13 <= limit[1], (cell, limit)
        assert limit[1] - rows * 13 < 13 or limit[0] - columns * 6 < 6  # as large as it may be
        assert abs(columns * 6 / (rows * 13) - 3 / 4) < 6 / (rows * 13), "not its aspect"
        printed = draw(tall, "sixel", choose_bandwidth("high", {}), *window, cell=cell)
        size = re.search(r'"1;1;(\d+);(\d+)', printed)
        assert size and (int(size.group(1)), int(size.group(2))) == (columns * 6, rows * 13)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"TERM": "xterm-kitty"}, "kitty"),
        ({"TERM": "xterm-256color", "TERM_PROGRAM": "iTerm.app"}, "iterm"),
        ({"TERM": "xterm-256color", "TMUX": "/tmp/tmux-0/default,1,0"}, "halfblock"),
        ({"TERM": "dumb"}, "ascii"),
        ({"TERM": "xterm-256color", "NO_COLOR": "1"}, "ascii"),
        ({"TERM": "xterm-256color"}, None),
    ],
)
def test_detection_from_the_environment(env, expected) -> None:
    assert from_environment(env) == expected


def test_detection_from_replies() -> None:
    assert from_replies(b"\x1b_Gi=31;OK\x1b\\\x1b[?62;22c") == "kitty"
    assert from_replies(b"\x1b[?62;4;9;22c") == "sixel"
    assert from_replies(b"\x1b[?1;2c") == "halfblock"
    assert from_replies(b"") == "halfblock"


def _fake_terminal(reply: bytes | None):
    """A pty whose other end answers our query with ``reply`` (or never answers)."""
    controller, terminal = pty.openpty()

    def answer() -> None:
        asked = os.read(controller, 1024)
        if reply is not None and asked:
            os.write(controller, reply)

    threading.Thread(target=answer, daemon=True).start()
    return controller, terminal


def test_detection_asks_the_terminal() -> None:
    controller, terminal = _fake_terminal(b"\x1b_Gi=31;OK\x1b\\\x1b[?62;22c")
    try:
        assert choose_graphics("auto", {"TERM": "xterm-256color"}, terminal) == "kitty"
    finally:
        os.close(controller)
        os.close(terminal)


def test_a_terminal_that_never_answers_does_not_hang_us() -> None:
    controller, terminal = _fake_terminal(None)
    try:
        started = time.monotonic()
        assert query(terminal, "\x1b[c", timeout=0.3) == b""
        assert time.monotonic() - started < 1.0
        assert choose_graphics("auto", {"TERM": "xterm-256color"}, terminal) == "halfblock"
    finally:
        os.close(controller)
        os.close(terminal)


# What real terminals answered to CSI 16 t, 14 t, 18 t, XTSMGRAPHICS and DA1 under Xvfb.
XTERM_DA1 = b"\x1b[?63;1;2;4;6;9;15;16;22;28c"  # xterm -ti vt340, default resources
KITTY = b"\x1b[6;20;9t\x1b[4;800;1197t\x1b[8;40;133t\x1b[?62;c"  # kitty 0.26, 133 x 40


def test_cell_size_from_what_the_terminal_reports() -> None:
    # kitty says it all; CSI 16 t wins over what the kernel was told
    assert cell_from_replies(KITTY, (40, 133, 1197, 800)) == (9, 20)
    assert cell_from_replies(b"\x1b[4;800;1197t\x1b[8;40;133t", None) == (9, 20)
    # xterm refuses the window reports (allowWindowOps is off) but fills in the kernel's
    # pixel size, with its 2-pixel borders: 120 x 40 cells of its default 6 x 13 font
    assert cell_from_replies(XTERM_DA1, (40, 120, 724, 524)) == (6, 13)
    assert cell_from_replies(XTERM_DA1, (40, 120, 1204, 804)) == (10, 20)  # -fa Monospace
    # no pixels anywhere but the sixel geometry: no larger than the window, so it fits
    sixel = b"\x1b[?2;0;720;520S" + XTERM_DA1
    assert cell_from_replies(sixel, (40, 120, 0, 0)) == (6, 13)
    # a geometry capped at 1000 x 1000 in a big window: a usual cell's shape that fits
    capped = b"\x1b[?2;0;1000;1000S" + XTERM_DA1
    width, height = cell_from_replies(capped, (54, 190, 0, 0))  # type: ignore[misc]
    assert width * 190 <= 1000 and height * 54 <= 1000 and height == 2 * width
    assert cell_from_replies(XTERM_DA1, (40, 120, 0, 0)) is None  # nothing: the caller's default
    assert cell_from_replies(b"\x1b[6;0;0t", None) is None


@contextmanager
def _answering_terminal(answer: Callable[[bytes], bytes]) -> Iterator[tuple[int, list[bytes]]]:
    """A pty whose other end answers each request with ``answer(request)``; yields the
    terminal's end and the requests it received."""
    controller, terminal = pty.openpty()
    asked: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            ready, _, _ = select.select([controller], [], [], 0.05)
            if ready:
                request = os.read(controller, 1024)
                asked.append(request)
                os.write(controller, answer(request))

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        yield terminal, asked
    finally:
        stop.set()
        server.join()
        os.close(controller)
        os.close(terminal)


def _xterm(maximum: bytes) -> Callable[[bytes], bytes]:
    """Answers as xterm does by default: DA1 only, and ``maximum`` to XTSMGRAPHICS's
    read maximum of the sixel geometry."""
    return lambda request: (maximum if b"\x1b[?2;4;0S" in request else b"") + XTERM_DA1


def test_cell_size_asks_the_terminal_then_the_kernel() -> None:
    """A pty that answers like xterm and whose size was set with pixels, as xterm sets
    it: the cell comes from the kernel's size, and the largest sixel image from
    XTSMGRAPHICS, each round trip ended by the DA1 answer."""
    with _answering_terminal(_xterm(b"\x1b[?2;0;800;480S")) as (terminal, asked):
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 724, 524))
        started = time.monotonic()
        cell = cell_size(terminal)
        assert time.monotonic() - started < 0.25  # the DA1 answers ended the waits
        assert cell == (6, 13) and isinstance(cell, Cell) and cell.sixel_limit == (800, 480)
        assert len(asked) == 2 and b"\x1b[?2;4;0S" in asked[1]
    # a sixel terminal that does not know XTSMGRAPHICS: xterm's default limit
    with _answering_terminal(_xterm(b"\x1b[?2;3S")) as (terminal, asked):
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 724, 524))
        cell = cell_size(terminal)
        assert isinstance(cell, Cell) and cell.sixel_limit == SIXEL_LIMIT
    # kitty lists no sixel in DA1, and is never asked XTSMGRAPHICS (it logs an error)
    with _answering_terminal(lambda request: KITTY) as (terminal, asked):
        assert cell_size(terminal) == (9, 20)
        assert len(asked) == 1 and b"\x1b[?2;" not in asked[0]


def test_bandwidth_auto_is_normal_over_ssh() -> None:
    assert choose_bandwidth("auto", {"SSH_CONNECTION": "1 2 3 4"}).name == "normal"
    assert choose_bandwidth("auto", {}).name == "high"
    assert choose_bandwidth("low", {}).mode == LOW
