"""`avel status`: sums every ledger in a work directory per stage, shard and failure reason,
with each stage's recent pace and the time left at that pace, and for the download stage
what each identity (`download.identities`) did."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import h5py

from pipeline.core.errors import InputError, first_line, printable_path
from pipeline.core.ledger import Ledger
from pipeline.core.workdir import Workdir
from pipeline.download.identities import tally
from pipeline.store.features import index_staleness

STAGE_ORDER = ["download", "cut", "extract", "export", "train"]
# the pace is clips done per hour over this much time before the stage's last done clip:
# recent enough to follow a host that slowed down, long enough to hold many clips
PACE_WINDOW_S = 3600.0


def collect(workdir: str | Path) -> dict[str, Any]:
    """{stages: {stage: {done, pending, failed, reasons, shards: {name: counts}, pace,
    [identities]}}, features: {...}}"""
    if not Path(workdir).is_dir():  # a typo in -w must not read as an empty work directory
        raise InputError("no such directory", file=printable_path(workdir))
    wd = Workdir(workdir)
    stages: dict[str, Any] = {}
    problems: list[str] = []
    state = wd.root / "state"
    stage_dirs = sorted(state.iterdir()) if state.is_dir() else []
    stage_dirs.sort(key=lambda p: (STAGE_ORDER.index(p.name.split("-")[0])
                                   if p.name.split("-")[0] in STAGE_ORDER else 99, p.name))
    for stage_dir in stage_dirs:
        if not stage_dir.is_dir():
            continue
        total: dict[str, Any] = {"done": 0, "pending": 0, "failed": 0, "reasons": {}, "shards": {}}
        is_download = stage_dir.name == "download"
        identities: dict[str, dict[str, int]] = {}
        readable = []
        for db in sorted(stage_dir.glob("*.sqlite")):
            try:
                with Ledger(db, read_only=True) as ledger:
                    counts = ledger.counts()
                    if is_download:
                        for name, row in tally(ledger.entries()).items():
                            mine = identities.setdefault(name, dict.fromkeys(row, 0))
                            for key, n in row.items():
                                mine[key] += n
            except (InputError, OSError, sqlite3.DatabaseError) as exc:
                problems.append(f"{db}: unreadable ledger ({first_line(exc, 300)})")
                continue
            readable.append(db)
            total["shards"][db.stem] = counts
            for key in ("done", "pending", "failed"):
                total[key] += counts[key]
            for reason, n in counts["reasons"].items():
                total["reasons"][reason] = total["reasons"].get(reason, 0) + n
        total["pace"] = pace(readable, total["pending"])
        if identities:
            total["identities"] = dict(sorted(identities.items()))
        stages[stage_dir.name] = total
    features = feature_provenance(wd, problems)
    problems += unreadable_stores(wd)
    return {"workdir": str(wd.root), "stages": stages, "features": features, "problems": problems}


def pace(ledgers: list[Path], pending: int, window_s: float = PACE_WINDOW_S) -> dict[str, Any]:
    """Clips done per hour over the `window_s` before the last done clip of any shard, and
    the hours the `pending` clips take at that pace (None when fewer than two clips are done
    in the window: no interval to measure). n clips done at times t_1..t_n give n-1 intervals
    over t_n - t_1: a rate of (n-1)/(t_n - t_1); shards that run side by side add up, since
    their clips interleave in the same window."""
    last = None
    for db in ledgers:
        with Ledger(db, read_only=True) as ledger:
            _, _, t = ledger.done_span()
        if t is not None and (last is None or t > last):
            last = t
    out: dict[str, Any] = {"window_s": window_s, "clips_in_window": 0, "clips_per_hour": None,
                           "eta_hours": None}
    if last is None:
        return out
    n, first = 0, last
    for db in ledgers:
        with Ledger(db, read_only=True) as ledger:
            k, t0, _ = ledger.done_span(last - window_s)
        n += k
        if t0 is not None:
            first = min(first, t0)
    out["clips_in_window"] = n
    if n >= 2 and last > first:
        rate = (n - 1) / (last - first) * 3600.0
        out["clips_per_hour"] = round(rate, 3)
        out["eta_hours"] = round(pending / rate, 3)
    return out


def unreadable_stores(wd: Workdir) -> list[str]:
    """Clip shard files HDF5 cannot open (truncated, overwritten), each by name: the ledger may
    call their clips done, and the next `avel cut` requeues them."""
    out = []
    clips = wd.root / "clips"
    for path in sorted(clips.glob("*.h5")) if clips.is_dir() else []:
        try:
            with h5py.File(path, "r"):
                pass
        except OSError as exc:
            out.append(f"{path}: unreadable HDF5 file ({first_line(exc, 300)})")
    return out


def feature_provenance(wd: Workdir, problems: list[str] | None = None) -> dict[str, Any]:
    """Per extractor: shards, rows and whether any shard was made with random weights."""
    out: dict[str, Any] = {}
    root = wd.root / "features"
    if not root.is_dir():
        return out
    for ex_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        rows, shards, random = 0, 0, False
        for path in sorted(ex_dir.glob("*-of-*.h5")):
            try:
                with h5py.File(path, "r") as fh:
                    rows += int(fh["features"].shape[0]) if "features" in fh else 0
                    random |= str(fh.attrs.get("weights", "")) == "random"
                shards += 1
            except (OSError, KeyError) as exc:
                if problems is not None:
                    problems.append(f"{path}: unreadable features file ({first_line(exc, 300)})")
                continue
        out[ex_dir.name] = {"shards": shards, "rows": rows, "random_weights": random,
                            "index_stale": index_staleness(ex_dir)}
    return out


def render(report: dict[str, Any], verbose: bool = False) -> str:
    lines = [f"work directory: {report['workdir']}"]
    if not report["stages"]:
        lines.append("no stage has run yet")
    header = f"{'stage':<22}{'done':>8}{'failed':>8}{'pending':>9}  failures by reason"
    if report["stages"]:
        lines += [header, "-" * len(header)]
    for stage, t in report["stages"].items():
        reasons = ", ".join(f"{r}: {n}" for r, n in sorted(t["reasons"].items())) or "-"
        lines.append(f"{stage:<22}{t['done']:>8}{t['failed']:>8}{t['pending']:>9}  {reasons}")
        if verbose:
            for shard, c in t["shards"].items():
                rs = ", ".join(f"{r}: {n}" for r, n in sorted(c["reasons"].items())) or "-"
                lines.append(f"  {shard:<20}{c['done']:>8}{c['failed']:>8}{c['pending']:>9}  {rs}")
        p = t.get("pace") or {}
        if p.get("clips_per_hour") and t["pending"]:
            lines.append(f"  pace {p['clips_per_hour']:.1f} clips/h (last {p['window_s'] / 3600:g} h"
                         f" of work); {t['pending']} pending: ETA {_hours(p['eta_hours'])}")
        for name, row in t.get("identities", {}).items():
            lines.append(f"  identity {name}: done {row['done']}, failed {row['failed']},"
                         f" throttled {row['throttled']}")
    for name, f in report["features"].items():
        flag = "  RANDOM WEIGHTS (not for research use)" if f["random_weights"] else ""
        lines.append(f"features/{name}: {f['rows']} clips in {f['shards']} shards{flag}")
        if f.get("index_stale"):
            lines.append(f"STALE features/{name}/index.h5: {f['index_stale']}; rebuild it with "
                         f"`avel index -e {name}`")
    for problem in report.get("problems", []):
        lines.append(f"UNREADABLE {problem}")
    return "\n".join(lines)


def _hours(h: float) -> str:
    if h < 1:
        return f"{h * 60:.0f} min"
    if h < 48:
        return f"{h:.1f} h"
    return f"{h / 24:.1f} days"
