"""Benchmark de-identified DICOM export of a 300-instance 512x512 CT study against its anchors.

The study: ``--count`` (300) slices of 512 x 512 signed 16-bit CT, Explicit VR Little Endian,
~157 MB, one file per slice, written once with pydicom (``tests/synthetic.py``) and then given
what a real CT carries that identifies someone: patient name, IDs, birth date, sex, age,
address, other IDs and names; accession number, study ID, study/series/acquisition/content
dates and times; institution, address and department; referring, performing and operator
names; station name and device serial number; descriptions; a Referenced Image Sequence (the
scout), a Request Attributes Sequence and a private block with a name in it. It is kept in
``--data`` (default ``/tmp/pacs-tui-bench-deid/ct-512x300``, a cache: re-runs skip the
generation). Setup, outside every timing: the page cache is warmed by reading every file; the
study is indexed in place into a fresh archive (``pacs-tui import``), and uploaded once to a
fresh Orthanc on loopback (``tests/servers.py``).

Then ``--rounds`` rounds (default 5); in each, every contestant runs once, in a rotating order
(round r starts with the r-th), writing into a fresh folder that is removed (and ``os.sync``
called) after it, outside the timing. Timed wall-clock:

* anchor ``cp``: ``cp -r STUDY OUT``;
* anchor ``orthanc``: Orthanc's own anonymize, as a user drives it over REST: ``POST
  /studies/ID/anonymize`` with the default body ``{}`` (synchronous by default: the answer
  comes once the anonymized study is stored; no ``Force`` is needed without ``Replace``),
  then ``GET /studies/NEW/archive`` streamed to a ZIP file (the download a user gets from
  Orthanc Explorer; Orthanc deflates its members, about a third of its time here). The two
  parts are also reported apart (``ours_over_orthanc_anonymize_only`` compares ours with the
  first alone, the stricter comparison), and Orthanc's own CPU time (its ``/proc`` counters)
  beside them. The anonymized study is deleted after each round, outside the timing;
* anchor ``dicognito``: ``python -m dicognito --output-directory OUT STUDY`` (default options;
  it reads the source and writes anonymized copies, so the source stays untouched). It runs
  as ``python -m dicognito`` because the ``dicognito`` console script of 0.19.0 calls
  ``main()`` without its argument and fails. A benchmark-only dependency
  (``pip install 'pacs-tui[bench]'`` or ``pip install dicognito``): when it is missing, its
  figures are null, with the reason, and everything else is measured;
* ours: ``python -m tui --archive A export STUDY_UID --dicom -o OUT --json --anonymize``
  (what the ``pacs-tui`` script runs; its key lives in a throwaway XDG config folder), its
  verification pass included;
* ours as media: the same with ``--dicomdir`` and no ``--anonymize`` (the issue's media target),
  and ``ours_media_anonymized`` with both, for context. When ours' ``--json`` summary has a
  top-level ``seconds``, it is reported too (``own_seconds``: the export without the
  interpreter's start and imports);
* for context, no target: ``python -c 'import pydicom'``, the floor any Python de-identifier
  (dicognito, ours) pays before its first file.

Every output is checked outside the timing: the number of instances written (and the
DICOMDIR for media), and, for the de-identifiers, which of a few source values (patient name
and ID, accession number, institution, study UID) survive in one output file
(``source_values_in_a_sample``). A contestant that fails is reported with the reason and not
run again; its figures are null.

Targets (issue 13), on the medians: ours <= 3.0x ``cp``, and ours faster than ``orthanc`` and
than ``dicognito``; ours as media (DICOMDIR) <= 1.5x ``cp``.

Prints one JSON object on stdout; progress goes to stderr. Orthanc, the archive, the outputs
and the throwaway config live in a temporary folder under /tmp, removed at the end (``--keep``
keeps it); the generated study is kept in its cache folder. One module past 600 lines, like the
other benchmarks: a benchmark is one script, run as a file.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata, util
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.servers import Orthanc, free_port, rest, start_orthanc, upload  # noqa: E402

COPY_RATIO_TARGET = 3.0  # ours (de-identified, to a folder) / cp -r, at most
MEDIA_RATIO_TARGET = 1.5  # ours as media with a DICOMDIR / cp -r, at most
DEFAULT_DATA = Path("/tmp/pacs-tui-bench-deid")
RUN_TIMEOUT = 900.0
HTTP_TIMEOUT = 600.0
CHUNK = 1 << 20
DICOGNITO_MISSING = (
    "dicognito is not installed: pip install 'pacs-tui[bench]' (or pip install dicognito)"
)

# What the synthetic study carries that identifies someone (all invented). The checks after
# each run look for a few of these in one output file.
PATIENT = {
    "PatientName": "DOE^JOHN^QUINCY^^",
    "PatientID": "MRN0012345",
    "IssuerOfPatientID": "ST ELSEWHERE HOSPITAL",
    "OtherPatientIDs": "NHS9434765919",
    "OtherPatientNames": "DOE^JACK",
    "PatientBirthDate": "19580704",
    "PatientSex": "M",
    "PatientAge": "065Y",
    "PatientSize": "1.82",
    "PatientWeight": "84",
    "PatientAddress": "12 ELM STREET, SPRINGFIELD",
    "PatientTelephoneNumbers": "+1 555 0100",
    "EthnicGroup": "CAUCASIAN",
    "AccessionNumber": "ACC20240312001",
    "StudyID": "CT4471",
    "StudyDate": "20240312",
    "StudyTime": "101502.123",
    "SeriesDate": "20240312",
    "SeriesTime": "101744",
    "AcquisitionDate": "20240312",
    "ContentDate": "20240312",
    "InstanceCreationDate": "20240312",
    "InstanceCreationTime": "102011",
    "InstitutionName": "ST ELSEWHERE HOSPITAL",
    "InstitutionAddress": "1 HOSPITAL ROAD, SPRINGFIELD",
    "InstitutionalDepartmentName": "RADIOLOGY",
    "ReferringPhysicianName": "HOUSE^GREGORY^^DR",
    "PerformingPhysicianName": "WILSON^JAMES",
    "OperatorsName": "CUDDY^LISA",
    "NameOfPhysiciansReadingStudy": "FOREMAN^ERIC",
    "StationName": "CT-SCANNER-2",
    "DeviceSerialNumber": "SN-88231",
    "Manufacturer": "ACME Medical",
    "ManufacturerModelName": "Helix 64",
    "SoftwareVersions": "VB20A",
    "StudyDescription": "CT CHEST ABDOMEN PELVIS W CONTRAST JOHN DOE",
    "SeriesDescription": "AX 1.0 SOFT TISSUE",
    "ProtocolName": "CAP TRAUMA",
    "BodyPartExamined": "CHEST",
    "PatientPosition": "HFS",
    "ImageComments": "Follow-up of MRN0012345, see prior 2023-01-05",
    "SpecificCharacterSet": "ISO_IR 100",
    "BurnedInAnnotation": "NO",
    "KVP": "120",
    "ConvolutionKernel": "B30f",
    "PositionReferenceIndicator": "",
}
CHECKED = ("PatientName", "PatientID", "AccessionNumber", "InstitutionName", "StudyInstanceUID")


def note(message: str) -> None:
    print(f"[bench_deid] {message}", file=sys.stderr, flush=True)


# -- the study -----------------------------------------------------------------------------------


def identify(path: Path, k: int, frame_of_reference: str, scout: str) -> None:
    """Give one slice of the synthetic series everything of ``PATIENT``, timed to the slice,
    with its references (the scout it was planned on) and a private block."""
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.uid import CTImageStorage

    ds = pydicom.dcmread(path)
    for keyword, value in PATIENT.items():
        setattr(ds, keyword, value)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.AcquisitionTime = ds.ContentTime = f"1017{44 + k // 60:02d}.{k % 60:02d}0000"
    ds.FrameOfReferenceUID = frame_of_reference
    ds.AcquisitionNumber = 2
    reference = Dataset()
    reference.ReferencedSOPClassUID = CTImageStorage
    reference.ReferencedSOPInstanceUID = scout
    ds.ReferencedImageSequence = [reference]
    request = Dataset()
    request.AccessionNumber = PATIENT["AccessionNumber"]
    request.RequestedProcedureID = "RP-77812"
    request.ScheduledProcedureStepID = "SPS-77812-1"
    request.RequestedProcedureDescription = "CT CAP for DOE JOHN"
    ds.RequestAttributesSequence = [request]
    private = ds.private_block(0x0009, "ACME CT 1.0", create=True)
    private.add_new(0x01, "LO", "DOE^JOHN")  # a vendor's copy of the name
    private.add_new(0x02, "DA", PATIENT["StudyDate"])
    private.add_new(0x03, "DS", "0.5")
    ds.save_as(path, enforce_file_format=True)


def prepare_data(data: Path | None, size: int, count: int) -> tuple[Path, float]:
    """A folder holding only the study's files (``data`` if it holds them, else generated and
    cached there), and the seconds spent generating. The marker that says a generation
    finished lies beside the folder, so ``cp -r`` and the others see only DICOM files."""
    folder = data if data is not None else DEFAULT_DATA / f"ct-{size}x{count}"
    if folder.resolve().is_relative_to(REPO):
        raise SystemExit(f"--data {folder}: keep benchmark data out of the repository")
    done = folder.with_name(folder.name + ".complete")
    if done.exists() or (data is not None and any(folder.glob("*.dcm"))):
        note(f"reusing the study in {folder}")
        return folder, 0.0
    from pydicom.uid import generate_uid

    from tests.synthetic import AXIAL, write_series

    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    note(f"generating {count} slices of {size}x{size} in {folder}")
    started = time.perf_counter()
    write_series(partial, AXIAL, size=size, count=count, spacing=0.7, step=1.0)
    frame_of_reference, scout = generate_uid(), generate_uid()
    for k, path in enumerate(sorted(partial.iterdir())):
        identify(path, k, frame_of_reference, scout)
    seconds = time.perf_counter() - started
    if folder.exists():
        shutil.rmtree(folder)
    partial.rename(folder)
    done.write_text("complete\n")
    return folder, seconds


def warm(paths: list[Path]) -> int:
    """Read every file once, so every contestant reads from the page cache; total bytes."""
    return sum(len(p.read_bytes()) for p in paths)


# -- the contestants -----------------------------------------------------------------------------


@dataclass
class Contestant:
    """One way of producing the study's copy: its timings and what was checked of its output."""

    name: str
    what: str
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # the process's (or Orthanc's) CPU seconds
    written: list[int] = field(default_factory=list)  # instances in each output
    failure: str | None = None  # set once it failed: it is not run again
    sample: list[str] | None = None  # CHECKED keywords whose source value survives
    parts: dict[str, list[float]] = field(default_factory=dict)


def base_env(scratch: Path) -> dict[str, str]:
    """No archive and no config of the user's: XDG folders in the scratch folder."""
    env = {k: v for k, v in os.environ.items() if k != "PACS_TUI_ARCHIVE"}
    for name in ("CONFIG", "DATA", "CACHE", "STATE"):
        folder = scratch / "xdg" / name.lower()
        folder.mkdir(parents=True, exist_ok=True)
        env[f"XDG_{name}_HOME"] = str(folder)
    env["PYTHONPATH"] = str(REPO)  # this checkout, whatever is installed
    return env


def children_cpu() -> float:
    """User + system seconds of every child process waited for so far."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def process_cpu(pid: int) -> float:
    """User + system seconds of a running process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    """One process run: wall seconds from before its start to after its exit, its CPU seconds
    (user + system), its exit status, its stdout, and the end of its stdout and stderr."""

    seconds: float
    cpu: float
    code: int
    stdout: str
    tail: str


def timed(command: list[str], env: dict[str, str], log: Path) -> Run:
    """Run ``command``, its stderr to ``log``."""
    with log.open("wb") as err, tempfile.TemporaryFile() as out:
        cpu = children_cpu()
        started = time.perf_counter()
        done = subprocess.run(
            command, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            timeout=RUN_TIMEOUT,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        cpu = children_cpu() - cpu
        out.seek(0)
        stdout = out.read().decode(errors="replace")
    lines = (stdout + log.read_text(errors="replace")).strip().splitlines()
    return Run(seconds, cpu, done.returncode, stdout, " | ".join(lines[-4:]))


def own_seconds(stdout: str) -> float | None:
    """The ``seconds`` of a ``--json`` summary, if it has one: the export's own time, without
    the interpreter's start and imports."""
    try:
        summary = json.loads(stdout)
    except ValueError:
        return None
    seconds = summary.get("seconds") if isinstance(summary, dict) else None
    return float(seconds) if isinstance(seconds, int | float) else None


def dicom_files(folder: Path) -> list[Path]:
    """Every file under ``folder`` but DICOMDIR and hidden ones."""
    found = []
    for root, _dirs, names in os.walk(folder):
        found += [Path(root, n) for n in names if n != "DICOMDIR" and not n.startswith(".")]
    return sorted(found)


def surviving(source: Any, raw: bytes | Path) -> list[str]:
    """Which CHECKED keywords of ``source`` hold the same value in the output file."""
    import pydicom

    fp = io.BytesIO(raw) if isinstance(raw, bytes) else raw
    ds = pydicom.dcmread(fp, stop_before_pixels=True)
    return [k for k in CHECKED if str(ds.get(k, "")) == str(source.get(k, "")) != ""]


def record(c: Contestant, seconds: float, cpu: float, written: int, want: int, why: str) -> bool:
    """Keep a run's figures when it wrote every instance; else mark the contestant failed."""
    c.written.append(written)
    if written != want or why:
        c.failure = why or f"{written} of {want} instances written"
        return False
    c.seconds.append(seconds)
    c.cpu.append(cpu)
    return True


def run_cp(c: Contestant, study: Path, out: Path, env: dict[str, str], want: int) -> None:
    done = timed(["cp", "-r", str(study), str(out)], env, out.parent / "log")
    why = f"exit {done.code}: {done.tail}" if done.code else ""
    record(c, done.seconds, done.cpu, len(dicom_files(out)), want, why)


def run_floor(c: Contestant, command: list[str], env: dict[str, str], log: Path) -> None:
    """A process that writes nothing: the floor any Python de-identifier pays."""
    done = timed(command, env, log)
    record(c, done.seconds, done.cpu, 0, 0, f"exit {done.code}: {done.tail}" if done.code else "")


def run_process(
    c: Contestant,
    command: list[str],
    out: Path,
    env: dict[str, str],
    want: int,
    source: Any,
    dicomdir: bool = False,
) -> None:
    """One run of a command that writes the de-identified (or media) study into ``out``."""
    done = timed(command, env, out.parent / "log")
    files = dicom_files(out) if out.is_dir() else []
    why = f"exit {done.code}: {done.tail}" if done.code else ""
    if not why and dicomdir and not (out / "DICOMDIR").is_file():
        why = "no DICOMDIR written"
    if not record(c, done.seconds, done.cpu, len(files), want, why):
        return
    if c.sample is None and source is not None:
        c.sample = surviving(source, files[0])
    own = own_seconds(done.stdout)
    if own is not None:
        c.parts.setdefault("own_seconds", []).append(own)


def http_post(server: Orthanc, path: str, body: Any) -> Any:
    request = urllib.request.Request(
        f"{server.url}{path}", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
        return json.load(response)


def http_download(server: Orthanc, path: str, target: Path) -> None:
    with (
        urllib.request.urlopen(f"{server.url}{path}", timeout=HTTP_TIMEOUT) as response,
        target.open("wb") as out,
    ):
        shutil.copyfileobj(response, out, CHUNK)


def run_orthanc(
    c: Contestant, server: Orthanc, study_id: str, out: Path, want: int, source: Any
) -> None:
    """Anonymize the stored study and download the result as a ZIP; delete it afterwards."""
    out.mkdir()
    target = out / "anonymized.zip"
    new = None
    cpu = process_cpu(server.process.pid)
    started = time.perf_counter()
    try:
        answer = http_post(server, f"/studies/{study_id}/anonymize", {})
        anonymized = time.perf_counter()
        new = answer["ID"]
        http_download(server, f"/studies/{new}/archive", target)
        seconds = time.perf_counter() - started
        cpu = process_cpu(server.process.pid) - cpu
        with zipfile.ZipFile(target) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            first = archive.read(members[0]) if members else b""
        if record(c, seconds, cpu, len(members), want, "") and c.sample is None:
            c.sample = surviving(source, first)
        c.parts.setdefault("anonymize_seconds", []).append(anonymized - started)
        c.parts.setdefault("download_seconds", []).append(seconds - (anonymized - started))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        c.failure = f"{type(error).__name__}: {error}"
    finally:
        if new is not None:
            rest(server, f"/studies/{new}", method="DELETE")
    held = rest(server, "/statistics")["CountInstances"]
    if held != want and c.failure is None:
        c.failure = f"Orthanc holds {held} instances after deleting the anonymized study"


# -- the run -------------------------------------------------------------------------------------


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def met(value: float | None, limit: float, strict: bool = False) -> bool | None:
    """Whether a ratio is within its limit (below it when ``strict``); None unmeasured."""
    if value is None:
        return None
    return value < limit if strict else value <= limit


def figures(c: Contestant, nbytes: int) -> dict[str, Any]:
    middle = median(c.seconds)
    result: dict[str, Any] = {
        "what": c.what,
        "median_seconds": round(middle, 3) if middle else None,
        "min_seconds": round(min(c.seconds), 3) if c.seconds else None,
        "runs_seconds": [round(s, 3) for s in c.seconds],
        "mb_per_s": round(nbytes / middle / 1e6, 1) if middle and any(c.written) else None,
        "median_cpu_seconds": round(statistics.median(c.cpu), 3) if c.cpu else None,
        "runs_cpu_seconds": [round(s, 3) for s in c.cpu],
        "written": c.written,
    }
    for name, values in c.parts.items():
        result[f"median_{name}"] = round(statistics.median(values), 3)
        result[f"runs_{name}"] = [round(v, 3) for v in values]
    if c.sample is not None:
        result["source_values_in_a_sample"] = c.sample
    if c.failure is not None:
        result["error"] = c.failure
    return result


def versions(server_version: str) -> dict[str, str | None]:
    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    cp = subprocess.run(["cp", "--version"], capture_output=True, text=True).stdout
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "pydicom": version("pydicom"),
        "dicognito": version("dicognito"),
        "orthanc": server_version,
        "pacs_tui": version("pacs-tui"),
        "cp": (cp.splitlines() or ["?"])[0],
    }


def load(server: Orthanc, paths: list[Path]) -> tuple[str, float]:
    """Upload the files to Orthanc over REST, four at a time: its study ID, the seconds taken."""
    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda chunk: upload(server, chunk), [paths[i::4] for i in range(4)]))
    held, studies = rest(server, "/statistics")["CountInstances"], rest(server, "/studies")
    if held != len(paths) or len(studies) != 1:
        raise SystemExit(f"Orthanc holds {held} instances in {len(studies)} studies")
    return studies[0], time.perf_counter() - started


def import_archive(archive: Path, study: Path, env: dict[str, str], want: int) -> float:
    """Index the study in place into a fresh archive (setup, outside the timings)."""
    tui = [sys.executable, "-m", "tui", "--archive", str(archive)]
    started = time.perf_counter()
    subprocess.run([*tui, "import", str(study)], env=env, check=True, capture_output=True)
    seconds = time.perf_counter() - started
    listed = subprocess.run(
        [*tui, "ls", "--level", "instance", "--json"], env=env, check=True, capture_output=True
    )
    if len(json.loads(listed.stdout)) != want:
        raise SystemExit("the archive did not index every instance")
    return seconds


def run(args: argparse.Namespace) -> dict[str, Any]:
    import pydicom

    study, generate_s = prepare_data(args.data, args.size, args.count)
    paths = dicom_files(study)
    want = len(paths)
    nbytes = warm(paths)
    source = pydicom.dcmread(paths[0], stop_before_pixels=True)
    uid = str(source.StudyInstanceUID)
    note(f"{want} files, {nbytes / 1e6:.1f} MB, study {uid}")
    have_dicognito = util.find_spec("dicognito") is not None
    if not have_dicognito:
        note(DICOGNITO_MISSING)
    load_before = os.getloadavg()

    scratch = Path(tempfile.mkdtemp(prefix="pacs-bench-deid-", dir="/tmp"))
    try:
        env = base_env(scratch)
        archive = scratch / "archive"
        import_s = import_archive(archive, study, env, want)
        note(f"archive indexed in {import_s:.1f} s")
        with start_orthanc(scratch / "orthanc", move_port=free_port()) as server:
            study_id, upload_s = load(server, paths)
            server_version = str(rest(server, "/system").get("Version"))
            note(f"Orthanc {server_version} on port {server.http_port} holds the study")

            tui = [sys.executable, "-m", "tui", "--archive", str(archive), "export", uid]
            tui += ["--dicom", "--json"]
            dicognito = [sys.executable, "-m", "dicognito"]
            cp = Contestant("cp", "cp -r STUDY OUT")
            orthanc = Contestant(
                "orthanc",
                "POST /studies/ID/anonymize {} (synchronous), then GET /studies/NEW/archive "
                "to a ZIP file; cpu: Orthanc's own",
            )
            cognito = Contestant("dicognito", "python -m dicognito --output-directory OUT STUDY")
            ours = Contestant("ours", "pacs-tui --archive A export UID --dicom -o OUT --anonymize")
            media = Contestant("ours_media", "pacs-tui ... export UID --dicom -o OUT --dicomdir")
            media_anonymized = Contestant(
                "ours_media_anonymized", "pacs-tui ... export UID --dicom -o OUT --dicomdir "
                "--anonymize",
            )  # fmt: skip
            floor = Contestant("python_pydicom_import", "python -c 'import pydicom'")
            if not have_dicognito:
                cognito.failure = DICOGNITO_MISSING

            steps: list[tuple[Contestant, Callable[[Path], None]]] = [
                (cp, lambda out: run_cp(cp, study, out, env, want)),
                (floor, lambda out: run_floor(
                    floor, [sys.executable, "-c", "import pydicom"], env, out.parent / "log")),
                (orthanc, lambda out: run_orthanc(orthanc, server, study_id, out, want, source)),
                (cognito, lambda out: run_process(
                    cognito, [*dicognito, "--output-directory", str(out), str(study)], out, env,
                    want, source)),
                (ours, lambda out: run_process(
                    ours, [*tui, "-o", str(out), "--anonymize"], out, env, want, source)),
                (media, lambda out: run_process(
                    media, [*tui, "-o", str(out), "--dicomdir"], out, env, want, None, True)),
                (media_anonymized, lambda out: run_process(
                    media_anonymized, [*tui, "-o", str(out), "--dicomdir", "--anonymize"], out,
                    env, want, source, True)),
            ]  # fmt: skip
            for attempt in range(args.rounds):
                turn = attempt % len(steps)
                for contestant, step in steps[turn:] + steps[:turn]:
                    if contestant.failure is not None:
                        continue
                    folder = scratch / f"round-{attempt}-{contestant.name}"
                    folder.mkdir()
                    step(folder / "out")
                    shutil.rmtree(folder)
                    os.sync()  # no write-back of this run left to slow the next one
                    if contestant.failure is not None:
                        note(f"round {attempt + 1}: {contestant.name} FAILED: {contestant.failure}")
                    else:
                        note(f"round {attempt + 1}: {contestant.name} {contestant.seconds[-1]:.3f}"
                             f" s (cpu {contestant.cpu[-1]:.2f} s)")  # fmt: skip

        contestants = [cp, floor, orthanc, cognito, ours, media, media_anonymized]
        result: dict[str, Any] = {
            "benchmark": "deid",
            "instances": want,
            "study_bytes": nbytes,
            "rows_columns": args.size,
            "rounds": args.rounds,
            "cpu_count": os.cpu_count(),
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_after": [round(v, 2) for v in os.getloadavg()],
            "generate_seconds": round(generate_s, 2),
            "import_seconds": round(import_s, 2),
            "orthanc_upload_seconds": round(upload_s, 2),
        }
        for c in contestants:
            result[c.name] = figures(c, nbytes)
        cp_s, ours_s, media_s = median(cp.seconds), median(ours.seconds), median(media.seconds)
        orthanc_s, cognito_s = median(orthanc.seconds), median(cognito.seconds)
        result["ratios"] = {
            "ours_over_cp": ratio(ours_s, cp_s),
            "ours_over_orthanc": ratio(ours_s, orthanc_s),
            "ours_over_dicognito": ratio(ours_s, cognito_s),
            "ours_over_orthanc_anonymize_only": ratio(
                ours_s, median(orthanc.parts.get("anonymize_seconds", []))
            ),
            "ours_media_over_cp": ratio(media_s, cp_s),
            "ours_media_anonymized_over_cp": ratio(median(media_anonymized.seconds), cp_s),
            "orthanc_over_cp": ratio(orthanc_s, cp_s),
            "dicognito_over_cp": ratio(cognito_s, cp_s),
            # context: a Python process that imports pydicom and does nothing else
            "python_pydicom_import_over_cp": ratio(median(floor.seconds), cp_s),
        }
        ours_over_cp, media_over_cp = (
            result["ratios"]["ours_over_cp"],
            result["ratios"]["ours_media_over_cp"],
        )
        result["targets"] = {  # null: not measured (a side failed)
            "ours_over_cp_max": COPY_RATIO_TARGET,
            "cp_met": met(ours_over_cp, COPY_RATIO_TARGET),
            "faster_than_orthanc": met(result["ratios"]["ours_over_orthanc"], 1.0, strict=True),
            "faster_than_dicognito": met(result["ratios"]["ours_over_dicognito"], 1.0, strict=True),
            "ours_media_over_cp_max": MEDIA_RATIO_TARGET,
            "media_met": met(media_over_cp, MEDIA_RATIO_TARGET),
            "all_ran": all(c.failure is None for c in contestants),
        }
        result["versions"] = versions(server_version)
        if args.keep:
            note(f"kept {scratch}")
        return result
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="median of N rounds (default 5)")
    parser.add_argument(
        "--data", type=Path, help="reuse the study in this folder, else generate it there (kept)"
    )
    parser.add_argument("--count", type=int, default=300, help="instances to generate")
    parser.add_argument("--size", type=int, default=512, help="rows and columns to generate")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (Orthanc...)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.count < 1 or args.size < 1:
        parser.error("--rounds, --count and --size must be at least 1")
    print(json.dumps(run(args), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
