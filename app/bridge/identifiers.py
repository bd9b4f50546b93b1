"""Hashed identifiers and deterministic UIDs.

Logs and file names may only carry hashes of patient/study/instance identifiers, never the values.
Result UIDs are *derived* from the source instance and model version so that re-sending after a crash
overwrites the same objects in the PACS instead of duplicating them (exactly-once as seen by the PACS).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid

_UID_NAMESPACE = uuid.UUID("5b0e4d0c-6f3c-4b8e-9d7e-3f1f6c1d2a90")


def hash_identifier(value: str, key: str = "medslip-bridge", length: int = 16) -> str:
    """Keyed hash of an identifier: stable for correlation, useless for look-up without the key."""
    digest = hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()
    return digest[:length]


def derived_uid(*parts: str) -> str:
    """A valid DICOM UID (2.25 + UUIDv5 as integer) that is a pure function of `parts`."""
    name = "\x1f".join(parts)
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, name).int}"


def idempotency_key(sop_instance_uid: str, model_version: str, route: str) -> str:
    """Idempotency-Key for one service call: SOPInstanceUID + model version (+ route), hashed.

    The route is part of the key because /classify, /ground and /segment answer differently for the
    same image; hashing keeps the UID out of the service's logs.
    """
    raw = f"{sop_instance_uid}|{model_version}|{route}"
    return hashlib.sha256(raw.encode()).hexdigest()
