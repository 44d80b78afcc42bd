"""The edit form: a patient's, study's or series' editable attributes (those of
:data:`tui.archive.edit.LEVELS` for its level), prefilled from one of its files; Review
shows the diff :func:`tui.archive.edit.plan_set` works out (old -> new, on how many
instances), Save applies that reviewed plan in a worker. The history of edits is a key
away, and Enter on an edit there plans its undo (reviewed, then saved, the same way).

What the form edits is fixed when it opens: the title names it. The work, and every
refusal (UIDs, pixel attributes, a value its VR does not allow), is the archive's.
"""

from __future__ import annotations

from collections.abc import MutableSequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, ProgressBar, Static
from textual.widgets.option_list import Option

from tui.app.context import pacs
from tui.app.keys import OrderedInput
from tui.app.labels import line, plural
from tui.archive import edit
from tui.archive.query import Filters, search
from tui.errors import UserError
from tui.privacy import IDENTIFYING, mask, shown

if TYPE_CHECKING:
    from tui.archive.edit import Change, Entry, Plan


def value_text(ds: Any, keyword: str) -> str:
    """An attribute's value as the form shows it: text, several values joined by
    backslashes, "" when absent or empty."""
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, MutableSequence | tuple):  # pydicom's MultiValue
        return "\\".join(str(v) for v in value)
    return str(value)


def _shown(keyword: str, value: str | None, private: bool) -> str:
    if value is None:
        return "(absent)"
    if private and keyword in IDENTIFYING:
        return mask(value)
    return repr(value)


def diff_text(plan: Plan, private: bool) -> Text:
    """The diff of a plan: a line per attribute and old value, with the instances."""
    head = f"Undo edit {plan.undoes}: " if plan.undoes is not None else "Review: "
    lines: list[Text] = [
        line(
            (head, "bold"),
            f"{plural(plan.instances, 'instance')} change ({len(plan.scope)} filed again);"
            " Ctrl+S saves",
        )
    ]
    lines += [_change_line(change, private) for change in plan.changes]
    return Text("\n").join(lines)


def _change_line(change: Change, private: bool) -> Text:
    return line(
        "  ",
        (change.keyword, "bold"),
        f": {_shown(change.keyword, change.old, private)} -> ",
        _shown(change.keyword, change.new, private),
        (f"  ({plural(change.instances, 'instance')})", "dim"),
    )


def entry_text(entry: Entry, private: bool) -> Text:
    """One edit of the history, in one line."""
    target = mask(entry.target) if private and entry.level == "patient" else entry.target
    changes = ", ".join(
        f"{c.keyword}: {_shown(c.keyword, c.old, private)} -> {_shown(c.keyword, c.new, private)}"
        for c in entry.changes
    )
    undoes = f" (undoes {entry.undoes})" if entry.undoes is not None else ""
    return line(
        (f"#{entry.edit_id}", "bold"),
        f"  {entry.at}  {entry.user}  {entry.level} ",
        (target, "dim"),
        undoes,
        "  ",
        changes,
    )


class FieldList(VerticalScroll):
    """The form's fields: up and down move from field to field (a text box has no use for
    them), rather than scrolling the list away from the focused one."""

    BINDING_GROUP_TITLE = "In the form"
    BINDINGS = [
        Binding("down", "app.focus_next", "Next field", show=False, id="edit.next_field"),
        Binding("up", "app.focus_previous", "Previous field", show=False, id="edit.prev_field"),
    ]


class EditScreen(ModalScreen[bool | None]):
    """Edit one patient, study or series: the form, its diff, the save; the history."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="edit.cancel"),
        Binding("ctrl+r", "review", "Review", id="edit.review", tooltip="Review the changes"),
        Binding("ctrl+s", "save", "Save", id="edit.save", tooltip="Save the reviewed changes"),
        Binding(
            "ctrl+t", "history", "History", id="edit.history", tooltip="Edit history: undo an edit"
        ),
    ]
    CSS_PATH = Path(__file__).with_name("edit.tcss")

    def __init__(self, level: str, row: dict[str, Any], label: Text) -> None:
        super().__init__()
        self.level = level
        self.row = dict(row)  # what was highlighted when the form opened: fixed
        self.label = label.copy()
        self.keywords = [k for k, lvl in edit.LEVELS.items() if lvl == level]
        self.original: dict[str, str] | None = None  # the values read, once loaded
        self.plan: Plan | None = None  # the reviewed plan Save applies
        self.planned: tuple[str, ...] | None = None  # the assignments it was made for
        self.busy = False
        self.saving = False  # a save cannot be stopped: Esc waits for it

    @property
    def private(self) -> bool:
        return bool(pacs(self).privacy)

    @property
    def title_text(self) -> Text:
        """What the form edits, as text (tag values are never markup)."""
        title = line(("Edit ", "bold"), (f"{self.level}: ", "bold"))
        title.append_text(self.label)
        if self.level != "patient":
            patient = shown(self.row, "PatientName", self.private) or "(no name)"
            title.append_text(line(("  of ", "dim"), patient))
        else:
            pid = shown(self.row, "PatientID", self.private)
            title.append_text(line(("  (every patient with ID ", "dim"), pid, (")", "dim")))
        return title

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="edit"):
            yield Label(self.title_text, id="edit-title")
            yield Static(
                line(
                    ("Ctrl+R", "bold"),
                    " reviews, ",
                    ("Ctrl+S", "bold"),
                    " saves, ",
                    ("Ctrl+T", "bold"),
                    " the history (Enter on an edit: undo it), ",
                    ("Esc", "bold"),
                    " cancels",
                ),
                id="edit-help",
            )
            with FieldList(id="edit-fields"):
                for keyword in self.keywords:
                    with Horizontal(classes="edit-row"):
                        yield Label(keyword, classes="edit-key")
                        yield OrderedInput(id=f"field-{keyword}", disabled=True)
            yield Static(line(("loading the current values…", "dim")), id="edit-diff")
            yield OptionList(id="edit-history")
            yield ProgressBar(total=None, id="edit-progress", show_eta=False)
            with Horizontal(id="edit-buttons"):
                yield Button("Review", id="edit-review")
                yield Button("Save", variant="primary", id="edit-save")

    def on_mount(self) -> None:
        self.query_one("#edit-history").display = False
        self.load_values()

    # -- the current values ----------------------------------------------------------------

    def _target(self) -> tuple[str | None, str | None]:
        """(UID, PatientID) as :func:`tui.archive.edit.plan_set` takes them."""
        if self.level == "patient":
            return None, str(self.row.get("PatientID") or "")
        key = "StudyInstanceUID" if self.level == "study" else "SeriesInstanceUID"
        return str(self.row[key]), None

    @work(thread=True, group="edit-load")
    def load_values(self) -> None:
        """Read one file of the target for the values to prefill (worker thread)."""
        from tui.archive.holdings import files_of
        from tui.archive.tags import read_header

        app = pacs(self)
        try:
            uid, patient = self._target()
            if uid is None:
                if not patient:
                    raise UserError("this patient has no PatientID: edit its studies instead")
                row = self.row
                identity = (
                    patient,
                    row.get("PatientName") or "",
                    row.get("PatientBirthDate") or "",
                )
                studies = app.read(search, "study", Filters(patient=identity))
                if not studies:
                    raise UserError("this patient holds no study now (reload the browser: r)")
                uid = str(studies[0]["StudyInstanceUID"])
            files = app.read(files_of, [uid])
            ds = read_header(files[0][0])
            values = {keyword: value_text(ds, keyword) for keyword in self.keywords}
        except UserError as exc:
            app.call_from_thread(self._say, str(exc), "error")
            return
        app.call_from_thread(self._fill, values)

    def _fill(self, values: dict[str, str]) -> None:
        if not self.is_attached:
            return  # closed meanwhile
        for keyword, value in values.items():
            box = self.query_one(f"#field-{keyword}", Input)
            box.value = value
            box.disabled = False
        self.original = {k: self.query_one(f"#field-{k}", Input).value for k in values}
        self._say("change values, then Ctrl+R to review", "")
        self.query_one(f"#field-{self.keywords[0]}", Input).focus()

    def _say(self, text: str, severity: str) -> None:
        if not self.is_attached:
            return
        self.query_one("#edit-diff", Static).update(line((text, "dim" if not severity else "")))
        if severity:
            self.notify(text, severity=severity)  # type: ignore[arg-type]

    def _assignments(self) -> tuple[str, ...]:
        """``Keyword=Value`` for every box changed from what was read."""
        if self.original is None:
            return ()
        out = []
        for keyword, before in self.original.items():
            value = self.query_one(f"#field-{keyword}", Input).value
            if value != before:
                out.append(f"{keyword}={value}")
        return tuple(out)

    @on(Input.Changed)
    def changed(self, event: Input.Changed) -> None:
        field = (event.input.id or "").startswith("field-")
        if self.plan is not None and field and self._assignments() != self.planned:
            self.plan = self.planned = None  # the reviewed diff is not what Save would do
            self._say("changed since the review: Ctrl+R to review again", "")

    # -- review and save -------------------------------------------------------------------

    @on(Button.Pressed, "#edit-review")
    @on(Input.Submitted)
    def action_review(self) -> None:
        if self.busy or self.original is None:
            return
        assignments = self._assignments()
        if not assignments:
            self._say("nothing changed: change a value first", "warning")
            return
        self.busy = True
        self._say("working out the diff…", "")
        self.review(assignments)

    @work(thread=True, exclusive=True, group="edit")
    def review(self, assignments: tuple[str, ...]) -> None:
        app = pacs(self)
        uid, patient = self._target()
        try:
            plan = app.read(edit.plan_set, uid, list(assignments), patient=patient)
        except UserError as exc:
            app.call_from_thread(self._failed, str(exc))
            return
        app.call_from_thread(self._reviewed, plan, assignments)

    def _reviewed(self, plan: Plan, assignments: tuple[str, ...] | None) -> None:
        self.busy = False
        if not self.is_attached:
            return
        self.plan, self.planned = plan, assignments
        if not plan.instances:
            self.plan = None
            self._say("nothing to change: the instances have these values already", "")
            return
        self.query_one("#edit-diff", Static).update(diff_text(plan, self.private))

    def _failed(self, message: str) -> None:
        self.busy = self.saving = False
        self._say(message.splitlines()[0], "error")

    @on(Button.Pressed, "#edit-save")
    def action_save(self) -> None:
        """Apply the reviewed plan; without one, review first (the diff before saving)."""
        if self.busy:
            return
        if self.plan is None:
            self.action_review()
            return
        self.busy = self.saving = True
        self._say("saving…", "")
        self.save(self.plan)

    @work(thread=True, exclusive=True, group="edit")
    def save(self, plan: Plan) -> None:
        app = pacs(self)
        bar = self.query_one("#edit-progress", ProgressBar)

        def progress(done: int, total: int) -> None:
            app.call_from_thread(bar.update, total=max(total, 1), progress=done)

        try:
            edit_id = app.read(edit.apply, plan, progress)
        except UserError as exc:
            app.call_from_thread(self._failed, str(exc))
            return
        app.call_from_thread(self._saved, plan, edit_id)

    def _saved(self, plan: Plan, edit_id: int) -> None:
        self.busy = self.saving = False
        what = f"undo of edit {plan.undoes}" if plan.undoes is not None else "edit"
        self.app.notify(
            f"{what} saved as edit {edit_id}: {plural(plan.instances, 'instance')} rewritten"
            " (Ctrl+T in the edit form lists the edits, to undo one)"
        )
        self.dismiss(True)

    # -- the history and undo ----------------------------------------------------------------

    def action_history(self) -> None:
        """Show (or hide) every edit of the archive, newest first."""
        history = self.query_one("#edit-history", OptionList)
        history.display = not history.display
        if history.display:
            history.clear_options()
            history.add_option(Option(line(("loading the history…", "dim")), disabled=True))
            history.focus()
            self.load_history()
        else:
            self.query_one(f"#field-{self.keywords[0]}", Input).focus()

    @work(thread=True, exclusive=True, group="edit-history")
    def load_history(self) -> None:
        app = pacs(self)
        try:
            entries = app.read(edit.history)
        except UserError as exc:
            app.call_from_thread(self._say, str(exc), "error")
            return
        app.call_from_thread(self._show_history, entries)

    def _show_history(self, entries: list[Entry]) -> None:
        if not self.is_attached:
            return
        history = self.query_one("#edit-history", OptionList)
        history.clear_options()
        if not entries:
            history.add_option(Option(line(("no edit yet", "dim")), disabled=True))
            return
        history.add_options(
            Option(entry_text(entry, self.private), id=str(entry.edit_id)) for entry in entries
        )
        history.highlighted = 0

    @on(OptionList.OptionSelected, "#edit-history")
    def undo_selected(self, event: OptionList.OptionSelected) -> None:
        """Enter on an edit: plan its undo and show its diff; Ctrl+S saves it."""
        if self.busy or event.option.id is None:
            return
        self.busy = True
        self._say(f"working out the undo of edit {event.option.id}…", "")
        self.plan_undo(int(event.option.id))

    @work(thread=True, exclusive=True, group="edit")
    def plan_undo(self, edit_id: int) -> None:
        app = pacs(self)
        try:
            plan = app.read(edit.plan_undo, edit_id)
        except UserError as exc:
            app.call_from_thread(self._failed, str(exc))
            return
        app.call_from_thread(self._reviewed, plan, self._assignments())

    def action_cancel(self) -> None:
        """Esc: close without saving (a save under way finishes first)."""
        if self.saving:
            self.notify("saving: wait for it to finish", severity="warning")
            return
        self.dismiss(None)
