"""Transfer functions for volume rendering: modality value to opacity and colour.

Presets by modality come from the shipped ``transfer.toml``; the user's own
``transfer.toml`` in the config folder (same format) adds presets and overrides ours.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from tui.config import load_config
from tui.errors import UserError

_SHADING = ("ambient", "diffuse", "specular", "shininess")


@dataclass(frozen=True)
class Transfer:
    """A transfer function: piecewise linear between ``points``, clamped beyond them."""

    name: str
    # (value in modality units e.g. HU, opacity of 1 mm of that material 0..1, r, g, b 0..1)
    points: tuple[tuple[float, float, float, float, float], ...]
    ambient: float = 0.2
    diffuse: float = 0.7
    specular: float = 0.3
    shininess: float = 10.0

    def classify(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Opacity per mm (float32, shape of ``values``) and colour (..., 3) at ``values``."""
        table = np.array(self.points, dtype=np.float64)
        x = np.asarray(values, dtype=np.float64)
        opacity = np.interp(x, table[:, 0], table[:, 1]).astype(np.float32)
        rgb = np.stack([np.interp(x, table[:, 0], table[:, c]) for c in (2, 3, 4)], axis=-1)
        return opacity, rgb.astype(np.float32)


def load_transfers(config_dir: Path | None = None) -> dict[str, dict[str, Transfer]]:
    """Presets as {MODALITY: {name: Transfer}}; the user's file extends and overrides ours.

    Raises
    ------
    UserError
        In one line, naming the entry, for a broken file or preset.
    """
    shipped = tomllib.loads(resources.files("tui.render").joinpath("transfer.toml").read_text())
    merged: dict[str, dict[str, Transfer]] = {}
    user = _read(config_dir / "transfer.toml") if config_dir else {}
    for table in (shipped, user):
        for modality, entries in table.items():
            if not isinstance(entries, dict):
                raise UserError(
                    f"transfer.toml: [{modality}] must hold presets ([{modality}.NAME])"
                )
            for name, entry in entries.items():
                preset = _parse(f"{modality}.{name}", name.lower(), entry)
                merged.setdefault(modality.upper(), {})[name.lower()] = preset
    return merged


def _read(path: Path) -> dict[str, Any]:
    """The user's file (none: no presets); a TOML error in one line naming the file and
    the line, as :func:`tui.config.load_config` words it."""
    try:
        return load_config(path)
    except UserError as error:
        message = str(error).replace("cannot read config", "cannot read transfer presets", 1)
        raise UserError(message) from None


def _parse(where: str, name: str, entry: Any) -> Transfer:
    """One preset from its TOML table; UserError saying what is wrong."""
    expected = "points = [[value, opacity, red, green, blue], ...] ascending in value"
    if not isinstance(entry, dict) or not isinstance(entry.get("points"), list):
        raise UserError(f"transfer preset {where}: expected {expected}")
    unknown = set(entry) - {"points", *_SHADING}
    if unknown:
        raise UserError(f"transfer preset {where}: unknown setting {', '.join(sorted(unknown))}")
    try:
        points = tuple(tuple(float(v) for v in p) for p in entry["points"])
    except (TypeError, ValueError):
        raise UserError(f"transfer preset {where}: expected {expected}") from None
    shading = {}
    for key in _SHADING:
        if key in entry:
            value = entry[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UserError(f"transfer preset {where}: {key} must be a number, not {value!r}")
            shading[key] = float(value)
    if not points or any(len(p) != 5 for p in points):
        raise UserError(f"transfer preset {where}: expected {expected}")
    if any(not all(map(math.isfinite, p)) for p in points):
        raise UserError(f"transfer preset {where}: values must be finite numbers")
    if any(b[0] <= a[0] for a, b in itertools.pairwise(points)):
        raise UserError(f"transfer preset {where}: point values must ascend")
    if any(not 0 <= v <= 1 for p in points for v in p[1:]):
        raise UserError(f"transfer preset {where}: opacity and colours must be 0 to 1")
    if any(v < 0 or not math.isfinite(v) for v in shading.values()):
        raise UserError(f"transfer preset {where}: shading settings must be 0 or more")
    return Transfer(name, points, **shading)  # type: ignore[arg-type]


def find_transfer(
    transfers: dict[str, dict[str, Transfer]], modality: str, name: str | None
) -> Transfer:
    """The preset ``name`` for ``modality`` (or any modality's, if only one has it); with no
    name, the modality's first preset, else MR's ``default``.

    Raises
    ------
    UserError
        For an unknown name, listing the modality's presets.
    """
    own = transfers.get((modality or "").upper(), {})
    if name is None:
        if own:
            return next(iter(own.values()))
        fallback = transfers.get("MR", {}).get("default")
        if fallback is not None:
            return fallback
        raise UserError(f"no transfer presets for {modality or 'this image'}")
    wanted = name.lower()
    if wanted in own:
        return own[wanted]
    elsewhere = [p[wanted] for p in transfers.values() if wanted in p]
    if len(elsewhere) == 1:
        return elsewhere[0]
    # In file order, as the app's number keys pick them (1 bone, 2 skin, ...).
    known = list(own) or list(dict.fromkeys(n for p in transfers.values() for n in p))
    raise UserError(
        f"no transfer preset {name!r} for {modality or 'this image'}: {', '.join(known)}"
    )
