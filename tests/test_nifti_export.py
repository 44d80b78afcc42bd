"""NIfTI export (tui.render.nifti, ``pacs-tui export --nifti``) against the real dcm2niix on
the volumes in ../shared/dicom: the same voxels, affine, header fields and sidecar keys."""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

from tests.conftest import cli_json, need_dcm2niix, need_shared, run_cli
from tests.synthetic import AXIAL, write_series
from tests.test_cli import _one_line_error

SERIES = {
    "sagittal": "neurolabusc_dcm_qa_xa30i/MR_Siemens_PrismaFit_XA30_5001_anat-T1w_acq-tfl",
    "oblique": "neurolabusc_dcm_qa_ge/MR_GE_SIGNA-Pioneer_3D_Ax_T1_MPRAGE",
    "enhanced": "neurolabusc_dcm_qa_xa30/MR_Siemens_XA30_enhanced_multiframe_5_anat-T1w_acq-tfl",
    "4d": "neurolabusc_dcm_qa_enh/MR_Siemens_XA10_enhanced_multiframe_fMRI",
}
# Patient, study and date keys dcm2niix leaves out by default (-ba y): so do we.
IDENTIFYING = {
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge", "PatientSize",
    "PatientWeight", "AccessionNumber", "StudyInstanceUID", "SeriesInstanceUID", "StudyID",
    "ReferringPhysicianName", "AcquisitionDateTime",
}  # fmt: skip


def dcm2niix(source: Path, out: Path) -> list[Path]:
    """dcm2niix's default conversion of ``source``: its .nii.gz files, sorted."""
    out.mkdir(parents=True)
    subprocess.run(
        [need_dcm2niix(), "-z", "y", "-f", "x", "-o", str(out), str(source)],
        capture_output=True, check=True, timeout=300,
    )  # fmt: skip
    return sorted(out.glob("*.nii.gz"))


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Each shared series imported into one archive and converted by dcm2niix."""
    need_dcm2niix()
    shared = need_shared()
    root = tmp_path_factory.mktemp("nifti")
    out: dict[str, Any] = {}
    for name, folder in SERIES.items():
        archive = root / f"{name}-archive"  # one series each: two share a description
        run_cli("import", str(shared / folder), archive=archive)
        (row,) = cli_json("ls", "--level", "series", archive=archive)
        (theirs,) = dcm2niix(shared / folder, root / name)
        out[name] = (archive, row["SeriesInstanceUID"], theirs)
    return out


def raw_header(path: Path) -> nib.Nifti1Header:
    """The header as written (nibabel's images forget scl_slope and scl_inter on load)."""
    with gzip.open(path) if path.suffix == ".gz" else open(path, "rb") as fp:
        return nib.Nifti1Header.from_fileobj(fp)


def corners(img: nib.Nifti1Image) -> np.ndarray:
    shape = img.shape[:3]
    index = [
        [i, j, k, 1]
        for i in (0, shape[0] - 1)
        for j in (0, shape[1] - 1)
        for k in (0, shape[2] - 1)
    ]
    return (img.affine @ np.array(index, float).T).T[:, :3]


def assert_same_as_dcm2niix(ours: Path, theirs: Path) -> None:
    a, b = nib.load(ours), nib.load(theirs)
    assert a.shape == b.shape
    assert np.array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))
    # Every corner voxel within 0.01 mm: dcm2niix takes the slice spacing from the first two
    # slices' positions (written to 0.1 µm), so its far end may differ by 0.0001 mm a slice.
    assert np.abs(corners(a) - corners(b)).max() <= 0.011
    ua = a.affine[:3, :3] / np.linalg.norm(a.affine[:3, :3], axis=0)
    ub = b.affine[:3, :3] / np.linalg.norm(b.affine[:3, :3], axis=0)
    angles = np.degrees(np.arccos(np.clip(np.sum(ua * ub, axis=0), -1, 1)))
    assert angles.max() <= 0.01
    ha, hb = raw_header(ours), raw_header(theirs)
    for key in ("datatype", "qform_code", "sform_code", "xyzt_units", "dim_info", "vox_offset"):
        assert ha[key] == hb[key], key
    for key in ("scl_slope", "scl_inter"):
        assert np.allclose(ha[key], hb[key]), key
    assert np.allclose(ha["pixdim"], hb["pixdim"], atol=2e-4)  # qfac, zooms, TR
    assert ha.get_value_label("datatype") == hb.get_value_label("datatype")


def assert_sidecars_agree(ours: Path, theirs: Path) -> None:
    a, b = json.loads(ours.read_text()), json.loads(theirs.read_text())
    common = set(a) & set(b) - {"ConversionSoftware", "ConversionSoftwareVersion"}
    assert len(common) >= 15, sorted(common)
    assert {k: a[k] for k in common} == {k: b[k] for k in common}
    assert a["ConversionSoftware"] == "pacs-tui"
    assert not IDENTIFYING & set(a)


@pytest.mark.parametrize("name", ["sagittal", "oblique", "enhanced", "4d"])
def test_export_matches_dcm2niix(converted: dict[str, Any], tmp_path: Path, name: str) -> None:
    from tui.archive.index import Archive
    from tui.archive.query import series_instances
    from tui.render.nifti import write_nifti
    from tui.render.pipeline import time_points
    from tui.render.volume import assemble, slices_of

    root, uid, theirs = converted[name]
    with Archive(root, create=False) as archive:
        stacks = assemble(slices_of(series_instances(archive, uid)))
    ours = tmp_path / "ours.nii.gz"
    written = write_nifti(time_points(stacks, 0), ours)
    assert written == [ours, tmp_path / "ours.json"]
    assert_same_as_dcm2niix(ours, theirs)
    assert_sidecars_agree(written[1], theirs.with_name("x.json"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ours.json", "ours.nii.gz"]


def test_cli_export_json_and_no_overwrite(converted: dict[str, Any], tmp_path: Path) -> None:
    archive, uid, theirs = converted["4d"]
    out = tmp_path / "bold.nii"
    got = cli_json("export", uid, "--nifti", "-o", str(out), archive=archive)
    assert got == {"Files": [str(out), str(tmp_path / "bold.json")], "Shape": [64, 64, 6, 4]}
    assert_same_as_dcm2niix(out, theirs)  # uncompressed: the same bytes' meaning
    before = out.read_bytes()
    again = run_cli("export", uid, "--nifti", "-o", str(out), archive=archive, check=False)
    _one_line_error(again, "exists")
    assert out.read_bytes() == before
    # --no-sidecar: the sidecar's name may be taken
    (tmp_path / "t.json").write_text("{}")
    run_cli(
        "export",
        uid,
        "--nifti",
        "--stack",
        "2",
        "--no-sidecar",
        "-o",
        str(tmp_path / "t.nii.gz"),
        archive=archive,
    )
    one = nib.load(tmp_path / "t.nii.gz")  # --stack: that time point alone
    assert one.shape == (64, 64, 6)
    assert np.array_equal(one.get_fdata(), nib.load(theirs).get_fdata()[..., 2])
    assert (tmp_path / "t.json").read_text() == "{}"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial files


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["-o", "{}/out.nrrd"], "ends .nii or .nii.gz"),
        (["-o", "{}/x.nii.gz", "--mode", "mip"], "--mode goes with --cine or --sheet"),
        (["-o", "{}/x.nii.gz", "--stack", "9"], "no stack 9"),
        (["--cine", "--no-sidecar", "-o", "{}/x.gif"], "--no-sidecar goes with --nifti"),
    ],
)
def test_cli_user_errors(
    converted: dict[str, Any], tmp_path: Path, args: list[str], fragment: str
) -> None:
    kind = [] if "--cine" in args else ["--nifti"]
    archive, uid, _ = converted["sagittal"]
    args = [a.format(tmp_path) for a in args]
    result = run_cli("export", uid, *kind, *args, archive=archive, check=False)
    _one_line_error(result, fragment)
    assert list(tmp_path.iterdir()) == []


def test_tilted_stack_is_resampled_without_shear(tmp_path: Path) -> None:
    """A gantry tilt (slices sheared along the rows) comes out on the de-sheared grid,
    grown to keep every voxel; each voxel holds the DICOM volume's value at its place."""
    from tui.archive.index import Archive
    from tui.archive.query import series_instances
    from tui.render.nifti import write_nifti
    from tui.render.volume import assemble, load, slices_of

    uid = write_series(tmp_path / "files", AXIAL, size=48, count=12, shear=(0.0, 0.7, 0.0))
    run_cli("import", str(tmp_path / "files"), archive=tmp_path / "archive")
    with Archive(tmp_path / "archive", create=False) as archive:
        stack = assemble(slices_of(series_instances(archive, uid)))[0]
    assert stack.tilted
    out = tmp_path / "tilt.nii.gz"
    write_nifti([stack], out, sidecar=False)
    img = nib.load(out)
    axes = img.affine[:3, :3] / np.linalg.norm(img.affine[:3, :3], axis=0)
    assert np.allclose(axes.T @ axes, np.eye(3), atol=1e-6)  # orthogonal: no shear left
    shift = 11 * 0.7 / 2.0  # rows the last slice moved: 3.85, so 4 more rows
    assert img.shape == (48, 48 + 4, 12)
    data = np.asarray(img.dataobj)
    volume = load(stack)
    to_stack = np.linalg.inv(np.diag([-1.0, -1.0, 1, 1]) @ stack.affine) @ img.affine
    for i, j, k in [(5, 9, 0), (20, 30, 6), (40, 10, 11), (24, 45, 11), (30, 2, 3)]:
        c, r, s = (to_stack @ [i, j, k, 1])[:3]
        assert abs(s - round(s)) < 1e-6  # the planes are the slices
        r0, c0 = int(np.floor(r)), round(c)
        if not (0 <= r0 < 47 and 0 <= c0 < 48):
            assert data[i, j, k] == volume.data.min()  # outside: the darkest value
            continue
        f = r - r0
        plane = volume.data[round(s)].astype(float)
        expected = plane[r0, c0] * (1 - f) + plane[r0 + 1, c0] * f
        assert abs(float(data[i, j, k]) - expected) <= 0.51
    assert shift < 4


def test_reopened_export_renders_the_same_mip(converted: dict[str, Any], tmp_path: Path) -> None:
    """A NIfTI we export, opened again (tui.render.foreign), renders the DICOM series' MIP."""
    foreign = pytest.importorskip("tui.render.foreign")
    from tui.archive.index import Archive
    from tui.archive.query import series_instances
    from tui.render.nifti import write_nifti
    from tui.render.pipeline import Request, render
    from tui.render.volume import assemble, slices_of

    root, uid, _ = converted["sagittal"]
    with Archive(root, create=False) as archive:
        stacks = assemble(slices_of(series_instances(archive, uid)))
    out = tmp_path / "t1.nii.gz"
    write_nifti(stacks[:1], out)
    opened = foreign.open_foreign(out, tmp_path / "scratch")
    try:
        for plane in ("axial", "coronal", "sagittal"):
            request = Request(mode="mip", plane=plane, window=None)
            ours = render(opened.stacks[0], request, {})
            dicom = render(stacks[0], request, {})
            assert ours.view is not None and dicom.view is not None
            assert ours.view.values.shape == dicom.view.values.shape
            assert np.allclose(ours.view.values, dicom.view.values, atol=0.5)
    finally:
        opened.close()


def test_progress_and_cancel_leave_nothing_behind(
    converted: dict[str, Any], tmp_path: Path
) -> None:
    import threading

    from tui.archive.index import Archive
    from tui.archive.query import series_instances
    from tui.errors import UserError
    from tui.render.nifti import write_nifti
    from tui.render.pipeline import time_points
    from tui.render.volume import assemble, slices_of

    root, uid, _ = converted["4d"]
    with Archive(root, create=False) as archive:
        stacks = time_points(assemble(slices_of(series_instances(archive, uid))), 0)
    seen: list[tuple[int, int]] = []
    write_nifti(stacks, tmp_path / "a.nii.gz", progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (24, 24) and len(seen) == 24  # 4 time points of 6 slices, as one
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(UserError, match="cancelled"):
        write_nifti(stacks, tmp_path / "b.nii.gz", cancel=cancel)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.nii.gz"]


def test_a_missing_slice_is_warned_about(tmp_path: Path) -> None:
    """A series with a gap exports (as dcm2niix does, slices evenly spaced) but says so on
    stderr in one line: a NIfTI whose geometry is wrong there must not pass unnoticed."""
    uid = write_series(tmp_path / "files", AXIAL, size=16, count=10)
    files = sorted((tmp_path / "files").iterdir())
    files[5].unlink()
    run_cli("import", str(tmp_path / "files"), archive=tmp_path / "archive")
    out = tmp_path / "gap.nii.gz"
    result = run_cli("export", uid, "--nifti", "-o", str(out), archive=tmp_path / "archive")
    assert nib.load(out).shape == (16, 16, 9)
    warned = [line for line in result.stderr.splitlines() if "gap" in line]
    assert len(warned) == 1 and "are images missing?" in warned[0], result.stderr
    assert "Traceback" not in result.stderr
