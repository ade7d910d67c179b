"""The original AVVP training recipes as trainer presets: `--task avvp --model han|psp|cpsp`.

HAN (AVVP-ECCV20 main_avvp.py): Adam 3e-4, StepLR(10, 0.1) (= milestones 10/20/30 over 40
epochs), 40 epochs, batch 16, seed 1, evaluation on val after every epoch with batch 1,
best checkpoint by segment-level Type@AV; frame decisions gated by `global_prob >= 0.5`.

PSP / CPSP (CPSP repo cpsp_avvp/main_avvp_psp.py --mode retrain, run.sh): same optimiser
and schedule, 12 epochs, PSP threshold 0.090; CPSP adds the video contrastive term
(lambda 1.0, ratio 0.9, eta 0.2); frames gated per modality (`a_prob`, `v_prob >= 0.5`).

Deliberate differences, both from the generic trainer's selection rule:
- upstream HAN keeps a checkpoint when the score is >= the best (later ties win); the trainer
  keeps strictly better ones (earlier ties win). Only exact ties differ.
- upstream PSP/CPSP selects nothing (it saves and tests the last epoch); here best.pt is
  the best val epoch and checkpoints/last.pt is the upstream model.
"""

from __future__ import annotations

from models.training.preset import Preset

_COMMON = dict(task="avvp", family="avvp", batch_size=16, eval_batch_size=1, lr=3e-4,
               optimizer="adam", milestones=(10, 20, 30), gamma=0.1, seed=1, num_classes=25,
               select_on="val")
_VCON = {"lambda_v": 1.0, "vcon_ratio": 0.9, "vcon_eta": 0.2}
# original_dir: train/evaluate from the released layout instead of the workdir's store:
# `<dir>/AVVP_*.csv` + `<dir>/feats/{vggish,res152,r2plus1d_18}/<id>.npy` (`--set original_dir=...`).
_DATA = {"original_dir": None}

PRESETS: tuple[Preset, ...] = (
    Preset(
        model="han", arch="han", epochs=40,
        options={"loss": "han", "gate": "global", **_DATA},
        notes="AVVP-ECCV20 main_avvp.py (best val segment Type@AV)", **_COMMON),
    Preset(
        model="psp", arch="psp_avvp", epochs=12, threshold=0.090,
        options={"loss": "psp", "gate": "modality", **_VCON, **_DATA},
        notes="CPSP repo cpsp_avvp without --vcon_flag", **_COMMON),
    Preset(
        model="cpsp", arch="cpsp_avvp", epochs=12, threshold=0.090,
        options={"loss": "cpsp", "gate": "modality", **_VCON, **_DATA},
        notes="CPSP repo cpsp_avvp/run.sh (its missing line continuation would otherwise drop "
              "every flag)", **_COMMON),
)
