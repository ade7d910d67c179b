"""What a training preset is: the original papers' training recipe for one (task, model) as
data, and how a config's `train.overrides` change it. Which presets exist is
`models.training.presets`.

Family-specific knobs go in `options` (a free dict the family reads), so this dataclass
stays stable.
"""

from __future__ import annotations

import dataclasses
import math
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


def with_overrides(preset: Preset, overrides: dict[str, Any],
                   where: str = "train.overrides.") -> Preset:
    """A copy with fields replaced; unknown top-level keys go to `options` only if the
    preset's options already have them, else ValueError naming the key (`where` + key: the
    config's `train.overrides.` or the command line's `--set `)."""
    fields = {f.name: f for f in dataclasses.fields(Preset)}
    top: dict[str, Any] = {}
    opts = dict(preset.options)
    for key, value in overrides.items():
        name = f"{where}{_short(key)}"
        if key in ("task", "model", "family"):
            raise ValueError(f"{name}: choose it with --task/--model instead")
        if key in fields:
            if key == "milestones" and value is not None:
                if not isinstance(value, (list, tuple)) or not all(
                        isinstance(v, int) and not isinstance(v, bool) for v in value):
                    raise ValueError(f"{name}: {_short(value)} is not a list of epochs (integers)")
                value = tuple(value)
            if key == "options":
                if not isinstance(value, dict):
                    raise ValueError(f"{name}: {_short(value)} is not a mapping")
                opts.update({k: _finite(f"{name}.{k}", v) for k, v in value.items()})
                continue
            top[key] = _same_kind(name, getattr(preset, key), value)
        elif key in opts:
            opts[key] = _same_kind(name, opts[key], value)
        else:
            known = sorted(set(fields) | set(opts))
            raise ValueError(f"{name}: unknown setting; known: {', '.join(known)}")
    out = dataclasses.replace(preset, options=opts, **top)
    _check_ranges(out, where)
    return out


def _check_ranges(p: Preset, where: str) -> None:
    """Values the trainer cannot run with, refused by name before any work: no epochs, empty
    batches, a negative step size, evaluation every 0 epochs (a division by zero)."""
    bad = [(name, rule) for name, ok, rule in (
        ("epochs", p.epochs >= 1, ">= 1"),
        ("batch_size", p.batch_size >= 1, ">= 1"),
        ("eval_batch_size", p.eval_batch_size is None or p.eval_batch_size >= 1, ">= 1 or null"),
        ("lr", p.lr > 0, "> 0"),
        ("weight_decay", p.weight_decay >= 0, ">= 0"),
        ("gamma", p.gamma > 0, "> 0"),
        ("clip_grad", p.clip_grad is None or p.clip_grad > 0, "> 0 or null"),
        ("eval_every", p.eval_every >= 1, ">= 1"),
        ("eval_first_at", p.eval_first_at >= 0, ">= 0"),
        ("num_classes", p.num_classes is None or p.num_classes >= 1, ">= 1 or null"),
    ) if not ok]
    if bad:
        name, rule = bad[0]
        raise ValueError(f"{where}{name}: {_short(getattr(p, name))} must be {rule}")


def _short(value: Any, limit: int = 80) -> str:
    """`value` as a message quotes it: at most `limit` characters, then its length."""
    text = value if isinstance(value, str) and value.isidentifier() else repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} chars)"


def _finite(key: str, value: Any) -> Any:
    """`value`, unless it is a NaN or infinite number (YAML `.nan`, `1e309`): a NaN learning
    rate trains to NaN and a run would still exit 0."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{key}: {value} is not a finite number")
    if isinstance(value, (list, tuple)):
        for v in value:
            _finite(key, v)
    return value


def _same_kind(key: str, old: Any, new: Any) -> Any:
    """`new` when it is the kind of value `old` is (a number for a number, text for text, a
    flag for a flag), so `--set lr=abc` fails here and not inside the optimiser; never a NaN
    or infinite number. `key` is the setting as the message names it."""
    new = _finite(key, new)
    if old is None or new is None:
        return new
    number = (int, float)
    if isinstance(old, number) and not isinstance(old, bool) and isinstance(new, str):
        try:  # YAML reads 5e-4 (no dot) as text
            new = _finite(key, float(new))
        except (ValueError, OverflowError) as exc:
            if "finite" in str(exc):
                raise
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
        raise ValueError(f"{key}: {_short(new)} is not a {type(old).__name__} "
                         f"like the preset's {old!r}")
    return new
