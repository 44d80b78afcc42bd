"""DICOM print: Basic Grayscale Print Management as SCU (pynetdicom).

:mod:`.job` holds what a job is (films, settings, the result) and the layouts, :mod:`.scu`
talks to the printer, :mod:`.words` says the printer's statuses in words. pynetdicom and
pydicom load only when a printer is reached.
"""

from __future__ import annotations

from tui.net.printing.job import (
    LAYOUTS,
    Film,
    FilmSettings,
    PrinterEvent,
    PrintError,
    PrinterStatus,
    PrintImage,
    PrintResult,
    auto_layout,
    lay_out,
    parse_layout,
    result_json,
    settings_for,
)
from tui.net.printing.scu import print_films, printer_status

__all__ = [
    "LAYOUTS", "Film", "FilmSettings", "PrintError", "PrintImage", "PrintResult",
    "PrinterEvent", "PrinterStatus", "auto_layout", "lay_out", "parse_layout", "print_films",
    "printer_status", "result_json", "settings_for",
]  # fmt: skip
