"""Prometheus metrics of one bridge, in its own registry (no process-global state, test-friendly)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class BridgeMetrics:
    """Jobs by outcome, stage durations, spool depth, ingress and egress counts."""

    def __init__(self, spool_depth: Callable[[], float] | None = None) -> None:
        self.registry = CollectorRegistry()
        self.received = Counter(
            "medslip_bridge_instances_received_total",
            "Instances received, by ingress and outcome (stored, duplicate, rejected).",
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
