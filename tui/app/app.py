"""The pacs-tui application: the browser, the viewer, themes, keys and privacy.

Navigation lives here: screens never import each other; they post a message of
:mod:`tui.app.messages` and the app pushes the screen that answers it. Screens other than
the browser are imported when first opened, so the app starts without the rendering core."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from textual import on
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.worker import WorkerFailed

from tui.app.browser import BrowserScreen
from tui.app.image_view import ImagePanel, ImageView
from tui.app.labels import plain
from tui.app.messages import (
    ArchiveChanged,
    Notice,
    OpenEdit,
    OpenImport,
    OpenMpr,
    OpenPrint,
    OpenRemote,
    OpenShare,
    OpenTags,
    OpenViewer,
)
from tui.app.themes import DEFAULT, load_themes
from tui.archive.index import Archive
from tui.archive.query import series_instances
from tui.errors import UserError
from tui.term.detect import Bandwidth
from tui.term.modes import DEFAULT_CELL

if TYPE_CHECKING:  # the rendering core (pydicom, numpy) loads on first use: a fast start
    from tui.render.foreign import Opened
    from tui.render.pipeline import Rendered, Request
    from tui.render.volume import Stack, VolumeCache

T = TypeVar("T")


class PacsApp(App[None]):
    """Browse the archive, view series; all data comes from workers."""

    TITLE = "pacs-tui"
    CSS_PATH = Path(__file__).with_name("pacs.tcss")  # absolute: subclasses elsewhere find it
    BINDINGS = [
        Binding("question_mark", "toggle_help", "Keys", id="app.help"),
        Binding("ctrl+q", "quit", "Quit", show=False, id="app.quit"),
        # Before any screen's Esc: the keys panel open is what Esc closes first.
        Binding("escape", "close_help", "Close keys", show=False, priority=True,
                id="app.close_help"),
    ]  # fmt: skip

    def __init__(
        self,
        archive: Archive,
        bandwidth: Bandwidth,
        config_dir: Path | None = None,
        theme: str | None = None,
        privacy: bool = False,
        keymap: dict[str, str] | None = None,
        cache_mb: float = 1024,
        graphics: str = "halfblock",
        cell: tuple[int, int] | None = None,
        tmux: bool = False,
        scratch_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.archive = archive
        self.bandwidth = bandwidth
        self.graphics, self.cell, self.tmux = graphics, cell, tmux
        self.privacy = privacy
        self.config_dir = config_dir
        self.cache_mb = cache_mb
        self._lock = threading.Lock()  # the stacks cache and the volume cache's creation
        self._cache: VolumeCache | None = None
        self._presets: dict[str, Any] | None = None
        self._transfers: dict[str, Any] | None = None
        self._stacks: dict[str, list[Stack]] = {}
        # Files opened (NIfTI, NRRD, pictures): their scratch DICOM files until the app ends
        self.scratch_dir = scratch_dir
        self._opened: list[Opened] = []
        self.start_with: dict[str, Any] | None = None  # a series to view at once (``open``)
        self.crashed: BaseException | None = None  # the unhandled exception that ended the app
        self.last_printer: str | None = None  # the print dialog's printer of the last job
        themes = load_themes(config_dir / "themes" if config_dir else None)
        for loaded in themes.values():
            self.register_theme(loaded)
        wanted = theme or DEFAULT
        if wanted not in themes:
            raise UserError(f"no theme {wanted!r}: {', '.join(sorted(themes))}")
        self.theme = wanted
        if keymap:
            self.set_keymap(keymap)

    def on_mount(self) -> None:
        self.push_screen(BrowserScreen())
        if self.start_with is not None:  # `pacs-tui open FILE`: its viewer, the browser below
            self.post_message(OpenViewer(self.start_with))

    def on_unmount(self) -> None:
        self.close_files()

    def _handle_exception(self, error: Exception) -> None:
        """An unhandled exception ends the app (exit status 1) as Textual has it, but its
        traceback is not printed on the terminal (Textual's shows local variables: tag
        values): it is kept in ``crashed`` for the command line, which logs it and says in
        one line what broke.

        Private Textual API, the one place the app leans on it: every unhandled exception,
        a worker's too, comes through here; ``_exit_renderables`` is what Textual prints
        on exit.
        """
        if self.crashed is None:
            self.crashed = error.error if isinstance(error, WorkerFailed) else error
        super()._handle_exception(error)
        self._exit_renderables.clear()

    # -- navigation: what the screens ask for --------------------------------------------------

    @on(OpenViewer)
    def open_viewer(self, message: OpenViewer) -> None:
        from tui.app.viewer import ViewerScreen

        self.push_screen(ViewerScreen(message.series))

    @on(OpenTags)
    def open_tags(self, message: OpenTags) -> None:
        from tui.app.tags import TagScreen

        self.push_screen(TagScreen(message.paths, message.index))

    @on(OpenMpr)
    def open_mpr(self, message: OpenMpr) -> None:
        from tui.app.mpr import MPRScreen

        self.push_screen(MPRScreen(message.series, message.window, message.stack))

    @on(OpenRemote)
    def open_remote(self) -> None:
        from tui.app.remote import open_remote

        open_remote(self)

    @on(OpenImport)
    def open_import(self) -> None:
        from tui.app.importing import ImportScreen, summary_text

        def done(summary: Any) -> None:
            if summary is not None:
                self.notify(summary_text(summary))
                self.archive_changed()

        self.push_screen(ImportScreen(), done)

    @on(OpenShare)
    def open_share(self, message: OpenShare) -> None:
        from tui.app.share import ShareScreen

        self.push_screen(ShareScreen(message.level, message.row, message.label, message.filters))

    @on(OpenPrint)
    def open_print(self, message: OpenPrint) -> None:
        from tui.app.printing import PrintScreen

        self.push_screen(PrintScreen(message.series, message.label, message.request, message.view))

    @on(OpenEdit)
    def open_edit(self, message: OpenEdit) -> None:
        from tui.app.edit import EditScreen

        def done(saved: bool | None) -> None:
            if saved:
                self.archive_changed()

        self.push_screen(EditScreen(message.level, message.row, message.label), done)

    @on(Notice)
    def _notice(self, message: Notice) -> None:
        self.notify(message.text, severity="error" if message.error else "warning", markup=False)

    @on(ArchiveChanged)
    def archive_changed(self) -> None:
        """The browser shows what arrived at once, under its current filter."""
        for screen in self.screen_stack:
            if isinstance(screen, BrowserScreen):
                screen.action_reload()

    def image_panel(self, id: str) -> ImagePanel:
        """An image panel drawing the way this terminal and link are set up."""
        view = ImageView(
            self.bandwidth.mode,
            graphics=self.graphics,
            cell=self.cell or DEFAULT_CELL,
            tmux=self.tmux,
        )
        return ImagePanel(view, id=id)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """The command palette offers every key of the screen, by name, with its key."""
        yield from super().get_system_commands(screen)
        for key, active in screen.active_bindings.items():
            binding = active.binding
            if binding.description and binding.action:
                yield SystemCommand(
                    binding.tooltip or binding.description,  # the longer name where short
                    f"{binding.action} ({key})",
                    partial(screen.run_action, binding.action),
                )

    def use_archive(self, archive: Archive, ephemeral: bool) -> None:
        """Browse another archive (an ephemeral one for a CD); the browser reloads itself.
        Files opened stay viewable: they are not the archive's."""
        with self._lock:
            self.archive = archive
            self._stacks.clear()
            for opened in self._opened:
                self._stacks[opened.series["SeriesInstanceUID"]] = opened.stacks
        self.sub_title = "ephemeral: nothing is written" if ephemeral else ""

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Notifications are text: what they carry (a tag value, a path, a PACS's error
        comment) is never markup, and control characters show as "?". ``markup`` is taken
        and ignored: a screen's ``notify`` passes Textual's default (True) on to here."""
        message, title = (plain(part).plain for part in (message, title))
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def action_toggle_help(self) -> None:
        """Every key of the screen, with what it does: the screen's own first."""
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Esc closes the keys panel only while it is open; otherwise the binding is not
        there at all, so Esc goes on to the screen and its footer shows the screen's."""
        if action == "close_help":
            return bool(self.screen.query("HelpPanel"))
        return True

    def action_close_help(self) -> None:
        self.action_hide_help_panel()

    def action_show_help_panel(self) -> None:
        from tui.app.keys import KeysHelp

        if not self.screen.query("HelpPanel"):
            self.screen.mount(KeysHelp())

    def read(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run an archive call (from a worker thread) on the thread's own connection, so
        reads never wait for an import; an in-memory archive's calls go one at a time."""
        archive = self.archive
        with archive.exclusive():
            return function(archive, *args, **kwargs)

    @property
    def presets(self) -> dict[str, Any]:
        if self._presets is None:
            from tui.render.presets import load_presets

            self._presets = load_presets(self.config_dir)
        return self._presets

    @property
    def transfers(self) -> dict[str, Any]:
        """Volume rendering presets: ours and the user's ``transfer.toml``."""
        if self._transfers is None:
            from tui.render.transfer import load_transfers

            self._transfers = load_transfers(self.config_dir)
        return self._transfers

    @property
    def cache(self) -> VolumeCache:
        from tui.render.volume import VolumeCache

        with self._lock:
            if self._cache is None:
                self._cache = VolumeCache(self.cache_mb)
            return self._cache

    def open_file(self, path: str | Path, modality: str | None = None) -> Opened:
        """Open a NIfTI, NRRD or picture file (in a worker thread, or before the app runs)
        and keep its stacks under its series' new UID, so the viewer shows it as any
        series; nothing is written to the archive. Its scratch DICOM file goes when the app
        ends (:meth:`close_files`). A file that cannot be opened raises :class:`UserError`.
        """
        from tui.render.foreign import open_foreign

        if self.scratch_dir is None:
            from tui.config import locate

            self.scratch_dir = locate().cache_dir / "open"
        opened = open_foreign(path, self.scratch_dir, modality)
        with self._lock:
            self._opened.append(opened)
            self._stacks[opened.series["SeriesInstanceUID"]] = opened.stacks
        return opened

    def close_files(self) -> None:
        """Remove the scratch files of every file opened (on exit; idempotent)."""
        with self._lock:
            opened, self._opened = self._opened, []
        for one in opened:
            one.close()

    def close_file(self, series_uid: str) -> None:
        """Forget a file opened as ``series_uid`` and remove its scratch copy (its viewer
        has closed: nothing can show it again); any other series: nothing happens."""
        with self._lock:
            gone = [o for o in self._opened if o.series["SeriesInstanceUID"] == series_uid]
            self._opened = [o for o in self._opened if o not in gone]
            if gone:
                self._stacks.pop(series_uid, None)
        for one in gone:
            one.close()

    def stacks(self, series_uid: str) -> list[Stack]:
        """A series' stacks (in a worker thread: this may read the index), kept."""
        from tui.render.volume import assemble, slices_of

        with self._lock:
            known = self._stacks.get(series_uid)
        if known is not None:
            return known
        # Outside the lock: two threads may both assemble a series; the first one kept wins.
        stacks = assemble(slices_of(self.read(series_instances, series_uid)))
        with self._lock:
            return self._stacks.setdefault(series_uid, stacks)

    def volume(self, series_uid: str, stack: int = 0, cancel: threading.Event | None = None) -> Any:
        """A series' volume, loaded once and cached (in a worker thread); ``cancel`` stops
        the load, or the wait for another thread's."""
        from tui.render.pipeline import pick_stack, volume_of

        return volume_of(pick_stack(self.stacks(series_uid), stack), self.cache, cancel=cancel)

    def render_series(
        self,
        series_uid: str,
        request: Request | None = None,
        with_count: bool = False,
        progress: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> Any:
        """Render a series (in a worker thread); optionally with the plane count. A volume
        loaded on the way reports ``progress`` and stops on ``cancel``."""
        from tui.render.pipeline import (
            VR_MODES,
            Request,
            pick_stack,
            plane_count,
            render,
            time_points,
        )

        request = request or Request()
        stack = pick_stack(self.stacks(series_uid), request.stack)
        stacks = self.stacks(series_uid)
        over = time_points(stacks, request.stack) if request.over_time else ()
        # Only a rendering reads transfer.toml: a mistake in it never stops a slice view.
        transfers = self.transfers if request.mode in VR_MODES else None
        rendered: Rendered = render(
            stack, request, self.presets, self.cache, progress, cancel, over, transfers
        )
        if with_count:
            return rendered, plane_count(stack, request, self.cache)
        return rendered
