"""Aligned tables in terminal cells: wide characters count twice, UIDs are never clipped."""

from __future__ import annotations

from tui.tables import cell_width, format_table

ROWS = [
    {
        "name": "Yamada^Hanako=山田^花子",
        "desc": "CT Chest Abdomen Pelvis with contrast",
        "SeriesInstanceUID": "1.2.3",
    },
    {"name": "Buc^Jérôme", "desc": "MR", "SeriesInstanceUID": "1.2.840.10008.99999.1"},
]
COLUMNS = [("name", "Name", 24), ("desc", "Description", 28), ("SeriesInstanceUID", "UID", 0)]


def test_cell_width_counts_wide_and_combining_characters() -> None:
    assert cell_width("abc") == 3
    assert cell_width("山田") == 4
    assert cell_width("e\u0301") == 1


def test_columns_line_up_in_cells() -> None:
    lines = format_table(ROWS, COLUMNS).splitlines()
    starts = {line.index("1.2.") for line in lines[1:]}
    cells = {cell_width(line[: line.index("1.2.")]) for line in lines[1:]}
    assert len(cells) == 1 and len(starts) == 2  # same cell column, different char index


def test_a_narrow_terminal_moves_uids_to_their_own_line_never_clipped() -> None:
    lines = format_table(ROWS, COLUMNS, width=50).splitlines()
    assert all(cell_width(line) <= 50 for line in lines if not line.startswith("    "))
    assert "    SeriesInstanceUID: 1.2.840.10008.99999.1" in lines
    assert "…" in lines[1]


def test_control_characters_are_shown_not_obeyed() -> None:
    rows = [
        {"name": "Evil\x1b]0;pwned\x07\x1b[31m^Name\nFAKE", "desc": "", "SeriesInstanceUID": "1"}
    ]
    table = format_table(rows, COLUMNS)
    assert "\x1b" not in table and "\x07" not in table and table.count("\n") == 1
    assert "\\x1b]0;pwned" in table
