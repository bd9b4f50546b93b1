"""The worker: takes stable studies from the spool and walks each instance through the pipeline.

received -> inferred -> built -> done, with skipped / refused / dead_letter as the other final states.
Every step is persisted in the journal before the next one starts, so a restart resumes exactly where
the last run stopped, and an instance in a final state is never touched again.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pydicom

from app.bridge.egress import Egress
from app.bridge.inference import InferenceResult
from app.bridge.journal import InstanceRecord, InstanceState
from app.bridge.metrics import BridgeMetrics
from app.bridge.results import build_results
from app.bridge.retry import Backoff, RetryWindow
from app.bridge.service_client import InferenceClient, ServiceRefusedError, ServiceUnavailableError
from app.bridge.spool import InstanceHeader, Spool
from app.bridge.views import classify_view, group_by_study, is_stable, wants_inference

logger = logging.getLogger(__name__)

INFERENCE_FILE = "inference.json"


@dataclass(frozen=True)
class DispatchPolicy:
    """Timing and retry knobs of the dispatcher (from BridgeSettings)."""

    stable_seconds: float = 10.0
    max_attempts: int = 5  # build / internal faults
    retry_window_seconds: float = 6 * 3600.0  # inference / egress outages
    backoff: Backoff = field(default_factory=Backoff)
    max_heatmaps: int = 3
    ground_all_findings: bool = True
    findings: Sequence[str] = ()
    manufacturer: str = "MeDSLIP research"


class Dispatcher:
    """Single worker thread; the SCP / STOW threads only ever add new records to the spool."""

    def __init__(
        self,
        spool: Spool,
        client: InferenceClient,
        egress: Egress,
        metrics: BridgeMetrics,
        policy: DispatchPolicy,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spool = spool
        self.client = client
        self.egress = egress
        self.metrics = metrics
        self.policy = policy
        self._clock = clock
        self.retry = RetryWindow(policy.backoff, policy.retry_window_seconds, policy.max_attempts, clock)

    # ------------------------------------------------------------------ loop
    def run(self, stop: threading.Event, poll_seconds: float) -> None:
        """Process until `stop` is set; an unexpected error is logged and the loop goes on."""
        while not stop.is_set():
            try:
                self.run_once()
            except Exception:
                logger.exception("dispatcher pass failed")
            stop.wait(poll_seconds)

    def run_once(self) -> int:
        """One pass over the spool; returns the number of state changes made."""
        pending = self.spool.journal.load_pending()
        now = self._clock()
        changes = 0
        for records in group_by_study(pending).values():
            if is_stable(records, now, self.policy.stable_seconds):
                changes += self._process_study(records)
        return changes

    # ------------------------------------------------------------------ per study
    def _process_study(self, records: list[InstanceRecord]) -> int:
        changes = 0
        ready: list[InstanceRecord] = []
        for record in records:
            if record.next_attempt_at > self._clock():
                continue
            try:
                advanced = self._advance(record)
            except Exception as exc:  # e.g. spool file gone: count it against this instance only
                logger.exception("instance step failed", extra=_log_fields(record))
                advanced = self._retry_later(record, "internal", type(exc).__name__)
            changes += advanced.state is not record.state
            if advanced.state is InstanceState.BUILT:
                ready.append(advanced)
        if ready:
            changes += self._deliver(ready)
        return changes

    def _advance(self, record: InstanceRecord) -> InstanceRecord:
        """Bring one instance up to BUILT (or a final state) from wherever it stopped."""
        if record.state is InstanceState.RECEIVED and not wants_inference(record):
            decision = classify_view(record.view_position)
            return self._finish(record, InstanceState.SKIPPED, f"{decision.value}_view")
        if record.state is InstanceState.RECEIVED:
            record = self._infer(record)
        if record.state is InstanceState.INFERRED:
            record = self._build(record)
        return record

    def _infer(self, record: InstanceRecord) -> InstanceRecord:
        data = self.spool.instance_path(record.key).read_bytes()
        sop_uid = InstanceHeader.from_bytes(data).sop_instance_uid
        started = time.perf_counter()
        try:
            max_grounded = None if self.policy.ground_all_findings else self.policy.max_heatmaps
            result = self.client.infer(data, sop_uid, self.policy.findings, max_grounded)
        except ServiceRefusedError as refusal:
            return self._finish(record, InstanceState.REFUSED, refusal.code)
        except ServiceUnavailableError as exc:
            return self._retry_later(record, "inference", str(exc))
        finally:
            self.metrics.stage_seconds.labels("inference").observe(time.perf_counter() - started)
        self.spool.write_result(record.key, INFERENCE_FILE, json.dumps(result.to_json()).encode())
        return self._step(record, InstanceState.INFERRED)

    def _build(self, record: InstanceRecord) -> InstanceRecord:
        started = time.perf_counter()
        try:
            saved = self.spool.read_json_result(record.key, INFERENCE_FILE)
            if saved is None:  # lost answer (should not happen): ask the service again
                return self._step(record, InstanceState.RECEIVED)
            inference = InferenceResult.from_json(saved)
            source = pydicom.dcmread(self.spool.instance_path(record.key))
            objects = build_results(source, inference, self.policy.manufacturer, self.policy.max_heatmaps)
            for obj in objects:
                buffer = _encode(obj.dataset)
                self.spool.write_result(record.key, obj.file_name, buffer)
        except Exception as exc:
            logger.exception("building result objects failed", extra={"instance": record.key[:16]})
            return self._retry_later(record, "build", type(exc).__name__)
        finally:
            self.metrics.stage_seconds.labels("build").observe(time.perf_counter() - started)
        return self._step(record, InstanceState.BUILT)

    def _deliver(self, records: list[InstanceRecord]) -> int:
        """Egress of one study's results in one batch; each instance is done when all its objects are."""
        objects: dict[str, list[pydicom.Dataset]] = {
            record.key: [
                pydicom.dcmread(path) for path in sorted(self.spool.results_dir(record.key).glob("*.dcm"))
            ]
            for record in records
        }
        started = time.perf_counter()
        status = self.egress.send([ds for datasets in objects.values() for ds in datasets])
        self.metrics.stage_seconds.labels("egress").observe(time.perf_counter() - started)
        changes = 0
        for record in records:
            problems = sorted({p for ds in objects[record.key] if (p := status.get(str(ds.SOPInstanceUID)))})
            if problems:
                self._retry_later(record, "egress", ",".join(problems))
            else:
                self._finish(record, InstanceState.DONE, None)
            changes += 1
        return changes

    # ------------------------------------------------------------------ transitions
    def _step(self, record: InstanceRecord, state: InstanceState) -> InstanceRecord:
        updated = self.spool.journal.transition(record, state)
        logger.info("instance advanced", extra=_log_fields(updated))
        return updated

    def _finish(self, record: InstanceRecord, state: InstanceState, reason: str | None) -> InstanceRecord:
        updated = self.spool.journal.transition(record, state, reason=reason)
        self.spool.release(record.key)
        self.metrics.jobs.labels(state.value).inc()
        logger.info("instance finished", extra=_log_fields(updated))
        return updated

    def _retry_later(self, record: InstanceRecord, stage: str, reason: str) -> InstanceRecord:
        """Count a failed try; schedule the next one with backoff, or dead-letter (RetryWindow decides).

        Whatever the step has produced (service answers, built objects) stays in the spool meanwhile.
        """
        attempts = record.attempts + 1
        first_failure_at = record.first_failure_at if record.first_failure_at is not None else self._clock()
        reason = f"{stage}: {reason}"
        next_at = self.retry.next_attempt_at(stage, attempts, first_failure_at)
        if next_at is None:
            failed = dataclasses.replace(record, attempts=attempts, first_failure_at=first_failure_at)
            updated = self.spool.dead_letter(failed, reason, stage)
            self.metrics.jobs.labels(InstanceState.DEAD_LETTER.value).inc()
            logger.error("instance dead-lettered", extra=_log_fields(updated))
            return updated
        updated = self.spool.journal.transition(
            record,
            record.state,
            attempts=attempts,
            first_failure_at=first_failure_at,
            next_attempt_at=next_at,
            reason=reason,
        )
        self.metrics.retries.labels(stage).inc()
        logger.warning("instance will be retried", extra=_log_fields(updated))
        return updated


def _encode(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _log_fields(record: InstanceRecord) -> dict[str, object]:
    return {
        "instance": record.key[:16],
        "study": record.study_key[:16],
        "state": record.state.value,
        "attempts": record.attempts,
        "reason": record.reason,
    }
