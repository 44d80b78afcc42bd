"""Burned-in text: which images are likely to carry it, and blanking rectangles of it.

An image whose pixels may show a name or a date cannot be de-identified by its header
alone. ``burned_in_reason`` says why an instance is suspect (None when it is not);
``blank`` zeroes rectangles in every frame and writes the pixels back.

Kinds of image refused unless BurnedInAnnotation (0028,0301) is "NO":

- Modality US, and the ultrasound SOP classes: scanners print the patient banner,
  measurements and dates into the image;
- the Secondary Capture classes (single-frame, multi-frame single bit, grayscale
  byte and word, true colour): screenshots, scanned documents, film digitised with
  its label;
- an image that says it is a capture: ConversionType (0008,0064) present (WSD
  workstation, SD scanned document, SI scanned image, DF digitised film, DV digitised
  video, SYN synthetic, DRW drawing), or ImageType with a value naming a screen
  capture ("SCREEN SAVE", "SCREENSHOT", "SCREEN CAPTURE");
- visible-light photographs and video (endoscopic, microscopic, photographic,
  ophthalmic photography): the camera sees wristbands, labels and faces;
- whole slide microscopy LABEL and OVERVIEW images: the slide label is handwritten
  or printed with the patient's name.

Always refused: BurnedInAnnotation "YES". Never: objects without pixel data.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydicom import uid as uids

from tui.archive.deid.options import Rect
from tui.errors import UserError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

_US_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.6.1": "Ultrasound Image",
    "1.2.840.10008.5.1.4.1.1.6.2": "Enhanced US Volume",
    "1.2.840.10008.5.1.4.1.1.3.1": "Ultrasound Multi-frame Image",
    "1.2.840.10008.5.1.4.1.1.6": "Ultrasound Image (retired)",
    "1.2.840.10008.5.1.4.1.1.3": "Ultrasound Multi-frame Image (retired)",
}
_CAPTURE_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture",
    "1.2.840.10008.5.1.4.1.1.7.1": "Multi-frame Single Bit Secondary Capture",
    "1.2.840.10008.5.1.4.1.1.7.2": "Multi-frame Grayscale Byte Secondary Capture",
    "1.2.840.10008.5.1.4.1.1.7.3": "Multi-frame Grayscale Word Secondary Capture",
    "1.2.840.10008.5.1.4.1.1.7.4": "Multi-frame True Color Secondary Capture",
}
_PHOTO_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.77.1.1": "VL Endoscopic Image",
    "1.2.840.10008.5.1.4.1.1.77.1.1.1": "Video Endoscopic Image",
    "1.2.840.10008.5.1.4.1.1.77.1.2": "VL Microscopic Image",
    "1.2.840.10008.5.1.4.1.1.77.1.2.1": "Video Microscopic Image",
    "1.2.840.10008.5.1.4.1.1.77.1.3": "VL Slide-Coordinates Microscopic Image",
    "1.2.840.10008.5.1.4.1.1.77.1.4": "VL Photographic Image",
    "1.2.840.10008.5.1.4.1.1.77.1.4.1": "Video Photographic Image",
    "1.2.840.10008.5.1.4.1.1.77.1.5.1": "Ophthalmic Photography 8 Bit Image",
    "1.2.840.10008.5.1.4.1.1.77.1.5.2": "Ophthalmic Photography 16 Bit Image",
}
_WHOLE_SLIDE = "1.2.840.10008.5.1.4.1.1.77.1.6"
_SCREEN_TYPES = ("SCREEN SAVE", "SCREENSHOT", "SCREEN CAPTURE")
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # Pixel Data, Float, Double Float

# Syntaxes pydicom can write again without loss, when its encoder's plugin is installed.
_REENCODABLE = (uids.RLELossless, uids.JPEGLSLossless, uids.JPEG2000Lossless)
# Syntaxes that are always lossy: the image keeps saying so once stored uncompressed.
_LOSSY_METHOD = {
    uids.JPEGBaseline8Bit: "ISO_10918_1",
    uids.JPEGExtended12Bit: "ISO_10918_1",
}


class Refused(Exception):
    """An instance that may show identifying text in its pixels, with the reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def burned_in_reason(ds: Dataset) -> str | None:
    """Why ``ds`` may carry burned-in identifying text, or None when it should not.

    Parameters
    ----------
    ds : Dataset
        The instance as read (its header is enough).

    Returns
    -------
    str or None
        A one-line reason naming what made the instance suspect; None for an object
        without pixel data, one that says BurnedInAnnotation "NO", or an image of a
        kind that seldom carries text.
    """
    if not any(tag in ds for tag in _PIXEL_TAGS):
        return None
    burned = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    if burned == "YES":
        return "BurnedInAnnotation is YES"
    if burned == "NO":
        return None
    kind = _suspect_kind(ds)
    if kind is None:
        return None
    missing = "BurnedInAnnotation is absent" if not burned else f"BurnedInAnnotation is {burned}"
    return f"{kind} may show burned-in text ({missing})"


def _suspect_kind(ds: Dataset) -> str | None:
    """The kind of image that usually carries text, as words for a reason."""
    sop_class = str(ds.get("SOPClassUID", "") or "")
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if modality == "US" or sop_class in _US_CLASSES:
        return "an ultrasound image"
    if sop_class in _CAPTURE_CLASSES:
        return f"a {_CAPTURE_CLASSES[sop_class]} image"
    conversion = str(ds.get("ConversionType", "") or "").strip().upper()
    if conversion:
        return f"a captured image (ConversionType {conversion})"
    image_type = [str(v).strip().upper() for v in _values(ds.get("ImageType"))]
    for value in image_type:
        if value in _SCREEN_TYPES:
            return f"a screen capture (ImageType {value})"
    if sop_class in _PHOTO_CLASSES:
        return f"a {_PHOTO_CLASSES[sop_class]}"
    if sop_class == _WHOLE_SLIDE and ({"LABEL", "OVERVIEW"} & set(image_type)):
        return "a whole slide label or overview image"
    return None


def _values(value: object) -> list[object]:
    """A possibly multi-valued attribute's values as a list."""
    if value is None or value == "":
        return []
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return list(value)  # type: ignore[call-overload]
    return [value]


def blank(ds: Dataset, rects: tuple[Rect, ...] | list[Rect]) -> None:
    """Zero the rectangles in every frame and sample, and store the pixels again.

    Every sample of a pixel in a rectangle becomes 0: black for MONOCHROME2 and RGB,
    white for MONOCHROME1, index 0 of the palette for PALETTE COLOR; whatever was
    written there is gone. YBR images are decoded to RGB (pydicom's decoders convert
    them) and stored as RGB, so zero is black and no chroma subsampling smears the
    edges. The pixels go back in the same transfer syntax when pydicom can encode it
    losslessly here (RLE Lossless, JPEG-LS Lossless, JPEG 2000 Lossless, each when its
    plugin is installed; native syntaxes and Deflated stay as they are, big endian
    becomes little endian), otherwise uncompressed as Explicit VR Little Endian.
    An image that was lossy keeps LossyImageCompression "01". BurnedInAnnotation
    becomes "NO"; the SOP Instance UID is kept (UIDs are the profile's business).

    Parameters
    ----------
    ds : Dataset
        The instance, changed in place; its ``file_meta`` gives the transfer syntax.
    rects : sequence of (x, y, width, height)
        In pixels from the top-left corner; clipped to the image.

    Raises
    ------
    UserError
        When there is no pixel data, a rectangle is empty or lies wholly outside
        the image, or the pixels cannot be decoded.
    """
    if "PixelData" not in ds:
        raise UserError("cannot blank: the instance has no pixel data")
    rows, columns = int(ds.Rows), int(ds.Columns)
    boxes = [_clip(rect, rows, columns) for rect in rects]
    meta = ds.file_meta if hasattr(ds, "file_meta") else None
    declared = str(meta.get("TransferSyntaxUID", "") if meta else "")
    syntax = uids.UID(declared or uids.ImplicitVRLittleEndian)
    try:
        arr = np.array(ds.pixel_array)  # a writable copy: the decoded array may be read-only
    except Exception as exc:  # pydicom raises many kinds for undecodable data
        raise UserError(f"cannot blank: the pixels do not decode ({type(exc).__name__})") from exc

    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    # pixel_array is (frames?, rows, columns, samples?): address rows/columns alike.
    frame_axis = 1 if frames > 1 else 0
    for y0, y1, x0, x1 in boxes:
        index: list[slice] = [slice(None)] * arr.ndim
        index[frame_axis] = slice(y0, y1)
        index[frame_axis + 1] = slice(x0, x1)
        arr[tuple(index)] = 0

    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip()
    if samples == 3 and photometric.startswith("YBR"):
        photometric = "RGB"  # the decoders gave RGB; zero is black there
    lossy_method = _LOSSY_METHOD.get(syntax)
    target = syntax if syntax in _REENCODABLE and _can_encode(syntax) else None
    if syntax.is_compressed:
        ds.file_meta.TransferSyntaxUID = uids.ExplicitVRLittleEndian
    _store_native(ds, arr, photometric, little_endian=syntax.is_little_endian)
    if target is not None:
        # The encoder may refuse this image (32-bit RLE): then it stays uncompressed.
        with contextlib.suppress(ValueError):
            ds.compress(target, arr, generate_instance_uid=False)
    if lossy_method and str(ds.get("LossyImageCompression", "")) != "01":
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = lossy_method
    ds.BurnedInAnnotation = "NO"


def _clip(rect: Rect, rows: int, columns: int) -> tuple[int, int, int, int]:
    """A rectangle as (y0, y1, x0, x1) inside the image."""
    x, y, width, height = (int(v) for v in rect)
    if width <= 0 or height <= 0:
        raise UserError(f"cannot blank {x},{y},{width},{height}: width and height must be positive")
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + width, columns), min(y + height, rows)
    if x0 >= x1 or y0 >= y1:
        raise UserError(
            f"cannot blank {x},{y},{width},{height}: it lies outside the {columns}x{rows} image"
        )
    return y0, y1, x0, x1


def _can_encode(syntax: uids.UID) -> bool:
    """Whether an encoder plugin for ``syntax`` is installed."""
    from pydicom.pixels.encoders.base import get_encoder

    try:
        return bool(get_encoder(syntax).is_available)
    except (NotImplementedError, ValueError):
        return False


def _store_native(ds: Dataset, arr: np.ndarray, photometric: str, *, little_endian: bool) -> None:
    """Write ``arr`` as native (uncompressed) Pixel Data, keeping BitsStored.

    pydicom writes OB/OW values as they are, so big endian data is stored byte-swapped
    here and the (retired) big endian syntax is kept: pydicom cannot convert a whole
    dataset between byte orders when saving.
    """
    from pydicom.pixels import pack_bits, set_pixel_data

    bits_stored = int(ds.get("BitsStored", arr.dtype.itemsize * 8))
    if little_endian and arr.dtype.itemsize in (1, 2) and int(ds.BitsAllocated) in (8, 16):
        set_pixel_data(ds, arr, photometric, bits_stored, generate_instance_uid=False)
        return
    # 1-bit and 32-bit images, which set_pixel_data does not write, and big endian.
    ds.PhotometricInterpretation = photometric
    if int(ds.get("SamplesPerPixel", 1)) > 1:
        ds.PlanarConfiguration = 0
    order: Literal["<", ">"] = "<" if little_endian else ">"
    if int(ds.BitsAllocated) == 1:
        data = pack_bits(arr)
    else:
        data = arr.astype(arr.dtype.newbyteorder(order)).tobytes()
    ds.PixelData = data + b"\x00" * (len(data) % 2)
    elem = ds["PixelData"]
    elem.VR = "OB" if int(ds.BitsAllocated) <= 8 else "OW"
    elem.is_undefined_length = False
