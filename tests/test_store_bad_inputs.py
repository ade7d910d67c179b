"""Bad inputs to extract / store / import / export that used to lose work or mislead (issue
#25 part C), each run where the user meets it: through `python -m pipeline`, with real HDF5
files, real SQLite ledgers and real file systems."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from pipeline.core.errors import InputError
from pipeline.core.safe_hdf5 import check_rows_stored, open_checked
from pipeline.core.sharding import Shard
from pipeline.store import clips as clip_store
from tests.bad_input_cases import _ave_import_wd, _ave_release, _features, can_mount, huge_gzip_chunk
from tests.conftest import REPO_ROOT, avel_cmd, cli_env
from tests.fixtures_visual import TINY_VGG, jpeg_frames, write_workdir


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


#: runs `python -m pipeline ARGS` and writes the process's own peak RSS (VmHWM, kB) to PEAK at
#: exit: VmHWM belongs to the memory map made at exec, whereas a child's `ru_maxrss` also counts
#: the pages of the forked test process before its exec (measured: 1.6 GB for an import whose
#: own peak was 0.6 GB)
PEAK_SCRIPT = """
import atexit, runpy, sys
target = sys.argv[1]
def peak():
    with open(target, "w") as out:
        out.write(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
atexit.register(peak)
sys.argv = ["avel", *sys.argv[2:]]
runpy.run_module("pipeline", run_name="__main__")
"""


def _run_measured(args: list[str], tmp: Path) -> tuple[int, str, int]:
    """(exit code, stderr, peak RSS in kB of the avel process itself) of one `avel` run."""
    proc = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(tmp / "peak.txt"), *args],
                          env=cli_env(), cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=600)
    return proc.returncode, proc.stderr, int((tmp / "peak.txt").read_text())


# -- #6: a small file declaring a huge compressed chunk ------------------------------------
def test_gzip_chunk_declaring_1_3_gb_is_refused_without_reading_it(tmp_path):
    _ave_import_wd(tmp_path)
    src = _ave_release(tmp_path / "release",
                       lambda fh: huge_gzip_chunk(fh, "avadataset", (262144, 10, 128)))
    on_disk = (src / "audio_feature.h5").stat().st_size
    assert on_disk < 4 << 20  # the bomb is small: ~1.3 MB declaring 1.34 GB
    code, err, peak_kb = _run_measured(["import", "-w", str(tmp_path), "--format", "ave",
                                        "--from", str(src)], tmp_path)
    assert code == 2, err
    assert "Traceback" not in err
    assert str(src / "audio_feature.h5") in err and "/avadataset" in err and "cap" in err
    # a refused import peaks at 0.6-0.8 GB here (torch, pandas and friends); the chunk alone
    # is 1,280 MB once decompressed
    assert peak_kb < 1500 << 10, f"peak RSS {peak_kb >> 10} MB: the chunk was decompressed"
    assert not (tmp_path / "features" / "vggish").exists()


def test_chunk_cap_follows_the_environment_and_admits_our_own_row_chunks(tmp_path, monkeypatch):
    path = tmp_path / "rows.h5"
    with h5py.File(path, "w") as fh:  # the feature store's layout: one VGG-19 row per chunk
        fh.create_dataset("features", data=np.zeros((3, 10, 7, 7, 512), np.float32),
                          chunks=(1, 10, 7, 7, 512))
    open_checked(path).close()
    monkeypatch.setenv("AVEL_MAX_HDF5_CHUNK_BYTES", str(10 * 7 * 7 * 512 * 4 - 1))
    with pytest.raises(InputError, match="/features declares chunks of 1,003,520 bytes"):
        open_checked(path)


# -- #2: rows declared that hold no data ---------------------------------------------------
def test_ave_file_declaring_a_billion_rows_and_storing_none_leaves_the_store_alone(tmp_path):
    _ave_import_wd(tmp_path)
    shard = _features(tmp_path)
    before = _digest(shard)
    src = _ave_release(tmp_path / "release", lambda fh: fh.create_dataset(
        "avadataset", shape=(10**9, 10, 128), dtype="f4"))
    proc = subprocess.run(avel_cmd("import", "-w", str(tmp_path), "--format", "ave",
                                   "--from", str(src)), env=cli_env(), cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: {src / 'audio_feature.h5'}, field 'avadataset': "
                                  "declares 1,000,000,000 rows but stores 0 bytes")
    assert _digest(shard) == before
    assert not (shard.parent / "00000-of-00001.parts").exists()


def test_chunked_dataset_with_one_unwritten_chunk_is_refused(tmp_path):
    path = tmp_path / "holes.h5"
    with h5py.File(path, "w") as fh:
        ds = fh.create_dataset("avadataset", shape=(100, 10, 128), dtype="f4", chunks=(10, 10, 64))
        ds[:40] = 1.0
        ds[50:] = 1.0  # rows 40-49 never written: two chunks missing
    with h5py.File(path, "r") as fh:
        # the rows asked for are there: 0-39, and 50-99 (an avel export leaves a missing clip's
        # row unwritten and lists it in missing.txt, which the import skips)
        check_rows_stored(fh["avadataset"], [*range(40), *range(50, 100)], path, "avadataset")
        with pytest.raises(InputError, match=r"row 45 \(needed\) was never written"):
            check_rows_stored(fh["avadataset"], [3, 45, 60], path, "avadataset")
    contiguous = tmp_path / "contiguous.h5"
    with h5py.File(contiguous, "w") as fh:
        fh["avadataset"] = np.zeros((5, 10, 128), np.float32)  # zeros written are data
    with h5py.File(contiguous, "r") as fh:
        check_rows_stored(fh["avadataset"], range(5), contiguous, "avadataset")


# -- #10 / #8 / #7: a frame too large, then --retry-failed after a config fix -------------
def _extract(wd: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(avel_cmd("extract", "-w", str(wd), "-e", "vgg19", "--decode", "cpu",
                                   "--no-progress", *extra), env=cli_env(), cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=600)


def _ledger(wd: Path) -> dict[str, tuple[str, str | None, float]]:
    from pipeline.core.ledger import Ledger
    with Ledger(wd / "state" / "extract-vgg19" / "00000-of-00001.sqlite", read_only=True) as ledger:
        return {e.clip_id: (e.status, e.reason, e.updated_at) for e in ledger.entries()}


def test_jpeg_bomb_is_rejected_from_its_header_and_the_shard_goes_on(tmp_path):
    from tests.bad_input_cases import c_extract_jpeg_bomb
    args = c_extract_jpeg_bomb(tmp_path / "w")
    proc = subprocess.run(avel_cmd(*args), env=cli_env(), cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=600)
    code, err = proc.returncode, proc.stderr
    assert code == 1, err  # README "Exit codes": 1 some clips failed
    assert "clip1 (vgg19): huge_frame: frame 0 declares 13000x13000 pixels" in err
    ledger = _ledger(tmp_path / "w")
    assert {c: s[:2] for c, s in ledger.items()} == {
        "clip0": ("done", None), "clip1": ("failed", "huge_frame"), "clip2": ("done", None)}
    with h5py.File(tmp_path / "w" / "features" / "vgg19" / "00000-of-00001.h5") as fh:
        assert [c.decode() for c in fh["clip_id"][()]] == ["clip0", "clip2"]


def _workdir_with_one_large_clip(tmp_path: Path):
    """Clips a and c have 48x36 frames, b 96x72; returns (workdir, its config, the file)."""
    wd = write_workdir(tmp_path / "w", {"a": 4, "b": 4, "c": 4},
                       extract={"extractors": ["vgg19"], "options": {"vgg19": TINY_VGG},
                                "weights": {"vgg19": "random"}, "cpu_threads": 1})
    shard_file = wd.clips_file(Shard(0, 1))
    clip_store.write_part(shard_file, {"b": clip_store.ClipMedia(  # b: 96x72 frames
        audio=np.zeros(160, np.int16), sample_rate=16000, frames=jpeg_frames(4, 7, (96, 72)),
        frame_times=np.arange(4) / 0.4)})
    clip_store.consolidate(shard_file)
    config_file = wd.root / "avel.yaml"
    config = yaml.safe_load(config_file.read_text())
    return wd, config, config_file


def test_retry_failed_extracts_a_clip_again_after_the_config_is_fixed(tmp_path):
    wd, config, config_file = _workdir_with_one_large_clip(tmp_path)
    config["cut"] = {"max_pixels": 48 * 36}  # a and c (48x36) fit; b (96x72) does not
    config_file.write_text(yaml.safe_dump(config))

    first = _extract(wd.root)
    assert first.returncode == 1, first.stderr
    before = _ledger(wd.root)
    assert before["b"][:2] == ("failed", "huge_frame")
    assert "96x72 pixels, over the 1728 of cut.max_pixels" in first.stderr

    plain = _extract(wd.root)  # huge_frame is permanent: a plain rerun leaves it failed
    assert plain.returncode == 1, plain.stderr
    assert '"todo": 0' in plain.stdout and _ledger(wd.root) == before

    config["cut"] = {"max_pixels": 96 * 72}
    config_file.write_text(yaml.safe_dump(config))
    other = _extract(wd.root, "--retry-failed", "bad_frame")  # another reason: b stays failed
    assert other.returncode == 1 and _ledger(wd.root)["b"][:2] == ("failed", "huge_frame")
    again = _extract(wd.root, "--retry-failed")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert (summary["retried"], summary["todo"], summary["done"]) == (1, 1, 1)
    after = _ledger(wd.root)
    assert after["b"][:2] == ("done", None)
    assert after["a"] == before["a"] and after["c"] == before["c"]  # not redone
    with h5py.File(wd.root / "features" / "vgg19" / "00000-of-00001.h5") as fh:
        assert [c.decode() for c in fh["clip_id"][()]] == ["a", "b", "c"]


def test_run_retry_failed_re_queues_extract_failures_after_the_config_is_fixed(tmp_path):
    """`avel run` had no way to retry a failed extract clip short of deleting state/."""
    wd, config, config_file = _workdir_with_one_large_clip(tmp_path)
    config["cut"] = {"max_pixels": 48 * 36}
    config_file.write_text(yaml.safe_dump(config))

    def run(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(avel_cmd("run", "-w", str(wd.root), "--stages", "extract", *extra),
                              env=cli_env(), cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=600)

    first = run()
    assert first.returncode == 1, first.stderr  # README: 1 some clips failed
    before = _ledger(wd.root)
    assert before["b"][:2] == ("failed", "huge_frame")
    config["cut"] = {"max_pixels": 96 * 72}
    config_file.write_text(yaml.safe_dump(config))
    assert run().returncode == 1 and _ledger(wd.root) == before  # permanent: a plain rerun keeps it
    other = run("--retry-failed", "bad_frame")  # another reason: b stays failed
    assert other.returncode == 1 and _ledger(wd.root)["b"][:2] == ("failed", "huge_frame")
    assert "no failed clip to re-queue" in other.stderr
    again = run("--retry-failed")
    assert again.returncode == 0, again.stderr
    after = _ledger(wd.root)
    assert after["b"][:2] == ("done", None)
    assert after["a"] == before["a"] and after["c"] == before["c"]  # not redone
    with h5py.File(wd.root / "features" / "vgg19" / "00000-of-00001.h5") as fh:
        assert sorted(c.decode() for c in fh["clip_id"][()]) == ["a", "b", "c"]


# -- #9: vggsound-avel export from a work dir of another dataset ---------------------------
@pytest.mark.parametrize("case, field", [("c_export_vav_from_ave", "class_id"),
                                         ("c_export_vav_no_category", "category")])
def test_vggsound_avel_export_of_another_manifest_is_refused_before_writing(tmp_path, case, field):
    import tests.bad_input_cases as cases
    w = tmp_path / "w"
    args = getattr(cases, case)(w)
    proc = subprocess.run(avel_cmd(*args), env=cli_env(), cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: {w / 'manifest.parquet'}, field '{field}': ")
    assert "nothing was written" in proc.stderr
    assert not (w / "out").exists()


# -- #3: a clip in two rows of a feature shard -------------------------------------------
def test_duplicate_clip_rows_are_refused_naming_shard_and_clip(tmp_path):
    from tests.bad_input_cases import c_features_duplicate_clip
    w = tmp_path / "w"
    args = c_features_duplicate_clip(w)
    proc = subprocess.run(avel_cmd(*args), env=cli_env(), cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300)
    shard = w / "features" / "vggish" / "00000-of-00001.h5"
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: {shard}, field 'clip_id': clip 'clip1' appears twice "
                                  "(row 3 here, row 1 of 00000-of-00001.h5)")
    assert not (w / "out").exists()


# -- #4: index.h5 older than the shard files ----------------------------------------------
def _shard(path: Path, ids: list[str], value: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as fh:
        fh["features"] = np.full((len(ids), 10, 128), value, np.float32)
        fh["clip_id"] = np.array([c.encode() for c in ids])


def test_stale_index_is_named_by_status_and_refused_until_avel_index(tmp_path):
    from pipeline.store.features import open_index
    (tmp_path / "avel.yaml").write_text("dataset: {name: ave}\nsharding: {num_shards: 2}\n")
    vggish = tmp_path / "features" / "vggish"
    _shard(vggish / "00000-of-00002.h5", ["a", "b"], 1.0)
    _shard(vggish / "00001-of-00002.h5", ["c"], 2.0)
    built = subprocess.run(avel_cmd("index", "-w", str(tmp_path), "-e", "vggish"), env=cli_env(),
                           cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr

    def status() -> str:
        proc = subprocess.run(avel_cmd("status", "-w", str(tmp_path)), env=cli_env(),
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    assert "STALE" not in status()
    with open_index(vggish) as fh:
        assert fh["features"][2, 0, 0] == 2.0
    _shard(vggish / "00001-of-00002.h5", ["d", "c"], 3.0)  # shard 1 rewritten: 2 rows now
    assert ("STALE features/vggish/index.h5: 00001-of-00002.h5 changed since it was built "
            "(size ") in status()
    assert "rebuild it with `avel index -e vggish`" in status()
    with pytest.raises(InputError, match=r"index.h5: stale: 00001-of-00002.h5 changed.*avel index"):
        open_index(vggish)
    (vggish / "00000-of-00002.h5").unlink()
    with pytest.raises(InputError, match="00000-of-00002.h5 was removed since it was built"):
        open_index(vggish)
    _shard(vggish / "00000-of-00002.h5", ["a", "b"], 1.0)
    subprocess.run(avel_cmd("index", "-w", str(tmp_path), "-e", "vggish"), env=cli_env(),
                   cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True)
    assert "STALE" not in status()
    with open_index(vggish) as fh:
        assert [c.decode() for c in fh["clip_id"][()]] == ["a", "b", "d", "c"]
        assert fh["features"][3, 0, 0] == 3.0


# -- #5: a second export into the same --out with another dtype ---------------------------
def test_second_export_with_another_dtype_is_refused_and_the_first_is_kept(tmp_path):
    _ave_import_wd(tmp_path)
    _features(tmp_path)
    out = tmp_path / "out"

    def export(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(avel_cmd("export", "-w", str(tmp_path), "--format", "ave", "--out",
                                       str(out), "--allow-missing", *extra), env=cli_env(),
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)

    first = export("--dtype", "float16")
    assert first.returncode == 0, first.stderr
    again = export("--dtype", "float16")  # the same export again: rewritten in place
    assert again.returncode == 0, again.stderr
    files = {p.name: _digest(p) for p in out.iterdir()}
    mixed = export("--dtype", "float32")
    assert mixed.returncode == 2, mixed.stderr
    assert mixed.stderr.startswith(f"error: {out / '.avel-export.json'}, field 'dtype': {out} "
                                   "holds an export with dtype float16, this one would write "
                                   "dtype float32")
    assert {p.name: _digest(p) for p in out.iterdir()} == files
    with h5py.File(out / "audio_feature.h5") as fh:
        assert fh["avadataset"].dtype == np.float16
    other = export("--dtype", "float32", "--out", str(tmp_path / "out32"))  # last --out wins
    assert other.returncode == 0, other.stderr


# -- #1: the disk fills up during `avel extract` ------------------------------------------
def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@pytest.mark.skipif(not can_mount(), reason="needs root and mount for a small tmpfs")
@pytest.mark.parametrize("size, where", [
    ("100k", "vgg19/00000-of-00001.parts"),  # some parts fit, then the next one does not
    ("150k", "vgg19"),  # every part fits; folding them into the shard file does not
])
def test_disk_full_during_extract_keeps_what_was_stored_and_redoes_only_the_rest(tmp_path, size,
                                                                                  where):
    """Features on a real tmpfs of `size`: parts of two clips (~20 kB each, batch_size 4 so
    clips finish as they go). Exit 5 naming the folder, never 70 or a crash (it was: exit 70
    from h5py's RuntimeError, or SIGSEGV when consolidation ran out of room); the clips
    marked done are exactly those stored; after the disk grows, a rerun extracts only the
    clips still pending."""
    wd = write_workdir(tmp_path / "w", {f"c{i:02d}": 4 for i in range(12)},
                       extract={"extractors": ["vgg19"], "options": {"vgg19": TINY_VGG},
                                "weights": {"vgg19": "random"}, "cpu_threads": 1,
                                "flush_clips": 2, "batch_size": 4})
    features = wd.root / "features"
    assert _mount_tmpfs(features, size)
    try:
        full = _extract(wd.root)
        assert full.returncode == 5, full.stderr[-2000:]
        assert "Traceback" not in full.stderr
        message = [ln for ln in full.stderr.splitlines() if ln.startswith("error:")]
        assert message == [f"error: {features / where}: cannot write (no space left on "
                           f"device: {message[0].split('device: ')[1]}"], message
        assert "finished work is kept" in message[0]
        before = _ledger(wd.root)
        done = {c for c, (status, _, _) in before.items() if status == "done"}
        assert 0 < len(done) < 12 if size == "100k" else len(done) == 12
        from pipeline.store import features as store
        shard = features / "vgg19" / "00000-of-00001.h5"
        assert store.stored_clip_ids(shard) == done  # marked done = stored, nothing more
        assert not list((features / "vgg19").rglob("*.tmp"))  # no temp left taking room
        subprocess.run(["mount", "-o", "remount,size=4m", str(features)], check=True)
        rerun = _extract(wd.root)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        summary = json.loads(rerun.stdout.strip().splitlines()[-1])
        assert (summary["todo"], summary["done"], summary["reconciled"]) == (12 - len(done),
                                                                             12 - len(done), 0)
        after = _ledger(wd.root)
        assert all(after[c] == before[c] for c in done)  # not extracted again
        with h5py.File(shard) as fh:
            assert [c.decode() for c in fh["clip_id"][()]] == [f"c{i:02d}" for i in range(12)]
    finally:
        subprocess.run(["umount", str(features)], capture_output=True)
