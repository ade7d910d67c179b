"""`avel status`: sums every ledger in a work directory per stage, shard and failure reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py

from pipeline.core.ledger import Ledger
from pipeline.core.workdir import Workdir

STAGE_ORDER = ["download", "cut", "extract", "export", "train"]


def collect(workdir: str | Path) -> dict[str, Any]:
    """{stages: {stage: {done, pending, failed, reasons, shards: {name: counts}}}, features: {...}}"""
    wd = Workdir(workdir)
    stages: dict[str, Any] = {}
    state = wd.root / "state"
    stage_dirs = sorted(state.iterdir()) if state.is_dir() else []
    stage_dirs.sort(key=lambda p: (STAGE_ORDER.index(p.name.split("-")[0])
                                   if p.name.split("-")[0] in STAGE_ORDER else 99, p.name))
    for stage_dir in stage_dirs:
        if not stage_dir.is_dir():
            continue
        total: dict[str, Any] = {"done": 0, "pending": 0, "failed": 0, "reasons": {}, "shards": {}}
        for db in sorted(stage_dir.glob("*.sqlite")):
            with Ledger(db) as ledger:
                counts = ledger.counts()
            total["shards"][db.stem] = counts
            for key in ("done", "pending", "failed"):
                total[key] += counts[key]
            for reason, n in counts["reasons"].items():
                total["reasons"][reason] = total["reasons"].get(reason, 0) + n
        stages[stage_dir.name] = total
    return {"workdir": str(wd.root), "stages": stages, "features": feature_provenance(wd)}


def feature_provenance(wd: Workdir) -> dict[str, Any]:
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
            except OSError:
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
    return "\n".join(lines)
