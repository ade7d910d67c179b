"""Bad inputs run through the real `avel` command line: each case prepares a work directory
(or a file) that is wrong in one way, runs one command, and records its exit code and its first
line on stderr. `python -m tests.bad_input_cases [--fast] [--markdown]` prints the table
"input -> exit code -> message" and exits 1 when a case shows a traceback or an unexpected code;
tests/test_bad_inputs.py runs the fast subset.

Exit codes (README "Exit codes"): 1 some clips failed, 2 bad input, 5 the work directory
cannot be written, 70 an unexpected error. Every case here expects 1 (a bad clip: recorded in
the ledger, the stage goes on), 2 or 5, never 70, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT / "tests" / "data" / "real"  # as tests/conftest.py SHARED_DATA
PWNED = "AVEL_PWNED"  # a planted pickle writes this file when it runs: it must never appear


@dataclass
class Case:
    name: str
    setup: Callable[[Path], list[str]]  # prepares `case_dir`, returns the avel arguments
    expect: int = 2
    fast: bool = False
    needs_root: bool = False


@dataclass
class Result:
    case: Case
    code: int
    message: str
    traceback: bool
    code_ran: bool
    seconds: float
    command: str = ""

    @property
    def ok(self) -> bool:
        return self.code == self.case.expect and not self.traceback and not self.code_ran


# ----------------------------------------------------------------------------- work directories

def _config(w: Path, **changes: object) -> dict:
    config = {"dataset": {"name": "ave",
                          "files": {"annotations": str(SHARED / "ave" / "Annotations.txt"),
                                    "orders_dir": str(SHARED / "ave")},
                          "source": "local", "videos_dir": "videos"},
              "sharding": {"num_shards": 1},
              "cut": {"audio_recipe": "ave", "frames_recipe": "uniform-1", "workers": 1},
              "extract": {"extractors": ["vggish"], "device": "cpu", "num_workers": 0,
                          "weights": {"vggish": "random"}}}
    for dotted, value in changes.items():
        node = config
        keys = dotted.split("__")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    w.mkdir(parents=True, exist_ok=True)
    (w / "avel.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return config


def _manifest(w: Path, n: int = 3) -> list[str]:
    ids = [f"clip{i}" for i in range(n)]
    pd.DataFrame({"clip_id": ids, "video_id": ids, "source": [f"videos/{c}.mp4" for c in ids],
                  "start_s": 0.0, "end_s": 2.0, "labels": [["Church bell"] for _ in ids],
                  "split": "test"}).to_parquet(w / "manifest.parquet", index=False)
    return ids


def _clips(w: Path, ids: list[str]) -> Path:
    """A clip store as the cut stage leaves it (tiny frames), and its ledger."""
    sys.path.insert(0, str(REPO_ROOT))
    from pipeline.core.ledger import Ledger
    from pipeline.core.sharding import Shard
    from pipeline.core.workdir import Workdir
    from pipeline.store import clips as clip_store
    from tests.fixtures_visual import jpeg_frames
    wd = Workdir(w)
    shard_file = wd.clips_file(Shard(0, 1))
    media = {c: clip_store.ClipMedia(audio=np.zeros(32000, np.int16), sample_rate=16000,
                                     frames=jpeg_frames(2, k), frame_times=np.arange(2.0))
             for k, c in enumerate(ids)}
    clip_store.write_part(shard_file, media)
    clip_store.consolidate(shard_file)
    with Ledger(wd.ledger("cut", Shard(0, 1))) as ledger:
        ledger.ensure(ids)
        for c in ids:
            ledger.done(c)
    return shard_file


def _ready(w: Path) -> Path:
    _config(w)
    _clips(w, _manifest(w))
    return w


def _train_ready(w: Path) -> Path:
    """The real AVE manifest and tiny random features for 4 clips of each split."""
    _config(w)
    sys.path.insert(0, str(REPO_ROOT))
    from pipeline.core.config import load_config
    from pipeline.datasets.manifest import build_manifest
    build_manifest(w, load_config(w))
    table = pd.read_parquet(w / "manifest.parquet")
    ids = [c for s in ("train", "val", "test") for c in table[table.split == s].clip_id[:4]]
    rng = np.random.default_rng(0)
    for name, shape in (("vggish", (10, 128)), ("vgg19", (10, 7, 7, 512))):
        path = w / "features" / name / "00000-of-00001.h5"
        path.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(path, "w") as fh:
            fh["features"] = rng.standard_normal((len(ids), *shape)).astype(np.float16)
            fh["clip_id"] = np.array([c.encode() for c in ids])
    return w


def _features(w: Path, name: str = "vggish") -> Path:
    path = w / "features" / name / "00000-of-00001.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as fh:
        fh["features"] = np.zeros((3, 10, 128), np.float32)
        fh["clip_id"] = np.array([b"clip0", b"clip1", b"clip2"])
    return path


def _truncate(path: Path, keep: int = 600) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:keep])


class _Evil:
    """Unpickling this writes the PWNED file: proof that a load ran code."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.target), "w"))


def bomb_jpeg(width: int = 13000, height: int = 13000) -> bytes:
    """A 632-byte JPEG (8x8 pixels of data) whose frame header claims `width` x `height`:
    decoding it would allocate width*height*3 bytes before finding its data missing."""
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def _evil_torch(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {}, "payload": _Evil(marker)}, path)
    return path


def _ave_release(d: Path, features: Callable[[h5py.File], None]) -> Path:
    """A released-AVE folder: labels/order files copied from the real data, one feature file
    written by `features`."""
    d.mkdir(parents=True, exist_ok=True)
    for name in ("labels_closs.h5", "mil_labels.h5", "train_order.h5", "val_order.h5",
                 "test_order.h5"):
        shutil.copy(SHARED / "ave" / name, d / name)
    with h5py.File(d / "audio_feature.h5", "w") as fh:
        features(fh)
    return d


def _ave_import_wd(w: Path) -> None:
    _config(w)
    subprocess.run([sys.executable, "-m", "pipeline", "manifest", "-w", str(w)], env=_env(),
                   capture_output=True, check=True, cwd=REPO_ROOT)


# ----------------------------------------------------------------------------- cases

def _set(w: Path, *pairs: str) -> list[str]:
    return [a for p in pairs for a in ("--set", p)]


def c_config_not_yaml(w: Path) -> list[str]:
    w.mkdir(parents=True)
    (w / "avel.yaml").write_text("dataset: [unclosed\n  name: ave")
    return ["cut", "-w", str(w)]


def c_config_unknown_key(w: Path) -> list[str]:
    _config(w, cut__nosuch=1)
    return ["cut", "-w", str(w)]


def c_config_missing(w: Path) -> list[str]:
    w.mkdir(parents=True)
    return ["cut", "-w", str(w)]


def c_config_bad_type(w: Path) -> list[str]:
    _config(w, cut__workers="many")
    return ["cut", "-w", str(w)]


def c_num_shards_zero(w: Path) -> list[str]:
    _config(w, sharding__num_shards=0)
    return ["cut", "-w", str(w)]


def c_shard_index_out_of_range(w: Path) -> list[str]:
    _ready(w)
    return ["cut", "-w", str(w), "--shard-index", "5", "--num-shards", "2"]


def c_cut_workers_negative(w: Path) -> list[str]:
    _ready(w)
    return ["cut", "-w", str(w), "--workers", "-5"]


def c_download_workers_zero(w: Path) -> list[str]:
    _ready(w)
    return ["download", "-w", str(w), "--workers", "0"]


def c_identity_proxy_not_a_url(w: Path) -> list[str]:
    _config(w, download__identities=[{"name": "a", "proxy": "http://127.0.0.1:3128"},
                                     {"name": "b", "proxy": "proxy.lab:3128"}])
    _manifest(w)
    return ["download", "-w", str(w)]


def c_identity_cookies_missing(w: Path) -> list[str]:
    _config(w, download__identities=[{"name": "a", "cookies_file": "nosuch-cookies.txt"}])
    _manifest(w)
    return ["download", "-w", str(w)]


def c_unknown_cut_recipe(w: Path) -> list[str]:
    _config(w, cut__audio_recipe="nosuch")
    _manifest(w)
    return ["cut", "-w", str(w)]


def c_unknown_extract_recipe(w: Path) -> list[str]:
    _ready(w)
    _config(w, extract__options={"vggish": {"recipe": "nosuch"}})
    return ["extract", "-w", str(w), "-e", "vggish", "--no-progress"]


def c_unknown_extractor_flag(w: Path) -> list[str]:
    _ready(w)
    return ["extract", "-w", str(w), "-e", "nosuch", "--no-progress"]


def c_unknown_extractor_in_config(w: Path) -> list[str]:
    _ready(w)
    _config(w, extract__extractors=["vggish", "nosuch"])
    return ["run", "-w", str(w), "--stages", "extract"]


def c_unknown_dataset(w: Path) -> list[str]:
    return ["init", "--dataset", "nosuch", "-w", str(w)]


def c_annotation_unknown_label(w: Path) -> list[str]:
    lines = (SHARED / "ave" / "Annotations.txt").read_text().splitlines()
    lines.insert(5, "Not a category&abcdefghijk&good&0&10")
    (w / "ann").mkdir(parents=True)
    (w / "ann" / "Annotations.txt").write_text("\n".join(lines) + "\n")
    _config(w, dataset__files={"annotations": str(w / "ann" / "Annotations.txt"),
                               "orders_dir": str(SHARED / "ave")})
    return ["manifest", "-w", str(w)]


def c_annotation_bad_time(w: Path) -> list[str]:
    lines = (SHARED / "ave" / "Annotations.txt").read_text().splitlines()
    fields = lines[3].split("&")
    lines[3] = "&".join(fields[:3] + ["abc"] + fields[4:])
    (w / "ann").mkdir(parents=True)
    (w / "ann" / "Annotations.txt").write_text("\n".join(lines) + "\n")
    _config(w, dataset__files={"annotations": str(w / "ann" / "Annotations.txt"),
                               "orders_dir": str(SHARED / "ave")})
    return ["manifest", "-w", str(w)]


def c_huge_list_file(w: Path) -> list[str]:
    lines = (SHARED / "ave" / "Annotations.txt").read_text().splitlines()
    (w / "ann").mkdir(parents=True)
    with open(w / "ann" / "Annotations.txt", "w") as fh:
        fh.write(lines[0] + "\n")
        row = lines[1] + "\n"
        fh.write(row * (50_000_000 // len(row)))
    _config(w, dataset__files={"annotations": str(w / "ann" / "Annotations.txt"),
                               "orders_dir": str(SHARED / "ave")})
    return ["manifest", "-w", str(w)]


def c_manifest_truncated(w: Path) -> list[str]:
    _ready(w)
    _truncate(w / "manifest.parquet", 100)
    return ["cut", "-w", str(w)]


def c_manifest_not_parquet(w: Path) -> list[str]:
    _ready(w)
    (w / "manifest.parquet").write_text("clip_id,source\nx,y\n")
    return ["extract", "-w", str(w), "-e", "vggish", "--no-progress"]


def c_manifest_missing_column(w: Path) -> list[str]:
    _ready(w)
    pd.DataFrame({"clip_id": ["a"]}).to_parquet(w / "manifest.parquet")
    return ["cut", "-w", str(w)]


def c_ledger_garbage_cut(w: Path) -> list[str]:
    _ready(w)
    (w / "state" / "cut" / "00000-of-00001.sqlite").write_bytes(b"not sqlite at all" * 100)
    return ["cut", "-w", str(w)]


def c_ledger_truncated_extract(w: Path) -> list[str]:
    _ready(w)
    db = w / "state" / "extract-vggish" / "00000-of-00001.sqlite"
    db.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE clips (clip_id TEXT PRIMARY KEY, status TEXT, x BLOB)")
        con.executemany("INSERT INTO clips VALUES (?, 'done', ?)",
                        ((f"c{i}", b"x" * 3000) for i in range(200)))
    _truncate(db, 5000)
    return ["extract", "-w", str(w), "-e", "vggish", "--no-progress"]


def c_ledger_garbage_download(w: Path) -> list[str]:
    _ready(w)
    db = w / "state" / "download" / "00000-of-00001.sqlite"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"\0" * 4096)
    return ["download", "-w", str(w)]


def c_clips_truncated_extract(w: Path) -> list[str]:
    shard_file = _ready(w) / "clips" / "00000-of-00001.h5"
    _truncate(shard_file, 2000)
    return ["extract", "-w", str(w), "-e", "vggish", "--no-progress"]


def c_clips_truncated_cut(w: Path) -> list[str]:
    shard_file = _ready(w) / "clips" / "00000-of-00001.h5"
    _truncate(shard_file, 2000)
    return ["cut", "-w", str(w)]


def c_clips_external_storage(w: Path) -> list[str]:
    _ready(w)
    shard_file = w / "clips" / "00000-of-00001.h5"
    with h5py.File(shard_file, "a") as fh:
        del fh["clip0/audio"]
        fh["clip0"].create_dataset("audio", shape=(100,), dtype="i2",
                                   external=[("/etc/passwd", 0, h5py.h5f.UNLIMITED)])
    return ["extract", "-w", str(w), "-e", "vggish", "--no-progress"]


def c_extract_jpeg_bomb(w: Path) -> list[str]:
    """clip1's frames are 632-byte JPEGs claiming 13000x13000 pixels (169 Mpx, 507 MB
    decoded): rejected from the header as huge_frame; clip0 and clip2 are extracted."""
    sys.path.insert(0, str(REPO_ROOT))
    from pipeline.store import clips as clip_store
    _ready(w)
    _config(w, extract__extractors=["vgg19"], extract__weights={"vgg19": "random"},
            extract__options={"vgg19": {"image_size": 32, "segments": 1, "frames_per_segment": 2}})
    shard_file = w / "clips" / "00000-of-00001.h5"
    clip_store.write_part(shard_file, {"clip1": clip_store.ClipMedia(
        audio=np.zeros(32000, np.int16), sample_rate=16000, frames=[bomb_jpeg()] * 2,
        frame_times=np.arange(2.0))})
    clip_store.consolidate(shard_file)
    return ["extract", "-w", str(w), "-e", "vgg19", "--decode", "cpu", "--no-progress"]


def c_features_truncated_export(w: Path) -> list[str]:
    _ready(w)
    _truncate(_features(w), 1000)
    return ["export", "-w", str(w), "--format", "ave", "--out", str(w / "out")]


def c_features_duplicate_clip(w: Path) -> list[str]:
    """clip1 has two rows in the shard (ones, then twos): which is right cannot be told."""
    _ready(w)
    path = _features(w)
    with h5py.File(path, "w") as fh:
        fh["features"] = np.stack([np.full((10, 128), v, np.float32) for v in (0, 1, 2, 3)])
        fh["clip_id"] = np.array([b"clip0", b"clip1", b"clip2", b"clip1"])
    return ["export", "-w", str(w), "--format", "ave", "--out", str(w / "out")]


def c_features_vds_train(w: Path) -> list[str]:
    _ready(w)
    outside = w.parent / f"{w.name}-outside.h5"
    with h5py.File(outside, "w") as fh:
        fh["x"] = np.ones((3, 10, 128), np.float32)
    path = w / "features" / "vggish" / "00000-of-00001.h5"
    path.parent.mkdir(parents=True)
    with h5py.File(path, "w") as fh:
        layout = h5py.VirtualLayout(shape=(3, 10, 128), dtype="f4")
        layout[:] = h5py.VirtualSource(str(outside), "x", shape=(3, 10, 128))
        fh.create_virtual_dataset("features", layout)
        fh["clip_id"] = np.array([b"clip0", b"clip1", b"clip2"])
    return ["export", "-w", str(w), "--format", "ave", "--out", str(w / "out")]


def c_export_vav_from_ave(w: Path) -> list[str]:
    """The real AVE manifest (category, no class_id) and vggish features, exported as
    VGGSound-AVEL: refused before any zip is written (was: 24 zips, then exit 70)."""
    _ave_import_wd(w)
    _features(w)
    return ["export", "-w", str(w), "--format", "vggsound-avel", "--out", str(w / "out")]


def c_export_vav_no_category(w: Path) -> list[str]:
    """A manifest without 'category' (as the demo's): refused, nothing written (was:
    KeyError: 'class_id')."""
    _ready(w)
    _features(w)
    return ["export", "-w", str(w), "--format", "vggsound-avel", "--out", str(w / "out")]


def c_set_lr_abc(w: Path) -> list[str]:
    _train_ready(w)
    return ["train", "-w", str(w), *_set(w, "lr=abc")]


def c_set_unknown_key(w: Path) -> list[str]:
    _train_ready(w)
    return ["train", "-w", str(w), *_set(w, "nosuch=1")]


def c_set_no_equals(w: Path) -> list[str]:
    _train_ready(w)
    return ["train", "-w", str(w), *_set(w, "lr")]


def c_set_lr_nan(w: Path) -> list[str]:
    _train_ready(w)
    return ["train", "-w", str(w), *_set(w, "lr=nan")]


def c_set_lr_overflow(w: Path) -> list[str]:
    _train_ready(w)
    return ["train", "-w", str(w), *_set(w, "lr=1e309")]


def c_train_epochs_zero(w: Path) -> list[str]:
    _train_ready(w)
    return ["train", "-w", str(w), "--epochs", "0"]


def c_overrides_epochs_zero(w: Path) -> list[str]:
    _train_ready(w)
    _config(w, train__overrides={"epochs": 0})
    return ["train", "-w", str(w)]


def c_train_diverges(w: Path) -> list[str]:
    """A step size that sends the loss to NaN within a few epochs: training stops there."""
    _train_ready(w)
    return ["train", "-w", str(w), "--epochs", "4", *_set(w, "lr=1e12", "batch_size=4")]


def _run_checkpoint(w: Path, state: dict) -> None:
    path = w / "train" / "ave-fully__cpsp" / "checkpoints" / "last.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)


def c_planted_last_pt_train(w: Path) -> list[str]:
    _train_ready(w)
    _evil_torch(w / "train" / "ave-fully__cpsp" / "checkpoints" / "last.pt", w / PWNED)
    return ["train", "-w", str(w), "--epochs", "1"]


def c_foreign_last_pt_train(w: Path) -> list[str]:
    """A last.pt with this run's settings but another network's weights."""
    _train_ready(w)
    sys.path.insert(0, str(REPO_ROOT))
    from models.training.presets import get_preset
    _run_checkpoint(w, {"model": {"fc.weight": torch.zeros(3, 3)}, "epoch": 0,
                        "preset": get_preset("ave-fully", "cpsp").to_dict()})
    return ["train", "-w", str(w), "--epochs", "2"]


def c_resume_other_settings(w: Path) -> list[str]:
    """README's own example run on a run trained with the preset's settings."""
    _train_ready(w)
    sys.path.insert(0, str(REPO_ROOT))
    from models.training.presets import get_preset
    _run_checkpoint(w, {"model": {}, "epoch": 0,
                        "preset": get_preset("ave-fully", "cpsp").to_dict()})
    return ["train", "-w", str(w), "--epochs", "5", *_set(w, "precision=float64", "lr=5e-4")]


def c_trusted_pickle_missing_module(w: Path) -> list[str]:
    """A whole-module pickle (as --trust-pickles admits) naming a models.* module that does
    not exist."""
    _train_ready(w)
    sys.path.insert(0, str(REPO_ROOT))
    import types

    from models.baselines.av_att import AVAtt

    class Net(AVAtt):
        pass

    Net.__module__, Net.__qualname__ = "models.nosuch_module", "Net"
    sys.modules["models.nosuch_module"] = types.ModuleType("models.nosuch_module")
    sys.modules["models.nosuch_module"].Net = Net  # type: ignore[attr-defined]
    try:
        torch.save(Net(), w / "AV_att.pt")
    finally:
        del sys.modules["models.nosuch_module"]
    return ["eval", "-w", str(w), "--checkpoint", str(w / "AV_att.pt"), "--official-arch",
            "av_att", "--trust-pickles"]


def c_config_negative_zero_timeout(w: Path) -> list[str]:
    _ready(w)
    _config(w, cut__timeout_s=-0.0)
    return ["cut", "-w", str(w)]


def c_config_nan_float(w: Path) -> list[str]:
    _ready(w)
    _config(w, cut__max_pad_s=float("nan"))
    return ["cut", "-w", str(w)]


def c_config_huge_value(w: Path) -> list[str]:
    """A 1 MB value where a number belongs: the message quotes 80 characters of it."""
    _ready(w)
    _config(w, cut__workers="x" * 1_000_000)
    return ["cut", "-w", str(w)]


def c_status_missing_dir(w: Path) -> list[str]:
    return ["status", "-w", str(w / "no-such-dir")]


def c_workdir_not_utf8(w: Path) -> list[str]:
    """A work directory whose name holds a byte that is not UTF-8 (Linux allows any bytes)."""
    odd = Path(os.fsdecode(os.fsencode(w) + b"-\xff"))
    _config(odd)
    return ["manifest", "-w", str(odd)]


def c_run_export_incomplete(w: Path) -> list[str]:
    """`avel run --stages export` where the ave format needs background videos it lacks."""
    _train_ready(w)
    return ["run", "-w", str(w), "--stages", "export"]


def c_train_unknown_model(w: Path) -> list[str]:
    _train_ready(w)
    return ["train", "-w", str(w), "--model", "nosuch"]


def c_train_unknown_task(w: Path) -> list[str]:
    _train_ready(w)
    return ["train", "-w", str(w), "--task", "nosuch"]


def c_eval_checkpoint_missing(w: Path) -> list[str]:
    _train_ready(w)
    return ["eval", "-w", str(w), "--checkpoint", str(w / "nope.pt")]


def c_eval_checkpoint_garbage(w: Path) -> list[str]:
    _train_ready(w)
    (w / "garbage.pt").write_bytes(os.urandom(2048))
    return ["eval", "-w", str(w), "--checkpoint", str(w / "garbage.pt")]


def c_eval_checkpoint_hostile(w: Path) -> list[str]:
    _train_ready(w)
    _evil_torch(w / "evil.pt", w / PWNED)
    return ["eval", "-w", str(w), "--checkpoint", str(w / "evil.pt")]


def c_eval_official_hostile(w: Path) -> list[str]:
    _train_ready(w)
    _evil_torch(w / "evil.pth.tar", w / PWNED)
    return ["eval", "-w", str(w), "--checkpoint", str(w / "evil.pth.tar"),
            "--official-arch", "cpsp-fully-ave"]


def c_planted_best_pt(w: Path) -> list[str]:
    _train_ready(w)
    _evil_torch(w / "train" / "ave-fully__cpsp" / "checkpoints" / "best.pt", w / PWNED)
    return ["eval", "-w", str(w)]


def c_planted_last_pt(w: Path) -> list[str]:
    _train_ready(w)
    _evil_torch(w / "train" / "ave-fully__cpsp" / "checkpoints" / "last.pt", w / PWNED)
    return ["eval", "-w", str(w)]


def c_weights_hostile(w: Path) -> list[str]:
    _ready(w)
    _evil_torch(w / "evil_vggish.pt", w / PWNED)
    return ["extract", "-w", str(w), "-e", "vggish", "--weights", str(w / "evil_vggish.pt"),
            "--no-progress"]


def c_weights_garbage(w: Path) -> list[str]:
    _ready(w)
    (w / "garbage.pt").write_bytes(b"\x80\x04junk" * 100)
    return ["extract", "-w", str(w), "-e", "vggish", "--weights", str(w / "garbage.pt"),
            "--no-progress"]


def c_weights_missing(w: Path) -> list[str]:
    _ready(w)
    return ["extract", "-w", str(w), "-e", "vggish", "--weights", str(w / "nope.pt"),
            "--no-progress"]


def c_import_ave_external_storage(w: Path) -> list[str]:
    _ave_import_wd(w)
    secret = w.parent / f"{w.name}-secret.bin"
    secret.write_bytes(b"SECRET" * 100_000)

    def planted(fh: h5py.File) -> None:
        fh.create_dataset("avadataset", shape=(4143, 10, 128), dtype="f4",
                          external=[(str(secret), 0, h5py.h5f.UNLIMITED)])
    src = _ave_release(w / "release", planted)
    return ["import", "-w", str(w), "--format", "ave", "--from", str(src)]


def c_import_ave_external_link(w: Path) -> list[str]:
    _ave_import_wd(w)
    other = w.parent / f"{w.name}-other.h5"
    with h5py.File(other, "w") as fh:
        fh["x"] = np.zeros((4143, 10, 128), np.float32)
    src = _ave_release(w / "release", lambda fh: fh.__setitem__(
        "avadataset", h5py.ExternalLink(str(other), "x")))
    return ["import", "-w", str(w), "--format", "ave", "--from", str(src)]


def c_import_ave_virtual(w: Path) -> list[str]:
    _ave_import_wd(w)
    other = w.parent / f"{w.name}-other.h5"
    with h5py.File(other, "w") as fh:
        fh["x"] = np.zeros((4143, 10, 128), np.float32)

    def planted(fh: h5py.File) -> None:
        layout = h5py.VirtualLayout(shape=(4143, 10, 128), dtype="f4")
        layout[:] = h5py.VirtualSource(str(other), "x", shape=(4143, 10, 128))
        fh.create_virtual_dataset("avadataset", layout)
    src = _ave_release(w / "release", planted)
    return ["import", "-w", str(w), "--format", "ave", "--from", str(src)]


def c_import_ave_nan(w: Path) -> list[str]:
    _ave_import_wd(w)
    data = np.zeros((4143, 10, 128), np.float32)
    data[7, 3, 5] = np.nan
    src = _ave_release(w / "release", lambda fh: fh.__setitem__("avadataset", data))
    return ["import", "-w", str(w), "--format", "ave", "--from", str(src)]


def c_import_ave_wrong_shape(w: Path) -> list[str]:
    _ave_import_wd(w)
    src = _ave_release(w / "release", lambda fh: fh.__setitem__(
        "avadataset", np.zeros((10, 10, 127), np.float32)))
    return ["import", "-w", str(w), "--format", "ave", "--from", str(src)]


def c_import_ave_truncated(w: Path) -> list[str]:
    _ave_import_wd(w)
    src = _ave_release(w / "release", lambda fh: fh.__setitem__(
        "avadataset", np.zeros((4143, 10, 128), np.float32)))
    _truncate(src / "audio_feature.h5", 4000)
    return ["import", "-w", str(w), "--format", "ave", "--from", str(src)]


def c_import_ave_declared_not_stored(w: Path) -> list[str]:
    """audio_feature.h5 declares 10^9 rows and stores none (HDF5 would read zeros); the store
    already holds extracted features, which must stay as they were."""
    _ave_import_wd(w)
    _features(w)
    src = _ave_release(w / "release", lambda fh: fh.create_dataset(
        "avadataset", shape=(10**9, 10, 128), dtype="f4"))
    return ["import", "-w", str(w), "--format", "ave", "--from", str(src)]


def huge_gzip_chunk(fh: h5py.File, name: str, shape: tuple[int, ...]) -> None:
    """A dataset of one gzip chunk declaring `shape` float32 ([262144,10,128]: 1.34 GB) whose
    bytes on disk are ~1.3 MB of deflated zeros, written without ever holding the chunk."""
    import zlib
    ds = fh.create_dataset(name, shape=shape, dtype="f4", chunks=shape, compression="gzip")
    packer = zlib.compressobj(6)
    size = int(np.prod(shape)) * 4
    block = b"\0" * (1 << 20)
    pieces = [packer.compress(block) for _ in range(size >> 20)]
    pieces.append(packer.compress(b"\0" * (size & ((1 << 20) - 1))))
    ds.id.write_direct_chunk((0,) * len(shape), b"".join(pieces) + packer.flush())


def c_import_ave_huge_chunk(w: Path) -> list[str]:
    _ave_import_wd(w)
    src = _ave_release(w / "release", lambda fh: huge_gzip_chunk(fh, "avadataset",
                                                                 (262144, 10, 128)))
    return ["import", "-w", str(w), "--format", "ave", "--from", str(src)]


def _vav_wd(w: Path) -> Path:
    _config(w)
    ids = _manifest(w)
    src = w / "vav"
    for sub in ("audio_feature", "video_feature", "avc_label"):
        (src / sub).mkdir(parents=True)
    return src if ids else src


def c_import_vav_pickle_untrusted(w: Path) -> list[str]:
    src = _vav_wd(w)
    with zipfile.ZipFile(src / "audio_feature" / "clip0.zip", "w") as zf:
        zf.writestr("clip0.pkl", pickle.dumps(_Evil(w / PWNED)))
    return ["import", "-w", str(w), "--format", "vggsound-avel", "--from", str(src)]


def c_import_vav_zip_bomb(w: Path) -> list[str]:
    src = _vav_wd(w)
    with zipfile.ZipFile(src / "audio_feature" / "clip0.zip", "w",
                         compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("clip0.pkl", "w", force_zip64=True) as fh:
            chunk = b"\0" * (1 << 20)
            for _ in range(1024):
                fh.write(chunk)
    return ["import", "-w", str(w), "--format", "vggsound-avel", "--from", str(src),
            "--trust-pickles"]


def c_import_llp_object_npy(w: Path) -> list[str]:
    _config(w)
    _manifest(w)
    src = w / "llp" / "feats" / "vggish"
    src.mkdir(parents=True)
    np.save(src / "clip0.npy", np.array([_Evil(w / PWNED)], dtype=object), allow_pickle=True)
    return ["import", "-w", str(w), "--format", "llp", "--from", str(w / "llp")]


def c_import_llp_nan_npy(w: Path) -> list[str]:
    _config(w)
    _manifest(w)
    src = w / "llp" / "feats" / "vggish"
    src.mkdir(parents=True)
    for c in ("clip0", "clip1", "clip2"):
        np.save(src / f"{c}.npy", np.full((10, 128), np.inf, np.float32))
    return ["import", "-w", str(w), "--format", "llp", "--from", str(w / "llp")]


def _hold_lock(w: Path, stage: str, name: str = "00000-of-00001") -> None:
    """Another process holds the (stage, shard) lock, as a running stage would (a training
    run's lock is named after the run)."""
    lock = w / "state" / stage / f"{name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c",
                               "import fcntl,os,sys,time;fd=os.open(sys.argv[1],os.O_RDWR|os.O_CREAT);"
                               "fcntl.flock(fd,fcntl.LOCK_EX);os.write(fd,str(os.getpid()).encode());"
                               "print('locked',flush=True);time.sleep(60)", str(lock)],
                              stdout=subprocess.PIPE)
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
    _HOLDERS.append(holder)


def c_second_cut_writer(w: Path) -> list[str]:
    _ready(w)
    _hold_lock(w, "cut")
    return ["cut", "-w", str(w)]


def c_second_download_writer(w: Path) -> list[str]:
    _ready(w)
    _hold_lock(w, "download")
    return ["download", "-w", str(w)]


def c_second_extract_writer(w: Path) -> list[str]:
    _ready(w)
    _hold_lock(w, "extract-vggish")
    return ["extract", "-w", str(w), "-e", "vggish", "--no-progress"]


def c_second_train_writer(w: Path) -> list[str]:
    _train_ready(w)
    _hold_lock(w, "train", "ave-fully__cpsp")
    return ["train", "-w", str(w), "--epochs", "1"]


_HOLDERS: list[subprocess.Popen] = []


def _read_only(w: Path) -> bool:
    """Bind-mount `w` read-only (needs root and mount rights)."""
    ok = subprocess.run(["mount", "--bind", str(w), str(w)], capture_output=True).returncode == 0
    ok = ok and subprocess.run(["mount", "-o", "remount,ro,bind", str(w)],
                               capture_output=True).returncode == 0
    if ok:
        _MOUNTS.append(w)
    return ok


_MOUNTS: list[Path] = []


def c_read_only_status(w: Path) -> list[str]:
    _ready(w)
    _read_only(w)
    return ["status", "-w", str(w)]


def c_read_only_cut(w: Path) -> list[str]:
    _ready(w)
    (w / "clips" / "00000-of-00001.h5").unlink()
    _read_only(w)
    return ["cut", "-w", str(w)]


def c_read_only_manifest(w: Path) -> list[str]:
    _config(w)
    _read_only(w)
    return ["manifest", "-w", str(w)]


def c_disk_full_download_copy(w: Path) -> list[str]:
    """A 160 kB tmpfs and `download.local_files: copy` of a 30 s clip (~240 kB): the copy
    fills the disk; the clip must stay pending, not fail."""
    sys.path.insert(0, str(REPO_ROOT))
    from tests.bad_media_corpus import good_clip
    videos = w.parent / f"{w.name}-videos"
    good_clip(videos / "clip0.mp4", seconds=30.0)
    w.mkdir(parents=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(w)],
                      capture_output=True).returncode == 0:
        _MOUNTS.append(w)
    _config(w, download__local_files="copy", download__workers=1)
    pd.DataFrame({"clip_id": ["clip0"], "video_id": ["clip0"],
                  "source": [str(videos / "clip0.mp4")], "start_s": 0.0, "end_s": 2.0,
                  "labels": [["Church bell"]], "split": "test"}).to_parquet(
        w / "manifest.parquet", index=False)
    return ["download", "-w", str(w)]


def c_demo_too_few_clips(w: Path) -> list[str]:
    return ["demo", "-w", str(w), "--clips", "15", "--classes", "4"]


def c_demo_unknown_class_count(w: Path) -> list[str]:
    return ["demo", "-w", str(w), "--classes", "9"]


def c_disk_full_manifest(w: Path) -> list[str]:
    """A 64 kB tmpfs: the manifest of 4,143 AVE clips does not fit."""
    w.mkdir(parents=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(w)],
                      capture_output=True).returncode == 0:
        _MOUNTS.append(w)
    _config(w)
    return ["manifest", "-w", str(w)]


def c_disk_full_extract(w: Path) -> list[str]:
    """features/ on a 24 kB tmpfs: the first part (one clip, ~18 kB) fits, the next does not.
    The stored clip stays done, the others pending (tests/test_store_bad_inputs.py reruns)."""
    _ready(w)
    _config(w, extract__extractors=["vgg19"], extract__weights={"vgg19": "random"},
            extract__options={"vgg19": {"image_size": 32, "segments": 1, "frames_per_segment": 2}},
            extract__flush_clips=1, extract__batch_size=2)
    (w / "features").mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24k", "tmpfs", str(w / "features")],
                      capture_output=True).returncode == 0:
        _MOUNTS.append(w / "features")
    return ["extract", "-w", str(w), "-e", "vgg19", "--decode", "cpu", "--no-progress"]


CASES = [
    Case("avel.yaml is not YAML", c_config_not_yaml),
    Case("avel.yaml has an unknown key", c_config_unknown_key),
    Case("avel.yaml missing", c_config_missing),
    Case("avel.yaml cut.workers: many", c_config_bad_type),
    Case("sharding.num_shards: 0", c_num_shards_zero),
    Case("--shard-index 5 --num-shards 2", c_shard_index_out_of_range),
    Case("cut --workers -5", c_cut_workers_negative, fast=True),
    Case("download --workers 0", c_download_workers_zero),
    Case("download.identities[1].proxy: proxy.lab:3128", c_identity_proxy_not_a_url),
    Case("download.identities[0].cookies_file missing", c_identity_cookies_missing),
    Case("cut.audio_recipe: nosuch", c_unknown_cut_recipe),
    Case("extract.options.vggish.recipe: nosuch", c_unknown_extract_recipe),
    Case("extract -e nosuch", c_unknown_extractor_flag),
    Case("extract.extractors: [vggish, nosuch] (run)", c_unknown_extractor_in_config),
    Case("init --dataset nosuch", c_unknown_dataset),
    Case("AVE list: unknown category line", c_annotation_unknown_label),
    Case("AVE list: start time 'abc'", c_annotation_bad_time),
    Case("AVE list: 50 MB of one repeated row", c_huge_list_file),
    Case("manifest.parquet truncated", c_manifest_truncated, fast=True),
    Case("manifest.parquet is a CSV", c_manifest_not_parquet),
    Case("manifest.parquet lacks columns", c_manifest_missing_column),
    Case("cut ledger SQLite is garbage", c_ledger_garbage_cut, fast=True),
    Case("extract ledger SQLite truncated", c_ledger_truncated_extract),
    Case("download ledger SQLite all zeros", c_ledger_garbage_download),
    Case("clips/<shard>.h5 truncated (extract)", c_clips_truncated_extract),
    Case("clips/<shard>.h5 truncated (cut)", c_clips_truncated_cut),
    Case("clips/<shard>.h5 with external storage", c_clips_external_storage),
    Case("clip frames: 632-byte JPEG claiming 13000x13000 (extract)", c_extract_jpeg_bomb,
         expect=1),
    Case("features shard truncated (export)", c_features_truncated_export),
    Case("features shard is a VDS of an outside file", c_features_vds_train),
    Case("features shard: clip1 in two rows (export)", c_features_duplicate_clip, fast=True),
    Case("export vggsound-avel from an AVE work dir", c_export_vav_from_ave, fast=True),
    Case("export vggsound-avel, manifest without category", c_export_vav_no_category),
    Case("train --set lr=abc", c_set_lr_abc, fast=True),
    Case("train --set nosuch=1", c_set_unknown_key),
    Case("train --set lr (no '=')", c_set_no_equals),
    Case("train --set lr=nan", c_set_lr_nan, fast=True),
    Case("train --set lr=1e309 (overflows to inf)", c_set_lr_overflow),
    Case("train --epochs 0", c_train_epochs_zero),
    Case("train.overrides.epochs: 0", c_overrides_epochs_zero),
    Case("train --set lr=1e12 (loss goes NaN)", c_train_diverges, fast=True),
    Case("planted hostile last.pt (train)", c_planted_last_pt_train, fast=True),
    Case("last.pt of another network (train)", c_foreign_last_pt_train, fast=True),
    Case("rerun of a run with --set lr=5e-4 precision=float64", c_resume_other_settings,
         fast=True),
    Case("second `avel train` on a locked run", c_second_train_writer, fast=True),
    Case("eval --trust-pickles: pickle names models.nosuch_module", c_trusted_pickle_missing_module,
         fast=True),
    Case("cut.timeout_s: -0.0", c_config_negative_zero_timeout, fast=True),
    Case("cut.max_pad_s: .nan", c_config_nan_float),
    Case("cut.workers: a 1 MB string", c_config_huge_value, fast=True),
    Case("status -w on a missing directory", c_status_missing_dir, fast=True),
    Case("manifest in a work directory named with byte 0xff", c_workdir_not_utf8, fast=True),
    Case("run --stages export, background videos missing", c_run_export_incomplete),
    Case("train --model nosuch", c_train_unknown_model),
    Case("train --task nosuch", c_train_unknown_task),
    Case("eval --checkpoint missing file", c_eval_checkpoint_missing),
    Case("eval --checkpoint random bytes", c_eval_checkpoint_garbage),
    Case("eval --checkpoint hostile pickle", c_eval_checkpoint_hostile, fast=True),
    Case("eval --checkpoint hostile --official-arch", c_eval_official_hostile),
    Case("planted hostile best.pt (eval)", c_planted_best_pt, fast=True),
    Case("planted hostile last.pt (eval)", c_planted_last_pt),
    Case("extract --weights hostile pickle", c_weights_hostile, fast=True),
    Case("extract --weights garbage", c_weights_garbage),
    Case("extract --weights missing file", c_weights_missing),
    Case("import ave: HDF5 external storage", c_import_ave_external_storage, fast=True),
    Case("import ave: HDF5 external link", c_import_ave_external_link),
    Case("import ave: HDF5 virtual dataset", c_import_ave_virtual),
    Case("import ave: NaN in features", c_import_ave_nan),
    Case("import ave: wrong shape", c_import_ave_wrong_shape),
    Case("import ave: truncated HDF5", c_import_ave_truncated),
    Case("import ave: 10^9 rows declared, none stored, over existing features",
         c_import_ave_declared_not_stored, fast=True),
    Case("import ave: one gzip chunk of 1.3 GB zeros (1.3 MB on disk)", c_import_ave_huge_chunk,
         fast=True),
    Case("import vggsound-avel: pickle without --trust-pickles", c_import_vav_pickle_untrusted,
         fast=True),
    Case("import vggsound-avel: zip bomb (1 MB -> 1 GB)", c_import_vav_zip_bomb, fast=True),
    Case("import llp: object .npy (pickle)", c_import_llp_object_npy),
    Case("import llp: inf in .npy", c_import_llp_nan_npy),
    Case("second `avel cut` on a locked shard", c_second_cut_writer, fast=True),
    Case("second `avel download` on a locked shard", c_second_download_writer),
    Case("second `avel extract` on a locked shard", c_second_extract_writer),
    Case("read-only workdir: status", c_read_only_status, expect=0, needs_root=True),
    Case("read-only workdir: cut", c_read_only_cut, expect=5, needs_root=True),
    Case("read-only workdir: manifest", c_read_only_manifest, expect=5, needs_root=True),
    Case("disk full (64 kB tmpfs): manifest", c_disk_full_manifest, expect=5, needs_root=True),
    Case("disk full (24 kB tmpfs under features/): extract", c_disk_full_extract, expect=5,
         needs_root=True),
    Case("disk full (160 kB tmpfs): download, local_files copy", c_disk_full_download_copy,
         expect=5, needs_root=True),
    Case("demo --clips 15 (4 classes need 16)", c_demo_too_few_clips),
    Case("demo --classes 9 (the demo has 6)", c_demo_unknown_class_count),
]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "AVEL_HOME": str(Path(tempfile.gettempdir())
                                                                        / "avel-bad-inputs-home")}


def run_case(case: Case, root: Path, timeout: float = 300) -> Result:
    w = root / case.setup.__name__
    if w.exists():
        shutil.rmtree(w)
    try:
        args = case.setup(w)
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "pipeline", *args], env=_env(), cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=timeout)
        seconds = time.monotonic() - start
    finally:
        for holder in _HOLDERS:
            holder.kill()
            holder.wait()
        _HOLDERS.clear()
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    message = next((ln for ln in lines if ln.startswith(("error:", "stopped:", "internal error:",
                                                          "Error:"))), "")
    if not message and lines:
        message = lines[-1]
    if proc.returncode == 0 and not message:
        message = (proc.stdout.strip().splitlines() or [""])[-1]
    code_ran = any(p.name == PWNED for p in w.rglob(PWNED)) if w.is_dir() else False
    return Result(case, proc.returncode, message, "Traceback" in proc.stderr, code_ran, seconds,
                  args[0])


def cleanup() -> None:
    for mount in reversed(_MOUNTS):
        subprocess.run(["umount", str(mount)], capture_output=True)
    _MOUNTS.clear()


def can_mount() -> bool:
    if os.geteuid() != 0:
        return False
    with tempfile.TemporaryDirectory() as d:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", d],
                            capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", d], capture_output=True)
        return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="only the fast subset")
    parser.add_argument("--only", default="", help="run cases whose function name contains this")
    args = parser.parse_args()
    mount = can_mount()
    cases = [c for c in CASES if (not args.fast or c.fast) and (mount or not c.needs_root)
             and args.only in c.setup.__name__]
    bad = 0
    print("| # | input | command | exit | s | message |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="avel-bad-inputs-") as tmp:
        for n, case in enumerate(cases, 1):
            try:
                result = run_case(case, Path(tmp))
            finally:
                cleanup()
            flags = ("" if result.ok else " **UNEXPECTED**") + (" TRACEBACK" if result.traceback
                                                                else "")
            flags += " CODE RAN" if result.code_ran else ""
            bad += not result.ok
            message = result.message.replace("|", "\\|").replace(tmp, "…")[:220]
            print(f"| {n} | {case.name} | `avel {result.command}` | {result.code}{flags} "
                  f"| {result.seconds:.1f} | {message} |", flush=True)
    print(f"\n{len(cases)} cases, {bad} unexpected, "
          f"{sum(1 for _ in cases) - bad} as expected; read-only/disk-full cases "
          f"{'run' if mount else 'skipped (need root and mount)'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
