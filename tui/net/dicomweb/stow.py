"""STOW-RS: send instances to a DICOMweb node in bounded requests.

Each request is one ``multipart/related`` body of at most :data:`BATCH_BYTES` or
:data:`BATCH_COUNT` instances, its Content-Length known beforehand, its files streamed from
disk a chunk at a time: memory stays flat however much is sent. Instances changed by a
``transform`` (the de-identifier) are encoded in memory, one batch at a time.
"""

from __future__ import annotations

import http.client
import io
import json
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui.net import errors
from tui.net.dicomweb.client import Client
from tui.net.nodes import Node

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from tui.net.scu import Sent

BATCH_BYTES = 64 << 20  # the most bytes in one STOW-RS request (one larger instance goes alone)
BATCH_COUNT = 200  # the most instances in one request
CHUNK = 1 << 20
_REFERENCED, _FAILED, _REASON = "00081199", "00081198", "00081197"
_SOP_UID = "00081155"


@dataclass
class _Item:
    path: str
    size: int
    data: bytes | None = None  # the transformed instance; None: the file as it is


def send(
    node: Node,
    files: list[tuple[str, str, str]],
    result: Sent,
    progress: Callable[[Sent, int], None] | None = None,
    cancel: threading.Event | None = None,
    transform: Callable[[Dataset], None] | None = None,
) -> Sent:
    """:func:`tui.net.scu.send` for a DICOMweb node: the same ``result`` counts, refusals
    and progress calls, by STOW-RS."""
    batch: list[_Item] = []
    with Client(node) as client:
        for path, _, _ in files:
            if cancel is not None and cancel.is_set():
                break
            item = _item(path, transform, result)
            if item is None:
                continue
            if batch and (
                len(batch) >= BATCH_COUNT or sum(i.size for i in batch) + item.size > BATCH_BYTES
            ):
                _store(client, batch, result)
                batch = []
                if progress:
                    progress(result, len(files))
            batch.append(item)
        if batch and not (cancel is not None and cancel.is_set()):
            _store(client, batch, result)
        if progress:
            progress(result, len(files))
    return result


def _item(path: str, transform: Callable[[Dataset], None] | None, result: Sent) -> _Item | None:
    """One file to send (transformed when asked), or None when it is left out (listed)."""
    try:
        if transform is None:
            return _Item(path, Path(path).stat().st_size)
        from pydicom import dcmread

        ds = dcmread(path)
        transform(ds)
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        data = out.getvalue()
        return _Item(path, len(data), data)
    except Exception as exc:  # unreadable, refused or not made safe: it does not go
        reason = getattr(exc, "reason", None)  # pixels.Refused: burned-in text
        if isinstance(reason, str):
            result.refused.append(f"{path}: {reason}")
        else:
            result.failed.append(f"{path}: {type(exc).__name__}: {exc}".splitlines()[0])
        return None


def _store(client: Client, batch: list[_Item], result: Sent) -> None:
    """One STOW-RS request for ``batch``; what the server stored and refused, in ``result``."""
    boundary = secrets.token_hex(16)
    head = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode("ascii")
    tail = f"--{boundary}--\r\n".encode("ascii")
    length = sum(len(head) + i.size + 2 for i in batch) + len(tail)

    def body() -> Iterator[bytes]:
        for item in batch:
            yield head
            if item.data is not None:
                yield item.data
            else:
                yield from _file_chunks(item)
            yield b"\r\n"
        yield tail

    headers = {
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "Content-Length": str(length),
        "Accept": "application/dicom+json",
    }
    node = client.node
    url = client.url("stow", "/studies")
    response = client.request("POST", url, headers, body(), what="the send (STOW-RS)", ok=(409,))
    try:
        raw = response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise client.failure(exc, "the send (STOW-RS)") from None
    finally:
        client.release(response)
    try:
        answer = json.loads(raw) if raw.strip() else {}
    except ValueError:
        answer = {}
    if isinstance(answer, list):  # some servers wrap the one dataset in an array
        answer = answer[0] if answer and isinstance(answer[0], dict) else {}
    stored = _sequence(answer, _REFERENCED)
    failed = _sequence(answer, _FAILED)
    if not stored and not failed:  # no details: the status says it all
        if response.status == 409:
            result.failed += [f"{i.path}: {node.name} refused it (409 Conflict)" for i in batch]
            return
        stored = [{}] * len(batch)
    result.sent += len(stored)
    result.bytes += sum(i.size for i in batch) if not failed else 0
    if failed:
        by_uid = _uids(batch)
        for entry in failed:
            uid = _first(entry.get(_SOP_UID))
            reason = _first(entry.get(_REASON))
            where = by_uid.get(uid, uid or "an instance")
            result.failed.append(f"{where}: {node.name} refused it (failure reason {reason})")


def _file_chunks(item: _Item) -> Iterator[bytes]:
    """The file's bytes, exactly the size announced (a file that changed fails the send)."""
    left = item.size
    with open(item.path, "rb") as fp:
        while left:
            data = fp.read(min(CHUNK, left))
            if not data:
                raise errors.NetError(f"{item.path} became shorter while it was being sent")
            left -= len(data)
            yield data


def _sequence(answer: Any, tag: str) -> list[dict[str, Any]]:
    element = answer.get(tag) if isinstance(answer, dict) else None
    values = element.get("Value") if isinstance(element, dict) else None
    return [v for v in values if isinstance(v, dict)] if isinstance(values, list) else []


def _first(element: Any) -> str:
    values = element.get("Value") if isinstance(element, dict) else None
    return str(values[0]) if isinstance(values, list) and values else ""


def _uids(batch: list[_Item]) -> dict[str, str]:
    """SOP Instance UID to path for the batch's files (read only when the server refused
    some, to say which)."""
    from pydicom import dcmread

    out = {}
    for item in batch:
        try:
            source = io.BytesIO(item.data) if item.data is not None else item.path
            ds = dcmread(source, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
            out[str(ds.SOPInstanceUID)] = item.path
        except Exception:  # a file that does not read: named by its UID, as the server said
            continue
    return out
