"""The whole header of one file, as text or in the DICOM JSON model (PS3.18 F)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydicom.datadict import private_dictionary_description
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import Tag

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
    """The file meta and dataset, one element a line, sequences indented.

    Private elements are labelled with their creator (and their name where pydicom's
    private dictionary knows it); long values are shortened as pydicom shortens them.
    """
    lines: list[str] = []
    meta = getattr(ds, "file_meta", None)
    if meta:
        _describe(meta, "", lines)
    _describe(ds, "", lines)
    return "\n".join(lines)


def _describe(ds: Dataset, indent: str, lines: list[str]) -> None:
    for element in ds:
        name = _name(ds, element)
        if element.VR == "SQ":
            lines.append(f"{indent}{element.tag} {name}  {len(element.value)} item(s)")
            for number, item in enumerate(element.value, 1):
                lines.append(f"{indent}  > item {number}")
                _describe(item, indent + "    ", lines)
        else:
            lines.append(f"{indent}{element.tag} {name:<40} {element.VR}: {element.repval}")


def _name(ds: Dataset, element: DataElement) -> str:
    tag = element.tag
    if not tag.is_private or tag.is_private_creator:
        return element.name
    creator_element = ds.get(Tag(tag.group, tag.element >> 8))
    creator = str(creator_element.value).strip() if creator_element is not None else "?"
    try:
        return f"[{creator}] {private_dictionary_description(tag, creator)}"
    except KeyError:
        return f"[{creator}] private"


def to_json(ds: Dataset, path: str) -> dict[str, Any]:
    """The DICOM JSON model; large binary values become a BulkDataURI to the file.

    An element whose value does not fit its VR (a private DS holding text, say) is
    kept with its values as strings rather than failing the whole header.
    """
    uri = Path(path).resolve().as_uri()

    def bulk(element: DataElement) -> str:
        return f"{uri}#{element.tag.group:04X}{element.tag.element:04X}"

    return _json_dataset(ds, bulk)


def _json_dataset(ds: Dataset, bulk: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for element in ds:
        key = f"{element.tag.group:04X}{element.tag.element:04X}"
        if element.VR == "SQ":
            items = [_json_dataset(item, bulk) for item in element.value]
            out[key] = {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
            continue
        try:
            out[key] = element.to_json_dict(
                bulk_data_element_handler=bulk, bulk_data_threshold=_BULK_BYTES
            )
        except Exception:
            value = element.value
            values = value if isinstance(value, MultiValue | list) else [value]
            out[key] = {"vr": element.VR, "Value": [str(v) for v in values]}
    return out
