"""A circuit breaker for the download stage: one reason failing every attempt in a row.

A dataset's dead clips are scattered; their reasons vary and successes come between them.
When the last N attempts all failed for the *same* reason with no success in between, the
cause is almost always shared -- the network, a yt-dlp too old for YouTube's latest change,
a missing JS runtime whose warning we do not recognise yet, a cookies file that expired --
and going on would only write N more wrong verdicts into the ledger. So the stage stops and
puts those clips back to pending; the user fixes the setup (or raises the limit when the
clips really are gone) and reruns.

Only downloads count (not local files: a block of missing files is the user's data, and
stopping would only stop at the same block again), and not throttling (the throttle gate
has its own limit and pauses), nor environment failures (they stop the stage at once).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FailureStreak:
    """Attempts failed in a row for one reason since the last success."""

    limit: int  # stop after this many in a row; 0 = never
    reason: str | None = None
    attempts: int = 0  # failed attempts in the streak (a retried clip counts each time)
    clip_ids: list[str] = field(default_factory=list)  # the streak's clips, oldest first

    def succeeded(self) -> None:
        self.reason, self.attempts, self.clip_ids = None, 0, []

    def failed(self, clip_id: str, reason: str) -> bool:
        """Count one failed attempt; True when the streak has reached the limit."""
        if reason != self.reason:
            self.reason, self.attempts, self.clip_ids = reason, 0, []
        self.attempts += 1
        if clip_id not in self.clip_ids:
            self.clip_ids.append(clip_id)
        return self.tripped

    @property
    def tripped(self) -> bool:
        return self.limit > 0 and self.attempts >= self.limit
