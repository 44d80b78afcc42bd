"""DIMSE statuses and command fields, shared by our upper layer (``dul.py``, ``find.py``,
``get.py``) and the pynetdicom paths (``scu.py``, ``server.py``, ``storage.py``).

Kept here rather than taken from ``pynetdicom.status``: importing any part of pynetdicom
loads all of it, and C-FIND must not pay for that. The meanings are those of PS3.7 Annex C
and PS3.4 (C.4.1.1.4 C-FIND, C.4.2.1.5 C-MOVE, C.4.3.1.4 C-GET, B.2.3 Storage), worded as
pynetdicom words them.
"""

from __future__ import annotations

from dataclasses import dataclass

# Command fields (PS3.7 E.1)
C_STORE_RQ, C_STORE_RSP = 0x0001, 0x8001
C_GET_RQ, C_GET_RSP = 0x0010, 0x8010
C_FIND_RQ, C_FIND_RSP = 0x0020, 0x8020
C_CANCEL_RQ = 0x0FFF
NO_DATASET = 0x0101  # CommandDataSetType: no dataset follows

# Statuses
SUCCESS = 0x0000
CONTINUING = 0xFF00  # Pending: a match (or a sub-operation's progress) in this response
PENDING = frozenset({CONTINUING, 0xFF01})  # more responses follow
CANCELLED = 0xFE00  # the final status of a cancelled request
NOT_AUTHORISED = 0x0124
SOP_CLASS_NOT_SUPPORTED = 0x0122  # C-STORE: refused (PS3.7 C.4)
OUT_OF_RESOURCES = 0xA700
IDENTIFIER_MISMATCH = 0xA900  # Identifier does not match SOP Class
UNABLE_TO_PROCESS = 0xC000  # C-FIND, C-MOVE, C-GET
CANNOT_UNDERSTAND = 0xC000  # C-STORE: the same code, Storage's meaning
SUB_OPERATIONS_FAILED = 0xB000  # C-MOVE, C-GET: one or more sub-operations failed

# Sub-operation counts in C-MOVE and C-GET responses (their command elements' tags)
REMAINING, COMPLETED, FAILED, WARNING = 0x00001020, 0x00001021, 0x00001022, 0x00001023
COUNT_TAGS = (REMAINING, COMPLETED, FAILED, WARNING)


@dataclass(frozen=True)
class Statuses:
    """What a service's statuses mean: single codes, then ranges of codes that share one."""

    codes: dict[int, tuple[str, str]]  # code -> (category, meaning)
    ranges: tuple[tuple[int, int, str], ...] = ()  # (first, last, meaning)

    def meaning(self, code: int) -> tuple[str, str] | None:
        if code in self.codes:
            return self.codes[code]
        text = next((m for first, last, m in self.ranges if first <= code <= last), None)
        return None if text is None else (category(code), text)


GENERAL = Statuses(
    {
        0x0000: ("Success", ""),
        0x0105: ("Failure", "No Such Attribute"),
        0x0106: ("Failure", "Invalid Attribute Value"),
        0x0107: ("Warning", "Attribute List Error"),
        0x0110: ("Failure", "Processing Failure"),
        0x0111: ("Failure", "Duplication SOP Instance"),
        0x0112: ("Failure", "No Such SOP Instance"),
        0x0113: ("Failure", "No Such Event Type"),
        0x0114: ("Failure", "No Such Argument"),
        0x0115: ("Failure", "Invalid Argument Value"),
        0x0116: ("Warning", "Attribute Value Out of Range"),
        0x0117: ("Failure", "Invalid Object Instance"),
        0x0118: ("Failure", "No Such SOP Class"),
        0x0119: ("Failure", "Class-Instance Conflict"),
        0x0120: ("Failure", "Missing Attribute"),
        0x0121: ("Failure", "Missing Attribute Value"),
        0x0122: ("Failure", "Refused: SOP Class Not Supported"),
        0x0123: ("Failure", "No Such Action"),
        0x0124: ("Failure", "Refused: Not Authorised"),
        0x0210: ("Failure", "Duplicate Invocation"),
        0x0211: ("Failure", "Unrecognised Operation"),
        0x0212: ("Failure", "Mistyped Argument"),
        0x0213: ("Failure", "Resource Limitation"),
        0xFE00: ("Cancel", ""),
    }
)
_UNABLE = ((0xC000, 0xCFFF, "Unable to Process"),)
FIND = Statuses(
    {
        0xA700: ("Failure", "Refused: Out of Resources"),
        0xA900: ("Failure", "Identifier Does Not Match SOP Class"),
        0xFF00: ("Pending", "Matches are continuing, current match supplied"),
        0xFF01: ("Pending", "Matches are continuing, warning"),
    },
    _UNABLE,
)
_RETRIEVE = {
    0xA701: ("Failure", "Refused: Out of Resources, Unable to Calculate Number of Matches"),
    0xA702: ("Failure", "Refused: Out of Resources, Unable to Perform Sub-operations"),
    0xA900: ("Failure", "Identifier Does Not Match SOP Class"),
    0xB000: ("Warning", "Sub-operations Complete, One or More Failures or Warnings"),
    0xFF00: ("Pending", "Sub-operations are Continuing"),
}
GET = Statuses(dict(_RETRIEVE), _UNABLE)
MOVE = Statuses({**_RETRIEVE, 0xA801: ("Failure", "Refused: Move Destination Unknown")}, _UNABLE)
STORAGE = Statuses(
    {
        0xB000: ("Warning", "Coercion of Data Elements"),
        0xB006: ("Warning", "Elements Discarded"),
        0xB007: ("Warning", "Data Set Does Not Match SOP Class"),
    },
    (
        (0xA700, 0xA7FF, "Refused: Out of Resources"),
        (0xA900, 0xA9FF, "Error: Data Set Does Not Match SOP Class"),
        (0xC000, 0xCFFF, "Error: Cannot Understand"),
    ),
)


def category(code: int) -> str:
    """``Success``, ``Warning``, ``Failure``, ``Cancel``, ``Pending`` or ``Unknown``
    (PS3.7 C.1 and the service classes' ranges)."""
    if code in GENERAL.codes:
        return GENERAL.codes[code][0]
    if code in PENDING:
        return "Pending"
    if 0xA000 <= code <= 0xAFFF or 0xC000 <= code <= 0xCFFF:
        return "Failure"
    if 0xB000 <= code <= 0xBFFF or code == 0x0001:
        return "Warning"
    return "Unknown"


def status_text(code: int, service: Statuses | None = None) -> str:
    """``0xA801 Failure: Refused: Move Destination Unknown``: a status and its meaning for
    ``service`` (:data:`FIND`, :data:`GET`, :data:`MOVE`, :data:`STORAGE`), else its general
    meaning, else only its category."""
    kind, text = (
        (service.meaning(code) if service else None)
        or GENERAL.meaning(code)
        or (category(code), "")
    )
    return f"0x{code:04X} {kind}" + (f": {text}" if text else "")
