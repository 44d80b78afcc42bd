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


def _app_imports(path: Path, module: str) -> set[str]:
    """Every module ``path`` imports, anywhere in it (functions too), relative ones resolved;
    ``from tui.app import browser`` counts as importing ``tui.app.browser``."""
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def test_screens_never_import_each_other() -> None:
    """Only app.py opens screens (tui/app/messages.py): a screen module importing another,
    even inside a function, is the cycle the messages replaced. A screen module is one that
    defines a Screen (a package such as remote/ counts as one); dialogs.py holds the small
    modals every screen may use."""
    app = PACKAGE / "app"
    modules = {}
    for path in sorted(app.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[path] = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    screens = set()
    for path, module in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                bases = {ast.unparse(base).split("[")[0] for base in node.bases}
                if bases & {"Screen", "ModalScreen"}:
                    screens.add(module.split(".")[2])  # tui.app.<unit>[.part]
    screens -= {"app", "dialogs"}
    assert {"browser", "remote", "viewer", "tags", "mpr", "importing"} <= screens, screens
    for path, module in modules.items():
        unit = module.split(".")[2] if module.count(".") >= 2 else ""
        if unit == "app":
            continue
        for name in _app_imports(path, module):
            parts = name.split(".")
            if parts[:2] == ["tui", "app"] and len(parts) > 2 and parts[2] in screens:
                assert parts[2] == unit, f"{path.relative_to(PACKAGE)} imports {name}"


def test_every_package_is_installed() -> None:
    """pyproject.toml lists the packages pip installs: a new folder of modules left out of
    it works in a checkout and is missing after ``pip install .``."""
    import tomllib

    config = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(PACKAGE.parent).parts)
        for init in PACKAGE.rglob("__init__.py")
    }
    assert found - listed == set()
