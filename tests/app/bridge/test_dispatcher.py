"""Dispatcher: stability window, frontal selection, refusals, retries to dead letter, resume after restart."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest

from app.bridge.dispatcher import INFERENCE_FILE, Dispatcher, DispatchPolicy
from app.bridge.egress import Egress, EgressStatus
from app.bridge.journal import InstanceState
from app.bridge.metrics import BridgeMetrics
from app.bridge.retry import Backoff
from app.bridge.service_client import InferenceClient
from app.bridge.spool import InstanceHeader, Spool
from tests.support.bridge.fakes import fake_answers, make_chest_dicom, model_metadata, problem


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeService:
    """httpx transport answering like the inference service; counts calls per route."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.fail_with: int | None = None
        self.refuse_code: str | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        route = request.url.path.strip("/").split("/")[0]
        self.calls[route] = self.calls.get(route, 0) + 1
        if route == "v2":
            return httpx.Response(200, json=model_metadata("tiny", "0.0.1"))
        if self.refuse_code:
            return httpx.Response(422, json=problem(422, self.refuse_code))
        if self.fail_with:
            return httpx.Response(self.fail_with, json=problem(self.fail_with, "boom"))
        return httpx.Response(200, json=fake_answers(64, 64)[route])


class FakePacs:
    """Egress destination that records what it got and can fail on demand."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.failing = False

    def send(self, datasets: Sequence[pydicom.Dataset]) -> EgressStatus:
        self.batches.append([str(ds.SOPInstanceUID) for ds in datasets])
        return {str(ds.SOPInstanceUID): ("cstore_status_42752" if self.failing else None) for ds in datasets}


def _dispatcher(
    tmp_path: Path, service: FakeService, pacs: FakePacs, clock: Clock, **policy: Any
) -> Dispatcher:
    spool = Spool(tmp_path / "spool", clock=clock)
    client = InferenceClient(
        "http://service", retries=0, transport=httpx.MockTransport(service), sleep=lambda s: None
    )
    defaults = DispatchPolicy(
        stable_seconds=5.0,
        max_attempts=3,
        retry_window_seconds=3.0,
        backoff=Backoff(1.0, 8.0, jitter=lambda: 1.0),
    )
    settings = dataclasses.replace(defaults, **policy)
    metrics = BridgeMetrics(spool.depth, backlog=spool.backlog, dead_letters=spool.dead_letter_counts)
    return Dispatcher(spool, client, Egress([pacs]), metrics, settings, clock=clock)


def _receive(dispatcher: Dispatcher, **kwargs: object) -> str:
    data = make_chest_dicom(**kwargs)  # type: ignore[arg-type]
    return dispatcher.spool.store(data, InstanceHeader.from_bytes(data), ingress="test")[1]


def _state(dispatcher: Dispatcher, key: str) -> InstanceState:
    return dispatcher.spool.journal.load(key).state


def test_study_waits_for_stability_then_goes_out_in_one_batch(tmp_path: Path) -> None:
    clock, service, pacs = Clock(), FakeService(), FakePacs()
    dispatcher = _dispatcher(tmp_path, service, pacs, clock)
    first = _receive(dispatcher, study_uid="1.2.3", view="PA")
    clock.now += 4
    second = _receive(dispatcher, study_uid="1.2.3", view="AP")
    clock.now += 4  # 8 s after the first, 4 s after the second: not stable yet
    assert dispatcher.run_once() == 0
    assert service.calls == {}
    clock.now += 1.5
    dispatcher.run_once()
    assert _state(dispatcher, first) is _state(dispatcher, second) is InstanceState.DONE
    assert len(pacs.batches) == 1  # one association for the study
    assert (
        len(pacs.batches[0]) == 2 * 4
    )  # per image: SR, SEG and a heatmap for each of the 2 grounded findings
    assert not dispatcher.spool.instance_path(first).exists()  # released after done


def test_laterals_are_skipped_and_recorded_without_calling_the_service(tmp_path: Path) -> None:
    clock, service, pacs = Clock(), FakeService(), FakePacs()
    dispatcher = _dispatcher(tmp_path, service, pacs, clock, stable_seconds=0)
    lateral = _receive(dispatcher, view="LL")
    dispatcher.run_once()
    record = dispatcher.spool.journal.load(lateral)
    assert record.state is InstanceState.SKIPPED and record.reason == "lateral_view"
    assert service.calls == {} and pacs.batches == []


def test_refusal_is_final_and_never_retried(tmp_path: Path) -> None:
    clock, service, pacs = Clock(), FakeService(), FakePacs()
    service.refuse_code = "not_chest"
    dispatcher = _dispatcher(tmp_path, service, pacs, clock, stable_seconds=0)
    key = _receive(dispatcher)
    dispatcher.run_once()
    clock.now += 100
    dispatcher.run_once()
    record = dispatcher.spool.journal.load(key)
    assert record.state is InstanceState.REFUSED and record.reason == "not_chest"
    assert service.calls["classify"] == 1


def test_service_outage_backs_off_then_dead_letters_with_reason(tmp_path: Path) -> None:
    clock, service, pacs = Clock(), FakeService(), FakePacs()
    service.fail_with = 503
    dispatcher = _dispatcher(tmp_path, service, pacs, clock, stable_seconds=0)
    key = _receive(dispatcher)
    dispatcher.run_once()
    record = dispatcher.spool.journal.load(key)
    assert (record.state, record.attempts, record.next_attempt_at) == (
        InstanceState.RECEIVED,
        1,
        clock.now + 1.0,
    )
    dispatcher.run_once()  # not due yet
    assert service.calls["classify"] == 1
    clock.now += 1.0
    dispatcher.run_once()
    assert dispatcher.spool.journal.load(key).next_attempt_at == clock.now + 2.0  # doubled
    clock.now += 2.0  # 3 s after the first failure: the (test's) retry window is over
    dispatcher.run_once()
    record = dispatcher.spool.journal.load(key)
    assert record.state is InstanceState.DEAD_LETTER and record.attempts == 3
    reason = json.loads((dispatcher.spool.dead_letter_dir / key / "reason.json").read_text())
    assert reason["reason"] == "inference: classify: HTTP 503 after 1 attempts"
    assert reason["category"] == "inference"
    assert service.calls["classify"] == 3
    assert dispatcher.metrics.registry.get_sample_value(
        "medslip_bridge_dead_letter_instances", {"reason": "inference"}
    ) == 1


def test_failed_egress_is_retried_without_new_inference(tmp_path: Path) -> None:
    clock, service, pacs = Clock(), FakeService(), FakePacs()
    pacs.failing = True
    dispatcher = _dispatcher(tmp_path, service, pacs, clock, stable_seconds=0)
    key = _receive(dispatcher)
    dispatcher.run_once()
    assert _state(dispatcher, key) is InstanceState.BUILT
    pacs.failing = False
    clock.now += 1.0
    dispatcher.run_once()
    record = dispatcher.spool.journal.load(key)
    assert record.state is InstanceState.DONE
    assert [h["event"] for h in record.history] == ["entered", "entered", "retry_scheduled", "entered"]
    assert service.calls["classify"] == 1
    # same objects, same UIDs: the PACS overwrites, never duplicates
    assert pacs.batches[0] == pacs.batches[1]


def test_restart_resumes_from_the_journal_exactly_once(tmp_path: Path) -> None:
    clock, service, pacs = Clock(), FakeService(), FakePacs()
    dispatcher = _dispatcher(tmp_path, service, pacs, clock, stable_seconds=0)
    key = _receive(dispatcher)
    # Simulate a crash right after the service answered: inference saved, nothing built or sent.
    inference = fake_answers(64, 64)
    dispatcher.spool.write_result(key, INFERENCE_FILE, json.dumps(inference).encode())
    dispatcher.spool.journal.transition(dispatcher.spool.journal.load(key), InstanceState.INFERRED)
    restarted = _dispatcher(tmp_path, service, pacs, clock, stable_seconds=0)
    restarted.run_once()
    restarted.run_once()
    record = restarted.spool.journal.load(key)
    assert record.state is InstanceState.DONE
    assert "classify" not in service.calls  # not inferred twice
    assert [(h["state"], h["event"]) for h in record.history] == [
        ("inferred", "entered"),
        ("built", "entered"),
        ("done", "entered"),
    ]
    assert len(pacs.batches) == 1


@pytest.mark.parametrize("view", [None, "PA"])
def test_unknown_or_frontal_views_are_inferred(tmp_path: Path, view: str | None) -> None:
    clock, service, pacs = Clock(), FakeService(), FakePacs()
    dispatcher = _dispatcher(tmp_path, service, pacs, clock, stable_seconds=0, max_heatmaps=0)
    key = _receive(dispatcher, view=view)
    dispatcher.run_once()
    assert _state(dispatcher, key) is InstanceState.DONE
    assert len(pacs.batches[0]) == 2  # SR + SEG


def test_a_broken_instance_does_not_block_the_others(tmp_path: Path) -> None:
    clock, service, pacs = Clock(), FakeService(), FakePacs()
    dispatcher = _dispatcher(tmp_path, service, pacs, clock, stable_seconds=0, max_attempts=1)
    broken = _receive(dispatcher, study_uid="1.2.3")
    healthy = _receive(dispatcher, study_uid="1.2.3")
    dispatcher.spool.instance_path(broken).unlink()  # e.g. removed by an operator
    dispatcher.run_once()
    assert dispatcher.spool.journal.load(broken).reason == "internal: FileNotFoundError"
    assert _state(dispatcher, broken) is InstanceState.DEAD_LETTER
    assert _state(dispatcher, healthy) is InstanceState.DONE
    metrics = dispatcher.metrics.registry
    assert metrics.get_sample_value("medslip_bridge_jobs_total", {"outcome": "done"}) == 1
    assert metrics.get_sample_value("medslip_bridge_jobs_total", {"outcome": "dead_letter"}) == 1
    assert metrics.get_sample_value("medslip_bridge_stage_duration_seconds_count", {"stage": "egress"}) == 1


def test_a_pacs_outage_of_hours_keeps_results_in_the_spool_and_delivers_them_once(tmp_path: Path) -> None:
    """Capped backoff over a long window: driven by the injected clock, no sleeping."""
    clock, service, pacs = Clock(), FakeService(), FakePacs()
    pacs.failing = True
    hours = 3600.0
    dispatcher = _dispatcher(
        tmp_path, service, pacs, clock, stable_seconds=0, retry_window_seconds=6 * hours,
        backoff=Backoff(1.0, 300.0, jitter=lambda: 1.0),
    )
    key = _receive(dispatcher)
    dispatcher.run_once()
    start = clock.now
    delays = []
    while clock.now - start < 5 * hours:  # five hours down
        record = dispatcher.spool.journal.load(key)
        assert record.state is InstanceState.BUILT  # built objects wait durably in the spool
        assert list(dispatcher.spool.results_dir(key).glob("*.dcm"))
        delays.append(record.next_attempt_at - clock.now)
        clock.now = record.next_attempt_at
        dispatcher.run_once()
    assert max(delays) == 300.0 and delays[:4] == [1.0, 2.0, 4.0, 8.0]  # exponential, capped
    assert dispatcher.metrics.registry.get_sample_value("medslip_bridge_backlog_retrying") == 1
    assert dispatcher.metrics.registry.get_sample_value(
        "medslip_bridge_backlog_instances", {"state": "built"}
    ) == 1
    pacs.failing = False
    clock.now = dispatcher.spool.journal.load(key).next_attempt_at
    dispatcher.run_once()
    assert _state(dispatcher, key) is InstanceState.DONE
    assert service.calls["classify"] == 1  # inferred once, whatever the outage
    assert len({tuple(batch) for batch in pacs.batches}) == 1  # the same objects each time


def test_outage_beyond_the_window_dead_letters_but_a_build_fault_does_not_wait_for_it(
    tmp_path: Path,
) -> None:
    clock, service, pacs = Clock(), FakeService(), FakePacs()
    pacs.failing = True
    dispatcher = _dispatcher(tmp_path, service, pacs, clock, stable_seconds=0, retry_window_seconds=100.0)
    key = _receive(dispatcher)
    dispatcher.run_once()
    while _state(dispatcher, key) is InstanceState.BUILT:
        clock.now = dispatcher.spool.journal.load(key).next_attempt_at
        dispatcher.run_once()
    record = dispatcher.spool.journal.load(key)
    assert record.state is InstanceState.DEAD_LETTER
    assert record.first_failure_at is not None and clock.now - record.first_failure_at >= 100.0
    assert dispatcher.spool.dead_letter_counts() == {"egress:cstore_status_42752": 1}
