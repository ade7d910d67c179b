"""Nothing read from disk is trusted: planted pickles never run, HDF5 files cannot pull in
outside bytes, zip members are bounded, the ledger is checked against the files, class ids come
from the run's class list, and unreadable files are named."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from models.training.trainer import CheckpointError, _numpy_rng_as_tensors, _numpy_rng_from, load_checkpoint
from models.weights.checkpoints import read_state_dict
from pipeline.core.errors import InputError
from pipeline.core.ledger import Ledger
from pipeline.core.safe_hdf5 import open_checked
from pipeline.core.shard_lock import shard_lock
from pipeline.datasets.readers.ave import read_annotations
from pipeline.run.status import collect, render
from pipeline.train.stage import CLASSES_FILE, TrainingData, run_classes, save_classes, segment_labels
from tests.conftest import REPO_ROOT, cli_env


class _Evil:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.target), "w"))


# ----------------------------------------------------------------------------- pickles

def test_planted_checkpoint_is_refused_and_runs_no_code(tmp_path):
    marker = tmp_path / "PWNED"
    torch.save({"model": {}, "x": _Evil(marker)}, tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match="could run code"):
        load_checkpoint(tmp_path / "last.pt")
    assert not marker.exists()


def test_trusted_module_pickle_still_runs_no_code(tmp_path):
    """`--trust-pickles` admits the authors' classes (as shells) and torch.nn layers, not any
    callable: a whole-module pickle that also carries a reducer calling `open` is refused by
    name, and the file it would create does not appear."""
    marker = tmp_path / "PWNED"
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    model.payload = _Evil(marker)  # pickled with the module, as an attribute
    torch.save(model, tmp_path / "psp.pt")
    with pytest.raises(ValueError, match="builtins.open|io.open"):
        read_state_dict(tmp_path / "psp.pt", trust_pickles=True)
    assert not marker.exists()
    torch.save(model, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match="builtins.open|io.open"):  # the pre-1.6 format too
        read_state_dict(tmp_path / "legacy.pt", trust_pickles=True)
    assert not marker.exists()
    clean = torch.nn.Sequential(torch.nn.Linear(2, 2))
    for zipped in (True, False):
        torch.save(clean, tmp_path / "clean.pt", _use_new_zipfile_serialization=zipped)
        got = read_state_dict(tmp_path / "clean.pt", trust_pickles=True)
        assert got.keys() == clean.state_dict().keys()
        assert all(torch.equal(got[k], v) for k, v in clean.state_dict().items())


def test_trainer_checkpoint_with_rng_state_loads_weights_only(tmp_path):
    """The trainer's own last.pt (numpy RNG state included) passes weights_only loading, and
    the RNG state comes back bit for bit."""
    np.random.seed(3)
    state = np.random.get_state()
    torch.save({"model": {"w": torch.ones(2)}, "rng": {"numpy": _numpy_rng_as_tensors(),
                                                        "python": random.getstate()}},
               tmp_path / "last.pt")
    back = load_checkpoint(tmp_path / "last.pt")
    restored = _numpy_rng_from(back["rng"]["numpy"])
    assert restored[0] == state[0] and np.array_equal(restored[1], state[1])
    np.random.set_state(restored)
    expected = np.random.RandomState()
    expected.set_state(state)
    assert np.random.rand() == expected.rand()


# ----------------------------------------------------------------------------- HDF5

def _outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside.h5"
    with h5py.File(path, "w") as fh:
        fh["x"] = np.arange(4.0)
    return path


def test_external_storage_is_refused_before_any_byte_is_read(tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"SECRET" * 10)
    with h5py.File(tmp_path / "f.h5", "w") as fh:
        fh.create_dataset("avadataset", shape=(8,), dtype="u1",
                          external=[(str(secret), 0, h5py.h5f.UNLIMITED)])
    with h5py.File(tmp_path / "f.h5", "r") as fh:  # h5py alone would hand the bytes over
        assert bytes(fh["avadataset"][()]).startswith(b"SECRET")
    with pytest.raises(InputError, match="external files") as err:
        open_checked(tmp_path / "f.h5")
    assert str(tmp_path / "f.h5") in str(err.value)


def test_external_link_and_foreign_virtual_dataset_are_refused(tmp_path):
    outside = _outside(tmp_path)
    with h5py.File(tmp_path / "link.h5", "w") as fh:
        fh["deep/x"] = h5py.ExternalLink(str(outside), "x")
    with h5py.File(tmp_path / "vds.h5", "w") as fh:
        layout = h5py.VirtualLayout(shape=(4,), dtype="f8")
        layout[:] = h5py.VirtualSource(str(outside), "x", shape=(4,))
        fh.create_virtual_dataset("features", layout)
    with pytest.raises(InputError, match="external link"):
        open_checked(tmp_path / "link.h5")
    with pytest.raises(InputError, match="virtual dataset"):
        open_checked(tmp_path / "vds.h5")
    # the store's own index.h5 is virtual over shards in its own folder: admitted there only
    open_checked(tmp_path / "vds.h5", virtual_within=tmp_path).close()
    with pytest.raises(InputError):
        open_checked(tmp_path / "vds.h5", virtual_within=tmp_path / "elsewhere")


def test_plain_file_with_soft_links_opens(tmp_path):
    with h5py.File(tmp_path / "ok.h5", "w") as fh:
        fh["a/b"] = np.ones(3)
        fh["alias"] = h5py.SoftLink("/a/b")
    with open_checked(tmp_path / "ok.h5") as fh:
        assert fh["alias"][()].tolist() == [1.0, 1.0, 1.0]


# ----------------------------------------------------------------------------- zip bomb

def test_zip_bomb_is_refused_within_200_mb(tmp_path):
    """1 MB on disk, 1 GiB inflated: refused from its header, and the import's peak memory
    grows by far less than 200 MB (measured in a fresh process)."""
    bomb = tmp_path / "clip0.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("clip0.pkl", "w", force_zip64=True) as fh:
            for _ in range(1024):
                fh.write(b"\0" * (1 << 20))
    assert bomb.stat().st_size < 2 << 20
    script = ("import resource,sys,json\n"
              "from pathlib import Path\n"
              "from pipeline.export.vggsound_avel import read_zip\n"
              "from pipeline.core.errors import InputError\n"
              "before=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
              "try:\n    read_zip(Path(sys.argv[1])); msg=''\n"
              "except InputError as e:\n    msg=str(e)\n"
              "after=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
              "print(json.dumps({'grew_kb': after-before, 'msg': msg}))\n")
    out = subprocess.run([sys.executable, "-c", script, str(bomb)], env=cli_env(), cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "cap" in result["msg"] and "clip0.zip" in result["msg"]
    assert result["grew_kb"] < 200 * 1024


def test_zip_member_whose_header_understates_its_size_is_refused(tmp_path):
    """zipfile stops inflating at the declared size, so a lying header yields at most that many
    bytes and then a CRC failure: an InputError naming the file, never a bigger read."""
    from pipeline.export.vggsound_avel import read_zip
    path = tmp_path / "lie.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.pkl", b"\0" * 5000)
    data = bytearray(path.read_bytes())
    data[22:26] = (10).to_bytes(4, "little")  # local header: uncompressed size
    central = data.rfind(b"PK\x01\x02")
    data[central + 24:central + 28] = (10).to_bytes(4, "little")  # central directory
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as zf, zf.open("a.pkl") as fh, pytest.raises(zipfile.BadZipFile):
        fh.read(100)  # 10 bytes, then the CRC check fails: never more than declared
    with pytest.raises(InputError) as err:
        read_zip(path)
    assert str(path) in str(err.value)


# ----------------------------------------------------------------------------- ledger

def test_corrupt_ledger_is_named(tmp_path):
    db = tmp_path / "state" / "cut" / "00000-of-00001.sqlite"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"garbage" * 500)
    with pytest.raises(InputError, match="not a readable ledger") as err:
        Ledger(db)
    assert str(db) in str(err.value)


def test_requeue_missing_puts_done_clips_without_output_back(tmp_path):
    with Ledger(tmp_path / "l.sqlite") as ledger:
        ledger.ensure(["a", "b", "c"])
        for c in "abc":
            ledger.done(c)
        assert ledger.requeue_missing({"a", "c"}, "output-missing", "not in x.h5") == ["b"]
        entry = ledger.get("b")
        assert entry is not None and entry.status == "pending" and entry.reason == "output-missing"
        assert ledger.todo() == ["b"]


def test_status_survives_a_corrupt_ledger_and_names_unreadable_files(tmp_path):
    good = tmp_path / "state" / "cut" / "00000-of-00002.sqlite"
    with Ledger(good) as ledger:
        ledger.ensure(["a"])
        ledger.done("a")
    (tmp_path / "state" / "cut" / "00001-of-00002.sqlite").write_bytes(b"x" * 4096)
    features = tmp_path / "features" / "vggish" / "00000-of-00001.h5"
    features.parent.mkdir(parents=True)
    with h5py.File(features, "w") as fh:
        fh["features"] = np.zeros((50, 10, 128), np.float32)
    features.write_bytes(features.read_bytes()[:3000])
    report = collect(tmp_path)
    assert report["stages"]["cut"]["done"] == 1
    text = render(report)
    assert f"UNREADABLE {tmp_path}/state/cut/00001-of-00002.sqlite" in text
    assert f"UNREADABLE {features}" in text


def test_read_only_ledger_open_changes_nothing(tmp_path):
    path = tmp_path / "l.sqlite"
    with Ledger(path) as ledger:
        ledger.ensure(["a"])
    before = path.read_bytes()
    with Ledger(path, read_only=True) as ledger:
        assert ledger.counts()["pending"] == 1
        with pytest.raises(sqlite3.OperationalError):
            ledger.ensure(["b"])
    assert path.read_bytes() == before


# ----------------------------------------------------------------------------- lock

def test_second_holder_of_a_shard_lock_is_refused_at_once(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys,time\nfrom pipeline.core.shard_lock import shard_lock\n"
         "with shard_lock(sys.argv[1], 'cut', '00000-of-00001'):\n"
         "    print('held', flush=True); time.sleep(60)\n", str(tmp_path)],
        env=cli_env(), cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match=f"pid {holder.pid}"):
            with shard_lock(tmp_path, "cut", "00000-of-00001"):
                pass
        with shard_lock(tmp_path, "cut", "00001-of-00002"):  # another shard is free
            pass
    finally:
        holder.kill()  # SIGKILL: the kernel drops the lock with the process
        holder.wait()
    with shard_lock(tmp_path, "cut", "00000-of-00001"):
        pass


# ----------------------------------------------------------------------------- class ids

def _custom_manifest(categories: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"clip_id": [f"c{i}" for i in range(len(categories))],
                         "category": categories, "event_start": 2, "event_end": 7})


def test_class_ids_do_not_move_when_manifest_rows_are_dropped_or_shuffled(tmp_path):
    """A custom category set (not AVE's 28): the run's class list is stored at training time
    and eval uses it, so dropping the first rows cannot renumber the classes."""
    manifest = _custom_manifest(["Hum", "Beep", "Chirp", "Beep", "Hum", "Chirp"])
    labels, classes = segment_labels(manifest)
    path = tmp_path / "run" / CLASSES_FILE
    save_classes(path, TrainingData({}, len(classes), classes + ["background"], []))
    changed = manifest.iloc[[5, 3, 2]].reset_index(drop=True)  # first rows gone, order shuffled
    again, _ = segment_labels(changed, run_classes(path))
    naive, _ = segment_labels(changed)  # what deriving the classes again would give
    assert np.array_equal(again, labels[[5, 3, 2]])
    assert not np.array_equal(naive, labels[[5, 3, 2]])


def test_unknown_category_in_an_ave_list_names_file_and_line(tmp_path, shared_data):
    lines = (shared_data / "ave" / "Annotations.txt").read_text().splitlines()
    lines.insert(9, "Not a category&abcdefghijk&good&0&10")
    path = tmp_path / "Annotations.txt"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="unknown category") as err:
        read_annotations(path)
    assert err.value.line == 10 and err.value.file == str(path)


def test_repeated_row_in_an_ave_list_is_refused_at_the_repeat(tmp_path, shared_data):
    lines = (shared_data / "ave" / "Annotations.txt").read_text().splitlines()
    path = tmp_path / "Annotations.txt"
    path.write_text("\n".join(lines[:1] + [lines[1]] * 1000) + "\n")
    with pytest.raises(InputError, match="repeats line 2") as err:
        read_annotations(path)
    assert err.value.line == 3


# ----------------------------------------------------------------------------- ledger vs files

@pytest.mark.slow
def test_clip_deleted_from_the_clip_store_is_cut_again(tmp_path):
    from pipeline.core.config import load_config
    from pipeline.core.sharding import Shard
    from pipeline.core.workdir import Workdir
    from pipeline.cut.stage import run_cut
    from tests.bad_media_corpus import good_clip
    from tests.fixtures_cut import make_workdir
    videos = [good_clip(tmp_path / "videos" / f"v{i}.mp4", seconds=2.0, freq=300 + 100 * i)
              for i in range(2)]
    wd = make_workdir(tmp_path / "w", [(f"clip{i}", v, 0.0, 2.0) for i, v in enumerate(videos)])
    shard = Shard(0, 1)
    assert run_cut(wd, load_config(wd), shard, progress=False).done == 2
    shard_file = Workdir(wd).clips_file(shard)
    with h5py.File(shard_file, "a") as fh:
        del fh["clip1"]
    again = run_cut(wd, load_config(wd), shard, progress=False)
    assert (again.requeued, again.done, again.skipped) == (1, 1, 1)
    with h5py.File(shard_file, "r") as fh:
        assert sorted(fh) == ["clip0", "clip1"]
    shard_file.unlink()  # the whole file gone: every clip is cut again, no "already done"
    assert run_cut(wd, load_config(wd), shard, progress=False).done == 2


@pytest.mark.slow
def test_feature_row_deleted_from_a_shard_is_extracted_again(tmp_path):
    from pipeline.core.config import load_config
    from pipeline.core.sharding import Shard
    from pipeline.core.workdir import ledger_stage
    from pipeline.extract.stage import run_extract
    from tests.fixtures_visual import TINY_VGG, write_workdir
    wd = write_workdir(tmp_path / "w", {"a": 4, "b": 4, "c": 4}, extract={
        "options": {"vgg19": TINY_VGG}, "weights": {"vgg19": "random"}, "seed": 1})
    shard = Shard(0, 1)
    first = run_extract(wd.root, "vgg19", shard, load_config(wd.root), progress=False)
    assert first["done"] == 3
    shard_file = wd.features_file("vgg19", shard)
    with h5py.File(shard_file, "r") as fh:
        ids, rows, attrs = fh["clip_id"][()], fh["features"][()], dict(fh.attrs)
    with h5py.File(shard_file, "w") as fh:  # the same file without row "b"
        fh["clip_id"], fh["features"] = ids[[0, 2]], rows[[0, 2]]
        fh.attrs.update(attrs)
    again = run_extract(wd.root, "vgg19", shard, load_config(wd.root), progress=False)
    assert (again["requeued"], again["done"]) == (1, 1)
    with h5py.File(shard_file, "r") as fh:
        back = dict(zip([c.decode() for c in fh["clip_id"][()]], fh["features"][()]))
    np.testing.assert_array_equal(back["b"], rows[1])  # seeded weights: the same row again
    with Ledger(wd.ledger(ledger_stage("extract", "vgg19"), shard)) as ledger:
        entry = ledger.get("b")
        assert entry is not None and entry.status == "done"


# ----------------------------------------------------------------------------- LLP lists

def _llp_files(tmp_path: Path, shared_data: Path, edit: str, change) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    src = shared_data / "llp"
    names = {"train": "AVVP_train.csv", "val": "AVVP_val_pd.csv", "test": "AVVP_test_pd.csv",
             "eval_audio": "AVVP_eval_audio.csv", "eval_visual": "AVVP_eval_visual.csv"}
    files = {}
    for key, name in names.items():
        lines = (src / name).read_text().splitlines()
        if key == edit:
            lines[4] = change(lines[4])
        (tmp_path / name).write_text("\n".join(lines) + "\n")
        files[key] = tmp_path / name
    return files


@pytest.mark.parametrize("edit, change, field", [
    ("eval_audio", lambda ln: "\t".join([ln.split("\t")[0], "-5", "99", ln.split("\t")[3]]), "onset"),
    ("train", lambda ln: "\t".join(["abcdefghijk_1000000000_1000000010", ln.split("\t")[1]]),
     "filename"),
    ("train", lambda ln: "\t".join(["abcdefghijk_-20_-10", ln.split("\t")[1]]), "filename"),
    ("train", lambda ln: "\t".join([ln.split("\t")[0], "Speech,Not_a_class"]), "event_labels"),
    ("eval_visual", lambda ln: "\t".join(ln.split("\t")[:3] + ["Dogs"]), "event_labels"),
])
def test_llp_times_and_classes_are_checked_with_file_and_line(tmp_path, shared_data, edit,
                                                               change, field):
    from pipeline.datasets.readers import llp
    files = _llp_files(tmp_path, shared_data, edit, change)
    with pytest.raises(InputError) as err:
        llp.read(files)
    assert (err.value.file, err.value.line, err.value.field) == (str(files[edit]), 5, field)


def test_partial_import_cannot_relabel_rows_made_with_random_weights(tmp_path):
    from pipeline.export.transfer import StoreWriter
    from pipeline.store import features as store
    (tmp_path / "avel.yaml").write_text("dataset: {name: ave}\n")
    shard_file = tmp_path / "features" / "vggish" / "00000-of-00001.h5"
    store.write_part(shard_file, ["a", "b", "c"], np.ones((3, 10, 128), np.float32),
                     {"weights": "random", "extractor": "vggish"})
    store.consolidate(shard_file, order=["a", "b", "c"], attrs={"weights": "random",
                                                                  "extractor": "vggish"})
    before = shard_file.read_bytes()
    writer = StoreWriter(tmp_path, "vggish", {"weights": "imported: /x"}, ["a", "b", "c"])
    writer.add("a", np.zeros((10, 128), np.float32))
    with pytest.raises(InputError, match="weights='random'") as err:
        writer.finish()
    assert str(shard_file) in str(err.value)
    assert shard_file.read_bytes() == before
    assert not list(store.parts_dir(shard_file).glob("part-*.h5"))
    # importing every clip of the shard replaces them all: one true provenance again
    writer = StoreWriter(tmp_path, "vggish", {"weights": "imported: /x"}, ["a", "b", "c"])
    for c in "abc":
        writer.add(c, np.zeros((10, 128), np.float32))
    assert writer.finish() == 3
    with h5py.File(shard_file, "r") as fh:
        assert fh.attrs["weights"] == "imported: /x"


def test_nan_and_float16_overflow_are_refused_on_import(tmp_path):
    from pipeline.export.transfer import StoreWriter
    (tmp_path / "avel.yaml").write_text("dataset: {name: ave}\n")
    writer = StoreWriter(tmp_path, "vggish", {"weights": "imported: /x"}, ["a"], dtype="float16")
    with pytest.raises(InputError, match="NaN or inf"):
        writer.add("a", np.full((10, 128), 1e5, np.float32))  # finite, but inf as float16
    with pytest.raises(InputError, match="NaN or inf"):
        writer.add("a", np.full((10, 128), np.nan, np.float32))


@pytest.mark.slow
def test_verify_redoes_a_row_whose_bytes_changed(tmp_path):
    from pipeline.core.config import load_config
    from pipeline.core.sharding import Shard
    from pipeline.extract.stage import run_extract
    from tests.fixtures_visual import TINY_VGG, write_workdir
    wd = write_workdir(tmp_path / "w", {"a": 4, "b": 4}, extract={
        "options": {"vgg19": TINY_VGG}, "weights": {"vgg19": "random"}, "seed": 1})
    shard = Shard(0, 1)
    run_extract(wd.root, "vgg19", shard, load_config(wd.root), progress=False)
    shard_file = wd.features_file("vgg19", shard)
    with h5py.File(shard_file, "a") as fh:
        good = fh["features"][1].copy()
        fh["features"][1] = good + 1  # silent corruption of row "b"
    plain = run_extract(wd.root, "vgg19", shard, load_config(wd.root), progress=False)
    assert plain["done"] == 0  # the cheap check sees a row, not its bytes
    checked = run_extract(wd.root, "vgg19", shard, load_config(wd.root), progress=False,
                          verify=True)
    assert (checked["requeued"], checked["done"]) == (1, 1)
    with h5py.File(shard_file, "r") as fh:
        np.testing.assert_array_equal(fh["features"][1], good)


@pytest.mark.slow
def test_downloaded_file_deleted_is_fetched_again(tmp_path, tmp_path_factory):
    from pipeline.core.config import load_config
    from pipeline.core.sharding import Shard
    from pipeline.download.stage import run_download
    from tests.fixtures_download import ledger_entries, make_workdir, synthetic_data
    data = synthetic_data(tmp_path_factory, n_clips=3)
    wd = make_workdir(tmp_path / "w", data, None, source="local")
    shard = Shard(0, 1)
    first = run_download(wd, load_config(wd), shard, progress=False)
    entries = ledger_entries(wd)
    done = [e for e in entries.values() if e.status == "done"]
    assert len(done) == first["done"] >= 2
    gone = wd / done[0].info["file"]
    gone.unlink()
    again = run_download(wd, load_config(wd), shard, progress=False)
    assert again["this_run"]["todo"] == 1 and gone.is_file()  # only the lost one, again
    assert again["done"] == first["done"]
