"""Burned-in text: which images are refused, and blanking rectangles in real files."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import uid as uids
from pydicom.dataset import Dataset

from tests.conftest import need_shared
from tui.archive.deid import pixels
from tui.errors import UserError

# The Philips ultrasound with BurnedInAnnotation YES: rows 0-23 hold a banner with the
# patient's name, ID, birth date, institution and the exam's date and time (seen in a
# rendering of the file); the image below starts at row 26.
US = "deid-data/ultrasound_single_frame/GREYSCALE_IMAGE.dcm"
BANNER = (0, 0, 1024, 24)


def _shared(name: str, tmp_path: Path) -> Path:
    copy = tmp_path / Path(name).name
    shutil.copyfile(need_shared() / name, copy)
    return copy


def _round_trip(ds: Dataset) -> Dataset:
    buffer = io.BytesIO()
    ds.save_as(buffer)
    buffer.seek(0)
    return pydicom.dcmread(buffer)


def _region(arr: np.ndarray, frames: int, rect: tuple[int, int, int, int]) -> tuple:
    x, y, w, h = rect
    index: list[slice] = [slice(None)] * arr.ndim
    axis = 1 if frames > 1 else 0
    index[axis] = slice(y, y + h)
    index[axis + 1] = slice(x, x + w)
    return tuple(index)


def _check_blanked(before: np.ndarray, after: Dataset, rect: tuple[int, int, int, int]) -> None:
    """The rectangle is zero in every frame and sample, everything else unchanged."""
    decoded = after.pixel_array
    assert decoded.shape == before.shape
    frames = int(after.get("NumberOfFrames", 1) or 1)
    inside = _region(decoded, frames, rect)
    assert before[inside].any(), "the test rectangle must cover something to blank"
    assert not decoded[inside].any()
    outside = np.ones(decoded.shape, dtype=bool)
    outside[inside] = False
    assert np.array_equal(decoded[outside], before[outside])


def test_the_burned_in_ultrasound_is_refused_then_blanked(tmp_path):
    path = _shared(US, tmp_path)
    ds = pydicom.dcmread(path)
    assert pixels.burned_in_reason(ds) == "BurnedInAnnotation is YES"
    uid = ds.SOPInstanceUID
    before = np.array(ds.pixel_array)
    assert before[:24].any() and before[24:26].max() == 0  # the banner, then a gap

    pixels.blank(ds, [BANNER])
    out = _round_trip(ds)
    assert out.BurnedInAnnotation == "NO"
    assert pixels.burned_in_reason(out) is None
    assert out.SOPInstanceUID == uid  # UIDs are the profile's business
    assert out.file_meta.TransferSyntaxUID == uids.ExplicitVRLittleEndian
    _check_blanked(before, out, BANNER)


def test_kinds_that_carry_text_are_refused_unless_they_say_no(tmp_path):
    rgb_us = pydicom.dcmread(_shared("deid-data/ultrasound_single_frame/RGB_IMAGE.dcm", tmp_path))
    assert "BurnedInAnnotation" not in rgb_us
    reason = pixels.burned_in_reason(rgb_us)
    assert reason is not None and "ultrasound" in reason and "absent" in reason
    rgb_us.BurnedInAnnotation = "NO"
    assert pixels.burned_in_reason(rgb_us) is None

    capture = pydicom.dcmread(_shared("deid-data/ct_jpeg_secondary_capture/ctbrain1.dcm", tmp_path))
    assert capture.Modality == "CT"  # refused for its SOP class, not its modality
    reason = pixels.burned_in_reason(capture)
    assert reason is not None and "Secondary Capture" in reason

    ct = pydicom.dcmread(
        _shared("pydicom_test_files/grayscale_transfer_syntaxes/CT_small.dcm", tmp_path)
    )
    assert pixels.burned_in_reason(ct) is None
    ct.ImageType = ["DERIVED", "SECONDARY", "SCREEN SAVE"]
    assert "SCREEN SAVE" in (pixels.burned_in_reason(ct) or "")
    del ct.ImageType
    ct.ConversionType = "WSD"
    assert "WSD" in (pixels.burned_in_reason(ct) or "")
    ct.BurnedInAnnotation = "YES"
    assert pixels.burned_in_reason(ct) == "BurnedInAnnotation is YES"

    report = pydicom.dcmread(
        _shared("pydicom_test_files/multiframe_and_non_image_sop/reportsi.dcm", tmp_path)
    )
    report.Modality = "US"  # even so: no pixels, nothing to read in them
    assert pixels.burned_in_reason(report) is None


@pytest.mark.parametrize(
    ("name", "rect"),
    [
        ("pydicom_test_files/grayscale_transfer_syntaxes/MR_small_RLE.dcm", (10, 20, 30, 8)),
        ("pydicom_test_files/color_and_palette/SC_rgb_rle_2frame.dcm", (5, 50, 40, 20)),
        (
            "pydicom_test_files/grayscale_transfer_syntaxes/MR_small_jp2klossless.dcm",
            (0, 0, 16, 16),
        ),
        ("pydicom_test_files/color_and_palette/examples_jpeg2k.dcm", (100, 10, 200, 30)),
    ],
)
def test_lossless_syntaxes_pydicom_encodes_are_kept(tmp_path, name, rect):
    ds = pydicom.dcmread(_shared(name, tmp_path))
    syntax = ds.file_meta.TransferSyntaxUID
    before = np.array(ds.pixel_array)
    pixels.blank(ds, [rect])
    out = _round_trip(ds)
    assert out.file_meta.TransferSyntaxUID == syntax
    _check_blanked(before, out, rect)


def test_jpeg_ls_lossless_is_kept_when_its_encoder_is_installed(tmp_path):
    name = "pydicom_test_files/grayscale_transfer_syntaxes/MR_small_jpeg_ls_lossless.dcm"
    ds = pydicom.dcmread(_shared(name, tmp_path))
    assert ds.file_meta.TransferSyntaxUID == uids.JPEGLSLossless
    before = np.array(ds.pixel_array)
    pixels.blank(ds, [(8, 8, 20, 20)])
    out = _round_trip(ds)
    # pyjpegls encodes JPEG-LS; without it the pixels go out uncompressed.
    expected = uids.JPEGLSLossless if pixels._can_encode(uids.JPEGLSLossless) else None
    assert out.file_meta.TransferSyntaxUID == (expected or uids.ExplicitVRLittleEndian)
    _check_blanked(before, out, (8, 8, 20, 20))


def test_jpeg_baseline_falls_back_to_uncompressed_rgb(tmp_path):
    ds = pydicom.dcmread(_shared("deid-data/ct_jpeg_secondary_capture/ctbrain1.dcm", tmp_path))
    assert ds.file_meta.TransferSyntaxUID == uids.JPEGBaseline8Bit
    assert ds.PhotometricInterpretation == "YBR_FULL_422"
    assert ds.LossyImageCompression == "01"
    # A lossy image that did not say so is marked when its pixels go out uncompressed.
    del ds.LossyImageCompression
    before = np.array(ds.pixel_array)  # pydicom gives RGB
    rect = (0, 0, 200, 40)
    pixels.blank(ds, [rect])
    out = _round_trip(ds)
    assert out.file_meta.TransferSyntaxUID == uids.ExplicitVRLittleEndian
    assert out.PhotometricInterpretation == "RGB"
    assert out.LossyImageCompression == "01"  # it was lossy, and says so still
    assert out.LossyImageCompressionMethod == "ISO_10918_1"
    assert out.BurnedInAnnotation == "NO"
    _check_blanked(before, out, rect)


def test_planar_configuration_and_big_endian(tmp_path):
    planar = pydicom.dcmread(
        _shared("pydicom-data/color_palette_ultrasound/color-pl.dcm", tmp_path)
    )
    assert planar.PlanarConfiguration == 1
    before = np.array(planar.pixel_array)
    pixels.blank(planar, [(10, 10, 50, 50)])
    out = _round_trip(planar)
    assert out.PlanarConfiguration == 0
    _check_blanked(before, out, (10, 10, 50, 50))

    big = pydicom.dcmread(
        _shared("pydicom_test_files/grayscale_transfer_syntaxes/MR_small_bigendian.dcm", tmp_path)
    )
    before = np.array(big.pixel_array)
    pixels.blank(big, [(0, 0, 10, 64)])
    out = _round_trip(big)
    assert out.file_meta.TransferSyntaxUID == uids.ExplicitVRBigEndian
    _check_blanked(before, out, (0, 0, 10, 64))


def test_rectangles_are_clipped_and_checked(tmp_path):
    path = _shared("pydicom_test_files/grayscale_transfer_syntaxes/CT_small.dcm", tmp_path)
    ds = pydicom.dcmread(path)
    before = np.array(ds.pixel_array)
    pixels.blank(ds, [(120, 120, 50, 50)])  # runs past the 128x128 corner
    out = _round_trip(ds)
    _check_blanked(before, out, (120, 120, 8, 8))
    with pytest.raises(UserError, match="outside the 128x128 image"):
        pixels.blank(pydicom.dcmread(path), [(200, 0, 10, 10)])
    with pytest.raises(UserError, match="positive"):
        pixels.blank(pydicom.dcmread(path), [(0, 0, 0, 10)])
    report = pydicom.dcmread(
        _shared("pydicom_test_files/multiframe_and_non_image_sop/reportsi.dcm", tmp_path)
    )
    with pytest.raises(UserError, match="no pixel data"):
        pixels.blank(report, [(0, 0, 1, 1)])


def test_refused_carries_its_reason():
    error = pixels.Refused("BurnedInAnnotation is YES")
    assert error.reason == "BurnedInAnnotation is YES"
    assert str(error) == "BurnedInAnnotation is YES"
