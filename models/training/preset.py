"""What a training preset is: the original papers' training recipe for one (task, model) as
data, and how a config's `train.overrides` change it. Which presets exist is
`models.training.presets`.

Family-specific knobs go in `options` (a free dict the family reads), so this dataclass
stays stable.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

TASKS = ("ave-fully", "ave-weakly", "vggsound-avel-fully", "vggsound-avel-weakly")


@dataclass(frozen=True)
class Preset:
    """Everything the generic trainer needs to reproduce one original training run."""

    task: str
    model: str
    family: str  # trainer family name (see models.training.trainer.FAMILIES)
    arch: str  # models.registry name of the network
    epochs: int
    batch_size: int
    lr: float
    eval_batch_size: int | None = None  # None = batch_size
    optimizer: Literal["adam", "sgd"] = "adam"
    weight_decay: float = 0.0
    milestones: tuple[int, ...] = ()
    gamma: float = 1.0
    clip_grad: float | None = None  # max total grad norm before every step; None = off
    seed: int = 123
    precision: Literal["float32", "float64"] = "float32"
    deterministic: bool = True
    drop_last: bool = False
    eval_every: int = 1  # validate when (epoch + 1) % eval_every == 0 (and at the end)
    eval_first_at: int = 0  # skip validation before this epoch (PSP repo: from epoch 5)
    select_on: Literal["val", "test"] = "val"
    threshold: float | None = None  # PSP pruning threshold
    num_classes: int | None = None  # foreground classes; None = from the data
    options: dict[str, Any] = field(default_factory=dict)  # family-specific (λ, margins, ...)
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        return d


def with_overrides(preset: Preset, overrides: dict[str, Any]) -> Preset:
    """A copy with fields replaced; unknown top-level keys go to `options` only if the
    preset's options already have them, else ValueError naming the key."""
    fields = {f.name: f for f in dataclasses.fields(Preset)}
    top: dict[str, Any] = {}
    opts = dict(preset.options)
    for key, value in overrides.items():
        if key in ("task", "model", "family"):
            raise ValueError(f"train.overrides.{key}: choose it with --task/--model instead")
        if key in fields:
            if key == "milestones" and value is not None:
                value = tuple(int(v) for v in value)
            if key == "options":
                opts.update(value or {})
                continue
            top[key] = _same_kind(key, getattr(preset, key), value)
        elif key in opts:
            opts[key] = _same_kind(key, opts[key], value)
        else:
            known = sorted(set(fields) | set(opts))
            raise ValueError(f"train.overrides.{key}: unknown setting; known: {', '.join(known)}")
    return dataclasses.replace(preset, options=opts, **top)


def _same_kind(key: str, old: Any, new: Any) -> Any:
    """`new` when it is the kind of value `old` is (a number for a number, text for text, a
    flag for a flag), so `--set lr=abc` fails here and not inside the optimiser."""
    if old is None or new is None:
        return new
    number = (int, float)
    if isinstance(old, number) and not isinstance(old, bool) and isinstance(new, str):
        try:  # YAML reads 5e-4 (no dot) as text
            new = float(new)
        except ValueError:
            pass
    if isinstance(old, bool) or isinstance(new, bool):
        ok = isinstance(old, bool) == isinstance(new, bool)
    elif isinstance(old, number):
        ok = isinstance(new, number) and (isinstance(new, float) <= isinstance(old, float)
                                          or float(new).is_integer())
        new = type(old)(new) if ok else new
    elif isinstance(old, str):
        ok = isinstance(new, str)
    elif isinstance(old, (list, tuple)):
        ok = isinstance(new, (list, tuple))
    else:
        ok = True
    if not ok:
        raise ValueError(f"train.overrides.{key}: {new!r} is not a {type(old).__name__} "
                         f"like the preset's {old!r}")
    return new
