"""Prometheus metrics of one bridge, in its own registry (no process-global state, test-friendly)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from app.bridge.spool import Backlog


class SpoolCollector(Collector):
    """Backlog and dead-letter figures read from the spool at scrape time (they change outside this
    process too: `medslip-bridge dead-letter replay|purge` edits the folder directly)."""

    def __init__(
        self, backlog: Callable[[], Backlog], dead_letters: Callable[[], dict[str, int]]
    ) -> None:
        self._backlog = backlog
        self._dead_letters = dead_letters

    def collect(self) -> Iterator[GaugeMetricFamily]:
        backlog = self._backlog()
        by_state = GaugeMetricFamily(
            "medslip_bridge_backlog_instances", "Pending instances by step reached.", labels=["state"]
        )
        for state in ("received", "inferred", "built"):
            by_state.add_metric([state], backlog.by_state.get(state, 0))
        yield by_state
        retrying = "Pending instances waiting for a retry."
        yield GaugeMetricFamily("medslip_bridge_backlog_retrying", retrying, value=backlog.retrying)
        yield GaugeMetricFamily(
            "medslip_bridge_backlog_oldest_seconds",
            "Age of the oldest pending instance (grows during an outage).",
            value=backlog.oldest_seconds,
        )
        dead = GaugeMetricFamily(
            "medslip_bridge_dead_letter_instances",
            "Instances in the dead-letter folder, by reason (stage; for egress the problem).",
            labels=["reason"],
        )
        for reason, count in sorted(self._dead_letters().items()):
            dead.add_metric([reason], count)
        yield dead


class BridgeMetrics:
    """Jobs by outcome, stage durations, spool depth, backlog, dead letters, ingress and egress counts."""

    def __init__(
        self,
        spool_depth: Callable[[], float] | None = None,
        *,
        backlog: Callable[[], Backlog] | None = None,
        dead_letters: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        self.received = Counter(
            "medslip_bridge_instances_received_total",
            "Instances received, by ingress and outcome (stored, duplicate, requeued, rejected).",
            ["ingress", "outcome"],
            registry=self.registry,
        )
        self.jobs = Counter(
            "medslip_bridge_jobs_total",
            "Instances that reached a final state, by outcome (done, skipped, refused, dead_letter).",
            ["outcome"],
            registry=self.registry,
        )
        self.retries = Counter(
            "medslip_bridge_retries_total",
            "Instance-level retries scheduled, by stage.",
            ["stage"],
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "medslip_bridge_stage_duration_seconds",
            "Time spent per pipeline stage (inference, build, egress).",
            ["stage"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.spool_depth = Gauge(
            "medslip_bridge_spool_depth",
            "Instances in the spool not yet in a final state.",
            registry=self.registry,
        )
        if spool_depth is not None:
            self.spool_depth.set_function(spool_depth)
        if backlog is not None and dead_letters is not None:
            self.registry.register(SpoolCollector(backlog, dead_letters))
