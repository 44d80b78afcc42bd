"""Fuzzing import and render: thousands of mutations of the real files in ../shared/dicom
(``benchmarks/fuzz.py`` makes and runs them; ``python benchmarks/fuzz.py`` runs 100,000).

Every case ends within its deadline with no traceback: a skipped file has one printable
line of reason, an imported one is indexed as pydicom reads it (UIDs, patient, study; no
control characters anywhere in the index) and renders or is refused in one line. A few
go through the real command line as well, for its exit statuses and one-line errors.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from benchmarks import fuzz
from tests.conftest import cli_json, need_shared, run_cli

SEED = 12
CASES = 3000
WORKERS = 2  # CI's machine has two cores


@pytest.fixture(scope="module")
def outcomes() -> list[fuzz.Outcome]:
    return fuzz.run(range(CASES), SEED, WORKERS, shared=need_shared())


def test_every_mutant_is_indexed_right_or_skipped_and_renders_or_refuses_in_one_line(
    outcomes: list[fuzz.Outcome],
) -> None:
    failures = [o for o in outcomes if o.failure]
    report = json.dumps(fuzz.summary(failures, 0)["failures"][:5], indent=1)
    assert not failures, f"{len(failures)} of {CASES} cases failed; the first:\n{report}"
    # The mutants reach every path: skipped, indexed, rendered and refused.
    results = Counter(o.result for o in outcomes)
    assert results["indexed"] > CASES // 5 and results["skipped"] > CASES // 5
    assert sum(o.rendered for o in outcomes) > CASES // 10
    assert sum(len(o.refused) for o in outcomes) > CASES // 100
    # Each kind of mutation was made, huge element lengths among them.
    kinds = Counter(m.split("@")[0] for o in outcomes for m in o.mutations)
    assert set(kinds) == {"flip", "value", "length", "insert", "truncate"}
    assert any("=0xfffffff0" in m for o in outcomes for m in o.mutations)


def test_a_case_over_its_deadline_fails_and_the_run_goes_on() -> None:
    shared = need_shared()
    late = fuzz.run(range(3), SEED, workers=1, deadline=0.001, shared=shared)
    assert [o.case for o in late] == [0, 1, 2]
    assert all(o.result == "failed" and o.failure.startswith("over the deadline") for o in late)


Process = subprocess.CompletedProcess[str]


def _through_the_cli(shared: Path, case: int, tmp_path: Path) -> tuple[Process, Process | None]:
    """Import case ``case``'s mutant with ``pacs-tui import``, then render its series with
    ``pacs-tui render``; both completed processes (the second None if nothing imported)."""
    relative, data, _ = fuzz.mutant(shared, SEED, case)
    folder = tmp_path / f"case-{case}"
    folder.mkdir()
    (folder / Path(relative).name).write_bytes(data)
    archive = tmp_path / f"archive-{case}"
    imported = run_cli("import", str(folder), archive=archive, check=False)
    if imported.returncode:
        return imported, None
    [series] = cli_json("ls", "--level", "series", archive=archive)
    out = tmp_path / f"case-{case}.png"
    return imported, run_cli(
        "render", series["SeriesInstanceUID"], "-o", str(out), archive=archive, check=False
    )


def _one_error_line(process: Process) -> str:
    assert process.returncode == 1 and "Traceback" not in process.stderr
    [line] = process.stderr.splitlines()
    assert line.startswith("pacs-tui: error: ") and line.isprintable()
    return line


def test_mutants_through_the_command_line_exit_cleanly(
    outcomes: list[fuzz.Outcome], tmp_path: Path
) -> None:
    shared = need_shared()
    rendered = [o for o in outcomes if o.rendered and not o.refused][:3]
    refused = [o for o in outcomes if o.refused and not o.rendered][:3]
    skipped = [o for o in outcomes if o.result == "skipped"][:2]
    assert len(rendered) == len(refused) == 3 and len(skipped) == 2
    for outcome in rendered:
        imported, render = _through_the_cli(shared, outcome.case, tmp_path)
        assert imported.returncode == 0 and render is not None
        assert render.returncode == 0, render.stderr
        png = tmp_path / f"case-{outcome.case}.png"
        assert png.read_bytes().startswith(b"\x89PNG")
    statuses = []
    for outcome in refused:  # the CLI renders the slice alone: a MIP's refusal may not come
        _, render = _through_the_cli(shared, outcome.case, tmp_path)
        assert render is not None
        statuses.append(render.returncode)
        if render.returncode:
            _one_error_line(render)
    assert 1 in statuses
    for outcome in skipped:  # the file alone: nothing found to import, said in one line
        imported, _ = _through_the_cli(shared, outcome.case, tmp_path)
        assert "no DICOM file found" in _one_error_line(imported)
        assert "skipped 1 file(s)" in imported.stdout
