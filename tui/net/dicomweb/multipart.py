"""A streaming reader of ``multipart/related`` bodies (RFC 2046 5.1), as WADO-RS sends them.

The body is read in chunks of about 1 MiB and each part is handed over chunk by chunk as it
comes, so memory stays flat whatever the size of a part and time grows linearly with the
bytes: the delimiter is looked for with :meth:`bytes.find` from where the last search
stopped (only the few bytes that could begin a delimiter split between two reads are looked
at twice), and nothing is joined into a whole part. A part is ``finish``-ed only once the
delimiter after it has come: a body cut short leaves its last part ``discard``-ed, never
finished.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol

CHUNK = 1 << 20  # bytes asked of the connection per read
MAX_HEADERS = 1 << 16  # a part's headers longer than this are not headers

Read = Callable[[int], bytes]  # up to n bytes of the body; b"" at its end


class MultipartError(ValueError):
    """The body is not ``multipart/related`` as announced, or it ended before its closing
    delimiter (the connection dropped, or the server cut it short)."""


class PartSink(Protocol):
    """Where one part goes: its bytes as they come, then ``finish`` (the whole part came)
    or ``discard`` (it never will)."""

    def write(self, data: memoryview) -> None: ...

    def finish(self) -> object: ...

    def discard(self) -> None: ...


OpenPart = Callable[[dict[str, str]], PartSink]  # a part's headers (lower-case names) -> sink


def boundary_of(content_type: str) -> bytes:
    """The ``boundary`` parameter of a ``multipart/related`` Content-Type.

    Raises
    ------
    MultipartError
        When the type is not multipart or names no boundary.
    """
    if not content_type.lower().startswith("multipart/"):
        raise MultipartError(f"the answer is {content_type or 'untyped'}, not multipart")
    found = re.search(r';\s*boundary\s*=\s*("([^"]+)"|[^;\s]+)', content_type, re.IGNORECASE)
    if not found:
        raise MultipartError("the multipart answer names no boundary")
    boundary = found.group(2) or found.group(1)
    if not 0 < len(boundary) <= 200:
        raise MultipartError("the multipart boundary is not 1 to 200 characters")
    return boundary.encode("latin-1")


def read_multipart(read: Read, boundary: bytes, open_part: OpenPart, chunk: int = CHUNK) -> int:
    """Read a multipart body from ``read`` to its closing delimiter; return its part count.

    Parameters
    ----------
    read
        Returns up to ``n`` more bytes of the body (fewer is fine), ``b""`` at its end.
    boundary
        The Content-Type's boundary (:func:`boundary_of`).
    open_part
        Called with each part's headers; the sink it returns gets the part's bytes.
    chunk
        Bytes asked of ``read`` at a time.

    Raises
    ------
    MultipartError
        The body ended before its closing delimiter, or is not multipart. The part being
        read is discarded; the parts before it were finished.
    """
    reader = _Reader(read, boundary, chunk)
    reader.skip_preamble()
    count = 0
    while not reader.closing():
        headers = reader.headers()
        sink = open_part(headers)
        try:
            reader.body(sink)
        except BaseException:
            sink.discard()
            raise
        sink.finish()
        count += 1
    return count


class _Reader:
    """The buffer and the position in it; ``buf[pos:]`` is what is not consumed yet."""

    def __init__(self, read: Read, boundary: bytes, chunk: int) -> None:
        self._read = read
        self._chunk = chunk
        self.delimiter = b"\r\n--" + boundary
        # A leading CRLF makes the first delimiter, at the very start, look like the others.
        self.buf = b"\r\n"
        self.pos = 0

    def more(self, what: str) -> None:
        """Append the next read to what is left of the buffer (a few bytes at most, but for
        headers still arriving); raise when the body has ended."""
        data = self._read(self._chunk)
        if not data:
            raise MultipartError(f"the body ended {what}: the connection dropped or was cut short")
        self.buf = self.buf[self.pos :] + data if self.pos < len(self.buf) else data
        self.pos = 0

    def skip_preamble(self) -> None:
        while True:
            found = self.buf.find(self.delimiter, self.pos)
            if found >= 0:
                self.pos = found + len(self.delimiter)
                return
            self.pos = max(self.pos, len(self.buf) - len(self.delimiter) + 1)
            self.more("before its first part")

    def closing(self) -> bool:
        """After a delimiter: whether it is the closing one (``--`` follows)."""
        while len(self.buf) - self.pos < 2:
            self.more("after a part, before its closing delimiter")
        return self.buf[self.pos : self.pos + 2] == b"--"

    def headers(self) -> dict[str, str]:
        """The part's headers: from the end of the delimiter line to the empty line."""
        while True:
            end = self.buf.find(b"\r\n\r\n", self.pos)
            if end >= 0:
                break
            if len(self.buf) - self.pos > MAX_HEADERS:
                raise MultipartError("a part's headers do not end: not a multipart body")
            self.more("in a part's headers")
        block = self.buf[self.pos : end].decode("latin-1")
        self.pos = end + 4
        # The first line is the rest of the delimiter line (transport padding): skipped.
        headers = {}
        for line in block.split("\r\n")[1:]:
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        return headers

    def body(self, sink: PartSink) -> None:
        """Hand the part's bytes to ``sink`` up to the next delimiter, chunk by chunk."""
        delimiter = self.delimiter
        keep = len(delimiter) - 1  # the bytes that could begin a delimiter split by a read
        scan = self.pos
        while True:
            found = self.buf.find(delimiter, scan)
            if found >= 0:
                if found > self.pos:
                    sink.write(memoryview(self.buf)[self.pos : found])
                self.pos = found + len(delimiter)
                return
            safe = len(self.buf) - keep
            if safe > self.pos:
                sink.write(memoryview(self.buf)[self.pos : safe])
                self.pos = safe
            self.more("in the middle of a part")
            scan = 0  # only the kept tail is looked at again
