"""What a de-identification is asked to do: the PS3.15 options, the rectangles to
blank, and what may be let through."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Rect = tuple[int, int, int, int]  # x, y, width, height in pixels (columns, rows)


@dataclass(frozen=True)
class Options:
    """The Basic Application Level Confidentiality Profile and its options (PS3.15 E.3).

    ``dates`` is Retain Longitudinal Temporal Information: ``"remove"`` (the Basic
    Profile's action), ``"full"`` (Full Dates Option) or ``"shifted"`` (Modified Dates
    Option: every date and time moved by one offset per patient).
    """

    retain_safe_private: bool = False
    retain_uids: bool = False
    retain_device_identity: bool = False
    retain_institution_identity: bool = False
    retain_patient_characteristics: bool = False
    dates: Literal["remove", "full", "shifted"] = "remove"
    clean_descriptors: bool = False
    clean_structured_content: bool = False
    clean_graphics: bool = False
    blank: tuple[Rect, ...] = ()  # Clean Pixel Data: these rectangles are zeroed
    allow_burned_in: bool = False  # send images that may show burned-in text as they are


# The names the command line and the app use for the options, and the field each sets.
OPTION_NAMES: dict[str, str] = {
    "retain-safe-private": "retain_safe_private",
    "retain-uids": "retain_uids",
    "retain-device": "retain_device_identity",
    "retain-institution": "retain_institution_identity",
    "retain-patient-characteristics": "retain_patient_characteristics",
    "retain-full-dates": "dates",  # dates="full"
    "retain-shifted-dates": "dates",  # dates="shifted"
    "clean-descriptors": "clean_descriptors",
    "clean-structured-content": "clean_structured_content",
    "clean-graphics": "clean_graphics",
}
