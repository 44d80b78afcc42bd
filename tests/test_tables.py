"""Aligned tables in terminal cells: wide characters count twice, UIDs are never clipped."""

from __future__ import annotations

from tui.tables import cell_width, format_table

ROWS = [
    {
        "name": "Yamada^Hanako=山田^花子",
        "desc": "CT Chest Abdomen Pelvis with contrast",
        "uid": "1.2.3",
    },
    {"name": "Buc^Jérôme", "desc": "MR", "uid": "1.2.840.10008.99999.1"},
]
COLUMNS = [("name", "Name", 24), ("desc", "Description", 28), ("uid", "UID", 0)]


def test_cell_width_counts_wide_and_combining_characters() -> None:
    assert cell_width("abc") == 3
    assert cell_width("山田") == 4
    assert cell_width("e\u0301") == 1


def test_columns_line_up_in_cells() -> None:
    lines = format_table(ROWS, COLUMNS).splitlines()
    starts = {line.index("1.2.") for line in lines[1:]}
    cells = {cell_width(line[: line.index("1.2.")]) for line in lines[1:]}
    assert len(cells) == 1 and len(starts) == 2  # same cell column, different char index


def test_a_narrow_terminal_clips_text_but_never_uids() -> None:
    lines = format_table(ROWS, COLUMNS, width=50).splitlines()
    assert all(cell_width(line) <= 50 for line in lines[:2])
    assert "1.2.840.10008.99999.1" in lines[2]
    assert "…" in lines[1]
