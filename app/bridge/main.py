"""`medslip-bridge`: run the PACS bridge (C-STORE SCP + STOW-RS + dispatcher + egress).

Every setting is an env var MEDSLIP_BRIDGE_<NAME> (see BridgeSettings / docs/bridge.md); the few
flags below override them for convenience. `medslip-bridge dead-letter list|replay|purge` runs the
dead-letter operations instead (dead_letter_cli.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import uvicorn

from app.bridge import dead_letter_cli
from app.bridge.logs import configure_logging
from app.bridge.settings import BridgeSettings
from app.bridge.wiring import Bridge

logger = logging.getLogger(__name__)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="medslip-bridge", description=__doc__.splitlines()[0])
    parser.add_argument("--spool-dir", type=Path, help="spool directory (MEDSLIP_BRIDGE_SPOOL_DIR)")
    parser.add_argument("--http-host", help="STOW-RS/health/metrics interface")
    parser.add_argument("--http-port", type=int, help="STOW-RS/health/metrics port")
    parser.add_argument("--dicom-port", type=int, help="C-STORE SCP port")
    parser.add_argument("--ae-title", help="AE title of the C-STORE SCP")
    parser.add_argument("--service-url", help="inference service base URL")
    parser.add_argument("--pacs", help="PACS for C-STORE egress as AE@host:port")
    parser.add_argument("--dicomweb-url", help="DICOMweb base URL for STOW-RS egress")
    parser.add_argument("--egress", choices=["cstore", "stow", "both", "none"])
    parser.add_argument("--log-level")
    return parser.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> BridgeSettings:
    overrides: dict[str, object] = {
        name: value
        for name, value in vars(args).items()
        if value is not None and name in BridgeSettings.model_fields
    }
    if args.pacs:
        ae_title, _, address = args.pacs.partition("@")
        host, _, port = address.rpartition(":")
        overrides.update(pacs_ae_title=ae_title, pacs_host=host, pacs_port=int(port))
    return BridgeSettings(**overrides)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["dead-letter"]:
        return dead_letter_cli.run(arguments[1:])
    args = parse_args(arguments)
    settings = settings_from_args(args)
    configure_logging(settings.log_level)
    bridge = Bridge(settings)
    bridge.start()
    logger.info(
        "bridge started",
        extra={"http_port": settings.http_port, "dicom_port": bridge.scp.port, "egress": settings.egress},
    )
    try:
        uvicorn.run(
            bridge.http_app(),
            host=settings.http_host,
            port=settings.http_port,
            access_log=False,  # access lines carry Study Instance UIDs in the path
            log_config=None,  # keep our JSON logging
        )
    finally:
        bridge.stop()
        logger.info("bridge stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
