"""PS3.18 STOW-RS wire format: multipart/related bodies and the DICOM JSON store response."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# PS3.18 failure reasons (Table I.2-1 / 10.5-3) used by the bridge.
FAILURE_PROCESSING = 0x0110
FAILURE_SOP_CLASS_NOT_SUPPORTED = 0x0122
FAILURE_OUT_OF_RESOURCES = 0xA700
FAILURE_DATASET_MISMATCH = 0xA900  # e.g. Study Instance UID differs from the one in the URL
FAILURE_CANNOT_UNDERSTAND = 0xC000

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_TYPE = re.compile(r'type="?([^";]+)"?', re.IGNORECASE)


class MultipartError(ValueError):
    """The body is not a well-formed multipart/related message."""


def content_type_params(content_type: str) -> tuple[str, str | None, str | None]:
    """(media type, boundary, type parameter) of a Content-Type header."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    boundary = _BOUNDARY.search(content_type)
    part_type = _TYPE.search(content_type)
    return (
        media_type,
        boundary.group(1) if boundary else None,
        part_type.group(1).strip().lower() if part_type else None,
    )


def parse_multipart_related(body: bytes, boundary: str) -> list[tuple[dict[str, str], bytes]]:
    """Split a multipart body into (headers, payload) parts, headers lower-cased."""
    delimiter = b"--" + boundary.encode()
    if delimiter not in body:
        raise MultipartError("boundary not found in body")
    parts = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break  # close delimiter
        head, separator, payload = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not separator:
            raise MultipartError("part without header/body separator")
        headers: dict[str, str] = {}
        for line in head.decode("latin-1").split("\r\n"):
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        parts.append((headers, payload.removesuffix(b"\r\n")))
    return parts


def build_multipart_related(
    payloads: Iterable[bytes], media_type: str = "application/dicom"
) -> tuple[bytes, str]:
    """Body and Content-Type header for a STOW-RS request carrying Part 10 files."""
    boundary = uuid.uuid4().hex
    chunks: list[bytes] = []
    for payload in payloads:
        chunks += [f"--{boundary}\r\nContent-Type: {media_type}\r\n\r\n".encode(), payload, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f'multipart/related; type="{media_type}"; boundary={boundary}'


@dataclass(frozen=True)
class StoredInstance:
    sop_class_uid: str
    sop_instance_uid: str


@dataclass(frozen=True)
class FailedInstance:
    sop_class_uid: str
    sop_instance_uid: str
    reason: int


def store_response(
    stored: list[StoredInstance], failed: list[FailedInstance], retrieve_url: str | None = None
) -> tuple[int, dict[str, Any]]:
    """HTTP status + DICOM JSON body per PS3.18 10.5.3: 200 all, 202 some, 409 none stored."""
    body: dict[str, Any] = {}
    if retrieve_url:
        body["00081190"] = {"vr": "UR", "Value": [retrieve_url]}
    if failed:
        body["00081198"] = {
            "vr": "SQ",
            "Value": [
                {
                    "00081150": {"vr": "UI", "Value": [item.sop_class_uid]}
                    if item.sop_class_uid
                    else {"vr": "UI"},
                    "00081155": {"vr": "UI", "Value": [item.sop_instance_uid]}
                    if item.sop_instance_uid
                    else {"vr": "UI"},
                    "00081197": {"vr": "US", "Value": [item.reason]},
                }
                for item in failed
            ],
        }
    if stored:
        body["00081199"] = {
            "vr": "SQ",
            "Value": [
                {
                    "00081150": {"vr": "UI", "Value": [item.sop_class_uid]},
                    "00081155": {"vr": "UI", "Value": [item.sop_instance_uid]},
                }
                for item in stored
            ],
        }
    if not failed:
        return 200, body
    return (202 if stored else 409), body


def failed_instances(response_body: dict[str, Any]) -> dict[str, int]:
    """SOP Instance UID -> failure reason, from a STOW-RS response (for egress status checks)."""
    failures: dict[str, int] = {}
    for item in response_body.get("00081198", {}).get("Value", []):
        uid = (item.get("00081155", {}).get("Value") or [""])[0]
        reason = (item.get("00081197", {}).get("Value") or [FAILURE_PROCESSING])[0]
        failures[str(uid)] = int(reason)
    return failures
