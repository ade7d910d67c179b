"""The PSP pruning thresholds of every preset, pinned against the authors' run scripts.

tests/data/golden/authors_thresholds.json was read out of the authors' code by
tests/golden/make_psp_cpsp_golden.py: PSP_CVPR_2021 `fully_supervised_main.py` /
`weakly_supervised_main.py` (`--threshold` defaults) and CPSP `run_fully_supv.sh` /
`run_weakly_supv.sh` / `cpsp_avvp/run.sh`. The spec (psp_cpsp.md §1) states the same values:
fully 0.099, weakly 0.095, AVVP 0.090.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.training.presets import get_preset, preset_keys
from models.training.trainer import make_family

AUTHORS = json.loads((Path(__file__).parent / "data" / "golden" / "authors_thresholds.json").read_text())
SPEC = {"fully": 0.099, "weakly": 0.095, "avvp": 0.090}


def test_authors_run_scripts_hold_the_spec_thresholds():
    assert {k: AUTHORS["psp_cvpr21"][k] for k in ("fully", "weakly")} == \
        {"fully": SPEC["fully"], "weakly": SPEC["weakly"]}
    assert {k: AUTHORS["cpsp"][k] for k in ("fully", "weakly", "avvp")} == SPEC


@pytest.mark.parametrize("setting", ["fully", "weakly"])
def test_psp_cvpr21_preset_threshold_is_the_psp_repo_script_default(setting):
    preset = get_preset(f"ave-{setting}", "psp-cvpr21")
    assert preset.threshold == AUTHORS["psp_cvpr21"][setting]
    # the net the family builds prunes at that threshold when called without one
    assert make_family(preset, 2).build_model().thr_val == AUTHORS["psp_cvpr21"][setting]


def test_cpsp_repo_presets_use_the_cpsp_run_script_thresholds():
    keys = [k for k in preset_keys() if k[1] in ("psp", "cpsp", "sspsp")]
    assert len(keys) >= 12
    for task, model in keys:
        preset = get_preset(task, model)
        if task == "avvp":
            expected = AUTHORS["cpsp"]["avvp"]
        else:
            expected = AUTHORS["cpsp"]["fully" if task.endswith("-fully") else "weakly"]
        assert preset.threshold == expected, (task, model)
        if task != "avvp":
            assert _pruning_threshold(make_family(preset, 2).build_model()) == expected, (task, model)


def _pruning_threshold(net) -> float:
    """The VGGSound-AVEL wrappers keep the CPSP net (and its threshold) under `.psp`."""
    return net.thr_val if hasattr(net, "thr_val") else net.psp.thr_val
