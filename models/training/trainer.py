"""The generic trainer every model family uses: seeds and determinism, device and precision,
optimiser/schedule/clipping from a `Preset`, resume from the last checkpoint, model selection,
`metrics.json`, TensorBoard scalars, `curves.png`, and on evaluation a per-class table and
localization timelines.

PLUG-IN CONTRACT (stable; other families depend on it)
------------------------------------------------------
A family is a class listed by name in `FAMILIES` below; a preset names it in
`Preset.family`. The trainer builds it as `FamilyCls(preset, num_classes, class_names)` and
calls only these methods:

    build_model() -> nn.Module
        the network (float32; the trainer moves it to the device/precision).
    loss(model, batch, epoch) -> (Tensor scalar, dict[str, float])
        training loss for one batch and its named parts (logged per epoch).
    predict(model, batch) -> dict[str, np.ndarray]
        per-video outputs for one eval batch (first axis = batch). For AVE-style segment
        localisation return at least "pred" and "target", int arrays [B, T] with
        background = num_classes; other keys are concatenated and passed to summarize.
    summarize(collected: dict[str, np.ndarray]) -> dict[str, float]
        split metrics from the concatenated predictions; must contain `selection_metric`.

and the attribute `selection_metric: str` (e.g. "accuracy"; higher is better).

A batch is whatever the family's dataset yields, collated by torch's default collate
(normally a dict of tensors); the trainer moves every tensor to the device and casts
floating tensors to the preset precision before calling the family. Datasets for AVE-style
features are in `models.training.ave_data`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import random
import sys
import tempfile
import time
import types
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn as nn
from matplotlib.figure import Figure
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from models.device import resolve_device
from models.metrics.eval_report import save_png
from models.registry import LazyTable
from models.training.preset import Preset

log = logging.getLogger(__name__)


class Family(Protocol):
    selection_metric: str

    def build_model(self) -> nn.Module: ...
    def loss(self, model: nn.Module, batch: Any, epoch: int) -> tuple[torch.Tensor, dict[str, float]]: ...
    def predict(self, model: nn.Module, batch: Any) -> dict[str, np.ndarray]: ...
    def summarize(self, collected: dict[str, np.ndarray]) -> dict[str, float]: ...


#: `Preset.family` → "module:Class" built as Class(preset, num_classes, class_names)
FAMILIES = LazyTable("trainer family", {
    "cpsp-fully": "models.training.psp_tasks:CPSPFullyFamily",
    "cpsp-weakly": "models.training.psp_tasks:CPSPWeaklyFamily",
    "psp-fully": "models.training.psp_tasks:PSPFullyFamily",
    "psp-weakly": "models.training.psp_tasks:PSPWeaklyFamily",
    "baseline": "models.training.baseline_families:BaselineFamily",
    "baseline-cmm": "models.training.baseline_families:CMMFamily",
    "avvp": "models.training.avvp_task:AvvpFamily",
})


def make_family(preset: Preset, num_classes: int, class_names: list[str] | None = None) -> Family:
    family_cls = FAMILIES[preset.family]
    names = class_names or [f"class_{k}" for k in range(num_classes)] + ["background"]
    return family_cls(preset, num_classes, names)


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """As the originals: random, numpy, torch (+cuda); cudnn deterministic when asked."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic


def to_device(batch: Any, device: torch.device, dtype: torch.dtype) -> Any:
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        return batch.to(dtype) if batch.is_floating_point() else batch
    if isinstance(batch, dict):
        return {k: to_device(v, device, dtype) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device, dtype) for v in batch)
    return batch


class RunError(ValueError):
    """A run that cannot go on for a reason its user can fix (the pipeline reports it as bad
    input, exit 2); the message opens with the file or folder at fault."""


class CheckpointError(RunError):
    """A checkpoint that cannot be trusted or read; the message names the file."""


class SettingsChanged(RunError):
    """Resuming would continue a run with settings other than those it was trained with, and
    record the new ones as if it had been trained with them."""


class Diverged(RunError):
    """The loss or the weights became NaN or infinite: the epoch is dropped, the checkpoints of
    the last finished epoch stay."""


#: preset fields a resumed run may change: more epochs trains the extra ones
RESUMABLE_CHANGES = ("epochs",)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} chars)"


def changed_settings(recorded: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """`key old -> new` for every preset field (and option) that differs, except the ones a
    resume may change."""
    out = []
    for key in sorted(set(recorded) | set(wanted)):
        if key in RESUMABLE_CHANGES:
            continue
        old, new = recorded.get(key), wanted.get(key)
        if key == "options" and isinstance(old, dict) and isinstance(new, dict):
            out += [f"options.{k} {_short(old.get(k))} -> {_short(new.get(k))}"
                    for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        elif old != new:
            out.append(f"{key} {_short(old)} -> {_short(new)}")
    return out


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """A trainer checkpoint read with `weights_only=True`: a planted `last.pt`/`best.pt` can hold
    tensors and plain containers only, never objects whose unpickling runs code."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        # torch's message opens with advice to load anyway; quote the line that says why
        first = next((ln for ln in lines if "Unsupported global" in ln), "")
        first = first[first.find("Unsupported"):].split(" was not")[0][:200]
        if "Unsupported global" not in str(exc):  # not a hostile pickle: just not a checkpoint
            why = next((ln for ln in lines if ln.startswith("Unsupported") or "load key" in ln),
                       "unpickling failed")
            raise CheckpointError(f"{path}: not a readable checkpoint ({why[:200]})") from None
        raise CheckpointError(f"{path}: refused, it holds Python objects beyond tensors and plain "
                              f"containers; loading them could run code ({first})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: "
                              f"{first})") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise CheckpointError(f"{path}: not an avel checkpoint (no 'model' state dict)")
    return state


def _numpy_rng_as_tensors() -> tuple:
    """numpy's RNG state with its key array as a tensor, so `weights_only` loading accepts it."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return (name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss),
            float(cached))


def _numpy_rng_from(state: tuple) -> tuple:
    name, keys, pos, has_gauss, cached = state
    return (name, np.asarray(keys, dtype=np.int64).astype(np.uint32), pos, has_gauss, cached)


# read once at import (setting it to read it is not thread-safe); models/ cannot use
# pipeline/core/atomic.py, which does the same
_UMASK = os.umask(0)
os.umask(_UMASK)


def _atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide checkpoints from a lab's group
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _atomic_text(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class Trainer:
    """Runs one preset for one family, writing everything under `out_dir`:
    checkpoints/last.pt (resume), checkpoints/best.pt (model selection), metrics.json,
    tb/ (TensorBoard), curves.png."""

    def __init__(self, family: Family, preset: Preset, out_dir: str | Path, device: str = "auto",
                 num_workers: int = 0, progress: bool = True) -> None:
        self.family = family
        self.preset = preset
        self.out_dir = Path(out_dir)
        self.device = resolve_device(device)
        self.dtype = torch.float64 if preset.precision == "float64" else torch.float32
        self.num_workers = num_workers
        self.progress = progress
        self.ckpt_dir = self.out_dir / "checkpoints"

    # ---- building blocks -------------------------------------------------------------
    def _model(self) -> nn.Module:
        return self.family.build_model().to(self.device, self.dtype)

    def _optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        p = self.preset
        if p.optimizer == "adam":
            return torch.optim.Adam(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
        return torch.optim.SGD(model.parameters(), lr=p.lr, weight_decay=p.weight_decay,
                               momentum=float(p.options.get("momentum", 0.9)))

    def _scheduler(self, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(self.preset.milestones),
                                                    gamma=self.preset.gamma)

    def loader(self, dataset: Dataset, train: bool, epoch: int = 0) -> DataLoader:
        bs = self.preset.batch_size if train else (self.preset.eval_batch_size or self.preset.batch_size)
        gen = torch.Generator()
        gen.manual_seed(self.preset.seed * 1000 + epoch)  # reshuffle per epoch, resume-exact
        return DataLoader(dataset, batch_size=bs, shuffle=train, drop_last=train and self.preset.drop_last,
                          num_workers=self.num_workers, generator=gen if train else None,
                          pin_memory=self.device.type == "cuda",
                          persistent_workers=False,
                          collate_fn=getattr(dataset, "collate_fn", None))  # a dataset's own batching

    def _should_eval(self, epoch: int) -> bool:
        p = self.preset
        if epoch == p.epochs - 1:
            return True
        shift = int(p.options.get("eval_shift", 1))
        return epoch >= p.eval_first_at and (epoch + shift) % p.eval_every == 0

    # ---- train -------------------------------------------------------------------------
    def fit(self, train: Dataset, val: Dataset | None, test: Dataset | None = None,
            resume: bool = True) -> dict[str, Any]:
        """Train for preset.epochs, selecting the best checkpoint on preset.select_on.
        Resumes from checkpoints/last.pt when present (and `resume`)."""
        p = self.preset
        seed_everything(p.seed, p.deterministic)
        model = self._model()
        opt = self._optimizer(model)
        sched = self._scheduler(opt)
        history: list[dict[str, Any]] = []
        best: dict[str, Any] = {"score": -math.inf, "epoch": None}
        start = 0
        last = self.ckpt_dir / "last.pt"
        if resume and last.is_file():
            history, best, start = self._resume(last, model, opt, sched)
            log.info("resumed from %s at epoch %d", last, start)
        select = {"val": val, "test": test}[p.select_on]
        if select is None:
            raise RunError(f"{self.out_dir}: model selection on {p.select_on!r} needs that split")
        writer = self._writer()
        for epoch in range(start, p.epochs):
            t0 = time.perf_counter()
            row = {"epoch": epoch, "lr": opt.param_groups[0]["lr"]}
            row.update(self.train_epoch(model, opt, train, epoch))
            if self._should_eval(epoch):
                for name, ds in (("val", val), ("test", test)):
                    if ds is not None:
                        metrics, _ = self.evaluate(model, ds)
                        row.update({f"{name}_{k}": v for k, v in metrics.items()})
                # a plain float: a numpy scalar would make best.pt unloadable with weights_only
                score = float(row[f"{p.select_on}_{self.family.selection_metric}"])
                if score > best["score"]:
                    best = {"score": score, "epoch": epoch,
                            "metric": f"{p.select_on}_{self.family.selection_metric}"}
                    _atomic_save({"model": model.state_dict(), "epoch": epoch, "preset": p.to_dict(),
                                  "score": score}, self.ckpt_dir / "best.pt")
            sched.step()
            row["seconds"] = time.perf_counter() - t0
            history.append(row)
            if writer is not None:
                for k, v in row.items():
                    if k != "epoch" and isinstance(v, (int, float)):
                        writer.add_scalar(k.replace("_", "/", 1), v, epoch)
                writer.flush()
            _atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                          "scheduler": sched.state_dict(), "epoch": epoch, "history": history,
                          "best": best, "preset": p.to_dict(),
                          "rng": {"python": random.getstate(), "numpy": _numpy_rng_as_tensors(),
                                  "torch": torch.get_rng_state()}}, last)
            self._write_metrics(history, best)
            log.info("epoch %d: %s", epoch, {k: (round(v, 4) if isinstance(v, float) else v)
                                              for k, v in row.items()})
        if writer is not None:
            writer.close()
        result = {"history": history, "best": best}
        if test is not None and (self.ckpt_dir / "best.pt").is_file():
            model.load_state_dict(load_checkpoint(self.ckpt_dir / "best.pt", self.device)["model"])
            result["test"], _ = self.evaluate(model, test)
        self._write_metrics(history, best, result.get("test"))
        self.plot_curves(history)
        return result

    def _resume(self, last: Path, model: nn.Module, opt: torch.optim.Optimizer,
                sched: torch.optim.lr_scheduler.LRScheduler) -> tuple[list, dict, int]:
        """(history, best, first epoch to train) from `last`, whose recorded settings must be
        this preset's (only `epochs` may grow): resuming with others would train on with the
        old ones (the optimiser's state carries its lr) while recording the new ones."""
        state = load_checkpoint(last, self.device)
        recorded = state.get("preset")
        if not isinstance(recorded, dict):
            raise CheckpointError(f"{last}: not a resumable checkpoint (no recorded 'preset')")
        changed = changed_settings(recorded, self.preset.to_dict())
        if changed:
            raise SettingsChanged(
                f"{last}: this run was trained with other settings (trained -> asked: "
                f"{'; '.join(changed)}); resuming would go on with the trained ones. Rerun with "
                "--no-resume to start it over with the new settings (its checkpoints are "
                "replaced; copy the run folder first to keep them), or drop the changes to go on")
        try:
            done = int(state["epoch"]) + 1
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            history, best = list(state["history"]), dict(state["best"])
            random.setstate(state["rng"]["python"])
            np.random.set_state(_numpy_rng_from(state["rng"]["numpy"]))
            torch.set_rng_state(state["rng"]["torch"])
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
            # load_state_dict's first line is only a heading; the key lists follow it
            reason = " ".join(ln.strip() for ln in str(exc).strip().splitlines()[:2])[:240]
            raise CheckpointError(f"{last}: does not match this run's model or is incomplete "
                                  f"({type(exc).__name__}: {reason}); rerun with --no-resume "
                                  "to start over") from None
        if done > self.preset.epochs:
            raise SettingsChanged(
                f"{last}: this run has trained {done} epochs, more than epochs="
                f"{self.preset.epochs}; nothing would be trained. Ask for {done} or more epochs "
                "to go on, or rerun with --no-resume to start over")
        return history, best, done

    def train_epoch(self, model: nn.Module, opt: torch.optim.Optimizer, dataset: Dataset,
                    epoch: int) -> dict[str, float]:
        model.train()
        totals: dict[str, float] = {}
        n = 0
        batches = self.loader(dataset, train=True, epoch=epoch)
        for step, batch in enumerate(_bar(batches, self.progress, f"epoch {epoch}")):
            batch = to_device(batch, self.device, self.dtype)
            loss, parts = self.family.loss(model, batch, epoch)
            if not bool(torch.isfinite(loss.detach())):
                raise self._diverged(f"the loss is {float(loss.detach())} at epoch {epoch}, "
                                     f"batch {step}", opt)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if self.preset.clip_grad is not None:
                nn.utils.clip_grad_norm_(model.parameters(), self.preset.clip_grad)
            opt.step()
            bs = _batch_size(batch)
            n += bs
            for k, v in {"loss": float(loss.detach()), **parts}.items():
                totals[k] = totals.get(k, 0.0) + float(v) * bs
        if n == 0:
            # drop_last with fewer clips than one batch: an epoch would silently train nothing
            raise RunError(f"{self.out_dir}: the training set ({len(dataset)} clips) is smaller "
                           f"than one batch (batch_size {self.preset.batch_size}, drop_last "
                           f"{self.preset.drop_last}): no optimisation step would run; lower "
                           f"batch_size (e.g. --set batch_size={max(1, len(dataset))})")
        if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
            raise self._diverged(f"the weights hold NaN or inf after epoch {epoch}", opt)
        return {f"train_{k}": v / n for k, v in totals.items()}

    def _diverged(self, what: str, opt: torch.optim.Optimizer) -> Diverged:
        """The error that stops a diverged run; the epoch's weights are not saved, so
        checkpoints/ keeps the last finished epoch."""
        kept = ("checkpoints/ keeps the last finished epoch (`avel eval` scores its best.pt)"
                if (self.ckpt_dir / "last.pt").is_file() else "no epoch finished, nothing saved")
        return Diverged(f"{self.out_dir}: training diverged: {what} (lr "
                        f"{opt.param_groups[0]['lr']:g}, precision {self.preset.precision}); "
                        f"{kept}. Lower lr (--set lr=...) or check the features, then rerun "
                        "with --no-resume")

    # ---- evaluate ----------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, model: nn.Module, dataset: Dataset) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """Metrics (from family.summarize) and the concatenated predictions."""
        model.eval()
        chunks: dict[str, list[np.ndarray]] = {}
        for batch in self.loader(dataset, train=False):
            out = self.family.predict(model, to_device(batch, self.device, self.dtype))
            for k, v in out.items():
                chunks.setdefault(k, []).append(np.asarray(v))
        collected = {k: np.concatenate(v, axis=0) for k, v in chunks.items()}
        return self.family.summarize(collected), collected

    def load_best(self) -> nn.Module:
        model = self._model()
        path = self.ckpt_dir / "best.pt"
        if not path.is_file():
            path = self.ckpt_dir / "last.pt"
        if not path.is_file():
            raise FileNotFoundError(f"no checkpoint in {self.ckpt_dir}; train first")
        model.load_state_dict(load_checkpoint(path, self.device)["model"])
        return model

    # ---- outputs -----------------------------------------------------------------------
    def _writer(self) -> Any:
        if "tensorflow" not in sys.modules:
            # TensorBoard imports all of TensorFlow (tens of seconds) when it is installed,
            # only to write event files; its documented `notf` switch selects the light stub.
            sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard comes with the tensorboard extra; train without it
            log.warning("tensorboard not installed; no TensorBoard scalars")
            return None
        return SummaryWriter(str(self.out_dir / "tb"))

    def _write_metrics(self, history: list[dict[str, Any]], best: dict[str, Any],
                       test: dict[str, float] | None = None) -> None:
        doc = {"preset": self.preset.to_dict(), "device": str(self.device), "history": history,
               "best": best}
        if test is not None:
            doc["test"] = test
        _atomic_text(json.dumps(doc, indent=2, default=_jsonable), self.out_dir / "metrics.json")

    def plot_curves(self, history: list[dict[str, Any]]) -> Path | None:
        if not history:
            return None
        fig = Figure(figsize=(10, 4))  # no pyplot: no global backend state
        ax1, ax2 = fig.subplots(1, 2)
        epochs = [r["epoch"] for r in history]
        ax1.plot(epochs, [r.get("train_loss", np.nan) for r in history], label="train loss")
        ax1.set_xlabel("epoch")
        ax1.set_ylabel("loss")
        ax1.legend()
        metric = self.family.selection_metric
        for split in ("train", "val", "test"):
            pts = [(r["epoch"], r[f"{split}_{metric}"]) for r in history if f"{split}_{metric}" in r]
            if pts:
                ax2.plot(*zip(*pts), marker="o", label=f"{split} {metric}")
        ax2.set_xlabel("epoch")
        ax2.set_ylabel(metric)
        ax2.legend()
        return save_png(fig, self.out_dir / "curves.png", dpi=100)


def _jsonable(x: Any) -> Any:
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return str(x)


def _batch_size(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    if isinstance(batch, dict):
        return _batch_size(next(iter(batch.values())))
    if isinstance(batch, (list, tuple)):
        return _batch_size(batch[0])
    return 1


def _bar(it: Iterable, enabled: bool, desc: str) -> Iterable:
    if not enabled:
        return it
    return tqdm(it, desc=desc, leave=False, disable=None)
