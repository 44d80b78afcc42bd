"""Fuzz import and render on mutations of the real files in ``../shared/dicom``.

Each case takes one real file (one per series, transfer syntax and kind of image, from
the shared folder's manifest), mutates it with ``random.Random(f"{seed}:{case}")`` (byte
flips, flips inside an element's value, a truncation, a huge element length, garbage
inserted), writes it to a scratch folder of its own, imports it alone into an in-memory
archive and renders every series the import indexed through the rendering core. Cases
run in worker processes, each case against a deadline: a worker that overruns is killed
(a hang) and replaced. A worker's address space is capped, so a file that makes it
balloon fails as a MemoryError rather than taking the machine down.

A case fails when anything raises but the one-line errors (a skipped file, a render
refused), a reason is not one printable line, the index disagrees with pydicom about the
file's UIDs, patient or study, an index value holds a control character, or the case
overruns its deadline. ``--case N`` runs one case and prints its outcome, ``--keep DIR``
writes its mutant there (to reproduce a failure).

Prints one JSON object on stdout: cases, failures (each with its case number, source,
mutations and what went wrong), outcomes and seconds; progress goes to stderr.
``tests/test_fuzz.py`` runs a few thousand cases of it.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import random
import re
import shutil
import struct
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import cache
from io import BytesIO
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHARED = REPO.parent / "shared" / "dicom"
DEADLINE_S = 30.0  # per case: a big J2K frame decodes in about a second
MEMORY_CAP = 3 << 30  # bytes of address space per worker
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
# Text columns of the index that come from a file (numbers and blobs cannot hold text).
_INDEX_TEXT = (
    "SELECT p.patient_id, p.patient_name, p.birth_date, p.sex, st.study_uid, st.study_date,"
    " st.study_time, st.accession, st.description, st.referring_physician, st.modalities,"
    " se.series_uid, se.modality, se.description, se.body_part, i.sop_uid, i.sop_class,"
    " i.transfer_syntax, i.photometric, i.position, i.orientation, i.pixel_spacing,"
    " i.window_center, i.window_width"
    " FROM instance i JOIN series se USING (series_pk) JOIN study st USING (study_pk)"
    " JOIN patient p USING (patient_pk)"
)


@dataclass
class Outcome:
    """What one case did."""

    case: int
    source: str = ""
    mutations: list[str] = field(default_factory=list)
    result: str = ""  # 'indexed', 'skipped', 'dicomdir' or 'failed'
    reason: str = ""  # why the file was skipped
    rendered: int = 0  # series that gave an image
    refused: list[str] = field(default_factory=list)  # one line each: why a render was refused
    failure: str = ""


def sources(shared: Path = SHARED) -> list[str]:
    """One file per (series, syntax, SOP class, photometric, bits, DICM prefix), relative to
    ``shared``, sorted (a series' other slices would only repeat its cases)."""
    with open(shared / "manifest_files.tsv", newline="") as fp:
        rows = list(csv.DictReader(fp, delimiter="\t"))
    chosen: dict[tuple[str, ...], str] = {}
    for row in sorted(rows, key=lambda r: r["relpath"]):
        key = (row["SeriesInstanceUID"] or row["relpath"], row["ts"], row["sop"],
               row["PhotometricInterpretation"], row["BitsAllocated"], row["DICM"])  # fmt: skip
        chosen.setdefault(key, row["relpath"])
    return sorted(chosen.values())


# -- mutations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    """A source file's bytes, where its header ends, and its elements' length and value
    positions (found by tag, so nested elements too; a stray match only mutates elsewhere)."""

    data: bytes
    header_end: int
    lengths: tuple[tuple[int, int], ...]  # (offset, width in bytes)
    values: tuple[tuple[int, int], ...]  # (offset, length)


@cache
def _source(path: str) -> _Source:
    from tui.archive.elements import LONG_VRS
    from tui.archive.header import read_dataset

    data = Path(path).read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = read_dataset(BytesIO(data))
            little = ds.original_encoding[1] is not False
            tags = {int(e.tag) for e in ds.iterall()}
            tags |= {int(e.tag) for e in getattr(ds, "file_meta", [])}
        except Exception:  # a source pydicom cannot read is mutated blindly
            tags, little = set(), True
    pixels = data.find(struct.pack("<HH" if little else ">HH", 0x7FE0, 0x0010))
    lengths: list[tuple[int, int]] = []
    values: list[tuple[int, int]] = []
    for tag in sorted(tags):
        group, element = tag >> 16, tag & 0xFFFF
        endian = "<" if little or group == 2 else ">"
        for match in re.finditer(re.escape(struct.pack(endian + "HH", group, element)), data):
            at, vr = match.start(), data[match.start() + 4 : match.start() + 6]
            if vr.isalpha() and vr.isupper():
                width, start = (4, at + 8) if vr in LONG_VRS else (2, at + 6)
            else:
                width, start = 4, at + 4
            if start + width > len(data):
                continue
            lengths.append((start, width))
            (length,) = struct.unpack_from(endian + ("L" if width == 4 else "H"), data, start)
            if length != 0xFFFFFFFF:
                values.append((start + width, min(length, len(data) - start - width)))
    return _Source(data, pixels if pixels > 0 else len(data), tuple(lengths), tuple(values))


def _position(rng: random.Random, source: _Source, size: int) -> int:
    """Mostly inside the header (where mutations reach the parser), sometimes anywhere."""
    end = source.header_end if rng.random() < 0.8 else size
    return rng.randrange(max(1, min(end, size)))


def mutate(rng: random.Random, source: _Source) -> tuple[bytes, list[str]]:
    """One to three mutations of ``source``; the bytes and a word on each."""
    data = bytearray(source.data)
    done: list[str] = []
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
        kind = rng.choice(("flip", "value", "length", "insert", "truncate"))
        if kind == "value" and source.values:
            start, length = rng.choice(source.values)
            for _ in range(rng.randint(1, 3)):
                at = start + rng.randrange(max(1, length))
                if at < len(data):
                    data[at] = rng.choice((0, 0x0A, 0x1B, 0x7F, 0xFF, rng.randrange(256)))
            done.append(f"value@{start}")
        elif kind == "length" and source.lengths:
            at, width = rng.choice(source.lengths)
            if width == 4:
                huge = rng.choice((0xFFFFFFF0, 0xFFFFFFFF, 0x7FFFFFFF, len(data) + 1, 0))
                data[at : at + 4] = struct.pack("<L", huge)
            else:
                huge = rng.choice((0xFFFF, 0xFFF0, 0))
                data[at : at + 2] = struct.pack("<H", huge)
            done.append(f"length@{at}={huge:#x}")
        elif kind == "insert":
            at = _position(rng, source, len(data))
            data[at:at] = rng.randbytes(rng.randint(1, 64))
            done.append(f"insert@{at}")
        elif kind == "truncate":
            at = _position(rng, source, len(data))
            del data[at:]
            done.append(f"truncate@{at}")
        else:
            for _ in range(rng.randint(1, 8)):
                at = _position(rng, source, len(data))
                if at < len(data):
                    data[at] ^= rng.randint(1, 255)
            done.append("flip")
    return bytes(data), done


def mutant(shared: Path, seed: int, case: int) -> tuple[str, bytes, list[str]]:
    """Case ``case`` of run ``seed``: its source (relative), bytes and mutations."""
    rng = random.Random(f"{seed}:{case}")
    relative = rng.choice(sources(shared))
    data, done = mutate(rng, _source(str(shared / relative)))
    return relative, data, done


# -- one case ----------------------------------------------------------------------------


def _line_problem(text: str) -> str:
    """Why ``text`` is not one printable line (or says that memory ran out), or ''."""
    if not text.strip():
        return "empty"
    if "\n" in text or _CONTROL.search(text):
        return f"not one printable line: {text!r}"
    if "MemoryError" in text:  # the worker's address space is capped: it ballooned
        return f"out of memory: {text!r}"
    return ""


def _expected(path: Path) -> dict[str, str]:
    """What pydicom reads from ``path``: its UIDs, patient and study, as the index keeps text
    (control characters as U+FFFD, padding stripped, values pydicom cannot convert absent)."""
    from pydicom.multival import MultiValue

    from tui.archive.header import read_dataset, without_controls

    keywords = (*_UIDS, "PatientID", "PatientName")
    with open(path, "rb") as fp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Only these elements: the rest may be broken in ways that do not matter here.
        ds = read_dataset(fp, ["SpecificCharacterSet", *keywords])
        out = {}
        for keyword in keywords:
            try:
                value = ds.get(keyword)
            except Exception:  # a value pydicom cannot convert: absent, as the index has it
                value = None
            if value is None:
                text = ""
            elif isinstance(value, MultiValue | list):  # several values, joined as the index does
                text = "\\".join(map(str, value))
            else:
                text = str(value)  # IS("0") is falsy: it is still a value
            out[keyword] = without_controls(text.strip("\x00 "))
    return out


def _check_index(archive: Any, path: Path) -> str:
    """Why the index is wrong about ``path``, or ''."""
    from tui.archive.header import uid_problem

    for row in archive.conn.execute(_INDEX_TEXT):
        for value in row:
            if isinstance(value, str) and _CONTROL.search(value):
                return f"a control character in the index: {value!r}"
    for (reason,) in archive.conn.execute("SELECT reason FROM seen_file"):
        if _CONTROL.search(reason):
            return f"a control character in a reason: {reason!r}"
    [indexed] = archive.conn.execute(
        "SELECT st.study_uid, se.series_uid, i.sop_uid, p.patient_id, p.patient_name"
        " FROM instance i JOIN series se USING (series_pk) JOIN study st USING (study_pk)"
        " JOIN patient p USING (patient_pk)"
    ).fetchall()
    for uid in indexed[:3]:
        if uid_problem(uid):
            return f"not a UID in the index: {uid!r}"
    try:
        expected = _expected(path)
    except Exception as exc:
        return f"indexed, but pydicom cannot read it: {type(exc).__name__}: {exc}"[:300]
    got = dict(zip((*_UIDS, "PatientID", "PatientName"), indexed, strict=True))
    wrong = {k: (got[k], v) for k, v in expected.items() if got[k] != v}
    return f"the index disagrees with pydicom (index, pydicom): {wrong!r}" if wrong else ""


def _render_all(archive: Any, outcome: Outcome) -> str:
    """Render every indexed series' middle slice; why a render went wrong, or ''."""
    from tui.archive.query import series_instances
    from tui.errors import UserError
    from tui.render.pipeline import Request, pick_stack, render
    from tui.render.volume import assemble, slices_of

    for (series,) in archive.conn.execute("SELECT series_uid FROM series").fetchall():
        try:
            stacks = assemble(slices_of(series_instances(archive, series)))
            if not stacks:
                continue  # no pixel data: nothing to render
            stack = pick_stack(stacks, 0)
            # The acquired slice reads one frame; a MIP loads the whole volume.
            modes = ("slice", "mip") if len(stack.slices) > 1 else ("slice",)
            images = [render(stack, Request(mode=mode), {}).image for mode in modes]
        except UserError as exc:
            problem = _line_problem(str(exc))
            if problem:
                return f"render refused with {problem}"
            outcome.refused.append(str(exc))
            continue
        for image in images:
            if image.dtype.name != "uint8" or image.ndim not in (2, 3) or not image.size:
                return f"render gave a {image.dtype} image of shape {image.shape}"
        outcome.rendered += 1
    return ""


def run_case(shared: Path, seed: int, case: int, scratch: Path) -> Outcome:
    """Mutate, import, check and render case ``case``; never raises."""
    from tui.archive.importer import import_paths
    from tui.archive.index import Archive

    outcome = Outcome(case)
    folder = scratch / f"case-{case}"  # a path of its own: renders cache headers by path
    try:
        outcome.source, data, outcome.mutations = mutant(shared, seed, case)
        folder.mkdir()
        path = folder / Path(outcome.source).name
        path.write_bytes(data)
        with Archive(None) as archive, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom and numpy on broken values: not failures
            summary = import_paths(archive, [path], workers=1)
            if summary.skipped:  # a DICOMDIR's references may add theirs
                outcome.result = "skipped"
                outcome.reason = summary.skipped[0][1]
                problems = (_line_problem(reason) for _, reason in summary.skipped)
                outcome.failure = next((f"a reason {p}" for p in problems if p), "")
            elif summary.dicomdirs:
                outcome.result = "dicomdir"
            else:
                outcome.result = "indexed"
                outcome.failure = _check_index(archive, path) or _render_all(archive, outcome)
    except BaseException:  # anything at all is the failure this looks for
        outcome.failure = "".join(traceback.format_exc(limit=-6).splitlines(True)[-12:])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if outcome.failure:
        outcome.result = "failed"
    return outcome


# -- workers and deadlines ---------------------------------------------------------------


def _worker(conn: Connection, shared: Path, seed: int, scratch: Path) -> None:
    """Run the cases the parent sends, one at a time, until it sends None."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    while (case := conn.recv()) is not None:
        conn.send(run_case(shared, seed, case, scratch))


class _Runner:
    """A worker process and the case it is on."""

    def __init__(self, context: Any, shared: Path, seed: int, scratch: Path) -> None:
        self.conn, theirs = context.Pipe()
        self.process = context.Process(
            target=_worker, args=(theirs, shared, seed, scratch), daemon=True
        )
        self.process.start()
        theirs.close()
        self.case: int | None = None
        self.started = 0.0

    def give(self, case: int) -> None:
        self.case, self.started = case, time.monotonic()
        self.conn.send(case)

    def stop(self, kill: bool = False) -> None:
        """End the worker: asked to, or killed (it hung, or died already)."""
        if not kill and self.process.is_alive():
            self.conn.send(None)
            self.process.join(5)
        self.process.kill()
        self.process.join()


def run(
    cases: range,
    seed: int = 0,
    workers: int = 1,
    deadline: float = DEADLINE_S,
    shared: Path = SHARED,
    progress: bool = False,
) -> list[Outcome]:
    """Run ``cases`` in ``workers`` processes; every case's outcome, in case order.

    A case that overruns ``deadline`` seconds, or whose worker dies, fails; its worker
    is replaced.
    """
    # fork starts a worker in milliseconds with everything imported; with threads about
    # (pytest's plug-ins may start some) only a fresh interpreter is safe.
    method = "fork" if threading.active_count() == 1 else "spawn"
    context = multiprocessing.get_context(method)
    scratch = Path(tempfile.mkdtemp(prefix="pacs-fuzz-"))
    todo = list(cases)[::-1]
    outcomes: dict[int, Outcome] = {}
    runners = [_Runner(context, shared, seed, scratch) for _ in range(min(workers, len(todo)))]
    try:
        for runner in runners:
            runner.give(todo.pop())
        while busy := [r for r in runners if r.case is not None]:
            soonest = min(r.started for r in busy) + deadline - time.monotonic()
            ready = wait([r.conn for r in busy], timeout=max(0.0, soonest))
            for runner in busy:
                case = runner.case
                assert case is not None
                lost, late = "", time.monotonic() - runner.started > deadline
                if runner.conn in ready:
                    try:
                        outcomes[case] = runner.conn.recv()
                    except EOFError:
                        lost = "the worker died"  # a crash in native code
                    if late and not lost:  # it did finish, after its deadline
                        outcomes[case].result = "failed"
                        outcomes[case].failure = f"over the deadline of {deadline:g} s"
                elif late:
                    lost = f"over the deadline of {deadline:g} s"
                else:
                    continue
                if lost:
                    runner.stop(kill=True)
                    outcomes[case] = _lost(shared, seed, case, runner, lost)
                    runners[runners.index(runner)] = runner = _Runner(
                        context, shared, seed, scratch
                    )
                runner.case = None
                if todo:
                    runner.give(todo.pop())
                if progress and len(outcomes) % 1000 == 0:
                    print(f"[fuzz] {len(outcomes)} cases", file=sys.stderr, flush=True)
    finally:
        for runner in runners:
            runner.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return [outcomes[case] for case in sorted(outcomes)]


def _lost(shared: Path, seed: int, case: int, runner: _Runner, why: str) -> Outcome:
    """The outcome of a case whose worker hung or died: its mutant, and why."""
    relative, _, done = mutant(shared, seed, case)
    return Outcome(case, relative, done, "failed", failure=f"{why} ({runner.process.exitcode})")


def summary(outcomes: list[Outcome], seconds: float) -> dict[str, Any]:
    """The JSON report of a run."""
    return {
        "cases": len(outcomes),
        "failures": [asdict(o) for o in outcomes if o.failure],
        "outcomes": dict(Counter(o.result for o in outcomes).most_common()),
        "renders": sum(o.rendered for o in outcomes),
        "renders_refused": sum(len(o.refused) for o in outcomes),
        "seconds": round(seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--first", type=int, default=0, help="the first case's number")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--deadline", type=float, default=DEADLINE_S, help="seconds per case")
    parser.add_argument("--case", type=int, help="run this one case in this process")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="with --case: write its mutant")
    args = parser.parse_args(argv)
    if not SHARED.is_dir():
        print(f"{SHARED} is missing: nothing to fuzz", file=sys.stderr)
        return 1
    if args.case is not None:
        if args.keep:
            relative, data, _ = mutant(SHARED, args.seed, args.case)
            args.keep.mkdir(parents=True, exist_ok=True)
            (args.keep / Path(relative).name).write_bytes(data)
        with tempfile.TemporaryDirectory() as scratch:
            outcome = run_case(SHARED, args.seed, args.case, Path(scratch))
        print(json.dumps(asdict(outcome), indent=1))
        return 0
    started = time.perf_counter()
    outcomes = run(
        range(args.first, args.first + args.cases), args.seed, args.workers, args.deadline,
        progress=True,
    )  # fmt: skip
    report = summary(outcomes, time.perf_counter() - started)
    print(json.dumps(report, indent=1))
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
