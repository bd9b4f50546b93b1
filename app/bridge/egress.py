"""Send result objects back to the PACS: C-STORE SCU (one association per batch) and/or STOW-RS.

Every object's status is checked individually; the caller gets, per SOP Instance UID, None on
success or a short failure reason, and retries only what failed.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from typing import Protocol

import httpx
import pydicom
from pydicom.uid import ComprehensiveSRStorage, SecondaryCaptureImageStorage, SegmentationStorage
from pynetdicom import AE

from app.bridge.dicomweb import build_multipart_related, failed_instances

logger = logging.getLogger(__name__)

EgressStatus = dict[str, str | None]  # SOP Instance UID -> None (stored) | failure reason
_RESULT_SOP_CLASSES = (ComprehensiveSRStorage, SegmentationStorage, SecondaryCaptureImageStorage)
_SUCCESS_OR_WARNING = {0x0000, 0x0001, 0xB000, 0xB006, 0xB007}


def _sop_uid(ds: pydicom.Dataset) -> str:
    return str(ds.SOPInstanceUID)


class CStoreEgress:
    """C-STORE SCU towards one PACS AE."""

    def __init__(
        self, host: str, port: int, called_ae: str, calling_ae: str, timeout_seconds: float = 30.0
    ) -> None:
        self.host = host
        self.port = port
        self.called_ae = called_ae
        self.calling_ae = calling_ae
        self.timeout_seconds = timeout_seconds

    def send(self, datasets: Sequence[pydicom.Dataset]) -> EgressStatus:
        status: EgressStatus = {_sop_uid(ds): "not_sent" for ds in datasets}
        ae = AE(ae_title=self.calling_ae)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout_seconds
        for sop_class in _RESULT_SOP_CLASSES:
            ae.add_requested_context(sop_class, pydicom.uid.ExplicitVRLittleEndian)
        association = ae.associate(self.host, self.port, ae_title=self.called_ae)
        if not association.is_established:
            return dict.fromkeys(status, "association_failed")
        try:
            for ds in datasets:
                try:
                    response = association.send_c_store(ds)
                except (AttributeError, ValueError, RuntimeError) as exc:  # no context / aborted association
                    status[_sop_uid(ds)] = f"cstore_{type(exc).__name__}"
                    continue
                code = int(response.Status) if response and "Status" in response else None
                status[_sop_uid(ds)] = None if code in _SUCCESS_OR_WARNING else f"cstore_status_{code}"
        finally:
            association.release()
        return status


class StowEgress:
    """STOW-RS towards a DICOMweb base URL (POST {base}/studies/{study})."""

    def __init__(
        self,
        base_url: str,
        *,
        username: str = "",
        password: str = "",
        timeout_seconds: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        auth = httpx.BasicAuth(username, password) if username else None
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"), auth=auth, timeout=timeout_seconds, transport=transport
        )

    def close(self) -> None:
        self._client.close()

    def send(self, datasets: Sequence[pydicom.Dataset]) -> EgressStatus:
        if not datasets:
            return {}
        study_uid = str(datasets[0].StudyInstanceUID)
        payloads = []
        for ds in datasets:
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            payloads.append(buffer.getvalue())
        body, content_type = build_multipart_related(payloads)
        try:
            response = self._client.post(
                f"/studies/{study_uid}",
                content=body,
                headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
            )
        except httpx.TransportError as exc:
            return {_sop_uid(ds): f"stow_{type(exc).__name__}" for ds in datasets}
        if response.status_code not in (200, 202, 409):
            return {_sop_uid(ds): f"stow_http_{response.status_code}" for ds in datasets}
        try:
            failures = failed_instances(response.json())
        except ValueError:
            failures = {}
        if response.status_code == 409 and not failures:
            return {_sop_uid(ds): "stow_http_409" for ds in datasets}
        return {
            _sop_uid(ds): (
                f"stow_failure_{failures[_sop_uid(ds)]:#06x}" if _sop_uid(ds) in failures else None
            )
            for ds in datasets
        }


class Destination(Protocol):
    def send(self, datasets: Sequence[pydicom.Dataset]) -> EgressStatus: ...


class Egress:
    """The configured destinations; an object counts as delivered only when every destination has it."""

    def __init__(self, destinations: Sequence[Destination]) -> None:
        self.destinations = list(destinations)

    def send(self, datasets: Sequence[pydicom.Dataset]) -> EgressStatus:
        combined: EgressStatus = {_sop_uid(ds): None for ds in datasets}
        for destination in self.destinations:
            for uid, problem in destination.send(datasets).items():
                if problem is not None:
                    combined[uid] = problem
        return combined
