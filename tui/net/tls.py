"""TLS contexts for DICOM over TLS (PS3.15 B.1): the same files for every operation."""

from __future__ import annotations

import ssl
from pathlib import Path

from tui.errors import UserError
from tui.net.nodes import Node


def client_context(node: Node) -> ssl.SSLContext:
    """A context that checks the peer against ``tls_ca`` (or the system's CAs) and, with
    ``tls_cert``/``tls_key``, proves who we are (mutual TLS, as most PACS ask)."""
    _exist(f"node {node.name}: ", tls_ca=node.tls_ca, tls_cert=node.tls_cert, tls_key=node.tls_key)
    try:
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=_path(node.tls_ca) if node.tls_ca else None
        )
        if node.tls_cert:
            context.load_cert_chain(_path(node.tls_cert), _path(node.tls_key))
    except (OSError, ssl.SSLError) as exc:
        raise UserError(f"node {node.name}: cannot load the TLS files: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def server_context(cert: str, key: str, ca: str = "") -> ssl.SSLContext:
    """A context for our own SCPs; with ``ca``, callers must show a certificate it signed."""
    _exist("", **{"--tls-cert": cert, "--tls-key": key, "--tls-ca": ca})
    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(_path(cert), _path(key))
        if ca:
            context.load_verify_locations(cafile=_path(ca))
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise UserError(f"cannot load the TLS files: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _path(name: str) -> str:
    return str(Path(name).expanduser())


def _exist(prefix: str, **files: str) -> None:
    """Say which TLS file is missing, by the name the user gave it."""
    for label, name in files.items():
        if name and not Path(name).expanduser().is_file():
            raise UserError(f"{prefix}{label} {name}: no such file")
