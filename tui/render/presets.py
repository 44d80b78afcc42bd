"""Window presets by modality, from the shipped ``presets.toml`` and the user's own."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from tui.config import load_config
from tui.errors import UserError
from tui.render.lut import Window


def load_presets(config_dir: Path | None = None) -> dict[str, dict[str, Window]]:
    """Presets as {modality: {name: Window}}; the user's file extends and overrides ours."""
    shipped = tomllib.loads(resources.files("tui.render").joinpath("presets.toml").read_text())
    merged: dict[str, dict[str, Window]] = {}
    user = load_config(config_dir / "presets.toml") if config_dir else {}
    for table in (shipped, user):
        for modality, entries in table.items():
            for name, value in (entries or {}).items():
                try:
                    center, width = (float(v) for v in value)
                except (TypeError, ValueError):
                    raise UserError(f"preset {modality}.{name}: expected [centre, width]") from None
                merged.setdefault(modality.upper(), {})[name.lower()] = Window(
                    center, width, name=name
                )
    return merged


def find_preset(presets: dict[str, dict[str, Window]], modality: str, name: str) -> Window:
    """The preset ``name`` for ``modality`` (or any modality's, if only one has it)."""
    wanted = name.lower()
    if wanted in presets.get(modality.upper(), {}):
        return presets[modality.upper()][wanted]
    elsewhere = [p[wanted] for p in presets.values() if wanted in p]
    if len(elsewhere) == 1:
        return elsewhere[0]
    known = sorted(presets.get(modality.upper(), {})) or sorted(
        {n for p in presets.values() for n in p}
    )
    raise UserError(f"no window preset {name!r} for {modality or 'this image'}: {', '.join(known)}")
