"""Themes from TOML files: the ones shipped in ``themes/`` and the user's own."""

from __future__ import annotations

import tomllib
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from textual.theme import Theme

from tui.errors import UserError

DEFAULT = "reading-room"
_KEYS: tuple[str, ...] = ("primary", "secondary", "accent", "foreground", "background")
_KEYS += ("surface", "panel", "warning", "error", "success")


def load_themes(user_folder: Path | None) -> dict[str, Theme]:
    """Every theme found, the user's overriding ours by name."""
    themes: dict[str, Theme] = {}
    for folder in (_shipped(), user_folder):
        if folder is None or not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if not entry.name.endswith(".toml"):
                continue
            try:
                data = tomllib.loads(entry.read_text())
                theme = Theme(
                    name=str(data.get("name", entry.name.removesuffix(".toml"))),
                    dark=bool(data.get("dark", True)),
                    **{k: str(data[k]) for k in _KEYS if k in data},  # type: ignore[arg-type]
                )
            except (OSError, tomllib.TOMLDecodeError, TypeError, ValueError) as exc:
                raise UserError(f"theme {entry.name}: {exc}") from None
            themes[theme.name] = theme
    return themes


def _shipped() -> Traversable:
    """The package's themes (installed as ``tui.themes``), or the checkout's ``themes/``."""
    try:
        return resources.files("tui.themes")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "themes"
