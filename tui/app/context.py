"""The app a screen or widget belongs to, typed: screens reach the archive, the caches and
the settings through it (``pacs(self).read(...)``), not through ``self.app`` and an ignore."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.dom import DOMNode

if TYPE_CHECKING:  # a type only: app.py imports the screens, the screens never import it
    from tui.app.app import PacsApp


def pacs(node: DOMNode) -> PacsApp:
    """``node.app`` as the :class:`~tui.app.app.PacsApp` it is."""
    return cast("PacsApp", node.app)
