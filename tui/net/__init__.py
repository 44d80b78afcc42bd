"""DICOM networking with pynetdicom: nodes, SCU operations, a receiver and a mini-PACS.

pynetdicom logs request and response identifiers (names, IDs, birth dates) at INFO;
patient data never goes into our logs at INFO or above, so that is turned off here, once,
for every module of this package.
"""

import logging

from pynetdicom import _config

_config.LOG_REQUEST_IDENTIFIERS = False
_config.LOG_RESPONSE_IDENTIFIERS = False
logging.getLogger("pynetdicom").setLevel(logging.WARNING)
