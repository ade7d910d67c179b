"""`avel compare`: the accuracy of several training runs side by side, as a text table and a
PNG bar chart. Reads each run directory's `metrics.json`, whichever trainer wrote it (the
generic trainer's {preset, best, test} or the baselines' standalone loop's flat keys)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from models.metrics.eval_report import save_png
from pipeline.core.errors import InputError

METRICS = (("val_accuracy", "val acc"), ("test_accuracy", "test acc"),
           ("test_a2v", "A2V"), ("test_v2a", "V2A"))


@dataclass
class RunSummary:
    run: str
    model: str
    task: str
    values: dict[str, float] = field(default_factory=dict)
    best_epoch: int | None = None


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def read_run(run_dir: str | Path) -> RunSummary:
    run_dir = Path(run_dir)
    path = run_dir / "metrics.json" if run_dir.is_dir() else run_dir
    if not path.is_file():
        raise InputError(f"no metrics.json in {run_dir} (train the run first)", file=path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc}", file=path, line=exc.lineno) from None
    if not isinstance(doc, dict):
        raise InputError("metrics.json must hold an object", file=path)
    preset = doc.get("preset") or {}
    values: dict[str, float] = {}
    for key, _ in METRICS:  # flat keys (standalone baseline loop)
        if _num(doc.get(key)) is not None:
            values[key] = _num(doc[key])
    test = doc.get("test") if isinstance(doc.get("test"), dict) else {}
    for key, val in test.items():  # generic trainer: {"test": {"accuracy": .., "a2v": ..}}
        if _num(val) is not None:
            values.setdefault(f"test_{key}", _num(val))
    best = doc.get("best") if isinstance(doc.get("best"), dict) else {}
    if best.get("epoch") is not None:
        for row in doc.get("history", []):
            if row.get("epoch") == best["epoch"]:
                for key, val in row.items():
                    if key.startswith("val_") and _num(val) is not None:
                        values.setdefault(key, _num(val))
    if not any(k in values for k, _ in METRICS):
        raise InputError("metrics.json has no test/val accuracy (was training finished?)", file=path)
    name = run_dir.name if run_dir.is_dir() else run_dir.parent.name
    return RunSummary(name, str(doc.get("model") or preset.get("model") or "?"),
                      str(doc.get("task") or preset.get("task") or "?"), values,
                      doc.get("best_epoch", best.get("epoch")))


def columns(runs: list[RunSummary]) -> list[tuple[str, str]]:
    return [(k, label) for k, label in METRICS if any(k in r.values for r in runs)]


def format_table(runs: list[RunSummary]) -> str:
    cols = columns(runs)
    header = ["run", "model", "task", *[label for _, label in cols], "best epoch"]
    rows = [[r.run, r.model, r.task, *[f"{r.values[k]:.2f}" if k in r.values else "-" for k, _ in cols],
             "-" if r.best_epoch is None else str(r.best_epoch)] for r in runs]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(header), line(["-" * w for w in widths]), *[line(r) for r in rows]])


def plot_bars(runs: list[RunSummary], out: str | Path, title: str = "accuracy by run") -> Path:
    """Grouped bars, one group per run, one bar per metric present; written atomically."""
    out = Path(out)
    cols = columns(runs)
    width = 0.8 / max(len(cols), 1)
    fig = Figure(figsize=(max(6, 1.2 * len(runs) + 2), 4))  # no pyplot: no global backend state
    ax = fig.subplots()
    for j, (key, label) in enumerate(cols):
        xs = [i + (j - (len(cols) - 1) / 2) * width for i, r in enumerate(runs) if key in r.values]
        ys = [r.values[key] for r in runs if key in r.values]
        bars = ax.bar(xs, ys, width, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(range(len(runs)))
    ax.set_xticklabels([r.run for r in runs], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(fontsize=8)
    out.parent.mkdir(parents=True, exist_ok=True)
    return save_png(fig, out, dpi=100)


def compare(run_dirs: list[str | Path], png: str | Path) -> tuple[str, Path]:
    if not run_dirs:
        raise InputError("give at least one run directory (--runs DIR ...)", field="runs")
    runs = [read_run(d) for d in run_dirs]
    return format_table(runs), plot_bars(runs, png)
