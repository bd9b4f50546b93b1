"""Per-instance state journal: one small JSON file per instance, rewritten atomically on each step.

The journal is what makes restarts safe: the dispatcher resumes every instance at the step it had
reached, and an instance in a terminal state is never processed again (exactly-once).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from app.bridge.durable import atomic_write

logger = logging.getLogger(__name__)


class InstanceState(StrEnum):
    RECEIVED = "received"  # spooled, waiting for its study to be stable
    INFERRED = "inferred"  # service answers saved in results/<key>/inference.json
    BUILT = "built"  # SR / SEG / heatmap objects written in results/<key>/
    DONE = "done"  # results acknowledged by the PACS
    SKIPPED = "skipped"  # not a frontal view (recorded, not sent to the model)
    REFUSED = "refused"  # the service refused it for good (e.g. not_chest)
    DEAD_LETTER = "dead_letter"  # gave up after N tries; see dead-letter/<key>/reason.json

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {InstanceState.DONE, InstanceState.SKIPPED, InstanceState.REFUSED, InstanceState.DEAD_LETTER}
)


@dataclass
class InstanceRecord:
    """What the bridge knows about one received instance; identifiers only as hashes."""

    key: str
    study_key: str
    state: InstanceState
    ingress: str
    view_position: str | None
    received_at: float
    updated_at: float
    attempts: int = 0
    next_attempt_at: float = 0.0
    reason: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> InstanceRecord:
        raw = json.loads(data)
        raw["state"] = InstanceState(raw["state"])
        return cls(**raw)


class Journal:
    """Reads and atomically rewrites the per-instance state files."""

    def __init__(self, directory: Path, tmp_dir: Path, clock: Any = time.time) -> None:
        self.directory = directory
        self.tmp_dir = tmp_dir
        self._clock = clock
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def save(self, record: InstanceRecord) -> None:
        atomic_write(self.path(record.key), record.to_json(), self.tmp_dir)

    def load(self, key: str) -> InstanceRecord:
        return InstanceRecord.from_json(self.path(key).read_bytes())

    def load_all(self) -> list[InstanceRecord]:
        records = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                records.append(InstanceRecord.from_json(path.read_bytes()))
            except (ValueError, TypeError, KeyError):
                logger.error("unreadable journal entry skipped", extra={"file": path.name})
        return records

    def transition(self, record: InstanceRecord, state: InstanceState, **changes: Any) -> InstanceRecord:
        """Move a record to `state` (with field changes) and persist it before returning."""
        now = self._clock()
        updated = dataclasses.replace(record, state=state, updated_at=now, **changes)
        event = "retry_scheduled" if state is record.state else "entered"
        step = {"state": state.value, "event": event, "time": now, "reason": changes.get("reason")}
        updated.history = [*record.history, step]
        self.save(updated)
        return updated
