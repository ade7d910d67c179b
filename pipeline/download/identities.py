"""Who the download workers are to the host: a pool of identities (cookies and/or proxy),
each with its own throttle state, so a host that throttles one of them slows only that one.

A download campaign of days (VGGSound-AVEL100k: 101,072 clips) meets bot checks and HTTP
429s; with one identity every worker pauses together and the stage stops after
`throttle_limit` throttles in a row. With several, each clip attempt takes the next
identity that is neither pausing nor tripped (round robin, so all are used while healthy),
the throttled one backs off alone, and the stage stops only when every identity tripped.

Each identity has its own `ThrottleGate` (pause, backoff, trip) and its own `TokenBucket`
(`download.requests_per_s` is per identity: the host counts requests per address and
session, and with one identity this is the old global rate).
"""

from __future__ import annotations

import dataclasses
import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.config import DownloadConfig, identity_names, resolve
from pipeline.core.errors import InputError
from pipeline.core.ledger import Entry
from pipeline.download.pacing import ThrottleGate, TokenBucket

DEFAULT = "default"  # the one identity of a config without `download.identities`


@dataclass(frozen=True)
class Identity:
    name: str
    cookies_file: str | None  # an absolute path once resolved
    proxy: str | None  # "" = direct connection


def resolve_identities(workdir: Path, dl: DownloadConfig, config_file: Path) -> list[Identity]:
    """The identities to download as, paths resolved against the work directory and every
    cookies file checked readable (an error names `download.identities[i].cookies_file`)."""
    if not dl.identities:
        return [Identity(DEFAULT, dl.cookies_file, dl.proxy)]
    out = []
    for i, (spec, name) in enumerate(zip(dl.identities, identity_names(dl.identities))):
        cookies = spec.cookies_file if spec.cookies_file is not None else dl.cookies_file
        key = (f"download.identities[{i}].cookies_file" if spec.cookies_file is not None
               else "download.cookies_file")
        if cookies:
            path = resolve(workdir, cookies)
            if not path.is_file():
                raise InputError(f"cookies file not found: {path}", file=config_file, field=key)
            if not os.access(path, os.R_OK):
                raise InputError(f"cookies file not readable: {path}", file=config_file, field=key)
            cookies = str(path)
        proxy = spec.proxy if spec.proxy is not None else dl.proxy
        out.append(Identity(name, cookies or None, proxy))
    return out


@dataclass
class _Slot:
    identity: Identity
    gate: ThrottleGate
    bucket: TokenBucket


@dataclass(frozen=True)
class Lease:
    """One clip attempt's identity, with the gate ticket taken when the request started."""

    identity: Identity
    ticket: int


class IdentityPool:
    """Hands each clip attempt an identity that may talk to the host now."""

    def __init__(self, identities: list[Identity], dl: DownloadConfig,
                 rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not identities:
            raise ValueError("an identity pool needs at least one identity")
        rng = rng or random.Random()
        self._slots = {
            ident.name: _Slot(ident,
                              ThrottleGate(dl.throttle_limit, dl.backoff_base_s, dl.backoff_max_s,
                                           rng, clock=clock),
                              TokenBucket(dl.requests_per_s, burst=max(1.0, dl.requests_per_s),
                                          clock=clock))
            for ident in identities}
        self._order = [ident.name for ident in identities]
        self._next = 0
        self._lock = threading.Lock()

    @property
    def identities(self) -> list[Identity]:
        return [self._slots[n].identity for n in self._order]

    def gate(self, name: str) -> ThrottleGate:
        return self._slots[name].gate

    def all_tripped(self) -> bool:
        return all(s.gate.tripped.is_set() for s in self._slots.values())

    def tripped(self) -> list[str]:
        return [n for n in self._order if self._slots[n].gate.tripped.is_set()]

    def try_lease(self) -> Lease | float | None:
        """An identity free now (its token taken), else the seconds until one may be, or
        None when every identity tripped."""
        with self._lock:
            soonest: float | None = None
            n = len(self._order)
            for k in range(n):
                name = self._order[(self._next + k) % n]
                slot = self._slots[name]
                if slot.gate.tripped.is_set():
                    continue
                wait = slot.gate.remaining()
                if wait <= 0:
                    wait = slot.bucket.try_acquire()
                    if wait <= 0:
                        self._next = (self._next + k + 1) % n
                        return Lease(slot.identity, slot.gate.ticket())
                soonest = wait if soonest is None else min(soonest, wait)
            return soonest

    def lease(self, stop: threading.Event | None = None) -> Lease | None:
        """Block until an identity may send a request; None when all tripped or `stop` was set."""
        while True:
            if stop is not None and stop.is_set():
                return None
            got = self.try_lease()
            if got is None or isinstance(got, Lease):
                return got
            wait = min(max(got, 0.001), 0.5)  # short slices: a stop or a trip is seen soon
            if stop is not None:
                stop.wait(wait)
            else:
                time.sleep(wait)

    def succeeded(self, lease: Lease) -> None:
        self._slots[lease.identity.name].gate.succeeded()

    def throttled(self, lease: Lease, reason: str, retry_after_s: float | None) -> float:
        """Record a throttle answer on this lease's identity; the pause it now takes."""
        return self._slots[lease.identity.name].gate.throttled(reason, retry_after_s, lease.ticket)


def with_identity(dl: DownloadConfig, identity: Identity) -> DownloadConfig:
    """The download settings as one identity sees them (its cookies file and proxy)."""
    return dataclasses.replace(dl, cookies_file=identity.cookies_file, proxy=identity.proxy,
                               identities=[])


# -- what the ledger keeps of identities (in each clip's info JSON; no schema change) ----
IDENTITY_KEY = "identity"  # the identity of the clip's last attempt (that fetched it, if done)
THROTTLED_KEY = "throttled_by"  # {identity: throttle answers it got for this clip}, all runs


def record_attempt(entry: Entry | None, identity: str | None, info: dict[str, Any] | None, *,
                   throttled: bool = False) -> dict[str, Any]:
    """The info to write for an attempt: `info` (the cut's contract when done) plus the
    identity that made it and the clip's throttle history, carried over from `entry` (the
    ledger row before this write) so that a clip done by B still says that A was refused."""
    out = dict(info or {})
    history = entry.info.get(THROTTLED_KEY) if entry is not None else None
    counts = {str(k): int(v) for k, v in history.items()
              if isinstance(v, int)} if isinstance(history, dict) else {}
    if throttled and identity:
        counts[identity] = counts.get(identity, 0) + 1
    if identity:
        out[IDENTITY_KEY] = identity
    if counts:
        out[THROTTLED_KEY] = counts
    return out


def tally(entries: Iterable[Entry]) -> dict[str, dict[str, int]]:
    """{identity: {done, failed, throttled}} over one ledger: clips done and failed by their
    last attempt's identity, throttle answers by the identity that got them. Info that is
    not ours (an old ledger, a hand edit) is skipped, never trusted."""
    out: dict[str, dict[str, int]] = {}

    def row(name: str) -> dict[str, int]:
        return out.setdefault(name, {"done": 0, "failed": 0, "throttled": 0})

    for entry in entries:
        name = entry.info.get(IDENTITY_KEY)
        if isinstance(name, str) and name and entry.status in ("done", "failed"):
            row(name)[entry.status] += 1
        history = entry.info.get(THROTTLED_KEY)
        if isinstance(history, dict):
            for who, n in history.items():
                if isinstance(who, str) and isinstance(n, int) and not isinstance(n, bool) and n > 0:
                    row(who)["throttled"] += n
    return out
