"""Paths in avel.yaml and the manifest are relative to the work directory wherever the file
is inside it, so a copied or moved work directory reads its own files, never the original's."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import yaml

from pipeline.commands.init import init_workdir
from pipeline.core.config import load_config, portable
from pipeline.datasets.manifest import build_manifest, load_manifest
from pipeline.demo.runner import DemoSize, demo_config
from pipeline.export import ave as export_ave
from tests.fixtures_export import fill_store, h5


def _paths(node: object) -> list[str]:
    if isinstance(node, dict):
        return [p for v in node.values() for p in _paths(v)]
    if isinstance(node, list):
        return [p for v in node for p in _paths(v)]
    return [node] if isinstance(node, str) and "/" in node and "://" not in node else []


def test_portable_is_relative_inside_and_absolute_outside(tmp_path: Path) -> None:
    assert portable(tmp_path / "w", tmp_path / "w" / "data" / "a.txt") == "data/a.txt"
    assert portable(tmp_path / "w", "data/a.txt") == "data/a.txt"
    assert portable(tmp_path / "w", tmp_path / "elsewhere.txt") == str((tmp_path / "elsewhere.txt").resolve())


def test_init_and_demo_configs_hold_no_absolute_path(tmp_path: Path) -> None:
    for dataset in ("ave", "llp", "vggsound-avel"):
        config = yaml.safe_load(init_workdir(tmp_path / dataset, dataset).read_text())
        assert not [p for p in _paths(config) if Path(p).is_absolute()], dataset
    root = tmp_path / "demo"
    config = demo_config(Path(portable(root, root / "source")), "http://127.0.0.1:1", DemoSize())
    assert config["dataset"]["files"] == {"annotations": "source/Annotations.txt",
                                          "orders_dir": "source"}


def test_a_copied_workdir_reads_its_own_files(tmp_path: Path, shared_data: Path) -> None:
    original = tmp_path / "original"
    (original / "data").mkdir(parents=True)
    lines = (shared_data / "ave" / "Annotations.txt").read_text().splitlines()
    (original / "data" / "Annotations.txt").write_text("\n".join(lines) + "\n")
    for split in ("train", "val", "test"):
        shutil.copy(shared_data / "ave" / f"{split}_order.h5", original / "data")
    (original / "avel.yaml").write_text(yaml.safe_dump({"dataset": {
        "name": "ave", "source": "local", "videos_dir": "videos", "limit": 8,
        "files": {"annotations": "data/Annotations.txt", "orders_dir": "data"}}}))
    build_manifest(original, load_config(original))
    stored = fill_store(original, "vggish", (10, 128), seed=3)
    fill_store(original, "vgg19", (10, 7, 7, 512), seed=4)

    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    # the copy's own list differs from the original's: it must read the copy's
    first = lines[0].split("&")
    (copy / "data" / "Annotations.txt").write_text(
        "\n".join(["&".join([first[0], "copyOwnId0", *first[2:]]), *lines[1:]]) + "\n")
    shutil.rmtree(original)

    manifest = build_manifest(copy, load_config(copy))
    assert len(manifest) == 8 and manifest["video_id"][0] == "copyOwnId0"
    assert all(not Path(s).is_absolute() and s.startswith("videos/") for s in manifest["source"])
    assert str(original) not in (copy / "avel.yaml").read_text()
    export_ave.export(copy, copy / "out", allow_missing=True,
                      orders_dir=copy / load_config(copy).dataset.files["orders_dir"])
    audio = h5(copy / "out" / "audio_feature.h5")
    assert audio.shape[0] == 8
    for i, clip in enumerate(load_manifest(copy)["clip_id"]):
        if i == 0:  # a clip the original never had: no features, a zero row
            assert not audio[0].any()
            continue
        np.testing.assert_array_equal(audio[i], stored[clip].astype(np.float64))
