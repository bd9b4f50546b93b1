"""Per-instance state journal: one small JSON file per instance, rewritten atomically on each step.

The journal is what makes restarts safe: the dispatcher resumes every instance at the step it had
reached, and an instance in a terminal state is never processed again (exactly-once).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from app.bridge.durable import atomic_write, fsync_directory

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
    first_failure_at: float | None = None  # start of the current run of failed tries (retry window)
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
    """Reads and atomically rewrites the per-instance state files.

    Entries of finished instances move to `finished/`, so that the dispatcher's scan and the
    spool-depth gauge only read the pending ones, while duplicates are still recognised.
    """

    def __init__(self, directory: Path, tmp_dir: Path, clock: Any = time.time) -> None:
        self.directory = directory
        self.finished_dir = directory / "finished"
        self.tmp_dir = tmp_dir
        self._clock = clock
        self.finished_dir.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        """Where the entry lives now: pending, else finished."""
        pending = self.directory / f"{key}.json"
        return pending if pending.exists() else self.finished_dir / f"{key}.json"

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def save(self, record: InstanceRecord) -> None:
        """Persist the record; a final state is written in place first, then renamed to finished/.

        Written-then-renamed means a crash in between leaves a *final* entry among the pending ones
        (skipped by the dispatcher, archived by `archive_finished`), never a stale non-final one.
        """
        pending = self.directory / f"{record.key}.json"
        atomic_write(pending, record.to_json(), self.tmp_dir)
        if record.state.terminal:
            os.replace(pending, self.finished_dir / pending.name)
            fsync_directory(self.finished_dir)

    def now(self) -> float:
        """The journal's clock (injected: tests drive it)."""
        return float(self._clock())

    def forget_finished(self, key: str) -> None:
        """Drop the final entry of an instance that is pending again (requeued or replayed)."""
        (self.finished_dir / f"{key}.json").unlink(missing_ok=True)
        fsync_directory(self.finished_dir)

    def load(self, key: str) -> InstanceRecord:
        return InstanceRecord.from_json(self.path(key).read_bytes())

    def load_pending(self) -> list[InstanceRecord]:
        """Entries not yet final: what the dispatcher works on and the spool depth counts."""
        return [r for r in self._load_dir(self.directory) if not r.state.terminal]

    def load_all(self) -> list[InstanceRecord]:
        """Every entry, pending and finished (for audits and tests)."""
        return sorted(
            self._load_dir(self.directory) + self._load_dir(self.finished_dir), key=lambda r: r.received_at
        )

    def archive_finished(self) -> int:
        """Move final entries left among the pending ones by a crash; returns how many."""
        moved = 0
        for record in self._load_dir(self.directory):
            if record.state.terminal:
                os.replace(self.directory / f"{record.key}.json", self.finished_dir / f"{record.key}.json")
                moved += 1
        return moved

    @staticmethod
    def _load_dir(directory: Path) -> list[InstanceRecord]:
        records = []
        for path in sorted(directory.glob("*.json")):
            try:
                records.append(InstanceRecord.from_json(path.read_bytes()))
            except (ValueError, TypeError, KeyError):
                logger.error("unreadable journal entry skipped", extra={"file": path.name})
        return records

    def transition(self, record: InstanceRecord, state: InstanceState, **changes: Any) -> InstanceRecord:
        """Move a record to `state` (with field changes) and persist it before returning.

        Entering a new non-final step starts its tries afresh: an outage at egress must get its own
        retry window, not what is left of one the inference step used up.
        """
        now = self._clock()
        if state is not record.state and not state.terminal:
            changes = {"attempts": 0, "first_failure_at": None, "next_attempt_at": 0.0, **changes}
        updated = dataclasses.replace(record, state=state, updated_at=now, **changes)
        event = "retry_scheduled" if state is record.state else "entered"
        step = {"state": state.value, "event": event, "time": now, "reason": changes.get("reason")}
        updated.history = [*record.history, step]
        self.save(updated)
        return updated
