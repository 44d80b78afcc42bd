"""Search keys and DICOM wildcard matching (``*`` and ``?``), case- and accent-insensitive."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache


def fold(text: str) -> str:
    """Fold ``text`` for searching: compatibility-decomposed, accents dropped, case folded.

    >>> fold("Äneas^Rüdiger")
    'aneas^rudiger'
    """
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def has_wildcards(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


@lru_cache(maxsize=256)
def compile_wildcards(pattern: str) -> re.Pattern[str]:
    """A regular expression matching a whole value against a DICOM wildcard pattern."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL)


def name_matches(pattern: str, name_key: str) -> bool:
    """Does a folded person name match a (folded) name pattern?

    The pattern is tried against the whole name and against each of its
    component groups (alphabetic, ideographic, phonetic). A pattern without
    wildcards also matches any one name component, so ``smith`` and ``john``
    both find ``SMITH^JOHN``.
    """
    regex = compile_wildcards(pattern)
    candidates = [name_key, *name_key.split("=")] if "=" in name_key else [name_key]
    for candidate in candidates:
        if regex.fullmatch(candidate):
            return True
        if not has_wildcards(pattern) and pattern in candidate.split("^"):
            return True
    return False
