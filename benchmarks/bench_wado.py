"""Benchmark WADO-RS retrieve of a 300-instance 512x512 CT study, and QIDO-RS of 10,000 studies.

**Retrieve.** The study of ``benchmarks/bench_get.py`` (its cache, default
``/tmp/pacs-tui-bench-get/ct-512x300``, generated there once if missing) is uploaded to an
Orthanc on loopback with its DICOMweb plugin (``tests/servers.py``, fresh for this run). In
the same run, the contestants take turns (``--repeat`` rounds, rotating order), each timed
wall-clock from the start of its process to its exit, with its CPU time and peak RSS:

* ``curl``: ``curl -s -o FILE -H 'Accept: multipart/related; type="application/dicom"'
  URL/studies/UID``, the whole multipart answer into one file: the floor;
* dicomweb-client (PyPI): ``DICOMwebClient(URL).retrieve_study(UID)``, each dataset it
  returns written to a file with pydicom (``save_as``);
* ours: ``python -m tui --archive FRESH get NODE --study UID --json``, the node added with
  ``node add NODE --dicomweb URL``: its count query, the WADO-RS request, each instance
  filed into the store and indexed as it arrives (a fresh archive each run).

Targets (issue 14), on the best of the runs: ours at most 1.2x curl's time, and faster
than dicomweb-client.

**Query.** A scripted QIDO-RS server in this process (a thread; Orthanc would take minutes to
hold 10,000 studies made over REST) answers ``pacs-tui find NODE`` with 10,000 studies in
pages of the size asked, each page's JSON written as it is made. The time from the server's
first byte of the first page to the first result line on our stdout (a pipe, read here; both
clocks are the system's monotonic clock) is the target: at most 0.1 s. The time to the last
result is reported beside it.

Prints one JSON object on stdout; progress goes to stderr. Orthanc and the output folders live
in a temporary folder under /tmp, removed at the end (``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_get import (  # noqa: E402
    Contestant,
    base_env,
    best,
    figures,
    files_under,
    load,
    parse_study_args,
    prepare_data,
    ratio,
    run_ours,
    study_of,
    study_options,
    timed,
)

from tests.servers import free_port, start_orthanc  # noqa: E402

CURL_RATIO_TARGET = 1.2  # ours' time / curl's, at most
FIRST_ROW_TARGET = 0.1  # seconds from the server's first byte to our first result, at most
NODE = "bench"  # bench_get's run_ours retrieves from the node of this name
STUDIES = 10_000
DICOMWEB = {"DicomWeb": {"Enable": True, "Root": "/dicom-web/"}}
ACCEPT = 'Accept: multipart/related; type="application/dicom"'


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


CLIENT_VERSION = _version("dicomweb-client")  # the anchor, from the bench extra
DICOMWEB_CLIENT = """
import sys
from pathlib import Path
from dicomweb_client.api import DICOMwebClient
url, uid, out = sys.argv[1:4]
for i, ds in enumerate(DICOMwebClient(url).retrieve_study(uid)):
    ds.save_as(Path(out) / f"{i}.dcm", enforce_file_format=True)
"""


def note(message: str) -> None:
    print(f"[bench_wado] {message}", file=sys.stderr, flush=True)


def run_files(
    contestant: Contestant, command: list[str], env: dict[str, str], out: Path, want: int
) -> None:
    """One run of an anchor that writes each instance as a file in ``out``."""
    out.mkdir(parents=True)
    seconds, code, _ = timed(contestant, command, env, out.with_suffix(".log"))
    files = files_under(out)
    contestant.received.append(len(files))
    contestant.received_bytes = sum(p.stat().st_size for p in files)
    _count(contestant, seconds, code, len(files) == want, f"{len(files)} files")
    shutil.rmtree(out)


def run_curl(
    contestant: Contestant, url: str, env: dict[str, str], out: Path, nbytes: int, want: int
) -> None:
    """One run of curl: the multipart answer in one file, at least the study's bytes."""
    out.mkdir(parents=True)
    body = out / "body.multipart"
    command = ["curl", "-s", "-S", "-o", str(body), "-H", ACCEPT, url]
    seconds, code, _ = timed(contestant, command, env, out.with_suffix(".log"))
    size = body.stat().st_size if body.exists() else 0
    contestant.received.append(want if size >= nbytes else 0)
    contestant.received_bytes = size
    _count(contestant, seconds, code, size >= nbytes, f"{size} bytes")
    shutil.rmtree(out)


def _count(contestant: Contestant, seconds: float, code: int, whole: bool, what: str) -> None:
    if code != 0 or not whole:
        contestant.cpu.pop()  # only successful runs count
        contestant.peak_mb.pop()
        contestant.failures.append(f"exit {code}, {what}")
    else:
        contestant.seconds.append(seconds)


# -- QIDO-RS of 10,000 studies -----------------------------------------------------------------


def _study(i: int) -> bytes:
    return json.dumps({
        "00080020": {"vr": "DA", "Value": [f"2024{1 + i % 12:02d}{1 + i % 28:02d}"]},
        "00080050": {"vr": "SH", "Value": [f"ACC{i:07d}"]},
        "00080061": {"vr": "CS", "Value": ["CT", "SR"]},
        "00081030": {"vr": "LO", "Value": [f"Study number {i}"]},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": f"Patient^Number{i}"}]},
        "00100020": {"vr": "LO", "Value": [f"P{i:06d}"]},
        "0020000D": {"vr": "UI", "Value": [f"1.2.826.0.1.3680043.8.498.9.{i}"]},
        "00201208": {"vr": "IS", "Value": [100 + i % 50]},
    }).encode()  # fmt: skip


def qido(env: dict[str, str], scratch: Path) -> dict[str, Any]:
    """``pacs-tui find`` against the scripted server: first byte to first row, and to the
    last row."""
    first_byte: list[float] = []

    class Qido(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            offset = int(query.get("offset", ["0"])[0])
            limit = int(query.get("limit", [str(STUDIES)])[0])
            self.send_response(200)
            self.send_header("Content-Type", "application/dicom+json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if not first_byte:
                first_byte.append(time.monotonic())
            pieces = [b"["]
            for n, i in enumerate(range(offset, min(offset + limit, STUDIES))):
                pieces.append((b"," if n else b"") + _study(i))
                if len(pieces) >= 50:  # a server writes as it goes
                    self._chunk(b"".join(pieces))
                    pieces = []
            pieces.append(b"]")
            self._chunk(b"".join(pieces))
            self._chunk(b"")

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Qido)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/rs"
        subprocess.run([sys.executable, "-m", "tui", "node", "add", "qido", "--dicomweb", url],
                       env=env, check=True, capture_output=True)  # fmt: skip
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "tui", "find", "qido"], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, bufsize=0,
        )  # fmt: skip
        assert process.stdout is not None
        first_row = None
        rows = 0
        for line in process.stdout:
            if b"1.2.826.0.1.3680043.8.498.9." in line:
                rows += 1
                if first_row is None:
                    first_row = time.monotonic()
        process.wait()
        ended = time.monotonic()
    finally:
        server.shutdown()
        server.server_close()
    latency = first_row - first_byte[0] if first_row and first_byte else None
    return {
        "studies": STUDIES,
        "rows": rows,
        "exit": process.returncode,
        "first_byte_to_first_row_s": round(latency, 4) if latency is not None else None,
        "start_to_first_byte_s": round(first_byte[0] - started, 3) if first_byte else None,
        "first_byte_to_last_row_s": round(ended - first_byte[0], 3) if first_byte else None,
        "target_first_row_max_s": FIRST_ROW_TARGET,
        "met": latency is not None and latency <= FIRST_ROW_TARGET and rows == STUDIES,
    }


# -- the run -----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    data, generate_s = prepare_data(args.data, args.size, args.count)
    paths = sorted(p for p in data.iterdir() if p.suffix == ".dcm")
    nbytes = sum(p.stat().st_size for p in paths)
    uid = study_of(paths)
    want = len(paths)
    note(f"{want} files, {nbytes / 1e6:.1f} MB, study {uid}")
    load_before = os.getloadavg()
    scratch = Path(tempfile.mkdtemp(prefix="pacs-bench-wado-", dir="/tmp"))
    try:
        env = base_env(scratch)
        ours_env = env | {"PYTHONPATH": str(REPO)}  # this checkout, whatever is installed
        with start_orthanc(
            scratch / "orthanc", move_port=free_port(), plugins=["OrthancDicomWeb"],
            extra_config=DICOMWEB,
        ) as server:  # fmt: skip
            upload_s = load(server, paths)
            root = f"{server.url}/dicom-web"
            note(f"Orthanc's DICOMweb at {root} holds the study (uploaded in {upload_s:.1f} s)")
            subprocess.run([sys.executable, "-m", "tui", "node", "add", NODE, "--dicomweb", root],
                           env=ours_env, check=True, capture_output=True)  # fmt: skip
            curl = Contestant("curl", f"curl -s -o FILE -H '{ACCEPT}' {root}/studies/UID")
            client = Contestant("dicomweb_client", "DICOMwebClient(URL).retrieve_study(UID)")
            ours = Contestant("ours", f"python -m tui --archive FRESH get {NODE} --study UID")
            script = scratch / "dicomweb_client_get.py"
            script.write_text(DICOMWEB_CLIENT)
            client_cmd = [sys.executable, str(script), root, uid]
            steps = [
                (curl, lambda n: run_curl(curl, f"{root}/studies/{uid}", env, n / "out",
                                          nbytes, want)),
                (client, lambda n: run_files(client, [*client_cmd, str(n / "out")], env,
                                             n / "out", want)),
                (ours, lambda n: run_ours(ours, ours_env, n / "archive", uid, want)),
            ]  # fmt: skip
            if CLIENT_VERSION is None:
                note("dicomweb-client is not installed (pip install '.[bench]'): left out")
                steps = [step for step in steps if step[0] is not client]
            for attempt in range(args.repeat):
                turn = attempt % len(steps)
                for contestant, step in steps[turn:] + steps[:turn]:
                    folder = scratch / f"run-{attempt}-{contestant.name}"
                    folder.mkdir()
                    failed = len(contestant.failures)
                    step(folder)
                    shutil.rmtree(folder, ignore_errors=True)
                    last = f"{contestant.seconds[-1]:.3f} s" if contestant.seconds else ""
                    if contestant.cpu:
                        last += f" (cpu {contestant.cpu[-1]:.2f} s)"
                    if len(contestant.failures) > failed:
                        last = f"FAILED: {contestant.failures[-1]}"
                    note(f"run {attempt + 1}: {contestant.name} {last}")
        note("QIDO-RS of 10,000 studies")
        query = qido(ours_env, scratch)
        result: dict[str, Any] = {
            "benchmark": "wado",
            "instances": want,
            "study_bytes": nbytes,
            "repeat": args.repeat,
            "cpu_count": os.cpu_count(),
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_after": [round(v, 2) for v in os.getloadavg()],
            "generate_seconds": round(generate_s, 2),
            "upload_seconds": round(upload_s, 2),
        }
        contestants = [curl, ours] + ([client] if CLIENT_VERSION else [])
        for c in contestants:
            result[c.name] = figures(c, nbytes, want)
        ours_s, curl_s, client_s = best(ours.seconds), best(curl.seconds), best(client.seconds)
        curl_ratio = ratio(ours_s, curl_s)
        result["ratios"] = {
            "ours_over_curl": curl_ratio,
            "ours_over_dicomweb_client": ratio(ours_s, client_s),
            "ours_cpu_over_dicomweb_client_cpu": ratio(best(ours.cpu), best(client.cpu)),
        }
        result["qido"] = query
        result["targets"] = {
            "ours_over_curl_max": CURL_RATIO_TARGET,
            "curl_met": curl_ratio is not None and curl_ratio <= CURL_RATIO_TARGET,
            "faster_than_dicomweb_client": bool(ours_s and client_s and ours_s < client_s),
            "qido_first_row_met": query["met"],
            "all_received": all(result[c.name]["all_received"] for c in contestants),
        }
        result["versions"] = {
            "python": sys.version.split()[0],
            "dicomweb_client": CLIENT_VERSION or "not installed",
            "curl": subprocess.run(
                ["curl", "--version"], capture_output=True, text=True
            ).stdout.split("\n")[0],
        }
        if args.keep:
            note(f"kept {scratch}")
        return result
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = study_options(__doc__.split("\n\n")[0])
    print(json.dumps(run(parse_study_args(parser, argv)), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
