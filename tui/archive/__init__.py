"""The local archive: SQLite index, import, managed store, DICOMDIR and demo data.

Never imports Textual; listing (``index``, ``query``) does not import pydicom
either, so ``pacs-tui ls`` starts fast.
"""
