"""The browser: Patient > Study > Series as a tree loaded on demand, a live filter, the
selected node's details and a preview of the selected series."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Header, Input, Static, Tree
from textual.worker import get_current_worker

from tui.app.image_view import ImagePanel
from tui.archive import triage
from tui.archive.query import Filters, search
from tui.archive.triage import Triage
from tui.errors import UserError
from tui.privacy import shown

_FILTER_KEYS = {"id": "patient_id", "mod": "modality", "date": "date", "acc": "accession"}
_FILTER_KEYS |= {"desc": "description", "birth": "birth_date", "name": "patient_name"}
_FLAGS = {"is:flagged": "flagged", "is:unreviewed": "unreviewed"}


def parse_filter(text: str) -> Filters:
    """``alice mod:CT date:2024-`` -> Filters; bare words search the patient name."""
    values: dict[str, Any] = {}
    words = []
    for token in text.split():
        key, _, value = token.partition(":")
        if token.lower() in _FLAGS:
            values[_FLAGS[token.lower()]] = True
        elif key.lower() == "priority" and value.isdigit():
            values["priority"] = int(value)
        elif value and key.lower() in _FILTER_KEYS:
            values[_FILTER_KEYS[key.lower()]] = value
        else:
            words.append(token)
    if words:
        values["patient_name"] = "*" + " ".join(words) + "*"
    return Filters(**values)


def study_label(row: dict[str, Any]) -> str:
    marks = Triage(bool(row["flagged"]), int(row["priority"]), bool(row["reviewed"])).marks()
    return (
        f"[b]{marks}[/] {row['StudyDate'] or '--------'}  "
        f"{shown(row, 'ModalitiesInStudy', False)}  "
        f"{row['StudyDescription'] or '(no description)'}  "
        f"[dim]{row['NumberOfStudyRelatedSeries']} series, "
        f"{row['NumberOfStudyRelatedInstances']} images[/]"
    )


class BrowserScreen(Screen[None]):
    """The archive as a tree, with details and a preview of what is selected."""

    BINDINGS = [
        Binding("slash", "filter", "Filter", id="browser.filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="browser.clear"),
        Binding("v", "view", "View series", id="browser.view"),
        Binding("t", "tags", "Tags", id="browser.tags"),
        Binding("p", "remote", "PACS", id="browser.remote"),
        Binding("ctrl+o", "import", "Import", id="browser.import"),
        Binding("r", "reload", "Reload", id="browser.reload"),
        Binding("s", "sort", "Sort name/date", id="browser.sort"),
        Binding("f", "flag", "Flag", id="browser.flag"),
        Binding("u", "priority", "Priority", id="browser.priority"),
        Binding("x", "reviewed", "Reviewed", id="browser.reviewed"),
        Binding("n", "note", "Note", id="browser.note"),
        Binding("right_square_bracket", "unreviewed(1)", "Next unreviewed", id="browser.next"),
        Binding("left_square_bracket", "unreviewed(-1)", "Prev unreviewed", id="browser.prev"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="name, id:…, mod:CT, date:20240101-, acc:…, desc:…", id="filter")
        with Horizontal(id="browser"):
            tree: Tree[dict[str, Any]] = Tree("Archive", id="tree")
            tree.show_root = False
            yield tree
            with Vertical(id="side"):
                yield Static("", id="details")
                yield self.app.image_panel("preview")  # type: ignore[attr-defined]
        yield Footer()

    recent_first = False
    filters = Filters()

    def on_mount(self) -> None:
        self.query_one(Tree).focus()
        self.load_patients(Filters())

    def action_sort(self) -> None:
        self.recent_first = not self.recent_first
        self.notify("patients by latest study" if self.recent_first else "patients by name")
        self.load_patients(self.filters)

    @property
    def private(self) -> bool:
        return bool(self.app.privacy)  # type: ignore[attr-defined]

    # -- loading, in workers ----------------------------------------------------------

    @work(thread=True, exclusive=True, group="patients")
    def load_patients(self, filters: Filters) -> None:
        self.filters = filters
        rows = self.app.read(search, "patient", filters, self.recent_first)  # type: ignore[attr-defined]
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show_patients, rows, filters)

    def _show_patients(self, rows: list[dict[str, Any]], filters: Filters) -> None:
        tree = self.query_one(Tree)
        tree.clear()
        for row in rows:
            label = f"{shown(row, 'PatientName', self.private) or '(no name)'}  "
            label += f"[dim]{shown(row, 'PatientID', self.private)}  "
            label += f"{row['NumberOfPatientRelatedStudies']} studies[/]"
            node = tree.root.add(label, data={"level": "patient", "row": row, "filters": filters})
            node.allow_expand = True
        self.sub_title = f"{len(rows)} patients"
        if rows:
            tree.cursor_line = 0  # a patient is highlighted at once: keys act on it

    @on(Tree.NodeExpanded)
    def expand(self, event: Tree.NodeExpanded[dict[str, Any]]) -> None:
        data = event.node.data or {}
        if data.get("loaded") or data.get("level") not in ("patient", "study", "series"):
            return
        data["loaded"] = True
        self.load_children(event.node)

    @work(thread=True, group="children")
    def load_children(self, node: Any) -> None:
        rows = self._children_rows(node.data)
        self.app.call_from_thread(self._add_rows, node, rows)

    def _children_rows(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        """A patient's studies (with their triage) or a study's series (worker thread)."""
        row = data["row"]
        if data["level"] == "patient":
            filters = data["filters"]
            narrowed = replace(
                filters, patient_id=row["PatientID"] or "", patient_name=row["PatientName"] or ""
            )
            return self.app.read(search, "study", narrowed)  # type: ignore[attr-defined,no-any-return]
        if data["level"] == "series":
            instances = Filters(series=row["SeriesInstanceUID"])
            return self.app.read(search, "instance", instances)  # type: ignore[attr-defined,no-any-return]
        series = Filters(study=row["StudyInstanceUID"])
        return self.app.read(search, "series", series)  # type: ignore[attr-defined,no-any-return]

    def _add_rows(self, node: Any, rows: list[dict[str, Any]]) -> None:
        level = node.data["level"]
        for row in rows:
            if level == "series":
                frames = (
                    f", {row['NumberOfFrames']} frames" if (row["NumberOfFrames"] or 1) > 1 else ""
                )
                label = (
                    f"#{row['InstanceNumber'] if row['InstanceNumber'] is not None else '?'}  "
                    f"[dim]{row['Rows']}x{row['Columns']}{frames}  {row['SOPInstanceUID']}[/]"
                )
                node.add_leaf(label, data={"level": "instance", "row": row})
                continue
            if level == "patient":
                label = study_label(row)
                child = node.add(
                    label, data={"level": "study", "row": row, "filters": node.data["filters"]}
                )
                child.allow_expand = True
            else:
                number = "" if row["SeriesNumber"] is None else row["SeriesNumber"]
                description = row["SeriesDescription"] or "(no description)"
                label = (
                    f"{row['Modality']} {number}  {description}  "
                    f"[dim]{row['NumberOfSeriesRelatedInstances']} images[/]"
                )
                series = node.add(label, data={"level": "series", "row": row})
                series.allow_expand = True  # its instances, on demand

    # -- selection ------------------------------------------------------------------------

    @on(Tree.NodeHighlighted)
    def highlighted(self, event: Tree.NodeHighlighted[dict[str, Any]]) -> None:
        data = event.node.data or {}
        row = data.get("row") or {}
        keys = [k for k in row if k not in ("path",)]
        lines = [f"[b]{k}[/]  {shown(row, k, self.private)}" for k in keys]
        self.query_one("#details", Static).update("\n".join(lines))
        if data.get("level") == "series":
            self.preview(row["SeriesInstanceUID"])

    @on(Tree.NodeSelected)
    def selected(self, event: Tree.NodeSelected[dict[str, Any]]) -> None:
        if (event.node.data or {}).get("level") == "series":
            self.action_view()

    @work(thread=True, exclusive=True, group="preview")
    def preview(self, series_uid: str) -> None:
        """The middle slice of the series, as acquired (one frame is read, not the series)."""
        try:
            rendered = self.app.render_series(series_uid)  # type: ignore[attr-defined]
        except UserError as exc:
            if not get_current_worker().is_cancelled:
                self.app.call_from_thread(self.notify, str(exc), severity="warning")
            return
        if get_current_worker().is_cancelled:
            return
        view = rendered.view
        labels = view.labels if view is not None else {}
        aspect = view.pixel_spacing[0] / view.pixel_spacing[1] if view is not None else 1.0
        panel = self.query_one("#preview", ImagePanel)
        self.app.call_from_thread(panel.show, rendered.image, labels, aspect)

    # -- actions --------------------------------------------------------------------------

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("shown")
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.remove_class("shown")
        self.query_one(Tree).focus()

    @on(Input.Changed, "#filter")
    def filter_changed(self, event: Input.Changed) -> None:
        try:
            filters = parse_filter(event.value)
        except UserError as exc:
            self.sub_title = str(exc)
            return
        self.load_patients(filters)

    @on(Input.Submitted, "#filter")
    def filter_done(self) -> None:
        self.query_one(Tree).focus()

    def action_reload(self) -> None:
        self.action_clear_filter()
        self.load_patients(Filters())

    def action_remote(self) -> None:
        """Query and retrieve from a PACS (the remote screen)."""
        from tui.app.remote import open_remote

        open_remote(self.app)

    def action_import(self) -> None:
        from tui.app.importing import ImportScreen

        def done(summary: Any) -> None:
            if summary is not None:
                stopped = " (stopped: import again to finish)" if summary.interrupted else ""
                counts = (
                    f"{summary.new} new, {summary.updated} updated, {summary.unchanged} unchanged,"
                    f" {len(summary.skipped)} skipped, {len(summary.duplicates)} duplicates"
                )
                self.notify(counts + stopped)
                self.load_patients(Filters())

        self.app.push_screen(ImportScreen(), done)

    def action_tags(self) -> None:
        node = self.query_one(Tree).cursor_node
        data = (node.data or {}) if node is not None else {}
        if data.get("level") == "instance":
            self.open_tags(data["row"]["SeriesInstanceUID"], data["row"]["path"])
        elif data.get("level") == "series":
            self.open_tags(data["row"]["SeriesInstanceUID"])
        else:
            self.notify("choose a series or an instance to read its tags")

    @work(thread=True, group="tags")
    def open_tags(self, series_uid: str, path: str | None = None) -> None:
        from tui.app.tags import TagScreen
        from tui.archive.query import series_instances

        paths = [row["path"] for row in self.app.read(series_instances, series_uid)]  # type: ignore[attr-defined]
        index = paths.index(path) if path in paths else 0
        self.app.call_from_thread(self.app.push_screen, TagScreen(paths, index))

    def action_view(self) -> None:
        node = self.query_one(Tree).cursor_node
        data = (node.data or {}) if node is not None else {}
        if data.get("level") != "series":
            self.notify("choose a series to view")
            return
        from tui.app.viewer import ViewerScreen

        self.app.push_screen(ViewerScreen(data["row"]))

    # -- triage ---------------------------------------------------------------------------

    def _study_node(self) -> Any:
        node = self.query_one(Tree).cursor_node
        while node is not None and (node.data or {}).get("level") not in ("study", None):
            node = node.parent
        if node is None or (node.data or {}).get("level") != "study":
            self.notify("choose a study (or one of its series) to triage")
            return None
        return node

    def _triage(self, **changes: Any) -> None:
        node = self._study_node()
        if node is not None:
            self.save_triage(node, changes)

    @work(thread=True, group="triage")
    def save_triage(self, node: Any, changes: dict[str, Any]) -> None:
        uid = node.data["row"]["StudyInstanceUID"]
        try:
            state = self.app.read(triage.update, uid, **changes)  # type: ignore[attr-defined]
        except UserError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.app.call_from_thread(self._show_triage, node, state)

    def _show_triage(self, node: Any, state: Triage) -> None:
        row = node.data["row"]
        row.update(flagged=state.flagged, priority=state.priority, reviewed=state.reviewed)
        row["note"] = state.note
        node.set_label(study_label(row))

    def action_flag(self) -> None:
        node = self._study_node()
        if node is not None:
            self.save_triage(node, {"flagged": not node.data["row"]["flagged"]})

    def action_priority(self) -> None:
        node = self._study_node()
        if node is not None:
            self.save_triage(node, {"priority": (int(node.data["row"]["priority"]) + 1) % 4})

    def action_reviewed(self) -> None:
        node = self._study_node()
        if node is not None:
            self.save_triage(node, {"reviewed": not node.data["row"]["reviewed"]})

    def action_note(self) -> None:
        node = self._study_node()
        if node is None:
            return

        def done(note: str | None) -> None:
            if note is not None:
                self.save_triage(node, {"note": note})

        self.app.push_screen(NoteScreen(str(node.data["row"].get("note", ""))), done)

    def action_unreviewed(self, step: int) -> None:
        node = self.query_one(Tree).cursor_node
        current = None
        while node is not None and node.data:
            if node.data.get("level") == "study":
                current = node.data["row"]["StudyInstanceUID"]
                break
            node = node.parent
        self.jump_unreviewed(current, step)

    @work(thread=True, exclusive=True, group="jump")
    def jump_unreviewed(self, current: str | None, step: int) -> None:
        """To the next study not yet reviewed, in the list's order (patients, then dates)."""
        tree = self.query_one(Tree)
        patients = list(tree.root.children)
        order: list[tuple[Any, str]] = []
        for patient in patients:
            studies = self._children_rows({**patient.data, "level": "patient"})
            order += [(patient, row["StudyInstanceUID"]) for row in studies]
        target = self.app.read(  # type: ignore[attr-defined]
            triage.neighbour_unreviewed, [uid for _, uid in order], current, step
        )
        if target is None:
            self.app.call_from_thread(self.notify, "every study is reviewed")
            return
        patient = next(p for p, uid in order if uid == target)
        if not patient.data.get("loaded"):
            patient.data["loaded"] = True
            rows = self._children_rows(patient.data)
            self.app.call_from_thread(self._add_rows, patient, rows)
        self.app.call_from_thread(self._go_to_study, patient, target)

    def _go_to_study(self, patient: Any, study_uid: str) -> None:
        patient.expand()
        tree = self.query_one(Tree)
        for child in patient.children:
            if child.data["row"]["StudyInstanceUID"] == study_uid:
                self.call_after_refresh(tree.move_cursor, child)
                return


class NoteScreen(ModalScreen[str | None]):
    """One line of text (a study's note, a file name): Enter keeps it, Esc cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="note.cancel")]
    DEFAULT_CSS = """
    NoteScreen { align: center middle; }
    NoteScreen Input { width: 70; }
    """

    def __init__(self, note: str, placeholder: str = "a short note for this study") -> None:
        super().__init__()
        self.note = note
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        yield Input(self.note, placeholder=self.placeholder, id="note")

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
