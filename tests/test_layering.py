"""The domain layers never import Textual: only tui/app may (DEVELOPERS.md, harlequin's rule)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

DOMAIN = ("archive", "render", "term", "net")
PACKAGE = Path(__file__).resolve().parents[1] / "tui"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_domain_layers_never_import_textual() -> None:
    checked = 0
    for layer in DOMAIN:
        for path in sorted((PACKAGE / layer).rglob("*.py")):
            checked += 1
            leaks = {n for n in _imports(path) if n == "textual" or n.startswith("textual.")}
            assert not leaks, f"{path.relative_to(PACKAGE)} imports {leaks}"
    assert checked, "no domain modules found"


def test_listing_does_not_load_pydicom_or_textual() -> None:
    """``pacs-tui ls`` must start fast: its import path stays free of heavy libraries."""
    code = (
        "import sys, tui.cli.parser, tui.archive.query, tui.archive.index; "
        "tui.cli.parser.build_parser(); "
        "print(','.join(m for m in ('pydicom', 'textual', 'numpy') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == ""
