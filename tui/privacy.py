"""Masking identifying text on screen (``--privacy``): names, IDs and birth dates, in the
app and in what the command line prints."""

from __future__ import annotations

from typing import Any

IDENTIFYING = ("PatientName", "PatientID", "PatientBirthDate")


def mask(value: Any) -> str:
    """Keep the first character, so a reader can still tell rows apart."""
    text = "" if value is None else str(value)
    return (text[:1] + "•••") if text else ""


def shown(row: dict[str, Any], key: str, private: bool) -> str:
    value = row.get(key)
    if private and key in IDENTIFYING:
        return mask(value)
    if isinstance(value, list):
        return "\\".join(str(v) for v in value)
    return "" if value is None else str(value)


def masked(row: dict[str, Any], private: bool = True) -> dict[str, Any]:
    """``row`` with its identifying values masked (when ``private``)."""
    if not private:
        return row
    return {k: mask(v) if k in IDENTIFYING and v else v for k, v in row.items()}
