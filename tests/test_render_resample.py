"""An oblique stack is resampled once onto the patient-aligned grid, and its projections
and slices in every plane are cut from that copy: the same pixels as sampling each plane
on its own (within rounding to the stored type), the same orientation, one copy however
many threads ask, counted in the cache's budget."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from tui.archive.importer import import_paths
from tui.archive.index import Archive
from tui.archive.query import series_instances
from tui.render import views
from tui.render.volume import Volume, VolumeCache, assemble, load, slices_of

GE = "neurolabusc_dcm_qa_ge/MR_GE_SIGNA-Pioneer_3D_Ax_T1_MPRAGE"
LABELS = {
    "axial": {"left": "R", "right": "L", "top": "A", "bottom": "P"},
    "coronal": {"left": "R", "right": "L", "top": "H", "bottom": "F"},
    "sagittal": {"left": "A", "right": "P", "top": "H", "bottom": "F"},
}


def _load(archive: Archive, folder: Path) -> Volume:
    import_paths(archive, [folder])
    uid = archive.conn.execute("SELECT series_uid FROM series").fetchone()[0]
    [stack] = assemble(slices_of(series_instances(archive, uid)))
    return load(stack)


@pytest.fixture
def oblique_mr(archive: Archive, shared: Path) -> Volume:
    volume = _load(archive, shared / GE)
    assert volume.data.shape == (130, 256, 256)
    assert views.aligned_planes(volume, "axial") is None  # oblique: not cut by indexing
    return volume


def _sampled(volume: Volume, plane: str, mode: str, low: int, high: int) -> np.ndarray:
    """The old way: every plane sampled trilinearly on its own."""
    grid = views._orthogonal_grid(volume, plane)
    return views._project_sampled(volume, grid, low, high, mode)


def test_projections_from_the_resampled_copy_match_per_plane_sampling(oblique_mr) -> None:
    volume = oblique_mr
    # Rounding to the stored int16 (0.5) plus float32 coordinates computed another way.
    tolerance = 1.0 * abs(volume.slope)
    before = {p: views.orthogonal(volume, p) for p in views.PLANES}  # sampled: no copy yet
    assert volume.resampled is None
    for plane in views.PLANES:
        count = views.orthogonal_count(volume, plane)
        old = _sampled(volume, plane, "mip", 0, count)
        new = views.orthogonal(volume, plane, "mip")
        assert volume.resampled is not None and volume.resampled.dtype == volume.data.dtype
        assert new.values.shape == old.shape
        assert np.abs(new.values - old).max() <= tolerance, plane
        assert np.abs(new.values - old).mean() <= 0.3 * tolerance, plane
        assert new.values.max() > volume.values(np.array(volume.minimum)) + 100  # an image
        assert new.labels == LABELS[plane]
        # A slice once the copy exists: indexed, the same as the sampled one before it.
        after = views.orthogonal(volume, plane)
        assert np.abs(after.values - before[plane].values).max() <= tolerance
        assert np.allclose(after.origin, before[plane].origin)
        assert after.labels == before[plane].labels == LABELS[plane]
    slab = views.orthogonal(volume, "coronal", "minip", index=120, slab=10.0)
    low, high = views._slab_range("minip", 120, views.orthogonal_count(volume, "coronal"), 10.0,
                                  float(np.linalg.norm(views._orthogonal_grid(volume, "coronal")
                                                       .normal_step)))  # fmt: skip
    old = _sampled(volume, "coronal", "minip", low, high)
    assert np.abs(slab.values - old).max() <= tolerance


def test_threads_share_the_planes_and_agree_with_one(oblique_mr) -> None:
    """Every plane written once whichever thread took it: the same array as one thread's."""
    grid = views._orthogonal_grid(oblique_mr, "sagittal")
    one = views.resample(oblique_mr, grid, threads=1)
    assert np.array_equal(views.resample(oblique_mr, grid, threads=2), one)
    assert (one == oblique_mr.minimum).any() and (one != oblique_mr.minimum).mean() > 0.2


def test_one_copy_however_many_threads_ask_and_the_cache_counts_it(oblique_mr) -> None:
    volume = oblique_mr
    got: list[np.ndarray | None] = []
    threads = [threading.Thread(target=lambda: got.append(views.prepare(volume))) for _ in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert got[0] is not None and got[0] is got[1] is volume.resampled
    assert volume.nbytes == volume.data.nbytes + got[0].nbytes
    cache = VolumeCache(max_mb=(volume.nbytes - 1) / 2**20)
    cache.put("oblique", volume)
    cache.put("other", Volume(volume.stack, volume.data[:1], 1.0, 0.0, volume.header))
    assert cache.get("oblique") is None  # the copy pushed it over the budget


def test_an_aligned_volume_is_never_copied(archive: Archive, shared: Path) -> None:
    volume = _load(archive, shared / "neurolabusc_dcm_qa_toshiba")
    zyx = views.prepare(volume)
    assert zyx is not None and np.shares_memory(zyx, volume.data)
    assert volume.resampled is None
