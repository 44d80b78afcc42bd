"""Benchmark ``import_paths``: new files against a plain pydicom loop, and re-import.

Measured, side by side in one run over the same tree of real-header DICOM files
(``benchmarks/tree.py``; the page cache is warmed first so every step reads from memory):

* anchor: a plain single-process loop of ``pydicom.dcmread(path, stop_before_pixels=True)``
  over the sorted file list;
* import: ``import_paths`` of the tree into a fresh archive (on-disk index in a temp folder,
  default workers: one per core), including the worker pool's start;
* re-import: ``import_paths`` of the same, unchanged tree into that archive again.

Targets: import >= 2x the anchor's files/s; re-import >= 20,000 files/s.
``--repeat N`` keeps the best of N runs of each step (a fresh archive for each import).

Prints one JSON object on stdout; progress goes to stderr. Generated trees and archives live in
temporary folders under /tmp and are removed at the end (``--tree DIR`` keeps its tree).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pydicom  # noqa: E402

from benchmarks.tree import generate  # noqa: E402
from tui.archive.importer import ImportSummary, import_paths  # noqa: E402
from tui.archive.index import Archive  # noqa: E402

IMPORT_RATIO_TARGET = 2.0
REIMPORT_TARGET = 20_000.0


def note(message: str) -> None:
    print(f"[bench_import] {message}", file=sys.stderr, flush=True)


def list_files(root: Path) -> list[str]:
    """Every regular file under ``root``, sorted."""
    found: list[str] = []
    for folder, _dirs, names in os.walk(root):
        found += [os.path.join(folder, name) for name in names]
    return sorted(found)


def prepare_tree(tree: Path | None, files: int, scratch: Path) -> tuple[Path, float]:
    """Return a populated tree (``tree`` if it holds files) and the seconds spent generating."""
    if tree is not None:
        if tree.resolve().is_relative_to(REPO):
            raise SystemExit(f"--tree {tree}: keep benchmark trees out of the repository")
        if tree.is_dir() and any(tree.iterdir()):
            note(f"reusing tree {tree}")
            return tree, 0.0
    root = tree if tree is not None else scratch / "tree"
    root.mkdir(parents=True, exist_ok=True)
    note(f"generating {files} files under {root}")
    started = time.perf_counter()
    generate(root, files)
    return root, time.perf_counter() - started


def warm(paths: list[str]) -> tuple[int, float]:
    """Read every file once so the timed steps read from the page cache; return total bytes."""
    started = time.perf_counter()
    total = 0
    for path in paths:
        with open(path, "rb") as fp:
            total += len(fp.read())
    return total, time.perf_counter() - started


def anchor(paths: list[str]) -> float:
    started = time.perf_counter()
    for path in paths:
        pydicom.dcmread(path, stop_before_pixels=True)
    return time.perf_counter() - started


def timed_import(archive: Archive, tree: Path, workers: int | None) -> tuple[float, ImportSummary]:
    started = time.perf_counter()
    summary = import_paths(archive, [tree], workers=workers)
    return time.perf_counter() - started, summary


def step(seconds: list[float], files: int) -> dict[str, Any]:
    best = min(seconds)
    return {
        "files": files,
        "seconds": round(best, 4),
        "files_per_s": round(files / best, 1),
        "runs_seconds": [round(s, 4) for s in seconds],
    }


def counts(summary: ImportSummary) -> dict[str, Any]:
    return {
        "new": summary.new,
        "updated": summary.updated,
        "unchanged": summary.unchanged,
        "skipped": len(summary.skipped),
        "duplicates": len(summary.duplicates),
        "summary_seconds": round(summary.seconds, 4),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="pacs-bench-import-", dir="/tmp"))
    try:
        tree, generate_s = prepare_tree(args.tree, args.files, scratch)
        paths = list_files(tree)
        nbytes, warm_s = warm(paths)
        note(f"{len(paths)} files, {nbytes / 1e6:.1f} MB, page cache warmed in {warm_s:.2f} s")

        anchor_s: list[float] = []
        import_s: list[float] = []
        reimport_s: list[float] = []
        first: ImportSummary | None = None
        again: ImportSummary | None = None
        for attempt in range(args.repeat):
            anchor_s.append(anchor(paths))
            note(f"run {attempt + 1}: anchor {anchor_s[-1]:.3f} s")
            folder = scratch / f"archive-{attempt}"
            with Archive(folder / "archive") as archive:
                seconds, first = timed_import(archive, tree, args.workers)
                import_s.append(seconds)
                note(f"run {attempt + 1}: import {seconds:.3f} s ({first.new} new)")
                seconds, again = timed_import(archive, tree, args.workers)
                reimport_s.append(seconds)
                note(f"run {attempt + 1}: re-import {seconds:.3f} s ({again.unchanged} unchanged)")
                (indexed,) = archive.conn.execute("SELECT count(*) FROM instance").fetchone()
            shutil.rmtree(folder)
        assert first is not None and again is not None

        files = len(paths)
        result: dict[str, Any] = {
            "benchmark": "import",
            "files": files,
            "tree_bytes": nbytes,
            "cpu_count": os.cpu_count(),
            "workers": args.workers or os.cpu_count(),
            "repeat": args.repeat,
            "generate_seconds": round(generate_s, 2),
            "warm_seconds": round(warm_s, 3),
            "anchor": step(anchor_s, files),
            "import": {**step(import_s, files), **counts(first), "indexed": indexed},
            "reimport": {**step(reimport_s, files), **counts(again)},
        }
        ratio = result["import"]["files_per_s"] / result["anchor"]["files_per_s"]
        result["ratio_import_over_anchor"] = round(ratio, 3)
        result["reimport_files_per_s"] = result["reimport"]["files_per_s"]
        result["targets"] = {
            "import_ratio_min": IMPORT_RATIO_TARGET,
            "import_ratio_met": ratio >= IMPORT_RATIO_TARGET,
            "reimport_files_per_s_min": REIMPORT_TARGET,
            "reimport_met": result["reimport_files_per_s"] >= REIMPORT_TARGET,
            "all_indexed": first.new == files and not first.skipped and not first.duplicates,
            "all_unchanged": again.unchanged == files and again.files_read == 0,
        }
        result["python"] = platform.python_version()
        result["pydicom"] = pydicom.__version__
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000, help="files to generate")
    parser.add_argument(
        "--tree", type=Path, help="reuse this tree if populated, else generate it there (kept)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="best of N runs")
    parser.add_argument("--workers", type=int, help="import worker processes (default: cores)")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.files < 1:
        parser.error("--repeat and --files must be at least 1")
    result: dict[str, Any] = run(args)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
