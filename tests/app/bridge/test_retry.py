"""RetryWindow: outages retried with capped backoff for the whole window, faults only a few times."""

from __future__ import annotations

from app.bridge.retry import Backoff, RetryWindow


def test_outages_are_retried_until_the_window_ends_on_the_injected_clock() -> None:
    now = [0.0]
    window = RetryWindow(Backoff(2.0, 60.0, jitter=lambda: 1.0), window_seconds=3600.0, clock=lambda: now[0])
    schedule = []
    attempts = 0
    while True:
        attempts += 1
        next_at = window.next_attempt_at("egress", attempts, first_failure_at=0.0)
        if next_at is None:
            break
        schedule.append(next_at - now[0])
        now[0] = next_at
    assert schedule[:6] == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0] and set(schedule[5:]) == {60.0}
    assert now[0] >= 3600.0 and now[0] - schedule[-1] < 3600.0  # gave up at the first try past the window


def test_faults_get_max_attempts_whatever_the_window() -> None:
    window = RetryWindow(Backoff(1.0, 8.0, jitter=lambda: 1.0), window_seconds=1e9, max_attempts=3,
                         clock=lambda: 50.0)
    assert window.next_attempt_at("build", 1, first_failure_at=50.0) == 51.0
    assert window.next_attempt_at("build", 2, first_failure_at=50.0) == 52.0
    assert window.next_attempt_at("build", 3, first_failure_at=50.0) is None
    assert window.next_attempt_at("inference", 3, first_failure_at=50.0) == 54.0  # an outage: goes on


def test_backoff_of_very_many_attempts_stays_at_the_cap() -> None:
    assert Backoff(1.0, 300.0, jitter=lambda: 1.0).delay(10_000) == 300.0
