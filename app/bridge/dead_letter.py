"""Operations on the dead-letter folder: list what was given up on, replay it, or purge it.

A dead-lettered instance keeps its DICOM file, whatever the pipeline produced (results/) and
reason.json. Replay puts it back into the pipeline at the last step whose output survived (service
answers kept: no second inference), as a pending journal entry the running bridge picks up on its
next pass. Result UIDs are derived from the source, so a replay that re-sends objects the PACS
already holds overwrites them instead of duplicating. Entries are named by their HMAC key only.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.bridge.durable import fsync_directory
from app.bridge.journal import InstanceRecord, InstanceState
from app.bridge.spool import Spool

logger = logging.getLogger(__name__)

INFERENCE_FILE = "inference.json"  # the dispatcher's name for the saved service answers


@dataclass(frozen=True)
class DeadLetterEntry:
    key: str
    study_key: str
    reason: str
    category: str
    attempts: int
    time: float | None
    has_instance: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "study_key": self.study_key,
            "reason": self.reason,
            "category": self.category,
            "attempts": self.attempts,
            "time": self.time,
            "has_instance": self.has_instance,
        }


@dataclass(frozen=True)
class Selection:
    """Which entries a command touches: by hashed key prefix, study key or instance key; empty = all."""

    instance_keys: frozenset[str] = frozenset()
    study_keys: frozenset[str] = frozenset()
    key_prefixes: tuple[str, ...] = ()

    @property
    def everything(self) -> bool:
        return not (self.instance_keys or self.study_keys or self.key_prefixes)

    def matches(self, entry: DeadLetterEntry) -> bool:
        if self.everything:
            return True
        return (
            entry.key in self.instance_keys
            or entry.study_key in self.study_keys
            or any(entry.key.startswith(prefix) for prefix in self.key_prefixes)
        )


def selection_for(
    spool: Spool, studies: list[str], instances: list[str], key_prefixes: list[str]
) -> Selection:
    """Hash the UIDs an operator typed the way the spool does; UIDs are never stored or printed."""
    return Selection(
        instance_keys=frozenset(spool.instance_key(uid) for uid in instances),
        study_keys=frozenset(spool.study_key(uid) for uid in studies),
        key_prefixes=tuple(key_prefixes),
    )


def list_entries(spool: Spool, selection: Selection = Selection()) -> list[DeadLetterEntry]:
    entries = []
    for folder in sorted(path for path in spool.dead_letter_dir.iterdir() if path.is_dir()):
        try:
            reason = json.loads((folder / "reason.json").read_text())
        except (OSError, ValueError):
            reason = {}
        entry = DeadLetterEntry(
            key=folder.name,
            study_key=str(reason.get("study_key", "")),
            reason=str(reason.get("reason", "unknown")),
            category=str(reason.get("category") or reason.get("reason", "unknown")),
            attempts=int(reason.get("attempts", 0)),
            time=reason.get("time"),
            has_instance=(folder / "instance.dcm").exists(),
        )
        if selection.matches(entry):
            entries.append(entry)
    return entries


def replay(spool: Spool, selection: Selection) -> list[str]:
    """Put the selected entries back into the pipeline; returns the keys replayed.

    Order for crash safety: files back first, then the pending journal entry (the commit point),
    then the final entry and the dead-letter folder are dropped.
    """
    replayed = []
    for entry in list_entries(spool, selection):
        folder = spool.dead_letter_dir / entry.key
        if not entry.has_instance and not spool.instance_path(entry.key).exists():
            logger.error("dead-letter entry without instance file", extra={"instance": entry.key[:16]})
            continue
        if entry.has_instance:
            os.replace(folder / "instance.dcm", spool.instance_path(entry.key))
        state = _restore_results(spool, folder, entry.key)
        fsync_directory(spool.instances_dir)
        record = _replayed_record(spool, entry, state)
        spool.journal.save(record)
        spool.journal.forget_finished(entry.key)
        shutil.rmtree(folder, ignore_errors=True)
        logger.warning("dead-letter entry replayed", extra={"instance": entry.key[:16], "state": state.value})
        replayed.append(entry.key)
    return replayed


def purge(spool: Spool, selection: Selection) -> list[str]:
    """Delete the selected entries' files; their journal records stay (a re-send is processed again)."""
    purged = []
    for entry in list_entries(spool, selection):
        shutil.rmtree(spool.dead_letter_dir / entry.key, ignore_errors=True)
        logger.warning("dead-letter entry purged", extra={"instance": entry.key[:16]})
        purged.append(entry.key)
    return purged


def _restore_results(spool: Spool, folder: Path, key: str) -> InstanceState:
    """Bring the saved service answers back (built objects are rebuilt: cheap and deterministic)."""
    saved = folder / "results" / INFERENCE_FILE
    if not saved.exists():
        return InstanceState.RECEIVED
    spool.write_result(key, INFERENCE_FILE, saved.read_bytes())
    return InstanceState.INFERRED


def _replayed_record(spool: Spool, entry: DeadLetterEntry, state: InstanceState) -> InstanceRecord:
    now = spool.journal.now()
    step = {"state": state.value, "event": "replayed", "time": now, "reason": entry.reason}
    if spool.journal.exists(entry.key):
        earlier = spool.journal.load(entry.key)
        return InstanceRecord(
            key=entry.key,
            study_key=earlier.study_key,
            state=state,
            ingress=earlier.ingress,
            view_position=earlier.view_position,
            received_at=earlier.received_at,
            updated_at=now,
            history=[*earlier.history, step],
        )
    return InstanceRecord(  # e.g. unreadable after a crash: never journaled
        key=entry.key,
        study_key=entry.study_key,
        state=state,
        ingress="replayed",
        view_position=None,
        received_at=now,
        updated_at=now,
        history=[step],
    )
