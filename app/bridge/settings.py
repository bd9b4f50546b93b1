"""Bridge settings: one pydantic-settings class so every knob is an env var `MEDSLIP_BRIDGE_*`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class BridgeSettings(BaseSettings):
    """Everything a PACS administrator configures; defaults suit a single loopback test setup."""

    model_config = SettingsConfigDict(env_prefix="MEDSLIP_BRIDGE_", extra="ignore")

    # --- ingress -----------------------------------------------------------------------------
    ae_title: str = Field("MEDSLIP", max_length=16, description="AE title of the C-STORE SCP.")
    dicom_host: str = Field("0.0.0.0", description="Interface the C-STORE SCP listens on.")
    dicom_port: int = Field(11112, ge=0, le=65535)
    http_host: str = Field("0.0.0.0", description="Interface of the STOW-RS / health / metrics server.")
    http_port: int = Field(8090, ge=0, le=65535, description="8042 is Orthanc's default; avoided.")
    max_stow_bytes: int = Field(512 * 1024 * 1024, gt=0, description="Largest accepted STOW-RS body.")

    # --- spool / dispatch --------------------------------------------------------------------
    spool_dir: Path = Field(Path("/var/lib/medslip-bridge/spool"))
    stable_seconds: float = Field(10.0, ge=0, description="Quiet time after which a study is complete.")
    poll_seconds: float = Field(1.0, gt=0, description="How often the dispatcher scans the spool.")
    max_attempts: int = Field(
        5, ge=1, description="Tries of a step failing for the instance's own sake (build) before dead-letter."
    )
    retry_window_seconds: float = Field(
        6 * 3600.0,
        ge=0,
        description="How long an outage of the service or the PACS is retried (results wait in the spool) "
        "before the instance is dead-lettered; counted from the step's first failure.",
    )
    retry_base_seconds: float = Field(1.0, ge=0, description="First backoff; doubles on each retry.")
    retry_max_seconds: float = Field(
        300.0, ge=0, description="Backoff cap: a recovered PACS waits at most this long."
    )

    # --- inference service -------------------------------------------------------------------
    service_url: str = Field("http://127.0.0.1:8000", description="Base URL of the inference service.")
    service_timeout_seconds: float = Field(60.0, gt=0)
    http_retries: int = Field(3, ge=0, description="Immediate retries of one HTTP call (5xx, 429, network).")
    model_name: str = Field(
        "medslip-cxr", description="Served model; its version is read from /v2/models/{name}."
    )
    model_version: str = Field(
        "", description="Pin the version used in idempotency keys; empty = ask the service."
    )
    service_api_key: SecretStr = Field(
        SecretStr(""), description="Sent as X-API-Key when the service needs one."
    )
    findings: list[str] = Field(
        default_factory=list, description="Findings to request; empty = service default."
    )
    max_heatmaps: int = Field(3, ge=0, description="Heatmap overlays per image (highest scores first).")
    ground_all_findings: bool = Field(
        True, description="Ground every finding (gives each SR finding its site); else only the heatmap ones."
    )

    # --- egress ------------------------------------------------------------------------------
    egress: Literal["cstore", "stow", "both", "none"] = "cstore"
    pacs_host: str = "127.0.0.1"
    pacs_port: int = Field(4242, ge=1, le=65535)
    pacs_ae_title: str = Field("ORTHANC", max_length=16)
    dicomweb_url: str = Field(
        "", description="DICOMweb base URL for STOW-RS egress, e.g. http://pacs/dicom-web."
    )
    dicomweb_username: str = ""
    dicomweb_password: SecretStr = SecretStr("")

    # --- results / logging -------------------------------------------------------------------
    manufacturer: str = "MeDSLIP research"
    log_level: str = "INFO"
    log_hash_key: str = Field(
        "medslip-bridge",
        description="HMAC key for hashed identifiers in logs; set per site to prevent lookup.",
    )
