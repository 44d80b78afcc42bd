"""Windows on real series: projections get their own (a MIP in a slice's window is blown out
to white), and one series view keeps one window however many per-slice windows its files
carry (the brightness must not pump while scrolling)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tui.archive.importer import import_paths
from tui.archive.index import Archive
from tui.archive.query import series_instances
from tui.render.decode import display_header
from tui.render.lut import Window, file_windows
from tui.render.pipeline import Request, render
from tui.render.volume import VolumeCache, assemble, slices_of

SERIES = [
    "neurolabusc_dcm_qa_xa30i/MR_Siemens_PrismaFit_XA30_5001_anat-T1w_acq-tfl",  # sagittal
    "neurolabusc_dcm_qa_ge/MR_GE_SIGNA-Pioneer_3D_Ax_T1_MPRAGE",  # oblique axial
]


def _stack(archive: Archive, folder: Path):
    import_paths(archive, [folder])
    uid = archive.conn.execute("SELECT series_uid FROM series").fetchone()[0]
    return max(assemble(slices_of(series_instances(archive, uid))), key=lambda s: len(s.slices))


@pytest.mark.parametrize("folder", SERIES)
def test_projections_get_a_window_that_covers_their_values(
    archive: Archive, shared: Path, folder: str
) -> None:
    stack = _stack(archive, shared / folder)
    cache = VolumeCache()
    for mode in ("mip", "minip", "avg"):
        for plane in ("coronal", "axial", "acquired"):
            rendered = render(stack, Request(mode=mode, plane=plane), {}, cache)
            values = rendered.view.values
            window = rendered.window
            assert window.name == mode.upper()
            top = window.center + window.width / 2
            bottom = window.center - window.width / 2
            assert top >= np.percentile(values, 99) and bottom <= np.percentile(values, 1)
            above = float(np.mean(values > top))
            assert above <= 0.01, (mode, plane, window, above)  # not blown out to white
    mine = Window(100, 50)  # the user's window stays the user's
    rendered = render(stack, Request(mode="mip", plane="coronal", window=mine), {}, cache)
    assert rendered.window == mine


def test_one_window_for_every_slice_and_reslice_of_a_series(archive: Archive, shared: Path) -> None:
    stack = _stack(archive, shared / SERIES[0])
    per_slice = {
        tuple(file_windows(display_header(s.source.path))[0].__dict__.values())
        for s in stack.slices
    }
    assert len(per_slice) > 10  # the files carry a window each
    cache = VolumeCache()
    shown = {render(stack, Request(index=i), {}, cache).window for i in range(0, 96, 7)}
    shown |= {render(stack, Request(plane=p), {}, cache).window for p in ("axial", "coronal")}
    assert len(shown) == 1, shown
    middle = stack.slices[len(stack.slices) // 2]
    assert shown == {file_windows(display_header(middle.source.path))[0]}
    # each image's own window, when asked for
    own = {render(stack, Request(index=i, file_window=0), {}, cache).window for i in (0, 40, 80)}
    assert len(own) > 1
