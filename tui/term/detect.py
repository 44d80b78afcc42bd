"""Which image protocol and bandwidth to use: asked of the user, read from the
environment, or asked of the terminal itself (with a short timeout: a terminal that
never answers must not hang us).

``auto`` graphics: kitty where the terminal answers a kitty graphics query (or says it is
kitty, Ghostty or WezTerm), iTerm2 inline images in iTerm2, sixel where the device
attributes list it, half-blocks otherwise, and inside tmux (whose passthrough is off by
default, and whose maintainers call sixel slow) always half-blocks; ASCII when TERM is
dumb or NO_COLOR is set.

``auto`` bandwidth: ``high`` on a local terminal, ``normal`` over SSH (SSH_CONNECTION or
SSH_TTY set). The link's speed is not measured; choose ``low`` on a slow link.

Sixel images: no larger than the terminal shows (XTSMGRAPHICS, where it answers; else
``SIXEL_LIMIT``, xterm's default), found with the cell size (:func:`cell_size`).

Colours: 24-bit only where the terminal says it has them, read from the environment the
way Textual reads it (:func:`colour_system`), so that the image cells the app writes itself
never hold colours the rest of its screen was downgraded from. ``high`` on a terminal
without them sends the 256-colour palette, as ``normal`` does; a 16-colour terminal gets its
image cells from Textual, which maps the palette onto the 16 colours it has.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import termios
import time
import tty
from collections.abc import Mapping
from dataclasses import dataclass, replace

from tui.errors import UserError
from tui.term.modes import (
    BANDWIDTHS,
    DEFAULT_CELL,
    GRAPHICS,
    HIGH,
    LOW,
    NORMAL,
    SIXEL_LIMIT,
    Cell,
    Mode,
)

_KITTY_QUERY = "\x1b_Gi=31,s=1,v=1,a=q,t=d,f=24;AAAA\x1b\\"
_DEVICE_ATTRIBUTES = "\x1b[c"
_SIXEL_GEOMETRY = "\x1b[?2;1;0S"  # XTSMGRAPHICS: the largest sixel image in this window
_SIXEL_MAXIMUM = "\x1b[?2;4;0S"  # XTSMGRAPHICS: the largest sixel image at all
_SIXEL_REPLY = re.compile(rb"\x1b\[\?2;0;(\d+);(\d+)S")  # success (0), width, height
_REPLY_END = re.compile(rb"\x1b\[\?[\d;]*c")  # every terminal answers DA1; it ends the wait


@dataclass(frozen=True)
class Bandwidth:
    """What a bandwidth setting allows."""

    name: str
    mode: Mode  # half-block colours
    max_cells: tuple[int, int]  # largest image, columns x rows
    fps: float  # frames per second at most (cine, key repeat)


BANDWIDTH = {
    "low": Bandwidth("low", LOW, (80, 30), 4.0),
    "normal": Bandwidth("normal", NORMAL, (160, 60), 12.0),
    "high": Bandwidth("high", HIGH, (400, 150), 30.0),
}


def choose_bandwidth(setting: str, env: Mapping[str, str] | None = None) -> Bandwidth:
    """What ``setting`` (one of :data:`~tui.term.modes.BANDWIDTHS`) allows in the terminal
    that ``env`` describes: ``auto`` by the link, 24-bit colours only where it has them.

    Raises
    ------
    UserError
        If ``setting`` is not one of the choices (a typo in config.toml).
    """
    env = os.environ if env is None else env
    if setting not in BANDWIDTHS:
        raise UserError(f"bandwidth {setting!r}: choose one of {', '.join(BANDWIDTHS)}")
    if setting == "auto":
        remote = bool(env.get("SSH_CONNECTION") or env.get("SSH_TTY"))
        setting = "normal" if remote else "high"
    chosen = BANDWIDTH[setting]
    if chosen.mode.colours == "truecolor" and colour_system(env) != "truecolor":
        chosen = replace(chosen, mode=NORMAL)  # every grey of the palette, the most it has
    return chosen


def colour_system(env: Mapping[str, str]) -> str | None:
    """The colours Textual (through Rich) uses in the terminal ``env`` describes:
    ``truecolor``, ``256``, ``standard`` (16) or None (TERM dumb or unknown).

    TEXTUAL_COLOR_SYSTEM if set, else COLORTERM ``truecolor`` or ``24bit``, else the end of
    TERM (``-256color``, ``-kitty``: 256). Inside tmux, TERM is ``tmux-256color`` or
    ``screen-256color`` and COLORTERM is what the tmux server was started with; tmux itself
    turns 24-bit colours into the palette for a client that lacks them. A TERM whose
    terminfo alone offers 24-bit colours (``xterm-direct``) is read as Textual reads it, not
    as truecolor: set COLORTERM=truecolor there. Kept the same as Textual's rule (tests
    compare them), so the cells of an image and the rest of the screen never disagree.
    """
    forced = env.get("TEXTUAL_COLOR_SYSTEM", "auto")
    if forced != "auto":
        return forced
    if env.get("TERM", "").lower() in ("dumb", "unknown"):
        return None
    if env.get("COLORTERM", "").strip().lower() in ("truecolor", "24bit"):
        return "truecolor"
    suffix = env.get("TERM", "").strip().lower().rpartition("-")[2]
    return {"256color": "256", "kitty": "256", "16color": "standard"}.get(suffix, "standard")


def from_environment(env: Mapping[str, str]) -> str | None:
    """A protocol the environment names for sure, or None to ask the terminal."""
    term = env.get("TERM", "")
    program = env.get("TERM_PROGRAM", "")
    if term == "dumb" or "NO_COLOR" in env:
        return "ascii"
    if env.get("TMUX"):
        return "halfblock"
    if "kitty" in term or env.get("KITTY_WINDOW_ID") or "ghostty" in term:
        return "kitty"
    if program == "WezTerm":
        return "kitty"
    if program == "iTerm.app":
        return "iterm"
    return None


def from_replies(replies: bytes) -> str:
    """A protocol from the terminal's answers to the kitty query and DA1."""
    if b"\x1b_Gi=31;OK" in replies:
        return "kitty"
    return "sixel" if _lists_sixel(replies) else "halfblock"


def _lists_sixel(replies: bytes) -> bool:
    """Do the device attributes (DA1) among ``replies`` list sixel graphics (4)?"""
    attributes = re.search(rb"\x1b\[\?([\d;]*)c", replies)
    return attributes is not None and "4" in attributes.group(1).decode().split(";")


def choose_graphics(
    setting: str, env: Mapping[str, str] | None = None, tty_fd: int | None = None
) -> str:
    """The protocol to use for ``setting`` (``auto`` asks the environment, then the
    terminal on ``tty_fd``, if any).

    Raises
    ------
    UserError
        If ``setting`` is not one of :data:`~tui.term.modes.GRAPHICS`.
    """
    if setting not in GRAPHICS:
        raise UserError(f"graphics {setting!r}: choose one of {', '.join(GRAPHICS)}")
    if setting != "auto":
        return setting
    env = os.environ if env is None else env
    known = from_environment(env)
    if known is not None:
        return known
    if tty_fd is None or not os.isatty(tty_fd):
        return "halfblock"
    return from_replies(query(tty_fd, _KITTY_QUERY + _DEVICE_ATTRIBUTES))


def cell_size(fd: int | None) -> Cell | None:
    """The terminal's cell size in pixels (width, height), from what it reports, or None
    when it reports nothing (callers then use ``DEFAULT_CELL``, a VT340's cell), with the
    largest sixel image it shows.

    A sixel image is as many pixels as its box of cells, so a cell guessed too large draws
    an image taller than the window, whose top scrolls away (xterm refuses CSI 16 t and
    CSI 14 t by default, and its default font's cell is 6 x 13, not 10 x 20). Asked in
    one round trip: CSI 16 t (the cell), CSI 14 t and 18 t (the text area in pixels and
    in cells); then the kernel's window size, which xterm and kitty fill in pixels too;
    last, XTSMGRAPHICS (the largest sixel image, asked only then: kitty logs it as an
    error). See :func:`cell_from_replies` for how they are weighed.

    Where the device attributes list sixel (kitty's do not), one more round trip reads the
    largest sixel image at all (XTSMGRAPHICS, read maximum: xterm draws none larger, 1000
    x 1000 pixels by default, whatever its window). Not the largest in this window,
    which shrinks with it: the app's window may grow later.
    """
    if fd is None or not os.isatty(fd):
        return None
    window = window_size(fd)
    replies = query(fd, "\x1b[16t\x1b[14t\x1b[18t" + _DEVICE_ATTRIBUTES)
    found = cell_from_replies(replies, window)
    if found is None:
        replies += query(fd, _SIXEL_GEOMETRY + _DEVICE_ATTRIBUTES)
        found = cell_from_replies(replies, window)
    if found is None:
        return None
    limit = SIXEL_LIMIT
    if _lists_sixel(replies):
        limit = _sixel_limit(query(fd, _SIXEL_MAXIMUM + _DEVICE_ATTRIBUTES)) or limit
    return Cell(*found, limit)


def _sixel_limit(reply: bytes) -> tuple[int, int] | None:
    """The largest sixel image (width, height in pixels) from a terminal's ``reply`` to
    XTSMGRAPHICS, or None where it failed or said nothing."""
    found = _SIXEL_REPLY.search(reply)
    if found is None or int(found.group(1)) <= 0 or int(found.group(2)) <= 0:
        return None
    return int(found.group(1)), int(found.group(2))


def window_size(fd: int) -> tuple[int, int, int, int] | None:
    """The kernel's size of the terminal on ``fd``: rows, columns, width and height in
    pixels (0 where the terminal does not say), or None if ``fd`` is not a terminal."""
    try:
        packed = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None
    rows, columns, width, height = struct.unpack("HHHH", packed)
    return rows, columns, width, height


def cell_from_replies(
    replies: bytes, window: tuple[int, int, int, int] | None = None
) -> tuple[int, int] | None:
    """The cell size (width, height) in pixels from a terminal's ``replies`` to CSI 16 t,
    14 t, 18 t and XTSMGRAPHICS, and the kernel's ``window`` size (rows, columns, pixel
    width, pixel height), in this order of trust: the cell itself; the text area in
    pixels over its cells; the window's pixels over its cells (floored: xterm counts its
    borders in them); the sixel geometry over the cells, which is never larger than the
    window (an image sized from it fits, if smaller than it could be: xterm caps the
    geometry at 1000 x 1000 pixels by default).
    """
    found = re.search(rb"\x1b\[6;(\d+);(\d+)t", replies)
    if found:
        return _cell(int(found.group(2)), int(found.group(1)), 1, 1)
    rows, columns = (window[0], window[1]) if window else (0, 0)
    found = re.search(rb"\x1b\[8;(\d+);(\d+)t", replies)
    if found:
        rows, columns = int(found.group(1)), int(found.group(2))
    found = re.search(rb"\x1b\[4;(\d+);(\d+)t", replies)
    if found and (cell := _cell(int(found.group(2)), int(found.group(1)), columns, rows)):
        return cell
    if window and (cell := _cell(window[2], window[3], window[1], window[0])):
        return cell
    found = _SIXEL_REPLY.search(replies)
    if found and (cell := _cell(int(found.group(1)), int(found.group(2)), columns, rows)):
        if 1.5 <= cell[1] / cell[0] <= 3:
            return cell
        # capped on one side only: a usual cell's shape that fits both sides
        scale = min(cell[0] / DEFAULT_CELL[0], cell[1] / DEFAULT_CELL[1])
        return _cell(int(DEFAULT_CELL[0] * scale), int(DEFAULT_CELL[1] * scale), 1, 1)
    return None


def _cell(width: int, height: int, columns: int, rows: int) -> tuple[int, int] | None:
    """``width`` x ``height`` pixels over ``columns`` x ``rows`` cells, None if empty."""
    if columns <= 0 or rows <= 0 or width < columns or height < rows:
        return None
    return width // columns, height // rows


def query(fd: int, request: str, timeout: float = 0.25) -> bytes:
    """Send ``request`` to the terminal on ``fd`` and collect its replies until the DA1
    answer arrives or ``timeout`` seconds pass. The terminal's modes are restored."""
    saved = termios.tcgetattr(fd)
    received = b""
    try:
        tty.setcbreak(fd, termios.TCSANOW)
        os.write(fd, request.encode())
        deadline = time.monotonic() + timeout
        while not _REPLY_END.search(received):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            received += chunk
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)
    return received
