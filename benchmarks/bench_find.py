"""Benchmark C-FIND of 10,000 studies: ours against dcmtk's findscu and the pynetdicom API.

An Orthanc on loopback (started with ``tests/servers.py``) holds ``--studies`` synthetic
studies, one instance each (no pixel data; one patient per study; names, dates, modalities
and descriptions vary, two names in ten have Latin-1 accents). Its storage folder is cached in
``--cache`` (default: pacs-tui's cache folder, ``bench_find/orthanc-N``), so only the first
run pays the upload (REST, in parallel). Then, in the same run, against the same Orthanc,
each of these is timed ``--runs`` times, in turn (after one untimed warm-up of each):

* dcmtk ``findscu -S`` with the same keys, as it runs by default (it prints every response):
  wall time of the process, and when its first ``Find Response`` line arrives (its output is
  read as it comes); and ``findscu -q -S`` (quiet: the protocol alone), total only;
* pynetdicom's API (``send_c_find``, identifier logging off): total and first response;
* ours, ``tui.net.find.find`` in this process (modules already imported, as in the app):
  total and first result; and, for context, the same in a fresh ``python`` process
  (interpreter start and imports included, as ``pacs-tui find`` would pay).

Every client asks for the same 14 study-level keys (what the Remote screen shows) and
must receive all the studies.

Targets (issue 6), on the median of the runs: ours <= 1.0x findscu's total time, and our
first result no later than 0.1 s after findscu's first response.

Prints one JSON object on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.servers import Orthanc, free_port, need_dcmtk, rest, start_orthanc  # noqa: E402
from tui.config import locate  # noqa: E402
from tui.net.find import DEFAULT_KEYS, find  # noqa: E402
from tui.net.nodes import Node  # noqa: E402

TOTAL_RATIO_TARGET = 1.0
FIRST_DELAY_TARGET_S = 0.1
CALLING_AET = "PACSTUI"
KEYS = DEFAULT_KEYS["study"]
_ROOT = "2.25.106776260111778404018079692849839762313.9"  # pacs-tui's UID root, benchmarks arc
MODALITIES = ("CT", "MR", "MR", "CT", "PT", "US", "CR", "MR", "DX", "MG")
DESCRIPTIONS = ("CHEST W/O CONTRAST", "BRAIN MRI", "ABDOMEN PELVIS", "KNEE LEFT", "PET-CT WB")
FAMILY = ("Smith", "Jones", "Müller", "Garcia", "Nguyen", "Brown", "Åberg", "Kim", "Rossi", "Lee")


def note(message: str) -> None:
    print(f"[bench_find] {message}", file=sys.stderr, flush=True)


# -- the data --------------------------------------------------------------------------------


def instance_bytes(n: int) -> bytes:
    """Study ``n``: one small instance (no pixel data) of its own patient and study."""
    from io import BytesIO

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    ds = Dataset()
    modality = MODALITIES[n % len(MODALITIES)]
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture: no pixel module needed
    ds.SOPInstanceUID = f"{_ROOT}.{n}.1.1"
    ds.StudyDate = f"{2000 + n % 25}{n % 12 + 1:02d}{n % 28 + 1:02d}"
    ds.StudyTime = f"{8 + n % 10:02d}{n % 60:02d}00"
    ds.AccessionNumber = f"ACC{n:08d}"
    ds.Modality = modality
    ds.ReferringPhysicianName = "Referrer^Ann"
    ds.StudyDescription = DESCRIPTIONS[n % len(DESCRIPTIONS)]
    ds.PatientName = f"{FAMILY[n % len(FAMILY)]}^Bench{n:05d}"
    ds.PatientID = f"PID{n:07d}"
    ds.PatientBirthDate = f"{1930 + n % 80}{n % 12 + 1:02d}{n % 28 + 1:02d}"
    ds.PatientSex = "MF"[n % 2]
    ds.StudyInstanceUID = f"{_ROOT}.{n}"
    ds.SeriesInstanceUID = f"{_ROOT}.{n}.1"
    ds.StudyID = str(n)
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def populate(server: Orthanc, studies: int) -> float:
    """Upload ``studies`` instances over REST, eight at a time; return the seconds taken."""

    def post(n: int) -> None:
        request = urllib.request.Request(
            f"{server.url}/instances",
            data=instance_bytes(n),
            headers={"Content-Type": "application/dicom"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()

    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        for done, _ in enumerate(pool.map(post, range(studies)), 1):
            if done % 1000 == 0:
                note(f"uploaded {done} of {studies}")
    return time.perf_counter() - started


def orthanc_with(studies: int, cache: Path) -> tuple[Orthanc, float | None]:
    """Orthanc holding exactly ``studies`` studies, from the cache when it has them."""
    workdir = cache / f"orthanc-{studies}"
    server = start_orthanc(workdir, move_port=free_port())
    count = rest(server, "/statistics")["CountStudies"]
    if count == studies:
        note(f"reusing {count} studies in {workdir}")
        return server, None
    note(f"{workdir} holds {count} studies: filling it with {studies}")
    for patient in rest(server, "/patients"):
        rest(server, f"/patients/{patient}", method="DELETE")
    upload_s = populate(server, studies)
    note(f"uploaded in {upload_s:.1f} s")
    return server, upload_s


# -- the clients -----------------------------------------------------------------------------


def findscu_args(server: Orthanc, *options: str) -> list[str]:
    args = [need_dcmtk("findscu"), *options, "-S", "-aet", CALLING_AET, "-aec", server.aet]
    args += ["-k", "QueryRetrieveLevel=STUDY"]
    for key in KEYS:
        args += ["-k", key]
    return [*args, server.host, str(server.port)]


def time_findscu(server: Orthanc) -> tuple[float, float, int]:
    """dcmtk's findscu as it runs by default (it prints each response): (total seconds, first
    response seconds, responses). Its ``Find Response: N`` lines are read as they come."""
    started = time.perf_counter()
    process = subprocess.Popen(
        findscu_args(server), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert process.stdout is not None
    first = None
    responses = 0
    for line in _lines(process.stdout.fileno()):
        if b"Find Response:" in line:  # pending ones; the final says "Final Find Response"
            if first is None:
                first = time.perf_counter() - started
            responses += 1
    process.wait()
    total = time.perf_counter() - started
    if process.returncode != 0 or first is None:
        raise SystemExit(f"findscu failed ({process.returncode})")
    return total, first, responses


def time_findscu_quiet(server: Orthanc) -> tuple[float, float, int]:
    """findscu ``-q`` (prints nothing, so no first-response time): the protocol alone."""
    started = time.perf_counter()
    done = subprocess.run(findscu_args(server, "-q"), capture_output=True)
    total = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"findscu -q failed ({done.returncode})")
    return total, float("nan"), -1


def _lines(fd: int) -> Iterator[bytes]:
    """Lines from a pipe as soon as they arrive (no buffering on our side)."""
    pending = b""
    while True:
        select.select([fd], [], [])
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        yield from lines
    if pending:
        yield pending


def time_pynetdicom(server: Orthanc) -> tuple[float, float, int]:
    """pynetdicom's API: (total seconds, first response seconds, responses)."""
    from pydicom.dataset import Dataset
    from pynetdicom import AE, _config
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        StudyRootQueryRetrieveInformationModelFind,
    )

    _config.LOG_RESPONSE_IDENTIFIERS = False
    _config.LOG_REQUEST_IDENTIFIERS = False
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    for key in KEYS:
        setattr(identifier, key, "")
    started = time.perf_counter()
    ae = AE(ae_title=CALLING_AET)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate(server.host, server.port, ae_title=server.aet)
    if not assoc.is_established:
        raise SystemExit("pynetdicom could not associate")
    first = None
    responses = 0
    for status, found in assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind):
        if status and status.Status in (0xFF00, 0xFF01) and found is not None:
            if first is None:
                first = time.perf_counter() - started
            responses += 1
    assoc.release()
    total = time.perf_counter() - started
    ae.shutdown()
    return total, first or total, responses


def time_ours(node: Node) -> tuple[float, float, int]:
    """``tui.net.find.find`` in this process: (total seconds, first result seconds, results)."""
    started = time.perf_counter()
    first = None
    results = 0
    for _ in find(node, "study", dict.fromkeys(KEYS, "")):
        if first is None:
            first = time.perf_counter() - started
        results += 1
    total = time.perf_counter() - started
    return total, first or total, results


_CHILD = """
import sys, time
from tui.net.find import DEFAULT_KEYS, find
from tui.net.nodes import Node
node = Node(name="bench", aet=sys.argv[1], host=sys.argv[2], port=int(sys.argv[3]),
            calling_aet="PACSTUI")
first, n = None, 0
for row in find(node, "study", dict.fromkeys(DEFAULT_KEYS["study"], "")):
    if first is None:
        first = time.time()
    n += 1
print(first, n)
"""


def time_ours_process(server: Orthanc, env: dict[str, str]) -> tuple[float, float, int]:
    """Ours in a fresh Python process, from the spawn: (total, first result, results).

    The child notes the wall clock at its first result; the spawn's wall clock is the origin.
    """
    argv = [sys.executable, "-c", _CHILD, server.aet, server.host, str(server.port)]
    spawned, started = time.time(), time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    total = time.perf_counter() - started
    first_wall, count = done.stdout.split()
    return total, float(first_wall) - spawned, int(count)


# -- the run ---------------------------------------------------------------------------------


def measure(
    runs: int, clients: dict[str, Callable[[], tuple[float, float, int]]], studies: int
) -> dict[str, Any]:
    """Each client once untimed, then ``runs`` rounds of all in turn."""
    samples: dict[str, list[tuple[float, float, int]]] = {name: [] for name in clients}
    for attempt in range(runs + 1):
        for name, client in clients.items():
            total, first, count = client()
            if count != studies and count != -1:  # -1: a client that cannot count
                raise SystemExit(f"{name} received {count} studies, not {studies}")
            if attempt:
                samples[name].append((total, first, count))
                note(f"{name}: {total:.3f} s, first after {first:.3f} s")

    out = {}
    for name, runs_of in samples.items():
        totals = [t for t, _, _ in runs_of]
        firsts = [f for _, f, _ in runs_of]
        out[name] = {
            "total_median_s": round(statistics.median(totals), 4),
            "total_min_s": round(min(totals), 4),
            "total_max_s": round(max(totals), 4),
        }
        if runs_of[0][2] >= 0:
            out[name] |= {
                "first_median_s": round(statistics.median(firsts), 4),
                "first_min_s": round(min(firsts), 4),
                "results": runs_of[0][2],
            }
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    cache = args.cache or locate().cache_dir / "bench_find"
    server, upload_s = orthanc_with(args.studies, cache)
    scratch = Path(tempfile.mkdtemp(prefix="pacs-bench-find-", dir="/tmp"))
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONPYCACHEPREFIX": str(scratch / "pyc")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    node = Node(name="bench", aet=server.aet, host=server.host, port=server.port,
                calling_aet=CALLING_AET)  # fmt: skip
    clients: dict[str, Callable[[], tuple[float, float, int]]] = {
        "findscu": lambda: time_findscu(server),
        "findscu_quiet": lambda: time_findscu_quiet(server),
        "ours": lambda: time_ours(node),
        "ours_process": lambda: time_ours_process(server, env),
    }
    if not args.no_pynetdicom:
        clients["pynetdicom_api"] = lambda: time_pynetdicom(server)
    try:
        timings = measure(args.runs, clients, args.studies)
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    findscu, ours = timings["findscu"], timings["ours"]
    ratio = ours["total_median_s"] / findscu["total_median_s"]
    delay = ours["first_median_s"] - findscu["first_median_s"]
    result: dict[str, Any] = {
        "benchmark": "find",
        "studies": args.studies,
        "keys": len(KEYS),
        "runs": args.runs,
        "upload_seconds": None if upload_s is None else round(upload_s, 1),
        "timings": timings,
        "ratios": {
            "ours_over_findscu_total": round(ratio, 3),
            "ours_first_minus_findscu_first_s": round(delay, 4),
            "ours_over_findscu_quiet_total": round(
                ours["total_median_s"] / timings["findscu_quiet"]["total_median_s"], 3
            ),
            "ours_process_over_findscu_total": round(
                timings["ours_process"]["total_median_s"] / findscu["total_median_s"], 3
            ),
        },
        "target": {
            "total_ratio_max": TOTAL_RATIO_TARGET,
            "first_delay_max_s": FIRST_DELAY_TARGET_S,
            "met": ratio <= TOTAL_RATIO_TARGET and delay <= FIRST_DELAY_TARGET_S,
        },
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "pydicom": metadata.version("pydicom"),
        "pynetdicom": metadata.version("pynetdicom"),
    }
    if "pynetdicom_api" in timings:
        result["ratios"]["pynetdicom_over_findscu_total"] = round(
            timings["pynetdicom_api"]["total_median_s"] / findscu["total_median_s"], 3
        )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5, help="timed rounds of every client")
    parser.add_argument("--cache", type=Path, help="where Orthanc's storage is kept between runs")
    parser.add_argument("--no-pynetdicom", action="store_true", help="skip the slow reference")
    args = parser.parse_args(argv)
    if min(args.studies, args.runs) < 1:
        parser.error("--studies and --runs must be at least 1")
    print(json.dumps(run(args), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
