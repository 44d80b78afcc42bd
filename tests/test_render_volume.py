"""Loading volumes: compressed series decode in parallel to the same voxels; loading
reports progress and can be cancelled; the cache stays under its bound."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

from tui.archive.importer import import_paths
from tui.archive.index import Archive
from tui.archive.query import series_instances
from tui.render.volume import VolumeCache, VolumeError, assemble, load, slices_of

J2K = "neurolabusc_dcm_qa_frag/MR_Siemens_6001_anat-T1w_J2K_lossless_multifragment"


def _stack(archive: Archive, folder: Path):
    import_paths(archive, [folder])
    uid = archive.conn.execute("SELECT series_uid FROM series").fetchone()[0]
    [stack] = assemble(slices_of(series_instances(archive, uid)))
    return stack


def test_a_compressed_series_decodes_in_workers_to_the_same_voxels(
    archive: Archive, shared: Path
) -> None:
    stack = _stack(archive, shared / J2K)
    volume = load(stack, workers=2)
    assert volume.data.shape == (96, 128, 128)
    assert volume.data.dtype.kind in "iu"  # stored type kept: one rescale for all slices
    for k in (0, 40, 95):
        expected = dcmread(stack.slices[k].source.path).pixel_array
        assert np.array_equal(volume.data[k], expected)
    assert np.array_equal(load(stack, workers=1).data, volume.data)


def test_loading_reports_progress_and_can_be_cancelled(archive: Archive, shared: Path) -> None:
    stack = _stack(archive, shared / "neurolabusc_dcm_qa_xa30i")
    seen: list[int] = []
    load(stack, progress=lambda done, total: seen.append(done))
    assert seen == list(range(1, 97))
    cancel = threading.Event()

    def stop(done: int, total: int) -> None:
        if done == 10:
            cancel.set()

    with pytest.raises(VolumeError, match="cancelled"):
        load(stack, progress=stop, cancel=cancel)


def test_the_cache_drops_the_least_recent_volume(archive: Archive, shared: Path) -> None:
    stack = _stack(archive, shared / "neurolabusc_dcm_qa_xa30i")
    volume = load(stack)
    cache = VolumeCache(max_mb=volume.nbytes * 1.5 / 2**20)
    cache.put("a", volume)
    cache.put("b", load(stack))
    assert cache.get("a") is None and cache.get("b") is not None


def _in_threads(*calls):
    """Start each call in its own thread; return the threads and their results."""
    results: dict[int, object] = {}

    def run(n: int, call) -> None:
        try:
            results[n] = call()
        except VolumeError as exc:
            results[n] = exc

    threads = [threading.Thread(target=run, args=(n, call)) for n, call in enumerate(calls)]
    return threads, results


def test_a_volume_asked_for_twice_at_once_loads_once(archive: Archive, shared: Path) -> None:
    from tui.render.pipeline import volume_of

    stack = _stack(archive, shared / "neurolabusc_dcm_qa_xa30i")
    cache = VolumeCache()
    loads: list[int] = []
    started, release = threading.Event(), threading.Event()

    def slow_load(progress, cancel):  # the real load, held until the second caller asks
        loads.append(1)
        started.set()
        release.wait(10)
        return load(stack, progress, cancel)

    later: list[int] = []
    threads, results = _in_threads(
        lambda: cache.load("key", slow_load),
        lambda: cache.load("key", slow_load, progress=lambda done, total: later.append(done)),
    )
    threads[0].start()
    assert started.wait(10)
    threads[1].start()
    threads[1].join(0.3)  # it waits for the first load rather than loading again
    assert threads[1].is_alive()
    release.set()
    for thread in threads:
        thread.join(10)
    assert len(loads) == 1
    assert results[0] is results[1] is cache.get("key")
    assert later == list(range(1, 97))  # the waiter saw the load's progress
    # The pipeline goes through it: the volume cached under the stack's key is the one.
    assert volume_of(stack, cache) is volume_of(stack, cache)


def test_a_wait_stops_on_its_cancel_and_a_cancelled_load_is_taken_over(
    archive: Archive, shared: Path
) -> None:
    stack = _stack(archive, shared / "neurolabusc_dcm_qa_xa30i")
    cache = VolumeCache()
    loads: list[int] = []
    started, release = threading.Event(), threading.Event()
    first, waiting, given_up = threading.Event(), threading.Event(), threading.Event()
    given_up.set()

    def slow_load(progress, cancel):
        loads.append(1)
        started.set()
        release.wait(10)
        return load(stack, progress, cancel)

    threads, results = _in_threads(
        lambda: cache.load("key", slow_load, cancel=first),
        lambda: cache.load("key", slow_load, cancel=waiting),
        lambda: cache.load("key", slow_load, cancel=given_up),
    )
    threads[0].start()
    assert started.wait(10)
    threads[1].start()
    threads[2].start()
    threads[2].join(5)  # its own cancel ends its wait while the first load still runs
    assert isinstance(results[2], VolumeError) and not release.is_set()
    first.set()
    release.set()  # the first load stops at its first slice; the waiter loads it itself
    for thread in threads[:2]:
        thread.join(10)
    assert isinstance(results[0], VolumeError)
    assert len(loads) == 2 and results[1] is cache.get("key")
    assert results[1].data.shape[0] == 96


def test_every_shared_series_renders_or_says_why(archive: Archive, shared: Path) -> None:
    """Malformed files, odd UIDs, colour, palettes, multi-frame: an image or one clear error."""
    from tui.errors import UserError
    from tui.render.pipeline import Request, pick_stack, render
    from tui.render.presets import load_presets

    import_paths(archive, [shared])
    presets = load_presets()
    rendered = refused = 0
    for (uid,) in archive.conn.execute("SELECT series_uid FROM series").fetchall():
        try:
            stack = pick_stack(assemble(slices_of(series_instances(archive, uid))), 0)
            image = render(stack, Request(), presets).image
        except UserError as exc:
            assert str(exc) and "\n" not in str(exc)
            refused += 1
            continue
        assert image.dtype == np.uint8 and image.ndim in (2, 3)
        rendered += 1
    assert rendered > 60 and refused < rendered / 4


def test_windows_read_as_a_person_writes_them() -> None:
    from tui.render.lut import Window

    assert str(Window(259.375, 2812.5)) == "C 259.4 W 2812.5"
    assert str(Window(40, 400, name="CT")) == "CT C 40 W 400"
    assert str(Window(-0.04, 1)) == "C 0 W 1"
