"""Benchmark printing a film: ``pacs-tui print`` against dcmtk's print client, same printer.

The printer: dcmtk's print server emulator ``dcmprscp`` on loopback (``tests/servers.py``,
fresh for this run), reached through a byte-counting TCP relay, so each contestant's bytes
on the wire (both directions) are measured as well as its time. The images: every N-th slice
(at most ``--count``, 20: 19 of 130) of a ../shared/dicom series (``--series DIR``, by default
the GE 3D T1 MPRAGE, 256 x 256 x 130), on one ``STANDARD\\4,5`` film, 12 bits, an IDENTITY
Presentation LUT:

* anchor: dcmtk's own print client, the way its viewer prints: ``dcmpsprt`` renders the
  files into a Stored Print and Hardcopy Grayscale Images in its spool database, then
  ``dcmprscu`` sends that job to the printer (film session, film box, image boxes,
  N-ACTION). Both processes are timed, together;
* ours: ``python -m tui --archive A print PRINTER SERIES --every N --layout 4,5`` on the
  series imported beforehand (the import is not timed): it assembles the volume, renders the
  planes through the display pipeline at 12 bits, and prints them.

Each contestant must land one Stored Print and ``--count`` Hardcopy Grayscale Images in the
printer's database per run (checked). Times are wall-clock, process start to exit, the
median of ``--runs`` (the two take turns). Peak RSS is each process's own
(``tests/rusage.py``); for dcmtk, the larger of its two processes.

Prints one JSON object on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.rusage import launched, usage
from tests.servers import Dcmprscp, need_dcmtk, start_dcmprscp

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "dicom"
DEFAULT_SERIES = SHARED / "neurolabusc_dcm_qa_ge" / "MR_GE_SIGNA-Pioneer_3D_Ax_T1_MPRAGE"


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Relay:
    """A TCP relay on loopback that counts the bytes it passes, both ways."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.bytes = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def take(self) -> int:
        """The bytes passed since the last call."""
        with self.lock:
            counted, self.bytes = self.bytes, 0
        return counted

    def _serve(self) -> None:
        while True:
            client, _ = self.listener.accept()
            server = socket.create_connection(("127.0.0.1", self.target))
            for end in (client, server):  # relay each write at once, as it came
                end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(1 << 16):
                sink.sendall(data)
                with self.lock:
                    self.bytes += len(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


def dcmtk_config(folder: Path, port: int) -> Path:
    """dcmpsprt/dcmprscu's dcmpstat.cfg: its spool database and the printer behind the relay."""
    for name in ("database", "spool", "lut"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    config = folder / "dcmpstat.cfg"
    config.write_text(
        "\n".join(
            [
                "[[GENERAL]]",
                "[PRINT]",
                "Directory = spool",
                "DetailedLog = false",
                "BinaryLog = false",
                "MinPrintResolution = 64\\64",
                "MaxPrintResolution = 8192\\8192",
                "[DATABASE]",
                "Directory = database",
                "[LUT]",
                "Directory = lut",
                "[[COMMUNICATION]]",
                "[PRINTER]",
                "Aetitle = PRINTSCP",
                "Hostname = 127.0.0.1",
                f"Port = {port}",
                "Type = PRINTER",
                "DisplayFormat = 4,5",
                "FilmSizeID = 14INX17IN",
                "Supports12Bit = true",
                "SupportsPresentationLUT = true",
                "MaxPDU = 32768",
            ]
        )
        + "\n"
    )
    return config


def run(command: list[str], report: Path, cwd: Path | None = None, env: Any = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        launched(command, report), cwd=cwd, env=env, capture_output=True, text=True
    )
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return took


def landed(printer: Dcmprscp, before: tuple[int, int], count: int) -> tuple[int, int]:
    """The database's Stored Print and image counts, checked to have grown by one film."""
    now = (
        len(list(printer.database.glob("SP_*.dcm"))),
        len(list(printer.database.glob("HG_*.dcm"))),
    )
    if now != (before[0] + 1, before[1] + count):
        raise SystemExit(f"the printer stored {now}, after {before}: not one film of {count}")
    return now


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=Path, default=DEFAULT_SERIES)
    parser.add_argument("--count", type=int, default=20, help="at most this many images (4x5)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not args.series.is_dir():
        raise SystemExit(f"{args.series} is missing (../shared/dicom)")
    dcmpsprt, dcmprscu = need_dcmtk("dcmpsprt"), need_dcmtk("dcmprscu")
    work = Path(tempfile.mkdtemp(prefix="pacs-tui-bench-print-"))
    try:
        return measure(args, work, dcmpsprt, dcmprscu)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(args: argparse.Namespace, work: Path, dcmpsprt: str, dcmprscu: str) -> int:
    import pydicom

    files = sorted(args.series.iterdir())
    positions = sorted(
        (float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]), f)
        for f in files
    )
    # Every N-th slice, as ``print --every N`` picks planes: at most --count images.
    every = -(-len(positions) // args.count)
    chosen = [f for _, f in positions[::every]]
    args.count = len(chosen)

    env = dict(os.environ, XDG_CONFIG_HOME=str(work / "config"), XDG_DATA_HOME=str(work / "data"))
    ours = [sys.executable, "-m", "tui", "--archive", str(work / "archive")]
    subprocess.run([*ours, "import", str(args.series)], env=env, check=True, capture_output=True)
    uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)

    printer = start_dcmprscp(work / "printer", DisplayFormat="4,5", FilmSizeID="14INX17IN")
    relay = Relay(printer.port)
    node = [*ours, "node", "add", "film", "PRINTSCP", "127.0.0.1", str(relay.port), "--printer"]
    subprocess.run(node, env=env, check=True, capture_output=True)
    config = dcmtk_config(work / "dcmtk", relay.port)
    report = work / "usage"
    results: dict[str, dict[str, list[float]]] = {
        name: {"seconds": [], "bytes": [], "peak_mb": []} for name in ("dcmtk", "ours")
    }
    counts = (0, 0)
    try:
        for run_number in range(args.runs):
            order = ("dcmtk", "ours") if run_number % 2 == 0 else ("ours", "dcmtk")
            for name in order:
                relay.take()
                if name == "dcmtk":
                    spool = work / "dcmtk" / "database"
                    for old in spool.glob("*.dcm"):
                        old.unlink()
                    render = [dcmpsprt, "-c", str(config), "-p", "PRINTER", "--layout", "4", "5"]
                    took = run([*render, *map(str, chosen)], report, cwd=work / "dcmtk")
                    peak = usage(report)[1]
                    job = sorted(spool.glob("SP_*.dcm"))
                    took += run(
                        [dcmprscu, "-c", str(config), "-p", "PRINTER", *map(str, job)],
                        report,
                        cwd=work / "dcmtk",
                    )
                    peak = max(peak, usage(report)[1])
                else:
                    command = [*ours, "print", "film", uid, "--every", str(every)]
                    command += ["--layout", "4,5", "--film-size", "14INX17IN", "--bits", "12"]
                    took = run(command, report, env=env)
                    peak = usage(report)[1]
                time.sleep(0.3)  # the relay's last bytes
                counts = landed(printer, counts, args.count)
                results[name]["seconds"].append(took)
                results[name]["bytes"].append(relay.take())
                results[name]["peak_mb"].append(peak)
                log(f"run {run_number + 1} {name}: {took:.2f} s")
    finally:
        printer.stop()

    summary = {
        name: {
            "seconds_median": round(statistics.median(r["seconds"]), 3),
            "seconds": [round(s, 3) for s in r["seconds"]],
            "bytes_median": int(statistics.median(r["bytes"])),
            "peak_rss_mb": round(max(r["peak_mb"]), 1),
        }
        for name, r in results.items()
    }
    print(
        json.dumps(
            {
                "benchmark": "print one 4x5 film of 12-bit images to dcmprscp",
                "series": args.series.name,
                "images": args.count,
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                **summary,
                "ours_over_dcmtk_time": round(
                    summary["ours"]["seconds_median"] / summary["dcmtk"]["seconds_median"], 2
                ),
                "ours_over_dcmtk_bytes": round(
                    summary["ours"]["bytes_median"] / summary["dcmtk"]["bytes_median"], 2
                ),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
