"""`avel train` run again on an existing run, through the real command line: a rerun may only
grow `--epochs` (and then trains exactly the extra epochs); any other changed setting, or
fewer epochs than were trained, exits 2 naming the settings and leaves every file of the run
as it was. A run whose loss goes NaN stops with exit 2 and keeps the last finished epoch;
a NaN or infinite setting is refused before anything is written."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest
import torch

from models.training.trainer import load_checkpoint
from tests.bad_input_cases import _train_ready
from tests.conftest import REPO_ROOT, avel_cmd, cli_env

SMALL = ["--set", "batch_size=4", "--device", "cpu"]
RUN = Path("train") / "ave-fully__cpsp"


def avel(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(avel_cmd(*args), env=cli_env(), cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=600)


def run_files(w: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (w / RUN).rglob("*") if p.is_file()
            and p.suffix in (".pt", ".json")}


def history(w: Path) -> list[dict]:
    return json.loads((w / RUN / "metrics.json").read_text())["history"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    w = _train_ready(tmp_path_factory.mktemp("rerun") / "w")
    proc = avel("train", "-w", str(w), "--epochs", "2", *SMALL)
    assert proc.returncode == 0, proc.stderr
    return w


def test_readme_example_on_a_trained_run_refuses_and_keeps_it(trained):
    before = run_files(trained)
    proc = avel("train", "-w", str(trained), "--epochs", "5", "--set", "precision=float64",
                "--set", "lr=5e-4", *SMALL)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    message = proc.stderr.strip().splitlines()[-1]
    assert message.startswith(f"error: {trained / RUN / 'checkpoints' / 'last.pt'}")
    assert "lr 0.001 -> 0.0005" in message and "precision 'float32' -> 'float64'" in message
    assert "--no-resume" in message
    assert run_files(trained) == before  # settings not rewritten, checkpoints untouched


def test_fewer_epochs_than_trained_refuses_and_keeps_the_run(trained):
    before = run_files(trained)
    proc = avel("train", "-w", str(trained), "--epochs", "1", *SMALL)
    assert proc.returncode == 2 and "has trained 2 epochs, more than epochs=1" in proc.stderr
    assert run_files(trained) == before


def test_more_epochs_trains_only_the_extra_ones(trained):
    before = history(trained)
    proc = avel("train", "-w", str(trained), "--epochs", "3", *SMALL)
    assert proc.returncode == 0, proc.stderr
    after = history(trained)
    assert [h["epoch"] for h in after] == [0, 1, 2]
    assert after[:2] == before
    doc = json.loads((trained / RUN / "metrics.json").read_text())
    assert doc["preset"]["epochs"] == 3 and doc["preset"]["lr"] == 1e-3
    assert load_checkpoint(trained / RUN / "checkpoints" / "last.pt")["epoch"] == 2


def test_diverging_loss_stops_with_exit_2_and_keeps_the_last_finished_epoch(tmp_path):
    w = _train_ready(tmp_path / "w")
    proc = avel("train", "-w", str(w), "--epochs", "4", "--set", "lr=1e12", *SMALL)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "training diverged" in proc.stderr
    rows = history(w)
    assert 1 <= len(rows) < 4  # it stopped; the finished epochs are recorded
    assert all(math.isfinite(r["train_loss"]) for r in rows)
    last = load_checkpoint(w / RUN / "checkpoints" / "last.pt")
    assert last["epoch"] == rows[-1]["epoch"]
    assert all(bool(torch.isfinite(t).all()) for t in last["model"].values())


@pytest.mark.parametrize("value", ["nan", ".nan", "1e309", "-.inf"])
def test_non_finite_setting_is_refused_before_any_work(tmp_path, value):
    w = _train_ready(tmp_path / "w")
    proc = avel("train", "-w", str(w), "--set", f"lr={value}", *SMALL)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: --set lr:")
    assert "not a finite number" in proc.stderr
    assert not (w / "train").exists()
