"""Composition root: builds spool, service client, egress, dispatcher, SCP and HTTP app from settings.

(Named wiring, not runtime: app/runtime.py is the service's ONNX Runtime session.)
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from fastapi import FastAPI

from app.bridge.dispatcher import Dispatcher, DispatchPolicy
from app.bridge.egress import CStoreEgress, Destination, Egress, StowEgress
from app.bridge.http_app import create_app
from app.bridge.metrics import BridgeMetrics
from app.bridge.retry import Backoff
from app.bridge.scp import StoreSCP
from app.bridge.service_client import InferenceClient
from app.bridge.settings import BridgeSettings
from app.bridge.spool import Spool

logger = logging.getLogger(__name__)


def build_egress(settings: BridgeSettings) -> Egress:
    destinations: list[Destination] = []
    if settings.egress in ("cstore", "both"):
        destinations.append(
            CStoreEgress(settings.pacs_host, settings.pacs_port, settings.pacs_ae_title, settings.ae_title)
        )
    if settings.egress in ("stow", "both"):
        if not settings.dicomweb_url:
            raise ValueError("egress 'stow' needs MEDSLIP_BRIDGE_DICOMWEB_URL")
        destinations.append(
            StowEgress(
                settings.dicomweb_url,
                username=settings.dicomweb_username,
                password=settings.dicomweb_password.get_secret_value(),
            )
        )
    return Egress(destinations)


class Bridge:
    """Owns the running parts; `start` and `stop` are the only lifecycle entry points."""

    def __init__(self, settings: BridgeSettings) -> None:
        self.settings = settings
        self.spool = Spool(settings.spool_dir, hash_key=settings.log_hash_key)
        self.metrics = BridgeMetrics(
            spool_depth=self.spool.depth,
            backlog=self.spool.backlog,
            dead_letters=self.spool.dead_letter_counts,
        )
        backoff = Backoff(settings.retry_base_seconds, settings.retry_max_seconds)
        self.client = InferenceClient(
            settings.service_url,
            timeout_seconds=settings.service_timeout_seconds,
            retries=settings.http_retries,
            backoff=backoff,
            model_name=settings.model_name,
            model_version=settings.model_version,
            api_key=settings.service_api_key.get_secret_value(),
        )
        self.dispatcher = Dispatcher(
            self.spool,
            self.client,
            build_egress(settings),
            self.metrics,
            DispatchPolicy(
                stable_seconds=settings.stable_seconds,
                max_attempts=settings.max_attempts,
                retry_window_seconds=settings.retry_window_seconds,
                backoff=backoff,
                max_heatmaps=settings.max_heatmaps,
                ground_all_findings=settings.ground_all_findings,
                findings=tuple(settings.findings),
                manufacturer=settings.manufacturer,
            ),
        )
        self.scp = StoreSCP(
            self.spool, self.metrics, settings.ae_title, settings.dicom_host, settings.dicom_port
        )
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None

    def health(self) -> dict[str, Any]:
        worker_alive = self._worker is not None and self._worker.is_alive()
        return {
            "status": "ok" if worker_alive else "degraded",
            "dispatcher": "running" if worker_alive else "stopped",
            "dicom_port": self.scp.port,
            "spool_depth": self.spool.depth(),
            "backlog": self.spool.backlog().to_json(),
            "dead_letter": self.spool.dead_letter_counts(),
        }

    def http_app(self) -> FastAPI:
        return create_app(self.spool, self.metrics, self.settings.max_stow_bytes, self.health)

    def start(self) -> None:
        """Resume from the spool first, then accept new work."""
        self.spool.recover()
        self._worker = threading.Thread(
            target=self.dispatcher.run,
            args=(self._stop, self.settings.poll_seconds),
            name="dispatcher",
            daemon=True,
        )
        self._worker.start()
        self.scp.start()

    def stop(self) -> None:
        self.scp.stop()
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout=30)
        self.client.close()
