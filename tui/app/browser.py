"""The browser: Patient > Study > Series as a tree loaded on demand, a live filter, the
highlighted node's details and a preview of what it holds.

Trust comes first: the details, the preview and its caption always belong to the
highlighted node. Everything that shows them goes through :meth:`BrowserScreen.follow`,
which runs on every cursor move and after every rebuild of the tree; a preview that a
worker finishes after the cursor moved on is dropped, never shown beside another row.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import replace
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static
from textual.widgets.tree import UnknownNodeID
from textual.worker import get_current_worker

from tui.app.context import pacs
from tui.app.dialogs import NoteScreen
from tui.app.image_view import ImagePanel
from tui.app.keys import OrderedInput, type_into
from tui.app.labels import FittedTree, line, patient_label, plural
from tui.app.messages import (
    OpenEdit,
    OpenImport,
    OpenPrint,
    OpenRemote,
    OpenShare,
    OpenTags,
    OpenViewer,
)
from tui.app.rows import (
    FILTER_HELP,
    Key,
    Node,
    TreeState,
    details_text,
    instance_label,
    node_key,
    parse_filter,
    preview_target,
    series_label,
    study_label,
)
from tui.archive import triage
from tui.archive.query import Filters, search
from tui.archive.triage import PRIORITIES
from tui.errors import UserError


class ArchiveTree(FittedTree):
    """The archive's tree: rows fitted to the width, counts kept, tag values as text."""

    BINDING_GROUP_TITLE = "Moving in the list"


class BrowserScreen(Screen[None]):
    """The archive as a tree, with details and a preview of what is highlighted."""

    BINDINGS = [
        Binding("slash", "filter", "Filter", id="browser.filter", priority=True),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="browser.clear"),
        Binding("v", "view", "View", id="browser.view"),
        Binding("t", "tags", "Tags", id="browser.tags"),
        Binding("p", "remote", "PACS", id="browser.remote"),
        Binding("ctrl+o", "import", "Import", show=False, id="browser.import"),
        Binding(
            "o",
            "open_file",
            "Open file",
            show=False,
            id="browser.open_file",
            tooltip="Open a file to view: NIfTI, NRRD, TIFF, PNG, JPEG (2000)",
        ),
        Binding("r", "reload", "Reload", show=False, id="browser.reload"),
        Binding("s", "sort", "Sort by name or latest study", show=False, id="browser.sort"),
        Binding("f", "flag", "Flag", id="browser.flag"),
        Binding("u", "priority", "Prio", id="browser.priority"),
        Binding("x", "reviewed", "Reviewed", id="browser.reviewed"),
        Binding("n", "note", "Note", id="browser.note"),
        Binding(
            "right_square_bracket",
            "unreviewed(1)",
            "Next",
            id="browser.next",
            tooltip="Next unreviewed study",
        ),
        Binding(
            "left_square_bracket", "unreviewed(-1)", "Previous unreviewed", False, id="browser.prev"
        ),
        Binding(
            "S",
            "share",
            "Share",
            show=False,
            id="browser.share",
            tooltip="Share: export as DICOM (folder, ZIP, DICOMDIR) or send; de-identify",
        ),
        Binding(
            "P",
            "print",
            "Print",
            show=False,
            id="browser.print",
            tooltip="Print a sheet of the series on a DICOM printer",
        ),
        Binding(
            "e",
            "edit",
            "Edit",
            show=False,
            id="browser.edit",
            tooltip="Edit attributes (the diff before saving; history and undo)",
        ),
    ]

    recent_first = False
    filters = Filters()

    def __init__(self) -> None:
        super().__init__()
        self._preview_key: Key | None = None  # what the preview is for: the highlighted node's
        self._writes: deque[tuple[Node, str, dict[str, Any]]] = deque()  # triage, in order
        self._writes_lock = threading.Lock()
        self._writing = False
        self._unfiltered: TreeState | None = None
        # ] and [: steps pressed while a jump is worked out, taken in order by that worker;
        # the study it went to, until the cursor is there (a press meanwhile starts from it)
        self._jump_steps: list[int] = []
        self._jumping = False
        self._jump_to: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield OrderedInput(placeholder=FILTER_HELP, id="filter")
        yield Static("", id="filter-error")
        with Horizontal(id="browser"):
            tree = ArchiveTree("Archive", id="tree")
            tree.show_root = False
            yield tree
            with Vertical(id="side"):
                yield Static("", id="details")
                yield Static("", id="preview-caption")
                yield pacs(self).image_panel("preview")
        yield Footer(compact=True, show_command_palette=False)  # 80 columns show every key

    def on_mount(self) -> None:
        self.query_one(ArchiveTree).focus()
        self.load_patients(Filters())

    def on_screen_resume(self) -> None:
        self.follow()  # back from the viewer or the remote screen: still the highlighted node

    @property
    def private(self) -> bool:
        return bool(pacs(self).privacy)

    @property
    def archive_tree(self) -> ArchiveTree:
        return self.query_one(ArchiveTree)

    # -- what the screen shows follows the cursor ------------------------------------------

    def follow(self) -> None:
        """Show the highlighted node's details and preview (and nothing of any other)."""
        node = self.archive_tree.cursor_node
        data = node.data if node is not None else None
        self.query_one("#details", Static).update(details_text(data, self.private))
        target = preview_target(data)
        if target == self._preview_key:
            return
        self._preview_key = target
        self.query_one("#preview", ImagePanel).clear()
        caption = self.query_one("#preview-caption", Static)
        if target is None:
            self.workers.cancel_group(self, "preview")
            caption.update("")
            return
        caption.update(line(("preview: loading…", "dim")))
        self.preview(target)

    @on(ArchiveTree.NodeHighlighted)
    def highlighted(self) -> None:
        self.follow()  # the cursor as it is now: a message may arrive after further moves

    @on(ArchiveTree.NodeSelected)
    def selected(self, event: ArchiveTree.NodeSelected[dict[str, Any]]) -> None:
        if (event.node.data or {}).get("level") == "series":
            self.action_view()

    @work(thread=True, exclusive=True, group="preview")
    def preview(self, target: Key) -> None:
        """The middle slice of a series (of a study's first series with images), or the
        instance itself; one frame is read, not the series."""
        try:
            rendered, caption = self._render_preview(target)
        except UserError as exc:
            rendered, caption = None, f"no preview: {exc}"
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show_preview, target, rendered, caption)

    def _render_preview(self, target: Key) -> tuple[Any, str]:
        """(Rendered, caption) for a preview target (in a worker thread)."""
        from tui.render.pipeline import Request

        app: Any = self.app
        level, uid = target[0], target[1]
        if level == "series":
            rendered = app.render_series(uid)
            return rendered, f"preview: {rendered.description}"
        if level == "instance":
            for number, stack in enumerate(app.stacks(target[2])):
                for index, piece in enumerate(stack.slices):
                    if piece.source.sop_uid == uid:
                        rendered = app.render_series(target[2], Request(stack=number, index=index))
                        return rendered, f"preview: this instance ({rendered.description})"
            raise UserError("this instance holds no image")
        failures = []
        for row in app.read(search, "series", Filters(study=uid)):
            try:
                rendered = app.render_series(row["SeriesInstanceUID"])
            except UserError as exc:
                failures.append(str(exc))
                continue
            name = f"{row['Modality']} {row['SeriesNumber'] or ''} {row['SeriesDescription'] or ''}"
            return rendered, f"preview: series {name.strip()}, {rendered.description}"
        raise UserError("no series of this study has an image to show")

    def _show_preview(self, target: Key, rendered: Any, caption: str) -> None:
        if target != self._preview_key:
            return  # the cursor moved on: this belongs to another node
        panel = self.query_one("#preview", ImagePanel)
        # A series' description and an error's path are in it: text, never markup or escapes.
        self.query_one("#preview-caption", Static).update(line((caption, "dim")))
        if rendered is None:
            panel.clear()
            return
        view = rendered.view
        labels = view.labels if view is not None else {}
        aspect = view.pixel_spacing[0] / view.pixel_spacing[1] if view is not None else 1.0
        panel.show(rendered.image, labels, aspect, key=target)

    # -- loading, in workers; rebuilds keep what was open and the cursor ---------------------

    def load_patients(self, filters: Filters, state: TreeState | None = None) -> None:
        """Fill the tree with the patients matching ``filters``; patients and studies that
        were open stay open, and the cursor stays on its node when it is still there (or
        on the one of ``state``, the tree as it was before a filter was typed)."""
        self.filters = filters
        opened, path = state or self._tree_state()
        self._fetch_patients(filters, opened, path)

    def _tree_state(self) -> TreeState:
        """The open nodes and the cursor's path, by their keys."""
        opened = {node_key(node.data) for node in self._every_node() if node.is_expanded}
        cursor = self.archive_tree.cursor_node
        path: list[Key | None] = []
        while cursor is not None and cursor.data:
            path.insert(0, node_key(cursor.data))
            cursor = cursor.parent
        return opened, path

    def _every_node(self) -> list[Node]:
        out, todo = [], list(self.archive_tree.root.children)
        while todo:
            node = todo.pop()
            out.append(node)
            todo += node.children
        return out

    @work(thread=True, exclusive=True, group="patients")
    def _fetch_patients(
        self, filters: Filters, opened: set[Key | None], path: list[Key | None]
    ) -> None:
        read: Any = pacs(self).read
        rows = read(search, "patient", filters, self.recent_first)
        children: dict[Key | None, list[dict[str, Any]]] = {}
        todo = [{"level": "patient", "row": row, "filters": filters} for row in rows]
        while todo:
            data = todo.pop()
            key = node_key(data)
            if key in opened and data["level"] != "instance":
                children[key] = self._children_rows(data)
                level = {"patient": "study", "study": "series", "series": "instance"}
                for row in children[key]:
                    todo.append({"level": level[data["level"]], "row": row, "filters": filters})
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show_patients, rows, filters, children, path)

    def _show_patients(
        self,
        rows: list[dict[str, Any]],
        filters: Filters,
        children: dict[Key | None, list[dict[str, Any]]],
        path: list[Key | None],
    ) -> None:
        tree = self.archive_tree
        tree.clear()
        found: dict[Key | None, Node] = {}
        for row in rows:
            data = {"level": "patient", "row": row, "filters": filters}
            node = tree.root.add(
                patient_label(row, row["NumberOfPatientRelatedStudies"], self.private), data=data
            )
            node.allow_expand = True
            found[node_key(data)] = node
        pending = [node for key, node in found.items() if key in children]
        while pending:
            node = pending.pop()
            assert node.data is not None  # every node of the archive's tree has its data
            node.data["loaded"] = True
            for child in self._add_rows(node, children[node_key(node.data)]):
                found[node_key(child.data)] = child
                if node_key(child.data) in children:
                    pending.append(child)
            node.expand()
        self.sub_title = plural(len(rows), "patient")
        target = next((found[key] for key in reversed(path) if key in found), None)
        self.call_after_refresh(self._place_cursor, target)

    def _place_cursor(self, node: Node | None) -> None:
        tree = self.archive_tree
        self._jump_to = None  # the cursor is where a jump went: it is the start again
        if node is not None:
            tree.move_cursor(node)
        elif tree.root.children:
            tree.cursor_line = 0  # a patient is highlighted at once: keys act on it
        self.follow()  # the cursor may not have moved a line: no highlight message then

    @on(ArchiveTree.NodeExpanded)
    def load_on_expand(self, event: ArchiveTree.NodeExpanded[dict[str, Any]]) -> None:
        data = event.node.data or {}
        if data.get("loaded") or data.get("level") not in ("patient", "study", "series"):
            return
        data["loaded"] = True
        self.load_children(event.node)

    @work(thread=True, group="children")
    def load_children(self, node: Node) -> None:
        rows = self._children_rows(node.data or {})
        self.app.call_from_thread(self._add_rows, node, rows)

    def _children_rows(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        """A patient's studies (with their triage), a study's series or a series'
        instances (worker thread)."""
        read: Any = pacs(self).read
        row = data["row"]
        if data["level"] == "patient":
            filters = data["filters"]
            # exactly this patient: an empty ID or name is a value here, not "any"
            identity = (
                row["PatientID"] or "",
                row["PatientName"] or "",
                row["PatientBirthDate"] or "",
            )
            narrowed = replace(filters, patient=identity, name_or_id="")
            return read(search, "study", narrowed)
        if data["level"] == "series":
            return read(search, "instance", Filters(series=row["SeriesInstanceUID"]))
        return read(search, "series", Filters(study=row["StudyInstanceUID"]))

    def _add_rows(self, node: Node, rows: list[dict[str, Any]]) -> list[Node]:
        level = (node.data or {})["level"]
        added = []
        for row in rows:
            if level == "series":
                added.append(
                    node.add_leaf(instance_label(row), data={"level": "instance", "row": row})
                )
                continue
            if level == "patient":
                data = {"level": "study", "row": row, "filters": node.data["filters"]}  # type: ignore[index]
                child = node.add(study_label(row, self.private), data=data)
            else:
                child = node.add(series_label(row), data={"level": "series", "row": row})
            child.allow_expand = True  # its series or instances, on demand
            added.append(child)
        return added

    # -- actions --------------------------------------------------------------------------

    def action_sort(self) -> None:
        self.recent_first = not self.recent_first
        self.notify("patients by latest study" if self.recent_first else "patients by name")
        self.load_patients(self.filters)

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        type_into(box)
        if not box.value:
            self._unfiltered = self._tree_state()  # to come back to when the filter goes
        box.add_class("shown")

    def action_clear_filter(self) -> None:
        """Esc: the filter goes (all patients again, the open ones kept open)."""
        box = self.query_one("#filter", Input)
        box.remove_class("shown")
        self.archive_tree.focus()
        if box.value:
            box.value = ""  # Input.Changed reloads

    @on(Input.Changed, "#filter")
    def filter_changed(self, event: Input.Changed) -> None:
        error = self.query_one("#filter-error", Static)
        try:
            filters = parse_filter(event.value)
        except UserError as exc:
            error.update(line(str(exc)))  # it quotes what was typed (or pasted)
            error.add_class("shown")
            return  # the tree stays as it was, with its details: nothing stale
        error.remove_class("shown")
        state = None
        if not event.value.strip() and self._unfiltered is not None:
            # the nodes open before the filter and those opened since; the cursor where the
            # user left it (on a patient the filter showed), not where it was before
            opened, path = self._tree_state()
            before_opened, before_path = self._unfiltered
            state, self._unfiltered = (before_opened | opened, path or before_path), None
        self.load_patients(filters, state)

    @on(Input.Submitted, "#filter")
    def filter_done(self) -> None:
        self.archive_tree.focus()

    def action_reload(self) -> None:
        self.load_patients(self.filters)

    def action_remote(self) -> None:
        """Query and retrieve from a PACS (the remote screen)."""
        self.app.post_message(OpenRemote())

    def action_import(self) -> None:
        """Import files; the app reloads the browser when it is over."""
        self.app.post_message(OpenImport())

    def action_open_file(self) -> None:
        """Ask for a NIfTI, NRRD or picture file and view it (nothing is imported)."""

        def chosen(path: str | None) -> None:
            if path and path.strip():
                self.open_file(path.strip())

        self.app.push_screen(
            NoteScreen("", "a file to view: .nii .nii.gz .nrrd .nhdr .tif .png .jpg .jp2"),
            chosen,
        )

    @work(thread=True, group="open-file")
    def open_file(self, path: str) -> None:
        """Open the file in a worker (it may be large); the viewer shows it, or one notice
        says why it cannot be."""
        from pathlib import Path

        try:
            opened = pacs(self).open_file(Path(path).expanduser())
        except (UserError, OSError) as exc:  # an OSError the reader did not name: one line too
            said = str(exc) if isinstance(exc, UserError) else f"{path}: {exc.strerror or exc}"
            self.app.call_from_thread(self.notify, said, severity="error")
            return
        self.app.post_message(OpenViewer(opened.series))

    def action_tags(self) -> None:
        node = self.archive_tree.cursor_node
        data = (node.data or {}) if node is not None else {}
        if data.get("level") == "instance":
            self.open_tags(data["row"]["SeriesInstanceUID"], data["row"]["path"])
        elif data.get("level") == "series":
            self.open_tags(data["row"]["SeriesInstanceUID"])
        else:
            self.notify("choose a series or an instance to read its tags")

    @work(thread=True, group="tags")
    def open_tags(self, series_uid: str, path: str | None = None) -> None:
        from tui.archive.query import series_instances

        paths = [row["path"] for row in pacs(self).read(series_instances, series_uid)]
        index = paths.index(path) if path in paths else 0
        self.app.post_message(OpenTags(paths, index))

    def action_view(self) -> None:
        node = self.archive_tree.cursor_node
        data = (node.data or {}) if node is not None else {}
        if data.get("level") != "series":
            self.notify("choose a series to view")
            return
        self.app.post_message(OpenViewer(data["row"]))

    def _subject(self, what: str) -> tuple[str, dict[str, Any], Text] | None:
        """The highlighted patient, study or series (level, row, label), or None after
        saying what to choose."""
        node = self.archive_tree.cursor_node
        data = (node.data or {}) if node is not None else {}
        if node is None or data.get("level") not in ("patient", "study", "series"):
            self.notify(f"choose a patient, a study or a series to {what}")
            return None
        return (
            data["level"],
            dict(data["row"]),
            Text(node.label) if isinstance(node.label, str) else node.label.copy(),
        )

    def action_share(self) -> None:
        """Export or send the highlighted patient, study or series (the share dialog)."""
        subject = self._subject("share")
        node = self.archive_tree.cursor_node
        if subject is not None and node is not None:
            # a patient: its studies as the tree shows them, under the filter
            self.app.post_message(OpenShare(*subject, filters=(node.data or {}).get("filters")))

    def action_print(self) -> None:
        """Print a sheet of the highlighted series (the print dialog)."""
        node = self.archive_tree.cursor_node
        data = (node.data or {}) if node is not None else {}
        if node is None or data.get("level") != "series":
            self.notify("print works on a series: highlight one (or view it: P prints the view)")
            return
        label = Text(node.label) if isinstance(node.label, str) else node.label.copy()
        self.app.post_message(OpenPrint(dict(data["row"]), label))

    def action_edit(self) -> None:
        """Edit the highlighted patient's, study's or series' attributes; the app reloads
        the browser after a save."""
        subject = self._subject("edit")
        if subject is not None:
            self.app.post_message(OpenEdit(*subject))

    # -- triage: shown at once, written in the order of the key presses ----------------------

    def _study_node(self) -> Node | None:
        """The study to triage (the highlighted one, or the one it is in), after saying
        why there is none: a read-only archive is refused before anything changes."""
        try:
            pacs(self).archive.require_writable()
        except UserError as exc:
            self.notify(str(exc), severity="error")
            return None
        node = self.archive_tree.cursor_node
        while node is not None and (node.data or {}).get("level") not in ("study", None):
            node = node.parent
        if node is None or (node.data or {}).get("level") != "study":
            self.notify("choose a study (or one of its series) to triage")
            return None
        return node

    def _change_triage(self, node: Node, **changes: Any) -> None:
        """Show the change now and queue its write: each key press counts, however fast."""
        row = node.data["row"]  # type: ignore[index]
        row.update(changes)
        node.set_label(study_label(row, self.private))
        if node is self.archive_tree.cursor_node:
            self.follow()
        with self._writes_lock:
            self._writes.append((node, row["StudyInstanceUID"], changes))
            if self._writing:
                return
            self._writing = True
        self._write_triage()

    @work(thread=True, group="triage")
    def _write_triage(self) -> None:
        read: Any = pacs(self).read
        while True:
            with self._writes_lock:
                if not self._writes:
                    self._writing = False
                    return
                node, uid, changes = self._writes.popleft()
            try:
                read(triage.update, uid, **changes)
            except UserError as exc:
                self.app.call_from_thread(self._triage_failed, node, uid, str(exc))

    def _triage_failed(self, node: Node, uid: str, message: str) -> None:
        self.notify(message, severity="error")
        try:
            state = pacs(self).read(triage.get, uid)
        except UserError:
            return
        row = node.data["row"]  # type: ignore[index]
        row.update(
            flagged=state.flagged, priority=state.priority, reviewed=state.reviewed, note=state.note
        )
        node.set_label(study_label(row, self.private))
        self.follow()

    def action_flag(self) -> None:
        node = self._study_node()
        if node is not None:
            self._change_triage(node, flagged=not node.data["row"]["flagged"])  # type: ignore[index]

    def action_priority(self) -> None:
        node = self._study_node()
        if node is not None:
            priority = (int(node.data["row"]["priority"]) + 1) % len(PRIORITIES)  # type: ignore[index]
            self._change_triage(node, priority=priority)

    def action_reviewed(self) -> None:
        node = self._study_node()
        if node is not None:
            self._change_triage(node, reviewed=not node.data["row"]["reviewed"])  # type: ignore[index]

    def action_note(self) -> None:
        node = self._study_node()
        if node is None:
            return

        def done(note: str | None) -> None:
            if note is not None:
                self._change_triage(node, note=note)

        self.app.push_screen(NoteScreen(str(node.data["row"].get("note", ""))), done)  # type: ignore[index]

    def action_unreviewed(self, step: int) -> None:
        """] and [: each press one study on, however fast (a burst is taken in order)."""
        self._jump_steps.append(step)
        if self._jumping:
            return  # the running jump takes this step too
        self._jumping = True
        current = self._jump_to
        node = self.archive_tree.cursor_node
        while current is None and node is not None and node.data:
            if node.data.get("level") == "study":
                current = node.data["row"]["StudyInstanceUID"]
            node = node.parent
        patients = [(p, node_key(p.data)) for p in self.archive_tree.root.children]
        self.jump_unreviewed(patients, current)

    @work(thread=True, group="jump")
    def jump_unreviewed(self, patients: list[tuple[Node, Key | None]], current: str | None) -> None:
        """To the next study not yet reviewed, in the list's order (patients, then dates),
        once for each step pressed until the steps run out."""
        try:
            self._jump(patients, current)
        except UserError as exc:  # the archive cannot be read: say so, and ] works again
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            while self.app.call_from_thread(self._take_steps):
                pass

    def _jump(self, patients: list[tuple[Node, Key | None]], current: str | None) -> None:
        read: Any = pacs(self).read
        studies: dict[Key | None, list[str]] = {}
        for row in read(search, "study", replace(self.filters, name_or_id="")):
            key = node_key({"level": "patient", "row": row})
            studies.setdefault(key, []).append(row["StudyInstanceUID"])
        order = [(patient, uid) for patient, key in patients for uid in studies.get(key, [])]
        uids = [uid for _, uid in order]
        while steps := self.app.call_from_thread(self._take_steps):
            target = current
            for step in steps:
                target = read(triage.neighbour_unreviewed, uids, target, step)
            if target is None:
                self.app.call_from_thread(self.notify, "every study is reviewed")
                continue
            patient = next(p for p, uid in order if uid == target)
            data = patient.data or {}
            rows = None if data.get("loaded") else self._children_rows(data)
            self.app.call_from_thread(self._go_to_study, patient, target, rows)
            current = target

    def _take_steps(self) -> list[int]:
        """The steps pressed so far (UI thread); none left ends the jump."""
        steps, self._jump_steps = self._jump_steps, []
        if not steps:
            self._jumping = False
        return steps

    def _go_to_study(
        self, patient: Node, study_uid: str, rows: list[dict[str, Any]] | None
    ) -> None:
        try:
            self.archive_tree.get_node_by_id(patient.id)
        except UnknownNodeID:
            self._jump_to = None
            return  # the tree was rebuilt meanwhile
        self._jump_to = study_uid
        if rows is not None and not patient.data.get("loaded"):  # type: ignore[union-attr]
            patient.data["loaded"] = True  # type: ignore[index]
            self._add_rows(patient, rows)
        patient.expand()
        for child in patient.children:
            if child.data["row"]["StudyInstanceUID"] == study_uid:  # type: ignore[index]
                self.call_after_refresh(self._place_cursor, child)
                return
        self._jump_to = None  # not in the tree as it is now
