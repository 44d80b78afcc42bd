"""Benchmark NIfTI export (``tui.render.nifti.write_nifti``) against dcm2niix on the same series.

Series: the demo archive's contrast CT (512 x 512 x 240 int16; built with ``build_demo`` in
``--archive DIR``, or reused from there) and a ../shared/dicom MR (``--mr DIR``, by default
the GE 3D T1 MPRAGE, 256 x 256 x 130, oblique), imported into a temporary archive.

Each run is a fresh process, so both sides pay for reading the files (the page cache is
warmed first, so both read memory):

* ours: a Python process that opens the archive, assembles the series' stack from the index
  and writes it with ``write_nifti`` (the sidecar too): ``pacs-tui export --nifti`` without
  the command line. Timed inside the process (``export_s``: after the imports) and as the
  whole process (``process_s``: Python, numpy, pydicom and nibabel imports included);
* anchor: ``dcm2niix`` (the Debian package's binary) on a folder holding only the series'
  files (symbolic links), with its defaults (sidecar on); it reads every header itself.

Both as ``.nii`` and as ``.nii.gz``: dcm2niix compresses with pigz at level 6 on every core
(``-z y``), ours with Python's gzip at level 6 on one (the same bytes, give or take). Times are the
median of ``--runs``; peak memory is each process's peak RSS (``ru_maxrss`` from
``os.wait4``, the child alone), and ours also the peak RSS over the RSS before the export
(``VmHWM`` reset through ``/proc/self/clear_refs``), beside the volume's bytes.

Opening: dcm2niix's ``.nii.gz`` of each series opened with ``open_foreign`` and its volume
loaded (what ``pacs-tui open`` does before the first MIP), beside nibabel alone reading the
same file's voxels into memory (the anchor: the least any NIfTI viewer does), each in a
fresh process, timed after the imports.

Prints one JSON object on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_render import PROC_STATUS  # noqa: E402
from tui.archive.demo import build_demo  # noqa: E402
from tui.archive.importer import import_paths  # noqa: E402
from tui.archive.index import Archive  # noqa: E402
from tui.archive.query import series_instances  # noqa: E402

CT_SERIES = "Axial 1.25mm%"
MR_SERIES = REPO.parent / "shared/dicom/neurolabusc_dcm_qa_ge/MR_GE_SIGNA-Pioneer_3D_Ax_T1_MPRAGE"

# Ours in a fresh process: the export timed after the imports, with its memory.
EXPORT_SCRIPT = (
    PROC_STATUS
    + """
import json, sys, time
from pathlib import Path
from tui.archive.index import Archive
from tui.archive.query import series_instances
from tui.render.nifti import write_nifti
from tui.render.pipeline import time_points
from tui.render.volume import assemble, slices_of

root, uid, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
reset = reset_peak()
before = status()
started = time.perf_counter()
with Archive(Path(root), create=False) as archive:
    stacks = time_points(assemble(slices_of(series_instances(archive, uid))), 0)
write_nifti(stacks, out)
seconds = time.perf_counter() - started
after = status()
print(json.dumps({"export_s": seconds, "reset": reset, "before": before, "after": after}))
"""
)


# Opening a NIfTI file in a fresh process, timed after the imports: ours (open_foreign and
# the volume loaded) or nibabel's voxels alone.
OPEN_SCRIPT = """
import sys, tempfile, time
from pathlib import Path
import nibabel as nib, numpy as np
from tui.render.foreign import open_foreign
from tui.render.pipeline import volume_of

path, ours = sys.argv[1], sys.argv[2] == "ours"
started = time.perf_counter()
if ours:
    with tempfile.TemporaryDirectory() as scratch:
        opened = open_foreign(path, Path(scratch))
        volume_of(opened.stacks[0], None)
        opened.close()
else:
    np.asanyarray(nib.load(path).dataobj)
print(time.perf_counter() - started)
"""


def bench_open(nifti: Path, runs: int) -> dict[str, Any]:
    """Seconds to open ``nifti``: ours beside nibabel's read, medians of ``runs``."""
    times: dict[str, list[float]] = {"ours": [], "nibabel": []}
    for _ in range(runs):
        for side in times:
            _, _, stdout = timed([sys.executable, "-c", OPEN_SCRIPT, str(nifti), side])
            times[side].append(float(stdout))
    ours, theirs = (statistics.median(times[side]) for side in ("ours", "nibabel"))
    return {"ours_open_s": round(ours, 3), "nibabel_read_s": round(theirs, 3)}


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def timed(command: list[str]) -> tuple[float, int, str]:
    """Run ``command``; its wall time, its own peak RSS (bytes) and its stdout."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    assert child.stdout is not None and child.stderr is not None
    stdout, stderr = child.stdout.read(), child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"{command[0]} failed:\n{stderr.decode(errors='replace')}")
    return seconds, usage.ru_maxrss * 1024, stdout.decode()


def linked(rows: list[dict[str, Any]], folder: Path) -> Path:
    """A folder of links to the series' files only (dcm2niix converts a whole folder)."""
    folder.mkdir()
    for n, row in enumerate(rows):
        (folder / f"{n:05d}.dcm").symlink_to(row["path"])
    return folder


def warm(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        Path(row["path"]).read_bytes()


def bench_series(
    name: str, root: Path, uid: str, scratch: Path, runs: int, dcm2niix: str
) -> dict[str, Any]:
    with Archive(root, create=False) as archive:
        rows = series_instances(archive, uid)
    warm(rows)
    source = linked(rows, scratch / f"{name}-files")
    result: dict[str, Any] = {"files": len(rows)}
    for suffix, flag in ((".nii", "n"), (".nii.gz", "y")):
        ours_s, ours_process_s, ours_rss, ours_over = [], [], [], []
        theirs_s, theirs_rss = [], []
        for run in range(runs):
            out = scratch / f"{name}-{run}{suffix}"
            seconds, peak, stdout = timed(
                [sys.executable, "-c", EXPORT_SCRIPT, str(root), uid, str(out)]
            )
            got = json.loads(stdout)
            ours_s.append(got["export_s"])
            ours_process_s.append(seconds)
            ours_rss.append(peak)
            ours_over.append(got["after"]["VmHWM"] - got["before"]["VmRSS"])
            size = out.stat().st_size
            folder = scratch / f"{name}-dcm2niix-{run}{suffix}"
            folder.mkdir()
            command = [dcm2niix, "-z", flag, "-f", "x", "-o", str(folder), str(source)]
            seconds, peak, _ = timed(command)
            theirs_s.append(seconds)
            theirs_rss.append(peak)
            their_size = (folder / f"x{suffix}").stat().st_size
            if suffix == ".nii.gz" and run == runs - 1:
                result["open_nii_gz"] = bench_open(folder / f"x{suffix}", runs)
                note(f"{name}: opened {result['open_nii_gz']}")
            out.unlink()
            out.with_name(out.name.replace(suffix, ".json")).unlink()
            shutil.rmtree(folder)
        note(
            f"{name}{suffix}: ours {statistics.median(ours_s):.3f} s, "
            f"dcm2niix {statistics.median(theirs_s):.3f} s"
        )
        result[suffix] = {
            "ours_export_s": round(statistics.median(ours_s), 3),
            "ours_process_s": round(statistics.median(ours_process_s), 3),
            "dcm2niix_process_s": round(statistics.median(theirs_s), 3),
            "ratio_process": round(
                statistics.median(ours_process_s) / statistics.median(theirs_s), 2
            ),
            "ours_peak_rss_mb": round(max(ours_rss) / 2**20, 1),
            "ours_peak_over_start_mb": round(max(ours_over) / 2**20, 1),
            "dcm2niix_peak_rss_mb": round(max(theirs_rss) / 2**20, 1),
            "ours_bytes": size,
            "dcm2niix_bytes": their_size,
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archive", type=Path, help="the demo archive (built here if absent)")
    parser.add_argument("--mr", type=Path, default=MR_SERIES, help="a DICOM series folder")
    parser.add_argument("--runs", type=int, default=5, help="median of N runs")
    args = parser.parse_args(argv)
    dcm2niix = shutil.which("dcm2niix")
    if dcm2niix is None:
        raise SystemExit("dcm2niix is not installed (Debian package dcm2niix)")
    with tempfile.TemporaryDirectory(prefix="bench-nifti-") as temp:
        scratch = Path(temp)
        demo = args.archive or scratch / "demo"
        started = time.perf_counter()
        with build_demo(demo) as archive:
            row = archive.conn.execute(
                "SELECT series_uid FROM series WHERE description LIKE ?", (CT_SERIES,)
            ).fetchone()
        note(f"demo archive ready in {time.perf_counter() - started:.1f} s")
        results: dict[str, Any] = {
            "ct_512x512x240": bench_series("ct", demo, row[0], scratch, args.runs, dcm2niix)
        }
        mr_root = scratch / "mr-archive"
        with Archive(mr_root) as archive:
            import_paths(archive, [args.mr])
            uid = archive.conn.execute("SELECT series_uid FROM series").fetchone()[0]
        results[f"mr_{args.mr.name}"] = bench_series(
            "mr", mr_root, uid, scratch, args.runs, dcm2niix
        )
    version = subprocess.run([dcm2niix, "--version"], capture_output=True, text=True)
    print(
        json.dumps(
            {
                "benchmark": "nifti_export",
                "runs": args.runs,
                "python": platform.python_version(),
                "dcm2niix": (version.stdout.strip().splitlines() or [""])[-1],
                "cpus": os.cpu_count(),
                "results": results,
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
