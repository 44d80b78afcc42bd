"""Benchmark projections of an oblique stack: one resampling onto the patient grid, then
reductions, against sampling every plane for every projection (the old way).

Measured in one run on the real GE 3D T1 (256 x 256 x 130, oblique axial) from
``../shared/dicom``, imported into a temporary archive, volume loaded once:

* anchor: the MIP in the acquired plane (a reduction of the stored array);
* old: a coronal MIP sampling each of its planes trilinearly (what each ``m`` cost);
* ours: the first coronal MIP (the one-time resampling included), then later MIPs in each
  plane and a 10 mm MinIP slab.

Target (issue 10): at most 0.3 s a projection for a 256 x 256 x 170 stack. Prints JSON.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from tui.archive.importer import import_paths
from tui.archive.index import Archive
from tui.archive.query import series_instances
from tui.render import views
from tui.render.volume import assemble, load, slices_of

SERIES = "neurolabusc_dcm_qa_ge/MR_GE_SIGNA-Pioneer_3D_Ax_T1_MPRAGE"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "dicom"


def timed(call) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    call()
    return round(time.perf_counter() - start, 4)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        archive = Archive(Path(folder) / "archive")
        import_paths(archive, [SHARED / SERIES])
        uid = archive.conn.execute("SELECT series_uid FROM series").fetchone()[0]
        [stack] = assemble(slices_of(series_instances(archive, uid)))
        volume = load(stack)
        grid = views._orthogonal_grid(volume, "coronal")
        result = {
            "series": SERIES,
            "shape": list(volume.data.shape),
            "anchor_acquired_mip_s": timed(lambda: views.acquired(volume, None, "mip")),
            "old_sampled_coronal_mip_s": timed(
                lambda: views._project_sampled(volume, grid, 0, grid.shape[0], "mip")
            ),
            "first_coronal_mip_with_resampling_s": timed(
                lambda: views.orthogonal(volume, "coronal", "mip")
            ),
        }
        result["resampled_shape"] = list(volume.resampled.shape)  # type: ignore[union-attr]
        for plane in ("coronal", "axial", "sagittal"):
            result[f"later_{plane}_mip_s"] = timed(
                lambda p=plane: views.orthogonal(volume, p, "mip")
            )  # type: ignore[misc]
        result["later_coronal_minip_slab10_s"] = timed(
            lambda: views.orthogonal(volume, "coronal", "minip", slab=10)
        )
        archive.close()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
