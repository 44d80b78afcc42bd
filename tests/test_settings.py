"""Settings (tui/settings.py): the command line over config.toml over the defaults, checked
once, and the same for the app and the commands."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tui.errors import UserError
from tui.settings import Settings


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_the_command_line_over_config_toml_over_the_defaults(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        'dither = "ordered"\ntheme = "daylight"\nprivacy = true\n'
        '[keys]\n"viewer.next" = "n"\n[render]\ncache_mb = 256\n',
    )
    assert Settings.resolve(None, tmp_path / "missing.toml") == Settings()
    from_file = Settings.resolve(None, config)
    assert (from_file.dither, from_file.theme, from_file.privacy) == ("ordered", "daylight", True)
    assert from_file.keymap == {"viewer.next": "n"} and from_file.cache_mb == 256.0
    args = argparse.Namespace(dither="diffusion", theme=None, privacy=False, bandwidth="low")
    given = Settings.resolve(args, config)
    assert (given.dither, given.theme, given.privacy, given.bandwidth) == (
        "diffusion", "daylight", True, "low",
    )  # fmt: skip
    assert given.link({}).mode.dither == "diffusion" and given.link({}).name == "low"


@pytest.mark.parametrize(
    "text, message",
    [
        ('dither = "lots"', "dither 'lots': choose one of none, ordered, diffusion"),
        ('bandwidth = "fast"', "bandwidth 'fast': choose one of auto, low, normal, high"),
        ('graphics = "pixels"', "graphics 'pixels': choose one of auto, kitty"),
        ("privacy = 1", "privacy is true or false"),
        ("[keys]\nx = 1", "[keys] maps binding ids to keys"),
        ("[render]\ncache_mb = -1", "cache_mb must be a positive number"),
    ],
)
def test_a_wrong_value_is_one_line_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    config = _config(tmp_path, text)
    with pytest.raises(UserError, match=r"config\.toml") as raised:
        Settings.resolve(None, config)
    assert message in str(raised.value)


def test_a_wrong_option_names_the_option(tmp_path: Path) -> None:
    args = argparse.Namespace(dither="lots")
    with pytest.raises(UserError, match="--dither 'lots'"):
        Settings.resolve(args, tmp_path / "config.toml")


def test_a_wrong_config_value_stops_a_command_in_one_line(
    archive, archive_dir: Path, tmp_path: Path
) -> None:
    import os

    from tests.synthetic import AXIAL, write_series
    from tui.archive.importer import import_paths

    write_series(tmp_path / "ct", AXIAL, count=2, size=8)
    import_paths(archive, [tmp_path / "ct"])

    config = Path(os.environ["XDG_CONFIG_HOME"]) / "pacs-tui" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("privacy = 1\n")
    done = run_cli("ls", archive=archive_dir, check=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"pacs-tui: error: {config}: privacy is true or false"
    ]
