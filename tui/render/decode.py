"""Read one frame's stored values, straight from the recorded offsets when possible.

Uncompressed little-endian frames are read with one ``readinto`` at the offset the
archive recorded at import: no header parsing. Everything else (compressed syntaxes,
big endian, deflate, colour, odd bit depths) goes through ``pydicom.pixels``.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.pixels import pixel_array
from pydicom.uid import UID

from tui.archive.header import Capped
from tui.errors import UserError
from tui.tables import printable

_NATIVE_LE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}
_DEFLATED = "1.2.840.10008.1.2.1.99"
# pylibjpeg-rle panics on some broken RLE data (a Rust panic: its message goes straight to
# the terminal, past any handler); pydicom's own RLE decoder raises instead, in about 7x
# the time (22 ms for a 512 x 512 CT slice).
_PLUGINS = {"1.2.840.10008.1.2.5": "pydicom"}


class DecodeError(UserError):
    """The pixel data of one image cannot be read or decoded; the message says why."""


@dataclass(frozen=True)
class PixelSource:
    """Where and how one instance's pixels are stored, as the archive indexed them."""

    path: str
    sop_uid: str
    transfer_syntax: str
    rows: int
    columns: int
    frames: int
    samples: int
    photometric: str
    bits_allocated: int | None
    bits_stored: int | None
    pixel_representation: int | None
    pixel_offset: int | None
    pixel_length: int | None

    @classmethod
    def from_row(cls, row: Any) -> PixelSource:
        """From an ``instance`` row of the index (a mapping of column names)."""
        return cls(
            path=row["path"],
            sop_uid=row["sop_uid"],
            transfer_syntax=row["transfer_syntax"],
            rows=row["rows"] or 0,
            columns=row["columns"] or 0,
            frames=row["frames"] or 1,
            samples=row["samples_per_pixel"] or 1,
            photometric=row["photometric"],
            bits_allocated=row["bits_allocated"],
            bits_stored=row["bits_stored"],
            pixel_representation=row["pixel_representation"],
            pixel_offset=row["pixel_offset"],
            pixel_length=row["pixel_length"],
        )

    @property
    def direct(self) -> bool:
        """Can frames be read at the recorded offset without a decoder?"""
        return (
            self.transfer_syntax in _NATIVE_LE
            and self.rows > 0
            and self.columns > 0
            and self.samples == 1
            and self.bits_allocated in (8, 16, 32)
            and self.bits_stored is not None
            and self.pixel_representation is not None
            and not (self.pixel_representation and self.bits_stored != self.bits_allocated)
            and self.pixel_offset is not None
            and (self.pixel_length or -1) >= self.frame_bytes * self.frames
        )

    @property
    def dtype(self) -> np.dtype:
        kind = "i" if self.pixel_representation else "u"
        return np.dtype(f"<{kind}{(self.bits_allocated or 16) // 8}")

    @property
    def frame_bytes(self) -> int:
        return self.rows * self.columns * ((self.bits_allocated or 16) // 8)


def read_frame(source: PixelSource, index: int = 0) -> np.ndarray:
    """Stored values of frame ``index``: (rows, columns), or (rows, columns, 3) for colour
    (already RGB for YBR). Only that frame is read from the file.

    Raises
    ------
    DecodeError
        If the file is missing, truncated or its pixel data cannot be decoded.
    """
    if not 0 <= index < source.frames:
        raise DecodeError(f"{source.path}: no frame {index + 1} (it has {source.frames})")
    if source.rows <= 0 or source.columns <= 0:
        raise DecodeError(f"{source.path}: no pixels ({source.rows} x {source.columns})")
    if source.direct:
        _check_fits(source, index)  # before allocating: a broken header may ask for gigabytes
        out = np.empty((source.rows, source.columns), source.dtype)
        read_into(source, out, index)
        return out
    frame = _decoded(source, index)
    if frame.ndim > 3 or frame.shape[:2] != (source.rows, source.columns):  # a broken header
        raise DecodeError(
            f"{source.path}: the pixel data decodes to {' x '.join(map(str, frame.shape))},"
            f" not the {source.rows} x {source.columns} its header says"
        )
    return frame


def read_into(source: PixelSource, out: np.ndarray, index: int = 0) -> None:
    """Read a directly readable frame into ``out`` (C-contiguous, its shape and dtype)."""
    try:
        with open(source.path, "rb", buffering=0) as fp:
            fp.seek(source.pixel_offset + index * source.frame_bytes)  # type: ignore[operator]
            got = fp.readinto(out.data.cast("B"))
    except OSError as exc:
        raise DecodeError(f"{source.path}: {exc.strerror or exc}") from None
    if got != source.frame_bytes:
        raise DecodeError(f"{source.path}: pixel data truncated")
    if source.bits_stored and source.bits_stored < (source.bits_allocated or 16):
        out &= (1 << source.bits_stored) - 1  # bits above BitsStored may hold overlays


def _check_fits(source: PixelSource, index: int) -> None:
    """Refuse a frame that would end past the end of its file."""
    end = (source.pixel_offset or 0) + (index + 1) * source.frame_bytes
    try:
        size = os.stat(source.path).st_size
    except OSError as exc:
        raise DecodeError(f"{source.path}: {exc.strerror or exc}") from None
    if end > size:
        raise DecodeError(f"{source.path}: pixel data truncated")


def _decoded(source: PixelSource, index: int) -> np.ndarray:
    if not os.path.exists(source.path):
        raise DecodeError(f"{source.path}: the file is gone")
    frame = index if source.frames > 1 else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if source.transfer_syntax in (_DEFLATED, ""):
                return _whole_dataset(source.path, frame)
            try:
                plugin = _PLUGINS.get(source.transfer_syntax, "")
                return pixel_array(source.path, index=frame, decoding_plugin=plugin)
            except Exception as first:
                # pydicom's file decoder reads the pixel data element's header as the
                # transfer syntax encodes it; dcmread follows what the file really has
                # (SC_rgb_jpeg.dcm: an implicit VR dataset under JPEG Baseline).
                try:
                    return _whole_dataset(source.path, frame)
                except Exception:
                    raise first from None
    except Exception as exc:  # decoders raise many types
        syntax = UID(source.transfer_syntax).name if source.transfer_syntax else "unknown syntax"
        # Decoders quote the file's values: shown, never obeyed.
        message = printable(str(exc).splitlines()[0]) if str(exc) else type(exc).__name__
        raise DecodeError(f"{source.path}: cannot decode ({syntax}): {message}") from None


def _whole_dataset(path: str, frame: int | None) -> np.ndarray:
    """Deflated files (the decoders read raw bytes), old files without a transfer syntax
    (ACR-NEMA style: implicit VR little endian) and files whose encoding differs from
    their transfer syntax's are read whole by pydicom."""
    with open(path, "rb") as fp:
        ds = dcmread(Capped(fp), force=True)
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2")
    ds.pixel_array_options(decoding_plugin=_PLUGINS.get(ds.file_meta.TransferSyntaxUID, ""))
    pixels = ds.pixel_array
    return pixels if frame is None else pixels[frame]


@lru_cache(maxsize=64)
def display_header(path: str) -> Dataset:
    """The header attributes display needs (LUTs, windows, palette), read once per file,
    without private elements (a vendor's can be most of a header). A top-level value
    pydicom cannot convert (a broken VR) is left out, as the index leaves it out: display
    then reads what is there without a care.

    Raises
    ------
    DecodeError
        If the file cannot be read.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with open(path, "rb") as fp:
                ds = dcmread(Capped(fp), stop_before_pixels=True, force=True)
            for tag in list(ds.keys()):
                if tag.is_private:  # display reads none, and converting them cost the most
                    del ds[tag]
                    continue
                try:
                    ds[tag]  # pydicom converts a value when it is first asked for
                except Exception:
                    del ds[tag]
            return ds
    except Exception as exc:
        message = printable(" ".join(str(exc).split()))
        raise DecodeError(f"{path}: cannot read the header: {message}") from None
