"""Request pacing: the shared token bucket, backoff with jitter, and the throttle gate."""

from __future__ import annotations

import random
import threading
import time

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
    # 4 threads draw 9 tokens at 20/s with burst 1: the 1st is free, 8 more need >= 0.4 s
    bucket = TokenBucket(rate=20.0, burst=1)
    taken: list[float] = []
    lock = threading.Lock()

    def draw(n: int) -> None:
        for _ in range(n):
            bucket.acquire()
            with lock:
                taken.append(time.monotonic())

    threads = [threading.Thread(target=draw, args=(n,)) for n in (3, 2, 2, 2)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == 9
    assert max(taken) - start >= 8 / 20 - 0.02


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


def test_gate_wait_blocks_until_the_pause_ends():
    gate = ThrottleGate(limit=5, base_s=0.4, max_s=0.4, rng=random.Random(0))
    pause = gate.throttled("bot-check", ticket=gate.ticket())
    start = time.monotonic()
    assert gate.wait() is True
    assert time.monotonic() - start >= pause - 0.02
