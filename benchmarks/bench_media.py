"""Benchmark ``export --dicom --dicomdir`` (tui.archive.media) against a plain ``cp -r``.

Measured, side by side in one run over the same 300-instance 512x512 CT study (synthetic,
written once into a temporary folder and indexed in place; the page cache is warm, both
read from memory and write to the same file system):

* anchor: ``cp -r`` of the study's folder to a new folder;
* media: ``export`` of the study as media (byte copies at 8-character file IDs, every
  file read back whole, a DICOMDIR built with pydicom.fileset and read back with it).

The two alternate, ``--repeat`` times (default 5); the medians are compared. Target: media
<= 1.5x the anchor. Also printed, to show where the time goes: a pydicom ``dcmread`` of
every file (what the self-check's read-back costs at least) and a ``FileSet`` load of the
DICOMDIR written.

Prints one JSON object on stdout; progress goes to stderr. Everything lives in a temporary
folder under /tmp, removed at the end.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pydicom  # noqa: E402
from pydicom.fileset import FileSet  # noqa: E402

from tests.synthetic import AXIAL, write_series  # noqa: E402
from tui.archive.importer import import_paths  # noqa: E402
from tui.archive.index import Archive  # noqa: E402
from tui.archive.media import export, select  # noqa: E402

RATIO_TARGET = 1.5


def note(message: str) -> None:
    print(f"[bench_media] {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each (median kept)")
    parser.add_argument("--count", type=int, default=300, help="instances in the study")
    parser.add_argument("--size", type=int, default=512, help="rows and columns")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_media-") as scratch:
        root = Path(scratch)
        files = root / "study"
        note(f"writing {args.count} {args.size}x{args.size} CT slices")
        series = write_series(files, AXIAL, size=args.size, count=args.count)
        with Archive(root / "archive") as archive:
            import_paths(archive, [str(files)], workers=1)
            rows = select(archive, [series])
        copy_times, media_times = [], []
        for run in range(args.repeat + 1):  # the first round warms the cache, not counted
            target = root / f"copy-{run}"
            started = time.perf_counter()
            subprocess.run(["cp", "-r", str(files), str(target)], check=True)
            copied = time.perf_counter() - started
            shutil.rmtree(target)
            target = root / f"media-{run}"
            started = time.perf_counter()
            report = export(rows, target, "media")
            exported = time.perf_counter() - started
            assert report.instances == args.count
            if run:
                copy_times.append(copied)
                media_times.append(exported)
                note(f"run {run}: cp -r {copied:.3f} s, media {exported:.3f} s")
            if run < args.repeat:
                shutil.rmtree(target)
        started = time.perf_counter()
        for path in sorted(target.rglob("IM*")):
            pydicom.dcmread(path)
        reading = time.perf_counter() - started
        started = time.perf_counter()
        FileSet(target / "DICOMDIR")
        loading = time.perf_counter() - started
    copy, media = statistics.median(copy_times), statistics.median(media_times)
    print(
        json.dumps(
            {
                "instances": args.count,
                "megabytes": round(report.bytes / 1e6, 1),
                "cp_r_seconds": round(copy, 4),
                "media_seconds": round(media, 4),
                "ratio": round(media / copy, 2),
                "target_ratio": RATIO_TARGET,
                "met": media / copy <= RATIO_TARGET,
                "dcmread_every_file_seconds": round(reading, 4),
                "fileset_load_seconds": round(loading, 4),
                "repeat": args.repeat,
                "python": platform.python_version(),
                "pydicom": pydicom.__version__,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
