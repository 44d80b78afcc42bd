"""Presentation contexts: what we offer and accept, in one place for every service.

Every module that talks through pynetdicom imports this one, so pynetdicom is set up
here, once: it logs request and response identifiers (names, IDs, birth dates) at INFO,
and patient data never goes into our logs at INFO or above.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from pynetdicom import AE, _config
from pynetdicom.presentation import (
    AllStoragePresentationContexts,
    PresentationContext,
    StoragePresentationContexts,
)
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from tui.net.nodes import check_aet

_config.LOG_REQUEST_IDENTIFIERS = False
_config.LOG_RESPONSE_IDENTIFIERS = False
logging.getLogger("pynetdicom").setLevel(logging.WARNING)

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


def context(abstract: str, syntaxes: list[str]) -> PresentationContext:
    """A presentation context proposing ``syntaxes`` for the SOP class ``abstract``."""
    proposed = PresentationContext()
    proposed.abstract_syntax = abstract
    proposed.transfer_syntax = list(syntaxes)
    return proposed


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
    known = sorted(classes) or [str(c.abstract_syntax) for c in StoragePresentationContexts]
    return [(uid, ACCEPTED_SYNTAXES) for uid in known]


def storage_ae(aet: str, allow: set[str] | None = None) -> AE:
    """An AE that accepts every storage SOP class in every syntax we can decode (and
    C-ECHO), from the calling AE titles in ``allow`` only, when given."""
    ae = AE(ae_title=check_aet(aet))
    for storage in AllStoragePresentationContexts:
        ae.add_supported_context(str(storage.abstract_syntax), ACCEPTED_SYNTAXES)
    ae.add_supported_context(Verification, UNCOMPRESSED)
    ae.maximum_pdu_size = 0  # no limit: fewer, larger PDUs are faster
    if allow:
        ae.require_calling_aet = sorted(allow)  # others are rejected: calling AE not recognised
    return ae
