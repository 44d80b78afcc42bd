"""Remote DICOM nodes (PACS, modalities, workstations), kept in ``config.toml``.

Each node is a ``[nodes.NAME]`` table::

    [nodes.pacs]
    aet = "ORTHANC"
    host = "pacs.example.org"
    port = 4242
    calling_aet = "PACSTUI"       # our AE title, as the PACS knows it
    method = "get"                # or "move"
    move_destination = "PACSTUI"  # the AE title C-MOVE sends to (our receiver)
    tls_ca = "/etc/pacs/ca.pem"   # TLS when set; with tls_cert/tls_key for mutual TLS

A DICOMweb node has a base URL instead of an AE title, host and port::

    [nodes.web]
    dicomweb = "https://pacs.example.org/dicom-web"
    auth = "basic"                # or "bearer", or "none" (the default)
    username = "radiology"
    secret_file = "~/.config/pacs-tui/web.secret"  # or secret_env = "PACS_WEB_PASSWORD"
    tls_ca = "/etc/pacs/ca.pem"   # the CA that signed its certificate (else the system's)

(``qido_url``, ``wado_url`` and ``stow_url`` set separate roots where a server needs them.)

A DICOM printer (Basic Grayscale Print Management) is a DIMSE node with ``printer = true``
and, if wanted, the defaults of its jobs (empty or 0: the printer's own)::

    [nodes.film]
    aet = "PRINTSCP"
    host = "printer.example.org"
    port = 10005
    printer = true
    film_size = "14INX17IN"       # FilmSizeID
    film_orientation = "PORTRAIT" # or LANDSCAPE
    medium = "BLUE FILM"          # MediumType: PAPER, CLEAR FILM, BLUE FILM...
    film_destination = "MAGAZINE" # FilmDestination: MAGAZINE, PROCESSOR, BIN_i
    magnification = "CUBIC"       # MagnificationType: REPLICATE, BILINEAR, CUBIC, NONE
    max_density = 300             # hundredths of optical density
    min_density = 20
    copies = 1                    # NumberOfCopies
    print_bits = 12               # 8 or 12 (0: 12 where the printer takes them)
    annotation_format = "LABEL"   # AnnotationDisplayFormatID (the printer's manual says which):
                                  # its annotation boxes get the patient, study and series text

A printer only prints: find, get, send and worklist refuse it (:func:`not_a_printer`).
The password or token is never in config.toml: it is read from ``secret_file`` or from the
environment variable ``secret_env`` when the node is used.

Adding, editing or removing a node rewrites only its own table: the rest of the file,
comments included, is kept as the user wrote it.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from tui.config import load_config
from tui.errors import UserError
from tui.permissions import private_file, private_folder

DEFAULT_CALLING_AET = "PACSTUI"
MAX_PDU = 1 << 24  # the largest PDU we ever take: 16 MiB, 64 times pynetdicom's default
RECEIVE_PORT = 11112  # DICOM's registered port, and our storage SCP's unless set
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Node:
    """How to reach one remote application entity."""

    name: str
    aet: str = ""  # aet, host and port: a DIMSE node's (a DICOMweb node has a URL instead)
    host: str = ""
    port: int = 0
    calling_aet: str = DEFAULT_CALLING_AET
    method: str = "get"  # how to retrieve: C-GET, or C-MOVE to move_destination
    move_destination: str = ""  # empty: our calling AE title
    tls_ca: str = ""  # TLS is on when any of the three is set
    tls_cert: str = ""
    tls_key: str = ""
    connect_timeout: float = 10.0  # seconds to open the TCP connection
    acse_timeout: float = 30.0  # seconds for association negotiation
    dimse_timeout: float = 120.0  # seconds to wait for a response (a PACS may match slowly)
    network_timeout: float = 120.0  # seconds of silence before the link is taken for dead
    max_pdu: int = 262144  # the largest PDU we accept (0: the most we ever take, MAX_PDU)
    dicomweb: str = ""  # a DICOMweb node's base URL (https://host/dicom-web)
    qido_url: str = ""  # separate QIDO-RS, WADO-RS and STOW-RS roots (default: dicomweb)
    wado_url: str = ""
    stow_url: str = ""
    auth: str = "none"  # none, basic (username and secret) or bearer (a token as secret)
    username: str = ""
    secret_file: str = ""  # the password or token: read from this file when used
    secret_env: str = ""  # ... or from this environment variable
    fuzzymatching: bool = False  # QIDO-RS fuzzy matching of person names, where offered
    printer: bool = False  # a DICOM printer: Basic Grayscale Print Management, nothing else
    film_size: str = ""  # a printer's defaults ("" or 0: the printer's own): FilmSizeID
    film_orientation: str = ""  # FilmOrientation: PORTRAIT or LANDSCAPE
    medium: str = ""  # MediumType: PAPER, CLEAR FILM, BLUE FILM, MAMMO CLEAR FILM...
    film_destination: str = ""  # FilmDestination: MAGAZINE, PROCESSOR, BIN_i
    magnification: str = ""  # MagnificationType: REPLICATE, BILINEAR, CUBIC, NONE
    max_density: int = 0  # MaxDensity, hundredths of optical density
    min_density: int = 0  # MinDensity
    copies: int = 1  # NumberOfCopies
    print_bits: int = 0  # 8 or 12 bits per pixel (0: 12 where the printer takes them)
    annotation_format: str = ""  # AnnotationDisplayFormatID, the printer's own ("": no text)

    @property
    def pdu_limit(self) -> int:
        """The largest PDU we advertise and accept: never "any", which would let a peer
        announce a gigabyte and have us wait for it (PS3.8 allows 0 to mean no limit)."""
        return self.max_pdu or MAX_PDU

    @property
    def tls(self) -> bool:
        if self.dicomweb:
            return any(url.lower().startswith("https:") for url in self.web_roots.values())
        return bool(self.tls_ca or self.tls_cert or self.tls_key)

    @property
    def web_roots(self) -> dict[str, str]:
        """A DICOMweb node's QIDO-RS, WADO-RS and STOW-RS roots, without a trailing slash."""
        return {
            service: (getattr(self, f"{service}_url") or self.dicomweb).rstrip("/")
            for service in ("qido", "wado", "stow")
        }

    @property
    def destination(self) -> str:
        return self.move_destination or self.calling_aet

    @property
    def address(self) -> str:
        if self.dicomweb:
            return self.dicomweb
        return f"{self.aet}@{self.host}:{self.port}"

    def checked(self, check_files: bool = True) -> Node:
        """This node, or a :class:`UserError` saying which value is wrong.

        TLS files are looked for only with ``check_files`` (when the node is saved): a file
        that went missing later is reported when the node is used, not by every command.
        """
        if not _NAME.match(self.name):
            raise UserError(f"node name {self.name!r}: use letters, digits, - and _")
        if self.dicomweb:
            if self.printer:
                raise UserError(
                    f"node {self.name}: a printer is a DIMSE node (AET HOST PORT): DICOMweb "
                    "has no print service"
                )
            return self._checked_web(check_files)
        self._check_print_settings()
        web = [label for label in WEB_ONLY if getattr(self, label) != _FIELDS[label].default]
        if web:
            raise UserError(
                f"node {self.name}: {', '.join(web)} are a DICOMweb node's settings, and it is a "
                "DIMSE node (AET HOST PORT): leave them out, or give it --dicomweb URL"
            )
        for label, title in (
            ("aet", self.aet),
            ("calling_aet", self.calling_aet),
            ("move_destination", self.move_destination or self.calling_aet),
        ):
            check_aet(title, label)
        if not self.host or any(c.isspace() for c in self.host):
            raise UserError(f"node {self.name}: host {self.host!r} is not a host name or address")
        if not 0 < self.port < 65536:
            raise UserError(f"node {self.name}: port {self.port} is not between 1 and 65535")
        if self.method not in ("get", "move"):
            raise UserError(f"node {self.name}: method must be get or move, not {self.method!r}")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise UserError(f"node {self.name}: tls_cert and tls_key go together")
        if check_files:
            self._check_files(("tls_ca", "tls_cert", "tls_key"))
        for label in ("connect_timeout", "acse_timeout", "dimse_timeout", "network_timeout"):
            if getattr(self, label) <= 0:
                raise UserError(f"node {self.name}: {label} must be more than 0 seconds")
        if not 0 <= self.max_pdu <= MAX_PDU:
            raise UserError(f"node {self.name}: max_pdu must be 0 (the most we take) to {MAX_PDU}")
        return self

    def _checked_web(self, check_files: bool) -> Node:
        """A DICOMweb node's checks: its URLs, its auth, the files it names."""
        from urllib.parse import urlsplit

        for label in ("dicomweb", "qido_url", "wado_url", "stow_url"):
            url = getattr(self, label)
            if not url:
                continue
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise UserError(f"node {self.name}: {label} {url!r} is not an http(s) URL")
            if parts.username is not None or parts.password is not None:
                raise UserError(
                    f"node {self.name}: {label} holds a user name or password: give the user "
                    "as username and the password in secret_file or secret_env, never in the URL"
                )
            if parts.query or parts.fragment:
                raise UserError(f"node {self.name}: {label} {url!r}: a base URL has no ? or #")
        if self.method != "get":
            raise UserError(f"node {self.name}: DICOMweb retrieves by WADO-RS: no method move")
        dimse = [label for label in (*DIMSE_ONLY, *PRINT_ONLY)
                 if getattr(self, label) != _FIELDS[label].default]  # fmt: skip
        if dimse:
            raise UserError(
                f"node {self.name}: {', '.join(dimse)} are a DIMSE node's settings, and it is a "
                f"DICOMweb node: leave them out (node add --replace {self.name} AET HOST PORT "
                "makes it a DIMSE node)"
            )
        if self.auth not in ("none", "basic", "bearer"):
            raise UserError(f"node {self.name}: auth must be none, basic or bearer")
        if self.auth == "basic" and not self.username:
            raise UserError(f"node {self.name}: auth basic needs a username")
        if self.auth == "none" and (self.username or self.secret_file or self.secret_env):
            raise UserError(
                f"node {self.name}: username, secret_file and secret_env do nothing with auth "
                "none: set auth basic (or bearer), or leave them out"
            )
        if self.auth != "none" and not (self.secret_file or self.secret_env):
            what = "password" if self.auth == "basic" else "token"
            raise UserError(
                f"node {self.name}: auth {self.auth} needs its {what} in a file (secret_file) "
                "or an environment variable (secret_env)"
            )
        if self.secret_file and self.secret_env:
            raise UserError(f"node {self.name}: secret_file or secret_env, not both")
        if self.secret_env and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", self.secret_env):
            raise UserError(f"node {self.name}: secret_env {self.secret_env!r} is not a name")
        if check_files:
            self._check_files(("tls_ca", "tls_cert", "tls_key", "secret_file"))
        if bool(self.tls_cert) != bool(self.tls_key):
            raise UserError(f"node {self.name}: tls_cert and tls_key go together")
        for label in ("connect_timeout", "network_timeout"):
            if getattr(self, label) <= 0:
                raise UserError(f"node {self.name}: {label} must be more than 0 seconds")
        return self

    def _check_print_settings(self) -> None:
        """A printer's defaults as DICOM allows them; none of them on a node that is no
        printer (they would do nothing)."""
        given = [label for label in PRINT_ONLY if getattr(self, label) != _FIELDS[label].default]
        if not self.printer:
            if given:
                raise UserError(
                    f"node {self.name}: {', '.join(given)} are a printer's settings, and it is "
                    "no printer: leave them out, or make it one (--printer)"
                )
            return
        if self.film_orientation not in ("", "PORTRAIT", "LANDSCAPE"):
            raise UserError(
                f"node {self.name}: film_orientation must be PORTRAIT or LANDSCAPE, "
                f"not {self.film_orientation!r}"
            )
        for label in ("film_size", "medium", "film_destination", "magnification",
                      "annotation_format"):  # fmt: skip
            value = getattr(self, label)
            if value and not _CODE_STRING.match(value):
                raise UserError(
                    f"node {self.name}: {label} {value!r} is not a DICOM code string "
                    "(capitals, digits, space and _, at most 16)"
                )
        for label in ("max_density", "min_density"):
            if not 0 <= getattr(self, label) <= 65535:
                raise UserError(f"node {self.name}: {label} must be 0 to 65535")
        if self.max_density and self.min_density >= self.max_density:
            raise UserError(f"node {self.name}: min_density must be below max_density")
        if not 1 <= self.copies <= 99:
            raise UserError(f"node {self.name}: copies must be 1 to 99")
        if self.print_bits not in (0, 8, 12):
            raise UserError(f"node {self.name}: print_bits must be 8 or 12 (0: the printer's)")

    def _check_files(self, labels: tuple[str, ...]) -> None:
        """The files named by ``labels`` exist; tls_ca is loaded as ssl will load it, so a
        file that is no PEM certificate is said now, not at the first connection."""
        import ssl

        for label in labels:
            path = getattr(self, label)
            if path and not Path(path).expanduser().is_file():
                raise UserError(f"node {self.name}: {label} {path} is not a file")
        if self.tls_ca:
            try:
                ssl.create_default_context(cafile=str(Path(self.tls_ca).expanduser()))
            except (OSError, ssl.SSLError) as exc:
                why = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
                raise UserError(
                    f"node {self.name}: tls_ca {self.tls_ca} is not a CA certificate in PEM "
                    f"form that can be read ({why})"
                ) from None


def check_aet(title: str, label: str = "AE title") -> str:
    """An AE title as DICOM allows it: 1-16 characters of printable ASCII, no backslash."""
    if not title.strip() or len(title) > 16:
        raise UserError(f"{label} {title!r}: an AE title has 1 to 16 characters")
    if not all(" " <= c <= "~" for c in title) or "\\" in title:
        raise UserError(f"{label} {title!r}: an AE title is printable ASCII without backslash")
    return title


_FIELDS = {f.name: f for f in fields(Node)}
# Settings only one kind of node uses: the other kind refuses them (they would do nothing).
WEB_ONLY = ("qido_url", "wado_url", "stow_url", "auth", "username", "secret_file",
            "secret_env", "fuzzymatching")  # fmt: skip
DIMSE_ONLY = ("aet", "host", "port", "calling_aet", "method", "move_destination", "max_pdu")
# A printer's own settings: a node that is no printer refuses them.
PRINT_ONLY = ("film_size", "film_orientation", "medium", "film_destination", "magnification",
              "max_density", "min_density", "copies", "print_bits",
              "annotation_format")  # fmt: skip
_CODE_STRING = re.compile(r"^[A-Z0-9_ ]{1,16}$")
_TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}
_KIND_NAMES = {str: "text, in quotes", int: "a whole number", float: "a number",
               bool: "true or false"}  # fmt: skip
# Keys that would hold a secret in config.toml: refused, with where the secret goes instead.
_SECRETS = ("password", "token", "secret", "bearer", "api_key")


def from_table(name: str, table: dict[str, Any], source: Path | str = "config.toml") -> Node:
    """A node from its ``[nodes.NAME]`` table, checked."""
    secrets = [key for key in table if key.lower() in _SECRETS]
    if secrets:
        raise UserError(
            f"{source}: [nodes.{name}] holds a secret ({', '.join(secrets)}): config.toml "
            "must not; put it in a file (secret_file) or an environment variable (secret_env)"
        )
    unknown = sorted(set(table) - set(_FIELDS) - {"name"})
    if unknown:
        raise UserError(f"{source}: [nodes.{name}] has unknown keys: {', '.join(unknown)}")
    values: dict[str, Any] = {"name": name}
    for key, value in table.items():
        if key == "name":
            continue
        kind = _TYPES[str(_FIELDS[key].type)]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise UserError(f"{source}: [nodes.{name}] {key} must be {_KIND_NAMES[kind]}")
        values[key] = value
    for required in () if values.get("dicomweb") else ("aet", "host", "port"):
        if required not in values:
            raise UserError(f"{source}: [nodes.{name}] needs {required} (or a dicomweb URL)")
    return Node(**values).checked(check_files=False)


def read_nodes(config_file: Path) -> tuple[dict[str, Node], dict[str, str]]:
    """The nodes in ``config_file`` by name, and the broken ones with what is wrong.

    One mistyped node must not stop the others (nor its own removal), so a node that does
    not load is set aside with its error rather than failing the whole file.
    """
    tables = load_config(config_file).get("nodes", {})
    if not isinstance(tables, dict):
        raise UserError(f"{config_file}: nodes must be tables, [nodes.NAME]")
    nodes: dict[str, Node] = {}
    broken: dict[str, str] = {}
    for name, table in tables.items():
        try:
            if not isinstance(table, dict):
                raise UserError(f"{config_file}: nodes.{name} must be a table, [nodes.{name}]")
            nodes[name] = from_table(name, table, config_file)
        except UserError as exc:
            broken[name] = str(exc)
    return nodes, broken


def load_nodes(config_file: Path) -> dict[str, Node]:
    """The nodes in ``config_file`` that load, by name (see :func:`read_nodes`)."""
    return read_nodes(config_file)[0]


def get_node(config_file: Path, name: str) -> Node:
    """The node called ``name``, or a :class:`UserError` saying why there is none."""
    nodes, broken = read_nodes(config_file)
    if name in broken:
        raise UserError(
            f"{broken[name]} (fix it with pacs-tui node edit {name} ..., or node rm {name})"
        )
    if name not in nodes:
        known = ", ".join(sorted(nodes)) or "none yet: pacs-tui node add NAME AET HOST PORT"
        hint = "; the demo PACS runs only while pacs-tui demo does" if name == "demo" else ""
        raise UserError(f"no node {name!r} (nodes: {known}){hint}")
    return nodes[name]


def not_a_printer(node: Node, what: str) -> Node:
    """``node``, or a :class:`UserError` when it is a printer: a printer only prints, so
    ``what`` (find, get, send, worklist) would only fail at the printer, in its words."""
    if node.printer:
        raise UserError(
            f"{node.name} is a printer: no {what} there, it only prints "
            f"(pacs-tui print {node.name} UID...)"
        )
    return node


def receiver_settings(config_file: Path) -> dict[str, Any]:
    """``[receiver]`` in config.toml, checked: ``aet``, ``port`` (:data:`RECEIVE_PORT` when
    not set), ``allow`` (a list). The one reading of where our storage SCP listens: for
    ``get``, ``receive``, ``serve``, the demo and the app's retrieves alike.

    Raises
    ------
    UserError
        If the table or one of its values is not what it should be.
    """
    where = f"{config_file}: [receiver]"
    table = load_config(config_file).get("receiver", {})
    if not isinstance(table, dict):
        raise UserError(f"{where} must be a table")
    port = table.get("port", RECEIVE_PORT)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port < 65536:
        raise UserError(f"{where} port must be a port number, not {port!r}")
    allow = table.get("allow", [])
    if not isinstance(allow, list) or not all(isinstance(a, str) for a in allow):
        raise UserError(f'{where} allow must be a list of AE titles, e.g. ["CT01", "MR02"]')
    if not isinstance(table.get("aet", ""), str):
        raise UserError(f"{where} aet must be an AE title, in quotes")
    return {**table, "port": port, "allow": allow}


def save_node(config_file: Path, node: Node) -> None:
    """Add or replace ``node``'s table in ``config_file``, keeping everything else."""
    node.checked()
    values = {k: v for k, v in asdict(node).items() if k != "name" and v != _FIELDS[k].default}
    if not node.dicomweb:
        values = {"aet": node.aet, "host": node.host, "port": node.port, **values}
    lines = [f"[nodes.{node.name}]"] + [f"{k} = {_toml_value(v)}" for k, v in values.items()]
    _rewrite_table(config_file, node.name, "\n".join(lines) + "\n")


def remove_node(config_file: Path, name: str) -> None:
    nodes, broken = read_nodes(config_file)
    if name not in nodes and name not in broken:
        get_node(config_file, name)  # says there is no such node, and which there are
    _rewrite_table(config_file, name, "")


def add_node(config_file: Path, node: Node, replace: bool = False) -> None:
    """Save a new node; one of the same name is replaced only when asked."""
    nodes, broken = read_nodes(config_file)
    if not replace and (node.name in nodes or node.name in broken):
        raise UserError(
            f"there is a node {node.name} already: pacs-tui node edit {node.name} ... changes "
            "it, node add --replace replaces it"
        )
    save_node(config_file, node)


def edit_node(
    config_file: Path, name: str, changes: dict[str, Any], dropped: list[str] | None = None
) -> Node:
    """The node ``name`` with ``changes`` applied and saved (a broken node too: editing
    is how it gets mended). A DIMSE node given a ``dicomweb`` URL loses its DIMSE settings
    (their names are added to ``dropped``); ``auth`` none clears the user and the secret;
    without ``auth`` among the changes it is inferred (:func:`with_auth_inferred`); a
    printer made no printer loses its print settings (added to ``dropped``)."""
    tables = load_config(config_file).get("nodes", {})
    table = tables.get(name) if isinstance(tables, dict) else None
    if not isinstance(table, dict):
        get_node(config_file, name)  # says there is no such node
        table = {}
    if changes.get("dicomweb") and not table.get("dicomweb"):
        # A DIMSE node becomes a DICOMweb node: its DIMSE settings would do nothing.
        gone = [key for key in DIMSE_ONLY if key in table and key not in changes]
        if dropped is not None:
            dropped += gone
        table = {k: v for k, v in table.items() if k not in gone}
    if changes.get("printer") is False:  # no longer a printer: its print settings go
        gone = [key for key in PRINT_ONLY if key in table and key not in changes]
        if dropped is not None:
            dropped += gone
        table = {k: v for k, v in table.items() if k not in gone}
    if changes.get("auth") == "none":  # no auth: no user, no secret
        table = {k: v for k, v in table.items() if k not in ("username", "secret_file",
                                                              "secret_env")}  # fmt: skip
    table = {**table, **changes}
    if "auth" not in changes:
        table = with_auth_inferred(table)
    edited = from_table(name, table, config_file)
    save_node(config_file, edited)
    return edited


def with_auth_inferred(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (a DICOMweb node's) with ``auth`` set when it is not and the rest says
    which: basic when a username is given, bearer when only a secret is."""
    if not values.get("dicomweb") or values.get("auth", "none") != "none":
        return values
    if values.get("username"):
        return {**values, "auth": "basic"}
    if values.get("secret_file") or values.get("secret_env"):
        return {**values, "auth": "bearer"}
    return values


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML basic string


def _rewrite_table(config_file: Path, name: str, table: str) -> None:
    """Replace the ``[nodes.NAME]`` table (up to the next table header) with ``table``."""
    try:
        text = config_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    except OSError as exc:
        raise UserError(f"cannot read config {config_file}: {exc.strerror}") from None
    header = re.compile(rf"^\s*\[\s*nodes\s*\.\s*(\"{re.escape(name)}\"|{re.escape(name)})\s*\]")
    kept: list[str] = []
    skipping = False
    for line in text.splitlines(keepends=True):
        if header.match(line):
            skipping = True
            continue
        if skipping and re.match(r"^\s*\[", line):
            skipping = False
        if not skipping:
            kept.append(line)
    body = "".join(kept).rstrip("\n")
    new = (body + "\n\n" if body else "") + table if table else body + "\n"
    try:
        tomllib.loads(new)  # the edit must never break the file: checked before it is written
    except tomllib.TOMLDecodeError as exc:
        raise UserError(
            f"{config_file}: node {name} is written in a form pacs-tui cannot edit ({exc}): "
            f"change it by hand, or remove it and add it again"
        ) from None
    tmp = config_file.with_name(config_file.name + ".tmp")
    try:
        private_folder(config_file.parent)
        tmp.unlink(missing_ok=True)  # a leftover may be readable by others: start afresh
        private_file(tmp)  # config.toml may hold node addresses and secrets' paths: 0600
        tmp.write_text(new, encoding="utf-8")
        tmp.replace(config_file)
    except OSError as exc:
        raise UserError(f"cannot write config {config_file}: {exc.strerror}") from None
