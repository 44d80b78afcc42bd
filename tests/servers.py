"""Real DICOM servers on loopback for the networking tests: Orthanc (plain and TLS), dcmqrscp
and dcmtk's print server emulator dcmprscp.

Every server gets fresh free ports and its own folder, knows our own SCP as ``PACSTUI`` at a port
the caller chooses (so C-MOVE back to us works) and is killed on teardown. Files go in over REST
(``upload``, fast) or C-STORE (``store_scu``); ``find_scu`` and ``echo_scu`` drive dcmtk, an
independent implementation, so a test of our client never checks it against itself.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, Self

import pytest

HOST = "127.0.0.1"
PACSTUI = "PACSTUI"  # our own AE title, as the servers know it
PACSTUI_TLS = "PACSTUI_TLS"  # the same SCP, but Orthanc (TLS) calls it over TLS for C-MOVE
IN_CI = os.environ.get("CI") == "true"
START_TIMEOUT = 30.0


# -- finding the programs -------------------------------------------------------------------------


def _missing(what: str) -> NoReturn:
    """Skip on a laptop without the program; fail in CI, where it must be installed."""
    if IN_CI:
        pytest.fail(f"{what} is missing: CI must install it")
    pytest.skip(f"{what} is missing")


def need_binary(name: str) -> str:
    """The absolute path of a program; Orthanc lives in /usr/sbin, often not on a user's PATH."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if found is None:
        _missing(f"the program {name!r}")
    return found


ORTHANC_PLUGINS = Path("/usr/share/orthanc/plugins")


def need_plugin(name: str) -> str:
    """The path of an Orthanc plugin the Debian packages install: ``OrthancDicomWeb``
    (package orthanc-dicomweb) or ``ModalityWorklists`` (package orthanc)."""
    path = ORTHANC_PLUGINS / f"lib{name}.so"
    if not path.exists():
        package = "orthanc-dicomweb" if name == "OrthancDicomWeb" else "orthanc"
        _missing(f"Orthanc's plugin {path} (Debian package {package})")
    return str(path)


def need_dcmtk(tool: str) -> str:
    """A dcmtk program, not one of pynetdicom's same-named Python scripts (first on PATH here)."""
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(folder or ".") / tool
        if candidate.is_file() and os.access(candidate, os.X_OK):
            with candidate.open("rb") as head:
                if head.read(2) != b"#!":  # a compiled program, not a script or a pyenv shim
                    return str(candidate)
    _missing(f"dcmtk's {tool!r} (Debian package dcmtk)")


# -- ports and waiting ----------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port nobody listens on now; a server that loses the race is restarted with another."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def accepts(port: int, host: str = HOST) -> bool:
    """Whether something listens on the port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def listens(pid: int, port: int) -> bool | None:
    """Whether process ``pid`` itself holds a listening TCP socket on ``port`` (None without
    Linux's /proc). A bare connect could reach whoever else won the port while ours died."""
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].exists():
        return None
    inodes = set()
    for table in tables:
        if table.exists():
            for line in table.read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    inodes.add(f"socket:[{inode}]")
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(fd) in inodes:
                return True
        except OSError:
            continue
    return False


def http_json(url: str, headers: Mapping[str, str] | None = None) -> Any:
    """The JSON at the URL, or None while nothing answers."""
    try:
        request = urllib.request.Request(url, headers=dict(headers or {}))
        with urllib.request.urlopen(request, timeout=2) as response:
            return json.load(response)
    except OSError:
        return None


class ServerDied(RuntimeError):
    """The server exited while we waited for it (often: it lost a port to another process)."""


# -- servers --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA and two certificates it signed, all PEM.

    Both certificates carry serverAuth and clientAuth and subjectAltName IP:127.0.0.1 and
    DNS:localhost, so either side may use either one: the server pair is Orthanc's (as SCP and as
    SCU for C-MOVE), the client pair is ours (as SCU, and as the TLS SCP Orthanc moves to).
    """

    ca: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


@dataclass(kw_only=True)
class Server:
    """A running server process; a context manager, and ``stop()`` is safe to call twice."""

    aet: str
    port: int
    process: subprocess.Popen[bytes]
    workdir: Path
    log: Path
    host: str = HOST
    tls: TlsFiles | None = None

    def stop(self) -> None:
        """Kill the whole process group at once: the data is throwaway (Orthanc takes ~3.5 s to
        stop gracefully) and dcmqrscp forks a child per association."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def listening(self) -> bool:
        """Whether this very process listens on ``port`` (see ``listens``)."""
        mine = listens(self.process.pid, self.port)
        return accepts(self.port, self.host) if mine is None else mine

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _need_tls(self) -> TlsFiles:
        if self.tls is None:
            raise AttributeError(f"{self.aet} on port {self.port} does not use TLS")
        return self.tls

    @property
    def ca(self) -> Path:
        return self._need_tls().ca

    @property
    def client_cert(self) -> Path:
        return self._need_tls().client_cert

    @property
    def client_key(self) -> Path:
        return self._need_tls().client_key

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(kw_only=True)
class Orthanc(Server):
    """Orthanc: DICOM on ``port`` (TLS only when ``tls`` is set), REST on ``url``."""

    http_port: int
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def basic_auth(self) -> dict[str, str]:
        """The Authorization header of its first registered user (``"AuthenticationEnabled"``
        and ``"RegisteredUsers"`` in ``extra_config``), or none."""
        users = self.config.get("RegisteredUsers") or {}
        if not self.config.get("AuthenticationEnabled") or not users:
            return {}
        pair = "{}:{}".format(*next(iter(users.items())))
        return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}

    def rest_ready(self) -> bool:
        """Whether the REST API answers with our name (not another server's on the port)."""
        answer = http_json(f"{self.url}/system", self.basic_auth)
        return isinstance(answer, dict) and answer.get("Name") == self.config["Name"]


@dataclass(kw_only=True)
class Dcmqrscp(Server):
    """dcmtk's dcmqrscp, an archive of files it received by C-STORE."""

    storage: Path


@dataclass(kw_only=True)
class StoreScp(Server):
    """dcmtk's storescp: files it receives land in ``received``."""

    received: Path


@dataclass(kw_only=True)
class Dcmprscp(Server):
    """dcmtk's print server emulator: each printed film box lands in ``database`` as one Stored
    Print object (``SP_*.dcm``) and one Hardcopy Grayscale Image per image box (``HG_*.dcm``)."""

    database: Path
    printer: dict[str, str] = field(default_factory=dict)


def _spawn(args: list[str], workdir: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start a server in its own process group (so teardown reaches its children too)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            args,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait(server: Server, ready: Callable[[], bool], timeout: float) -> None:
    """Wait until ``ready()``; on death or timeout, raise with the end of the server's log."""
    deadline = time.monotonic() + timeout
    while not ready():
        if server.process.poll() is not None:
            raise ServerDied(
                f"{server.aet} exited with {server.process.returncode} before it was ready; "
                f"log {server.log}:\n{server.log_tail()}"
            )
        if time.monotonic() > deadline:
            server.stop()
            raise TimeoutError(
                f"{server.aet} not ready on port {server.port} after {timeout:.0f} s; "
                f"log {server.log}:\n{server.log_tail()}"
            )
        time.sleep(0.05)


def _up(server: Server, checks: tuple[Callable[[], bool], ...], timeout: float, last: bool) -> bool:
    """Wait for each check in turn: True when ready, False when the server died because a
    free port was taken meanwhile (the caller tries another, unless it is its ``last``)."""
    try:
        for ready in checks:
            _wait(server, ready, timeout)
    except ServerDied:
        if last or "already in use" not in server.log_tail():
            raise
        return False
    return True


def orthanc_config(
    workdir: Path,
    *,
    port: int,
    http_port: int,
    move_port: int,
    aet: str = "ORTHANC",
    tls: TlsFiles | None = None,
) -> dict[str, Any]:
    """The whole configuration: nothing comes from /etc/orthanc, whose list loads the system's
    plugins (ModalityWorklists, ServeFolders) from /usr/share/orthanc/plugins."""
    storage = str(workdir / "storage")
    modalities: dict[str, dict[str, Any]] = {
        "pacstui": {"AET": PACSTUI, "Host": HOST, "Port": move_port},
    }
    config: dict[str, Any] = {
        "Name": f"pacs-tui test {secrets.token_hex(4)}",
        "StorageDirectory": storage,
        "IndexDirectory": storage,
        "StorageCompression": False,
        "Plugins": [],
        "LuaScripts": [],
        "HttpServerEnabled": True,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,  # Orthanc binds 0.0.0.0; this refuses other hosts
        "AuthenticationEnabled": False,
        "OrthancExplorerEnabled": False,
        "WebDavEnabled": False,
        "HttpThreadsCount": 8,
        "DicomServerEnabled": True,
        "DicomAet": aet,
        "DicomPort": port,
        "DicomCheckCalledAet": False,
        "DicomCheckModalityHost": False,
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowFind": True,
        "DicomAlwaysAllowGet": True,
        "DicomAlwaysAllowMove": True,
        "DicomAlwaysAllowStore": True,
        "UnknownSopClassAccepted": True,
        "DicomScpTimeout": 10,
        "DicomScuTimeout": 10,
        # Close Orthanc's own associations (C-MOVE to us) at once instead of keeping them 5 s.
        "DicomAssociationCloseDelay": 0,
        "DicomModalities": modalities,
        "DicomModalitiesInDatabase": False,
        "SaveJobs": False,
    }
    if tls is not None:
        modalities["pacstui_tls"] = {
            "AET": PACSTUI_TLS,
            "Host": HOST,
            "Port": move_port,
            "UseDicomTls": True,
        }
        config |= {
            "DicomTlsEnabled": True,
            "DicomTlsCertificate": str(tls.server_cert),
            "DicomTlsPrivateKey": str(tls.server_key),
            "DicomTlsTrustedCertificates": str(tls.ca),
            "DicomTlsRemoteCertificateRequired": True,
        }
    return config


def start_orthanc(
    workdir: Path,
    *,
    move_port: int,
    tls: TlsFiles | None = None,
    aet: str = "ORTHANC",
    extra_config: Mapping[str, Any] | None = None,
    plugins: Iterable[str] = (),
    verbose: bool = False,
    timeout: float = START_TIMEOUT,
) -> Orthanc:
    """Start Orthanc in ``workdir`` and wait until both DICOM and REST answer (~0.2 s here).

    ``plugins`` names Orthanc plugins to load (see ``need_plugin``: ``OrthancDicomWeb``,
    ``ModalityWorklists``); ``extra_config`` overrides top-level keys of ``orthanc_config``
    (a plugin's own section, ``"DicomWeb"`` or ``"Worklists"``, goes there). A start that
    loses a port to another process ("already in use" in its log) is retried with new ones.
    """
    binary = need_binary("Orthanc")
    workdir.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):
        config = orthanc_config(
            workdir,
            port=free_port(),
            http_port=free_port(),
            move_port=move_port,
            aet=aet,
            tls=tls,
        )
        config["Plugins"] = [need_plugin(name) for name in plugins]
        config |= dict(extra_config or {})
        config_path = workdir / "orthanc.json"
        config_path.write_text(json.dumps(config, indent=2))
        log = workdir / "orthanc.log"
        args = [binary, *(["--verbose"] if verbose else []), str(config_path)]
        server = Orthanc(
            aet=aet,
            port=config["DicomPort"],
            http_port=config["HttpPort"],
            process=_spawn(args, workdir, log),
            workdir=workdir,
            log=log,
            tls=tls,
            config=config,
        )
        # The name tells our Orthanc from anyone else on the HTTP port.
        if _up(server, (server.rest_ready, server.listening), timeout, last=attempt == 2):
            return server
    raise AssertionError("unreachable")


def start_dcmqrscp(
    workdir: Path,
    *,
    move_port: int,
    aet: str = "DCMQRSCP",
    timeout: float = START_TIMEOUT,
) -> Dcmqrscp:
    """Start dcmqrscp on a free port with one read-write storage area that any peer may use;
    its HostTable knows ``PACSTUI`` at ``move_port``, the only place it will C-MOVE to."""
    binary = need_dcmtk("dcmqrscp")
    workdir.mkdir(parents=True, exist_ok=True)
    storage = workdir / "storage"
    storage.mkdir(exist_ok=True)
    for attempt in range(3):
        port = free_port()
        # Relative storage path: the config format has no quoting for spaces in a path.
        config = (
            f"NetworkTCPPort = {port}\n"
            "MaxPDUSize = 16384\n"
            "MaxAssociations = 16\n\n"
            "HostTable BEGIN\n"
            f"pacstui = ({PACSTUI}, {HOST}, {move_port})\n"
            "HostTable END\n\n"
            "VendorTable BEGIN\n"
            "VendorTable END\n\n"
            "AETable BEGIN\n"
            f"{aet} storage RW (1000, 1024mb) ANY\n"
            "AETable END\n"
        )
        config_path = workdir / "dcmqrscp.cfg"
        config_path.write_text(config)
        log = workdir / "dcmqrscp.log"
        server = Dcmqrscp(
            aet=aet,
            port=port,
            process=_spawn([binary, "-c", str(config_path), str(port)], workdir, log),
            workdir=workdir,
            log=log,
            storage=storage,
        )
        if _up(server, (server.listening,), timeout, last=attempt == 2):
            return server
    raise AssertionError("unreachable")


# The printer section of dcmpstat.cfg; ``start_dcmprscp(**printer)`` overrides any key.
DCMPRSCP_PRINTER: dict[str, str] = {
    "Description": "pacs-tui test printer",
    "Type": "LOCALPRINTER",
    "BorderDensity": "150\\20\\BLACK\\WHITE",
    "DisplayFormat": "1,1\\1,2\\2,2\\2,3\\3,3\\3,4\\3,5\\4,4\\4,5",
    "EmptyImageDensity": "20\\BLACK\\WHITE",
    "FilmDestination": "MAGAZINE\\PROCESSOR\\BIN_1\\BIN_2",
    "FilmSizeID": "8INX10IN\\10INX12IN\\14INX17IN",
    "MagnificationType": "REPLICATE\\BILINEAR\\CUBIC\\NONE",
    "MaxDensity": "320",
    "MaxPDU": "32768",
    "MediumType": "PAPER\\CLEAR FILM\\BLUE FILM",
    "MinDensity": "20",
    "OmitSOPClassUIDFromCreateResponse": "false",
    "PresentationLUTMatchRequired": "false",
    "PresentationLUTinFilmSession": "false",
    "ResolutionID": "STANDARD\\HIGH",
    "SmoothingType": "NONE",
    "Supports12Bit": "true",
    "SupportsDecimateCrop": "true",
    "SupportsImageSize": "true",
    "SupportsPresentationLUT": "true",
    "SupportsTrim": "true",
}


def start_dcmprscp(
    workdir: Path,
    *,
    aet: str = "PRINTSCP",
    timeout: float = START_TIMEOUT,
    **printer: str,
) -> Dcmprscp:
    """Start dcmprscp (one association at a time) on a free port with a dcmpstat.cfg of its own.

    ``printer`` overrides keys of its printer section (``DCMPRSCP_PRINTER``), e.g.
    ``FilmSizeID="8INX10IN\\14INX17IN"`` or ``Supports12Bit="false"``; its log is verbose
    (``-v``) and ``+d`` is not used (that would log what it printed, patient text included).
    """
    binary = need_dcmtk("dcmprscp")
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("spool", "database", "lut"):
        (workdir / name).mkdir(exist_ok=True)
    section = DCMPRSCP_PRINTER | {key: str(value) for key, value in printer.items()}
    for attempt in range(3):
        port = free_port()
        # Relative folders: the config format has no quoting for spaces in a path.
        lines = [
            "[[GENERAL]]",
            "[PRINT]",
            "Directory = spool",
            "DetailedLog = false",
            "BinaryLog = false",
            "DeletePrintJobs = true",
            "AlwaysDeleteTerminateJobs = true",
            "[DATABASE]",
            "Directory = database",
            "[LUT]",
            "Directory = lut",
            "[[COMMUNICATION]]",
            "[PRINTER]",
            f"Aetitle = {aet}",
            "Hostname = localhost",
            f"Port = {port}",
            *(f"{key} = {value}" for key, value in section.items()),
        ]
        config_path = workdir / "dcmpstat.cfg"
        config_path.write_text("\n".join(lines) + "\n")
        log = workdir / "dcmprscp.log"
        args = [binary, "-c", str(config_path), "-p", "PRINTER", "-v"]
        server = Dcmprscp(
            aet=aet,
            port=port,
            process=_spawn(args, workdir, log),
            workdir=workdir,
            log=log,
            database=workdir / "database",
            printer=section,
        )
        if _up(server, (server.listening,), timeout, last=attempt == 2):
            return server
    raise AssertionError("unreachable")


def start_storescp(
    workdir: Path,
    *,
    port: int,
    aet: str = PACSTUI,
    tls: TlsFiles | None = None,
    timeout: float = START_TIMEOUT,
) -> StoreScp:
    """dcmtk's storescp on a given port, standing in for our own SCP where a test checks a
    server's side of C-MOVE or C-STORE; with ``tls`` it uses the client certificate."""
    binary = need_dcmtk("storescp")
    received = workdir / "received"
    received.mkdir(parents=True, exist_ok=True)
    args = [binary, "-aet", aet]
    if tls is not None:
        args += ["+tls", str(tls.client_key), str(tls.client_cert), "+cf", str(tls.ca)]
    args += ["-od", str(received), str(port)]
    log = workdir / "storescp.log"
    server = StoreScp(
        aet=aet,
        port=port,
        process=_spawn(args, workdir, log),
        workdir=workdir,
        log=log,
        tls=tls,
        received=received,
    )
    _wait(server, server.listening, timeout)
    return server


# -- certificates ---------------------------------------------------------------------------------


def make_tls_files(directory: Path) -> TlsFiles:
    """A CA and two RSA-2048 certificates signed by it (openssl CLI; a few tenths of a second).

    RSA and SHA-256 because dcmtk's default BCP 195 profile and Python's ssl defaults accept both.
    """
    openssl = need_binary("openssl")
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        done = subprocess.run([openssl, *args], cwd=directory, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"openssl {' '.join(args)} failed:\n{done.stderr}")

    run(
        *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2"),
        *("-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=pacs-tui test CA"),
        *("-addext", "basicConstraints=critical,CA:TRUE"),
        *("-addext", "keyUsage=critical,keyCertSign,cRLSign"),
    )
    extensions = directory / "leaf.ext"
    extensions.write_text(
        "basicConstraints = CA:FALSE\n"
        "keyUsage = critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage = serverAuth,clientAuth\n"
        f"subjectAltName = IP:{HOST},DNS:localhost\n"
    )
    for name, common_name in (("server", HOST), ("client", PACSTUI)):
        run(
            *("req", "-newkey", "rsa:2048", "-nodes", "-sha256", "-subj", f"/CN={common_name}"),
            *("-keyout", f"{name}.key", "-out", f"{name}.csr"),
        )
        run(
            *("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key"),
            *("-set_serial", str(secrets.randbits(63)), "-days", "2", "-sha256"),
            *("-extfile", str(extensions), "-out", f"{name}.pem"),
        )
    return TlsFiles(
        ca=directory / "ca.pem",
        ca_key=directory / "ca.key",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
    )


# -- talking to the servers -----------------------------------------------------------------------


def upload(server: Orthanc, paths: Iterable[Path]) -> list[str]:
    """Store files in Orthanc over REST (POST /instances); return Orthanc's instance IDs."""
    ids = []
    for path in paths:
        request = urllib.request.Request(
            f"{server.url}/instances",
            data=Path(path).read_bytes(),
            headers={"Content-Type": "application/dicom"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.load(response)
        if answer.get("Status") not in ("Success", "AlreadyStored"):
            raise RuntimeError(f"Orthanc refused {path}: {answer}")
        ids.append(answer["ID"])
    return ids


def rest(server: Orthanc, path: str, method: str = "GET", body: Any = None) -> Any:
    """One call to Orthanc's REST API, JSON in and out."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{server.url}{path}", data=data, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def clear(server: Orthanc) -> None:
    """Delete every patient, so one module-scoped Orthanc serves tests that need it empty."""
    for patient in rest(server, "/patients"):
        rest(server, f"/patients/{patient}", method="DELETE")


def tls_args(server: Server) -> list[str]:
    """dcmtk options for a TLS server (our client certificate, trusting the test CA)."""
    if server.tls is None:
        return []
    files = server.tls
    return ["+tls", str(files.client_key), str(files.client_cert), "+cf", str(files.ca)]


def _dcmtk(tool: str, server: Server, args: list[str], tls: bool = True) -> list[str]:
    extra = tls_args(server) if tls else []
    return [need_dcmtk(tool), *extra, "-aet", PACSTUI, "-aec", server.aet, *args]


def store_scu(server: Server, paths: Iterable[Path]) -> None:
    """Store files by C-STORE with dcmtk's storescu (over TLS when the server uses it)."""
    files = [str(path) for path in paths]
    command = _dcmtk("storescu", server, [server.host, str(server.port), *files])
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"storescu to {server.aet} failed:\n{done.stdout}{done.stderr}")


def echo_scu(server: Server, *, tls: bool = True) -> subprocess.CompletedProcess[str]:
    """C-ECHO with dcmtk's echoscu; ``tls=False`` speaks plain DICOM even to a TLS server."""
    command = _dcmtk("echoscu", server, [server.host, str(server.port)], tls=tls)
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def _read_database(server: Dcmprscp, pattern: str) -> list[Any]:
    """The files of dcmprscp's database matching ``pattern``, in the order it wrote them."""
    import pydicom

    paths = sorted(server.database.glob(pattern), key=lambda p: (p.stat().st_mtime_ns, p.name))
    return [pydicom.dcmread(path) for path in paths]


def stored_prints(server: Dcmprscp) -> list[Any]:
    """The Stored Print objects dcmprscp wrote, one per printed film box (``SP_*.dcm``), in
    the order it printed them."""
    return _read_database(server, "SP_*.dcm")


def hardcopy_images(server: Dcmprscp) -> list[Any]:
    """The Hardcopy Grayscale Images dcmprscp wrote, one per image box (``HG_*.dcm``), in print
    order: film by film, box by box (``ImageBoxPosition``); the file names are random. Images
    no Stored Print references (those of a film box never printed) come last."""
    images = {image.SOPInstanceUID: image for image in _read_database(server, "HG_*.dcm")}
    ordered = []
    for stored in stored_prints(server):
        boxes = sorted(stored.ImageBoxContentSequence, key=lambda box: int(box.ImageBoxPosition))
        for box in boxes:
            for reference in box.get("ReferencedImageSequence", []):
                image = images.pop(reference.ReferencedSOPInstanceUID, None)
                if image is not None:
                    ordered.append(image)
    return ordered + list(images.values())


def find_scu(server: Server, *keys: str, model: str = "-S") -> list[Any]:
    """C-FIND with dcmtk's findscu; ``keys`` as findscu's ``-k`` takes them
    (``"QueryRetrieveLevel=STUDY"``, ``"StudyInstanceUID"``); the answers as pydicom datasets."""
    import pydicom

    with tempfile.TemporaryDirectory(prefix="findscu") as out:
        key_args = [arg for key in keys for arg in ("-k", key)]
        command = _dcmtk(
            "findscu", server, [model, "-X", "-od", out, *key_args, server.host, str(server.port)]
        )
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"findscu to {server.aet} failed:\n{done.stdout}{done.stderr}")
        return [pydicom.dcmread(path) for path in sorted(Path(out).glob("rsp*.dcm"))]


# -- fixtures (registered in tests/conftest.py) ---------------------------------------------------


@pytest.fixture(scope="session")
def pacstui_port() -> int:
    """The port our own SCP listens on in tests; every server knows it as PACSTUI."""
    return free_port()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory, pacstui_port: int) -> Iterator[Orthanc]:
    """Plain Orthanc shared by one test module; ``clear()`` it if a test needs it empty."""
    with start_orthanc(tmp_path_factory.mktemp("orthanc"), move_port=pacstui_port) as server:
        yield server


@pytest.fixture(scope="module")
def orthanc_tls(
    tmp_path_factory: pytest.TempPathFactory, pacstui_port: int, tls_files: TlsFiles
) -> Iterator[Orthanc]:
    """Orthanc whose DICOM port speaks only TLS and requires a client certificate."""
    workdir = tmp_path_factory.mktemp("orthanc_tls")
    with start_orthanc(workdir, move_port=pacstui_port, tls=tls_files) as server:
        yield server


@pytest.fixture
def dcmprscp_printer(tmp_path: Path) -> Iterator[Dcmprscp]:
    """dcmprscp with the default printer section and a fresh database for each test."""
    with start_dcmprscp(tmp_path / "dcmprscp") as server:
        yield server


@pytest.fixture(scope="module")
def dcmqrscp(tmp_path_factory: pytest.TempPathFactory, pacstui_port: int) -> Iterator[Dcmqrscp]:
    with start_dcmqrscp(tmp_path_factory.mktemp("dcmqrscp"), move_port=pacstui_port) as server:
        yield server
