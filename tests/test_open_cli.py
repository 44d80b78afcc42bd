"""``pacs-tui open FILE`` and a file in place of a series UID in ``render`` and ``export``,
as a user runs them (NIfTI written by nibabel); the app on a file in a real terminal (tmux).
Every run leaves its scratch folder empty."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT, cli_json, run_cli
from tests.synthetic import AXIAL, write_series
from tests.test_app_open import write_nifti_file
from tests.test_cli import _one_line_error
from tests.test_e2e_tmux import _open_row, _start, _wait_for, tmux  # noqa: F401 (tmux: the fixture)


def _scratch() -> Path:
    """The scratch folder of files opened (the test's own cache folder: see conftest)."""
    from tui.config import locate

    return locate().cache_dir / "open"


def _left_behind() -> list[Path]:
    folder = _scratch()
    return sorted(folder.iterdir()) if folder.is_dir() else []


@pytest.fixture
def nifti(tmp_path: Path) -> tuple[Path, np.ndarray]:
    path = tmp_path / "brain.nii.gz"
    return path, write_nifti_file(path)


def test_open_json_describes_the_file(nifti, tmp_path: Path) -> None:
    path, data = nifti
    info = cli_json("open", str(path), archive=tmp_path / "none")
    assert (info["Columns"], info["Rows"], info["NumberOfFrames"]) == data.shape
    assert [float(v) for v in info["PixelSpacing"]] == [1.5, 1.0]  # rows (j), columns (i)
    assert info["Modality"] == "OT"
    affine = np.array(info["AffineLPS"])
    assert affine.shape == (4, 4)
    # RAS i, j (toward R, A) shown as DICOM's axial: reversed, toward L and P
    assert np.allclose(affine[:3, :3], np.diag([1.0, 1.5, 2.0]))
    assert info["Notes"] and all(isinstance(note, str) for note in info["Notes"])
    assert (
        cli_json("open", str(path), "--modality", "mr", archive=tmp_path / "none")["Modality"]
        == "MR"
    )
    assert not (tmp_path / "none").exists()  # no archive made for a look at a file
    assert _left_behind() == []


@pytest.mark.parametrize(
    ("name", "content", "options", "fragment"),
    [
        ("missing.nii", None, ["--json"], "missing.nii"),
        ("broken.nii.gz", b"not gzip", ["--json"], "broken.nii.gz"),
        ("empty.nrrd", b"", ["--json"], "empty.nrrd"),
        ("fine.nii.gz", "nifti", ["--json", "--modality", "C T!"], "--modality"),
        ("fine.nii.gz", "nifti", [], "run it in a terminal"),  # not a terminal: no app
        ("nothing", None, [], "no such file or folder"),  # not a file's suffix: DICOM
        ("notes.txt", b"no DICOM here", [], "run it in a terminal"),  # before reading it
        ("scan.dcm", b"x", ["--json"], "--json goes with a NIfTI"),
    ],
)
def test_open_errors_are_one_line(tmp_path: Path, name, content, options, fragment) -> None:
    path = tmp_path / name
    if content == "nifti":
        write_nifti_file(path)
    elif content is not None:
        path.write_bytes(content)
    result = run_cli("open", str(path), *options, archive=tmp_path / "archive", check=False)
    _one_line_error(result, fragment)
    assert _left_behind() == []


def test_render_and_export_take_a_file_for_the_series(nifti, tmp_path: Path) -> None:
    path, data = nifti
    raw = tmp_path / "slice3.png"
    run_cli("render", str(path), "--index", "3", "--raw", "-o", str(raw))
    with Image.open(raw) as image:
        offset = int(image.text["pacs-tui:offset"])
        values = np.asarray(image).astype(np.int64) - offset
    # frame k is data[:, :, k].T, k along z, i and j (RAS: toward R, A) reversed to L, P
    assert np.array_equal(values, data[::-1, ::-1, 2].T)
    mip = tmp_path / "mip.png"
    run_cli("render", str(path), "--mode", "mip", "--plane", "coronal", "--size", "64x48",
            "-o", str(mip))  # fmt: skip
    with Image.open(mip) as image:
        assert image.size == (64, 48)
    loop = tmp_path / "loop.gif"
    run_cli("export", str(path), "--cine", "-o", str(loop))
    with Image.open(loop) as image:
        assert image.n_frames == data.shape[2]
    run_cli("export", str(path), "--sheet", "-o", str(tmp_path / "sheet.pdf"))
    # and back to NIfTI: the same voxels at the same places (in dcm2niix's layout)
    again = tmp_path / "again.nii.gz"
    run_cli("export", str(path), "--nifti", "--no-sidecar", "-o", str(again))
    written, original = (nib.as_closest_canonical(nib.load(f)) for f in (again, path))
    assert np.allclose(written.affine, original.affine, atol=0.01)
    assert np.array_equal(written.get_fdata(), original.get_fdata())
    assert _left_behind() == []
    _one_line_error(
        run_cli("render", str(tmp_path / "nowhere.nii.gz"), "-o", str(mip), check=False),
        "nowhere.nii.gz",
    )


def test_a_4d_file_has_time_points_on_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "dsc.nii"
    write_nifti_file(path, (16, 16, 6, 5))
    loop = tmp_path / "time.gif"
    run_cli("export", str(path), "--cine", "--time", "--index", "3", "-o", str(loop))
    with Image.open(loop) as image:
        assert image.n_frames == 5
    run_cli("render", str(path), "--over-time", "-o", str(tmp_path / "tmip.png"))
    assert _left_behind() == []


def test_open_shows_the_viewer_in_a_real_terminal(tmux, nifti, tmp_path: Path) -> None:  # noqa: F811
    """`pacs-tui open FILE` starts in the viewer on the file; Esc goes to the browser (of an
    archive in memory: there is none), ctrl+q quits cleanly and the scratch file is gone."""
    path, data = nifti
    cache = tmp_path / "cache"
    _start(
        tmux,
        f"cd {ROOT} && XDG_CACHE_HOME={cache} {sys.executable} -m tui --archive"
        f" {tmp_path / 'none'} --bandwidth normal open {path} --modality MR",
    )
    _wait_for(tmux, f"acquired slice {data.shape[2] // 2 + 1}/{data.shape[2]}")
    screen = _wait_for(tmux, "brain.nii.gz")
    assert "MR" in screen
    assert len(list((cache / "pacs-tui" / "open").glob("open-*"))) == 1
    tmux("send-keys", "-t", "e2e", "m")
    _wait_for(tmux, f"acquired MIP {data.shape[2]} slices")
    tmux("send-keys", "-t", "e2e", "Escape")
    _wait_for(tmux, "x Reviewed")  # the browser's footer
    time.sleep(0.5)
    assert not list((cache / "pacs-tui" / "open").glob("open-*"))  # closed with its viewer
    tmux("send-keys", "-t", "e2e", "C-q")
    deadline = time.monotonic() + 15
    while "x Reviewed" in tmux("capture-pane", "-p", "-t", "e2e") and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    tmux("send-keys", "-t", "e2e", "echo exited-$?", "Enter")
    _wait_for(tmux, "exited-0")
    assert not list((cache / "pacs-tui" / "open").glob("open-*"))
    assert not (tmp_path / "none").exists()


def test_a_closed_terminal_leaves_no_scratch_copy(tmux, nifti, tmp_path: Path) -> None:  # noqa: F811
    """The SSH link drops (SIGHUP) while a file is viewed: its scratch copy goes at once,
    not at the next start."""
    path, data = nifti
    cache = tmp_path / "cache"
    _start(
        tmux,
        f"cd {ROOT} && XDG_CACHE_HOME={cache} {sys.executable} -m tui --archive"
        f" {tmp_path / 'none'} open {path}",
    )
    _wait_for(tmux, f"acquired slice {data.shape[2] // 2 + 1}/{data.shape[2]}")
    assert len(list((cache / "pacs-tui" / "open").glob("open-*"))) == 1
    tmux("kill-session", "-t", "e2e")  # the terminal is gone: SIGHUP
    deadline = time.monotonic() + 10
    while list((cache / "pacs-tui" / "open").glob("open-*")):
        assert time.monotonic() < deadline, "the scratch copy was left behind"
        time.sleep(0.2)


def test_open_browses_a_dicom_folder_without_importing_it(tmux, tmp_path: Path) -> None:  # noqa: F811
    """`pacs-tui open FOLDER` (a CD, a USB stick): the browser on an index in memory, the
    series viewable; nothing is written, no archive made."""
    write_series(tmp_path / "cd", AXIAL, size=32, count=6)
    _start(
        tmux,
        f"cd {ROOT} && {sys.executable} -m tui --archive {tmp_path / 'none'}"
        f" --bandwidth normal open {tmp_path / 'cd'}",
    )
    _wait_for(tmux, "Synthetic^Phantom")
    _open_row(tmux)
    tmux("send-keys", "-t", "e2e", "Down")
    _open_row(tmux)
    tmux("send-keys", "-t", "e2e", "Down", "Enter")
    _wait_for(tmux, "acquired slice 4/6")
    tmux("send-keys", "-t", "e2e", "Escape")
    _wait_for(tmux, "x Reviewed")
    tmux("send-keys", "-t", "e2e", "C-q")
    time.sleep(1.0)
    tmux("send-keys", "-t", "e2e", "echo exited-$?", "Enter")
    _wait_for(tmux, "exited-0")
    assert not (tmp_path / "none").exists()
