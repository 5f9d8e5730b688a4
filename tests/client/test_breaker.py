from codesuggest.client.breaker import CircuitBreaker
from codesuggest.tokens.clock import ManualClock


def test_opens_for_1s_then_x5_up_to_10_minutes():
    clock = ManualClock(1000.0)
    breaker = CircuitBreaker(clock)
    seen = []
    for _ in range(6):
        breaker.record_failure()
        seen.append(breaker.open_for)
    assert seen == [1, 5, 25, 125, 600, 600]


def test_open_refuses_until_time_then_lets_one_probe():
    clock = ManualClock(1000.0)
    breaker = CircuitBreaker(clock)
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"
    assert not breaker.allow()
    clock.advance(0.999)
    assert not breaker.allow()
    clock.advance(0.002)
    assert breaker.state == "half-open"
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one at a time
    breaker.record_failure()  # probe failed: open for 5 s
    clock.advance(4.9)
    assert not breaker.allow()
    clock.advance(0.2)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.allow() and breaker.allow()
    breaker.record_failure()
    assert breaker.open_for == 1  # a success resets the growth


def test_released_probe_can_be_retried():
    clock = ManualClock(0.0)
    breaker = CircuitBreaker(clock)
    breaker.record_failure()
    clock.advance(1.5)
    assert breaker.allow()
    breaker.release_probe()
    assert breaker.allow()
