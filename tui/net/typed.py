"""Query values as people type them (dates like ``7d`` or ``2024``, modality lists like
``CT,MR``), turned into DICOM matching: one reading for the CLI and the app."""

from __future__ import annotations

import datetime as dt
import re

from tui.errors import UserError

_UNITS = {"d": 1, "w": 7, "m": 30, "y": 365}


def date_range(text: str, today: dt.date | None = None) -> str:
    """The StudyDate key for what was typed: ``20240101``, ``20240101-20241231`` (either end
    may be left open, and either may be a year: ``2024-``, ``2020-2023``), ``2024``,
    ``today``, ``yesterday``, or the last ``7d``, ``4w``, ``6m``, ``1y`` (today included)."""
    typed = text.strip()  # for messages: as the user wrote it
    text = typed.lower().replace(" ", "")
    today = today or dt.date.today()
    if not text:
        return ""
    if text in ("today", "yesterday"):
        return f"{today - dt.timedelta(days=text == 'yesterday'):%Y%m%d}"
    if match := re.fullmatch(r"(\d{1,4})([dwmy])", text):
        days = int(match[1]) * _UNITS[match[2]]
        return f"{today - dt.timedelta(days=max(days, 1) - 1):%Y%m%d}-{today:%Y%m%d}"
    if re.fullmatch(r"\d{4}", text):
        return f"{text}0101-{text}1231"
    if match := re.fullmatch(r"(\d{4}|\d{8})?-(\d{4}|\d{8})?", text):  # years in a range
        low, high = match[1] or "", match[2] or ""
        low = f"{low}0101" if len(low) == 4 else low
        high = f"{high}1231" if len(high) == 4 else high
        text = f"{low}-{high}" if low or high else text
    if re.fullmatch(r"\d{8}|\d{8}-|-\d{8}|\d{8}-\d{8}", text):
        ends = [end for end in text.split("-") if end]
        try:
            first, *last = (dt.datetime.strptime(end, "%Y%m%d").date() for end in ends)
        except ValueError:
            raise UserError(f"date {typed!r}: not a calendar date (YYYYMMDD)") from None
        if last and last[0] < first:
            raise UserError(f"date {typed!r} ends before it starts")
        return text
    raise UserError(
        f"date {typed!r}: use 20240101, 20240101-20241231, 2024, 2024-, today, yesterday, 7d,"
        " 4w, 6m or 1y"
    )


def modalities(text: str) -> str:
    """``CT,MR``, ``ct mr`` or ``CT\\MR`` as DICOM's value list ``CT\\MR``: a study matches
    when it holds any of them (ModalitiesInStudy)."""
    return "\\".join(m for m in re.split(r"[\s,;\\/]+", text.strip().upper()) if m)
