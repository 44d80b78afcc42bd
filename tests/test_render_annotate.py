"""Burned-in text: names in every script of the character-set files come out as real
glyphs (checked against the fonts' own character maps, not the .notdef box) in every
export format; right-to-left names run right to left and Arabic joins; nothing
overlaps on a 64 x 64 series; windows print with at most one decimal."""

from __future__ import annotations

import ast
import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont, PdfParser
from pydicom.charset import convert_encodings
from pydicom.valuerep import PersonName

from tests.conftest import IN_CI, run_cli
from tui.archive.importer import import_paths
from tui.archive.index import Archive
from tui.archive.query import series_instances
from tui.render import export, glyphs
from tui.render.lut import Window
from tui.render.pipeline import Request, render
from tui.render.series_export import corner_text, picture, sheet, write_any
from tui.render.volume import VolumeCache, assemble, slices_of

fontTools = pytest.importorskip("fontTools.ttLib")  # the independent check of coverage
CHARSET = "pydicom_test_files/charset"
TOSHIBA = "neurolabusc_dcm_qa_toshiba"
TOFU = "\U0010ffff"  # no font has it: drawn as the .notdef box


def expected_names(folder: Path) -> dict[str, str]:
    """File name -> patient name, decoded from the raw bytes FileInfo.txt lists."""
    names = {}
    for line in (folder / "FileInfo.txt").read_text().splitlines():
        row = re.match(r"(chr\S+)\s+(\[.*?\]|\S.*?)\s{2,}('.*')$", line)
        if row is None:
            continue
        file, sets, raw = row.groups()
        encodings = ast.literal_eval(sets) if sets.startswith("[") else [sets]
        value = ast.literal_eval(raw).encode("latin-1")
        names[file] = str(PersonName(value, encodings=convert_encodings(encodings)))
    return names


@pytest.fixture(scope="module")
def charset_series(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Each character-set file that has pixels: its stack and its expected name."""
    from tests.conftest import need_shared

    folder = need_shared() / CHARSET
    expected = expected_names(folder)
    archive = Archive(tmp_path_factory.mktemp("charset") / "archive")
    import_paths(archive, [folder])
    out = {}
    for (uid,) in archive.conn.execute("SELECT series_uid FROM series").fetchall():
        stacks = assemble(slices_of(series_instances(archive, uid)))
        if not stacks:
            continue  # no pixel data
        name = Path(stacks[0].slices[0].source.path).name
        if name in expected:
            out[name] = {"stack": stacks[0], "name": expected[name], "uid": uid}
    out["archive"] = archive
    return out


def _files(charset_series: dict[str, Any]) -> list[str]:
    return sorted(k for k in charset_series if k != "archive")


def _cmap(face: Any) -> set[int]:
    return set(fontTools.TTFont(face.path, fontNumber=face.index, lazy=True).getBestCmap())


def test_file_info_names_cover_every_script(charset_series) -> None:
    names = {charset_series[f]["name"] for f in _files(charset_series)}
    assert len(_files(charset_series)) >= 11  # chrFrenMulti repeats chrFren's UID
    scripts = {"Ä": "Latin", "Δ": "Greek", "Л": "Cyrillic", "ש": "Hebrew", "ق": "Arabic"}
    scripts |= {"홍": "Hangul", "や": "kana", "王": "Han"}
    for letter in scripts:
        assert any(letter in name for name in names), scripts[letter]


def test_every_name_is_drawn_with_real_glyphs(charset_series) -> None:
    for file in _files(charset_series):
        entry = charset_series[file]
        rendered = render(entry["stack"], Request(), {})
        name = corner_text(rendered, no_phi=False)["top-left"][0]
        assert name == entry["name"], file
        for part, face in glyphs.runs(name, 14):
            cmap = _cmap(face)
            missing = [ch for ch in part if ord(ch) not in cmap]
            assert not missing, f"{file}: {missing} not in {face.path}"
            # Our own test (bitmap against .notdef) agrees with the font's character map.
            assert all(glyphs.has_glyph(face, ch) for ch in part), file
        assert not glyphs.has_glyph(glyphs.fonts(name, 14)[0], "王")  # the check can fail


def test_right_to_left_names_run_right_to_left_and_arabic_joins() -> None:
    if not glyphs.raqm():
        if IN_CI:
            pytest.fail("Pillow has no raqm layout here (is libfribidi0 installed?)")
        pytest.skip("Pillow has no raqm layout")

    def drawn(text: str, basic: bool = False) -> np.ndarray:
        canvas = Image.new("L", (400, 40))
        if basic:  # no bidi, no shaping: characters left to right as stored
            [(_, face)] = glyphs.runs(text, 20)
            plain = ImageFont.truetype(face.path, 20, layout_engine=ImageFont.Layout.BASIC)
            ImageDraw.Draw(canvas).text((10, 29), text, fill=255, font=plain, anchor="ls")
        else:
            glyphs.draw(ImageDraw.Draw(canvas), (10, 10), text, 20, 255, outline=None)
        return np.asarray(canvas, float)

    def apart(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a - b).sum())

    hebrew = "שרון^דבורה"
    assert len(glyphs.runs(hebrew, 20)) == 1  # one run, so one bidi paragraph
    # Like the letters stored in reverse order (the basic layout spaces them a little
    # differently), unlike them in stored order.
    shown = drawn(hebrew)
    reversed_order = apart(shown, drawn(hebrew[::-1], basic=True))
    assert reversed_order < 0.5 * apart(shown, drawn(hebrew, basic=True))
    arabic = "قباني^لنزار"
    assert len(glyphs.runs(arabic, 20)) == 1
    unjoined = "\u200c".join(arabic)  # zero-width non-joiners: every letter isolated
    assert apart(drawn(arabic), drawn(unjoined)) > 0.1 * drawn(arabic).sum()


def _tofu(corners: dict[str, list[str]]) -> dict[str, list[str]]:
    return {**corners, "top-left": [TOFU * len(corners["top-left"][0])]}


def _name_error(decoded: Image.Image, good: Image.Image, box: tuple[float, ...]) -> float:
    crop = tuple(int(v) for v in box)
    a = np.asarray(decoded.convert("RGB").crop(crop), float)
    b = np.asarray(good.convert("RGB").crop(crop), float)
    return float(np.abs(a - b).mean())


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".gif", ".webp"])
def test_names_survive_every_image_format(charset_series, tmp_path: Path, suffix: str) -> None:
    cache = VolumeCache()
    for file in _files(charset_series):
        entry = charset_series[file]
        rendered = render(entry["stack"], Request(), {})
        good = picture(rendered, annotate=True)
        corners = corner_text(rendered, no_phi=False)
        base = export.enlarge_for_text(picture(rendered))
        tofu = export.annotate(base, _tofu(corners), rendered.view.labels)
        placed = export.layout(good.size, corners, rendered.view.labels)
        [box] = [p.box for p in placed if p.text == entry["name"]]
        out = tmp_path / f"{file}{suffix}"
        write_any(out, rendered, entry["stack"], Request(), {}, cache)
        with Image.open(out) as decoded:
            decoded.load()
            assert decoded.size == good.size
            error = _name_error(decoded, good, box)
            assert error < 0.25 * _name_error(decoded, tofu, box), (file, error)
            if suffix in (".png", ".tif"):
                assert np.array_equal(np.asarray(decoded), np.asarray(good)), file


def test_names_survive_in_the_pdf_contact_sheet(charset_series, tmp_path: Path) -> None:
    cache = VolumeCache()
    for file in _files(charset_series):
        entry = charset_series[file]
        rendered = render(entry["stack"], Request(), {})
        png, pdf = tmp_path / f"{file}.png", tmp_path / f"{file}.pdf"
        write_any(pdf, rendered, entry["stack"], Request(), {}, cache)
        export.save_sheet(sheet(entry["stack"], Request(), {}, cache), png)
        with Image.open(png) as written:
            good = written.convert("RGB")
        parser = PdfParser.PdfParser(str(pdf))
        page = parser.read_indirect(parser.pages[0])
        [image] = page[b"Resources"][b"XObject"].values()
        embedded = Image.open(io.BytesIO(parser.read_indirect(image).buf))
        assert embedded.size == good.size
        header = (8, 6, good.width - 8, 28)  # the first header line: the patient
        name_width = glyphs.width(entry["name"], 16)
        tofu = Image.new("RGB", good.size)
        glyphs.draw(ImageDraw.Draw(tofu), (8, 6), TOFU * len(entry["name"]), 16, (255,) * 3, None)
        box = (8, 6, 8 + min(name_width, tofu.width - 16), 28)
        error = _name_error(embedded, good, box)
        assert error < 0.25 * _name_error(embedded, tofu, box), (file, error)
        assert _name_error(embedded, good, header) < 8


def test_render_cli_burns_in_a_german_name(charset_series, tmp_path: Path) -> None:
    entry = charset_series["chrGerm.dcm"]
    archive = charset_series["archive"].root
    out = tmp_path / "germ.png"
    run_cli("render", entry["uid"], "--annotate", "-o", str(out), archive=archive)
    good = picture(render(entry["stack"], Request(), {}), annotate=True)
    with Image.open(out) as written:
        assert np.array_equal(np.asarray(written), np.asarray(good))


@pytest.fixture(scope="module")
def toshiba(tmp_path_factory: pytest.TempPathFactory):
    from tests.conftest import need_shared

    archive = Archive(tmp_path_factory.mktemp("toshiba") / "archive")
    import_paths(archive, [need_shared() / TOSHIBA])
    uid = archive.conn.execute("SELECT series_uid FROM series").fetchone()[0]
    [stack] = assemble(slices_of(series_instances(archive, uid)))
    assert stack.shape[1:] == (64, 64)
    return stack


@pytest.mark.parametrize("size", [None, (64, 64), (128, 128), (300, 200)])
def test_text_never_overlaps_on_a_small_series(toshiba, size) -> None:
    for request in (Request(), Request(mode="mip", plane="coronal")):
        rendered = render(toshiba, request, {}, VolumeCache())
        shown = picture(rendered, size, annotate=True)
        corners = corner_text(rendered, no_phi=False)
        placed = export.layout(shown.size, corners, rendered.view.labels)
        boxes = [p.box for p in placed]
        for n, a in enumerate(boxes):
            assert a[0] >= 0 and a[1] >= 0 and a[2] <= shown.width and a[3] <= shown.height
            for b in boxes[n + 1 :]:
                assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])
        texts = {p.text for p in placed}
        assert set(rendered.view.labels.values()) <= texts  # orientation letters first
        if size is None:  # enlarged to be read: every line whole, at the usual size
            assert min(shown.size) >= export.TEXT_SIDE
            assert texts >= {line for lines in corners.values() for line in lines}
            assert all(p.size >= 12 for p in placed)


def test_windows_print_with_at_most_one_decimal() -> None:
    assert str(Window(259.375, 2812.5)) == "C 259.4 W 2812.5"
    assert str(Window(40.0, 400.0, name="SOFT")) == "SOFT C 40 W 400"
    assert str(Window(-0.04, 1e6)) == "C 0 W 1000000"
    assert str(Window(-1024.96, 3.04)) == "C -1025 W 3"
