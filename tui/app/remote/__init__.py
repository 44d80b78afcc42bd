"""The remote screen and its parts: query a PACS, watch the answers arrive, retrieve what you
mark. Nodes come from config.toml (``pacs-tui node add``); queries, series look-ups, echoes
and retrieves run in thread workers through :mod:`tui.net`, so the screen never waits on the
network."""

from tui.app.remote.form import query_keys
from tui.app.remote.results import ResultTree, series_label, study_label
from tui.app.remote.screen import RemoteScreen, open_remote

__all__ = [
    "RemoteScreen",
    "ResultTree",
    "open_remote",
    "query_keys",
    "series_label",
    "study_label",
]
