"""C-STORE SCP: accepts chest radiographs over DIMSE and spools them before answering success."""

from __future__ import annotations

import logging
from typing import Any

from pydicom.uid import (
    JPEG2000,
    ComputedRadiographyImageStorage,
    DeflatedExplicitVRLittleEndian,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
    SecondaryCaptureImageStorage,
)
from pynetdicom import AE, evt
from pynetdicom.transport import ThreadedAssociationServer

from app.bridge.metrics import BridgeMetrics
from app.bridge.spool import InstanceHeader, Spool

logger = logging.getLogger(__name__)

ACCEPTED_SOP_CLASSES = (
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    SecondaryCaptureImageStorage,
)
ACCEPTED_TRANSFER_SYNTAXES = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
]

VERIFICATION_SOP_CLASS = "1.2.840.10008.1.1"

STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_CANNOT_UNDERSTAND = 0xC000


class StoreSCP:
    """Owns the pynetdicom server; each C-STORE is durable in the spool before 0x0000 goes back."""

    def __init__(self, spool: Spool, metrics: BridgeMetrics, ae_title: str, host: str, port: int) -> None:
        self.spool = spool
        self.metrics = metrics
        self.ae_title = ae_title
        self.host = host
        self.port = port
        self._server: ThreadedAssociationServer | None = None

    def start(self) -> int:
        """Start listening in background threads; returns the bound port (useful with port 0)."""
        ae = AE(ae_title=self.ae_title)
        ae.require_called_aet = True  # a PACS addressing another AE title is misconfigured: reject
        for sop_class in ACCEPTED_SOP_CLASSES:
            ae.add_supported_context(sop_class, ACCEPTED_TRANSFER_SYNTAXES)
        ae.add_supported_context(VERIFICATION_SOP_CLASS)  # C-ECHO, for the PACS admin's connectivity test
        server = ae.start_server(
            (self.host, self.port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._on_store)]
        )
        if server is None:  # only happens with block=True
            raise RuntimeError("C-STORE SCP did not start")
        self._server = server
        self.port = int(server.server_address[1])
        logger.info("C-STORE SCP listening", extra={"ae_title": self.ae_title, "port": self.port})
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def _on_store(self, event: Any) -> int:
        """EVT_C_STORE handler: parse the header, spool atomically, then (only then) report success."""
        try:
            data = bytes(event.encoded_dataset())
            header = InstanceHeader.from_dataset(event.dataset)
        except Exception as exc:  # malformed data set: refuse, never crash the association
            logger.warning("C-STORE data set unreadable", extra={"error": type(exc).__name__})
            self.metrics.received.labels("cstore", "rejected").inc()
            return STATUS_CANNOT_UNDERSTAND
        try:
            outcome, _ = self.spool.store(data, header, ingress="cstore")
        except OSError as exc:
            logger.error("spool write failed", extra={"error": type(exc).__name__})
            self.metrics.received.labels("cstore", "rejected").inc()
            return STATUS_OUT_OF_RESOURCES
        self.metrics.received.labels("cstore", outcome.value).inc()
        return STATUS_SUCCESS
