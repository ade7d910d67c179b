"""The train / eval stage: features from the store + labels from the manifest → the generic
trainer (models.training.trainer) with a task preset (models.training.presets), outputs under
`<workdir>/train/<task>__<model>/`.

Labels: AVE-style manifests (ave and the synthetic demo) give per-second one-hot labels
[N,10,C+1] from `category`, `event_start`, `event_end` (background last) through
`pipeline.datasets.labels`; the classes are the official 28 for AVE, else the manifest's categories
in order of first appearance, so `num_classes` comes from the data. Splits come from the
manifest's `split` column. Features: `features/<audio>` and `features/<visual>` of the store
(vggish + vgg19 by default; `train.overrides: {options: {visual_features: NAME}}`).
VGGSound-AVEL manifests give [N,10,C+1] from `class_id` and the per-second `avc` labels
(as the CPSP loader does), with vggish + resnet_layer3 by default. The whole feature set is
loaded into memory, in the stores' dtype and shard by shard, when it fits in half the
available memory (`train.in_memory: auto`), else streamed per item from the shard files by
a worker-safe dataset (`train.num_workers` processes).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from models.metrics.eval_report import plot_timelines, write_per_class_table
from models.training.ave_data import (
    AVE_CLASSES,
    ArrayAVEDataset,
    VGGSoundAVELDataset,
    load_original_ave,
    numpy_collate,
)
from models.training.presets import get_preset, with_overrides
from models.training.trainer import Trainer, make_family
from pipeline.core import atomic
from pipeline.core.config import Config, load_config, resolve
from pipeline.core.errors import InputError
from pipeline.core.safe_hdf5 import open_checked
from pipeline.datasets.labels import avc_from_manifest, ave_classes, ave_segment_labels, vggsound_avel_labels
from pipeline.datasets.manifest import load_manifest
from pipeline.datasets.readers.vggsound_avel import categories_for
from pipeline.store import open_features
from pipeline.train.avvp import evaluate_avvp, train_avvp
from pipeline.train.runs import eval_dir, network_to_evaluate, run_dir, training_run

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


@dataclass
class TrainingData:
    datasets: dict[str, Dataset]
    num_classes: int
    class_names: list[str]  # foreground classes then "background"
    clip_ids: list[str]  # row index -> clip id (for reports)


def segment_labels(manifest: pd.DataFrame, classes: list[str] | None = None
                   ) -> tuple[np.ndarray, list[str]]:
    """[N,10,C+1] per-second one-hot from an AVE-style manifest, background last, and the
    class names -- the export stage's builders (pipeline.datasets.labels), so `avel train` and the
    exported right_labels.h5 agree."""
    for col in ("category", "event_start", "event_end"):
        if col not in manifest.columns:
            raise InputError(f"manifest has no column {col!r}; per-second labels need an "
                             "AVE-style dataset (category, event_start, event_end). For "
                             "VGGSound-AVEL set train.original_vggsound_avel to the released "
                             "feature/label files", field=col)
    names = list(classes) if classes is not None else ave_classes(manifest)
    return ave_segment_labels(manifest, names), names


def vggsound_avel_segment_labels(workdir: Path, config: Config, manifest: pd.DataFrame
                                 ) -> tuple[np.ndarray, list[str]]:
    """[N,10,C+1] as the CPSP loader's `_obtain_avel_label` builds them, from the manifest's
    class_id and per-second `avc` (read by `avel manifest` from the released label zips)."""
    if "avc" not in manifest.columns:
        raise InputError("the manifest has no per-second 'avc' labels; point "
                         "dataset.files.avc_labels at the released avc_label directory (per-video "
                         "zips) and run `avel manifest` again", field="dataset.files.avc_labels")
    files = {k: resolve(workdir, v) for k, v in config.dataset.files.items()}
    names = categories_for(workdir, manifest, files)
    return vggsound_avel_labels(manifest["class_id"].to_numpy(), avc_from_manifest(manifest),
                                len(names)), names


def default_visual(options: dict[str, Any]) -> str:
    """The visual store a preset reads: VGG-19 maps for AVE, the CPSP loader's ResNet
    layer-3 maps [10,1024,7,7] for VGGSound-AVEL."""
    return options.get("visual_features", "resnet_layer3" if options.get("dataset") == "vggsound"
                       else "vgg19")


class StoreDataset(Dataset):
    """Items streamed from the feature store: each worker process opens its own readers
    (h5py handles must not cross a fork), and a read is one row of one shard file (O(1)).
    Arrays keep the store's dtype (float16 stays float16: half the bytes from disk and
    through the worker queues); the trainer casts them on its device."""

    collate_fn = staticmethod(numpy_collate)

    def __init__(self, workdir: Path, audio_name: str, visual_name: str, clip_ids: list[str],
                 labels: np.ndarray, rows: np.ndarray) -> None:
        self.workdir, self.audio_name, self.visual_name = workdir, audio_name, visual_name
        self.clip_ids, self.labels, self.rows = clip_ids, labels, rows
        self._pid: int | None = None
        self._readers: tuple[Any, Any] | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if self._pid != os.getpid():
            self._readers = (open_features(self.workdir, self.audio_name),
                             open_features(self.workdir, self.visual_name))
            self._pid = os.getpid()
        assert self._readers is not None
        r = int(self.rows[i])
        cid = self.clip_ids[r]
        return {"audio": torch.from_numpy(np.asarray(self._readers[0][cid])),
                "video": torch.from_numpy(np.asarray(self._readers[1][cid])),
                "labels": torch.as_tensor(self.labels[r]), "index": torch.tensor(r)}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_pid": None, "_readers": None}


def available_memory() -> int | None:
    """Bytes the kernel can hand out now (MemAvailable: free plus reclaimable cache)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None


def in_memory_bytes(n: int, readers: list[Any]) -> int:
    """What holding `n` clips of every reader in memory costs, in the stores' own dtypes."""
    return n * sum(int(np.prod(r.shape)) * r.dtype.itemsize for r in readers)


def fits_in_memory(need: int, available: int | None) -> bool:
    """Half of what is available, so the model, the batches and the workers keep room."""
    return need < (available // 2 if available is not None else 2 << 30)


def load_training_data(workdir: str | Path, config: Config, audio_name: str = "vggish",
                       visual_name: str = "vgg19", classes: list[str] | None = None
                       ) -> TrainingData:
    """`classes`: the run's class list (see `run_classes`); None derives it from the manifest."""
    workdir = Path(workdir)
    if config.train.original_ave_dir:
        return _original_ave_data(workdir, config)
    if config.train.original_vggsound_avel:
        return _original_vggsound_avel_data(workdir, config)
    manifest = load_manifest(workdir).reset_index(drop=True)
    if config.dataset.name.startswith("vggsound-avel"):
        labels, classes = vggsound_avel_segment_labels(workdir, config, manifest)
    else:
        labels, classes = segment_labels(manifest, classes)
    try:
        audio_r, visual_r = open_features(workdir, audio_name), open_features(workdir, visual_name)
    except FileNotFoundError as exc:
        raise InputError(f"{exc}; run `avel extract` first", file=workdir / "features") from None
    with audio_r, visual_r:
        clip_ids = [str(c) for c in manifest["clip_id"]]
        have = [i for i, c in enumerate(clip_ids) if c in audio_r and c in visual_r]
        missing = len(manifest) - len(have)
        if missing:
            log.warning("%d of %d clips have no %s/%s features (failed or not extracted); "
                        "training without them", missing, len(manifest), audio_name, visual_name)
        if not have:
            raise InputError(f"no clip has both {audio_name} and {visual_name} features",
                             file=workdir / "features")
        mode = config.train.in_memory
        need = in_memory_bytes(len(have), [audio_r, visual_r])
        in_memory = mode == "always" or (mode == "auto" and fits_in_memory(need, available_memory()))
        log.info("training data: %d clips, %.1f GB in the stores' dtypes; %s", len(have),
                 need / 1e9, "in memory" if in_memory else "streamed from the store")
        split_col = manifest["split"].to_numpy()
        splits = {s: np.array([i for i in have if split_col[i] == s], dtype=np.int64)
                  for s in SPLITS}
        if in_memory:
            row_of = {c: i for i, c in enumerate(clip_ids)}
            audio = np.zeros((len(manifest), *audio_r.shape), dtype=audio_r.dtype)
            video = np.zeros((len(manifest), *visual_r.shape), dtype=visual_r.dtype)
            wanted = {clip_ids[i] for i in have}
            for target, reader in ((audio, audio_r), (video, visual_r)):
                for c, row in reader.iter_rows(wanted):  # shard by shard, sequential reads
                    target[row_of[c]] = row
            datasets: dict[str, Dataset] = {s: ArrayAVEDataset(audio, video, labels, idx)
                                            for s, idx in splits.items()}
        else:
            datasets = {s: StoreDataset(workdir, audio_name, visual_name, clip_ids, labels, idx)
                        for s, idx in splits.items()}
    for s in ("train", "val"):
        if len(splits[s]) == 0:
            raise InputError(f"the manifest has no '{s}' clip with features",
                             file=workdir / "manifest.parquet", field="split")
    return TrainingData(datasets, len(classes), classes + ["background"], clip_ids)


def _original_ave_data(workdir: Path, config: Config) -> TrainingData:
    """The released AVE feature files (as the original scripts read them)."""
    directory = Path(config.train.original_ave_dir or "")
    if not directory.is_absolute():
        directory = workdir / directory
    for path in sorted(directory.glob("*.h5")):  # no external storage, links or VDS
        open_checked(path, what="released AVE file").close()
    try:
        datasets, num_classes = load_original_ave(directory, config.train.in_memory != "never")
    except (FileNotFoundError, KeyError, OSError) as exc:
        raise InputError(str(exc), file=directory, field="train.original_ave_dir") from None
    n = max(int(ds.indices.max()) for ds in datasets.values() if len(ds)) + 1  # type: ignore[attr-defined]
    names = AVE_CLASSES if num_classes == len(AVE_CLASSES) else [f"class_{k}" for k in range(num_classes)]
    return TrainingData(datasets, num_classes, list(names) + ["background"], [str(i) for i in range(n)])


def _original_vggsound_avel_data(workdir: Path, config: Config) -> TrainingData:
    files = dict(config.train.original_vggsound_avel)
    need = ("meta", "categories", "audio_dir", "video_dir", "label_dir")
    missing = [k for k in need if k not in files]
    if missing:
        raise InputError(f"needs keys {', '.join(need)}; missing {', '.join(missing)}",
                         field="train.original_vggsound_avel")
    paths = {k: (workdir / v if not Path(v).is_absolute() else Path(v)) for k, v in files.items()}
    try:
        datasets = {s: VGGSoundAVELDataset(paths["meta"], paths["categories"], paths["audio_dir"],
                                           paths["video_dir"], paths["label_dir"], s) for s in SPLITS}
    except (OSError, ValueError) as exc:
        raise InputError(str(exc), field="train.original_vggsound_avel") from None
    train_ds = datasets["train"]
    names = sorted(train_ds.class_of, key=train_ds.class_of.__getitem__)
    ids = [v for s in SPLITS for v in datasets[s].video_ids]
    return TrainingData(datasets, train_ds.num_classes, names + ["background"], ids)


CLASSES_FILE = "classes.json"


def run_classes(path: Path) -> list[str] | None:
    """The class list a run was trained with, so class ids never move when manifest rows are
    dropped or reordered later (for custom category sets; AVE's official 28 never move)."""
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        names = doc["classes"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("'classes' is not a list of names")
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"not a class list ({exc})", file=path) from None
    return names


def save_classes(path: Path, data: TrainingData) -> None:
    names = [n for n in data.class_names if n != "background"]
    if run_classes(path) != names:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, json.dumps({"classes": names}, indent=1))


def resolve_preset(config: Config, task: str | None = None, model: str | None = None,
                   overrides: dict[str, Any] | None = None) -> Any:
    t, m = task or config.train.task, model or config.train.model
    try:
        preset = get_preset(t, m)
        from_config = dict(config.train.overrides)
        if config.train.seed is not None:
            from_config.setdefault("seed", config.train.seed)
        preset = with_overrides(preset, from_config)
    except (KeyError, ValueError) as exc:
        raise InputError(str(exc).strip('"'), file=Path("avel.yaml"), field="train") from None
    try:  # --set and --epochs: the message names the option, not avel.yaml
        return with_overrides(preset, overrides or {}, where="--set ")
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _trainer(workdir: Path, config: Config, preset: Any, data: TrainingData, device: str | None,
             progress: bool) -> Any:
    num_classes = preset.num_classes or data.num_classes
    family = make_family(preset, num_classes, data.class_names)
    return Trainer(family, preset, run_dir(workdir, preset.task, preset.model),
                   device=device or config.train.device, num_workers=config.train.num_workers,
                   progress=progress)


def train(workdir: str | Path, config: Config | None = None, *, task: str | None = None,
          model: str | None = None, overrides: dict[str, Any] | None = None,
          device: str | None = None, resume: bool = True, progress: bool = True) -> dict[str, Any]:
    """Train the preset on the workdir's features; returns {best, test, chance, run_dir}.

    One `avel train` per run directory at a time (`shard_lock` on the run's name); holding
    it, the run first removes the temp files a killed run left in its directory."""
    workdir = Path(workdir)
    config = config or load_config(workdir)
    preset = resolve_preset(config, task, model, overrides)
    with training_run(workdir, preset.task, preset.model) as run:
        for directory in (run, run / "checkpoints"):  # a killed run's temps (the Trainer's layout)
            atomic.remove_stale_temps(directory)
        if preset.family == "avvp":
            return train_avvp(workdir, config, preset, device, resume, progress)
        return _train_segments(workdir, config, preset, device, resume, progress)


def _train_segments(workdir: Path, config: Config, preset: Any, device: str | None, resume: bool,
                    progress: bool) -> dict[str, Any]:
    opts = preset.options
    classes_file = run_dir(workdir, preset.task, preset.model) / CLASSES_FILE
    data = load_training_data(workdir, config, opts.get("audio_features", "vggish"),
                              default_visual(opts), run_classes(classes_file))
    save_classes(classes_file, data)
    trainer = _trainer(workdir, config, preset, data, device, progress)
    test = data.datasets["test"] if len(data.datasets["test"]) else None
    result = trainer.fit(data.datasets["train"], data.datasets["val"], test, resume=resume)
    out = {"run_dir": str(trainer.out_dir), "best": result["best"], "task": preset.task,
           "model": preset.model, "num_classes": data.num_classes}
    if "test" in result:
        out["test_accuracy"] = result["test"]["accuracy"]
        out["chance_accuracy"] = result["test"]["chance"]
    return out


def evaluate(workdir: str | Path, config: Config | None = None, *, task: str | None = None,
             model: str | None = None, split: str = "test", checkpoint: str | Path | None = None,
             official_arch: str | None = None, trust_pickles: bool = False,
             device: str | None = None, n_timelines: int = 6,
             overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate the run's best checkpoint (or `checkpoint`, an official file when
    `official_arch` is given) on `split`; writes eval/<split>/{metrics.json, per_class.csv,
    timelines.png} in the run directory and returns the metrics and per-class rows."""
    workdir = Path(workdir)
    config = config or load_config(workdir)
    preset = resolve_preset(config, task, model, overrides)
    if preset.family == "avvp":
        return evaluate_avvp(workdir, config, preset, split, checkpoint, official_arch,
                             trust_pickles, device, n_timelines)
    opts = preset.options
    data = load_training_data(workdir, config, opts.get("audio_features", "vggish"),
                              default_visual(opts),
                              run_classes(run_dir(workdir, preset.task, preset.model) / CLASSES_FILE))
    if split not in data.datasets or not len(data.datasets[split]):
        raise InputError(f"no '{split}' clips with features", field="split")
    trainer = _trainer(workdir, config, preset, data, device, progress=False)
    net = network_to_evaluate(trainer, checkpoint, official_arch, trust_pickles)
    metrics, collected = trainer.evaluate(net, data.datasets[split])
    out_dir = eval_dir(trainer.out_dir, split, checkpoint, official_arch)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = write_per_class_table(collected["pred"], collected["target"], data.class_names,
                                 out_dir / "per_class.csv")
    own_ids = getattr(data.datasets[split], "video_ids", None)  # per-split ids (VGGSound-AVEL)
    names = [(own_ids or data.clip_ids)[int(i)] for i in collected["index"]]
    if plot_timelines(collected["pred"], collected["target"], names, data.class_names,
                      out_dir / "timelines.png", n=n_timelines, seed=preset.seed) is None:
        (out_dir / "timelines.png").unlink(missing_ok=True)  # an older run's would mislead
    # per clip, per second: the predicted class name ("background" included), for tools
    # such as the demo's preview video that draw predictions next to the footage
    predictions = {name: [data.class_names[int(p)] for p in np.asarray(pred).reshape(-1)]
                   for name, pred in zip(names, collected["pred"])}
    atomic.write_text(out_dir / "predictions.json", json.dumps(predictions, indent=1))
    doc = {"split": split, "metrics": metrics, "per_class": rows,
           "checkpoint": str(checkpoint or "best")}
    atomic.write_text(out_dir / "metrics.json", json.dumps(doc, indent=2, default=str))
    return {**doc, "out_dir": str(out_dir)}


def with_epochs(config: Config, epochs: int) -> Config:
    """A copy of `config` whose train overrides set `epochs` (demo and smoke runs)."""
    train_cfg = replace(config.train, overrides={**config.train.overrides, "epochs": epochs})
    return replace(config, train=train_cfg)
