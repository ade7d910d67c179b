"""The PSP and CPSP training recipes (specs: psp_cpsp.md §2.3, §3.5-3.6) as presets.

CPSP repo (run_fully_supv.sh / run_weakly_supv.sh): Adam 1e-3 without weight decay, batch 64,
45 epochs, MultiStepLR γ 0.5 at [10,20,30] (fully) / [5,20,40] (weakly), grad-norm clip 0.1,
seed 123, selection on val every epoch. Losses: psp = AVPS only; cpsp = AVPS(λ100) +
PSA_s(λ0.01) + PSA_v(λ1, margin 0.2, 3 negatives) in fully, MIL + PSA_v(λ1, margin 0.6,
4 negatives) in weakly; sspsp = the label-free NCE (λ1, the run script's commented value).
PSP repo (model `psp-cvpr21`, AVE only): Adam 1e-3, batch 128 with the last partial batch
dropped, 300 epochs, lr ×0.8 after epochs 59/119 (fully) or 79/159 (weakly), no clipping,
evaluation every 5 epochs from epoch 5; its test-set selection is `select_on: test`.

Deliberate default: precision float32 (upstream CPSP runs float64: `precision: float64`).
"""

from __future__ import annotations

from models.training.preset import Preset

_CPSP_COMMON = dict(epochs=45, batch_size=64, lr=1e-3, gamma=0.5, clip_grad=0.1, seed=123)


def _cpsp_options(model: str, setting: str, dataset: str) -> dict:
    opts: dict = {"dataset": dataset, "flag": model, "scon_t": 0.6, "sscon_t": 0.1,
                  "scon_corrected": False}
    if setting == "fully":
        opts.update(avps=model in ("psp", "cpsp"), scon=model == "cpsp", vcon=model == "cpsp",
                    sscon=model == "sspsp", lambda_avps=100.0, lambda_scon=0.01,
                    lambda_vcon=1.0, lambda_sscon=1.0, margin=0.2, neg_num=3)
    else:
        opts.update(vcon=model == "cpsp", sscon=model == "sspsp", lambda_vcon=1.0,
                    lambda_sscon=1.0, margin=0.6, neg_num=4,
                    label_broadcast_quirk=False)
    return opts


def _cpsp_presets() -> list[Preset]:
    out = []
    for dataset, task_ds in (("ave", "ave"), ("vggsound", "vggsound-avel")):
        for model in ("psp", "cpsp", "sspsp"):
            out.append(Preset(
                task=f"{task_ds}-fully", model=model, family="cpsp-fully",
                arch=f"{model}-fully-{dataset}", milestones=(10, 20, 30), threshold=0.099,
                num_classes=None, options=_cpsp_options(model, "fully", dataset),
                notes="CPSP repo run_fully_supv.sh", **_CPSP_COMMON))
            out.append(Preset(
                task=f"{task_ds}-weakly", model=model, family="cpsp-weakly",
                arch=f"{model}-weakly-{dataset}", milestones=(5, 20, 40), threshold=0.095,
                num_classes=None, options=_cpsp_options(model, "weakly", dataset),
                notes="CPSP repo run_weakly_supv.sh (its --vis_fea_type falls back to the yaml's "
                      "'resnet'; here AVE uses the VGG-19 maps like the fully script)",
                **_CPSP_COMMON))
    return out


PRESETS: tuple[Preset, ...] = (
    *_cpsp_presets(),
    Preset(
        task="ave-fully", model="psp-cvpr21", family="psp-fully", arch="psp-fully",
        epochs=300, batch_size=128, lr=1e-3, milestones=(60, 120), gamma=0.8, clip_grad=None,
        seed=123, drop_last=True, eval_every=5, eval_first_at=1, threshold=0.099,
        options={"lambda_avps": 100.0, "eval_shift": 0},
        notes="PSP repo fully_supervised_main.py; upstream keeps the best *test* epoch "
              "(select_on: test)"),
    Preset(
        task="ave-weakly", model="psp-cvpr21", family="psp-weakly", arch="psp-weakly",
        epochs=300, batch_size=128, lr=1e-3, milestones=(80, 160), gamma=0.8, clip_grad=None,
        seed=123, drop_last=True, eval_every=5, eval_first_at=1, threshold=0.095,
        options={"eval_shift": 0},
        notes="PSP repo weakly_supervised_main.py (the 178 extra background videos are not "
              "added unless the data provides them)"),
)
