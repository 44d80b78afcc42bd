"""Transfer syntaxes we take and the storage contexts a C-GET proposes, without pynetdicom.

:mod:`tui.net.contexts` re-exports these beside its pynetdicom set-up; C-GET
(:mod:`tui.net.get`) runs on our own upper layer and imports them from here, so a retrieve
does not load pynetdicom (a tenth of a second of start-up: ``benchmarks/bench_get.py``).
"""

from __future__ import annotations

from collections.abc import Collection

# What we accept when a PACS sends us images: every transfer syntax pydicom and the
# pylibjpeg plugins can decode, uncompressed first.
ACCEPTED_SYNTAXES = [
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired, still met)
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51",  # JPEG Extended
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",  # RLE Lossless
    "1.2.840.10008.1.2.4.201",  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.202",  # HTJ2K Lossless RPCL
    "1.2.840.10008.1.2.4.203",  # HTJ2K
]
UNCOMPRESSED = ACCEPTED_SYNTAXES[:2]  # every peer takes these
UNCOMPRESSED_ALL = ACCEPTED_SYNTAXES[:4]  # with deflate and big endian
COMPRESSED = ACCEPTED_SYNTAXES[4:]


def storage_proposals(classes: Collection[str]) -> list[tuple[str, list[str]]]:
    """The storage contexts a C-GET proposes, as (SOP class, transfer syntaxes) pairs.

    A PACS sends each file in the transfer syntax accepted for its SOP class, and some
    (Orthanc) will not transcode: so each class is offered uncompressed and, in contexts of
    their own, in every compressed syntax, letting the files come as stored. With too many
    classes for 128 contexts, one context each with every syntax; with none known (the PACS
    would not say what is coming), one for each of pynetdicom's usual storage classes.
    """
    if classes and len(classes) * len(ACCEPTED_SYNTAXES) <= 120:
        proposals = []
        for uid in sorted(classes):
            proposals.append((uid, UNCOMPRESSED_ALL))
            proposals += [(uid, [syntax]) for syntax in COMPRESSED]
        return proposals
    known = sorted(classes)
    if not known:  # only its list of UIDs is read: no association goes through pynetdicom
        from pynetdicom.presentation import StoragePresentationContexts

        known = [str(c.abstract_syntax) for c in StoragePresentationContexts]
    return [(uid, ACCEPTED_SYNTAXES) for uid in known]
