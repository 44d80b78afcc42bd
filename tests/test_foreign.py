"""Opening NIfTI, NRRD and pictures: geometry from the file (as nibabel chooses it, in LPS),
values as stored, the whole pipeline on them, and every bad file refused in one line with
nothing left behind."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread

from tests.conftest import need_dcm2niix, tmpfs
from tui.archive.importer import import_paths
from tui.archive.index import Archive
from tui.archive.query import series_instances
from tui.errors import UserError
from tui.render.decode import display_header, read_frame
from tui.render.foreign import Opened, is_foreign, open_foreign
from tui.render.nifti import write_nifti
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


def _file_voxels(stack: Stack, file_lps: np.ndarray) -> tuple[np.ndarray, ...]:
    """The file's (i, j, k) of each of the stack's voxels (slice, row, column), found by
    geometry alone: where the stack's affine puts the voxel, back through the file's."""
    count, rows, columns = stack.shape
    n, r, c = np.meshgrid(range(count), range(rows), range(columns), indexing="ij")
    ours = np.stack([c, r, n, np.ones_like(c)]).reshape(4, -1).astype(float)
    ijk = np.linalg.solve(file_lps, stack.affine @ ours)[:3]
    index = np.rint(ijk).astype(int)
    assert np.allclose(ijk, index, atol=1e-3)  # on the file's grid
    return tuple(a.reshape(count, rows, columns) for a in index)


def _dominant(orientation: tuple[float, ...]) -> tuple[int, ...]:
    """Each of the row and column directions as the patient axis it runs most along (+-1)."""
    out = []
    for vector in (np.array(orientation[:3]), np.array(orientation[3:])):
        axis = int(np.argmax(np.abs(vector)))
        out += [int(np.sign(vector[axis])) if a == axis else 0 for a in range(3)]
    return tuple(out)


def _box(affine: np.ndarray, columns: int, rows: int, count: int) -> np.ndarray:
    """The patient positions of a grid's eight corner voxels, in a fixed order."""
    corners = np.array(
        [(c, r, k, 1.0) for c in (0, columns - 1) for r in (0, rows - 1) for k in (0, count - 1)]
    )
    points = (affine @ corners.T).T[:, :3]
    return points[np.lexsort(points.T[::-1])]


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
    file_lps = LPS @ reread.affine
    # Shown as DICOM's axial: the same voxels in the same places, columns toward L and rows
    # toward P. The qform's j runs toward A (LPS -y): reversed; the sform's i and j run
    # toward R and A: both reversed.
    assert np.allclose(_box(stack.affine, 10, 8, 6), _box(file_lps, 10, 8, 6), atol=1e-4)
    assert _dominant(stack.slices[0].orientation) == (1, 0, 0, 0, 1, 0)
    assert any(note.startswith(f"{used} (code") for note in result.notes)
    header = display_header(stack.slices[0].source.path)  # what the tags screen shows
    assert f"{used} (code" in header.ImageComments
    assert any(
        note.endswith(f"axes toward {_nibabel_codes(reread.affine)}") for note in result.notes
    )  # the file's own axes
    frames = _frames(stack)
    assert np.array_equal(frames, data[_file_voxels(stack, file_lps)])
    shown = data[:, ::-1] if used == "qform" else data[::-1, ::-1]
    for index, s in enumerate(stack.slices):
        assert np.array_equal(frames[index], shown[:, :, s.number - 1].T)


# dcm2niix's RAS affines (columns kept, rows reversed) for DICOM series of each plane, one
# oblique, one stored with i and j swapped: (columns, rows, slices) and what is shown.
_RAS_SWAPPED = np.array([[0, 1.0, 0], [-1.0, 0, 0], [0, 0, 1.0]])  # i toward P, j toward R
_ACQUIRED = {
    "axial": (np.diag([-1.0, 1.0, 1.0]), (1, 0, 0, 0, 1, 0)),
    "oblique axial": (_rotation(20) @ np.diag([-1.0, 1.0, 1.0]), (1, 0, 0, 0, 1, 0)),
    "coronal": (np.array([[-1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]]), (1, 0, 0, 0, 0, -1)),
    "sagittal": (np.array([[0, 0, 1.0], [-1.0, 0, 0], [0, 1.0, 0]]), (0, 1, 0, 0, 0, -1)),
    "swapped axial": (_RAS_SWAPPED, (1, 0, 0, 0, 1, 0)),
}


@pytest.mark.parametrize("plane", list(_ACQUIRED))
def test_the_acquired_plane_looks_as_a_dicom_series_of_that_plane(
    tmp_path: Path, opened: Callable[..., Opened], plane: str
) -> None:
    """Columns toward L (P for sagittal), rows toward P (F for coronal and sagittal: the
    head at the top), as DICOM series of each plane are; the voxels stay in place."""
    rotation, orientation = _ACQUIRED[plane]
    data = _volume((9, 7, 5))
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.8, 0.9, 2.0])
    affine[:3, 3] = (12.0, -30.0, 7.0)
    path = tmp_path / "acquired.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    result = opened(path)
    [stack] = result.stacks
    assert _dominant(stack.slices[0].orientation) == orientation
    if "oblique" not in plane:
        assert np.allclose(stack.slices[0].orientation, orientation)
    assert any(
        note.startswith(f"shown as a DICOM {plane.split()[-1]} series") for note in result.notes
    )
    swapped = plane.startswith("swapped")
    shape = (7, 9, 5) if swapped else (9, 7, 5)
    assert np.allclose(_box(stack.affine, *shape), _box(LPS @ affine, 9, 7, 5))
    k = stack.slices[len(stack.slices) // 2].number - 1
    # the file's rows (j, toward A or H) reversed; the swapped one's columns are its j
    shown = data[:, ::-1, k] if swapped else data[:, ::-1, k].T
    assert np.array_equal(render(stack, Request(), {}).view.values, shown)
    assert np.array_equal(_frames(stack), data[_file_voxels(stack, LPS @ affine)])


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
    assert np.allclose(info["AffineLPS"], stack.affine) and "Affine" not in info
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
    shown = data[::-1, ::-1]  # RAS i and j (toward R and A) reversed: toward L and P
    for index, s in enumerate(result.stacks[0].slices):
        assert np.array_equal(values[index], shown[:, :, s.number - 1].T * 0.5 - 1024.0)


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
    expected = np.where(np.isnan(data), np.nanmin(data), data)[::-1, ::-1]  # toward L and P
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
        # i runs along y, j along x: swapped, then each reversed as needed (toward L, P)
        assert np.allclose(_box(stack.affine, 6, 7, 5), _box(affine, 7, 6, 5))
        assert np.allclose(stack.slices[0].orientation, (1, 0, 0, 0, 1, 0))
        assert np.array_equal(_frames(stack), data[..., t][_file_voxels(stack, affine)])
        order = [s.number - 1 for s in stack.slices]
        shown = data[:, ::-1] if space == "LPS" else data[::-1]  # (i, j) as (rows, columns)
        assert np.array_equal(_frames(stack), shown[:, :, order, t].transpose(2, 0, 1))


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
    path.write_bytes(header.binaryblock + b"\0" * 4)
    os.truncate(path, 352 + 4 * 4096**3)  # sparse: all there, as far as its size says
    return path


def _huge_header(shape: tuple[int, ...], data: bytes = b"\0" * 64) -> bytes:
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.int16)
    header["vox_offset"] = 352
    return bytes(header.binaryblock) + b"\0" * 4 + data


def _declares_more_than_it_has(folder: Path) -> Path:
    path = folder / "claims.nii"
    path.write_bytes(_huge_header((1500, 1500, 1500)))  # 6.75 GB declared, 64 bytes there
    return path


def _declares_more_than_it_packs(folder: Path) -> Path:
    path = folder / "claims.nii.gz"
    path.write_bytes(gzip.compress(_huge_header((1500, 1500, 1500))))
    return path


def _declares_more_than_its_gzip_trailer(folder: Path) -> Path:
    """Random bytes (no packing to speak of), 4 kB of the 512 kB declared: only the gzip
    trailer's size tells before reading."""
    path = folder / "short.nii.gz"
    path.write_bytes(gzip.compress(_huge_header((64, 64, 64), RNG.bytes(4096))))
    return path


def _vectors(folder: Path) -> Path:
    path = folder / "field.nrrd"
    header = {
        "space": "left-posterior-superior",
        "space directions": np.vstack([[np.nan] * 3, np.eye(3)]),
        "kinds": ["3-vector", "domain", "domain", "domain"],
    }
    nrrd.write(str(path), RNG.normal(size=(3, 5, 4, 3)).astype(np.float32), header)
    return path


def _text(folder: Path) -> Path:
    path = folder / "notes.PNG"
    path.write_text("not a picture\n")
    return path


@pytest.mark.parametrize(
    "make",
    [_truncated_gzip, _broken_header, _not_what_its_name_says, _empty, _missing, _folder,
     _larger_than_memory, _text, _declares_more_than_it_has, _declares_more_than_it_packs,
     _declares_more_than_its_gzip_trailer, _vectors],
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
    why = {
        _larger_than_memory: "GiB of memory available",
        _declares_more_than_it_has: "declares 6750000000 bytes of voxels, has 64",
        _declares_more_than_it_packs: "declares 6750000000 bytes of voxels, has ",
        _declares_more_than_its_gzip_trailer: "declares 524288 bytes of voxels, has 4096 (",
        _vectors: "axis 0 is of kind 3-vector",
    }.get(make)
    assert why is None or why in message, message


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


def _corners(stack: Stack) -> np.ndarray:
    """The patient positions of the volume's eight corner voxels, in a fixed order."""
    count, rows, columns = stack.shape
    return _box(stack.affine, columns, rows, count)


def test_a_dcm2niix_export_opens_like_its_dicom_series(
    tmp_path: Path, archive: Archive, shared: Path, opened: Callable[..., Opened]
) -> None:
    dcm2niix = need_dcm2niix()
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
    # dcm2niix reverses the rows (-x i: and does not turn this 3-D MR to the layout nearest
    # RAS, so k is the DICOM slices): the acquired plane looks as the DICOM series' again
    subprocess.run(
        [dcm2niix, "-z", "y", "-x", "i", "-f", "kept", "-o", str(tmp_path), str(shared / XA30I)],
        capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    [kept] = opened(tmp_path / "kept.nii.gz").stacks
    assert kept.shape == dicom.shape
    assert np.allclose(kept.slices[0].orientation, dicom.slices[0].orientation, atol=1e-4)
    middle = render(kept, Request(), {}).view.values
    assert np.array_equal(middle, render(dicom, Request(), {}).view.values)


def test_a_gzip_nifti_written_by_hand_reads_like_nibabels(
    tmp_path: Path, opened: Callable[..., Opened]
) -> None:
    data = _volume((6, 5, 4), "uint16")
    plain = tmp_path / "plain.nii"
    nib.save(nib.Nifti1Image(data, np.eye(4)), plain)
    packed = tmp_path / "packed.nii.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert np.array_equal(_frames(opened(packed).stacks[0]), _frames(opened(plain).stacks[0]))


@pytest.mark.parametrize(
    ("step", "unit", "ms"),
    [(2.5, "sec", 2500), (1500, "msec", 1500), (800000, "usec", 800), (3, "unknown", None)],
)
def test_a_4d_niftis_time_step_is_its_repetition_time_and_exported_again(
    tmp_path: Path, opened: Callable[..., Opened], step: float, unit: str, ms: float | None
) -> None:
    image = nib.Nifti1Image(_volume((6, 5, 4, 3)), np.diag([-2.0, -2.0, 3.0, 1.0]))
    image.header.set_xyzt_units("mm", unit)
    image.header["pixdim"][4] = step
    path = tmp_path / "bold.nii"
    nib.save(image, path)
    result = opened(path)
    header = dcmread(result.scratch, stop_before_pixels=True)
    if ms is None:
        assert "RepetitionTime" not in header
        return
    assert float(header.RepetitionTime) == ms
    assert f"RepetitionTime {ms:g} ms (pixdim[4] {step:g} {unit})" in result.notes
    assert "EchoTime" not in header and "FlipAngle" not in header
    out = tmp_path / "again.nii.gz"
    write_nifti(time_points(result.stacks, 0), out)
    again = nib.load(out)
    assert again.shape == (6, 5, 4, 3) and again.header["pixdim"][4] == pytest.approx(ms / 1000)
    assert json.loads((tmp_path / "again.json").read_text())["RepetitionTime"] == ms / 1000


def test_a_sidecars_timing_wins_and_is_in_dicoms_units(
    tmp_path: Path, opened: Callable[..., Opened]
) -> None:
    image = nib.Nifti1Image(_volume((6, 5, 4, 3)), np.eye(4))
    image.header.set_xyzt_units("mm", "sec")
    image.header["pixdim"][4] = 2.0
    path = tmp_path / "bold.nii.gz"
    nib.save(image, path)
    sidecar = {"RepetitionTime": 0.8, "EchoTime": 0.03, "FlipAngle": 52, "SliceTiming": [0]}
    (tmp_path / "bold.json").write_text(json.dumps(sidecar))
    result = opened(path)
    header = dcmread(result.scratch, stop_before_pixels=True)
    assert (float(header.RepetitionTime), float(header.EchoTime)) == (800, 30)
    assert float(header.FlipAngle) == 52
    assert "RepetitionTime 800 ms (the sidecar's)" in result.notes
    assert not any(n.startswith("RepetitionTime 2000") for n in result.notes)
