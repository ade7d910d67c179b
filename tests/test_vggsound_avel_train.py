"""VGGSound-AVEL from avel's own features: the manifest reads the released per-second avc
labels (per-video zips, as the CPSP loader reads them), `avel train --task
vggsound-avel-*` trains from the store, and every export format trains back.

Expected labels come from the CPSP loader's `_obtain_avel_label`, restated in
`cpsp_label` below (column class_id = avc, last column = 1 - avc)."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pipeline.core.config import load_config
from pipeline.core.errors import InputError
from pipeline.core.sharding import Shard, shard_of
from pipeline.core.workdir import Workdir
from pipeline.datasets.manifest import build_manifest, load_manifest
from pipeline.export import vggsound_avel as vav
from pipeline.store import features as store
from pipeline.train import stage as train_stage

CATS = ["Bark", "Cat purring", "Chainsaw", "Violin"]
N = 24
ONE_EPOCH = {"epochs": 1, "batch_size": 4}


def zip_pickle(path: Path, array: np.ndarray, protocol: int = 2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(path.stem + ".pkl", pickle.dumps(array, protocol=protocol))


def cpsp_label(avc: np.ndarray, class_id: int, n_classes: int) -> np.ndarray:
    label = np.zeros((10, n_classes + 1))
    label[:, class_id] = avc
    label[:, -1] = 1 - avc
    return label


def make_workdir(root: Path, n: int = N, shards: int = 2, with_avc: bool = True) -> tuple[Path, dict]:
    """Released-format meta CSV + categories + avc_label zips ([1,10], protocol 2 like the
    release), the manifest, and vggish + resnet_layer3 (float16) stores over `shards`."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "cats.txt").write_text("\n".join(CATS) + "\n")
    rng = np.random.default_rng(0)
    lines, avc = ["category,video_id,split"], {}
    for i in range(n):
        vid = f"vid{i:03d}xxxx_{10 * i:06d}"
        lines.append(f"{CATS[i % 4]},{vid}.mp4,{('train', 'train', 'val', 'test')[i % 4]}")
        avc[vid] = rng.integers(0, 2, (1, 10)).astype(np.float64)
        zip_pickle(root / "avc_label" / f"{vid}.mp4.zip", avc[vid])
    (root / "meta.csv").write_text("\n".join(lines) + "\n")
    files = {"meta": "meta.csv", "categories": "cats.txt"}
    if with_avc:
        files["avc_labels"] = "avc_label"
    (root / "avel.yaml").write_text(yaml.safe_dump(
        {"dataset": {"name": "vggsound-avel", "files": files}, "sharding": {"num_shards": shards}}))
    build_manifest(root, load_config(root))
    order = list(load_manifest(root)["clip_id"])
    for name, shape in (("vggish", (10, 128)), ("resnet_layer3", (10, 1024, 7, 7))):
        for s in range(shards):
            ids = [c for c in order if shard_of(c, shards) == s]
            rows = np.stack([rng.standard_normal(shape) for _ in ids]).astype(np.float16)
            target = Workdir(root).features_file(name, Shard(s, shards))
            store.write_part(target, ids, rows, {"extractor": name, "weights": "random"})
            store.consolidate(target, order=order)
        store.build_index(Workdir(root).features_dir(name), order)
    return root, avc


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return make_workdir(tmp_path_factory.mktemp("vav") / "w")


def test_manifest_carries_the_released_avc_labels(workdir):
    root, avc = workdir
    manifest = load_manifest(root)
    for clip, labels in zip(manifest["clip_id"], manifest["avc"]):
        assert list(labels) == avc[clip].reshape(10).astype(int).tolist()


def test_training_labels_are_the_cpsp_loaders(workdir):
    root, avc = workdir
    data = train_stage.load_training_data(root, load_config(root), "vggish", "resnet_layer3")
    assert data.num_classes == len(CATS) and data.class_names == CATS + ["background"]
    manifest = load_manifest(root)
    for split, dataset in data.datasets.items():
        for k in range(len(dataset)):
            item = dataset[k]
            r = int(item["index"])
            clip, class_id = manifest.at[r, "clip_id"], int(manifest.at[r, "class_id"])
            assert manifest.at[r, "split"] == split
            expected = cpsp_label(avc[clip].reshape(10), class_id, len(CATS))
            np.testing.assert_array_equal(item["labels"].numpy(), expected)


@pytest.mark.parametrize("in_memory", ["always", "never"])
def test_store_rows_reach_training_in_float16(workdir, in_memory):
    """The store is float16: in memory and streamed, items keep that dtype (half the RAM
    and worker traffic); the values are the shard files' rows."""
    root, _ = workdir
    config = load_config(root)
    config.train.in_memory = in_memory
    data = train_stage.load_training_data(root, config, "vggish", "resnet_layer3")
    item = data.datasets["train"][3]
    assert item["video"].dtype == torch.float16 and item["video"].shape == (10, 1024, 7, 7)
    clip = data.clip_ids[int(item["index"])]
    with store.open_features(root, "resnet_layer3") as reader:
        np.testing.assert_array_equal(item["video"].numpy(), reader[clip])


def test_in_memory_auto_decides_from_the_stores_dtype_and_available_memory(workdir):
    root, _ = workdir
    with store.open_features(root, "vggish") as a, store.open_features(root, "resnet_layer3") as v:
        need = train_stage.in_memory_bytes(N, [a, v])
    assert need == N * (10 * 128 + 10 * 1024 * 7 * 7) * 2  # float16: 2 bytes a value
    # the full dataset: 101,072 clips of float16 maps need ~101 GB, streamed on 128 GB
    full = 101_072 * (10 * 128 + 10 * 1024 * 7 * 7) * 2
    assert not train_stage.fits_in_memory(full, 128 << 30)
    assert train_stage.fits_in_memory(need, 4 * need)
    assert not train_stage.fits_in_memory(need, need)


@pytest.mark.slow
@pytest.mark.parametrize("task", ["vggsound-avel-fully", "vggsound-avel-weakly"])
def test_cpsp_trains_from_features_avel_extracted(workdir, task):
    root, _ = workdir
    result = train_stage.train(root, task=task, model="cpsp", overrides=ONE_EPOCH, device="cpu",
                               progress=False)
    assert result["num_classes"] == len(CATS)
    assert Path(result["run_dir"], "checkpoints", "best.pt").is_file()


def test_export_trains_back_through_the_cpsp_loader_layout(workdir, tmp_path):
    """avel's own export (protocol-2 pickles) read by the numpy-only unpickler gives the
    same items as the store, and trains."""
    root, _ = workdir
    out = tmp_path / "vav"
    vav.export(root, out)
    config = load_config(root)
    config.train.original_vggsound_avel = {
        "meta": str(out / "vggsound-avel100k.csv"), "categories": str(out / vav.CATEGORIES_FILE),
        "audio_dir": str(out / vav.AUDIO_DIR), "video_dir": str(out / vav.VISUAL_DIR),
        "label_dir": str(out / vav.LABEL_DIR)}
    exported = train_stage.load_training_data(root, config)
    config.train.original_vggsound_avel = {}
    ours = train_stage.load_training_data(root, config, "vggish", "resnet_layer3")
    by_clip = {ours.clip_ids[int(ours.datasets["test"][k]["index"])]: ours.datasets["test"][k]
               for k in range(len(ours.datasets["test"]))}
    test_ds = exported.datasets["test"]
    assert len(test_ds) == len(by_clip)
    for k in range(len(test_ds)):
        item, clip = test_ds[k], test_ds.video_ids[k]
        mine = by_clip[clip]
        for key in ("audio", "video", "labels"):
            np.testing.assert_array_equal(item[key].numpy(), mine[key].numpy().astype(np.float32))
    config.train.original_vggsound_avel = {
        "meta": str(out / "vggsound-avel100k.csv"), "categories": str(out / vav.CATEGORIES_FILE),
        "audio_dir": str(out / vav.AUDIO_DIR), "video_dir": str(out / vav.VISUAL_DIR),
        "label_dir": str(out / vav.LABEL_DIR)}
    result = train_stage.train(root, config, task="vggsound-avel-fully", model="cpsp",
                               overrides=ONE_EPOCH, device="cpu", progress=False)
    assert result["num_classes"] == len(CATS)


def test_missing_avc_labels_say_where_to_get_them(tmp_path):
    root, _ = make_workdir(tmp_path / "w", n=8, with_avc=False)
    with pytest.raises(InputError, match="avc_labels"):
        train_stage.load_training_data(root, load_config(root), "vggish", "resnet_layer3")


def test_a_bad_avc_file_is_named(tmp_path):
    root, _ = make_workdir(tmp_path / "w", n=4)
    victim = sorted((root / "avc_label").iterdir())[1]
    zip_pickle(victim, np.zeros((3, 3)))
    with pytest.raises(InputError) as err:
        build_manifest(root, load_config(root))
    assert victim.name in str(err.value) and "avc" in str(err.value)
    victim.unlink()
    with pytest.raises(InputError) as err:
        build_manifest(root, load_config(root))
    assert "meta.csv" in str(err.value) and "line 3" in str(err.value)
