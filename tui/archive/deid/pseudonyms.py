"""Consistent pseudonyms: replacement UIDs, patient IDs and names, and date offsets, all
derived with HMAC-SHA256 from the original value and a secret key.

The same key gives the same pseudonym for the same original in every run, so a study
de-identified twice, or two studies of one patient de-identified in different runs, keep
their references (Study, Series, SOP Instance, Frame of Reference UIDs), their patient and
the intervals between their dates. Without the key the originals cannot be recovered or
tested for (the hash is keyed, so a dictionary of likely IDs is of no use).

The key lives in the user's config folder as ``deid.key`` (32 random bytes, 0600), or is
given with ``--key FILE`` (at least 16 bytes, used as they are). A patient map (``--map CSV``)
names the new patient ID and name for chosen original IDs, in place of the derived ones:

    original_id,new_id,new_name
    12345,TRIAL-001,TRIAL^001

UTF-8, one patient per line, the header line optional (recognised by its first field,
``original_id``), ``new_name`` optional (empty: the new ID is the name too); blank lines are
skipped; an ID or name holding a backslash, or longer than DICOM allows (64), a line with
another number of fields, an empty original or new ID, and an original ID listed twice are
errors that name the line.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from pathlib import Path

from tui.errors import UserError
from tui.permissions import private_file

KEY_FILE = "deid.key"
KEY_BYTES = 32  # a new key's length
MIN_KEY_BYTES = 16  # a given key shorter than this is refused (128 bits)
MAX_OFFSET_DAYS = 3650  # dates move back by 1..3650 days (up to ten years)

PatientMap = Mapping[str, tuple[str, str]]
"""Original Patient ID -> (new Patient ID, new Patient's Name)."""


class DeidError(UserError):
    """A de-identification key or patient map that cannot be used."""


def load_key(path: Path | None, config_dir: Path) -> bytes:
    """The secret key: the bytes of ``path``, or of ``config_dir/deid.key`` when ``path`` is
    None (created 0600 with 32 random bytes when missing or empty).

    Raises
    ------
    DeidError
        If ``path`` is missing, unreadable or shorter than 16 bytes, or the default key
        cannot be created.
    """
    if path is not None:
        try:
            key = path.read_bytes()
        except OSError as exc:
            raise DeidError(f"cannot read the key file {path}: {exc.strerror or exc}") from None
        if len(key) < MIN_KEY_BYTES:
            raise DeidError(
                f"the key file {path} holds {len(key)} bytes; a key needs {MIN_KEY_BYTES} or more"
            )
        return key
    default = config_dir / KEY_FILE
    try:
        config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        private_file(default)  # 0600 before a byte is written
        key = default.read_bytes()
        if not key:
            with open(default, "r+b") as out:
                out.write(secrets.token_bytes(KEY_BYTES))
            key = default.read_bytes()
    except OSError as exc:
        raise DeidError(f"cannot create the key file {default}: {exc.strerror or exc}") from None
    if len(key) < MIN_KEY_BYTES:
        raise DeidError(
            f"the key file {default} holds {len(key)} bytes; a key needs {MIN_KEY_BYTES} or more"
            " (remove it to have a new one made)"
        )
    return key


def load_map(path: Path) -> PatientMap:
    """The patient map in the CSV file ``path`` (format in the module's docstring).

    Raises
    ------
    DeidError
        If the file cannot be read or a line is malformed (the message names the line).
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DeidError(f"cannot read the patient map {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise DeidError(f"the patient map {path} is not UTF-8 text") from None
    mapping: dict[str, tuple[str, str]] = {}
    try:
        rows = list(csv.reader(text.splitlines()))
    except csv.Error as exc:
        raise DeidError(f"{path}: not a CSV file ({exc})") from None
    for number, row in enumerate(rows, 1):
        fields = [field.strip() for field in row]
        if not any(fields):
            continue
        if number == 1 and fields[0].lower() == "original_id":
            continue  # the header
        where = f"{path}, line {number}"
        if len(fields) not in (2, 3):
            raise DeidError(
                f"{where}: {len(fields)} fields; expected original_id,new_id[,new_name]"
            )
        original, new_id = fields[0], fields[1]
        new_name = fields[2] if len(fields) == 3 and fields[2] else new_id
        if not original or not new_id:
            raise DeidError(f"{where}: the original and the new patient ID must not be empty")
        for what, value in (("ID", original), ("new ID", new_id), ("new name", new_name)):
            if "\\" in value or len(value) > 64:
                raise DeidError(f"{where}: the {what} is not a DICOM value (backslash, or >64)")
        if original in mapping:
            raise DeidError(f"{where}: the original ID is listed twice")
        mapping[original] = (new_id, new_name)
    return mapping


def _digest(key: bytes, domain: bytes, value: str) -> bytes:
    # The domain keeps the three uses apart: a UID's hash is never a patient's ID's hash.
    return hmac.new(key, domain + value.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()


def uid(key: bytes, original: str) -> str:
    """The replacement for the UID ``original``: ``2.25.`` and the first 128 bits of
    HMAC-SHA256(key, original) as a decimal integer (PS3.5 B.2, at most 44 characters)."""
    digest = hmac.new(key, original.encode("ascii", "replace"), hashlib.sha256).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def patient(key: bytes, identity: str) -> tuple[str, str]:
    """(new Patient ID, new Patient's Name) for the patient known by ``identity``:
    ``ANON`` and 10 hex digits of the keyed hash, the same for both."""
    pseudonym = "ANON" + _digest(key, b"patient:", identity).hex()[:10].upper()
    return pseudonym, pseudonym


def date_offset(key: bytes, identity: str) -> int:
    """Days (1..3650) the dates of the patient known by ``identity`` move back."""
    value = int.from_bytes(_digest(key, b"dates:", identity)[:8], "big")
    return 1 + value % MAX_OFFSET_DAYS


def short(key: bytes, domain: str, original: str, width: int = 8) -> str:
    """``width`` upper-case hex digits of the keyed hash of ``original`` (AE titles)."""
    return _digest(key, domain.encode() + b":", original).hex()[:width].upper()
