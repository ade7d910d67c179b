"""Task presets: the original papers' training recipes as data, one `Preset` per
(task, model). `avel train --task T --model M` starts from `get_preset(T, M)`; every field
can be overridden (`with_overrides`) from the config's `train.overrides`.

Each family's presets are a `PRESETS` tuple in its own module, listed once in
`PRESET_COLLECTIONS` below (the `models.registry` table shape) and imported on first lookup.
"""

from __future__ import annotations

from models.registry import LazyTable
from models.training.preset import TASKS, Preset, with_overrides

__all__ = ["PRESET_COLLECTIONS", "TASKS", "Preset", "get_preset", "preset_keys", "with_overrides"]

#: collection name → "module:PRESETS" (a tuple of Preset)
PRESET_COLLECTIONS = LazyTable("preset collection", {
    "psp": "models.training.psp_presets:PRESETS",  # PSP, CPSP, SSPSP on AVE and VGGSound-AVEL
    "baselines": "models.training.baseline_presets:PRESETS",  # AVE baselines (AV_att ... CMBS)
    "avvp": "models.training.avvp_presets:PRESETS",  # HAN, PSP/CPSP on LLP
})


def _all_presets() -> dict[tuple[str, str], Preset]:
    table: dict[tuple[str, str], Preset] = {}
    for name in PRESET_COLLECTIONS:
        for preset in PRESET_COLLECTIONS[name]:
            key = (preset.task, preset.model)
            if key in table:
                raise ValueError(f"preset {key} defined twice (second in collection {name!r})")
            table[key] = preset
    return table


def get_preset(task: str, model: str) -> Preset:
    presets = _all_presets()
    try:
        return presets[(task, model)]
    except KeyError:
        known = ", ".join(f"{t}/{m}" for t, m in sorted(presets))
        raise KeyError(f"no preset for task {task!r} with model {model!r}; known: {known}") from None


def preset_keys() -> list[tuple[str, str]]:
    return sorted(_all_presets())
