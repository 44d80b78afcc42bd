"""A command's own resource use (CPU time, peak RSS), measured through a small launcher.

Linux carries a process's peak RSS over fork and exec (``ru_maxrss`` is at least what the
parent held when it forked), so a command started straight from pytest or from a benchmark
holding a study reports at least their size. A launcher of a few MB, started with ``-S``,
forks the command, waits for it and writes its rusage to a file: the floor is the launcher's.
"""

from __future__ import annotations

import sys
from pathlib import Path

_LAUNCHER = """\
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as report:
    report.write(f"{usage.ru_utime + usage.ru_stime} {usage.ru_maxrss}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def launched(command: list[str], report: Path) -> list[str]:
    """``command`` run through the launcher, which writes its usage to ``report``."""
    return [sys.executable, "-S", "-c", _LAUNCHER, str(report), *command]


def usage(report: Path) -> tuple[float, float]:
    """CPU seconds (user + system) and peak RSS in MB, as the launcher wrote them."""
    cpu, peak_kb = report.read_text().split()
    return float(cpu), int(peak_kb) / 1024
