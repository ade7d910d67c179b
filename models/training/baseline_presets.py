"""The baselines' presets for the generic trainer (`avel train --model NAME
--task ave-fully|ave-weakly|ave-cmm`), converted from `models.training.baseline_hparams` so both
training paths share one set of numbers.

What the generic trainer cannot express, and how it is approximated (the standalone
`models.training.baseline_fit` loop follows the original exactly):
- ECCV18's per-iteration StepLR(15000) becomes an epoch milestone at the epoch in which
  iteration 15000 falls (lr drops a few dozen iterations later);
- ECCV18 trains in a fixed order; the trainer reshuffles every epoch;
- W-A+V-att / CMBS-weak's 178 background-only videos are used only if the data has them;
- select_on "last" (W-A+V-att's accidental rule, CMM) becomes "val";
- CMM trains on all 10 segment pairs of one video per step (original: 8 shuffled pairs)."""

from __future__ import annotations

from models.training import baseline_hparams
from models.training.baseline_hparams import BaselinePreset
from models.training.preset import Preset

ITERS_PER_EPOCH = {"ave-fully": 3339 // 64, "ave-weakly": (3339 + 178) // 64}


def to_trainer_preset(bp: BaselinePreset) -> Preset:
    s = bp.schedule
    if s.kind == "step" and s.per == "iteration":
        # the update at 0-based iteration step_size - 1 is the first with the decayed lr
        per_epoch = ITERS_PER_EPOCH.get(bp.task, 52)
        milestones, gamma = ((s.step_size - 1) // per_epoch + 1,), s.gamma
    elif s.kind == "multistep":
        milestones, gamma = tuple(s.milestones), s.gamma
    else:
        milestones, gamma = (), 1.0
    options = {"objective": bp.objective, "model_kwargs": dict(bp.model_kwargs), **bp.options,
               "eval_shift": 0, "original_select_on": bp.original_select_on,
               "extra_background_videos": bp.extra_background_videos}
    if bp.task == "ave-cmm":
        batch_size, family = 1, "baseline-cmm"
    else:
        batch_size, family = bp.batch_size, "baseline"
    return Preset(task=bp.task, model=bp.model, family=family, arch=bp.model, epochs=bp.epochs,
                  batch_size=batch_size, lr=bp.lr, eval_batch_size=bp.eval_batch_size,
                  weight_decay=bp.weight_decay, milestones=milestones, gamma=gamma,
                  clip_grad=bp.clip_grad_norm, seed=bp.seed, precision=bp.dtype,
                  drop_last=bp.drop_last, eval_every=bp.eval_every,
                  select_on="val" if bp.select_on == "last" else bp.select_on,
                  options=options, notes=f"{bp.source}; see models/training/baseline_presets.py")


PRESETS: tuple[Preset, ...] = tuple(to_trainer_preset(bp) for bp in baseline_hparams.PRESETS.values())

