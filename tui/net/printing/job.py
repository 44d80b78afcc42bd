"""What a print job is: the films, their settings, and what the printer answered.

These hold numpy arrays and plain values only, so the command line and the app build them
from what :mod:`tui.render` drew without :mod:`tui.net` and :mod:`tui.render` importing each
other. :func:`lay_out` puts images on films as the contact sheet does, :func:`settings_for`
takes a printer node's defaults, :func:`result_json` is what ``print --json`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from tui.errors import UserError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from tui.net.nodes import Node

# Layouts (columns, rows) in the order auto_layout tries them: the first that holds them all.
LAYOUTS: tuple[tuple[int, int], ...] = (
    (1, 1),
    (1, 2),
    (2, 2),
    (2, 3),
    (3, 3),
    (3, 4),
    (3, 5),
    (4, 5),
)
MAX_COPIES = 99  # as node add and the app take them
MAX_DENSITY = 65535  # MaxDensity and MinDensity are US
LABEL = "pacs-tui"  # the film session's label when none is given: never patient text


class PrintError(UserError):
    """A print job failed in a way the user (or the printer's admin) can do something about.

    ``result``: what was printed before it failed (None when no film was), so a caller can
    show it (``print --json``) beside the error.
    """

    def __init__(self, message: str, result: PrintResult | None = None) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class FilmSettings:
    """What the film session and film box ask for; "" and 0 leave the printer's default."""

    film_size: str = ""  # FilmSizeID, e.g. 14INX17IN
    orientation: str = ""  # FilmOrientation: PORTRAIT or LANDSCAPE
    medium: str = ""  # MediumType: PAPER, CLEAR FILM, BLUE FILM...
    destination: str = ""  # FilmDestination: MAGAZINE, PROCESSOR, BIN_i
    magnification: str = ""  # MagnificationType: REPLICATE, BILINEAR, CUBIC, NONE
    max_density: int = 0
    min_density: int = 0
    copies: int = 1  # NumberOfCopies
    bits: int = 0  # 0: 12 bits where the printer takes them, else 8; or 8, or 12
    presentation_lut: bool = True  # an IDENTITY Presentation LUT where the printer has the class
    label: str = LABEL  # FilmSessionLabel (never patient text)
    annotation_format: str = ""  # AnnotationDisplayFormatID: printer-specific; "" asks for none


@dataclass(frozen=True)
class PrintImage:
    """One image box's picture: MONOCHROME2 P-values (0 is black), at 8 and maybe 12 bits."""

    grey8: np.ndarray  # uint8 (rows, columns)
    grey12: np.ndarray | None = None  # uint16 0..4095, the same view at 12 bits (None: 8 only)
    aspect: tuple[int, int] = (1, 1)  # PixelAspectRatio row:column (pixels are not resampled)


@dataclass(frozen=True)
class Film:
    """One film: its images in box order (at most columns * rows) and its annotation text."""

    images: list[PrintImage]
    columns: int
    rows: int
    annotations: list[str] = field(default_factory=list)  # the annotation boxes', in order

    @property
    def display_format(self) -> str:
        return f"STANDARD\\{self.columns},{self.rows}"


@dataclass
class PrinterStatus:
    """The printer's answer to N-GET: its status, information, and both in words."""

    status: str  # NORMAL, WARNING or FAILURE
    info: str  # PrinterStatusInfo as sent (e.g. SUPPLY EMPTY)
    words: str  # "is out of film (SUPPLY EMPTY)": follows the printer's name
    attributes: dict[str, Any]  # what it answered, DICOM keywords as keys


@dataclass
class PrinterEvent:
    """An N-EVENT-REPORT from the printer or from a print job, as it came."""

    source: str  # "printer" or "print job"
    event: str  # NORMAL, WARNING, FAILURE (printer); PENDING, PRINTING, DONE, FAILURE (job)
    info: str  # PrinterStatusInfo or ExecutionStatusInfo
    words: str


@dataclass
class PrintResult:
    """What printing did, and what the printer answered."""

    films: int = 0  # films printed (N-ACTION answered with success or a warning)
    copies: int = 1  # NumberOfCopies as the printer took it
    bits: int = 8  # 8 or 12, as sent
    presentation_lut: bool = False  # whether one was sent
    annotation_boxes: int = 0  # annotation boxes filled (0: the printer has none)
    session: dict[str, Any] = field(default_factory=dict)  # its film session answer
    film_boxes: list[dict[str, Any]] = field(default_factory=list)  # its film box answers
    warnings: list[str] = field(default_factory=list)
    events: list[PrinterEvent] = field(default_factory=list)
    associations: int = 0  # how many it took (each retry adds one)
    printer: PrinterStatus | None = None
    cancelled: bool = False  # stopped by the caller: films not printed are in warnings
    total: int = 0  # films asked for
    start: int = 0  # the first film sent (0-based): films before it were left out

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)


# -- laying images out ------------------------------------------------------------------------


def auto_layout(count: int) -> tuple[int, int]:
    """The smallest layout of :data:`LAYOUTS` that holds ``count`` images, else the largest."""
    return next(((c, r) for c, r in LAYOUTS if c * r >= count), LAYOUTS[-1])


def parse_layout(text: str) -> tuple[int, int] | None:
    """``auto`` (or nothing): None; ``C,R`` or ``CxR``: (columns, rows), each 1 to 10.

    Raises
    ------
    PrintError
        For anything else, in words.
    """
    value = text.strip().lower()
    if value in ("", "auto"):
        return None
    try:
        columns, rows = (int(v) for v in value.replace("x", ",").split(","))
    except ValueError:
        raise PrintError(f"layout {text.strip()!r}: auto, or COLUMNS,ROWS as 3,4") from None
    if not (1 <= columns <= 10 and 1 <= rows <= 10):
        raise PrintError(f"layout {text.strip()!r}: 1 to 10 columns and rows")
    return columns, rows


def lay_out(
    images: list[PrintImage], annotations: list[str], layout: tuple[int, int] | None = None
) -> list[Film]:
    """``images`` in order on as many films of ``layout`` (columns, rows) as they need; each
    film carries ``annotations``. No layout: :func:`auto_layout`."""
    if not images:
        raise PrintError("nothing to print: no images were chosen")
    columns, rows = layout or auto_layout(len(images))
    if columns < 1 or rows < 1:
        raise PrintError(f"a layout is COLUMNS,ROWS of at least 1,1, not {columns},{rows}")
    per_film = columns * rows
    return [
        Film(list(images[start : start + per_film]), columns, rows, list(annotations))
        for start in range(0, len(images), per_film)
    ]


def settings_for(node: Node, **overrides: Any) -> FilmSettings:
    """The film settings of a printer ``node``'s defaults, with ``overrides`` (FilmSettings'
    field names; None leaves the node's value)."""
    base = FilmSettings(
        film_size=getattr(node, "film_size", ""),
        orientation=getattr(node, "film_orientation", ""),
        medium=getattr(node, "medium", ""),
        destination=getattr(node, "film_destination", ""),
        magnification=getattr(node, "magnification", ""),
        max_density=getattr(node, "max_density", 0),
        min_density=getattr(node, "min_density", 0),
        copies=getattr(node, "copies", 1) or 1,
        bits=getattr(node, "print_bits", 0),
    )
    names = {f.name for f in fields(FilmSettings)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"settings_for: no such film setting {', '.join(unknown)}")
    settings = replace(base, **{k: v for k, v in overrides.items() if v is not None})
    check_settings(settings)
    return settings


def check_settings(settings: FilmSettings) -> None:
    """Refuse what no printer can take, before anything is sent."""
    if settings.bits not in (0, 8, 12):
        raise PrintError(
            f"bits must be 8 or 12 (0: 12 where the printer takes them), not {settings.bits}"
        )
    if not 1 <= settings.copies <= MAX_COPIES:
        raise PrintError(f"copies must be 1 to {MAX_COPIES}, not {settings.copies}")
    for name in ("max_density", "min_density"):
        value = getattr(settings, name)
        if not 0 <= value <= MAX_DENSITY:  # US: what the film box can carry
            raise PrintError(
                f"{name.replace('_', ' ')} must be 0 to {MAX_DENSITY} (hundredths of optical "
                f"density; 0: the printer's own), not {value}"
            )
    if 0 < settings.max_density <= settings.min_density:
        raise PrintError(
            f"min density {settings.min_density} must be below max density {settings.max_density}"
        )


def check_films(films: list[Film]) -> None:
    if not films:
        raise PrintError("nothing to print: no films")
    for number, film in enumerate(films, 1):
        if film.columns < 1 or film.rows < 1:
            raise PrintError(f"film {number}: a layout is at least 1,1")
        if not film.images or len(film.images) > film.columns * film.rows:
            raise PrintError(
                f"film {number}: {len(film.images)} images do not fit a {film.columns},"
                f"{film.rows} layout"
            )
        for image in film.images:
            if image.grey8.ndim != 2 or image.grey8.dtype != np.uint8:
                raise PrintError(f"film {number}: an image is not 8-bit grey (rows, columns)")
            if image.grey12 is not None and (
                image.grey12.shape != image.grey8.shape or image.grey12.dtype != np.uint16
            ):
                raise PrintError(f"film {number}: an image's 12-bit view does not match it")


# -- JSON ---------------------------------------------------------------------------------------


def dataset_json(dataset: Dataset | None) -> dict[str, Any]:
    """A printer's answer with DICOM keywords as keys (sequences as lists of the same)."""
    if dataset is None:
        return {}
    out: dict[str, Any] = {}
    for element in dataset:
        key = element.keyword or f"({element.tag.group:04X},{element.tag.element:04X})"
        out[key] = _value(element.value, element.VR)
    return out


def _value(value: Any, vr: str) -> Any:
    from pydicom.dataset import Dataset
    from pydicom.multival import MultiValue
    from pydicom.sequence import Sequence

    if isinstance(value, Sequence) or (
        isinstance(value, list) and value and isinstance(value[0], Dataset)
    ):
        return [dataset_json(item) for item in value]
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, MultiValue | list | tuple):
        return [_value(item, vr) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)


def result_json(result: PrintResult) -> dict[str, Any]:
    """What ``print --json`` prints: our counts in snake case, the printer's answers with
    DICOM keywords as keys."""
    printer = result.printer
    return {
        "films": result.films,
        "films_asked": result.total,
        "copies": result.copies,
        "bits": result.bits,
        "presentation_lut": result.presentation_lut,
        "annotation_boxes": result.annotation_boxes,
        "associations": result.associations,
        "cancelled": result.cancelled,
        "from_film": result.start + 1,
        "warnings": list(result.warnings),
        "printer": None
        if printer is None
        else {
            "status": printer.status,
            "info": printer.info,
            "words": printer.words,
            "attributes": printer.attributes,
        },
        "events": [
            {"source": e.source, "event": e.event, "info": e.info, "words": e.words}
            for e in result.events
        ],
        "session": result.session,
        "film_boxes": result.film_boxes,
    }
