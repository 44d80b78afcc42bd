"""Opening NIfTI, NRRD and pictures: geometry from the file (as nibabel chooses it, in LPS),
values as stored, the whole pipeline on them, and every bad file refused in one line with
nothing left behind."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pytest
from PIL import Image

from tests.conftest import IN_CI, tmpfs
from tui.archive.importer import import_paths
from tui.archive.index import Archive
from tui.archive.query import series_instances
from tui.errors import UserError
from tui.render.decode import read_frame
from tui.render.foreign import Opened, is_foreign, open_foreign
from tui.render.pipeline import Request, render, time_points, volume_of
from tui.render.volume import Stack, assemble, slices_of

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
XA30I = "neurolabusc_dcm_qa_xa30i/MR_Siemens_PrismaFit_XA30_5001_anat-T1w_acq-tfl"
RNG = np.random.default_rng(16)


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    return tmp_path / "scratch"


@pytest.fixture
def opened(scratch: Path) -> Iterator[Callable[..., Opened]]:
    """``open_foreign`` into ``scratch``, closing what it opened after the test."""
    done: list[Opened] = []

    def open_(path: Path, **kw: object) -> Opened:
        done.append(open_foreign(path, scratch, **kw))  # type: ignore[arg-type]
        return done[-1]

    yield open_
    for each in done:
        each.close()
    assert not scratch.exists() or not list(scratch.iterdir())


def _volume(shape: tuple[int, ...], dtype: str = "int16") -> np.ndarray:
    return RNG.integers(0 if dtype.startswith("u") else -1000, 3000, shape).astype(dtype)


def _expected(affine: np.ndarray, count: int, reversed_k: bool) -> np.ndarray:
    """``affine`` (voxels to LPS) with k counted from the other end when reversed."""
    if not reversed_k:
        return affine
    flipped = affine.copy()
    flipped[:3, 3] = affine[:3] @ (0, 0, count - 1, 1)
    flipped[:3, 2] = -affine[:3, 2]
    return flipped


def _frames(stack: Stack) -> np.ndarray:
    """The stack's voxels (slice, row, column) as stored."""
    return volume_of(stack, None).data


def _nibabel_codes(affine: np.ndarray) -> str:
    """nibabel's axis codes in our letters (H and F for superior and inferior)."""
    return "".join(nib.aff2axcodes(affine)).replace("S", "H").replace("I", "F")


def _rotation(degrees: float) -> np.ndarray:
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


@pytest.mark.parametrize("forms", ["qform", "sform", "both"])
def test_the_affine_is_the_one_nibabel_documents(
    tmp_path: Path, opened: Callable[..., Opened], forms: str
) -> None:
    data = _volume((10, 8, 6))
    qform = np.eye(4)
    qform[:3, :3] = _rotation(30) @ np.diag([-2.0, 3.0, 4.0])  # a flip: qfac -1
    qform[:3, 3] = (10, -20, 30)
    sform = np.diag([1.5, 1.5, 2.5, 1.0])
    sform[:3, 3] = (-5, 6, -7)
    img = nib.Nifti1Image(data, None)
    img.set_qform(qform if forms != "sform" else None, code=1 if forms != "sform" else 0)
    img.set_sform(sform if forms != "qform" else None, code=2 if forms != "qform" else 0)
    path = tmp_path / f"{forms}.nii"
    nib.save(img, path)
    reread = nib.load(path)
    used = "qform" if forms == "qform" else "sform"
    assert np.allclose(reread.affine, qform if used == "qform" else sform, atol=1e-4)

    result = opened(path)
    [stack] = result.stacks
    reversed_k = stack.slices[0].number != 1  # sorted along the normal: may run against k
    assert np.allclose(stack.affine, _expected(LPS @ reread.affine, 6, reversed_k), atol=1e-4)
    assert any(note.startswith(f"{used} (code") for note in result.notes)
    assert any(
        note.endswith(f"axes toward {_nibabel_codes(reread.affine)}") for note in result.notes
    )
    frames = _frames(stack)
    for index, s in enumerate(stack.slices):
        assert np.array_equal(frames[index], data[:, :, s.number - 1].T)


def test_the_pipeline_renders_a_nifti_with_its_values(
    tmp_path: Path, opened: Callable[..., Opened]
) -> None:
    data = _volume((20, 16, 12))
    path = tmp_path / "ct.nii"
    nib.save(nib.Nifti1Image(data, np.diag([-2.0, -3.0, 4.0, 1.0])), path)  # LPS-aligned
    result = opened(path)
    [stack] = result.stacks
    assert result.series["Modality"] == "OT" and result.series["SeriesDescription"] == "ct.nii"
    assert np.allclose(stack.affine, np.diag([2.0, 3.0, 4.0, 1.0]))
    assert stack.slices[0].source.direct  # read at the offset, no decoder
    assert np.array_equal(render(stack, Request(index=3), {}).view.values, data[:, :, 3].T)
    mip = render(stack, Request(mode="mip", plane="axial"), {}).view
    assert np.array_equal(mip.values, data.max(axis=2).T)
    coronal = render(stack, Request(plane="coronal", index=5), {}).view
    assert np.array_equal(coronal.values, data[:, 5, ::-1].T)  # head at the top
    picture = render(stack, Request(mode="vr", coarse=True, size=(32, 32)), {})
    assert picture.image.shape == (32, 32, 3) and picture.image.any()
    info = result.info()
    assert (info["Rows"], info["Columns"], info["NumberOfFrames"]) == (16, 20, 12)
    assert info["PixelSpacing"] == [3.0, 2.0] and info["SpacingBetweenSlices"] == 4.0
    assert info["Format"] == "NIfTI-1" and info["NumberOfTemporalPositions"] == 1


def test_scaled_integers_stay_integers_with_the_scaling_as_their_rescale(
    tmp_path: Path, opened: Callable[..., Opened]
) -> None:
    """A CT as dcm2niix writes it (int16, scl_inter -1024) keeps its stored type: no float
    copy of the volume, the values exact."""
    data = _volume((10, 8, 5))
    image = nib.Nifti1Image(data, np.eye(4))
    image.header.set_slope_inter(0.5, -1024.0)
    path = tmp_path / "ct.nii.gz"
    nib.save(image, path)
    result = opened(path)
    volume = volume_of(result.stacks[0], None)
    assert volume.data.dtype == np.int16 and (volume.slope, volume.intercept) == (0.5, -1024.0)
    values = volume.values(volume.data)
    for index, s in enumerate(result.stacks[0].slices):
        assert np.array_equal(values[index], data[:, :, s.number - 1].T * 0.5 - 1024.0)


def test_float_voxels_keep_their_values_and_nans_become_the_minimum(
    tmp_path: Path, opened: Callable[..., Opened]
) -> None:
    data = RNG.normal(0.5, 0.2, (12, 10, 4)).astype(np.float32)
    data[1, 2, 3] = np.nan
    path = tmp_path / "map.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    result = opened(path)
    assert "float voxels stored as int32 with a rescale" in result.notes
    assert "1 NaN or infinite voxel(s) replaced by the minimum" in result.notes
    volume = volume_of(result.stacks[0], None)
    values = volume.values(volume.data)
    expected = np.where(np.isnan(data), np.nanmin(data), data)
    for index, s in enumerate(result.stacks[0].slices):
        assert np.allclose(values[index], expected[:, :, s.number - 1].T, atol=1e-6)


def test_a_4d_nifti_opens_as_time_points_in_order(
    tmp_path: Path, opened: Callable[..., Opened]
) -> None:
    data = _volume((8, 6, 5, 4))
    path = tmp_path / "bold.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([-2.0, -2.0, 3.0, 1.0])), path)
    (tmp_path / "bold.json").write_text('{"Modality": "MR", "RepetitionTime": 2}')
    result = opened(path)
    assert result.series["Modality"] == "MR"  # the sidecar's
    assert opened(path, modality="pt").series["Modality"] == "PT"  # what the user says wins
    assert len(result.stacks) == 4 and result.info()["NumberOfTemporalPositions"] == 4
    timeline = time_points(result.stacks, 0)
    assert [s.slices[0].temporal for s in timeline] == [1, 2, 3, 4]
    for t, stack in enumerate(timeline):
        assert np.array_equal(_frames(stack), data[:, :, :, t].transpose(2, 1, 0))
    over = render(timeline[0], Request(mode="mip", over_time=True), {}, time_points=timeline)
    assert np.array_equal(over.view.values, data.max(axis=(2, 3)).T)


@pytest.mark.parametrize(("space", "suffix"), [("LPS", ".nrrd"), ("RAS", ".nhdr")])
def test_nrrd_with_a_space_and_time_points(
    tmp_path: Path, opened: Callable[..., Opened], space: str, suffix: str
) -> None:
    data = _volume((7, 6, 5, 3))
    directions = np.array([[0.0, 1.2, 0], [-1.4, 0, 0], [0, 0, 2.5]])
    origin = np.array([3.0, -4.0, 5.0])
    header = {
        "space": {"LPS": "left-posterior-superior", "RAS": "right-anterior-superior"}[space],
        "space directions": np.vstack([directions, [np.nan] * 3]),  # none for time
        "space origin": origin,
        "kinds": ["domain", "domain", "domain", "time"],
    }
    path = tmp_path / f"scan{suffix}"
    nrrd.write(str(path), data, header, detached_header=suffix == ".nhdr")
    result = opened(path)
    affine = np.eye(4)
    affine[:3, :3] = directions.T
    affine[:3, 3] = origin
    if space == "RAS":
        affine = LPS @ affine
    assert len(result.stacks) == 3 and result.format == "NRRD"
    for t, stack in enumerate(time_points(result.stacks, 0)):
        reversed_k = stack.slices[0].number != 1
        assert np.allclose(stack.affine, _expected(affine, 5, reversed_k))
        order = [s.number - 1 for s in stack.slices]
        assert np.array_equal(_frames(stack), data[:, :, order, t].transpose(2, 1, 0))


def _dicom_stack(archive: Archive, folder: Path) -> Stack:
    import_paths(archive, [folder])
    uid = archive.conn.execute("SELECT series_uid FROM series").fetchone()[0]
    [stack] = assemble(slices_of(series_instances(archive, uid)))
    return stack


def test_nrrd_written_from_a_real_volume_has_its_geometry(
    tmp_path: Path, archive: Archive, shared: Path, opened: Callable[..., Opened]
) -> None:
    stack = _dicom_stack(archive, shared / XA30I)
    volume = volume_of(stack, None)
    header = {
        "space": "left-posterior-superior",
        "space directions": stack.affine[:3, :3].T,
        "space origin": stack.affine[:3, 3],
    }
    path = tmp_path / "t1.nrrd"
    nrrd.write(str(path), volume.data.transpose(2, 1, 0), header)  # (column, row, slice)
    [ours] = opened(path).stacks
    assert np.allclose(ours.affine, stack.affine, atol=0.01)
    assert np.array_equal(_frames(ours), volume.data)


def test_pictures_keep_their_values(tmp_path: Path, opened: Callable[..., Opened]) -> None:
    pages = [RNG.integers(0, 65535, (30, 40)).astype(np.uint16) for _ in range(3)]
    little = tmp_path / "pages.tif"
    first, *rest = [Image.fromarray(p) for p in pages]
    first.save(little, save_all=True, append_images=rest)
    big = tmp_path / "big-endian.TIFF"
    Image.frombytes("I;16B", (40, 30), pages[0].astype(">u2").tobytes()).save(big)
    grey = RNG.integers(0, 255, (24, 32)).astype(np.uint8)
    j2k = tmp_path / "grey.jp2"
    Image.fromarray(grey).save(j2k)  # Pillow's JPEG 2000 is lossless by default
    colour = RNG.integers(0, 255, (20, 25, 3)).astype(np.uint8)
    png = tmp_path / "colour.png"
    Image.fromarray(colour).save(png)

    [stack] = opened(little).stacks
    assert np.array_equal(_frames(stack), np.stack(pages))
    assert np.allclose(stack.affine, np.eye(4))
    result = opened(big)
    assert "no geometry: 1 pixel = 1 mm" in result.notes
    assert np.array_equal(_frames(result.stacks[0]), pages[:1])
    assert np.array_equal(_frames(opened(j2k).stacks[0]), grey[None])
    [rgb] = opened(png).stacks
    assert rgb.slices[0].source.samples == 3
    assert np.array_equal(read_frame(rgb.slices[0].source), colour)
    assert render(rgb, Request(), {}).image.shape == (20, 25, 3)


def _truncated_gzip(folder: Path) -> Path:
    path = folder / "cut.nii.gz"
    nib.save(nib.Nifti1Image(_volume((32, 32, 16)), np.eye(4)), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _broken_header(folder: Path) -> Path:
    path = folder / "broken.nii"
    nib.save(nib.Nifti1Image(_volume((8, 8, 4)), np.eye(4)), path)
    raw = bytearray(path.read_bytes())
    raw[40:42] = (9).to_bytes(2, "little")  # dim[0] = 9: no such NIfTI
    path.write_bytes(bytes(raw))
    return path


def _not_what_its_name_says(folder: Path) -> Path:
    path = folder / "really-a-png.nii"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path, format="PNG")
    return path


def _empty(folder: Path) -> Path:
    path = folder / "empty.nrrd"
    path.write_bytes(b"")
    return path


def _missing(folder: Path) -> Path:
    return folder / "gone.nii.gz"


def _folder(folder: Path) -> Path:
    path = folder / "a-folder.nii"
    path.mkdir()
    return path


def _larger_than_memory(folder: Path) -> Path:
    header = nib.Nifti1Header()
    header.set_data_shape((4096, 4096, 4096))
    header.set_data_dtype(np.int32)  # 256 GiB of voxels
    header["vox_offset"] = 352
    path = folder / "huge.nii"
    path.write_bytes(header.binaryblock + b"\0" * 4 + b"\0" * 4096)
    return path


def _text(folder: Path) -> Path:
    path = folder / "notes.PNG"
    path.write_text("not a picture\n")
    return path


@pytest.mark.parametrize(
    "make",
    [_truncated_gzip, _broken_header, _not_what_its_name_says, _empty, _missing, _folder,
     _larger_than_memory, _text],
)  # fmt: skip
def test_bad_files_are_refused_in_one_line(
    tmp_path: Path, scratch: Path, make: Callable[[Path], Path]
) -> None:
    path = make(tmp_path)
    with pytest.raises(UserError) as caught:
        open_foreign(path, scratch)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(path)), message
    assert not list(scratch.iterdir())


def test_a_picture_past_the_bomb_limit_is_refused(
    tmp_path: Path, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "wide.png"
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(path)
    for limit in (500, 1000):  # past twice the limit Pillow refuses, past once it warns
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
        with pytest.raises(
            UserError, match=r"wide\.png: not a readable picture file: .*exceeds limit"
        ):
            open_foreign(path, scratch)
    assert not list(scratch.iterdir())


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "big.nii"
    nib.save(nib.Nifti1Image(_volume((128, 128, 64)), np.eye(4)), path)  # 2 MiB
    with tmpfs(tmp_path / "small", "1m") as mount:
        with pytest.raises(UserError, match=r"big.nii: cannot write its copy .*No space left"):
            open_foreign(path, mount / "scratch")
        assert not list((mount / "scratch").iterdir())


def test_scratch_is_private_and_a_dead_runs_leftovers_go(
    tmp_path: Path, scratch: Path, opened: Callable[..., Opened]
) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    scratch.mkdir(mode=0o755)
    dead = scratch / f"open-{gone.stdout.strip()}-0123abcd.dcm"
    alive = scratch / f"open-{os.getppid()}-4567abcd.dcm"  # another run, still going
    dead.write_bytes(b"x")
    alive.write_bytes(b"x")
    path = tmp_path / "one.nii"
    nib.save(nib.Nifti1Image(_volume((4, 4, 2)), np.eye(4)), path)
    result = opened(path)
    assert not dead.exists() and alive.exists()
    alive.unlink()
    assert result.scratch.parent == scratch
    assert result.scratch.name.startswith(f"open-{os.getpid()}-")
    assert scratch.stat().st_mode & 0o777 == 0o700
    assert result.scratch.stat().st_mode & 0o777 == 0o600
    result.close()
    assert not result.scratch.exists()


def test_is_foreign_goes_by_the_name() -> None:
    assert is_foreign("a/B.NII.GZ") and is_foreign(Path("x.nhdr")) and is_foreign("y.jp2")
    assert not is_foreign("z.dcm") and not is_foreign("nii") and not is_foreign("a.gz")


def _need_dcm2niix() -> str:
    found = shutil.which("dcm2niix")
    if found is None:
        if IN_CI:
            pytest.fail("dcm2niix is missing: CI installs the Debian package")
        pytest.skip("dcm2niix is not installed (Debian package dcm2niix)")
    return found


def _corners(stack: Stack) -> np.ndarray:
    """The patient positions of the volume's eight corner voxels, in a fixed order."""
    count, rows, columns = stack.shape
    corners = np.array(
        [(c, r, k, 1.0) for c in (0, columns - 1) for r in (0, rows - 1) for k in (0, count - 1)]
    )
    points = (stack.affine @ corners.T).T[:, :3]
    return points[np.lexsort(points.T[::-1])]


def test_a_dcm2niix_export_opens_like_its_dicom_series(
    tmp_path: Path, archive: Archive, shared: Path, opened: Callable[..., Opened]
) -> None:
    dcm2niix = _need_dcm2niix()
    subprocess.run(
        [dcm2niix, "-z", "y", "-f", "t1", "-o", str(tmp_path), str(shared / XA30I)],
        capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    dicom = _dicom_stack(archive, shared / XA30I)
    result = opened(tmp_path / "t1.nii.gz")
    assert result.series["Modality"] == "MR"  # from dcm2niix's sidecar
    [ours] = result.stacks
    assert np.allclose(_corners(ours), _corners(dicom), atol=0.01)
    for plane in ("sagittal", "coronal", "axial"):
        request = Request(mode="mip", plane=plane)
        expected = render(dicom, request, {}).view.values
        assert np.array_equal(render(ours, request, {}).view.values, expected), plane


def test_a_gzip_nifti_written_by_hand_reads_like_nibabels(
    tmp_path: Path, opened: Callable[..., Opened]
) -> None:
    data = _volume((6, 5, 4), "uint16")
    plain = tmp_path / "plain.nii"
    nib.save(nib.Nifti1Image(data, np.eye(4)), plain)
    packed = tmp_path / "packed.nii.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert np.array_equal(_frames(opened(packed).stacks[0]), _frames(opened(plain).stacks[0]))
