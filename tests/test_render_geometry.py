"""Geometry: one phantom written as axial, sagittal, coronal and oblique acquisitions lands
at the same patient coordinates in every view; oblique planes cut where the geometry says;
a gantry-tilted stack is resampled to match the untilted one; time points split into
stacks, play in order, and reduce to a MIP over time."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.synthetic import (
    AXIAL,
    CORONAL,
    MARKER,
    OBLIQUE,
    SAGITTAL,
    SPHERE,
    phantom,
    write_series,
)
from tui.archive.importer import import_paths
from tui.archive.index import Archive
from tui.archive.query import series_instances
from tui.render.views import acquired, oblique, orthogonal
from tui.render.volume import assemble, load, slices_of


def _volume(archive: Archive, folder: Path, **kwargs):
    uid = write_series(folder, **kwargs)
    import_paths(archive, [folder])
    stacks = assemble(slices_of(series_instances(archive, uid)))
    return stacks, load(stacks[0])


def _pixel(view, point: np.ndarray) -> tuple[int, int]:
    """The view's pixel nearest a patient point in its plane."""
    offset = point - view.origin
    steps = (view.row_step, view.column_step)
    row, column = (round(float(offset @ s) / float(s @ s)) for s in steps)
    return row, column


def _centroid(view, threshold: float) -> np.ndarray:
    rows, columns = np.nonzero(view.values > threshold)
    assert rows.size, "the feature is not in the view"
    return view.patient_at(rows.mean(), columns.mean())


@pytest.mark.parametrize(
    "orientation",
    [AXIAL, SAGITTAL, CORONAL, OBLIQUE],
    ids=["axial", "sagittal", "coronal", "oblique"],
)
def test_features_land_at_their_patient_coordinates_in_every_view(
    archive: Archive, tmp_path: Path, orientation
) -> None:
    stacks, volume = _volume(archive, tmp_path / "series", orientation=orientation)
    assert len(stacks) == 1 and stacks[0].shape == (64, 64, 64)
    tolerance = 2.5  # about one voxel (2 mm) plus interpolation
    for plane, axis in (("axial", 2), ("coronal", 1), ("sagittal", 0)):
        view = orthogonal(volume, plane, position=float(SPHERE[axis]))
        found = _centroid(view, 150)
        in_plane = [a for a in range(3) if a != axis]
        assert np.allclose(found[in_plane], SPHERE[in_plane], atol=tolerance), (plane, found)
        assert abs(found[axis] - SPHERE[axis]) <= tolerance
        # The dense marker shows in a MIP through the whole volume, at its place.
        mip = orthogonal(volume, plane, "mip")
        marker = _centroid(mip, 1000)
        assert np.allclose(marker[in_plane], MARKER[in_plane], atol=tolerance), (plane, marker)


def test_radiological_orientation_and_labels(archive: Archive, tmp_path: Path) -> None:
    _, volume = _volume(archive, tmp_path / "sagittal", orientation=SAGITTAL)
    axial = orthogonal(volume, "axial", position=0.0)
    assert axial.labels == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    # The marker is at patient right (x < 0) and posterior (y > 0): image left, lower half.
    rows, columns = np.nonzero(axial.values > 1000)
    assert columns.mean() < axial.values.shape[1] / 2 and rows.mean() > axial.values.shape[0] / 2
    coronal = orthogonal(volume, "coronal", position=float(SPHERE[1]))
    assert coronal.labels == {"left": "R", "right": "L", "top": "H", "bottom": "F"}
    rows, _ = np.nonzero(coronal.values > 150)
    assert rows.mean() < coronal.values.shape[0] / 2  # the sphere is high (z = +30): image top
    sagittal = orthogonal(volume, "sagittal", position=float(SPHERE[0]))
    assert sagittal.labels == {"left": "A", "right": "P", "top": "H", "bottom": "F"}


def test_aspect_ratio_follows_pixel_and_slice_spacing(archive: Archive, tmp_path: Path) -> None:
    _, volume = _volume(archive, tmp_path / "thick", orientation=AXIAL, count=20, step=6.0)
    coronal = orthogonal(volume, "coronal")
    assert coronal.pixel_spacing == pytest.approx((6.0, 2.0))
    assert coronal.values.shape == (20, 64)


def test_values_and_positions_can_be_looked_up(archive: Archive, tmp_path: Path) -> None:
    _, volume = _volume(archive, tmp_path / "axial", orientation=AXIAL)
    view = orthogonal(volume, "axial", position=float(SPHERE[2]))
    row, column = np.unravel_index(np.argmax(view.values), view.values.shape)
    assert view.value_at(int(row), int(column)) in (300.0, 1500.0)
    point = view.patient_at(0, 0)
    assert point[0] < 0 and point[1] < 0  # top left is patient right, anterior


def test_oblique_slice_through_the_sphere(archive: Archive, tmp_path: Path) -> None:
    _, volume = _volume(archive, tmp_path / "axial", orientation=AXIAL)
    view = oblique(volume, SPHERE, np.array([1.0, 1.0, 1.0]), size=128, spacing=1.0)
    centre = _centroid(view, 150)
    assert np.allclose(centre, SPHERE, atol=1.5)


def test_time_points_at_the_same_positions_become_stacks(archive: Archive, tmp_path: Path) -> None:
    series = "1.2.826.0.1.3680043.8.498.77"
    for t in (1, 2, 3):
        write_series(tmp_path / f"t{t}", AXIAL, count=10, temporal=t, series_uid=series)
    import_paths(archive, [tmp_path])
    stacks = assemble(slices_of(series_instances(archive, series)))
    assert [len(s.slices) for s in stacks] == [10, 10, 10]
    offsets = [tuple(np.round(s.offsets, 3)) for s in stacks]
    assert offsets[0] == offsets[1] == offsets[2]  # each one sorted in space


def test_repeated_positions_without_time_ids_split_too(archive: Archive, tmp_path: Path) -> None:
    series = "1.2.826.0.1.3680043.8.498.78"
    for run in (1, 2):
        write_series(tmp_path / f"run{run}", AXIAL, count=8, series_uid=series)
    import_paths(archive, [tmp_path])
    stacks = assemble(slices_of(series_instances(archive, series)))
    assert [len(s.slices) for s in stacks] == [8, 8]


TILT = np.radians(15)
# A gantry tilted 15°: slices tipped about patient x, stepping straight along z as the
# table moves (so the step is not along the slice normal: a sheared stack).
TILTED = (1.0, 0.0, 0.0, 0.0, float(np.cos(TILT)), float(np.sin(TILT)))


def test_a_tilted_stack_is_resampled_for_reslices_and_matches_the_untilted_one(
    archive: Archive, tmp_path: Path
) -> None:
    step = 2.0
    stacks, tilted = _volume(
        archive, tmp_path / "tilt", orientation=TILTED, step=step,
        shear=(0.0, float(np.sin(TILT)) * step, 0.0),
    )  # fmt: skip
    stack = stacks[0]
    assert stack.tilt == pytest.approx(15, abs=0.1) and any("tilt" in p for p in stack.problems)
    # The affine is the true, sheared geometry: slice k is where the file says it is.
    k = 20
    assert np.allclose(stack.affine[:3, 3] + k * stack.affine[:3, 2], stack.slices[k].position)
    assert acquired(tilted, 10).values.shape == (64, 64)  # the acquired plane, as stored
    _, straight = _volume(archive, tmp_path / "straight", orientation=AXIAL)
    voxel = 2.0
    for plane, axis in (("axial", 2), ("coronal", 1), ("sagittal", 0)):
        view = orthogonal(tilted, plane, position=float(SPHERE[axis]))
        assert view.description.endswith("(gantry tilt 15.0° resampled)")
        reference = orthogonal(straight, plane, position=float(SPHERE[axis]))
        found, expected = _centroid(view, 150), _centroid(reference, 150)
        assert np.allclose(found, expected, atol=voxel), (plane, found, expected)
        if plane == "axial":  # the box's right edge (air to 40 HU) where it should be
            edges = [
                v.patient_at(0, np.nonzero(v.values > -500)[1].min()) for v in (view, reference)
            ]
            assert abs(edges[0][0] - edges[1][0]) <= voxel
    mip = orthogonal(tilted, "coronal", "mip")
    assert np.allclose(_centroid(mip, 1000)[[0, 2]], MARKER[[0, 2]], atol=voxel)


@pytest.mark.parametrize("tilt_x, turn_z", [(30.0, 20.0), (-45.0, 60.0), (10.0, -75.0)])
def test_an_oblique_plane_cuts_the_marker_where_the_geometry_says(
    archive: Archive, tmp_path: Path, tilt_x: float, turn_z: float
) -> None:
    _, volume = _volume(archive, tmp_path / "axial", orientation=AXIAL)
    a, b = np.radians(tilt_x), np.radians(turn_z)
    turn = np.array([[np.cos(b), -np.sin(b), 0], [np.sin(b), np.cos(b), 0], [0, 0, 1]])
    tip = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    frame = turn @ tip  # columns: the plane's column, row and normal directions
    column, row, normal = frame[:, 0], frame[:, 1], frame[:, 2]
    through = oblique(volume, MARKER, normal, spacing=1.0, axes=(row, column))
    assert np.allclose(through.column_step, column) and np.allclose(through.row_step, row)
    assert np.allclose(_centroid(through, 1000), MARKER, atol=1.0)
    # 10 mm along the normal the plane misses the 8 mm cube; a 24 mm MIP slab holds it.
    beside = MARKER + 10 * normal
    assert oblique(volume, beside, normal, spacing=1.0).values.max() < 1000
    slab = oblique(volume, beside, normal, spacing=1.0, mode="mip", slab=24.0, axes=(row, column))
    assert "MIP" in slab.description
    # Projected onto the slab's plane: the marker moved 10 mm along the normal.
    assert np.allclose(_centroid(slab, 1000), MARKER + 10 * normal, atol=1.0)


def test_gaps_are_reported(archive: Archive, tmp_path: Path) -> None:
    uid = write_series(tmp_path / "gappy", AXIAL, count=20)
    files = sorted((tmp_path / "gappy").iterdir())
    for path in files[8:11]:
        path.unlink()
    import_paths(archive, [tmp_path / "gappy"])
    [stack] = assemble(slices_of(series_instances(archive, uid)))
    assert any("gap" in p for p in stack.problems)


def test_real_sagittal_mr_gives_axial_and_coronal_views(archive: Archive, shared: Path) -> None:
    folder = shared / "neurolabusc_dcm_qa_xa30i"
    import_paths(archive, [folder])
    uid = archive.conn.execute("SELECT series_uid FROM series").fetchone()[0]
    [stack] = assemble(slices_of(series_instances(archive, uid)))
    volume = load(stack)
    axial = orthogonal(volume, "axial")
    coronal = orthogonal(volume, "coronal")
    assert axial.labels["left"] == "R" and coronal.labels["top"] == "H"
    assert axial.values.std() > 0 and coronal.values.std() > 0
    # A sagittal stack of 96 slices 2 mm apart spans 190 mm from right to left.
    assert axial.values.shape[1] * axial.pixel_spacing[1] == pytest.approx(192, abs=4)


def test_obliqueness_is_known_from_the_affine() -> None:
    from tui.render.views import is_oblique

    turned = np.eye(4)
    turned[:3, 0], turned[:3, 1] = [np.cos(0.3), np.sin(0.3), 0], [-np.sin(0.3), np.cos(0.3), 0]
    assert is_oblique(turned) and not is_oblique(np.diag([-1.0, 1, 2, 1]))


def test_a_4d_series_plays_in_time_order_and_reduces_to_a_mip_over_time(
    archive: Archive, tmp_path: Path
) -> None:
    from tui.render.pipeline import Request, render, time_points

    series = "1.2.826.0.1.3680043.8.498.79"
    # The sphere brightens over time, peaking at t=3 of 5 (contrast arriving and leaving).
    peak = {1: 100.0, 2: 400.0, 3: 900.0, 4: 500.0, 5: 200.0}

    def at(t: int):
        def values(points: np.ndarray) -> np.ndarray:
            hu = phantom(points)
            return np.where(np.linalg.norm(points - SPHERE, axis=-1) < 12, peak[t], hu)

        return values

    for t in (4, 1, 5, 3, 2):  # written out of order
        write_series(
            tmp_path / f"t{t}", AXIAL, count=16, step=5.0, temporal=t, series_uid=series,
            values=at(t),
        )  # fmt: skip
    import_paths(archive, [tmp_path])
    stacks = assemble(slices_of(series_instances(archive, series)))
    timeline = time_points(stacks, 2)
    assert len(timeline) == 5
    request = Request(plane="axial", position=float(SPHERE[2]))
    centre = []
    for stack in timeline:
        view = render(stack, request, {}).view
        assert view is not None
        centre.append(view.values[_pixel(view, SPHERE)])
    assert centre == [peak[t] for t in (1, 2, 3, 4, 5)]
    over = render(timeline[0], replace(request, over_time=True), {}, time_points=timeline)
    assert over.view is not None and over.description.startswith("time MIP of 5")
    assert np.array_equal(over.view.origin, view.origin)  # the same plane, reduced over time
    assert over.view.values[_pixel(over.view, SPHERE)] == 900.0
    # One time point: no timeline to play.
    _, plain = _volume(archive, tmp_path / "still", orientation=AXIAL, count=8)
    assert len(time_points([plain.stack], 0)) == 1
