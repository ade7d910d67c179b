"""`avel train` / `avel eval` for `--task avvp` (HAN, PSP/CPSP on LLP).

The LLP manifest gives the weak labels (`labels`), the split and the dense events
(`audio_events`, `visual_events`); the feature store gives VGGish [10,128], ResNet-152
[80,2048] and R(2+1)D-18 [10,512] per clip (store names overridable with preset options
`audio_features`, `visual_2d_features`, `visual_3d_features`). Training runs the generic
trainer with the "avvp" family; evaluation prints the ten official numbers and writes them
to `<run>/eval/<split>/metrics.json` with per-class diagnostics, plus `timelines.png`.
With the preset option `original_dir` (`--set original_dir=DIR`) the data come from the
released layout instead (`DIR/AVVP_*.csv`, `DIR/feats/{vggish,res152,r2plus1d_18}/<id>.npy`).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from models.metrics.avvp import AvvpScorer, format_table, per_class
from models.metrics.avvp_report import plot_avvp_timelines
from models.training.avvp_data import CATEGORIES, manifest_splits, original_splits
from models.training.trainer import Trainer, make_family
from pipeline.core import atomic
from pipeline.core.config import Config
from pipeline.core.errors import InputError
from pipeline.datasets.manifest import load_manifest
from pipeline.store import FeatureReader, open_features
from pipeline.train.runs import eval_dir, network_to_evaluate, run_dir

log = logging.getLogger(__name__)
STORE_NAMES = {"audio_features": "vggish", "visual_2d_features": "resnet152",
               "visual_3d_features": "r2plus1d_18"}


class LazyFeatures:
    """clip_id → array from one store feature set, opened once per process (h5py handles
    must not cross a DataLoader fork) and picklable."""

    def __init__(self, workdir: Path, name: str) -> None:
        self.workdir, self.name = workdir, name
        self._pid: int | None = None
        self._reader: FeatureReader | None = None

    def _open(self) -> FeatureReader:
        if self._pid != os.getpid() or self._reader is None:
            try:
                self._reader = open_features(self.workdir, self.name)
            except FileNotFoundError as exc:
                raise InputError(f"{exc}; run `avel extract --extractor {self.name}` first",
                                 file=self.workdir / "features" / self.name) from None
            self._pid = os.getpid()
        return self._reader

    def __contains__(self, clip_id: object) -> bool:
        return clip_id in self._open()

    def __getitem__(self, clip_id: str) -> np.ndarray:
        return np.asarray(self._open()[clip_id], dtype=np.float32)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_pid": None, "_reader": None}


def load_original_data(workdir: Path, directory: str) -> dict[str, Any]:
    """The released layout (`AVVP_*.csv` + `feats/<kind>/<id>.npy`), e.g. the authors'
    features or `avel export --format llp` output; relative paths are from the workdir."""
    root = Path(directory)
    root = root if root.is_absolute() else workdir / root
    try:
        splits = original_splits(root)
    except (FileNotFoundError, ValueError) as exc:
        raise InputError(str(exc), file=root, field="train.overrides.original_dir") from None
    for split in ("train", "val"):
        if not len(splits[split]):
            raise InputError(f"no '{split}' clip has all three feature files under {root / 'feats'}",
                             file=root, field="train.overrides.original_dir")
    return splits


def load_avvp_data(workdir: Path, options: dict[str, Any]) -> dict[str, Any]:
    if options.get("original_dir"):
        return load_original_data(workdir, options["original_dir"])
    manifest = load_manifest(workdir).reset_index(drop=True)
    for column in ("labels", "split", "audio_events", "visual_events"):
        if column not in manifest.columns:
            raise InputError(f"manifest has no column {column!r}; task avvp needs an LLP manifest "
                             "(dataset.name: llp with eval_audio / eval_visual files)",
                             file=workdir / "manifest.parquet", field=column)
    readers = [LazyFeatures(workdir, options.get(k, v)) for k, v in STORE_NAMES.items()]
    try:
        splits = manifest_splits(manifest, *readers)
    except ValueError as exc:
        raise InputError(str(exc), file=workdir / "manifest.parquet", field="labels") from None
    for split in ("train", "val"):
        if not len(splits[split]):
            raise InputError(f"no '{split}' clip has all three AVVP features",
                             file=workdir / "features", field="split")
    return splits


def _trainer(workdir: Path, config: Config, preset: Any, device: str | None, progress: bool) -> Any:
    family = make_family(preset, len(CATEGORIES), list(CATEGORIES))
    return Trainer(family, preset, run_dir(workdir, preset.task, preset.model),
                   device=device or config.train.device, num_workers=config.train.num_workers,
                   progress=progress)


def train_avvp(workdir: Path, config: Config, preset: Any, device: str | None, resume: bool,
               progress: bool) -> dict[str, Any]:
    splits = load_avvp_data(workdir, preset.options)
    trainer = _trainer(workdir, config, preset, device, progress)
    test = splits["test"] if len(splits["test"]) else None
    result = trainer.fit(splits["train"], splits["val"], test, resume=resume)
    out = {"run_dir": str(trainer.out_dir), "best": result["best"], "task": preset.task,
           "model": preset.model, "num_classes": 25}
    if "test" in result:
        out["test_metrics"] = result["test"]
        out["test_table"] = format_table(result["test"])
    return out


def avvp_predictions(names: list[str], so_a: np.ndarray,
                     so_v: np.ndarray) -> dict[str, dict[str, list[list[str]]]]:
    """Per video and second, the event names the gated predictions switch on, for audio and
    for visual: what the ten numbers are computed from, readable by other tools."""
    def events(on: np.ndarray) -> list[list[str]]:  # [25, T] 0/1 → T lists of names
        return [[CATEGORIES[c] for c in np.flatnonzero(on[:, t])] for t in range(on.shape[1])]
    return {name: {"audio": events(np.asarray(a)), "visual": events(np.asarray(v))}
            for name, a, v in zip(names, so_a, so_v)}


def evaluate_avvp(workdir: Path, config: Config, preset: Any, split: str,
                  checkpoint: Path | None, official_arch: str | None, trust_pickles: bool,
                  device: str | None, n_timelines: int = 6) -> dict[str, Any]:
    splits = load_avvp_data(workdir, preset.options)
    if split not in splits or not len(splits[split]):
        raise InputError(f"no '{split}' clips with features", field="split")
    trainer = _trainer(workdir, config, preset, device, progress=False)
    net = network_to_evaluate(trainer, checkpoint, official_arch, trust_pickles)
    metrics, collected = trainer.evaluate(net, splits[split])
    scorer = AvvpScorer()
    for so_a, so_v, gt_a, gt_v in zip(collected["so_a"], collected["so_v"],
                                      collected["gt_a"], collected["gt_v"]):
        scorer.add(so_a, so_v, gt_a, gt_v)
    out_dir = eval_dir(trainer.out_dir, split, checkpoint, official_arch)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [str(splits[split].weak["filename"][int(i)]) for i in collected["index"]]
    if plot_avvp_timelines(collected["so_a"], collected["so_v"], collected["gt_a"],
                           collected["gt_v"], names, CATEGORIES, out_dir / "timelines.png",
                           n=n_timelines, seed=preset.seed) is None:
        (out_dir / "timelines.png").unlink(missing_ok=True)  # an older run's would mislead
    atomic.write_text(out_dir / "predictions.json",
                      json.dumps(avvp_predictions(names, collected["so_a"], collected["so_v"]),
                                 indent=1))
    doc = {"split": split, "videos": len(splits[split]), "metrics": metrics,
           "per_class_segment_f1": per_class(scorer, CATEGORIES),
           "checkpoint": str(checkpoint or "best")}
    atomic.write_text(out_dir / "metrics.json", json.dumps(doc, indent=2, default=str))
    return {**doc, "task": preset.task, "table": format_table(metrics), "out_dir": str(out_dir)}
