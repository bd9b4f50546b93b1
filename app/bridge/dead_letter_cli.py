"""`medslip-bridge dead-letter list|replay|purge`: the operator's commands for the dead-letter folder.

Filters take the UIDs an operator has at hand (`--study`, `--instance`, hashed here exactly as the
spool hashes them, with MEDSLIP_BRIDGE_LOG_HASH_KEY) or the 16-hex-digit keys found in the logs
(`--key`). replay and purge refuse to touch every entry unless `--all` says so. Output is one JSON
object per entry on stdout, with hashed keys only; replay works while the bridge runs (it picks the
entries up on its next pass).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO

from app.bridge.dead_letter import list_entries, purge, replay, selection_for
from app.bridge.logs import configure_logging
from app.bridge.settings import BridgeSettings
from app.bridge.spool import Spool


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="medslip-bridge dead-letter", description="List, replay or purge dead-lettered instances."
    )
    parser.add_argument("action", choices=["list", "replay", "purge"])
    parser.add_argument("--spool-dir", type=Path, help="spool directory (MEDSLIP_BRIDGE_SPOOL_DIR)")
    parser.add_argument("--study", action="append", default=[], help="Study Instance UID (repeatable)")
    parser.add_argument("--instance", action="append", default=[], help="SOP Instance UID (repeatable)")
    parser.add_argument("--key", action="append", default=[], help="hashed instance key or prefix, from logs")
    parser.add_argument("--all", action="store_true", help="replay/purge every entry (no filter)")
    return parser.parse_args(argv)


def run(argv: list[str], out: TextIO | None = None) -> int:
    """Exit status 0 on success, 2 when replay/purge is asked without a filter or --all."""
    out = out or sys.stdout
    args = parse_args(argv)
    overrides = {"spool_dir": args.spool_dir} if args.spool_dir else {}
    settings = BridgeSettings(**overrides)
    configure_logging(settings.log_level)
    spool = Spool(settings.spool_dir, hash_key=settings.log_hash_key)
    selection = selection_for(spool, args.study, args.instance, args.key)
    if args.action != "list" and selection.everything and not args.all:
        sys.stderr.write(f"dead-letter {args.action}: give --study, --instance, --key or --all\n")
        return 2
    if args.action == "list":
        for entry in list_entries(spool, selection):
            out.write(json.dumps(entry.to_json()) + "\n")
        return 0
    keys = replay(spool, selection) if args.action == "replay" else purge(spool, selection)
    out.write(json.dumps({"action": args.action, "count": len(keys), "keys": keys}) + "\n")
    return 0
