"""Benchmark C-GET of a 300-instance 512x512 CT study: ours against pynetdicom's and dcmtk's getscu.

The study: ``--count`` (300) slices of 512 x 512 16-bit CT, Explicit VR Little Endian, ~157 MB,
written once with pydicom (``tests/synthetic.py``) into ``--data`` (default
``/tmp/pacs-tui-bench-get/ct-512x300``, kept as a cache: re-runs skip the generation). An
Orthanc on loopback (``tests/servers.py``, fresh for this run) receives it over REST. Then, in
the same run, against the same Orthanc, each contestant retrieves the whole study by C-GET
(study root, calling AE title PACSTUI, default settings otherwise) into a fresh empty folder,
timed wall-clock from the start of its process to its exit:

* pynetdicom's own app: ``python -m pynetdicom getscu -S -k QueryRetrieveLevel=STUDY ...``;
* dcmtk's ``getscu -S -k 0008,0052=STUDY ...`` as it comes, and again with ``TCP_NODELAY=1`` in
  its environment (which turns Nagle's algorithm off);
* ours: ``python -m tui --archive FRESH get NODE --study UID --json`` (what the ``pacs-tui``
  script runs; the node is configured by ``pacs-tui node add`` in a throwaway XDG config). It
  includes its IMAGE-level C-FIND (to skip instances already present), the C-GET, and filing
  each instance into the archive's store and index as it arrives.

Each must receive every instance (files counted; for ours, ``ls --level instance --json``).
Each run's CPU time (user + system) and peak RSS, the process's own (``tests/rusage.py``), are
reported beside it: on a busy machine CPU time varies less than wall time. ``--baseline DIR``
runs ours a second time from another checkout (an older commit's worktree), in the same
rotation, so a change is measured against what it replaces in one run. The physical limit,
measured in the same run: a Python TCP socket pair over 127.0.0.1 copying the same number
of bytes (``sendall`` of a 1 MiB buffer, ``recv_into`` in a thread).

Targets (issue 6), on the best of ``--repeat`` runs (default 3; the contestants take turns,
in a rotating order): ours <= 1.0x the time of pynetdicom's getscu, and ours <= 0.5x the time
of dcmtk's getscu at its best (default or TCP_NODELAY=1); (issue 12) ours' peak RSS at most
100 MB above the idle process's (``pacs-tui node ls``), whatever the study's size; (issue 14)
ours <= 1.0x the time of dcmtk's getscu with TCP_NODELAY=1, and ours' CPU time <= 2x that
getscu's. Ours' MB/s is also reported as a fraction of the loopback copy speed.

Ours runs as an installed pacs-tui does: each checkout's bytecode is compiled first
(``compileall``, as pip does on install; with ``PYTHONDONTWRITEBYTECODE`` set, each run would
otherwise compile every module of ours again). The floors under ours' CPU time are measured
in the same run: the interpreter starting (``python -c pass``) and it importing what the
retrieve imports (``python -c "import tui.cli.parser, tui.net.scu, ..."``).

Prints one JSON object on stdout; progress goes to stderr. Orthanc, the output folders and the
throwaway config live in a temporary folder under /tmp, removed at the end (``--keep`` keeps
it); the generated study is kept in its cache folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.rusage import launched, usage  # noqa: E402
from tests.servers import (  # noqa: E402
    PACSTUI,
    Orthanc,
    free_port,
    need_dcmtk,
    rest,
    start_orthanc,
    upload,
)

GETSCU_RATIO_TARGET = 1.0  # ours' time / pynetdicom getscu's time, at most
DCMTK_RATIO_TARGET = 0.5  # ours' time / dcmtk getscu's best time, at most
NODELAY_RATIO_TARGET = 1.0  # ours' time / dcmtk getscu's with TCP_NODELAY=1, at most (issue 14)
NODELAY_CPU_TARGET = 2.0  # ours' CPU time / that getscu's CPU time, at most (issue 14)
# What ``get`` imports before its first byte goes out: the start-up floor of its CPU time.
GET_IMPORTS = "import tui.cli.parser, tui.cli.net, tui.net.scu, tui.net.get, tui.net.storage"
PEAK_ABOVE_IDLE_TARGET = 100.0  # MB of peak RSS above the idle process's, at most (issue 12)
DEFAULT_DATA = Path("/tmp/pacs-tui-bench-get")
NODE = "bench"
CHUNK = 1 << 20  # the loopback copy's buffer
RUN_TIMEOUT = 600.0


def note(message: str) -> None:
    print(f"[bench_get] {message}", file=sys.stderr, flush=True)


# -- the study -----------------------------------------------------------------------------------


def prepare_data(data: Path | None, size: int, count: int) -> tuple[Path, float]:
    """A folder holding the study (``data`` if it holds one, else generated and cached there),
    and the seconds spent generating. A folder is used only once its generation finished."""
    folder = data if data is not None else DEFAULT_DATA / f"ct-{size}x{count}"
    if folder.resolve().is_relative_to(REPO):
        raise SystemExit(f"--data {folder}: keep benchmark data out of the repository")
    done = folder / ".complete"
    if done.exists() or (data is not None and any(folder.glob("*.dcm"))):
        note(f"reusing the study in {folder}")
        return folder, 0.0
    from tests.synthetic import AXIAL, write_series

    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    note(f"generating {count} slices of {size}x{size} in {folder}")
    started = time.perf_counter()
    write_series(partial, AXIAL, size=size, count=count, spacing=0.7, step=1.0)
    seconds = time.perf_counter() - started
    if folder.exists():
        shutil.rmtree(folder)
    partial.rename(folder)
    done.write_text("complete\n")
    return folder, seconds


def study_of(paths: list[Path]) -> str:
    """The one StudyInstanceUID of the files."""
    import pydicom

    uids = {str(pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID) for p in paths}
    if len(uids) != 1:
        raise SystemExit(f"the data holds {len(uids)} studies; one is needed")
    return uids.pop()


def load(server: Orthanc, paths: list[Path]) -> float:
    """Upload the files to Orthanc over REST, four at a time; return the seconds taken."""
    started = time.perf_counter()
    chunks = [paths[i::4] for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda chunk: upload(server, chunk), chunks))
    held = rest(server, "/statistics")["CountInstances"]
    if held != len(paths):
        raise SystemExit(f"Orthanc holds {held} instances, not {len(paths)}")
    return time.perf_counter() - started


# -- the contestants -----------------------------------------------------------------------------


@dataclass
class Contestant:
    """One client: how to run it into a fresh folder, and how to count what it received."""

    name: str
    what: str
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # user + system seconds of each run
    peak_mb: list[float] = field(default_factory=list)  # the process's peak RSS, each run
    received: list[int] = field(default_factory=list)
    received_bytes: int = 0
    failures: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def base_env(scratch: Path) -> dict[str, str]:
    """The environment every contestant gets: no TCP_NODELAY, no archive of the user's, and
    XDG folders in the scratch folder, so the user's own config and archive stay untouched."""
    env = {k: v for k, v in os.environ.items() if k not in ("TCP_NODELAY", "PACS_TUI_ARCHIVE")}
    for name in ("CONFIG", "DATA", "CACHE", "STATE"):
        folder = scratch / "xdg" / name.lower()
        folder.mkdir(parents=True, exist_ok=True)
        env[f"XDG_{name}_HOME"] = str(folder)
    return env


def files_under(folder: Path, skip: str | None = None) -> list[Path]:
    found = []
    for root, dirs, names in os.walk(folder):
        if skip in dirs:
            dirs.remove(skip)
        found += [Path(root, n) for n in names if not n.startswith(".")]
    return found


def measure(
    command: list[str], env: dict[str, str], log: Path
) -> tuple[float, int, str, float, float]:
    """Run ``command``: seconds from before its start to after its exit, its exit status,
    its stdout, and its own CPU seconds and peak RSS in MB (through ``tests.rusage``'s
    launcher: started from this process, which holds the study, it would report our size).
    It runs in ``log``'s folder: ``python -m`` puts the working folder first on the path, so
    started in a checkout it would run that checkout's pacs-tui whatever ``PYTHONPATH`` says."""
    report = log.with_suffix(".usage")
    with log.open("wb") as err, tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        done = subprocess.run(
            launched(command, report), env=env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=err, timeout=RUN_TIMEOUT, cwd=log.parent,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        out.seek(0)
        stdout = out.read().decode(errors="replace")
    cpu, peak_mb = usage(report)
    return seconds, done.returncode, stdout, cpu, peak_mb


def timed(
    contestant: Contestant, command: list[str], env: dict[str, str], log: Path
) -> tuple[float, int, str]:
    """Run ``command``; seconds from before its start to after its exit, return code, stdout.
    Its CPU time (user + system, less sensitive to a busy machine) and its peak RSS go to
    ``contestant``."""
    seconds, code, stdout, cpu, peak_mb = measure(command, env, log)
    contestant.cpu.append(cpu)
    contestant.peak_mb.append(peak_mb)
    return seconds, code, stdout


def tail(log: Path, out: str = "") -> str:
    text = (out + log.read_text(errors="replace")).strip().splitlines()
    return " | ".join(text[-3:])


def run_getscu(
    contestant: Contestant, command: list[str], env: dict[str, str], out: Path, want: int
) -> None:
    """One run of a getscu that writes each instance as a file in ``out``."""
    out.mkdir(parents=True)
    seconds, code, stdout = timed(
        contestant, [*command, "-od", str(out)], env, out.with_suffix(".log")
    )
    files = files_under(out)
    contestant.received.append(len(files))
    contestant.received_bytes = sum(p.stat().st_size for p in files)
    if code != 0 or len(files) != want:
        contestant.cpu.pop()  # only successful runs count
        contestant.peak_mb.pop()
        contestant.failures.append(
            f"exit {code}, {len(files)} files: {tail(out.with_suffix('.log'), stdout)}"
        )
    else:
        contestant.seconds.append(seconds)
    shutil.rmtree(out)


def run_ours(
    contestant: Contestant, env: dict[str, str], archive: Path, uid: str, want: int
) -> None:
    """One run of ``pacs-tui get`` into a fresh archive; counted by ``ls`` and in the store.
    ``env``'s PYTHONPATH says which checkout runs."""
    tui = [sys.executable, "-m", "tui", "--archive", str(archive)]
    command = [*tui, "get", NODE, "--study", uid, "--json"]
    log = archive.with_suffix(".log")
    seconds, code, stdout = timed(contestant, command, env, log)
    listed = subprocess.run(
        [*tui, "ls", "--level", "instance", "--json"], env=env, capture_output=True, check=True,
        cwd=archive.parent,
    )  # fmt: skip
    indexed = len(json.loads(listed.stdout))
    stored = [p for p in files_under(archive, skip="incoming") if p.suffix == ".dcm"]
    contestant.received.append(indexed)
    contestant.received_bytes = sum(p.stat().st_size for p in stored)
    try:
        summary = json.loads(stdout)
    except ValueError:
        summary = {}
    # the retrieve's own time, from its summary (process start and imports left out)
    own = sum(study.get("seconds", 0.0) for study in summary.get("studies", [])) or None
    contestant.extra.setdefault("own_seconds", []).append(own)
    if code != 0 or indexed != want or len(stored) != want or summary.get("new") != want:
        contestant.cpu.pop()  # only successful runs count
        contestant.peak_mb.pop()
        contestant.failures.append(
            f"exit {code}, {indexed} indexed, {len(stored)} stored: {tail(log, stdout)}"
        )
    else:
        contestant.seconds.append(seconds)
    shutil.rmtree(archive)


def compiled(checkout: Path) -> None:
    """Compile the checkout's modules to bytecode, as installing pacs-tui does."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(checkout / "tui")],
        check=True, capture_output=True,
    )  # fmt: skip


def loopback(nbytes: int) -> float:
    """Seconds to copy ``nbytes`` over a 127.0.0.1 TCP connection, in 1 MiB writes."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        sender = socket.create_connection(listener.getsockname())
        receiver, _ = listener.accept()
    got = [0]

    def drain() -> None:
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        while got[0] < nbytes:
            n = receiver.recv_into(view)
            if n == 0:
                break
            got[0] += n

    payload = memoryview(bytes(range(256)) * (CHUNK // 256))
    with sender, receiver:
        thread = threading.Thread(target=drain)
        started = time.perf_counter()
        thread.start()
        left = nbytes
        while left > 0:
            sender.sendall(payload[: min(CHUNK, left)])
            left -= CHUNK
        thread.join()
        seconds = time.perf_counter() - started
    if got[0] != nbytes:
        raise RuntimeError(f"loopback copy received {got[0]} of {nbytes} bytes")
    return seconds


# -- the run -------------------------------------------------------------------------------------


def best(values: list[float]) -> float | None:
    return min(values) if values else None


def ratio(a: float | None, b: float | None, digits: int = 3) -> float | None:
    return round(a / b, digits) if a and b else None


def figures(c: Contestant, nbytes: int, want: int) -> dict[str, Any]:
    fastest = best(c.seconds)
    result: dict[str, Any] = {
        "what": c.what,
        "seconds": round(fastest, 3) if fastest else None,
        "mb_per_s": round(nbytes / fastest / 1e6, 1) if fastest else None,
        "runs_seconds": [round(s, 3) for s in c.seconds],
        "cpu_seconds": round(min(c.cpu), 3) if c.cpu else None,  # the least of the runs
        "runs_cpu_seconds": [round(s, 3) for s in c.cpu],
        "peak_mb": round(max(c.peak_mb), 1) if c.peak_mb else None,  # the most of the runs
        "received": c.received,
        "received_bytes": c.received_bytes,
        "all_received": not c.failures and all(n == want for n in c.received),
    }
    if c.failures:
        result["failures"] = c.failures
    for key, values in c.extra.items():
        result[key] = [round(v, 3) if isinstance(v, float) else v for v in values]
    return result


def versions() -> dict[str, str]:
    def first_line(command: list[str]) -> str:
        done = subprocess.run(command, capture_output=True, text=True)
        lines = (done.stdout + done.stderr).strip().splitlines()
        return lines[0] if lines else "?"

    return {
        "python": platform.python_version(),
        "pynetdicom": metadata.version("pynetdicom"),
        "pydicom": metadata.version("pydicom"),
        "dcmtk": first_line([need_dcmtk("getscu"), "--version"]).strip("$ "),
        "orthanc": first_line([shutil.which("Orthanc", path="/usr/sbin:/usr/bin") or "Orthanc",
                               "--version"]),
    }  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    data, generate_s = prepare_data(args.data, args.size, args.count)
    paths = sorted(p for p in data.iterdir() if p.suffix == ".dcm")
    nbytes = sum(p.stat().st_size for p in paths)
    uid = study_of(paths)
    want = len(paths)
    note(f"{want} files, {nbytes / 1e6:.1f} MB, study {uid}")
    load_before = os.getloadavg()

    scratch = Path(tempfile.mkdtemp(prefix="pacs-bench-get-", dir="/tmp"))
    try:
        env = base_env(scratch)
        with start_orthanc(scratch / "orthanc", move_port=free_port()) as server:
            upload_s = load(server, paths)
            note(f"Orthanc on port {server.port} holds the study (uploaded in {upload_s:.1f} s)")
            where = ["127.0.0.1", str(server.port)]
            subprocess.run(
                [sys.executable, "-m", "tui", "node", "add", NODE, server.aet, *where],
                env=env, check=True, capture_output=True, cwd=scratch,
            )  # fmt: skip
            keys = ["-S", "-aet", PACSTUI, "-aec", server.aet]
            pynetdicom_cmd = [
                sys.executable, "-m", "pynetdicom", "getscu", *where, *keys,
                "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={uid}",
            ]  # fmt: skip
            dcmtk_cmd = [
                need_dcmtk("getscu"), *keys, "-k", "0008,0052=STUDY",
                "-k", f"StudyInstanceUID={uid}", *where,
            ]  # fmt: skip
            nodelay = env | {"TCP_NODELAY": "1"}

            pynetdicom_getscu = Contestant("pynetdicom_getscu", " ".join(pynetdicom_cmd[1:]))
            dcmtk_default = Contestant("dcmtk_getscu", " ".join(dcmtk_cmd))
            dcmtk_nodelay = Contestant("dcmtk_getscu_nodelay", "TCP_NODELAY=1 " + dcmtk_cmd[0])
            ours = Contestant("ours", f"python -m tui --archive FRESH get {NODE} --study UID")
            ours_env = env | {"PYTHONPATH": str(REPO)}  # this checkout, whatever is installed
            for checkout in [REPO] + ([args.baseline] if args.baseline else []):
                compiled(checkout)
            idle = [sys.executable, "-m", "tui", "--archive", str(scratch / "idle"), "node", "ls"]
            idle_mb = measure(idle, ours_env, scratch / "idle.log")[4]  # peak of an idle run
            floors = {
                "python_start_cpu_seconds": [sys.executable, "-c", "pass"],
                "get_imports_cpu_seconds": [sys.executable, "-c", GET_IMPORTS],
            }
            floor_cpu: dict[str, list[float]] = {name: [] for name in floors}
            copy = Contestant("loopback", "127.0.0.1 TCP socket pair, 1 MiB sendall/recv_into")
            steps = [
                (copy, lambda n: copy.seconds.append(loopback(nbytes))),
                (pynetdicom_getscu,
                 lambda n: run_getscu(pynetdicom_getscu, pynetdicom_cmd, env, n / "out", want)),
                (dcmtk_default,
                 lambda n: run_getscu(dcmtk_default, dcmtk_cmd, env, n / "out", want)),
                (dcmtk_nodelay,
                 lambda n: run_getscu(dcmtk_nodelay, dcmtk_cmd, nodelay, n / "out", want)),
                (ours, lambda n: run_ours(ours, ours_env, n / "archive", uid, want)),
            ]  # fmt: skip
            baseline = Contestant("ours_baseline", f"the same, from {args.baseline}")
            if args.baseline:
                baseline_env = env | {"PYTHONPATH": str(args.baseline.resolve())}
                steps.append((baseline, lambda n: run_ours(baseline, baseline_env, n / "archive",
                                                           uid, want)))  # fmt: skip
            for attempt in range(args.repeat):
                for name, command in floors.items():
                    floor_cpu[name].append(measure(command, ours_env, scratch / "floor.log")[3])
                turn = attempt % len(steps)
                for contestant, step in steps[turn:] + steps[:turn]:
                    folder = scratch / f"run-{attempt}-{contestant.name}"
                    folder.mkdir()
                    failed = len(contestant.failures)
                    step(folder)
                    shutil.rmtree(folder)
                    last = f"{contestant.seconds[-1]:.3f} s" if contestant.seconds else ""
                    if contestant.cpu:
                        last += f" (cpu {contestant.cpu[-1]:.2f} s)"
                    if len(contestant.failures) > failed:
                        last = f"FAILED: {contestant.failures[-1]}"
                    note(f"run {attempt + 1}: {contestant.name} {last}")

        result: dict[str, Any] = {
            "benchmark": "get",
            "instances": want,
            "study_bytes": nbytes,
            "rows_columns": args.size,
            "repeat": args.repeat,
            "cpu_count": os.cpu_count(),
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_after": [round(v, 2) for v in os.getloadavg()],
            "generate_seconds": round(generate_s, 2),
            "upload_seconds": round(upload_s, 2),
        }
        contestants = [copy, pynetdicom_getscu, dcmtk_default, dcmtk_nodelay, ours]
        contestants += [baseline] if args.baseline else []
        for c in contestants:
            result[c.name] = figures(c, nbytes, want)
        for key in ("received", "received_bytes", "cpu_seconds", "runs_cpu_seconds"):
            result["loopback"].pop(key)  # measured in this process
        result["loopback"]["all_received"] = bool(copy.seconds)

        ours_s, getscu_s, copy_s = (
            best(ours.seconds),
            best(pynetdicom_getscu.seconds),
            best(copy.seconds),
        )
        dcmtk_s = best(dcmtk_default.seconds + dcmtk_nodelay.seconds)
        getscu_ratio, dcmtk_ratio = ratio(ours_s, getscu_s), ratio(ours_s, dcmtk_s)
        nodelay_ratio = ratio(ours_s, best(dcmtk_nodelay.seconds))
        nodelay_cpu_ratio = ratio(best(ours.cpu), best(dcmtk_nodelay.cpu))
        result["ratios"] = {
            "ours_over_pynetdicom_getscu": getscu_ratio,
            "ours_over_dcmtk_best": dcmtk_ratio,
            "ours_mb_per_s_over_loopback": ratio(copy_s, ours_s, 4),
            "ours_over_dcmtk_nodelay": nodelay_ratio,
            "ours_cpu_over_dcmtk_nodelay_cpu": nodelay_cpu_ratio,
            "baseline_over_dcmtk_nodelay": ratio(
                best(baseline.seconds), best(dcmtk_nodelay.seconds)
            ),
            "baseline_cpu_over_dcmtk_nodelay_cpu": ratio(
                best(baseline.cpu), best(dcmtk_nodelay.cpu)
            ),
            "ours_over_baseline": ratio(ours_s, best(baseline.seconds)),
            "ours_cpu_over_baseline_cpu": ratio(best(ours.cpu), best(baseline.cpu)),
            # context, not a target: CPU time suffers less from a busy machine than wall time
            "ours_cpu_over_pynetdicom_getscu_cpu": ratio(
                best(ours.cpu), best(pynetdicom_getscu.cpu)
            ),
        }
        # the least CPU ours can take: the interpreter and its imports, before any work
        result["floors"] = {name: round(min(v), 3) for name, v in floor_cpu.items()}
        result["floors"]["get_imports_over_dcmtk_nodelay_cpu"] = ratio(
            min(floor_cpu["get_imports_cpu_seconds"]), best(dcmtk_nodelay.cpu)
        )
        result["idle_mb"] = round(idle_mb, 1)  # a command that does nothing much: pacs-tui node ls
        above = max(ours.peak_mb) - idle_mb if ours.peak_mb else None
        result["ours_peak_above_idle_mb"] = round(above, 1) if above is not None else None
        result["targets"] = {
            "ours_peak_above_idle_mb_max": PEAK_ABOVE_IDLE_TARGET,
            "peak_met": above is not None and above <= PEAK_ABOVE_IDLE_TARGET,
            "ours_over_pynetdicom_getscu_max": GETSCU_RATIO_TARGET,
            "pynetdicom_getscu_met": getscu_ratio is not None
            and getscu_ratio <= GETSCU_RATIO_TARGET,
            "ours_over_dcmtk_best_max": DCMTK_RATIO_TARGET,
            "dcmtk_met": dcmtk_ratio is not None and dcmtk_ratio <= DCMTK_RATIO_TARGET,
            "ours_over_dcmtk_nodelay_max": NODELAY_RATIO_TARGET,
            "dcmtk_nodelay_met": nodelay_ratio is not None
            and nodelay_ratio <= NODELAY_RATIO_TARGET,
            "ours_cpu_over_dcmtk_nodelay_cpu_max": NODELAY_CPU_TARGET,
            "dcmtk_nodelay_cpu_met": nodelay_cpu_ratio is not None
            and nodelay_cpu_ratio <= NODELAY_CPU_TARGET,
            "all_received": all(result[c.name]["all_received"] for c in contestants),
        }
        result["versions"] = versions()
        if args.keep:
            note(f"kept {scratch}")
        return result
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


def study_options(description: str) -> argparse.ArgumentParser:
    """The options of a benchmark on the generated study (``bench_wado.py`` shares them)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs of each (default 3)")
    parser.add_argument(
        "--data", type=Path, help="reuse the study in this folder, else generate it there (kept)"
    )
    parser.add_argument("--count", type=int, default=300, help="instances to generate")
    parser.add_argument("--size", type=int, default=512, help="rows and columns to generate")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (Orthanc...)")
    return parser


def parse_study_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> Any:
    """``argv`` parsed by ``parser``, the counts checked."""
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.count < 1 or args.size < 1:
        parser.error("--repeat, --count and --size must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    parser = study_options(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--baseline", type=Path, metavar="CHECKOUT",
        help="also run ours from this checkout of pacs-tui (a git worktree of an older commit)",
    )  # fmt: skip
    result = run(parse_study_args(parser, argv))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
