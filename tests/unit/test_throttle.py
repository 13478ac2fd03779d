"""The throttle of failed authentications: an allowance per client address and window, bounded memory."""

from __future__ import annotations

from bridge.web.throttle import AuthThrottle


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_waits_a_window_once_past_its_allowance_and_others_do_not():
    ticks = Ticks()
    throttle = AuthThrottle(allowance=3, window=60, clock=ticks)
    assert [throttle.failed("10.0.0.1") for _ in range(3)] == [False, False, True]
    assert throttle.wait("10.0.0.1") == 60 and throttle.someone_waits()
    assert throttle.wait("10.0.0.2") == 0
    ticks.now += 59.5
    assert throttle.wait("10.0.0.1") == 0.5
    ticks.now += 0.5
    assert throttle.wait("10.0.0.1") == 0 and not throttle.someone_waits()
    assert throttle.failed("10.0.0.1") is False, "a new window: the allowance is whole again"


def test_failures_spread_wider_than_the_window_never_add_up():
    ticks = Ticks()
    throttle = AuthThrottle(allowance=3, window=60, clock=ticks)
    for _ in range(10):
        assert throttle.failed("10.0.0.1") is False
        ticks.now += 31
        assert throttle.failed("10.0.0.1") is False
        ticks.now += 31
    assert throttle.wait("10.0.0.1") == 0


def test_memory_is_bounded_dropping_the_least_recently_failed_address():
    throttle = AuthThrottle(allowance=2, window=60, max_addresses=100, clock=Ticks())
    throttle.failed("10.0.0.1")
    throttle.failed("10.0.0.1")
    for host in range(5000):
        throttle.failed(f"192.0.2.{host}")
        assert len(throttle) <= 100
    assert throttle.wait("10.0.0.1") == 0, "dropped: the oldest failure goes first"
    throttle.failed("203.0.113.9")
    throttle.failed("203.0.113.9")
    assert throttle.wait("203.0.113.9") == 60 and len(throttle) == 100
