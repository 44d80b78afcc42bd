"""Print Management's statuses and the printer's status information, in words.

The statuses are those of PS3.4 Annex H (H.4.1.2 to H.4.3.1: film session, film box and image
box; Basic Print Management's general ones are in :data:`tui.net.status.GENERAL`). The
printer's status information (PrinterStatusInfo (2110,0020), and a print job's
ExecutionStatusInfo (2100,0030)) takes the defined terms of PS3.3 C.13.9.1; a printer may
send others of its own (its conformance statement says what they mean): they are shown as
sent.
"""

from __future__ import annotations

import re

from tui.net.status import Statuses, status_text

PRINT = Statuses(
    {
        0xB600: ("Warning", "Memory allocation not supported"),
        0xB601: ("Warning", "Film session printing (collation) is not supported"),
        0xB602: ("Warning", "Film session has no image boxes (empty page)"),
        0xB603: ("Warning", "Film box has no image boxes (empty page)"),
        0xB604: ("Warning", "Image larger than its image box: demagnified"),
        0xB605: ("Warning", "Min or Max Density outside the printer's range: its own used"),
        0xB609: ("Warning", "Image larger than its image box: cropped to fit"),
        0xB60A: ("Warning", "Image larger than its image box: decimated to fit"),
        0xC600: ("Failure", "Film session has no film boxes"),
        0xC601: ("Failure", "Cannot create the print job: the print queue is full"),
        0xC602: ("Failure", "Cannot create the print job: the print queue is full"),
        0xC603: ("Failure", "Image larger than its image box"),
        0xC605: ("Failure", "Not enough memory in the printer to store the image"),
        0xC613: ("Failure", "Combined print image larger than its image box"),
        0xC616: ("Failure", "An earlier film box was not printed, and it takes one at a time"),
    }
)


# A peer that takes the association but not Basic Grayscale Print Management (a storage SCP
# saved as a printer, a colour-only printer): said by the print SCU and by ``node test``.
NO_GRAYSCALE_PRINT = "refuses Basic Grayscale Print Management, so it cannot print from here"
NO_GRAYSCALE_PRINT_FIX = (
    "check that the node is the printer's DICOM print port and AE title; a colour-only "
    "printer needs Basic Color Print Management, which pacs-tui does not send"
)


def print_status(code: int) -> str:
    """``0xC603 Failure: Image larger than its image box``."""
    return status_text(code, PRINT)


# PS3.3 C.13.9.1, worded to follow "the printer": what a user can do something about.
_INFO = {
    "NORMAL": "is ready",
    "BAD RECEIVE MGZ": "has a problem with its film receive magazine",
    "BAD SUPPLY MGZ": "has a problem with a film supply magazine",
    "CALIBRATING": "is calibrating itself and should be ready shortly",
    "CALIBRATION ERR": "found a calibration error: films may not be at their best",
    "CHECK CHEMISTRY": "found a problem with its processor chemicals",
    "CHECK SORTER": "has an error in its film sorter",
    "CHEMICALS EMPTY": "has no processing chemicals left",
    "CHEMICALS LOW": "is low on processing chemicals",
    "COVER OPEN": "has a cover, drawer or door open",
    "ELEC CONFIG ERR": "is configured wrongly for this job",
    "ELEC DOWN": "is down with an electrical hardware problem",
    "ELEC SW ERROR": "is down with a software error",
    "EXPOSURE FAILURE": "has an exposure device failure",
    "FILM JAM": "has a film jam",
    "FILM TRANSP ERR": "has a film transport malfunction",
    "FINISHER EMPTY": "has an empty finisher",
    "FINISHER ERROR": "has a finisher error",
    "FINISHER LOW": "has a finisher low on supplies",
    "NO RECEIVE MGZ": "has no film receive magazine",
    "NO RIBBON": "needs a new ribbon cartridge",
    "NO SUPPLY MGZ": "has not the film supply magazine this job asks for",
    "CHECK PRINTER": "needs an operator before it can print",
    "CHECK PROC": "has a processor that needs an operator",
    "PRINTER DOWN": "is down",
    "PRINTER BUSY": "is busy and should be ready without help",
    "PRINT BUFF FULL": "has a full print buffer: try again later",
    "PRINTER INIT": "is warming up",
    "PRINTER OFFLINE": "was taken offline by an operator",
    "PROC DOWN": "has its processor down",
    "PROC INIT": "has its processor warming up",
    "PROC OVERFLOW FL": "has processor chemicals near the overflow mark",
    "PROC OVERFLOW HI": "has processor chemicals at the overflow mark",
    "QUEUED": "has the job in its queue",
    "RECEIVER FULL": "has a full film receive magazine",
    "REQ MED NOT INST": "has not the medium asked for loaded (an operator can load it)",
    "REQ MED NOT AVAI": "does not have the medium asked for",
    "RIBBON ERROR": "has a problem with its print ribbon",
    "SUPPLY EMPTY": "is out of film",
    "SUPPLY LOW": "is low on film",
    "UNKNOWN": "has an unspecified problem",
}
_MEDIA = {
    "": "film",
    "BLUE": "blue film",
    "CLR": "clear film",
    "PAPR": "paper",
    "TRANS": "transparencies",
}
_MAGAZINE = re.compile(r"^(EMPTY|LOW) (\d+X\d+|A4)(?: (BLUE|CLR|PAPR|TRANS))?$")


def info_words(info: str) -> str:
    """A PrinterStatusInfo term as a phrase after "the printer": ``SUPPLY EMPTY`` -> "is out
    of film", ``EMPTY 14X17 BLUE`` -> "is out of 14X17 blue film"; an unknown term as sent."""
    term = " ".join(info.upper().split())
    if term in _INFO:
        return _INFO[term]
    magazine = _MAGAZINE.match(term)
    if magazine:
        state, size, medium = magazine.groups()
        what = f"{size} {_MEDIA[medium or '']}"
        return f"is out of {what}" if state == "EMPTY" else f"is low on {what}"
    return f"says {info}" if info else "gives no reason"


def status_words(status: str, info: str) -> str:
    """A printer's status and its information in words: "is out of film (SUPPLY EMPTY)"."""
    if not info or info.upper() == status.upper():
        return {"NORMAL": "is ready", "WARNING": "warns", "FAILURE": "has failed"}.get(
            status.upper(), f"says {status}"
        ) + (f" ({status})" if status and status.upper() != "NORMAL" else "")
    return f"{info_words(info)} ({info})"


# N-EVENT-REPORT event types (PS3.4 H.4.6.2.1: Printer; H.4.5.2.1: Print Job).
PRINTER_EVENTS = {1: "NORMAL", 2: "WARNING", 3: "FAILURE"}
JOB_EVENTS = {1: "PENDING", 2: "PRINTING", 3: "DONE", 4: "FAILURE"}


def job_words(event: str, info: str) -> str:
    """A print job's N-EVENT-REPORT in words: "the print job failed: the printer is out of
    film (SUPPLY EMPTY)"; its ExecutionStatusInfo takes the printer's terms (C.13.9.1)."""
    state = {
        "PENDING": "is pending",
        "PRINTING": "is printing",
        "DONE": "is done",
        "FAILURE": "failed",
    }.get(event, f"says {event}")
    text = f"the print job {state}"
    if info and info.strip().upper() != "NORMAL":
        text += f": the printer {info_words(info)} ({info.strip()})"
    return text
