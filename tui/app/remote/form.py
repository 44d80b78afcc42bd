"""The query form: five fields, what they mean to C-FIND, and the help on their syntax."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label

from tui.app.keys import OrderedInput
from tui.net.typed import date_range, modalities

# What `?` (F1 in a field, where `?` is a wildcard) shows above the keys: the query syntax is
# not guessable from the form. Short: the help panel has half of 80 columns (pacs.tcss).
HELP = """\
**Query**: Enter in a field runs it.\\
Name `smi` finds SMITH…\\
Date `2024` `today` `yesterday`, the last `7d` `4w` `6m` `1y`, \
`20240131`, `20240101-20240331`, `20240101-`\\
Mod `CT`, or several: `CT,MR`\\
`*` and `?` are wildcards (Name, ID, Acc)

`● here` the archive has it all, `◐ 26/301 here` a part
"""
FIELDS = ("name", "id", "date", "mod", "acc")  # in the order of query_keys' arguments


def query_keys(
    name: str = "", patient_id: str = "", dates: str = "", modality: str = "", accession: str = ""
) -> dict[str, str]:
    """C-FIND keys for the form: the study level's usual return keys, narrowed by what was
    typed. A name without wildcards matches as a prefix (``smi`` finds ``SMITH^JOHN``)."""
    from tui.net.find import default_keys

    name = name.strip()
    if name and not any(c in name for c in "*?"):
        name += "*"
    filters = {
        "PatientName": name,
        "PatientID": patient_id.strip(),
        "StudyDate": date_range(dates),
        "ModalitiesInStudy": modalities(modality),
        "AccessionNumber": accession.strip(),
    }
    return {**default_keys("study"), **{k: v for k, v in filters.items() if v}}


class QueryForm(Vertical):
    """Name and ID on one row, date, modality and accession on the next."""

    def compose(self) -> ComposeResult:
        # Placeholders read "e.g. …" and are dim and italic: a bare "CT" was taken for a value
        # already typed.
        with Horizontal(classes="form-row"):
            yield Label("Name")
            yield OrderedInput(placeholder="e.g. smi, *son", id="q-name", compact=True)
            yield Label("ID")
            yield OrderedInput(placeholder="e.g. 1234*", id="q-id", compact=True)
        with Horizontal(classes="form-row"):
            yield Label("Date")
            yield OrderedInput(placeholder="e.g. 7d, 2024", id="q-date", compact=True)
            yield Label("Mod")
            yield OrderedInput(placeholder="e.g. CT,MR", id="q-mod", compact=True)
            yield Label("Acc")
            yield OrderedInput(placeholder="e.g. A12*", id="q-acc", compact=True)

    def values(self) -> list[str]:
        """What is typed, in the order of :func:`query_keys`' arguments."""
        return [self.query_one(f"#q-{key}", Input).value for key in FIELDS]
