"""Benchmark the Textual app in a real pseudo-terminal: cold start, slice step, memory.

Measured, each beside its anchor in the same run:

* cold start to first paint: ``python -m tui --archive DIR`` is run in a pty (pty.fork,
  TERM=xterm-256color, COLORTERM=truecolor, a 120 x 40 window set with TIOCSWINSZ) on an
  archive index of ``--instances`` instances (default 100,000, built without files by
  ``benchmarks.bench_ls.build``), timed from the fork until the output holds
  ``patients`` (the browser's subtitle, set in the same call that fills the tree with the
  first patients); then Ctrl+Q is sent and the exit awaited (killed after a timeout).
  Anchors: ``python -c "import textual"`` (subprocess wall time, as bench_ls measures it)
  and a minimal Textual app (a ``Static("ready")``) timed in the pty the same way until
  ``ready`` shows. One untimed run of each comes first (it writes the bytecode cache);
* key press to new frame: a driver script runs ``PacsApp(archive, BANDWIDTH["normal"])``
  on an archive of one real series (``--series``, default the 130-slice 256 x 256 GE MR of
  /work/shared/dicom/neurolabusc_dcm_qa_ge, imported into a temporary archive); once the
  browser has listed the patients it pushes ``ViewerScreen`` on the first series. When
  the first frame is on screen, ``j`` is written to the pty ``--keys`` times,
  ``--key-interval`` seconds apart, and each time measured from the write until the first
  half-block byte (U+2580 or U+2584) arrives in the new output. The driver also wraps
  ``ImageView._write_direct`` to send an APC marker (ignored by terminals) before and
  after each frame it writes, so that the frame's start, its end and its bytes are known
  exactly. Anchor: the same round trip in a minimal Textual app whose binding for ``j``
  updates a ``Static`` label, until the new label text arrives;
* turning a volume rendering: the same driver on the demo's 512 x 512 x 240 CT (built
  with ``--demo DIR``, or in the scratch folder); ``v`` starts the rendering, then ``l``
  (a 15° turn) is written ``--keys`` times, each timed to the end of the coarse frame and
  of the full frame that follow it (the marked frames). Target: full frame <= 200 ms;
* memory: a fresh process imports ``tui.app.app`` (Textual included), builds
  ``PacsApp(archive, BANDWIDTH["normal"])`` and calls ``app.render_series(uid,
  Request(plane="axial", mode="mip"))``, which loads a ``--slices`` x ``--size`` x
  ``--size`` int16 CT series (generated as benchmarks/bench_render.py does, or reused
  from ``--tree``) into the app's volume cache. VmRSS and VmHWM from /proc/self/status
  are reported at process start, after the imports, after the app is built and after the
  render, with the loaded volume's bytes.

Targets: cold start to first paint <= 0.5 s (median of ``--runs``); key press to new
frame <= 50 ms at 120 x 40 with the half-block encoder (median of ``--keys``; min and
p90 are reported too); total RSS with the volume loaded (VmRSS after the render) <=
1.5 x the volume's bytes + 150 MB (the peak, VmHWM, is reported against the same bound).

The children run with a bytecode cache in a temporary PYTHONPYCACHEPREFIX (as
benchmarks/bench_ls.py does), XDG_* folders in the scratch folder (no user config,
theme or log file is read or written) and no PACS_TUI_ARCHIVE, TMUX, NO_COLOR or
SSH_* variables.

Prints one JSON object on stdout; progress goes to stderr. Generated data lives in a
temporary folder under /tmp, removed at the end; ``--archive DIR`` keeps (and reuses)
the 100,000-instance archive and ``--tree DIR`` the generated CT series (in
``DIR/ct-<slices>``, shared with bench_render.py's ``--tree``).
"""

from __future__ import annotations

import argparse
import bisect
import errno
import fcntl
import json
import os
import platform
import pty
import re
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
import traceback
from collections.abc import Callable
from functools import partial
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_ls import build, child_env, counts, time_command  # noqa: E402
from benchmarks.bench_render import prepare_series  # noqa: E402
from tui.archive.importer import import_paths  # noqa: E402
from tui.archive.index import INDEX_NAME, Archive  # noqa: E402
from tui.archive.query import search  # noqa: E402

START_TARGET_S = 0.5
KEY_TARGET_MS = 50.0
TURN_TARGET_MS = 200.0  # one turn of a volume rendering, key to its full frame
MEMORY_RATIO = 1.5
MEMORY_EXTRA = 150 * 2**20
COLUMNS, ROWS = 120, 40
GE_SERIES = Path("/work/shared/dicom/neurolabusc_dcm_qa_ge")
HALF_BLOCKS = (b"\xe2\x96\x80", b"\xe2\x96\x84")  # U+2580 upper, U+2584 lower half block
FRAME_START = b"\x1b_pacs-bench-frame-start\x1b\\"
FRAME_END = b"\x1b_pacs-bench-frame-end\x1b\\"
CTRL_Q = b"\x11"

MINIMAL_APP = """
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Static


class Minimal(App[None]):
    BINDINGS = [
        Binding("j", "step", "Step"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def compose(self) -> ComposeResult:
        yield Static("ready", id="label")

    def action_step(self) -> None:
        self.count += 1
        self.query_one("#label", Static).update(f"key {self.count:04d}")


Minimal().run()
"""

VIEWER_DRIVER = """
import sys
from pathlib import Path

from tui.app.app import PacsApp
from tui.app.browser import BrowserScreen
from tui.app.image_view import ImageView
from tui.app.viewer import ViewerScreen
from tui.archive.index import Archive
from tui.archive.query import search
from tui.term.detect import BANDWIDTH

START, END = sys.argv[2], sys.argv[3]
_write_direct = ImageView._write_direct


def _marked(self, cells, previous):
    driver = getattr(self.app, "_driver", None)
    direct = driver is not None and not self.app.is_headless and self.screen is self.app.screen
    if direct:
        driver.write(START)
    done = _write_direct(self, cells, previous)
    if direct:
        driver.write(END)
        driver.flush()
    return done


ImageView._write_direct = _marked


class Bench(PacsApp):
    def __init__(self, archive, series):
        super().__init__(archive, BANDWIDTH["normal"])
        self.series = series
        self.opened = False

    def on_mount(self) -> None:
        # PacsApp.on_mount (the browser) runs as well: Textual calls each class's handler.
        self.poll = self.set_interval(0.02, self.open_viewer)

    def open_viewer(self) -> None:
        screen = self.screen
        if self.opened or not isinstance(screen, BrowserScreen):
            return
        if not str(screen.sub_title).endswith(("patients", "patient")):
            return
        self.opened = True
        self.poll.stop()
        self.push_screen(ViewerScreen(self.series))


archive = Archive(Path(sys.argv[1]), create=False)
wanted = sys.argv[4] if len(sys.argv) > 4 else None
shown = [s for s in search(archive, "series") if wanted in (None, s["SeriesInstanceUID"])]
Bench(archive, shown[0]).run()
"""

MEMORY_SCRIPT = """
import json
import sys
import time


def status():
    out = {}
    with open("/proc/self/status") as fp:
        for line in fp:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


stages = {"start": status()}
from pathlib import Path

import tui.app.app as app_module

stages["imported"] = status()
from tui.archive.index import Archive
from tui.render.pipeline import Request
from tui.term.detect import BANDWIDTH

archive = Archive(Path(sys.argv[1]), create=False)
app = app_module.PacsApp(archive, BANDWIDTH["normal"])
stages["app_built"] = status()
started = time.perf_counter()
rendered = app.render_series(sys.argv[2], Request(plane="axial", mode="mip"))
seconds = time.perf_counter() - started
stages["rendered"] = status()
volumes = list(app._cache._volumes.values())
print(json.dumps({
    "stages": stages,
    "render_seconds": seconds,
    "volumes": len(volumes),
    "volume_bytes": sum(v.nbytes for v in volumes),
    "volume_shape": [list(v.data.shape) for v in volumes],
    "volume_dtype": [str(v.data.dtype) for v in volumes],
    "image_shape": list(rendered.image.shape),
}))
"""


def note(message: str) -> None:
    print(f"[bench_app] {message}", file=sys.stderr, flush=True)


# --- a child in a pseudo-terminal -------------------------------------------------------


# xterm's reply to the primary device attributes query (no sixel): a real terminal answers
# within a round trip, and graphics detection waits for it.
XTERM_DEVICE_ATTRIBUTES = b"\x1b[?64;1;2;6;9;15;18;21;22c"


class PtyChild:
    """A command in its own pseudo-terminal; everything it writes is kept with the time
    each chunk arrived."""

    def __init__(
        self, argv: list[str], env: dict[str, str], cwd: Path, columns: int, rows: int
    ) -> None:
        size = struct.pack("HHHH", rows, columns, 0, 0)
        self.started = time.perf_counter()
        pid, fd = pty.fork()
        if pid == 0:  # the child: never returns into the benchmark's code
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ, size)
                os.chdir(cwd)
                os.execve(argv[0], argv, env)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, size)
        self.output = bytearray()
        self._ends: list[int] = []  # the output's length after each chunk...
        self._times: list[float] = []  # ...and when that chunk was read
        self.eof = False
        self.exit_code: int | None = None

    def __enter__(self) -> PtyChild:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.kill()

    def read(self, timeout: float) -> bool:
        """Read what is there within ``timeout`` seconds; False once nothing more can come."""
        if self.eof:
            return False
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not ready:
            return True
        try:
            chunk = os.read(self.fd, 1 << 16)
        except OSError as exc:  # EIO: the child and its terminal are gone
            if exc.errno not in (errno.EIO, errno.EBADF):
                raise
            chunk = b""
        now = time.perf_counter()
        if not chunk:
            self.eof = True
            return False
        self.output += chunk
        self._ends.append(len(self.output))
        self._times.append(now)
        if b"\x1b[c" in chunk:  # pacs-tui asks what the terminal can draw: answer as xterm
            os.write(self.fd, XTERM_DEVICE_ATTRIBUTES)
        return True

    def drain(self, seconds: float) -> None:
        """Keep reading for ``seconds`` (the child never blocks on a full terminal)."""
        deadline = time.perf_counter() + seconds
        while True:
            left = deadline - time.perf_counter()
            if left <= 0 or not self.read(left):
                return

    def wait_until(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        """Read until ``done()``; raise (with the output's tail) after ``timeout`` seconds."""
        deadline = time.perf_counter() + timeout
        while not done():
            left = deadline - time.perf_counter()
            if left <= 0 or not self.read(min(left, 0.5)):
                if done():
                    return
                tail = bytes(self.output[-600:])
                raise TimeoutError(f"no {what} after {timeout:g} s; output ends {tail!r}")

    def wait_for(self, needle: bytes, timeout: float) -> None:
        """Read until the output holds ``needle`` (or, if empty, any byte)."""

        def found() -> bool:
            return len(self.output) > 0 and self.find(needle, 0) >= 0

        self.wait_until(found, timeout, repr(needle) if needle else "output")

    def find(self, needle: bytes, start: int) -> int:
        return self.output.find(needle, start)

    def arrival(self, position: int) -> float:
        """When the byte at ``position`` of the output was read."""
        return self._times[bisect.bisect_right(self._ends, position)]

    def write(self, data: bytes) -> float:
        os.write(self.fd, data)
        return time.perf_counter()

    def quit(self, timeout: float) -> float:
        """Send Ctrl+Q and wait for the exit; kill after ``timeout``. Seconds to exit."""
        try:
            sent = self.write(CTRL_Q)
        except OSError:  # it is already gone
            sent = time.perf_counter()
        deadline = sent + timeout
        while time.perf_counter() < deadline:
            self.read(0.05)
            if self._reap():
                return time.perf_counter() - sent
        self.kill()
        raise TimeoutError(f"no exit {timeout:g} s after Ctrl+Q; the child was killed")

    def _reap(self) -> bool:
        if self.exit_code is not None:
            return True
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return False
        self.exit_code = os.waitstatus_to_exitcode(status)
        return True

    def kill(self) -> None:
        """Kill the child if it still runs, reap it, close the terminal."""
        try:
            if not self._reap():
                os.kill(self.pid, signal.SIGKILL)
                _, status = os.waitpid(self.pid, 0)
                self.exit_code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            pass
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
            self.eof = True


def pty_env(env: dict[str, str], scratch: Path) -> dict[str, str]:
    """The children's environment: a modern terminal, the user's folders kept out."""
    out = dict(env)
    for name in ("TMUX", "NO_COLOR", "SSH_CONNECTION", "SSH_TTY", "SSH_CLIENT", "TERM_PROGRAM"):
        out.pop(name, None)
    out.update(TERM="xterm-256color", COLORTERM="truecolor", LANG="C.UTF-8", LC_ALL="C.UTF-8")
    for name in ("CONFIG", "DATA", "STATE", "CACHE"):
        folder = scratch / "xdg" / name.lower()
        folder.mkdir(parents=True, exist_ok=True)
        out[f"XDG_{name}_HOME"] = str(folder)
    return out


# --- statistics -------------------------------------------------------------------------


def summary(values: list[float], scale: float, unit: str) -> dict[str, Any]:
    """min, median, p90 (nearest rank) and max of ``values`` times ``scale``."""
    ordered = sorted(v * scale for v in values)
    p90 = ordered[max(0, -(-len(ordered) * 9 // 10) - 1)]
    digits = {"ms": 2, "s": 4}.get(unit)

    def shown(value: float) -> float | int:
        return round(value) if digits is None else round(value, digits)

    return {
        f"min_{unit}": shown(ordered[0]),
        f"median_{unit}": shown(statistics.median(ordered)),
        f"p90_{unit}": shown(p90),
        f"max_{unit}": shown(ordered[-1]),
        "n": len(ordered),
    }


# --- 1. cold start ----------------------------------------------------------------------


def cold_start(
    argv: list[str],
    needle: bytes,
    env: dict[str, str],
    runs: int,
    timeout: float,
    also: bytes | None = None,
) -> dict[str, Any]:
    """Fork to ``needle`` in the output, ``runs`` times after one untimed run; with
    ``also``, the time to that text too (awaited for a second at most)."""
    first_output: list[float] = []
    paint: list[float] = []
    other: list[float] = []
    exits: list[float] = []
    last = b""
    for attempt in range(runs + 1):
        with PtyChild(argv, env, REPO, COLUMNS, ROWS) as child:
            child.wait_for(b"", timeout)
            child.wait_for(needle, timeout)
            position = child.find(needle, 0) + len(needle) - 1
            painted = child.arrival(position) - child.started
            first = child.arrival(0) - child.started
            child.drain(0.2)  # let it finish the frame before quitting
            if also is not None:
                child.wait_for(also, 1.0)
                found = child.arrival(child.find(also, 0) + len(also) - 1) - child.started
            exit_s = child.quit(timeout)
            if child.exit_code != 0:
                raise SystemExit(f"{argv} exited with {child.exit_code}")
            last = bytes(child.output)
        if attempt:
            first_output.append(first)
            paint.append(painted)
            exits.append(exit_s)
            if also is not None:
                other.append(found)
    out = {
        "first_paint": summary(paint, 1.0, "s"),
        "first_output_byte": summary(first_output, 1.0, "s"),
        "exit_after_ctrl_q": summary(exits, 1.0, "s"),
        "output_bytes_last_run": len(last),
        "_last_output": last,
    }
    if also is not None:
        out[f"to_{also.decode()}"] = summary(other, 1.0, "s")
    return out


def bench_start(
    args: argparse.Namespace, scratch: Path, env: dict[str, str], tty_env: dict[str, str]
) -> dict[str, Any]:
    root: Path = args.archive or scratch / "archive-100k"
    build_s = None
    if (root / INDEX_NAME).exists():
        note(f"reusing the archive at {root}")
    else:
        note(f"building an archive of {args.instances} instances at {root}")
        build_s = build(root, args.instances, 25, 4)
        note(f"built in {build_s:.1f} s")
    tables = counts(root)
    py = sys.executable
    app = cold_start(
        [py, "-m", "tui", "--archive", str(root)],
        b"patients",
        tty_env,
        args.runs,
        args.timeout,
        also=b"Patient00000",  # the first patient's name (bench_ls's fake names)
    )
    last = app.pop("_last_output")
    shown = re.search(rb"(\d+) patients", last)
    app["patients_in_subtitle"] = int(shown.group(1)) if shown else None
    note(f"app: first paint median {app['first_paint']['median_s']:.3f} s")
    minimal_path = scratch / "minimal_app.py"
    minimal_path.write_text(MINIMAL_APP)
    minimal = cold_start([py, str(minimal_path)], b"ready", tty_env, args.runs, args.timeout)
    minimal.pop("_last_output")
    note(f"minimal Textual app: first paint median {minimal['first_paint']['median_s']:.3f} s")
    textual = time_command([py, "-c", "import textual"], args.runs, env)
    python = time_command([py, "-c", "pass"], args.runs, env)
    note(f"import textual: median {textual['median_s']:.3f} s")
    median = app["first_paint"]["median_s"]
    return {
        "instances": tables["instance"],
        "tables": tables,
        "build_seconds": None if build_s is None else round(build_s, 2),
        "app": app,
        "anchor_minimal_textual_app": minimal,
        "anchor_import_textual": textual,
        "context_python_pass": python,
        "ratio_app_over_minimal_app": round(median / minimal["first_paint"]["median_s"], 3),
        "app_minus_minimal_app_s": round(median - minimal["first_paint"]["median_s"], 4),
        "target_max_s": START_TARGET_S,
        "met": median <= START_TARGET_S and tables["instance"] >= 100_000,
    }


# --- 2. key press to new frame ----------------------------------------------------------


def first_half_block(child: PtyChild, start: int) -> int:
    found = [p for p in (child.find(h, start) for h in HALF_BLOCKS) if p >= 0]
    return min(found) if found else -1


def _shown(arrived: Callable[[int, int], int], start: int, n: int) -> bool:
    return arrived(start, n) >= 0


def key_steps(
    child: PtyChild,
    keys: int,
    interval: float,
    timeout: float,
    arrived: Callable[[int, int], int],
) -> list[tuple[int, float]]:
    """Write ``j`` ``keys`` times, ``interval`` seconds apart; ``arrived(start, n)`` is
    the position of the byte that shows the n-th step in the output from ``start`` (-1:
    not yet), awaited after each key. Returns where each key's output starts and when the
    key was written."""
    steps: list[tuple[int, float]] = []
    for n in range(1, keys + 1):
        child.drain(0.0)
        start = len(child.output)
        sent = child.write(b"j")
        child.wait_until(partial(_shown, arrived, start, n), timeout, f"frame for key {n}")
        steps.append((start, sent))
        child.drain(max(0.0, sent + interval - time.perf_counter()))
    return steps


def seconds_to(
    child: PtyChild, steps: list[tuple[int, float]], position: Callable[[int, int], int]
) -> list[float]:
    """Seconds from each key to the arrival of the byte at ``position(start, n)``."""
    return [child.arrival(position(start, n)) - sent for n, (start, sent) in enumerate(steps, 1)]


def bench_keys(args: argparse.Namespace, scratch: Path, tty_env: dict[str, str]) -> dict[str, Any]:
    root = scratch / "archive-series"
    with Archive(root) as archive:
        imported = import_paths(archive, [args.series])
        series = search(archive, "series")[0]
    note(
        f"imported {imported.new} files; viewing {series['Modality']} "
        f"{series['SeriesDescription']} ({series['NumberOfSeriesRelatedInstances']} images)"
    )
    py = sys.executable
    driver = scratch / "viewer_driver.py"
    driver.write_text(VIEWER_DRIVER)
    argv = [py, str(driver), str(root), FRAME_START.decode(), FRAME_END.decode()]
    with PtyChild(argv, tty_env, REPO, COLUMNS, ROWS) as child:
        # The first picture is painted by Textual (a new size: no markers).
        child.wait_until(lambda: first_half_block(child, 0) >= 0, args.timeout, "a picture")
        first_frame_s = child.arrival(first_half_block(child, 0)) - child.started
        child.drain(2.0)  # the viewer opens; its overlays and footer settle

        def frame_done(start: int, n: int) -> int:
            # The key's first half-block byte once the marked frame after it is complete (its
            # end, for a frame whose changed cells are all blank).
            end = child.find(FRAME_END, start)
            if end < 0:
                return -1
            block = first_half_block(child, start)
            return block if 0 <= block < end else end

        steps = key_steps(child, args.keys, args.key_interval, args.timeout, frame_done)
        to_block = seconds_to(child, steps, frame_done)
        to_output = seconds_to(child, steps, lambda start, n: start)
        to_start = seconds_to(
            child, steps, lambda start, n: child.find(FRAME_START, start) + len(FRAME_START) - 1
        )
        to_end = seconds_to(
            child, steps, lambda start, n: child.find(FRAME_END, start) + len(FRAME_END) - 1
        )
        frame_bytes, frames_per_key, before_marker = [], [], 0
        for index, (start, _) in enumerate(steps):
            stop = steps[index + 1][0] if index + 1 < len(steps) else len(child.output)
            begin, end = child.find(FRAME_START, start), child.find(FRAME_END, start)
            frame_bytes.append(float(end - begin - len(FRAME_START)))
            frames_per_key.append(child.output.count(FRAME_START, start, stop))
            before_marker += first_half_block(child, start) < begin
        child.quit(args.timeout)
    note(f"app: key to first half-block byte median {statistics.median(to_block) * 1e3:.1f} ms")

    minimal_path = scratch / "minimal_app.py"
    minimal_path.write_text(MINIMAL_APP)
    with PtyChild([py, str(minimal_path)], tty_env, REPO, COLUMNS, ROWS) as child:
        child.wait_for(b"ready", args.timeout)
        child.drain(1.0)

        def label_done(start: int, n: int) -> int:
            label = f"key {n:04d}".encode()
            found = child.find(label, start)
            return found + len(label) - 1 if found >= 0 else -1

        steps = key_steps(child, args.keys, args.key_interval, args.timeout, label_done)
        label_s = seconds_to(child, steps, label_done)
        label_output = seconds_to(child, steps, lambda start, n: start)
        child.quit(args.timeout)
    note(f"minimal Textual app: key to label median {statistics.median(label_s) * 1e3:.1f} ms")
    median_ms = statistics.median(to_block) * 1000
    return {
        "series": {
            "path": str(args.series),
            "modality": series["Modality"],
            "description": series["SeriesDescription"],
            "images": series["NumberOfSeriesRelatedInstances"],
        },
        "terminal": f"{COLUMNS}x{ROWS}",
        "bandwidth": "normal",
        "keys": args.keys,
        "key_interval_s": args.key_interval,
        "first_picture_after_start_s": round(first_frame_s, 3),
        "key_to_first_half_block": summary(to_block, 1000, "ms"),
        "key_to_first_half_block_each_ms": [round(t * 1000, 1) for t in to_block],
        "key_to_frame_start_marker": summary(to_start, 1000, "ms"),
        "key_to_frame_end_marker": summary(to_end, 1000, "ms"),
        "key_to_first_output_byte": summary(to_output, 1000, "ms"),
        "frame_bytes": summary(frame_bytes, 1, "bytes"),
        "frames_per_key": sorted(set(frames_per_key)),
        "half_blocks_before_frame_marker": before_marker,
        "anchor_minimal_app_key_to_label": summary(label_s, 1000, "ms"),
        "anchor_minimal_app_key_to_first_output_byte": summary(label_output, 1000, "ms"),
        "target_median_ms_max": KEY_TARGET_MS,
        "met": median_ms <= KEY_TARGET_MS,
    }


# --- 2b. turning a volume rendering -------------------------------------------------------


def bench_turns(args: argparse.Namespace, scratch: Path, tty_env: dict[str, str]) -> dict[str, Any]:
    """The viewer on the demo's 512 x 512 x 240 CT, ``v`` for the volume rendering, then
    ``l`` (15° toward the patient's left) ``--keys`` times: from each key to the end of
    its coarse frame and of its full frame (the two marked frames after it)."""
    from tui.archive.demo import build_demo

    root = args.demo or scratch / "demo"
    archive = build_demo(root)
    try:
        series = search(archive, "series")
        ct = max((s for s in series if s["Modality"] == "CT"),
                 key=lambda s: s["NumberOfSeriesRelatedInstances"])  # fmt: skip
    finally:
        archive.close()
    driver = scratch / "viewer_driver.py"
    driver.write_text(VIEWER_DRIVER)
    argv = [
        sys.executable, str(driver), str(root), FRAME_START.decode(), FRAME_END.decode(),
        ct["SeriesInstanceUID"],
    ]  # fmt: skip

    def frames_after(start: int, count: int) -> int:
        """The position of the ``count``-th frame end after ``start`` (-1: not yet)."""
        at = start
        for _ in range(count):
            at = child.find(FRAME_END, at)
            if at < 0:
                return -1
            at += len(FRAME_END)
        return at - 1

    with PtyChild(argv, tty_env, REPO, COLUMNS, ROWS) as child:
        # The viewer's first frame is painted by Textual (a new size: no markers).
        child.wait_until(lambda: first_half_block(child, 0) >= 0, args.timeout, "a picture")
        child.drain(3.0)
        start = len(child.output)
        sent = child.write(b"v")  # loads the renderer (compiled once a machine: slow)
        # Its coarse frame is painted by Textual too (another size); the full one is marked.
        child.wait_until(lambda: frames_after(start, 1) >= 0, 10 * args.timeout, "first VR")
        first_vr_s = child.arrival(frames_after(start, 1)) - sent
        child.drain(1.0)
        coarse, full = [], []
        for n in range(1, args.keys + 1):
            child.drain(0.0)
            start = len(child.output)
            sent = child.write(b"l")
            done = partial(lambda at: frames_after(at, 2) >= 0, start)
            child.wait_until(done, args.timeout, f"turn {n}")
            coarse.append(child.arrival(frames_after(start, 1)) - sent)
            full.append(child.arrival(frames_after(start, 2)) - sent)
            child.drain(max(0.0, sent + args.key_interval - time.perf_counter()))
        child.quit(args.timeout)
    median_ms = statistics.median(full) * 1000
    note(f"VR turn: key to full frame median {median_ms:.1f} ms")
    return {
        "series": f"{ct['SeriesDescription']} ({ct['NumberOfSeriesRelatedInstances']} images)",
        "terminal": f"{COLUMNS}x{ROWS}, half-blocks",
        "keys": args.keys,
        "first_rendering_after_v_s": round(first_vr_s, 3),
        "key_to_coarse_frame": summary(coarse, 1000, "ms"),
        "key_to_full_frame": summary(full, 1000, "ms"),
        "target_median_ms_max": TURN_TARGET_MS,
        "met": median_ms <= TURN_TARGET_MS,
    }


# --- 3. memory --------------------------------------------------------------------------


def bench_memory(args: argparse.Namespace, scratch: Path, env: dict[str, str]) -> dict[str, Any]:
    tree, generate_s = prepare_series(args.tree, scratch, "ct", args.slices, args.size, False)
    root = scratch / "archive-ct"
    with Archive(root) as archive:
        started = time.perf_counter()
        imported = import_paths(archive, [tree])
        import_s = time.perf_counter() - started
        uid = search(archive, "series")[0]["SeriesInstanceUID"]
    note(f"imported {imported.new} files in {import_s:.1f} s; measuring memory")
    try:  # untimed: fills the bytecode cache, so the probe's imports do not compile
        subprocess.run(
            [sys.executable, "-c", "import tui.app.app"],
            cwd=REPO,
            env=env,
            timeout=args.timeout,
            check=True,
            capture_output=True,
        )
        done = subprocess.run(
            [sys.executable, "-c", MEMORY_SCRIPT, str(root), uid],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=env,
            timeout=args.timeout * 5,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SystemExit("memory probe timed out") from None
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"import tui.app.app failed:\n{exc.stderr.decode()}") from None
    if done.returncode:
        raise SystemExit(f"memory probe failed:\n{done.stderr}")
    got = json.loads(done.stdout)
    stages = got["stages"]
    volume = got["volume_bytes"]
    bound = MEMORY_RATIO * volume + MEMORY_EXTRA
    rss, hwm = stages["rendered"]["VmRSS"], stages["rendered"]["VmHWM"]
    mb = 2**20
    return {
        "slices": args.slices,
        "size": args.size,
        "generate_seconds": round(generate_s, 2),
        "import_seconds": round(import_s, 2),
        "render_seconds": round(got["render_seconds"], 3),
        "volume_shape": got["volume_shape"],
        "volume_dtype": got["volume_dtype"],
        "volume_bytes": volume,
        "image_shape": got["image_shape"],
        "stages_bytes": stages,
        "rss_increase_from_start": rss - stages["start"]["VmRSS"],
        "rss_increase_from_imports": rss - stages["imported"]["VmRSS"],
        "rss_increase_from_app_built": rss - stages["app_built"]["VmRSS"],
        "hwm_increase_from_app_built": hwm - stages["app_built"]["VmRSS"],
        "textual_and_app_imports_bytes": stages["imported"]["VmRSS"] - stages["start"]["VmRSS"],
        "rss_mb": round(rss / mb, 1),
        "hwm_mb": round(hwm / mb, 1),
        "bound_mb": round(bound / mb, 1),
        "rss_over_volume": round(rss / volume, 3),
        "increase_over_volume": round((rss - stages["app_built"]["VmRSS"]) / volume, 3),
        "target": "VmRSS after the render <= 1.5 x volume_bytes + 150 MB",
        "met": rss <= bound,
        "peak_met": hwm <= bound,
    }


# --- the run ----------------------------------------------------------------------------


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("textual", "rich", "numpy", "pydicom"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="pacs-bench-app-", dir="/tmp"))
    try:
        env = child_env(None if args.no_bytecode_cache else scratch / "pycache")
        tty_env = pty_env(env, scratch)
        results: dict[str, Any] = {}
        if "start" in args.only:
            results["cold_start"] = bench_start(args, scratch, env, tty_env)
        if "keys" in args.only:
            results["key_to_frame"] = bench_keys(args, scratch, tty_env)
        if "turns" in args.only:
            results["vr_turn"] = bench_turns(args, scratch, tty_env)
        if "memory" in args.only:
            results["memory"] = bench_memory(args, scratch, env)
        targets = {name: value["met"] for name, value in results.items()}
        return {
            "benchmark": "app",
            **results,
            "targets": targets,
            "all_met": all(targets.values()),
            "runs": args.runs,
            "bytecode_cache": not args.no_bytecode_cache,
            "cpu_count": os.cpu_count(),
            "versions": versions(),
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=100_000, help="of the start archive")
    parser.add_argument(
        "--archive",
        type=Path,
        help="build the start archive here and keep it (reused if it exists)",
    )
    parser.add_argument("--runs", type=int, default=5, help="timed cold starts of each app")
    parser.add_argument(
        "--series", type=Path, default=GE_SERIES, help="DICOM folder of the series to step"
    )
    parser.add_argument("--keys", type=int, default=20, help="slice steps (and VR turns) timed")
    parser.add_argument(
        "--demo", type=Path, help="the demo archive for the VR turns (built if missing)"
    )
    parser.add_argument("--key-interval", type=float, default=0.3, help="seconds between keys")
    parser.add_argument("--slices", type=int, default=300, help="slices of the memory series")
    parser.add_argument("--size", type=int, default=512, help="rows and columns of its slices")
    parser.add_argument(
        "--tree", type=Path, help="keep the generated CT series in this folder and reuse it"
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for any one step"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=("start", "keys", "turns", "memory"),
        default=["start", "keys", "turns", "memory"],
        help="run only these parts",
    )
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="run the children in this environment as it is (see bench_ls.py)",
    )
    args = parser.parse_args(argv)
    if min(args.instances, args.runs, args.keys, args.slices) < 1 or args.size < 2:
        parser.error("sizes, --runs and --keys must be at least 1")
    if args.timeout <= 0 or args.key_interval < 0:
        parser.error("--timeout must be positive and --key-interval not negative")
    for folder in (args.archive, args.tree):
        if folder is not None and folder.resolve().is_relative_to(REPO):
            parser.error(f"{folder}: keep benchmark data out of the repository")
    print(json.dumps(run(args), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
