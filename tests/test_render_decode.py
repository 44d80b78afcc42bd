"""Decoding and the display pipeline against dcmtk, an independent implementation."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import IN_CI, need_shared
from tui.archive.header import read_record
from tui.render.decode import DecodeError, PixelSource, display_header, read_frame
from tui.render.lut import Window, auto_window, modality_values, to_display


def source(path: Path) -> PixelSource:
    r = read_record(str(path))
    p = r.pixels
    return PixelSource(
        str(path), r.sop_uid, r.transfer_syntax, r.rows or 0, r.columns or 0, r.frames,
        r.samples_per_pixel or 1, r.photometric, r.bits_allocated, r.bits_stored,
        r.pixel_representation, p.offset if p else None, p.length if p else None,
    )  # fmt: skip


# Native, big endian, deflate, RLE, JPEG lossless, JPEG-LS; MONOCHROME1; rescaled CT;
# modality and VOI LUT sequences. (Debian's dcmtk has no JPEG 2000: the nine-syntax test
# below checks that one against the uncompressed original instead.)
DCMTK_CASES = [
    ("pydicom_test_files/grayscale_transfer_syntaxes/CT_small.dcm", "dcm2pnm"),
    ("pydicom_test_files/grayscale_transfer_syntaxes/MR_small_bigendian.dcm", "dcm2pnm"),
    ("pydicom_test_files/grayscale_transfer_syntaxes/image_dfl.dcm", "dcm2pnm"),
    ("pydicom_test_files/grayscale_transfer_syntaxes/MR_small_RLE.dcm", "dcm2pnm"),
    ("pydicom_test_files/grayscale_transfer_syntaxes/MR_small_jpeg_ls_lossless.dcm", "dcml2pnm"),
    ("neurolabusc_dcm_qa_ts/MR_Siemens_Trio_one_image_9_transfer_syntaxes/4.dcm", "dcmj2pnm"),
    ("pydicom_test_files/dicomdir/77654033/CR1/6154", "dcm2pnm"),  # MONOCHROME1
    ("pydicom_test_files/dicomdir/98892001/CT2N/6293", "dcm2pnm"),
    ("pydicom-data/lut_overlay_seg/mlut_18.dcm", "dcm2pnm"),
    ("pydicom-data/lut_overlay_seg/MR-SIEMENS-DICOM-WithOverlays.dcm", "dcm2pnm"),
]


@pytest.fixture(scope="module")
def dcmtk() -> None:
    if shutil.which("dcm2pnm") is None:
        if IN_CI:
            pytest.fail("dcmtk is missing: .ci/run must install it")
        pytest.skip("dcmtk is not installed (apt-get install dcmtk)")


@pytest.mark.parametrize(("relative", "tool"), DCMTK_CASES)
@pytest.mark.parametrize("function", ["LINEAR", "AUTO"])
def test_same_8bit_image_as_dcmtk(dcmtk, tmp_path, relative: str, tool: str, function: str) -> None:
    path = need_shared() / relative
    ds = display_header(str(path))
    stored = read_frame(source(path), 0)
    if function == "AUTO":
        window = auto_window(modality_values(stored, ds))
    else:
        window = Window(40, 400) if ds.Modality == "CT" else Window(600, 1000)
    ours = to_display(stored, ds, window)
    out = tmp_path / "dcmtk.png"
    command = [tool, "-O", "+on", "+Ww", str(window.center), str(window.width), str(path), str(out)]
    subprocess.run(command, check=True, capture_output=True)
    theirs = np.asarray(Image.open(out))
    assert ours.shape == theirs.shape
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1


def test_the_nine_transfer_syntaxes_decode_to_identical_arrays() -> None:
    folder = (
        need_shared() / "neurolabusc_dcm_qa_ts" / "MR_Siemens_Trio_one_image_9_transfer_syntaxes"
    )
    files = sorted(folder.glob("*.dcm"))
    assert len(files) == 9
    arrays = [read_frame(source(f), 0) for f in files]
    assert sum(source(f).direct for f in files) >= 1  # the offset path is among them
    for path, array in zip(files[1:], arrays[1:], strict=True):
        assert np.array_equal(array.astype(np.int32), arrays[0].astype(np.int32)), path.name


def test_direct_read_equals_pydicom() -> None:
    from pydicom import dcmread

    path = need_shared() / "pydicom_test_files" / "grayscale_transfer_syntaxes" / "CT_small.dcm"
    src = source(path)
    assert src.direct
    assert np.array_equal(read_frame(src, 0), dcmread(path).pixel_array)


def test_one_frame_of_a_multiframe_file() -> None:
    folder = need_shared() / "neurolabusc_dcm_qa_xa30"
    path = next(p for p in folder.rglob("*") if p.is_file() and p.suffix not in (".md", ".txt"))
    from pydicom import dcmread

    whole = dcmread(path).pixel_array
    src = source(path)
    assert np.array_equal(read_frame(src, 50), whole[50])
    with pytest.raises(DecodeError, match="no frame 97"):
        read_frame(src, 96)


def test_colour_images_come_out_rgb() -> None:
    shared = need_shared()
    for relative in (
        "pydicom_test_files/color_and_palette/SC_rgb_jpeg_dcmtk.dcm",
        "pydicom_test_files/color_and_palette/examples_palette.dcm",
        "pydicom_test_files/color_and_palette/SC_ybr_full_422_uncompressed.dcm",
    ):
        path = shared / relative
        image = to_display(read_frame(source(path), 0), display_header(str(path)))
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, relative
        assert image.std() > 10, relative


def test_unreadable_pixels_are_a_clear_error() -> None:
    shared = need_shared()
    truncated = shared / "pydicom_test_files" / "malformed_or_nonconformant" / "MR_truncated.dcm"
    with pytest.raises(DecodeError, match="truncated"):
        read_frame(source(truncated), 0)
    bad_jpeg = shared / "pydicom_test_files" / "malformed_or_nonconformant" / "JPEG-lossy.dcm"
    with pytest.raises(DecodeError, match="cannot decode"):
        read_frame(source(bad_jpeg), 0)
