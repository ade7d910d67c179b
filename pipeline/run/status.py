"""`avel status`: sums every ledger in a work directory per stage, shard and failure reason."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import h5py

from pipeline.core.errors import InputError, first_line, printable_path
from pipeline.core.ledger import Ledger
from pipeline.core.workdir import Workdir

STAGE_ORDER = ["download", "cut", "extract", "export", "train"]


def collect(workdir: str | Path) -> dict[str, Any]:
    """{stages: {stage: {done, pending, failed, reasons, shards: {name: counts}}}, features: {...}}"""
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
        for db in sorted(stage_dir.glob("*.sqlite")):
            try:
                with Ledger(db, read_only=True) as ledger:
                    counts = ledger.counts()
            except (InputError, OSError, sqlite3.DatabaseError) as exc:
                problems.append(f"{db}: unreadable ledger ({first_line(exc, 300)})")
                continue
            total["shards"][db.stem] = counts
            for key in ("done", "pending", "failed"):
                total[key] += counts[key]
            for reason, n in counts["reasons"].items():
                total["reasons"][reason] = total["reasons"].get(reason, 0) + n
        stages[stage_dir.name] = total
    features = feature_provenance(wd, problems)
    problems += unreadable_stores(wd)
    return {"workdir": str(wd.root), "stages": stages, "features": features, "problems": problems}


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
        out[ex_dir.name] = {"shards": shards, "rows": rows, "random_weights": random}
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
    for name, f in report["features"].items():
        flag = "  RANDOM WEIGHTS (not for research use)" if f["random_weights"] else ""
        lines.append(f"features/{name}: {f['rows']} clips in {f['shards']} shards{flag}")
    for problem in report.get("problems", []):
        lines.append(f"UNREADABLE {problem}")
    return "\n".join(lines)
