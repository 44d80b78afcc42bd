"""What the user chose for how pacs-tui looks and behaves: the command line's options over
config.toml over the defaults, resolved and checked in one place for the app and every
command alike (before, each call site read config.toml its own way and they drifted:
``--dither`` did nothing in the app).

config.toml keys: ``graphics``, ``bandwidth``, ``dither``, ``theme``, ``privacy``,
``[keys]`` (binding id = key) and ``[render] cache_mb``. A wrong value is one line naming
the file, the key and what it takes. Node and receiver settings stay with the network
layer (:mod:`tui.net.nodes`), which reads and writes them.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tui.config import load_config
from tui.errors import UserError
from tui.term.detect import Bandwidth, choose_bandwidth, choose_graphics
from tui.term.modes import BANDWIDTHS, GRAPHICS

DITHERS = ("none", "ordered", "diffusion")


@dataclass(frozen=True)
class Settings:
    graphics: str = "auto"  # as asked: auto, kitty, sixel, ...
    bandwidth: str = "auto"  # as asked: auto, low, normal, high
    dither: str = "none"
    theme: str | None = None
    privacy: bool = False
    keymap: dict[str, str] = field(default_factory=dict)
    cache_mb: float = 1024.0

    @classmethod
    def resolve(cls, args: argparse.Namespace | None, config_file: Path) -> Settings:
        """The options in ``args`` (those the command has), else config.toml's, else the
        defaults.

        Raises
        ------
        UserError
            For a value config.toml or the command line gives that is not one of the
            choices, naming where it came from.
        """
        config = load_config(config_file)

        def chosen(name: str, choices: tuple[str, ...] | None = None) -> Any:
            given = getattr(args, name, None) if args is not None else None
            value = config.get(name) if given in (None, False) else given
            if value is None:
                return getattr(cls, name)
            if choices is not None and value not in choices:
                where = f"--{name}" if given not in (None, False) else f"{config_file}: {name}"
                raise UserError(f"{where} {value!r}: choose one of {', '.join(choices)}")
            return value

        privacy = chosen("privacy")
        theme = chosen("theme")
        keymap = config.get("keys", {})
        cache_mb = config.get("render", {}).get("cache_mb", cls.cache_mb)
        if not isinstance(privacy, bool):
            raise UserError(f"{config_file}: privacy is true or false")
        if theme is not None and not isinstance(theme, str):
            raise UserError(f"{config_file}: theme is a theme's name, as a string")
        if not isinstance(keymap, Mapping) or not all(isinstance(v, str) for v in keymap.values()):
            raise UserError(f"{config_file}: [keys] maps binding ids to keys, as strings")
        if isinstance(cache_mb, bool) or not isinstance(cache_mb, int | float) or cache_mb <= 0:
            raise UserError(f"{config_file}: [render] cache_mb must be a positive number")
        return cls(
            graphics=chosen("graphics", GRAPHICS),
            bandwidth=chosen("bandwidth", BANDWIDTHS),
            dither=chosen("dither", DITHERS),
            theme=theme,
            privacy=privacy,
            keymap=dict(keymap),
            cache_mb=float(cache_mb),
        )

    def link(self, env: Mapping[str, str] | None = None) -> Bandwidth:
        """What the bandwidth setting allows in this terminal, with the dither chosen."""
        chosen = choose_bandwidth(self.bandwidth, env)
        return replace(chosen, mode=replace(chosen.mode, dither=self.dither))

    def protocol(self, tty_fd: int | None = None) -> str:
        """The image protocol to draw with (``auto`` asks the terminal on ``tty_fd``)."""
        return choose_graphics(self.graphics, tty_fd=tty_fd)
