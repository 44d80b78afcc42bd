"""Benchmark ``pacs-tui ls`` on a large archive, process start included.

An archive index of ``--instances`` instances (default 100,000: 1,000 studies of 4 series of
25 instances, two studies per patient) is built directly from fake but plausible
``InstanceRecord`` values, through ``Archive.add`` in transactions of ~5,000 records; no
DICOM files are written (paths point under /nonexistent). Then each command is run
``--runs`` times as a subprocess (stdout to /dev/null) and its wall time measured:

* ``python -m tui --archive DIR ls --level study`` (the target),
* ``... ls --level study --json`` and ``... ls --level series --patient-name 'pat*1*'``,
* context: ``python -c pass`` (bare interpreter start), ``python -c "import textual"`` and
  ``python -m tui --version`` (the CLI's start without a command).

Target: ``ls --level study`` on >= 100,000 instances in <= 0.3 s including process start
(the median of the runs is compared). One untimed run of each command comes first.

The commands run with a bytecode cache in a temporary PYTHONPYCACHEPREFIX, so that, as for an
installed package, modules are compiled once (the untimed run) rather than on every start when
PYTHONDONTWRITEBYTECODE is set; ``--no-bytecode-cache`` runs them in the environment as it is.

Prints one JSON object on stdout; progress goes to stderr. The archive lives in a temporary
folder under /tmp and is removed at the end, unless ``--archive DIR`` names one to keep (an
existing index there is reused as it is).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tui.archive.header import InstanceRecord  # noqa: E402
from tui.archive.index import INDEX_NAME, Archive  # noqa: E402

TARGET_SECONDS = 0.3
BATCH = 5_000
MODALITIES = ("CT", "MR", "MR", "CT", "PT", "US", "CR", "MR")
DESCRIPTIONS = ("CHEST W/O CONTRAST", "BRAIN MRI", "ABDOMEN PELVIS", "KNEE LEFT", "PET-CT WB")
SERIES_DESCRIPTIONS = ("Localizer", "Axial 5mm", "T1 MPRAGE", "T2 FLAIR", "Coronal recon")
_CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
_MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
_EXPLICIT_LE = "1.2.840.10008.1.2.1"


def note(message: str) -> None:
    print(f"[bench_ls] {message}", file=sys.stderr, flush=True)


def fake_records(
    instances: int, per_series: int, series_per_study: int
) -> Iterator[InstanceRecord]:
    """``instances`` records: studies of ``series_per_study`` series of ``per_series`` each."""
    per_study = per_series * series_per_study
    for n in range(instances):
        study, rest = divmod(n, per_study)
        series, number = divmod(rest, per_series)
        patient = study // 2
        modality = MODALITIES[study % len(MODALITIES)]
        year, day = 2000 + study % 25, study % 365
        month, mday = day // 31 + 1, day % 28 + 1
        yield InstanceRecord(
            path=f"/nonexistent/P{patient:05d}/S{study:06d}/{series:02d}/IM{number:04d}.dcm",
            size=524_288 + n % 4096,
            mtime_ns=1_700_000_000_000_000_000 + n,
            patient_id=f"PID{patient:06d}",
            patient_name=f"Patient{patient:05d}^Bench",
            birth_date=f"{1930 + patient % 80}{patient % 12 + 1:02d}{patient % 28 + 1:02d}",
            sex="MF"[patient % 2],
            study_uid=f"2.25.{1_000_000 + study}",
            study_date=f"{year}{month:02d}{mday:02d}",
            study_time=f"{8 + study % 10:02d}{study % 60:02d}00",
            accession=f"ACC{study:08d}",
            study_description=DESCRIPTIONS[study % len(DESCRIPTIONS)],
            referring_physician="Referrer^Ann",
            series_uid=f"2.25.{1_000_000 + study}.{series + 1}",
            modality=modality,
            series_number=series + 1,
            series_description=SERIES_DESCRIPTIONS[series % len(SERIES_DESCRIPTIONS)],
            body_part="CHEST",
            sop_uid=f"2.25.{1_000_000 + study}.{series + 1}.{number + 1}",
            sop_class=_MR_IMAGE if modality == "MR" else _CT_IMAGE,
            instance_number=number + 1,
            transfer_syntax=_EXPLICIT_LE,
            rows=512,
            columns=512,
            frames=1,
            samples_per_pixel=1,
            photometric="MONOCHROME2",
            bits_allocated=16,
            position=f"-250\\-250\\{number * 2.5:g}",
            orientation="1\\0\\0\\0\\1\\0",
            pixel_spacing="0.48828125\\0.48828125",
            slice_thickness=2.5,
            acquisition_number=1,
            temporal_position=None,
            pixels=None,
        )


def build(root: Path, instances: int, per_series: int, series_per_study: int) -> float:
    """Index ``instances`` fake records into a new archive at ``root``; return the seconds."""
    started = time.perf_counter()
    with Archive(root) as archive:
        batch: list[InstanceRecord] = []
        done = 0
        for record in fake_records(instances, per_series, series_per_study):
            batch.append(record)
            if len(batch) == BATCH:
                done += _add(archive, batch)
                batch = []
                if done % 20_000 == 0:
                    note(f"indexed {done}/{instances}")
        done += _add(archive, batch)
    return time.perf_counter() - started


def _add(archive: Archive, batch: list[InstanceRecord]) -> int:
    if not batch:
        return 0
    with archive.transaction():
        added = archive.add(batch, managed=False)
    if added.updated or added.duplicates:
        raise SystemExit(f"unexpected: {added.updated} updated, {len(added.duplicates)} duplicates")
    return added.new


def counts(root: Path) -> dict[str, int]:
    with Archive(root, create=False) as archive:
        return {
            table: archive.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("patient", "study", "series", "instance")
        }


def child_env(pycache: Path | None) -> dict[str, str]:
    """The subprocesses' environment: the repository importable, no archive override.

    With ``pycache``, bytecode is written to and read from there (as for an installed
    package, whose modules are compiled once) even when the caller has
    PYTHONDONTWRITEBYTECODE set and the repository has no ``__pycache__``.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("PACS_TUI_ARCHIVE", None)
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def time_command(argv: list[str], runs: int, env: dict[str, str]) -> dict[str, Any]:
    """Run ``argv`` once untimed, then ``runs`` times; wall seconds per run."""
    seconds: list[float] = []
    for attempt in range(runs + 1):
        started = time.perf_counter()
        done = subprocess.run(
            argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            error = done.stderr.decode(errors="replace").strip()
            raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {error}")
        if attempt:
            seconds.append(elapsed)
    return {
        "command": " ".join(_shown(a) for a in argv),
        "runs": runs,
        "min_s": round(min(seconds), 4),
        "median_s": round(statistics.median(seconds), 4),
        "max_s": round(max(seconds), 4),
    }


def _shown(arg: str) -> str:
    if arg == sys.executable:
        return "python"
    return f"'{arg}'" if any(c in arg for c in " *?") else arg


def output_rows(argv: list[str], env: dict[str, str]) -> int:
    """How many rows a JSON listing prints (checks the listing really saw the archive)."""
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, check=True)
    return len(json.loads(done.stdout))


def run(args: argparse.Namespace) -> dict[str, Any]:
    root: Path | None = args.archive
    if root is not None and root.resolve().is_relative_to(REPO):
        raise SystemExit(f"--archive {root}: keep benchmark archives out of the repository")
    scratch = Path(tempfile.mkdtemp(prefix="pacs-bench-ls-", dir="/tmp"))
    if root is None:
        root = scratch / "archive"
    env = child_env(None if args.no_bytecode_cache else scratch / "pycache")
    try:
        build_s = None
        if (root / INDEX_NAME).exists():
            note(f"reusing the archive at {root}")
        else:
            note(f"building an archive of {args.instances} instances at {root}")
            build_s = build(root, args.instances, args.per_series, args.series_per_study)
            note(f"built in {build_s:.1f} s")
        tables = counts(root)
        index_bytes = sum(p.stat().st_size for p in root.glob(INDEX_NAME + "*"))

        py = sys.executable
        ls = [py, "-m", "tui", "--archive", str(root), "ls"]
        commands = {
            "ls_study": [*ls, "--level", "study"],
            "ls_study_json": [*ls, "--level", "study", "--json"],
            "ls_series_patient_name": [*ls, "--level", "series", "--patient-name", "pat*1*"],
            "python_pass": [py, "-c", "pass"],
            "python_import_textual": [py, "-c", "import textual"],
            "tui_version": [py, "-m", "tui", "--version"],
        }
        timings: dict[str, Any] = {}
        for name, argv in commands.items():
            timings[name] = time_command(argv, args.runs, env)
            note(f"{name}: median {timings[name]['median_s']:.3f} s")
        timings["ls_study_json"]["rows"] = output_rows(commands["ls_study_json"], env)
        timings["ls_series_patient_name"]["rows"] = output_rows(
            [*commands["ls_series_patient_name"], "--json"], env
        )

        median = timings["ls_study"]["median_s"]
        return {
            "benchmark": "ls",
            "instances": tables["instance"],
            "tables": tables,
            "index_bytes": index_bytes,
            "build_seconds": None if build_s is None else round(build_s, 2),
            "timings": timings,
            "target": {
                "ls_study_max_s": TARGET_SECONDS,
                "min_instances": 100_000,
                "ls_study_median_s": median,
                "enough_instances": tables["instance"] >= 100_000,
                "met": median <= TARGET_SECONDS and tables["instance"] >= 100_000,
            },
            "bytecode_cache": "PYTHONPYCACHEPREFIX" in env,
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--per-series", type=int, default=25, help="instances per series")
    parser.add_argument("--series-per-study", type=int, default=4)
    parser.add_argument("--runs", type=int, default=10, help="timed runs of each command")
    parser.add_argument(
        "--archive", type=Path, help="build the archive here and keep it (reused if it exists)"
    )
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="run the commands in this environment as it is (see the module docstring)",
    )
    args = parser.parse_args(argv)
    if min(args.instances, args.per_series, args.series_per_study, args.runs) < 1:
        parser.error("sizes and --runs must be at least 1")
    print(json.dumps(run(args), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
