"""pydicom set up as the archive reads with it, once, by whichever module loads it first.

:mod:`tui.archive.header` imports this (so does every module that imports the header
reader), and :mod:`tui.archive.record` before it hands a value to pydicom.
"""

from __future__ import annotations

import logging

from pydicom import config

# Values that fail validation are read as they are: the index keeps what the file says.
config.settings.reading_validation_mode = config.IGNORE
# pydicom's messages quote tag values (patient data) and the problems they report reach
# the user through our own reasons: keep them out of logs and off the terminal.
logging.getLogger("pydicom").setLevel(logging.CRITICAL)
