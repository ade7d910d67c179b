"""`avel train --task avvp` / `avel eval` end to end on a tiny LLP workdir: real manifest
stage, features in the real store, the generic trainer, the ten numbers and metrics.json."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from models.han import HAN
from models.metrics.avvp import METRIC_NAMES
from pipeline.core.workdir import Workdir
from pipeline.store.features import consolidate, write_part
from tests.conftest import avel_cmd, cli_env

TRAIN = {"aaaaaaaaaa1_0_10": "Speech", "aaaaaaaaaa2_0_10": "Dog",
         "aaaaaaaaaa3_0_10": "Speech,Dog", "aaaaaaaaaa4_0_10": "Dog"}
VAL = {"bbbbbbbbbb1_0_10": "Speech", "bbbbbbbbbb2_0_10": "Dog"}
TEST = {"ccccccccc-1_5_15": "Dog", "cccc_ccccc2_0_10": "Speech"}
# the val rows of AVVP_eval_{audio,visual}.csv below: event → [onset, offset) seconds
VAL_TRUTH = {"audio": {"bbbbbbbbbb1_0_10": {"Speech": (0, 10)}, "bbbbbbbbbb2_0_10": {"Dog": (2, 6)}},
             "visual": {"bbbbbbbbbb2_0_10": {"Dog": (0, 10)}}}


def _segment_f(predicted: list[list[str]], truth: dict[str, tuple[int, int]]) -> float:
    """One video's segment-level F of the original evaluation, from names per second."""
    classes = {c for second in predicted for c in second} | set(truth)
    scores = []
    for c in classes:
        pred = np.array([c in second for second in predicted])
        true = np.zeros(10, bool)
        if c in truth:
            true[truth[c][0]:truth[c][1]] = True
        tp, fp, fn = (pred & true).sum(), (pred & ~true).sum(), (~pred & true).sum()
        if tp + fp or tp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 1.0


def _csv(rows: dict[str, str]) -> str:
    return "filename\tevent_labels\n" + "".join(f"{k}\t{v}\n" for k, v in rows.items())


def run(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(avel_cmd(*args), env=cli_env(), cwd=cwd, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    wd = tmp_path_factory.mktemp("llp")
    assert run("init", "--dataset", "llp", "--workdir", str(wd), cwd=wd).returncode == 0
    data = wd / "data"
    data.mkdir()
    (data / "AVVP_train.csv").write_text(_csv(TRAIN))
    (data / "AVVP_val_pd.csv").write_text(_csv(VAL))
    (data / "AVVP_test_pd.csv").write_text(_csv(TEST))
    (data / "AVVP_eval_audio.csv").write_text(
        "filename\tonset\toffset\tevent_labels\n"
        "bbbbbbbbbb1_0_10\t0\t10\tSpeech\nbbbbbbbbbb2_0_10\t2\t6\tDog\n"
        "ccccccccc-1_5_15\t0\t10\tDog\ncccc_ccccc2_0_10\t0\t5\tSpeech\n")
    (data / "AVVP_eval_visual.csv").write_text(
        "filename\tonset\toffset\tevent_labels\nbbbbbbbbbb2_0_10\t0\t10\tDog\n")
    done = run("manifest", "--workdir", str(wd), cwd=wd)
    assert done.returncode == 0, done.stderr
    clips = [*TRAIN, *VAL, *TEST]
    rng = np.random.default_rng(0)
    w = Workdir(wd)
    for name, shape in (("vggish", (10, 128)), ("resnet152", (80, 2048)), ("r2plus1d_18", (10, 512))):
        shard = w.features_file(name, _single_shard())
        # One test clip has no R(2+1)D features: it must be left out, not crash the run.
        have = [c for c in clips if not (name == "r2plus1d_18" and c == "cccc_ccccc2_0_10")]
        write_part(shard, have, rng.standard_normal((len(have), *shape)).astype(np.float32),
                   {"extractor": name, "weights": "random"})
        consolidate(shard, order=have)
    return wd


def _single_shard():
    from pipeline.core.sharding import Shard
    return Shard(0, 1)


@pytest.mark.slow
def test_train_then_eval_prints_the_ten_numbers_and_writes_metrics(workdir):
    done = run("train", "--workdir", str(workdir), "--task", "avvp", "--model", "han",
               "--epochs", "1", "--set", "batch_size=4", "--device", "cpu", cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert "Type@AV" in done.stdout and "val_segment_type_at_av" in done.stdout
    run_dir = workdir / "train" / "avvp__han"
    assert (run_dir / "checkpoints" / "best.pt").is_file()
    assert "1 of 2 clips have no features" in done.stderr

    done = run("eval", "--workdir", str(workdir), "--task", "avvp", "--model", "han",
               "--split", "val", "--device", "cpu", cwd=workdir)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["Segment", "Event"]
    assert [ln.split()[0] for ln in lines[1:6]] == ["Audio", "Visual", "Audio-Visual",
                                                     "Type@AV", "Event@AV"]
    doc = json.loads((run_dir / "eval" / "val" / "metrics.json").read_text())
    assert set(doc["metrics"]) == set(METRIC_NAMES) and doc["videos"] == 2
    # The segment-level F-scores, recounted from the written predictions against the truth of
    # the annotation CSVs above with the original eval_metrics.segment_level formula (per
    # video: F over the classes present in prediction or truth; a video with neither scores 1).
    predictions = json.loads((run_dir / "eval" / "val" / "predictions.json").read_text())
    assert set(predictions) == set(VAL)
    assert all(len(p["audio"]) == 10 and len(p["visual"]) == 10 for p in predictions.values())
    for modality, key in (("audio", "segment_audio"), ("visual", "segment_visual")):
        assert doc["metrics"][key] == pytest.approx(
            100 * np.mean([_segment_f(predictions[v][modality], VAL_TRUTH[modality].get(v, {}))
                           for v in VAL]), abs=1e-6)
    # Printed numbers are the JSON ones with one decimal.
    assert lines[4].split()[1] == f"{doc['metrics']['segment_type_at_av']:.1f}"


def test_eval_of_an_official_han_checkpoint(workdir, tmp_path):
    torch.manual_seed(0)
    ckpt = tmp_path / "MMIL_Net.pt"
    torch.save({"module." + k: v for k, v in HAN().state_dict().items()}, ckpt,
               _use_new_zipfile_serialization=False)
    done = run("eval", "--workdir", str(workdir), "--task", "avvp", "--model", "han",
               "--split", "test", "--checkpoint", str(ckpt), "--official-arch", "han",
               "--device", "cpu", cwd=workdir)
    assert done.returncode == 0, done.stderr
    # a foreign checkpoint's results go to their own folder, never over the run's eval/test
    out = Path(done.stdout.split("report: ")[1].split()[0])
    assert out.parent.parent.parent == workdir / "train" / "avvp__han" / "eval"
    assert out.name == "test" and out.parent.name.startswith("MMIL_Net-")
    assert out.parent.name.endswith("-han")
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["videos"] == 1 and doc["checkpoint"] == str(ckpt)
    png = out / "timelines.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Event@AV" in done.stdout


def test_avvp_task_on_a_non_llp_manifest_is_a_clear_error(tmp_path):
    wd = tmp_path / "ave"
    assert run("init", "--dataset", "ave", "--workdir", str(wd), cwd=tmp_path).returncode == 0
    import pandas as pd
    pd.DataFrame({"clip_id": ["x"], "labels": [["a"]], "split": ["train"]}).to_parquet(
        Workdir(wd).manifest)
    done = run("train", "--workdir", str(wd), "--task", "avvp", "--model", "han", cwd=tmp_path)
    assert done.returncode == 2
    assert "audio_events" in done.stderr and "LLP manifest" in done.stderr


@pytest.mark.slow
def test_train_from_the_released_layout(tmp_path, shared_data):
    wd = tmp_path / "wd"
    assert run("init", "--dataset", "llp", "--workdir", str(wd), cwd=tmp_path).returncode == 0
    data = wd / "released"
    data.mkdir()
    (data / "AVVP_train.csv").write_text(_csv(TRAIN))
    (data / "AVVP_val_pd.csv").write_text(_csv(VAL))
    (data / "AVVP_test_pd.csv").write_text(_csv(TEST))
    for name in ("AVVP_eval_audio.csv", "AVVP_eval_visual.csv"):
        (data / name).write_bytes((shared_data / "llp" / name).read_bytes())
    rng = np.random.default_rng(1)
    for kind, shape in (("vggish", (10, 128)), ("res152", (80, 2048)), ("r2plus1d_18", (10, 512))):
        (data / "feats" / kind).mkdir(parents=True)
        for clip in [*TRAIN, *VAL, *TEST]:
            np.save(data / "feats" / kind / f"{clip[:11]}.npy",
                    rng.standard_normal(shape).astype(np.float32))
    done = run("train", "--workdir", str(wd), "--task", "avvp", "--model", "cpsp", "--epochs", "1",
               "--set", "batch_size=4", "--set", "original_dir=released", "--device", "cpu",
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Event@AV" in done.stdout
    doc = json.loads((wd / "train" / "avvp__cpsp" / "metrics.json").read_text())
    assert doc["preset"]["options"]["original_dir"] == "released"
    assert "train_vcon" in doc["history"][0] and "train_similarity" in doc["history"][0]
