"""Request pacing: the shared token bucket, backoff with jitter, and the throttle gate."""

from __future__ import annotations

import random
import threading

import pytest

from pipeline.download.pacing import ThrottleGate, TokenBucket, backoff_delay


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_bucket_allows_burst_then_one_token_per_interval():
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=2, clock=clock)
    assert bucket.try_acquire() == 0 and bucket.try_acquire() == 0  # the burst
    assert abs(bucket.try_acquire() - 0.5) < 1e-9  # 1 token / (2 per s) = 0.5 s to wait
    clock.t += 0.5
    assert bucket.try_acquire() == 0
    assert bucket.try_acquire() > 0


def test_bucket_rate_holds_across_threads():
    # 4 threads race for tokens at 16/s with burst 1 on a clock that stands still: the one
    # saved token goes out once; each 1/16 s step of the clock (exact in binary) frees one more.
    # The rate the real clock gives is measured in bench/bench_pacing.py.
    clock = FakeClock()
    bucket = TokenBucket(rate=16.0, burst=1, clock=clock)

    def race() -> int:
        granted: list[int] = []
        start = threading.Barrier(4)

        def draw() -> None:
            start.wait()
            granted.append(sum(bucket.try_acquire() == 0 for _ in range(200)))

        threads = [threading.Thread(target=draw) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(granted)

    assert race() == 1
    for _ in range(8):
        clock.t += 1 / 16
        assert race() == 1
    clock.t += 3 / 16  # three intervals idle: still only `burst` (1) saved up
    assert race() == 1


def test_bucket_acquire_returns_false_when_stopped():
    bucket = TokenBucket(rate=0.01, burst=1)
    bucket.acquire()
    stop = threading.Event()
    stop.set()
    assert bucket.acquire(stop) is False


def test_zero_rate_means_unlimited():
    bucket = TokenBucket(rate=0.0)
    assert all(bucket.try_acquire() == 0 for _ in range(1000))


def test_backoff_doubles_within_jitter_bounds_and_is_capped():
    rng = random.Random(1)
    for attempt, step in [(1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0), (9, 30.0)]:
        for _ in range(50):
            d = backoff_delay(attempt, base_s=2.0, max_s=30.0, rng=rng)
            assert step / 2 <= d <= step, (attempt, d)


def test_backoff_jitter_spreads_workers_apart():
    rng = random.Random(2)
    delays = {round(backoff_delay(3, 2.0, 60.0, rng), 6) for _ in range(20)}
    assert len(delays) == 20


def test_gate_pauses_everyone_for_at_least_retry_after_and_trips_at_limit():
    clock = FakeClock()
    gate = ThrottleGate(limit=3, base_s=0.1, max_s=10.0, rng=random.Random(0), clock=clock)
    assert gate.remaining() == 0
    pause = gate.throttled("http-429", retry_after_s=5.0, ticket=gate.ticket())
    assert pause >= 5.0 and gate.remaining() >= 5.0
    gate.throttled("http-429", ticket=gate.ticket())
    assert not gate.tripped.is_set()
    gate.throttled("http-429", ticket=gate.ticket())
    assert gate.tripped.is_set()
    assert gate.wait() is False  # a tripped gate lets nobody through


def test_gate_counts_answers_to_requests_already_in_flight_once():
    gate = ThrottleGate(limit=2, base_s=0.01, max_s=0.05)
    tickets = [gate.ticket() for _ in range(4)]  # 4 workers sent requests at once
    for t in tickets:
        gate.throttled("http-429", ticket=t)
    assert gate.in_a_row == 1 and not gate.tripped.is_set()


def test_gate_success_resets_the_run_of_throttles():
    gate = ThrottleGate(limit=2, base_s=0.01, max_s=0.05)
    gate.throttled("http-429", ticket=gate.ticket())
    gate.succeeded()
    gate.throttled("http-429", ticket=gate.ticket())
    assert not gate.tripped.is_set()


class RecordingStop:
    """A stop event that is never set; its waits advance the fake clock and are recorded."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    def is_set(self) -> bool:
        return False

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.clock.t += seconds
        return False


def test_gate_wait_blocks_until_the_pause_ends():
    clock = FakeClock()
    gate = ThrottleGate(limit=5, base_s=2.0, max_s=2.0, rng=random.Random(0), clock=clock)
    pause = gate.throttled("bot-check", ticket=gate.ticket())
    assert 1.0 <= pause <= 2.0  # equal jitter: half of the 2 s step fixed
    stop = RecordingStop(clock)
    assert gate.wait(stop) is True  # type: ignore[arg-type]
    # waited out the whole pause, in slices of at most 0.5 s so a stop is seen quickly
    assert sum(stop.waits) == pytest.approx(pause)
    assert len(stop.waits) >= 2 and max(stop.waits) <= 0.5
    assert gate.remaining() == 0
