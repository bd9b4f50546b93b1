"""Durable spool: every received instance is on disk (fsync'ed) before the sender gets its ack.

Layout under the spool root (file names are hashed instance keys, never UIDs):

    tmp/                      partially written files; a crash leaves only these behind
    instances/<key>.dcm       received DICOM Part 10 files, awaiting or under processing
    journal/<key>.json        per-instance state of pending instances (see journal.py)
    journal/finished/         the same for instances in a final state (audit, duplicate detection)
    results/<key>/            service answers (inference.json) and built result objects (*.dcm)
    dead-letter/<key>/        instances given up on: the DICOM file, results/ and reason.json
                              (listed, replayed and purged by dead_letter.py)
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import pydicom

from app.bridge.durable import atomic_write
from app.bridge.identifiers import hash_identifier
from app.bridge.journal import InstanceRecord, InstanceState, Journal

logger = logging.getLogger(__name__)


class StoreOutcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"  # already known: acknowledged again, never processed twice
    REQUEUED = "requeued"  # known but dead-lettered: the re-sent copy gets a new chance


@dataclass(frozen=True)
class Backlog:
    """What waits in the spool: the figure an operator watches during a PACS or service outage."""

    pending: int  # instances not yet in a final state
    by_state: dict[str, int]  # received / inferred / built
    retrying: int  # of which failed at least once and wait for their next try
    oldest_seconds: float  # age of the oldest pending instance (0 when none)

    def to_json(self) -> dict[str, Any]:
        return {
            "pending": self.pending,
            "by_state": self.by_state,
            "retrying": self.retrying,
            "oldest_seconds": round(self.oldest_seconds, 1),
        }


@dataclass(frozen=True)
class InstanceHeader:
    """The few header fields the bridge routes on; read once at ingress."""

    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    view_position: str | None

    @classmethod
    def from_dataset(cls, ds: pydicom.Dataset) -> InstanceHeader:
        view = str(ds.get("ViewPosition", "") or "").strip().upper() or None
        return cls(
            sop_class_uid=str(ds.SOPClassUID),
            sop_instance_uid=str(ds.SOPInstanceUID),
            study_instance_uid=str(ds.StudyInstanceUID),
            view_position=view,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> InstanceHeader:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=False)
        return cls.from_dataset(ds)


class Spool:
    """Owns the spool directory; the only code that writes or moves files in it."""

    def __init__(self, root: Path, hash_key: str = "medslip-bridge", clock: Any = time.time) -> None:
        self.root = root
        self.hash_key = hash_key
        self._clock = clock
        self.tmp_dir = root / "tmp"
        self.instances_dir = root / "instances"
        self.results_root = root / "results"
        self.dead_letter_dir = root / "dead-letter"
        for folder in (self.tmp_dir, self.instances_dir, self.results_root, self.dead_letter_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(root / "journal", self.tmp_dir, clock=clock)
        self._store_lock = threading.Lock()  # two associations may carry the same instance at once

    # ---------------------------------------------------------------- keys and paths
    def instance_key(self, sop_instance_uid: str) -> str:
        return hash_identifier(sop_instance_uid, self.hash_key, length=32)

    def study_key(self, study_instance_uid: str) -> str:
        return hash_identifier(study_instance_uid, self.hash_key, length=32)

    def instance_path(self, key: str) -> Path:
        return self.instances_dir / f"{key}.dcm"

    def results_dir(self, key: str) -> Path:
        return self.results_root / key

    # ---------------------------------------------------------------- ingress
    def store(self, data: bytes, header: InstanceHeader, ingress: str) -> tuple[StoreOutcome, str]:
        """Persist one Part 10 file and its journal entry; return only when both are durable."""
        key = self.instance_key(header.sop_instance_uid)
        fields = {
            "ingress": ingress,
            "instance": key[:16],
            "study": self.study_key(header.study_instance_uid)[:16],
        }
        with self._store_lock:
            earlier = self.journal.load(key) if self.journal.exists(key) else None
            if earlier is not None and earlier.state is not InstanceState.DEAD_LETTER:
                logger.info("duplicate instance acknowledged, not requeued", extra=fields)
                return StoreOutcome.DUPLICATE, key
            atomic_write(self.instance_path(key), data, self.tmp_dir)
            now = self._clock()
            record = InstanceRecord(
                key=key,
                study_key=self.study_key(header.study_instance_uid),
                state=InstanceState.RECEIVED,
                ingress=ingress,
                view_position=header.view_position,
                received_at=now,
                updated_at=now,
            )
            if earlier is not None:  # the PACS re-sent a dead-lettered instance: process it again
                step = {"state": "received", "event": "requeued", "time": now, "reason": "resent"}
                record.history = [*earlier.history, step]
            self.journal.save(record)
            if earlier is not None:
                self.journal.forget_finished(key)
                shutil.rmtree(self.dead_letter_dir / key, ignore_errors=True)
        if earlier is not None:
            logger.warning("dead-lettered instance re-sent, requeued", extra=fields)
            return StoreOutcome.REQUEUED, key
        logger.info("instance received", extra=fields)
        return StoreOutcome.STORED, key

    def recover(self) -> int:
        """After a crash: journal instance files that were written but not yet journaled.

        Such a file was never acknowledged, but the sender may not re-send; processing it once is
        the safe choice. Leftover tmp files are partial writes and are removed.
        """
        for leftover in self.tmp_dir.glob("*.part"):
            leftover.unlink(missing_ok=True)
        self.journal.archive_finished()
        adopted = 0
        for path in sorted(self.instances_dir.glob("*.dcm")):
            key = path.stem
            if self.journal.exists(key):
                continue
            try:
                header = InstanceHeader.from_bytes(path.read_bytes())
            except Exception:  # unreadable: keep it for a human, out of the pipeline
                self._move_to_dead_letter(key, {"reason": "unreadable_after_crash"})
                continue
            now = self._clock()
            self.journal.save(
                InstanceRecord(
                    key=key,
                    study_key=self.study_key(header.study_instance_uid),
                    state=InstanceState.RECEIVED,
                    ingress="recovered",
                    view_position=header.view_position,
                    received_at=now,
                    updated_at=now,
                )
            )
            adopted += 1
        if adopted:
            logger.warning("adopted unjournaled spool files after restart", extra={"count": adopted})
        return adopted

    # ---------------------------------------------------------------- results and dead letter
    def write_result(self, key: str, name: str, data: bytes) -> Path:
        path = self.results_dir(key) / name
        atomic_write(path, data, self.tmp_dir)
        return path

    def read_json_result(self, key: str, name: str) -> dict[str, Any] | None:
        path = self.results_dir(key) / name
        if not path.exists():
            return None
        loaded: dict[str, Any] = json.loads(path.read_text())
        return loaded

    def dead_letter(self, record: InstanceRecord, reason: str, stage: str) -> InstanceRecord:
        """Give up on an instance: keep its file and the reason where an operator looks for them.

        `category` is the bounded label of the dead-letter metric (stage, and for egress the problem).
        """
        category = reason.replace(" ", "") if stage == "egress" else stage
        self._move_to_dead_letter(
            record.key,
            {
                "reason": reason,
                "category": category,
                "attempts": record.attempts,
                "first_failure_at": record.first_failure_at,
                "study_key": record.study_key,
                "time": self._clock(),
            },
        )
        return self.journal.transition(record, InstanceState.DEAD_LETTER, reason=reason)

    def _move_to_dead_letter(self, key: str, reason: dict[str, Any]) -> None:
        target = self.dead_letter_dir / key
        target.mkdir(parents=True, exist_ok=True)
        source = self.instance_path(key)
        if source.exists():
            os.replace(source, target / "instance.dcm")
        results = self.results_dir(key)
        if results.exists():
            shutil.move(str(results), str(target / "results"))
        atomic_write(target / "reason.json", json.dumps(reason, indent=2).encode(), self.tmp_dir)

    def release(self, key: str) -> None:
        """Drop the spooled files of a finished instance; its journal entry stays as the record."""
        self.instance_path(key).unlink(missing_ok=True)
        shutil.rmtree(self.results_dir(key), ignore_errors=True)

    def depth(self) -> int:
        """Instances waiting for or under processing (the spool-depth gauge)."""
        return len(self.journal.load_pending())

    def backlog(self) -> Backlog:
        pending = self.journal.load_pending()
        by_state: dict[str, int] = {}
        for record in pending:
            by_state[record.state.value] = by_state.get(record.state.value, 0) + 1
        oldest = min((record.received_at for record in pending), default=None)
        return Backlog(
            pending=len(pending),
            by_state=by_state,
            retrying=sum(1 for record in pending if record.attempts > 0),
            oldest_seconds=0.0 if oldest is None else max(0.0, self._clock() - oldest),
        )

    def dead_letter_counts(self) -> dict[str, int]:
        """Dead-lettered instances now in the folder, by category (see `dead_letter`)."""
        counts: dict[str, int] = {}
        for reason_file in self.dead_letter_dir.glob("*/reason.json"):
            try:
                reason = json.loads(reason_file.read_text())
            except (OSError, ValueError):
                continue
            category = str(reason.get("category") or reason.get("reason", "unknown"))
            counts[category] = counts.get(category, 0) + 1
        return counts
