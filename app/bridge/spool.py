"""Durable spool: every received instance is on disk (fsync'ed) before the sender gets its ack.

Layout under the spool root (file names are hashed instance keys, never UIDs):

    tmp/                      partially written files; a crash leaves only these behind
    instances/<key>.dcm       received DICOM Part 10 files, awaiting or under processing
    journal/<key>.json        per-instance state of pending instances (see journal.py)
    journal/finished/         the same for instances in a final state (audit, duplicate detection)
    results/<key>/            service answers (inference.json) and built result objects (*.dcm)
    dead-letter/<key>/        instances given up on: the DICOM file plus reason.json
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
            if self.journal.exists(key):
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
            self.journal.save(record)
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

    def dead_letter(self, record: InstanceRecord, reason: str) -> InstanceRecord:
        """Give up on an instance: keep its file and the reason where an operator looks for them."""
        self._move_to_dead_letter(
            record.key,
            {
                "reason": reason,
                "attempts": record.attempts,
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
