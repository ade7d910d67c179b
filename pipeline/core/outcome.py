"""The exit code of a stage that worked through clips, from its ledgers' counts: one rule for
`avel run` and for `avel download` / `cut` / `extract` on one shard (README "Exit codes"):
4 when clips are still pending, else 1 when some failed, else 0. A failed clip never stops a
stage; this code is how a script (or an array job) learns that some did."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from pipeline.core.ledger import Ledger

EXIT_DONE, EXIT_FAILED, EXIT_PENDING = 0, 1, 4


def exit_code_for(counts: Iterable[Mapping[str, int]]) -> int:
    """`counts`: one {'pending': n, 'failed': n, ...} per ledger (or stage total)."""
    counts = list(counts)
    if any(c.get("pending", 0) for c in counts):
        return EXIT_PENDING
    return EXIT_FAILED if any(c.get("failed", 0) for c in counts) else EXIT_DONE


def ledger_counts(paths: Iterable[Path]) -> list[dict[str, int]]:
    """The counts of each ledger, opened read-only (a ledger never written counts nothing)."""
    out = []
    for path in paths:
        if Path(path).is_file():
            with Ledger(path, read_only=True) as ledger:
                out.append(ledger.counts())
    return out
