"""A C-GET's start-up: what it imports (issue 14, ``benchmarks/bench_get.py``).

pydicom's import alone (with numpy and requests behind it) took more CPU than dcmtk's whole
retrieve of 300 images; pynetdicom's a tenth of a second more. The retrieve runs on our own
upper layer, encodes its identifiers and reads its arrivals' headers by hand: neither is
needed, and neither is loaded until a file the walker cannot read comes.
"""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("pydicom", "pynetdicom", "numpy")


def _loaded(modules: list[str]) -> list[str]:
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules)
    code += f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_the_retrieve_path_loads_neither_pydicom_nor_pynetdicom() -> None:
    path = ["tui.cli.parser", "tui.cli.net", "tui.net.scu", "tui.net.get", "tui.net.find",
            "tui.net.storage", "tui.archive.record", "tui.archive.holdings"]  # fmt: skip
    assert _loaded(path) == []


def test_the_modules_that_use_them_still_set_them_up() -> None:
    """Whoever loads pydicom or pynetdicom through us gets them quiet (no patient data in
    their logs, values read as they are)."""
    code = (
        "import logging, tui.net.contexts, tui.archive.header\n"
        "from pydicom import config\n"
        "from pynetdicom import _config\n"
        "print(config.settings.reading_validation_mode == config.IGNORE,"
        " _config.LOG_REQUEST_IDENTIFIERS, logging.getLogger('pydicom').level)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "False", str(50)]
