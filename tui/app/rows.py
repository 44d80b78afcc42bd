"""How the archive's rows look in the browser: their labels in the tree, their details,
the keys that name a node across rebuilds and what its preview shows, and the filter's
syntax. Functions of a row only (no screen, no worker): the browser and its tests use them.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets.tree import TreeNode

from tui.app.labels import Fitted, iso_date, line, plural
from tui.archive.matching import has_wildcards
from tui.archive.query import Filters
from tui.archive.triage import PRIORITIES, Triage
from tui.errors import UserError
from tui.net.typed import date_range
from tui.privacy import shown

Node = TreeNode[dict[str, Any]]
Key = tuple[str, ...]
TreeState = tuple[set["Key | None"], list["Key | None"]]

_FILTER_KEYS = {"id": "patient_id", "mod": "modality", "date": "date", "acc": "accession"}
_FILTER_KEYS |= {"desc": "description", "birth": "birth_date", "name": "patient_name"}
_FLAGS = {"is:flagged": "flagged", "is:unreviewed": "unreviewed"}
FILTER_HELP = (
    "a name or ID, name:, id:, mod:CT, date:2024 (or 20240101-, 7d), acc:, desc:, birth:,"
    " is:flagged, is:unreviewed, priority:1-3"
)
_HIDDEN_DETAILS = {"path", "flagged", "priority", "reviewed", "note"}  # shown as triage


def parse_filter(text: str) -> Filters:
    """``alice mod:CT date:2024`` -> Filters; bare words find a name, or an ID by its start.

    Raises
    ------
    UserError
        For an unknown ``key:``, a key without a value, or a value that cannot match
        (``date:2024-13``, ``priority:9``).
    """
    values: dict[str, Any] = {}
    words = []
    for token in text.split():
        key, colon, value = token.partition(":")
        key = key.lower()
        if token.lower() in _FLAGS:
            values[_FLAGS[token.lower()]] = True
        elif not colon:
            words.append(token)
        elif key == "priority":
            if not (value.isdigit() and 1 <= int(value) < len(PRIORITIES)):
                raise UserError(f"priority:{value}: use priority:1 (low) to priority:3 (urgent)")
            values["priority"] = int(value)
        elif key in _FILTER_KEYS:
            if not value:
                raise UserError(f"{key}: needs a value ({FILTER_HELP})")
            if key in ("date", "birth"):
                value = date_range(value)
            elif key in ("id", "acc") and not has_wildcards(value):
                value += "*"  # an ID or accession by its start, as it is typed
            elif key == "name" and not has_wildcards(value):
                value = f"*{value}*"
            values[_FILTER_KEYS[key]] = value
        else:
            raise UserError(f"unknown filter {token!r}: use {FILTER_HELP}")
    if words:
        values["name_or_id"] = " ".join(words)
    return Filters(**values)


# -- labels and keys of nodes -------------------------------------------------------------


def study_label(row: dict[str, Any], private: bool = False) -> Fitted:
    """Triage marks, date, modalities, description (cut first), counts, a note mark."""
    state = Triage(bool(row["flagged"]), int(row["priority"]), bool(row["reviewed"]))
    marks = state.marks() + " " if state != Triage() else ""  # no room lost to blanks
    modalities = "/".join(row.get("ModalitiesInStudy") or [])
    counts = f"{plural(row['NumberOfStudyRelatedSeries'], 'series', 'series')}, "
    images = row.get("NumberOfStudyRelatedImages", row["NumberOfStudyRelatedInstances"])
    counts += f"{images} img"  # short: counts must fit 80 columns; images, not reports
    return line(
        (marks, "bold"),
        iso_date(row.get("StudyDate") or ""),
        "  " + (modalities + "  " if modalities else ""),
        row.get("StudyDescription") or "(no description)",
        ("  " + counts, "dim"),
        (" ✎" if row.get("note") else "", "bold"),
        cut=3,
    )


def _series_count(row: dict[str, Any]) -> str:
    """ "40 images", or what the series holds when it has none to view ("1 instance, no
    image": a report, a plan), so that 'v' refusing it is no surprise."""
    instances = row["NumberOfSeriesRelatedInstances"]
    images = row.get("NumberOfSeriesRelatedImages", instances)
    if images or not instances:
        return plural(images, "image")
    return f"{plural(instances, 'instance')}, no image"


def series_label(row: dict[str, Any]) -> Fitted:
    number = "" if row["SeriesNumber"] is None else row["SeriesNumber"]
    return line(
        f"{row['Modality'] or '?'} {number}  ",
        row["SeriesDescription"] or "(no description)",
        ("  " + _series_count(row), "dim"),
        cut=1,
    )


def instance_label(row: dict[str, Any]) -> Fitted:
    frames = f", {row['NumberOfFrames']} frames" if (row["NumberOfFrames"] or 1) > 1 else ""
    number = row["InstanceNumber"] if row["InstanceNumber"] is not None else "?"
    return line(
        f"#{number}  ", (f"{row['Rows']}x{row['Columns']}{frames}  {row['SOPInstanceUID']}", "dim")
    )


def node_key(data: dict[str, Any] | None) -> Key | None:
    """What a node stands for, by UIDs (patients as the index tells them apart: ID, name
    and birth date, so two with no ID and no name stay two): kept across rebuilds."""
    if not data or "row" not in data:
        return None
    row, level = data["row"], data["level"]
    if level == "patient":
        fields = ("PatientID", "PatientName", "PatientBirthDate")
        return ("patient", *(str(row.get(field) or "") for field in fields))
    uid = {"study": "StudyInstanceUID", "series": "SeriesInstanceUID"}.get(level)
    return (level, str(row[uid or "SOPInstanceUID"]))


def preview_target(data: dict[str, Any] | None) -> Key | None:
    """What the preview shows for a node: a series, an instance (with its series), or a
    study (its first series with images); nothing for a patient."""
    key = node_key(data)
    if key is None or key[0] == "patient":
        return None
    if key[0] == "instance":
        return (*key, str(data["row"]["SeriesInstanceUID"]))  # type: ignore[index]
    return key


def details_text(data: dict[str, Any] | None, private: bool) -> Text:
    """Every value of a node's row as text (never markup); a study's triage and note
    first, where the pane's height never cuts them off."""
    if not data or "row" not in data:
        return Text("No patient matches the filter.", style="dim")
    row = data["row"]
    lines = []
    if data["level"] == "study":
        state = Triage(bool(row["flagged"]), int(row["priority"]), bool(row["reviewed"]))
        words = ["flagged" if state.flagged else "not flagged"]
        words.append(f"priority {PRIORITIES[state.priority]}")
        words.append("reviewed" if state.reviewed else "not reviewed")
        lines.append(line(("Triage", "bold"), "  ", ", ".join(words)))
        if row.get("note"):
            lines.append(line(("Note", "bold"), "  ", str(row["note"])))
    lines += [
        line((key, "bold"), "  ", shown(row, key, private))
        for key in row
        if key not in _HIDDEN_DETAILS
    ]
    return Text("\n").join(lines)
