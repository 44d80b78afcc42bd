"""Presentation contexts: what we offer and accept, in one place for every service.

Every module that talks through pynetdicom imports this one, so pynetdicom is set up
here, once: it logs request and response identifiers (names, IDs, birth dates) at INFO,
and patient data never goes into our logs at INFO or above.
"""

from __future__ import annotations

import logging

from pynetdicom import AE, _config
from pynetdicom.presentation import AllStoragePresentationContexts, PresentationContext
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from tui.net.nodes import check_aet
from tui.net.syntaxes import (  # here too for the modules that use pynetdicom
    ACCEPTED_SYNTAXES,
    COMPRESSED,
    UNCOMPRESSED,
    UNCOMPRESSED_ALL,
    storage_proposals,
)

__all__ = [
    "ACCEPTED_SYNTAXES", "COMPRESSED", "UNCOMPRESSED", "UNCOMPRESSED_ALL", "context",
    "storage_ae", "storage_proposals",
]  # fmt: skip

_config.LOG_REQUEST_IDENTIFIERS = False
_config.LOG_RESPONSE_IDENTIFIERS = False
logging.getLogger("pynetdicom").setLevel(logging.WARNING)


def context(abstract: str, syntaxes: list[str]) -> PresentationContext:
    """A presentation context proposing ``syntaxes`` for the SOP class ``abstract``."""
    proposed = PresentationContext()
    proposed.abstract_syntax = abstract
    proposed.transfer_syntax = list(syntaxes)
    return proposed


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
