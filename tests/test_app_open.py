"""Opening a file in the app (NIfTI here, written by nibabel): the browser's ``o``, the
viewer on it, Esc back, a bad file as one notice; the viewer's ``e`` to .nii.gz; the app
started on a file (``pacs-tui open``) and its scratch file gone at the end."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from textual.widgets import Static, Tree

from tests.synthetic import AXIAL, write_series
from tests.test_app import _settle
from tui.app.app import PacsApp
from tui.app.browser import BrowserScreen
from tui.app.image_view import ImageView
from tui.archive.importer import import_paths
from tui.archive.index import Archive
from tui.term.detect import BANDWIDTH


def write_nifti_file(path: Path, shape: tuple[int, ...] = (24, 20, 12)) -> np.ndarray:
    """A NIfTI-1 file of int16 values that differ voxel to voxel, 1 x 1.5 x 2 mm, RAS."""
    data = (np.arange(np.prod(shape)).reshape(shape) % 1000).astype(np.int16)
    affine = np.diag([1.0, 1.5, 2.0, 1.0])
    affine[:3, 3] = (-10, -15, -12)
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, path)
    return data


@pytest.fixture
def archive(tmp_path: Path) -> Archive:
    archive = Archive(tmp_path / "archive")
    write_series(tmp_path / "ct", AXIAL, count=10)
    import_paths(archive, [tmp_path / "ct"])
    return archive


def _app(archive: Archive, tmp_path: Path) -> PacsApp:
    return PacsApp(archive, BANDWIDTH["normal"], scratch_dir=tmp_path / "scratch")


async def _type_path(app: PacsApp, pilot, path: Path) -> None:
    await pilot.press("o")
    await _settle(app, pilot)
    app.screen.query_one("#note").value = str(path)
    await pilot.press("enter")
    for _ in range(2):
        await _settle(app, pilot)


def _notices(app: PacsApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def test_o_opens_a_file_in_the_viewer_and_esc_goes_back(
    archive: Archive, tmp_path: Path
) -> None:
    from tui.app.viewer import ViewerScreen

    data = write_nifti_file(tmp_path / "brain.nii.gz")
    app = _app(archive, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        patients = [str(n.label) for n in app.screen.query_one(Tree).root.children]
        await _type_path(app, pilot, tmp_path / "brain.nii.gz")
        assert isinstance(app.screen, ViewerScreen), _notices(app)
        viewer = app.screen
        assert viewer.query_one("#viewer").query_one(ImageView).cells is not None
        assert "brain.nii.gz" in str(viewer.query_one("#overlay-top", Static).render())
        assert "slice" in viewer._shown.description
        await pilot.press("m")  # a MIP through the whole volume: the file's largest value
        await _settle(app, pilot)
        assert viewer._shown.view.values.max() == data.max()
        await pilot.press("escape")
        await _settle(app, pilot)
        assert isinstance(app.screen, BrowserScreen)
        assert [str(n.label) for n in app.screen.query_one(Tree).root.children] == patients
        assert not list((tmp_path / "scratch").glob("open-*"))  # closed with its viewer


async def test_a_bad_file_is_one_notice_and_the_browser_stays(
    archive: Archive, tmp_path: Path
) -> None:
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not a gzip stream at all")
    app = _app(archive, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        tree = app.screen.query_one(Tree)
        patients = [str(n.label) for n in tree.root.children]
        cursor = tree.cursor_line
        for path in (bad, tmp_path / "missing.nii", tmp_path):
            before = len(_notices(app))
            await _type_path(app, pilot, path)
            assert isinstance(app.screen, BrowserScreen)
            said = _notices(app)[before:]
            assert len(said) == 1 and "\n" not in said[0], said
        assert [str(n.label) for n in tree.root.children] == patients
        assert tree.cursor_line == cursor
    assert not list((tmp_path / "scratch").glob("*"))


async def test_the_app_started_on_a_file_and_its_export_to_nifti(
    archive: Archive, tmp_path: Path, monkeypatch
) -> None:
    """``pacs-tui open`` as run_app does it: the file opened before the app runs, its viewer
    first, the browser under it; ``e`` with a .nii.gz name writes the volume (4-D here)."""
    from tui.app.viewer import ViewerScreen

    monkeypatch.chdir(tmp_path)
    data = write_nifti_file(tmp_path / "perfusion.nii", (16, 16, 6, 4))
    app = _app(archive, tmp_path)
    opened = app.open_file(tmp_path / "perfusion.nii", "MR")
    app.start_with = opened.series
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        assert isinstance(app.screen, ViewerScreen)
        assert app.screen.series["Modality"] == "MR"
        assert "t 1/4" in str(app.screen.query_one("#overlay-bottom", Static).render())
        await pilot.press("e")
        await _settle(app, pilot)
        app.screen.query_one("#note").value = "again.nii.gz"
        await pilot.press("enter")
        for _ in range(2):
            await _settle(app, pilot)
        assert any("saved" in n and "again.nii.gz" in n for n in _notices(app)), _notices(app)
        # the same voxels at the same places (the layout may differ: dcm2niix's)
        written = nib.as_closest_canonical(nib.load(tmp_path / "again.nii.gz"))
        original = nib.as_closest_canonical(nib.load(tmp_path / "perfusion.nii"))
        assert written.shape == original.shape == data.shape
        assert np.allclose(written.affine, original.affine, atol=0.01)
        assert np.array_equal(written.get_fdata(), original.get_fdata())
        await pilot.press("escape")
        await _settle(app, pilot)
        assert isinstance(app.screen, BrowserScreen)
    assert not opened.scratch.exists()
