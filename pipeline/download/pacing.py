"""How fast the download workers may talk to a host, shared by all workers of a process.

Three pieces, each thread-safe:
- `TokenBucket`: a global request rate (requests/s with a small burst) across workers;
- `backoff_delay`: exponential backoff with jitter for retrying one clip;
- `ThrottleGate`: when the host throttles us (HTTP 429, a bot check) every worker pauses,
  for longer each time it happens again; after `limit` throttles in a row with no success
  in between the gate trips and the stage stops cleanly instead of hammering the host.
"""

from __future__ import annotations

import random
import threading
import time


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; `rate <= 0` means unlimited."""

    def __init__(self, rate: float, burst: float = 1.0,
                 clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self.rate = rate
        self.burst = max(1.0, burst)
        self._clock = clock
        self._tokens = self.burst
        self._last = clock()
        self._lock = threading.Lock()

    def try_acquire(self) -> float:
        """Take a token and return 0, or return the seconds to wait before one is due."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self.rate

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Block until a token is taken (True) or `stop` is set (False)."""
        while True:
            wait = self.try_acquire()
            if wait <= 0:
                return True
            if stop is not None:
                if stop.wait(wait):
                    return False
            else:
                time.sleep(wait)


def backoff_delay(attempt: int, base_s: float, max_s: float,
                  rng: random.Random | None = None) -> float:
    """Delay before retry number `attempt` (1, 2, ...): the exponential step
    base * 2**(attempt-1), capped at max_s, with "equal jitter" (half fixed, half random)
    so that delays still grow while workers that failed together spread apart."""
    step = min(max_s, base_s * (2 ** max(0, attempt - 1)))
    return step / 2 + (rng or random).uniform(0, step / 2)


class ThrottleGate:
    """A pause shared by all workers while the host throttles us."""

    def __init__(self, limit: int, base_s: float, max_s: float,
                 rng: random.Random | None = None,
                 clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self.limit = limit
        self.base_s = base_s
        self.max_s = max_s
        self._rng = rng or random.Random()
        self._clock = clock
        self._lock = threading.Lock()
        self._resume_at = 0.0
        self.in_a_row = 0  # throttles since the last success
        self.total = 0
        self.tripped = threading.Event()
        self.last_reason: str | None = None
        self._epoch = 0

    def ticket(self) -> int:
        """Taken when a request starts; throttle answers to requests that were already in
        flight when a pause began count as that same throttle, not as new ones."""
        with self._lock:
            return self._epoch

    def throttled(self, reason: str, retry_after_s: float | None = None,
                  ticket: int | None = None) -> float:
        """Record a throttle answer; return the pause every worker now takes (0 if tripped)."""
        with self._lock:
            if ticket is not None and ticket != self._epoch:
                return max(0.0, self._resume_at - self._clock())
            self._epoch += 1
            self.in_a_row += 1
            self.total += 1
            self.last_reason = reason
            if self.in_a_row >= self.limit:
                self.tripped.set()
                return 0.0
            pause = backoff_delay(self.in_a_row, self.base_s, self.max_s, self._rng)
            if retry_after_s is not None:  # the host said how long; never go below it
                pause = max(pause, min(retry_after_s, self.max_s))
            self._resume_at = max(self._resume_at, self._clock() + pause)
            return pause

    def succeeded(self) -> None:
        with self._lock:
            self.in_a_row = 0

    def remaining(self) -> float:
        with self._lock:
            return max(0.0, self._resume_at - self._clock())

    def wait(self, stop: threading.Event | None = None) -> bool:
        """Block while paused; False when the gate tripped or `stop` was set meanwhile."""
        while True:
            if self.tripped.is_set() or (stop is not None and stop.is_set()):
                return False
            left = self.remaining()
            if left <= 0:
                return True
            if stop is not None:
                stop.wait(min(left, 0.5))
            else:
                time.sleep(min(left, 0.5))
