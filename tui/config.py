"""Where pacs-tui keeps its files, and the user's ``config.toml``.

Locations follow the platform's conventions (platformdirs). The archive can be
moved with ``--archive DIR`` or the ``PACS_TUI_ARCHIVE`` environment variable.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from platformdirs import PlatformDirs

from tui.errors import UserError

APP_NAME = "pacs-tui"
ARCHIVE_ENV = "PACS_TUI_ARCHIVE"
CONFIG_NAME = "config.toml"

_dirs = PlatformDirs(APP_NAME, appauthor=False)


@dataclass(frozen=True)
class Locations:
    """The folders pacs-tui reads and writes."""

    archive: Path
    config_dir: Path
    cache_dir: Path
    log_dir: Path
    archive_chosen: bool = False  # named by --archive, the environment or config.toml

    @property
    def config_file(self) -> Path:
        return self.config_dir / CONFIG_NAME

    @property
    def log_file(self) -> Path:
        return self.log_dir / "pacs-tui.log"

    @property
    def demo_archive(self) -> Path:
        """The demo archive lives beside, never inside, the user's own archive."""
        return Path(_dirs.user_data_dir) / "demo"


def locate(archive: str | os.PathLike[str] | None = None) -> Locations:
    """Return the locations.

    The archive is, first found: ``archive`` (``--archive``), ``$PACS_TUI_ARCHIVE``,
    ``archive = "..."`` in ``config.toml``, the user data folder.
    """
    config_dir = Path(_dirs.user_config_dir)
    chosen = archive or os.environ.get(ARCHIVE_ENV)
    if not chosen:
        config_file = config_dir / CONFIG_NAME
        chosen = load_config(config_file).get("archive")
        if chosen is not None and not isinstance(chosen, str):
            raise UserError(f"{config_file}: archive must be a folder path")
    return Locations(
        archive=Path(chosen or Path(_dirs.user_data_dir) / "archive").expanduser(),
        config_dir=config_dir,
        cache_dir=Path(_dirs.user_cache_dir),
        log_dir=Path(_dirs.user_log_dir),
        archive_chosen=bool(chosen),
    )


def load_config(path: Path) -> dict[str, Any]:
    """Read ``config.toml``; a missing file is an empty configuration."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"cannot read config {path}: {exc}") from None
