"""Training stage end to end on a tiny class-separable feature set in a real work directory
(manifest + feature store): accuracy well above chance, loss decreasing, every output file,
resume, evaluation report, CLI."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from models.training.presets import get_preset, with_overrides
from models.training.trainer import Trainer, make_family
from pipeline.core.errors import InputError
from pipeline.train.stage import evaluate, train
from tests.conftest import avel_cmd, cli_env
from tests.fixtures_psp import make_workdir, per_second_truth

EPOCHS = 4
FAST = {"epochs": EPOCHS, "batch_size": 8}


def counted_accuracy(eval_dir, truth: dict[str, list[str]]) -> float:
    """Percent of seconds whose class in eval_dir/predictions.json equals `truth`, counted."""
    predicted = json.loads((eval_dir / "predictions.json").read_text())
    assert sorted(predicted) == sorted(truth)
    hits = sum(p == t for name in truth for p, t in zip(predicted[name], truth[name], strict=True))
    return 100 * hits / sum(len(t) for t in truth.values())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    wd = make_workdir(tmp_path_factory.mktemp("psp") / "wd", n=40, splits=(24, 32))
    result = train(wd, overrides=FAST, device="cpu", progress=False)
    return wd, result


@pytest.mark.slow
def test_cpsp_trains_well_above_chance(trained):
    _, result = trained
    # 8 test videos x 10 s; chance = always the majority class (here background)
    assert result["num_classes"] == 4  # from the manifest's categories, not AVE's 28
    assert result["chance_accuracy"] < 60
    assert result["test_accuracy"] >= result["chance_accuracy"] + 25


def test_loss_decreases_and_metrics_json(trained):
    _, result = trained
    doc = json.loads((trained[0] / "train" / "ave-fully__cpsp" / "metrics.json").read_text())
    losses = [h["train_loss"] for h in doc["history"]]
    assert len(losses) == EPOCHS
    assert losses[-1] < 0.6 * losses[0]
    assert doc["preset"]["lr"] == 1e-3 and doc["preset"]["clip_grad"] == 0.1
    assert doc["best"]["metric"] == "val_accuracy"
    assert {"train_avps", "train_scon", "train_vcon", "val_accuracy"} <= set(doc["history"][0])
    # PSA_s as upstream: a near-constant ≈ 27.631·#bg/#event, never ~0
    assert all(h["train_scon"] > 1.0 for h in doc["history"])


def test_run_outputs_exist(trained):
    run = trained[0] / "train" / "ave-fully__cpsp"
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((run / "tb").glob("events.out.tfevents.*"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    history = json.loads((run / "metrics.json").read_text())["history"]
    logged = {e.step: e.value for e in events.Scalars("train/loss")}
    for h in history:
        assert logged[h["epoch"]] == pytest.approx(h["train_loss"], rel=1e-6)
    assert "val/accuracy" in events.Tags()["scalars"]
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=False)
    assert best["preset"]["task"] == "ave-fully"
    assert (run / "checkpoints" / "last.pt").is_file()


def test_resume_continues_from_last_checkpoint(trained):
    wd, _ = trained
    before = json.loads((wd / "train" / "ave-fully__cpsp" / "metrics.json").read_text())["history"]
    train(wd, overrides={**FAST, "epochs": EPOCHS + 1}, device="cpu", progress=False)
    after = json.loads((wd / "train" / "ave-fully__cpsp" / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in after] == list(range(EPOCHS + 1))
    assert after[:EPOCHS] == before  # earlier epochs untouched: only the new one ran


def test_evaluate_writes_per_class_table_and_timelines(trained):
    wd, result = trained
    rep = evaluate(wd, device="cpu", n_timelines=3)
    out = wd / "train" / "ave-fully__cpsp" / "eval" / "test"
    with open(out / "per_class.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["class"] for r in rows] == ["Beep low", "Beep mid", "Beep high", "Whistle", "background"]
    assert sum(int(r["segments"]) for r in rows) == 8 * 10
    assert (out / "timelines.png").read_bytes()[:4] == b"\x89PNG"
    # weighted per-class accuracies reproduce the overall accuracy
    overall = sum(float(r["accuracy"] or 0) * int(r["segments"]) for r in rows) / 80
    assert overall == pytest.approx(rep["metrics"]["accuracy"], abs=0.01)
    # --timelines 0 plots nothing (it crashed in matplotlib) and removes the older PNG, which
    # would otherwise sit next to metrics it does not belong to
    again = evaluate(wd, device="cpu", n_timelines=0)
    assert again["metrics"] == rep["metrics"] and not (out / "timelines.png").exists()


def test_cli_eval_json(trained):
    wd, _ = trained
    proc = subprocess.run(avel_cmd("eval", "--workdir", str(wd), "--device", "cpu", "--json",
                                   "--split", "val", "--timelines", "2"),
                          env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["split"] == "val"
    val = {k: v for k, v in per_second_truth(40).items() if 24 <= int(k[3:]) < 32}  # splits (24, 32)
    eval_dir = wd / "train" / "ave-fully__cpsp" / "eval" / "val"
    assert doc["metrics"]["accuracy"] == pytest.approx(counted_accuracy(eval_dir, val), abs=1e-6)


def test_unknown_override_names_the_key(trained):
    wd, _ = trained
    with pytest.raises(InputError, match="learning_rate"):
        train(wd, overrides={"learning_rate": 1}, device="cpu", progress=False)


def test_unknown_task_lists_known_presets(trained):
    wd, _ = trained
    with pytest.raises(InputError, match="ave-fully/cpsp"):
        train(wd, task="ave-strong", device="cpu", progress=False)


def test_presets_carry_original_hyperparameters():
    f = get_preset("ave-fully", "cpsp")
    assert (f.epochs, f.batch_size, f.lr, f.milestones, f.gamma, f.clip_grad, f.seed, f.threshold) == \
        (45, 64, 1e-3, (10, 20, 30), 0.5, 0.1, 123, 0.099)
    assert (f.options["lambda_avps"], f.options["lambda_scon"], f.options["lambda_vcon"]) == (100, 0.01, 1)
    w = get_preset("ave-weakly", "cpsp")
    assert (w.milestones, w.threshold, w.options["margin"], w.options["neg_num"]) == \
        ((5, 20, 40), 0.095, 0.6, 4)
    p = get_preset("ave-fully", "psp-cvpr21")
    assert (p.epochs, p.batch_size, p.milestones, p.gamma, p.clip_grad, p.drop_last, p.select_on) == \
        (300, 128, (60, 120), 0.8, None, True, "val")
    assert with_overrides(p, {"select_on": "test"}).select_on == "test"  # upstream's choice
    assert get_preset("vggsound-avel-fully", "sspsp").arch == "sspsp-fully-vggsound"
    assert with_overrides(f, {"margin": 0.3}).options["margin"] == 0.3


def test_psp_repo_schedule_matches_scheduled_optim():
    # upstream: lr *= 0.8 when (epoch+1) % 60 == 0 and epoch < 170 -> after epochs 59 and 119
    p = get_preset("ave-fully", "psp-cvpr21")
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=p.lr)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(p.milestones), p.gamma)
    lrs, lr_hand = [], 1e-3
    for _epoch in range(300):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    for epoch in range(300):
        assert lrs[epoch] == pytest.approx(lr_hand)
        if (epoch + 1) % 60 == 0 and epoch < 170:
            lr_hand *= 0.8


class ToyFamily:
    """A family written against the contract only (as the baselines/HAN families are)."""

    selection_metric = "accuracy"

    def __init__(self, preset, num_classes, class_names):
        self.c = num_classes

    def build_model(self):
        return torch.nn.Linear(128, self.c + 1)

    def loss(self, model, batch, epoch):
        logits = model(batch["audio"])
        return torch.nn.functional.cross_entropy(logits.permute(0, 2, 1), batch["labels"].argmax(-1)), {}

    def predict(self, model, batch):
        return {"pred": model(batch["audio"]).argmax(-1).numpy(),
                "target": batch["labels"].argmax(-1).numpy()}

    def summarize(self, collected):
        return {"accuracy": float((collected["pred"] == collected["target"]).mean() * 100)}


def _toy_run(out_dir, epochs=15):
    import dataclasses

    from models.training.ave_data import ArrayAVEDataset
    from tests.fixtures_psp import separable_features
    rows, audio, _ = separable_features(24, 2)
    labels = np.zeros((24, 10, 3), np.float32)
    for i, (_, _, s, e) in enumerate(rows):
        labels[i, :, 2] = 1
        labels[i, s:e, 2] = 0
        labels[i, s:e, i % 2] = 1
    ds = ArrayAVEDataset(audio, np.zeros((24, 1), np.float32), labels)
    preset = dataclasses.replace(get_preset("ave-fully", "cpsp"), family="toy-linear", epochs=epochs,
                                 batch_size=8, lr=0.05)
    family = ToyFamily(preset, 2, None)  # the Trainer takes any object keeping the contract
    return Trainer(family, preset, out_dir, device="cpu", progress=False).fit(ds, ds, ds)


def test_a_new_family_plugs_in_without_editing_the_trainer(tmp_path):
    assert _toy_run(tmp_path)["test"]["accuracy"] > 90


def test_same_seed_same_run(tmp_path):
    a = _toy_run(tmp_path / "a", epochs=3)["history"]
    b = _toy_run(tmp_path / "b", epochs=3)["history"]
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in a]
    assert strip == [{k: v for k, v in h.items() if k != "seconds"} for h in b]


@pytest.mark.slow
def test_cli_train_prints_test_accuracy_next_to_chance(trained):
    wd, _ = trained
    proc = subprocess.run(avel_cmd("train", "--workdir", str(wd), "--model", "psp", "--epochs", "1",
                                   "--device", "cpu", "--set", "batch_size=8"),
                          env=cli_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy:" in proc.stdout and "chance" in proc.stdout
    assert (wd / "train" / "ave-fully__psp" / "metrics.json").is_file()


@pytest.mark.parametrize("task,model", [("ave-weakly", "cpsp"), ("ave-weakly", "sspsp"),
                                        ("ave-fully", "sspsp"),
                                        ("ave-fully", "psp-cvpr21"), ("ave-weakly", "psp-cvpr21"),
                                        ("vggsound-avel-weakly", "cpsp")])
def test_every_family_takes_a_step_and_predicts(task, model):
    """One optimisation step and one prediction per family/flag on 4 tiny videos."""
    from models.training.ave_data import ArrayAVEDataset
    from tests.fixtures_psp import separable_features
    rows, audio, video = separable_features(4, 2, seed=3)
    if task.startswith("vggsound"):
        video = np.ascontiguousarray(np.concatenate([video, video], -1).transpose(0, 1, 4, 2, 3))
    labels = np.zeros((4, 10, 3), np.float32)
    for i, (_, _, s, e) in enumerate(rows):
        labels[i, :, 2] = 1
        labels[i, s:e, 2] = 0
        labels[i, s:e, i % 2] = 1
    ds = ArrayAVEDataset(audio, video, labels)
    preset = with_overrides(get_preset(task, model), {"batch_size": 4, "drop_last": False})
    trainer = Trainer(make_family(preset, 2), preset, ".", device="cpu", progress=False)
    net = trainer._model()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    parts = trainer.train_epoch(net, trainer._optimizer(net), ds, 0)
    assert np.isfinite(parts["train_loss"])
    assert any(not torch.equal(before[k], v) for k, v in net.state_dict().items())
    metrics, collected = trainer.evaluate(net, ds)
    assert collected["pred"].shape == (4, 10) and set(np.unique(collected["pred"])) <= {0, 1, 2}
    assert np.array_equal(collected["target"], labels.argmax(-1)[collected["index"]])
    hits = sum(int(p == t) for p, t in zip(collected["pred"].ravel(), collected["target"].ravel()))
    assert metrics["accuracy"] == pytest.approx(100 * hits / 40)


@pytest.mark.slow
def test_vggsound_avel_from_released_files_trains_and_evaluates(tmp_path):
    import pickle
    import zipfile

    from pipeline.commands.init import init_workdir
    from pipeline.core.config import load_config

    def put(directory, vid, arr):
        directory.mkdir(exist_ok=True)
        with zipfile.ZipFile(directory / f"{vid}.zip", "w") as zf:
            zf.writestr(f"{vid}.pkl", pickle.dumps(arr))

    rng = np.random.default_rng(0)
    (tmp_path / "cats.txt").write_text("dog\ncat\n")
    meta = ["video_id,category,split"]
    for i, split in enumerate(["train"] * 4 + ["val"] * 2 + ["test"] * 2):
        vid, cat = f"v{i}", ("dog", "cat")[i % 2]
        meta.append(f"{vid},{cat},{split}")
        avc = np.zeros(10)
        avc[2:7] = 1
        put(tmp_path / "a", vid, rng.normal(size=(10, 128)).astype(np.float32))
        put(tmp_path / "v", vid, np.abs(rng.normal(size=(10, 1024, 7, 7))).astype(np.float32))
        put(tmp_path / "l", vid, avc[None])
    (tmp_path / "meta.csv").write_text("\n".join(meta) + "\n")
    wd = tmp_path / "wd"
    init_workdir(wd, "vggsound-avel")
    cfg = load_config(wd)
    cfg.train.original_vggsound_avel = {"meta": str(tmp_path / "meta.csv"),
                                        "categories": str(tmp_path / "cats.txt"),
                                        "audio_dir": str(tmp_path / "a"), "video_dir": str(tmp_path / "v"),
                                        "label_dir": str(tmp_path / "l")}
    result = train(wd, cfg, task="vggsound-avel-fully", model="cpsp",
                   overrides={"epochs": 1, "batch_size": 4}, device="cpu", progress=False)
    assert result["num_classes"] == 2
    rep = evaluate(wd, cfg, task="vggsound-avel-fully", model="cpsp", device="cpu", n_timelines=2)
    # test videos v6 (dog) and v7 (cat), each with its event on seconds 2-6
    truth = {f"v{i}": [("dog", "cat")[i % 2] if 2 <= t < 7 else "background" for t in range(10)]
             for i in (6, 7)}
    counted = counted_accuracy(Path(rep["out_dir"]), truth)
    assert rep["metrics"]["accuracy"] == pytest.approx(counted, abs=1e-6)
    assert result["test_accuracy"] == pytest.approx(counted, abs=1e-6)  # one epoch: best = last
    assert [r["class"] for r in rep["per_class"]] == ["dog", "cat", "background"]
