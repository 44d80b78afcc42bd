"""Benchmark the half-block encoder against rich-pixels on a real slice step.

For a few real series (the GE 3T MR of 256 x 256, the Siemens 3T brain MR of 128 x 128,
and the demo's 512 x 512 CT unless ``--no-demo``), the middle slice and the next are
rendered to 8 bits and drawn at 100 x 50 image cells:

* anchor: rich-pixels (``Pixels.from_image`` of the area-downsampled image, printed by a
  truecolor Rich console): bytes and time for the new slice (it redraws everything);
* ours, per bandwidth mode: bytes of the step (only the changed runs), time to make the
  cells and encode them, and the mean absolute error against the area-downsampled image.

Targets: step bytes <= 1/8 of rich-pixels' in low and <= 1/3 in normal mode; encode time
<= 1/3 of rich-pixels'; error <= 4 grey levels in normal, <= 8 in low mode.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from rich.console import Console  # noqa: E402
from rich_pixels import Pixels  # noqa: E402

from tui.archive.importer import import_paths  # noqa: E402
from tui.archive.index import Archive  # noqa: E402
from tui.archive.query import series_instances  # noqa: E402
from tui.render.pipeline import Request, render  # noqa: E402
from tui.render.presets import load_presets  # noqa: E402
from tui.render.volume import assemble, slices_of  # noqa: E402
from tui.term.cells import area_resize  # noqa: E402
from tui.term.halfblock import encode, to_cells  # noqa: E402
from tui.term.modes import HIGH, LOW, NORMAL  # noqa: E402

SHARED = REPO.parent / "shared" / "dicom"
SERIES = {
    "MR 256x256 (GE 3T T1)": SHARED / "neurolabusc_dcm_qa_ge",
    "MR 128x128 (Siemens 3T T1)": SHARED / "neurolabusc_dcm_qa_xa30i",
}
COLUMNS, ROWS = 100, 50
MODES = {"low": LOW, "normal": NORMAL, "high": HIGH}


def _best(function: Any, runs: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - started)
    return best, result


def _rich(image: np.ndarray) -> str:
    console = Console(file=io.StringIO(), force_terminal=True, color_system="truecolor", width=400)
    console.print(Pixels.from_image(Image.fromarray(area_resize(image, COLUMNS, ROWS * 2))))
    return console.file.getvalue()  # type: ignore[attr-defined]


def _measure(name: str, before: np.ndarray, after: np.ndarray, runs: int) -> dict[str, Any]:
    rich_seconds, rich_text = _best(lambda: _rich(after), runs)
    rich_bytes = len(rich_text.encode())
    reference = area_resize(after, COLUMNS, ROWS * 2).astype(np.int16)
    result: dict[str, Any] = {
        "image": list(after.shape),
        "rich_pixels": {"bytes": rich_bytes, "ms": round(rich_seconds * 1000, 2)},
    }
    for label, mode in MODES.items():
        old = to_cells(before, COLUMNS, ROWS, mode)

        def step(mode: Any = mode, old: Any = old) -> tuple[Any, str]:
            cells = to_cells(after, COLUMNS, ROWS, mode)
            return cells, encode(cells, old)

        seconds, (cells, text) = _best(step, runs)
        step_bytes = len(text.encode())
        result[label] = {
            "step_bytes": step_bytes,
            "full_bytes": len(encode(cells).encode()),
            "ms": round(seconds * 1000, 2),
            "bytes_fraction_of_rich": round(step_bytes / rich_bytes, 4),
            "time_fraction_of_rich": round(seconds / rich_seconds, 3),
            "mean_abs_error": round(float(np.abs(cells.shown() - reference).mean()), 2),
        }
    result["met"] = {
        "low_bytes<=1/8": result["low"]["bytes_fraction_of_rich"] <= 1 / 8,
        "normal_bytes<=1/3": result["normal"]["bytes_fraction_of_rich"] <= 1 / 3,
        "time<=1/3": all(result[m]["time_fraction_of_rich"] <= 1 / 3 for m in ("low", "normal")),
        "normal_error<=4": result["normal"]["mean_abs_error"] <= 4,
        "low_error<=8": result["low"]["mean_abs_error"] <= 8,
    }
    print(f"{name}: {result['met']}", file=sys.stderr)
    return result


def _middle_pair(archive: Archive, series_uid: str) -> tuple[np.ndarray, np.ndarray]:
    stack = assemble(slices_of(series_instances(archive, series_uid)))[0]
    presets = load_presets()
    middle = len(stack.slices) // 2
    first = render(stack, Request(index=middle), presets)
    second = render(stack, Request(index=middle + 1, window=first.window), presets)
    return first.image, second.image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-demo", action="store_true", help="skip the demo's 512x512 CT")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        archive = Archive(Path(scratch) / "archive")
        for name, folder in SERIES.items():
            import_paths(archive, [folder])
            uid = archive.conn.execute(
                "SELECT series_uid FROM series ORDER BY series_pk DESC LIMIT 1"
            ).fetchone()[0]
            results[name] = _measure(name, *_middle_pair(archive, uid), args.runs)
        if not args.no_demo:
            from tui.archive.demo import build_demo

            demo = build_demo(Path(scratch) / "demo")
            uid = demo.conn.execute(
                "SELECT series_uid FROM series WHERE description LIKE 'Axial 1.25%'"
            ).fetchone()[0]
            results["CT 512x512 (demo)"] = _measure("CT", *_middle_pair(demo, uid), args.runs)
    print(
        json.dumps(
            {
                "benchmark": "term",
                "cells": [COLUMNS, ROWS],
                "results": results,
                "all_met": all(all(r["met"].values()) for r in results.values()),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
