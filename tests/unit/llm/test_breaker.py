"""The circuit breaker's state machine, on a clock the test moves."""

from __future__ import annotations

import pytest

from shopops.llm.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_opens_after_n_consecutive_failures_only(clock: Clock) -> None:
    changes: list[BreakerState] = []
    breaker = CircuitBreaker(3, 10.0, clock=clock, on_change=changes.append)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.allow()
    breaker.record_success()  # a success resets the count
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert changes == [BreakerState.OPEN]
    assert not breaker.allow()
    assert breaker.retry_in() == pytest.approx(10.0)


def test_half_open_lets_one_probe_through_after_the_cool_down(clock: Clock) -> None:
    breaker = CircuitBreaker(1, 10.0, clock=clock)
    breaker.record_failure()
    clock.now += 9.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # others wait for its outcome
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()
    assert breaker.allow()


def test_a_failed_probe_opens_the_circuit_for_another_cool_down(clock: Clock) -> None:
    breaker = CircuitBreaker(5, 10.0, clock=clock)
    for _ in range(5):
        breaker.record_failure()
    clock.now += 10
    assert breaker.allow()
    breaker.record_failure()  # one failure is enough in half-open state
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    clock.now += 10
    assert breaker.allow()


def test_a_probe_released_without_verdict_frees_the_slot(clock: Clock) -> None:
    breaker = CircuitBreaker(1, 1.0, clock=clock)
    breaker.record_failure()
    clock.now += 1
    assert breaker.allow()
    breaker.release()
    assert breaker.allow()


def test_gauge_values() -> None:
    assert [s.gauge for s in BreakerState] == [0, 1, 2]
    with pytest.raises(ValueError, match="at least 1"):
        CircuitBreaker(0)
