"""`avel demo`: the whole pipeline on a generated dataset, offline, on CPU, in minutes.

It renders a mini AVE-format dataset, serves it on 127.0.0.1 so yt-dlp really downloads
it, then manifest → download → cut → extract (VGGish + VGG-19 with RANDOM weights, so
the features are for exercising the pipeline, not for research) → train CPSP and one
baseline → evaluate, and writes the plots and a preview video a person can look at.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.core import atomic
from pipeline.core.config import load_config, portable
from pipeline.core.errors import InputError
from pipeline.core.sharding import Shard
from pipeline.core.workdir import Workdir
from pipeline.cut.stage import run_cut
from pipeline.datasets.manifest import build_manifest
from pipeline.demo.loopback_server import serve
from pipeline.demo.preview_video import write_preview
from pipeline.demo.synthetic import CLASSES, plan, write_dataset
from pipeline.download.stage import run_download
from pipeline.extract.stage import run_extract
from pipeline.train.stage import evaluate, train

log = logging.getLogger(__name__)


@dataclass
class DemoSize:
    clips: int = 40
    classes: int = 4
    epochs: int = 30
    baseline: str = "av_att"
    frames_per_second: int = 1  # VGG-19 on 2 CPU cores: 16 frames/s would take an hour


def demo_config(source: Path, url: str, size: DemoSize) -> dict[str, Any]:
    """`source` as the config should name it (relative to the work directory)."""
    fps = size.frames_per_second
    return {
        "dataset": {"name": "ave", "source": "url", "url_template": url + "/{video_id}.mp4",
                    "files": {"annotations": (source / "Annotations.txt").as_posix(),
                              "orders_dir": source.as_posix()}},
        "download": {"mode": "full", "workers": 2, "requests_per_s": 50.0},
        "cut": {"audio_recipe": "ave", "frames_recipe": f"uniform-{fps}", "workers": 2},
        "extract": {"extractors": ["vggish", "vgg19"], "device": "cpu", "num_workers": 1,
                    "batch_size": 16, "weights": {"vggish": "random", "vgg19": "random"},
                    "options": {"vgg19": {"frames_per_segment": fps}}},
        "train": {"task": "ave-fully", "model": "cpsp", "device": "cpu",
                  "overrides": {"epochs": size.epochs}},
    }


MIN_CLIPS_PER_CLASS = 4  # train/val/test clips of every class (synthetic.split_counts)


def check_size(size: DemoSize) -> None:
    """Refuse a size whose split would leave a split without clips, before anything is
    written (`--classes` must also name generated classes)."""
    if not 1 <= size.classes <= len(CLASSES):
        raise InputError(f"--classes {size.classes}: the demo has 1..{len(CLASSES)} classes",
                         field="classes")
    if size.clips < MIN_CLIPS_PER_CLASS * size.classes:
        raise InputError(f"--clips {size.clips}: the demo needs at least {MIN_CLIPS_PER_CLASS} "
                         f"clips per class ({MIN_CLIPS_PER_CLASS * size.classes} for "
                         f"{size.classes} classes)", field="clips")
    if size.epochs < 1:
        raise InputError(f"--epochs {size.epochs}: at least 1", field="epochs")


def demo_batch_size(size: DemoSize) -> int:
    """The baselines' original batch of 64 (with drop_last) is larger than the demo's training
    split, so both models train with batches of 8, or of the whole split when it is smaller
    (`--clips 10 --classes 2` trains on 6 clips): a batch larger than it would drop them all."""
    n_train = sum(clip.split == "train" for clip in plan(size.clips, size.classes, seed=0))
    return min(8, n_train)


def run_demo(workdir: str | Path, size: DemoSize | None = None) -> dict[str, Any]:
    """Run every stage; returns the summary (also written to `summary.json`)."""
    size = size or DemoSize()
    check_size(size)
    wd = Workdir(workdir)
    wd.root.mkdir(parents=True, exist_ok=True)
    source = wd.root / "source"
    write_dataset(source, n_clips=size.clips, n_classes=size.classes, seed=0)
    shard = Shard(0, 1)
    with serve(source / "videos") as server:
        atomic.write_text(wd.config, "# written by `avel demo`\n"
                          + yaml.safe_dump(demo_config(Path(portable(wd.root, source)), server.url, size),
                                         sort_keys=False))
        config = load_config(wd.root)
        manifest = build_manifest(wd.root, config)
        downloaded = run_download(wd.root, config, shard, progress=False)
    cut = run_cut(wd.root, config, shard, progress=False)
    extracted = {name: run_extract(wd.root, name, shard, config, progress=False)
                 for name in config.extract.extractors}
    runs = {}
    overrides = {"epochs": size.epochs, "batch_size": demo_batch_size(size)}
    for model in ("cpsp", size.baseline):
        trained = train(wd.root, config, model=model, progress=False, overrides=overrides)
        evaluated = evaluate(wd.root, config, model=model)
        runs[model] = {"run_dir": trained["run_dir"], "test_accuracy": trained.get("test_accuracy"),
                       "chance_accuracy": trained.get("chance_accuracy"),
                       "eval_dir": evaluated["out_dir"]}
    preview = write_demo_preview(wd, runs["cpsp"]["eval_dir"], source)
    summary = {
        "workdir": str(wd.root), "clips": len(manifest),
        "downloaded": downloaded["done"], "cut": cut.done,
        "features": {n: e.get("rows") for n, e in extracted.items()},
        "weights": "random (demo only: not the released VGGish / VGG-19 weights)",
        "runs": runs, "preview": str(preview) if preview else None,
    }
    atomic.write_text(wd.root / "summary.json", json.dumps(summary, indent=2))
    return summary


def write_demo_preview(wd: Workdir, eval_dir: str, source: Path) -> Path | None:
    """Preview MP4 of the first test clip with ground truth and CPSP's prediction bars."""
    predictions_file = Path(eval_dir) / "predictions.json"
    if not predictions_file.is_file():
        log.warning("no predictions.json in %s; no preview video", eval_dir)
        return None
    predictions = json.loads(predictions_file.read_text())
    labels = json.loads((source / "labels.json").read_text())
    clip_id = sorted(predictions)[0]
    classes = labels["classes"]
    truth = labels["clips"][clip_id]["seconds"]
    pred = [classes.index(p) if p in classes else -1 for p in predictions[clip_id]]
    return write_preview(source / "videos" / f"{clip_id}.mp4", truth, pred,
                         wd.root / "preview.mp4")


def render_summary(summary: dict[str, Any]) -> str:
    lines = [f"avel demo: {summary['clips']} generated clips, features from {summary['weights']}",
             f"{'model':<10}{'test acc':>10}{'chance':>10}"]
    for model, r in summary["runs"].items():
        acc, chance = r["test_accuracy"], r["chance_accuracy"]
        lines.append(f"{model:<10}{acc:>10.3f}{chance:>10.3f}" if acc is not None
                     else f"{model:<10}{'-':>10}{'-':>10}")
    lines.append(f"outputs in {summary['workdir']}:")
    for model, r in summary["runs"].items():
        lines.append(f"  {model}: curves {r['run_dir']}/curves.png, timelines {r['eval_dir']}/timelines.png")
    if summary["preview"]:
        lines.append(f"  preview video: {summary['preview']}")
    return "\n".join(lines)
