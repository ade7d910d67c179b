"""Each baseline's original hyperparameters as data, keyed by (model, task).

Where an original selects its checkpoint on the test split, or keeps a model by accident,
`select_on` defaults to "val" and `original_select_on` records what the original did so a
user can reproduce it with `select_on=<that>` (see specs/baselines.md, quirks)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from models.baselines.cmbs import MAIN_CONFIG, WEAK_CONFIG


@dataclass(frozen=True)
class Schedule:
    kind: Literal["step", "multistep", "none"] = "none"
    step_size: int = 0  # "step": StepLR step_size, counted in `per` units
    milestones: tuple[int, ...] = ()
    gamma: float = 1.0
    per: Literal["iteration", "epoch"] = "epoch"


@dataclass(frozen=True)
class BaselinePreset:
    model: str
    task: str  # ave-fully | ave-weakly | ave-cmm
    objective: str  # key of objectives.OBJECTIVES
    source: str  # where the numbers come from
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    lr: float = 1e-3
    weight_decay: float = 0.0
    epochs: int = 45
    batch_size: int = 64
    eval_batch_size: int = 64
    schedule: Schedule = Schedule()
    clip_grad_norm: float | None = None
    dtype: Literal["float32", "float64"] = "float32"
    seed: int = 0
    shuffle: bool = True
    drop_last: bool = False
    eval_every: int = 1  # evaluate after epoch e (0-based) when e % eval_every == 0
    select_on: Literal["val", "test", "last"] = "val"
    original_select_on: Literal["val", "test", "last"] = "val"
    extra_background_videos: bool = False  # append the 178 background-only videos to train
    options: dict[str, Any] = field(default_factory=dict)  # objective options (quirk switches)

    def with_overrides(self, overrides: dict[str, Any]) -> BaselinePreset:
        known = set(self.__dataclass_fields__)
        bad = sorted(set(overrides) - known)
        if bad:
            raise ValueError(f"unknown preset field(s) {bad}; known: {sorted(known)}")
        return replace(self, **overrides)


_ECCV18_FULLY = dict(
    objective="eccv18-fully", source="AVE-ECCV18 supervised_main.py", lr=1e-3, epochs=300,
    batch_size=64, eval_batch_size=402, seed=3344, shuffle=False, drop_last=True, eval_every=5,
    schedule=Schedule("step", step_size=15000, gamma=0.1, per="iteration"))

_CPSP_FULLY = dict(
    objective="cpsp-fully", source="CPSP run_fully_supv.sh / fully_supv_main.py", lr=1e-3,
    epochs=45, batch_size=64, eval_batch_size=64, clip_grad_norm=0.1, dtype="float64", seed=123,
    schedule=Schedule("multistep", milestones=(10, 20, 30), gamma=0.5))

_CPSP_WEAKLY = dict(
    objective="cpsp-weakly", source="CPSP run_weakly_supv.sh / weakly_supv_main.py", lr=1e-3,
    epochs=45, batch_size=64, eval_batch_size=64, clip_grad_norm=0.1, dtype="float64", seed=123,
    schedule=Schedule("multistep", milestones=(5, 20, 40), gamma=0.5))

PRESETS: dict[tuple[str, str], BaselinePreset] = {}


def _add(model: str, task: str, **kw: Any) -> None:
    PRESETS[(model, task)] = BaselinePreset(model=model, task=task, **kw)


_add("av_att", "ave-fully", **_ECCV18_FULLY)
_add("dmrn", "ave-fully", **_ECCV18_FULLY)
_add("av_att_weak", "ave-weakly", **{
    **_ECCV18_FULLY, "objective": "eccv18-weakly", "source": "AVE-ECCV18 weak_supervised_main.py",
    "epochs": 250, "extra_background_videos": True,
    # best_val_acc is never updated there, so the kept model is the last evaluated one
    "original_select_on": "last"})
for _name in ("avel", "avsdn", "cmran"):
    _add(_name, "ave-fully", model_kwargs={"flag": "fully"}, **_CPSP_FULLY)
    _add(_name, "ave-weakly", model_kwargs={"flag": "weakly"}, **_CPSP_WEAKLY)
_add("cmbs", "ave-fully", objective="cmbs-fully", source="CMBS supv_train.sh / configs/main.json",
     model_kwargs={"flag": "fully", "config": dict(MAIN_CONFIG)}, lr=7e-4, epochs=200, batch_size=64,
     eval_batch_size=16, clip_grad_norm=0.5, dtype="float64", seed=43,
     schedule=Schedule("multistep", milestones=(10, 20, 30), gamma=0.5), original_select_on="test")
_add("cmbs", "ave-weakly", objective="cmbs-weakly", source="CMBS weakly_train.sh / configs/weak.json",
     model_kwargs={"flag": "weakly", "config": dict(WEAK_CONFIG)}, lr=6e-4, epochs=200, batch_size=64,
     eval_batch_size=16, clip_grad_norm=0.5, dtype="float64", seed=666, extra_background_videos=True,
     schedule=Schedule("multistep", milestones=(10, 20, 40), gamma=0.5), original_select_on="test",
     options={"cmbs_weak_double_sigmoid": False})
_add("cmm", "ave-cmm", objective="cmm", source="AVE-ECCV18 cmm_train.py (Keras)", lr=1e-3, epochs=20,
     batch_size=8, eval_batch_size=402, seed=3344, select_on="last", original_select_on="last",
     options={"margin": 2.0})


def get_baseline_hparams(task: str, model: str, overrides: dict[str, Any] | None = None) -> BaselinePreset:
    """The standalone `baseline_fit` recipe (the trainer's presets are `presets.get_preset`)."""
    if (model, task) not in PRESETS:
        known = ", ".join(f"{m}/{t}" for m, t in sorted(PRESETS))
        raise KeyError(f"no baseline preset for model {model!r} task {task!r}; known: {known}")
    return PRESETS[(model, task)].with_overrides(overrides or {})
