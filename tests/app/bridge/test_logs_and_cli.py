"""JSON logs keep identifiers out; CLI flags override env settings."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from app.bridge.identifiers import derived_uid, hash_identifier, idempotency_key
from app.bridge.logs import JsonFormatter
from app.bridge.main import parse_args, settings_from_args


def test_json_formatter_emits_extra_fields_and_only_the_exception_type() -> None:
    try:
        raise ValueError("Patient Doe^Jane 1.2.840.99")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("step",), sys.exc_info())
    record.__dict__["instance"] = "abc123"  # what `extra=` does
    line = JsonFormatter().format(record)
    payload = json.loads(line)
    assert payload["message"] == "failed step" and payload["instance"] == "abc123"
    assert payload["exc_type"] == "ValueError"
    assert "Doe" not in line and "1.2.840.99" not in line


def test_hashes_are_keyed_stable_and_uids_valid() -> None:
    assert hash_identifier("1.2.3") == hash_identifier("1.2.3")
    assert hash_identifier("1.2.3", "site-a") != hash_identifier("1.2.3", "site-b")
    uid = derived_uid("1.2.3", "v1", "sr")
    assert uid == derived_uid("1.2.3", "v1", "sr") != derived_uid("1.2.3", "v2", "sr")
    assert uid.startswith("2.25.") and len(uid) <= 64 and all(part.isdigit() for part in uid.split("."))
    assert idempotency_key("1.2.3", "v1", "classify") != idempotency_key("1.2.3", "v2", "classify")


def test_cli_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDSLIP_BRIDGE_HTTP_PORT", "9000")
    monkeypatch.setenv("MEDSLIP_BRIDGE_STABLE_SECONDS", "2.5")
    settings = settings_from_args(parse_args(["--http-port", "9100", "--pacs", "ORTHANC@10.0.0.5:4242"]))
    assert settings.http_port == 9100
    assert settings.stable_seconds == 2.5
    assert (settings.pacs_ae_title, settings.pacs_host, settings.pacs_port) == ("ORTHANC", "10.0.0.5", 4242)


def test_bridge_never_imports_torch() -> None:
    """The bridge runs in the slim serving image: importing all of it must not pull in torch."""
    import subprocess

    code = "import sys, app.bridge.main, app.bridge.wiring; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=60).returncode == 0
