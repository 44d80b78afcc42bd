"""The whole header of one file, as text or in the DICOM JSON model (PS3.18 F)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from tui.archive.header import HeaderError, read_dataset
from tui.errors import UserError

_BULK_BYTES = 1024  # binary values larger than this are left out of the JSON


def read_header(path: str) -> Dataset:
    """Read every element of ``path`` before the pixel data.

    Raises
    ------
    UserError
        If the file cannot be read or is not DICOM.
    """
    try:
        with open(path, "rb") as fp:
            return read_dataset(fp)
    except HeaderError as exc:
        raise UserError(f"{path}: {exc}") from None
    except OSError as exc:
        raise UserError(f"{path}: {exc.strerror}") from None
    except Exception as exc:  # pydicom raises many types for malformed files
        raise UserError(f"{path}: malformed DICOM: {exc}") from None


def to_text(ds: Dataset) -> str:
    """The file meta and dataset as pydicom prints them (private tags named by creator)."""
    parts = []
    meta = getattr(ds, "file_meta", None)
    if meta:
        parts.append(str(meta))
    parts.append(str(ds))
    return "\n".join(parts)


def to_json(ds: Dataset, path: str) -> dict[str, Any]:
    """The DICOM JSON model; large binary values become a BulkDataURI to the file."""
    uri = Path(path).resolve().as_uri()

    def bulk(element: DataElement) -> str:
        return f"{uri}#{element.tag.group:04X}{element.tag.element:04X}"

    try:
        return ds.to_json_dict(_BULK_BYTES, bulk)
    except Exception as exc:
        raise UserError(f"{path}: cannot express as DICOM JSON: {exc}") from None
