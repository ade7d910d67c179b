"""Hyperparameters of the original AVVP trainings, one preset per model (`--task avvp`).

HAN (main_avvp.py): Adam 3e-4, StepLR(10, 0.1), 40 epochs, batch 16, seed 1, eval on val
after every epoch with batch 1, keep the checkpoint whose segment-level Type@AV is >= the
best so far (later ties win); frame decisions gated by `global_prob >= 0.5`.

PSP/CPSP (CPSP repo, cpsp_avvp/main_avvp_psp.py, mode "retrain"): same optimiser and
schedule but 12 epochs and NO model selection — the last epoch's model is saved and
tested; frame decisions gated per modality (`a_prob`, `v_prob >= 0.5`). `select_best=True`
turns HAN-style selection on as a documented deviation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

SELECTION_METRIC = "segment_type_at_av"


@dataclass(frozen=True)
class AvvpPreset:
    model: str                                  # name in models.registry
    loss: Literal["han", "psp", "cpsp"]
    gate: Literal["global", "modality"]
    lr: float = 3e-4
    lr_step: int = 10
    lr_gamma: float = 0.1
    epochs: int = 40
    batch_size: int = 16
    eval_batch_size: int = 1
    seed: int = 1
    select_best: bool = True                    # keep the best val epoch (>=), else the last
    select_metric: str = SELECTION_METRIC
    model_kwargs: tuple[tuple[str, Any], ...] = ()

    def with_overrides(self, overrides: dict[str, Any]) -> AvvpPreset:
        known = set(self.__dataclass_fields__)
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown avvp hyperparameter(s) {unknown}; known: {sorted(known)}")
        return replace(self, **overrides)


PRESETS: dict[str, AvvpPreset] = {
    "han": AvvpPreset(model="han", loss="han", gate="global"),
    "psp": AvvpPreset(model="psp_avvp", loss="psp", gate="modality", epochs=12,
                      select_best=False, model_kwargs=(("threshold", 0.090),)),
    "cpsp": AvvpPreset(model="cpsp_avvp", loss="cpsp", gate="modality", epochs=12,
                       select_best=False, model_kwargs=(("threshold", 0.090),)),
}


def avvp_preset(model: str, overrides: dict[str, Any] | None = None) -> AvvpPreset:
    """Preset for `--task avvp --model han|psp|cpsp`, with optional overrides by field name."""
    if model not in PRESETS:
        raise ValueError(f"task avvp has no model {model!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[model].with_overrides(overrides or {})
