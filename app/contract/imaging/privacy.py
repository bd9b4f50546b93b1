"""Keep pydicom from quoting header values (names, UIDs) in its own warnings and log records.

pydicom validates values as it reads them and, by default, reports an invalid value with the value
itself in the message (``Invalid value for VR UI: '1.2.826...'``), through both ``warnings`` and the
``pydicom`` logger. Our refusals never quote header values; this closes the other channel.
"""

from __future__ import annotations

import pydicom.config

__all__ = ["quiet_pydicom_value_messages"]


def quiet_pydicom_value_messages() -> None:
    """Turn off pydicom's read-time value validation messages for this process.

    pydicom's settings are process-wide, so this is an explicit start-up call for the service, the
    bridge and training CLIs, never an import-time side effect. Decoding does not depend on it.
    """
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
