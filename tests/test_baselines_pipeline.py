"""The baselines through the generic trainer and `avel train`'s stage on a real work directory
(manifest + feature store), `avel compare` over the runs, and importing released weights."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from models.registry import build
from models.training.presets import get_preset
from models.weights.checkpoints import load_official
from pipeline.train.stage import evaluate, train
from tests.conftest import avel_cmd, cli_env
from tests.fixtures_psp import make_workdir, per_second_truth

TINY = {"epochs": 2, "batch_size": 4, "eval_batch_size": 8, "precision": "float32"}
RUNS = [("ave-fully", "av_att"), ("ave-fully", "dmrn"), ("ave-weakly", "av_att_weak"),
        ("ave-fully", "avel"), ("ave-weakly", "avel"), ("ave-fully", "avsdn"), ("ave-weakly", "avsdn"),
        ("ave-fully", "cmran"), ("ave-weakly", "cmran"), ("ave-fully", "cmbs"), ("ave-weakly", "cmbs"),
        ("ave-cmm", "cmm")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    wd = make_workdir(tmp_path_factory.mktemp("baselines") / "wd", n=12, splits=(6, 9))
    results = {(t, m): train(wd, task=t, model=m, overrides=TINY, device="cpu", progress=False)
               for t, m in RUNS}
    return wd, results


@pytest.mark.slow
def test_every_baseline_trains_through_the_train_stage(trained):
    _, results = trained
    for (task, model), r in results.items():
        doc = json.loads((trained[0] / "train" / f"{task}__{model}" / "metrics.json").read_text())
        assert len(doc["history"]) == 2, (task, model)
        assert r["num_classes"] == 4
        if task == "ave-cmm":  # A2V / V2A: percent of the scored test videos with an exact hit
            test = doc["test"]
            for percent in (test["a2v"], test["v2a"]):
                hits = percent * test["videos"] / 100
                assert hits == pytest.approx(round(hits), abs=1e-6) and 0 <= round(hits) <= 3
            continue
        # counted second by second: the run's predictions against the generator's truth
        rep = evaluate(trained[0], task=task, model=model, device="cpu", n_timelines=1)
        predicted = json.loads((Path(rep["out_dir"]) / "predictions.json").read_text())
        truth = per_second_truth(12)
        hits = sum(p == t for vid, seq in predicted.items() for p, t in zip(seq, truth[vid], strict=True))
        assert len(predicted) == 3, (task, model)  # splits (6, 9) of 12 clips
        assert r["test_accuracy"] == pytest.approx(100 * hits / 30, abs=1e-6), (task, model)
    cmm = json.loads((trained[0] / "train" / "ave-cmm__cmm" / "metrics.json").read_text())
    assert {"a2v", "v2a"} <= set(cmm["test"])


@pytest.mark.slow
def test_compare_prints_every_run_and_writes_png(trained, tmp_path):
    wd, _ = trained
    dirs = [str(wd / "train" / f"{t}__{m}") for t, m in RUNS]
    png = tmp_path / "cmp.png"
    proc = subprocess.run(avel_cmd("compare", "--runs", *dirs, "--out", str(png)),
                          capture_output=True, text=True, env=cli_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2 + len(RUNS)  # header, rule, one row per run
    for t, m in RUNS:
        assert any(f"{t}__{m}" in line and m in line for line in lines)
    assert "A2V" in lines[0] and "test acc" in lines[0]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_rejects_a_run_without_metrics(tmp_path):
    proc = subprocess.run(avel_cmd("compare", "--runs", str(tmp_path), "--out", str(tmp_path / "x.png")),
                          capture_output=True, text=True, env=cli_env(), timeout=60)
    assert proc.returncode == 2 and "metrics.json" in proc.stderr


def test_presets_reach_the_trainer_with_original_values():
    p = get_preset("ave-fully", "cmbs")
    assert (p.lr, p.clip_grad, p.milestones, p.precision, p.seed) == (7e-4, 0.5, (10, 20, 30), "float64", 43)
    assert p.select_on == "val" and p.options["original_select_on"] == "test"
    # StepLR(15000) per iteration at 52 iterations/epoch: update 14999 is in epoch 288
    assert get_preset("ave-fully", "av_att").milestones == (289,)
    assert get_preset("ave-fully", "av_att").options["eval_shift"] == 0  # validate when epoch % 5 == 0


def test_cmbs_dataparallel_state_dict_imports(tmp_path):
    torch.manual_seed(0)
    original = build("cmbs", flag="fully").double().eval()
    path = tmp_path / "cmbs.pth.tar"
    torch.save({"state_dict": {f"module.{k}": v for k, v in original.state_dict().items()}}, path)
    loaded = load_official(path, "cmbs-fully")
    a = torch.randn(1, 10, 128, dtype=torch.float64)
    v = torch.randn(1, 10, 7, 7, 512, dtype=torch.float64).abs()
    assert loaded.localize_module.event_classifier.weight.dtype == torch.float64
    assert torch.allclose(loaded(v, a)[1], original(v, a)[1])


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy-format"])
def test_eccv18_whole_module_pickle_imports_with_trust(tmp_path, monkeypatch, zipped):
    """ECCV18 saved `torch.save(model)` of its own `models.att_Net` (PyTorch 0.3: the old,
    unzipped format); stand one up under that module and name, pickle it, and load it back
    through inert shells."""
    from models.baselines.av_att import AVAtt

    class att_Net(AVAtt):  # noqa: N801  (the original's class name)
        pass

    att_Net.__module__, att_Net.__qualname__ = "models", "att_Net"
    monkeypatch.setattr(sys.modules["models"], "att_Net", att_Net, raising=False)
    torch.manual_seed(1)
    original = att_Net().eval()
    path = tmp_path / "AV_att.pt"
    torch.save(original, path, _use_new_zipfile_serialization=zipped)
    monkeypatch.delattr(sys.modules["models"], "att_Net")
    with pytest.raises(ValueError, match="trust_pickles"):
        load_official(path, "av_att")
    loaded = load_official(path, "av_att", trust_pickles=True)
    assert isinstance(loaded, AVAtt) and not isinstance(loaded, att_Net)
    a, v = torch.randn(2, 10, 128), torch.randn(2, 10, 7, 7, 512)
    assert torch.allclose(loaded(a, v), original(a, v))
