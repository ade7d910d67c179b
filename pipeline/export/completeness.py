"""What an export could not write, decided before it writes anything.

An export whose format needs a file it cannot make (a feature store never extracted, a
label column the manifest lacks, the weakly setting's background videos) stops with exit 2
and the list, so a partial export never passes for a whole one; `--allow-missing` writes
the rest and lists the absent files in `missing.txt` and README.txt.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.core.errors import InputError


class IncompleteExport(InputError):
    """An export refused because the format needs files it cannot make (exit 2); `listing`
    says which and why, so a caller other than `avel export` can give its own advice."""

    def __init__(self, listing: str, out_dir: Path, advice: str) -> None:
        super().__init__(f"{listing}. Nothing was written; {advice}", file=out_dir)
        self.listing, self.out_dir = listing, out_dir


def refuse_if_absent(absent: dict[str, str], out_dir: Path, allow_missing: bool) -> None:
    """Raise (exit 2) naming every absent output and why, unless `allow_missing`."""
    if not absent or allow_missing:
        return
    by_reason: dict[str, list[str]] = {}
    for name, why in absent.items():
        by_reason.setdefault(why, []).append(name)
    listing = "; ".join(f"{', '.join(names)} ({why})" for why, names in by_reason.items())
    raise IncompleteExport(f"cannot write {len(absent)} file(s) the format needs: {listing}",
                           out_dir, "--allow-missing writes the rest")
