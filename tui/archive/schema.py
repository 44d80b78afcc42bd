"""The index's SQLite schema and its migrations.

``PRAGMA user_version`` holds the schema version. Each migration moves the
schema one version up inside a transaction; an archive written by a newer
pacs-tui is refused rather than damaged.
"""

from __future__ import annotations

import sqlite3

from tui.archive.elements import DEFLATED
from tui.errors import UserError

_V1 = """
CREATE TABLE patient (
    patient_pk   INTEGER PRIMARY KEY,
    patient_id   TEXT NOT NULL,
    patient_name TEXT NOT NULL,
    name_key     TEXT NOT NULL,       -- folded for case- and accent-insensitive search
    birth_date   TEXT NOT NULL,
    sex          TEXT NOT NULL,
    UNIQUE (patient_id, patient_name, birth_date)
);
CREATE INDEX patient_by_id ON patient (patient_id);

CREATE TABLE study (
    study_pk            INTEGER PRIMARY KEY,
    patient_pk          INTEGER NOT NULL REFERENCES patient ON DELETE CASCADE,
    study_uid           TEXT NOT NULL UNIQUE,
    study_date          TEXT NOT NULL,
    study_time          TEXT NOT NULL,
    accession           TEXT NOT NULL,
    description         TEXT NOT NULL,
    referring_physician TEXT NOT NULL,
    modalities          TEXT NOT NULL DEFAULT '',   -- ModalitiesInStudy, backslash-separated
    num_series          INTEGER NOT NULL DEFAULT 0,
    num_instances       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX study_by_patient ON study (patient_pk);
CREATE INDEX study_by_date ON study (study_date);

CREATE TABLE series (
    series_pk     INTEGER PRIMARY KEY,
    study_pk      INTEGER NOT NULL REFERENCES study ON DELETE CASCADE,
    series_uid    TEXT NOT NULL UNIQUE,
    modality      TEXT NOT NULL,
    series_number INTEGER,
    description   TEXT NOT NULL,
    body_part     TEXT NOT NULL,
    num_instances INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX series_by_study ON series (study_pk);

-- One row per indexed file: a Part 10 file holds exactly one SOP instance.
CREATE TABLE instance (
    instance_pk        INTEGER PRIMARY KEY,
    series_pk          INTEGER NOT NULL REFERENCES series ON DELETE CASCADE,
    sop_uid            TEXT NOT NULL UNIQUE,
    sop_class          TEXT NOT NULL,
    instance_number    INTEGER,
    transfer_syntax    TEXT NOT NULL,
    rows               INTEGER,
    columns            INTEGER,
    frames             INTEGER NOT NULL,
    samples_per_pixel  INTEGER,
    photometric        TEXT NOT NULL,
    bits_allocated     INTEGER,
    position           TEXT NOT NULL,   -- ImagePositionPatient, backslash-separated
    orientation        TEXT NOT NULL,   -- ImageOrientationPatient
    pixel_spacing      TEXT NOT NULL,
    slice_thickness    REAL,
    acquisition_number INTEGER,
    temporal_position  INTEGER,
    pixel_offset       INTEGER,         -- byte offset of the pixel data value
    pixel_length       INTEGER,         -- -1 when encapsulated
    fragments          BLOB,            -- little-endian uint64 (offset, length) pairs
    offset_table       BLOB,            -- Basic Offset Table entries, uint64
    path               TEXT NOT NULL UNIQUE,
    size               INTEGER NOT NULL,
    mtime_ns           INTEGER NOT NULL,
    managed            INTEGER NOT NULL  -- 1: in the archive's store, ours to delete
);
CREATE INDEX instance_by_series ON instance (series_pk);

-- Files looked at but not indexed as instances, so that re-import only stats them.
-- kind: 'skipped' (reason says why), 'duplicate' (sop_uid already indexed from
-- another file), 'dicomdir', 'copied' (source of a --copy import).
CREATE TABLE seen_file (
    path     TEXT PRIMARY KEY,
    size     INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    reason   TEXT NOT NULL DEFAULT '',
    sop_uid  TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE INDEX seen_file_by_uid ON seen_file (sop_uid) WHERE sop_uid != '';
"""

# Version 2: what the renderer needs to read and display pixels straight from the index.
_V2 = """
ALTER TABLE instance ADD COLUMN bits_stored INTEGER;
ALTER TABLE instance ADD COLUMN pixel_representation INTEGER;
ALTER TABLE instance ADD COLUMN rescale_slope REAL;
ALTER TABLE instance ADD COLUMN rescale_intercept REAL;
ALTER TABLE instance ADD COLUMN window_center TEXT NOT NULL DEFAULT '';
ALTER TABLE instance ADD COLUMN window_width TEXT NOT NULL DEFAULT '';
-- Files indexed before have none of these: the next import reads them again.
UPDATE instance SET mtime_ns = -1;
"""

# Version 3: triage, kept by StudyInstanceUID so it survives forgetting and importing again.
_V3 = """
CREATE TABLE triage (
    study_uid TEXT PRIMARY KEY,
    flagged   INTEGER NOT NULL DEFAULT 0,
    priority  INTEGER NOT NULL DEFAULT 0,   -- 0 none, 1 low, 2 high, 3 urgent
    reviewed  INTEGER NOT NULL DEFAULT 0,
    note      TEXT NOT NULL DEFAULT '',
    updated   TEXT NOT NULL
) WITHOUT ROWID;
"""

# An instance the viewer can show (as tui.render.volume.slices_of takes them): rows of
# pixel data, located at import (a deflated file's are found when it is read).
IS_IMAGE = f"(i.rows > 0 AND (i.pixel_offset IS NOT NULL OR i.transfer_syntax = '{DEFLATED}'))"

# Version 4: images apart from instances, so that ls shows a series with nothing to view
# (a structured report, an RT plan) as such.
_V4 = f"""
ALTER TABLE series ADD COLUMN num_images INTEGER NOT NULL DEFAULT 0;
ALTER TABLE study ADD COLUMN num_images INTEGER NOT NULL DEFAULT 0;
UPDATE series SET num_images =
    (SELECT count(*) FROM instance i WHERE i.series_pk = series.series_pk AND {IS_IMAGE});
UPDATE study SET num_images =
    (SELECT coalesce(sum(num_images), 0) FROM series s WHERE s.study_pk = study.study_pk);
"""

# Version 5: the record of edits (``pacs-tui edit``): when, who, what was asked, each
# attribute's old and new values, and each instance's file before and after, so that an edit
# can be undone. The files themselves are never deleted by an edit or its undo. (IF NOT
# EXISTS: a test makes an index look older by lowering user_version alone.)
_V5 = """
CREATE TABLE IF NOT EXISTS edit (
    edit_id  INTEGER PRIMARY KEY,
    at       TEXT NOT NULL,              -- UTC, ISO 8601
    os_user  TEXT NOT NULL,
    level    TEXT NOT NULL,              -- 'patient', 'study' or 'series'
    target   TEXT NOT NULL,              -- the PatientID or UID edited
    command  TEXT NOT NULL,              -- what was asked, as edit's options
    undoes   INTEGER                     -- for an undo: the edit whose files it restored
);
-- Per attribute: one row per distinct (old, new) pair, with how many instances had it.
CREATE TABLE IF NOT EXISTS edit_change (
    edit_id   INTEGER NOT NULL REFERENCES edit ON DELETE CASCADE,
    keyword   TEXT NOT NULL,
    old       TEXT,                      -- NULL: the attribute was absent
    new       TEXT,
    instances INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS edit_change_by_edit ON edit_change (edit_id);
CREATE TABLE IF NOT EXISTS edit_file (
    edit_id       INTEGER NOT NULL REFERENCES edit ON DELETE CASCADE,
    sop_uid       TEXT NOT NULL,
    previous_path TEXT NOT NULL,
    new_path      TEXT NOT NULL,
    PRIMARY KEY (edit_id, sop_uid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS edit_file_by_uid ON edit_file (sop_uid);
"""

MIGRATIONS: list[str] = [_V1, _V2, _V3, _V4, _V5]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, read_only: bool = False) -> None:
    """Bring the schema up to :data:`SCHEMA_VERSION`.

    A read-only index cannot be brought up: one of an older version is refused.
    Two processes may open a new index at once (two imports): a migration that fails
    because the other did it first is not an error.
    """
    while True:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise UserError(
                f"the archive index has schema version {version}, newer than this pacs-tui "
                f"understands ({SCHEMA_VERSION}): upgrade pacs-tui"
            )
        if read_only and version < SCHEMA_VERSION:
            raise UserError(
                f"the archive is read-only and its index has schema version {version}, older"
                f" than this pacs-tui's ({SCHEMA_VERSION}): open it once where it can be written"
            )
        if version == SCHEMA_VERSION:
            return
        try:
            conn.executescript(
                f"BEGIN IMMEDIATE; {MIGRATIONS[version]};"
                f" PRAGMA user_version = {version + 1}; COMMIT;"
            )
        except sqlite3.Error:
            if conn.in_transaction:
                conn.rollback()
            if conn.execute("PRAGMA user_version").fetchone()[0] == version:
                raise  # not another process's migration: a real failure
