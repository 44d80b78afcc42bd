"""The share dialog: the patient, study or series highlighted when it opened, exported as
DICOM to a folder, a ZIP or removable media (a DICOMDIR), or sent to a node, de-identified
if asked (PS3.15 Basic Profile and its options, checked by the verification pass); a series
also as NIfTI (:func:`tui.render.nifti.write_nifti`, as dcm2niix writes it).

The work is :mod:`tui.archive.media`'s and :func:`tui.net.scu.send`'s, in a worker; Esc
stops it (an export's partial output is removed) and Esc again closes the dialog. What it
exports is fixed when it opens: the title names it, and a cursor moving in the browser
behind it changes nothing.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import (
    Button,
    Checkbox,
    Input,
    Label,
    ProgressBar,
    RadioButton,
    RadioSet,
    Select,
    Static,
)

from tui.app.context import pacs
from tui.app.keys import OrderedInput
from tui.app.labels import line, plural
from tui.archive.deid.options import OPTION_NAMES, Options, Rect
from tui.archive.query import Filters, search
from tui.errors import UserError
from tui.privacy import shown

if TYPE_CHECKING:
    from tui.archive.media import Kind, Report
    from tui.net.scu import Sent

# The boolean options, as check boxes: (OPTION_NAMES name, what the box says).
CHECKS = [
    ("retain-safe-private", "retain safe private attributes"),
    ("retain-uids", "retain UIDs"),
    ("retain-device", "retain device identity"),
    ("retain-institution", "retain institution identity"),
    ("retain-patient-characteristics", "retain patient characteristics (age, sex, size...)"),
    ("clean-descriptors", "clean descriptors (descriptions, comments: removed)"),
    ("clean-structured-content", "clean structured content (SR)"),
    ("clean-graphics", "clean graphics (overlays and curves)"),
]
# Retain Longitudinal Temporal Information: one of three, as a radio set.
DATES = [
    ("remove", "dates: removed (Basic Profile)"),
    ("full", "dates: retained in full"),
    ("shifted", "dates: shifted by an offset per patient"),
]
KINDS = [
    ("folder", "a folder"),
    ("zip", "a ZIP file"),
    ("media", "media: a folder with a DICOMDIR (CD, USB stick)"),
    ("node", "a DICOM node (send)"),
    ("nifti", "NIfTI (.nii.gz) and its BIDS sidecar, as dcm2niix writes them (a series)"),
]


def options_of(checked: set[str], dates: str, blank: str, allow_burned_in: bool) -> Options:
    """The de-identification options the dialog's boxes ask for.

    ``checked`` holds names of :data:`OPTION_NAMES`; ``blank`` is rectangles to zero,
    ``X,Y,W,H`` separated by spaces or semicolons.

    Raises
    ------
    UserError
        For a rectangle that is not four numbers, a corner from 0 and a positive size.
    """
    chosen: dict[str, Any] = {OPTION_NAMES[name]: True for name in checked}
    rects: list[Rect] = []
    for text in blank.replace(";", " ").split():
        try:
            x, y, w, h = (int(v) for v in text.split(","))
        except ValueError:
            raise UserError(f"blank {text!r}: expected X,Y,WIDTH,HEIGHT in pixels") from None
        if x < 0 or y < 0 or w <= 0 or h <= 0:
            raise UserError(f"blank {text!r}: a corner from 0 and a positive size")
        rects.append((x, y, w, h))
    return Options(**chosen, dates=dates, blank=tuple(rects), allow_burned_in=allow_burned_in)  # type: ignore[arg-type]


def report_text(report: Report) -> str:
    """What an export wrote, in one notice."""
    kind = {"folder": "a folder", "zip": "a ZIP", "media": "media with a DICOMDIR"}[report.kind]
    text = (
        f"{plural(report.instances, 'instance')} ({plural(report.patients, 'patient')},"
        f" {plural(report.studies, 'study', 'studies')}, {report.series} series,"
        f" {report.bytes / 1e6:.1f} MB) to {kind}, checked"
    )
    if report.transformed:
        text += ", de-identified and verified"
    if report.refused:
        text += f"; {len(report.refused)} refused ({report.refused[0][1]})"
    return f"{text}: {report.output}"


def sent_text(sent: Sent, total: int, node: str, stopped: bool) -> str:
    """What a send did, in one notice."""
    text = f"{sent.sent}/{total} instances sent to {node}"
    if sent.refused:
        text += f"; {len(sent.refused)} refused ({sent.refused[0].split(': ', 1)[-1]})"
    if sent.failed:
        text += f"; {len(sent.failed)} failed ({sent.failed[0]})"
    if stopped:
        text += "; stopped: those sent before the stop have gone"
    return text


class ShareScreen(ModalScreen[None]):
    """Export or send one patient, study or series, de-identified if asked."""

    BINDINGS = [
        Binding("escape", "stop", "Cancel", id="share.cancel", tooltip="Stop, or close"),
        Binding("ctrl+s", "go", "Go", id="share.go", tooltip="Export or send now"),
    ]
    CSS_PATH = Path(__file__).with_name("share.tcss")

    def __init__(
        self, level: str, row: dict[str, Any], label: Text, filters: Filters | None = None
    ) -> None:
        super().__init__()
        self.level = level
        self.row = dict(row)  # what was highlighted when the dialog opened: fixed
        self.filters = filters or Filters()  # a patient's studies: those the browser shows
        self.label = label.copy()
        self.cancel = threading.Event()
        self.running = False
        self.nodes: list[str] = []

    @property
    def title_text(self) -> Text:
        """What the dialog exports, as text (tag values are never markup)."""
        patient = shown(self.row, "PatientName", pacs(self).privacy) or "(no name)"
        title = line(("Share ", "bold"), (f"{self.level}: ", "bold"))
        title.append_text(self.label)
        if self.level != "patient":
            title.append_text(line(("  of ", "dim"), patient))
        return title

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="share"):
            yield Label(self.title_text, id="share-title")
            with RadioSet(id="share-kind"):
                for kind, text in KINDS:
                    yield RadioButton(text, value=kind == "folder", id=f"kind-{kind}")
            yield OrderedInput(
                placeholder="the folder or file.zip to make (nothing is overwritten)",
                id="share-path",
            )
            yield Select[str]([], prompt="the node to send to", id="share-node")
            yield Checkbox("de-identify (PS3.15 Basic Profile)", id="share-anonymize")
            with Vertical(id="share-options"):
                for name, text in CHECKS:
                    yield Checkbox(text, id=f"opt-{name}")
                with RadioSet(id="share-dates"):
                    for value, text in DATES:
                        yield RadioButton(text, value=value == "remove", id=f"dates-{value}")
                yield Checkbox("let images with burned-in text through", id="share-allow")
                yield OrderedInput(
                    placeholder="rectangles to blank: X,Y,W,H ... (burned-in text)",
                    id="share-blank",
                )
                yield OrderedInput(
                    placeholder="key file (default: the one in the config folder)", id="share-key"
                )
                yield OrderedInput(
                    placeholder="patient map CSV: ID -> new ID, new name (optional)",
                    id="share-map",
                )
            yield ProgressBar(total=None, id="share-progress", show_eta=False)
            yield Static("", id="share-status")
            with Horizontal(id="share-buttons"):
                yield Button("Go", variant="primary", id="share-go")

    def on_mount(self) -> None:
        self.query_one("#share-options").disabled = True
        self.query_one("#share-node").display = False
        self.query_one("#kind-nifti").display = self.level == "series"
        self.query_one("#share-path", Input).focus()
        self.load_nodes()

    @work(thread=True, group="share-nodes")
    def load_nodes(self) -> None:
        """The configured nodes to send to (config.toml is read off the event loop); a
        printer is none: it only prints (the print dialog's)."""
        from tui.net.nodes import load_nodes

        config_dir = pacs(self).config_dir
        try:
            found = load_nodes(config_dir / "config.toml") if config_dir else {}
            nodes = sorted(name for name, node in found.items() if not node.printer)
        except UserError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.app.call_from_thread(self._show_nodes, nodes)

    def _show_nodes(self, nodes: list[str]) -> None:
        if not self.is_attached:
            return  # closed meanwhile
        self.nodes = nodes
        self.query_one("#share-node", Select).set_options((name, name) for name in nodes)

    # -- the form ----------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        pressed = self.query_one("#share-kind", RadioSet).pressed_button
        return (pressed.id or "kind-folder").removeprefix("kind-") if pressed else "folder"

    @on(RadioSet.Changed, "#share-kind")
    def kind_changed(self) -> None:
        node = self.kind == "node"
        self.query_one("#share-path").display = not node
        self.query_one("#share-node").display = node
        if node and not self.nodes:
            self.notify("no node configured: pacs-tui node add NAME AET HOST PORT")

    @on(Checkbox.Changed, "#share-anonymize")
    def anonymize_changed(self, event: Checkbox.Changed) -> None:
        self.query_one("#share-options").disabled = not event.value

    def _options(self) -> Options | None:
        """The de-identification asked for; None without it (UI thread)."""
        if not self.query_one("#share-anonymize", Checkbox).value:
            return None
        checked = {name for name, _ in CHECKS if self.query_one(f"#opt-{name}", Checkbox).value}
        pressed = self.query_one("#share-dates", RadioSet).pressed_button
        dates = (pressed.id or "dates-remove").removeprefix("dates-") if pressed else "remove"
        return options_of(
            checked,
            dates,
            self.query_one("#share-blank", Input).value,
            self.query_one("#share-allow", Checkbox).value,
        )

    def _text(self, box: str) -> str:
        return self.query_one(f"#{box}", Input).value.strip()

    # -- running -----------------------------------------------------------------------------

    @on(Input.Submitted, "#share-path")
    @on(Button.Pressed, "#share-go")
    def action_go(self) -> None:
        """Check what the form says, then export or send in a worker."""
        if self.running:
            return
        try:
            options = self._options()
            kind = self.kind
            if kind == "node":
                node = self.query_one("#share-node", Select).value
                if not isinstance(node, str):
                    raise UserError("choose the node to send to")
                where = node
            else:
                where = self._text("share-path")
                if not where:
                    raise UserError("type the folder or the .zip file to export to")
                if kind == "nifti" and options is not None:
                    raise UserError(
                        "de-identification is for DICOM: a NIfTI export carries no patient"
                        " attributes (its sidecar none either)"
                    )
                if kind == "nifti" and not where.lower().endswith((".nii", ".nii.gz")):
                    raise UserError("a NIfTI file's name ends in .nii.gz or .nii")
                if kind == "zip" and not where.lower().endswith(".zip"):
                    raise UserError("a ZIP file's name ends in .zip")
                if kind != "zip" and where.lower().endswith(".zip"):
                    raise UserError("a .zip name is for a ZIP file: choose ZIP, or another name")
        except UserError as exc:
            self.notify(str(exc), severity="error")
            return
        self.running = True
        self.cancel = threading.Event()  # a new one: a stopped run left the last one set
        self.query_one("#share-progress", ProgressBar).update(total=None, progress=0)
        self._status("exporting…" if kind != "node" else f"sending to {where}…")
        # the key and the map are de-identification's: ignored while it is off (greyed out)
        key, mapping = (self._text("share-key"), self._text("share-map")) if options else ("", "")
        self.run_share(kind, where, options, key, mapping)

    def _status(self, text: str) -> None:
        self.query_one("#share-status", Static).update(line(text))

    @work(thread=True, exclusive=True, group="share")
    def run_share(
        self, kind: str, where: str, options: Options | None, key: str, mapping: str
    ) -> None:
        app = pacs(self)
        try:
            uids = self._uids()
            transform = self._deidentifier(options, key, mapping, sending=kind == "node")
            if kind == "node":
                message, warn = self._send(where, uids, transform)
            elif kind == "nifti":
                message, warn = self._nifti(where), False
            else:
                message, warn = self._export(kind, where, uids, transform, options)
        except UserError as exc:
            stopped = self.cancel.is_set()
            app.call_from_thread(self._failed, str(exc).splitlines()[0], stopped)
            return
        app.call_from_thread(self._done, message, warn)

    def _uids(self) -> list[str]:
        """The Study or Series Instance UIDs of what the dialog shares (worker thread)."""
        row = self.row
        if self.level == "study":
            return [str(row["StudyInstanceUID"])]
        if self.level == "series":
            return [str(row["SeriesInstanceUID"])]
        # A patient: its studies as the browser shows them under its filter (what its
        # label counts), the patient as the index tells patients apart: an empty ID or
        # name is a value here, not "any".
        identity = (
            row.get("PatientID") or "",
            row.get("PatientName") or "",
            row.get("PatientBirthDate") or "",
        )
        narrowed = replace(self.filters, patient=identity, name_or_id="")
        rows = pacs(self).read(search, "study", narrowed)
        if not rows:
            raise UserError("this patient holds no study now (reload the browser: r)")
        return [str(study["StudyInstanceUID"]) for study in rows]

    def _deidentifier(self, options: Options | None, key: str, mapping: str, sending: bool) -> Any:
        """The de-identifier's ``apply`` (verified before it goes, when ``sending``: an export
        verifies its files), or None without de-identification."""
        if options is None:
            return None
        from tui.archive.deid.profile import Deidentifier
        from tui.archive.deid.pseudonyms import load_key, load_map

        config_dir = pacs(self).config_dir
        if not key and config_dir is None:
            raise UserError("no config folder to keep the key in: give a key file")
        secret = load_key(
            Path(key).expanduser() if key else None, config_dir or Path(key).expanduser().parent
        )
        patients = load_map(Path(mapping).expanduser()) if mapping else None
        from tui.archive.deid.verify import checked

        apply = Deidentifier(options, secret, patients).apply
        return checked(apply, options) if sending else apply

    def _progress(self, done: int, total: int) -> None:
        bar = self.query_one("#share-progress", ProgressBar)
        self.app.call_from_thread(bar.update, total=max(total, 1), progress=done)

    def _export(
        self, kind: str, where: str, uids: list[str], transform: Any, options: Options | None
    ) -> tuple[str, bool]:
        """Export; (what it did, whether some were refused)."""
        from tui.archive.deid import verify
        from tui.archive.media import VerificationFailed, export, select

        rows = pacs(self).read(select, uids)
        target: Kind = kind  # type: ignore[assignment]
        try:
            report = export(
                rows,
                Path(where).expanduser(),
                target,
                transform=transform,
                audit=verify.audit(options) if options is not None else None,
                progress=lambda done, total, _bytes: self._progress(done, total),
                cancel=self.cancel,
            )
        except VerificationFailed as failed:
            hits = failed.report.hits
            first = hits[0] if hits else {}
            raise UserError(
                f"{len(hits)} identifying values survived (the first: {first.get('kind', '?')}"
                f" in {first.get('path', '?')} of {first.get('file', '?')}): nothing was"
                " written"
            ) from None
        return report_text(report), bool(report.refused)

    def _nifti(self, where: str) -> str:
        """The series as NIfTI: its first stack, with its time points (4-D) if it has them."""
        from tui.render.nifti import write_nifti
        from tui.render.pipeline import time_points

        app = pacs(self)
        stacks = time_points(app.stacks(str(self.row["SeriesInstanceUID"])), 0)
        files = write_nifti(
            stacks, Path(where).expanduser(), app.cache, self._progress, self.cancel
        )
        return "saved " + " and ".join(str(f) for f in files)

    def _send(self, name: str, uids: list[str], transform: Any) -> tuple[str, bool]:
        """Send; (what it did, whether some were refused or failed)."""
        from tui.archive.holdings import files_of
        from tui.net.nodes import get_node
        from tui.net.scu import send

        config_dir = pacs(self).config_dir
        if config_dir is None:
            raise UserError("no config folder: no node to send to")
        node = get_node(config_dir / "config.toml", name)
        files = pacs(self).read(files_of, uids)
        sent = send(
            node,
            files,
            progress=lambda done, total: self._progress(done.sent, total),
            cancel=self.cancel,
            transform=transform,
        )
        stopped = self.cancel.is_set()
        return sent_text(sent, len(files), node.name, stopped), bool(sent.refused or sent.failed)

    def _failed(self, message: str, stopped: bool) -> None:
        self.running = False
        self.query_one("#share-progress", ProgressBar).update(total=100, progress=0)
        if stopped:
            self._status("stopped: nothing was written (Esc closes)")
            self.notify("stopped: the partial output is removed, nothing was written")
        else:
            self._status(message)
            self.notify(message, severity="error")

    def _done(self, message: str, warn: bool) -> None:
        self.running = False
        self.app.notify(message, severity="warning" if warn else "information", timeout=10)
        self.dismiss(None)

    def action_stop(self) -> None:
        """Esc: stop what runs (and say so), or close the dialog."""
        if self.running:
            self.cancel.set()
            self._status("stopping…")
        else:
            self.dismiss(None)
