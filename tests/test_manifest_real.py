"""Manifests built from the datasets' real list files (tests/data/real), checked against
counts and fields read independently from those files."""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
import pandas as pd
import pytest
import yaml

from pipeline.core.config import parse_config
from pipeline.datasets.manifest import build_manifest, load_manifest


def make_config(workdir: Path, dataset: dict) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "avel.yaml").write_text(yaml.safe_dump({"dataset": dataset}))


def build(workdir: Path, dataset: dict) -> pd.DataFrame:
    make_config(workdir, dataset)
    config = parse_config({"dataset": dataset}, workdir / "avel.yaml")
    build_manifest(workdir, config)
    return load_manifest(workdir)


def test_ave_manifest_follows_annotations_and_order_files(tmp_path, shared_data):
    ave = shared_data / "ave"
    table = build(tmp_path, {"name": "ave", "files": {"annotations": str(ave / "Annotations.txt"),
                                                       "orders_dir": str(ave)}})
    lines = [ln.split("&") for ln in (ave / "Annotations.txt").read_text().splitlines() if ln.strip()]
    assert len(table) == len(lines) == 4143
    assert list(table["video_id"]) == [row[1] for row in lines]
    assert [c[0] for c in table["labels"]] == [row[0] for row in lines]
    assert list(table["event_start"]) == [int(row[3]) for row in lines]
    assert list(table["event_end"]) == [int(row[4]) for row in lines]
    assert table["clip_id"].is_unique
    counts = table["split"].value_counts().to_dict()
    assert counts == {"train": 3339, "val": 402, "test": 402}
    for split in ("train", "val", "test"):
        with h5py.File(ave / f"{split}_order.h5") as fh:
            order = sorted(int(i) for i in fh["order"][()])
        assert sorted(table.index[table["split"] == split]) == order


def test_ave_repeated_video_gets_one_clip_per_row(tmp_path, shared_data):
    ave = shared_data / "ave"
    table = build(tmp_path, {"name": "ave", "files": {"annotations": str(ave / "Annotations.txt")}})
    # -1qyr-IzqKY is annotated twice (Ukulele on line 1691, Accordion on line 3880)
    rows = table[table["video_id"] == "-1qyr-IzqKY"]
    assert list(rows["clip_id"]) == ["-1qyr-IzqKY", "-1qyr-IzqKY__2"]
    assert list(rows["category"]) == ["Ukulele", "Accordion"]
    assert list(rows["row"]) == [1690, 3879]


def test_llp_manifest_counts_and_eval_rows(tmp_path, shared_data):
    llp = shared_data / "llp"
    files = {"train": "AVVP_train.csv", "val": "AVVP_val_pd.csv", "test": "AVVP_test_pd.csv",
             "eval_audio": "AVVP_eval_audio.csv", "eval_visual": "AVVP_eval_visual.csv"}
    table = build(tmp_path, {"name": "llp", "files": {k: str(llp / v) for k, v in files.items()}})
    assert len(table) == 11849
    assert table["split"].value_counts().to_dict() == {"train": 10000, "val": 649, "test": 1200}
    full = pd.read_csv(llp / "AVVP_dataset_full.csv", sep="\t")
    assert set(table["clip_id"]) == set(full["filename"])
    evaluated = set(table.loc[table["split"].isin(["val", "test"]), "clip_id"])
    for modality in ("audio", "visual"):
        rows = pd.read_csv(llp / f"AVVP_eval_{modality}.csv", sep="\t")
        expected = rows[rows["filename"].isin(evaluated)]
        attached = table[f"{modality}_events"].map(len)
        assert attached.sum() == len(expected)  # every row naming a val/test clip attaches
        assert attached[table["split"] == "train"].sum() == 0
    # BjCEufrlXm4_20_30 is a train clip labelled Speech,Dog
    row = table.set_index("clip_id").loc["BjCEufrlXm4_20_30"]
    assert (row["video_id"], row["start_s"], row["end_s"], list(row["labels"])) == \
        ("BjCEufrlXm4", 20.0, 30.0, ["Speech", "Dog"])


def test_llp_ids_with_underscores_and_dashes_parse_from_the_right(tmp_path, shared_data):
    llp = shared_data / "llp"
    files = {s: str(llp / f) for s, f in
             [("train", "AVVP_train.csv"), ("val", "AVVP_val_pd.csv"), ("test", "AVVP_test_pd.csv")]}
    table = build(tmp_path, {"name": "llp", "files": files})
    tricky = table[table["video_id"].str.contains("_")]
    assert len(tricky) > 100
    # the spec: the id is always the first 11 characters of the file name
    assert (tricky["clip_id"].str[:11] == tricky["video_id"]).all()
    assert (table["video_id"].str.len() == 11).all()


def test_vggsound_test_list(tmp_path, shared_data):
    path = shared_data / "vggsound" / "test.csv"
    with open(path, newline="") as fh:
        rows = [r for r in csv.reader(fh) if r]
    table = build(tmp_path, {"name": "vggsound", "files": {"test": str(path)}})
    assert len(table) == len(rows) == 15446
    by_id = table.set_index("clip_id")
    with_underscore = [r for r in rows if "_" in r[0][:-len("_000000.mp4")]][:5]
    with_dash = [r for r in rows if "-" in r[0]][:5]
    assert with_underscore and with_dash
    for name, label in with_underscore + with_dash:
        stem = name[:-4]
        ytid, start = stem[:-7], int(stem[-6:])
        row = by_id.loc[stem]
        assert (row["video_id"], row["start_s"], row["end_s"], list(row["labels"])) == \
            (ytid, float(start), float(start + 10), [label])


@pytest.mark.parametrize("name", ["ave", "llp", "vggsound", "vggsound-avel", "vggsound-avel50k"])
def test_every_dataset_preset_is_a_valid_config(name):
    from pipeline.core.config import dataset_preset
    preset = dataset_preset(name)
    config = parse_config(preset["config"], f"manifests/{name}.yaml")
    assert config.dataset.name == name
    assert preset["recipes"]["sample_rate"] == 16000


@pytest.mark.parametrize("name", ["ave", "llp", "vggsound", "vggsound-avel", "vggsound-avel50k"])
def test_preset_recipes_block_is_what_its_config_runs(name):
    """The `recipes:` block documents the original recipes; the config is what runs, so the
    two must agree (LLP's VGGish once said whole-clip while `ave` ran)."""
    from pipeline.core.config import dataset_preset, parse_config

    preset = dataset_preset(name)
    recipes, config = preset["recipes"], parse_config(preset["config"], name)
    assert recipes["audio"] == config.cut.audio_recipe
    assert recipes["frames"] == config.cut.frames_recipe
    assert recipes["extractors"] == config.extract.extractors
    if "vggish" in config.extract.extractors:
        ran = config.extract.options.get("vggish", {}).get("recipe", "ave")
        assert recipes["vggish_segmenting"] == ran
