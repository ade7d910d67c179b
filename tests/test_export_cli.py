"""`avel export` / `avel import` as a user runs them (subprocess)."""

from __future__ import annotations

import subprocess

import numpy as np

from tests.conftest import avel_cmd, cli_env
from tests.fixtures_export import fill_store, h5, llp_workdir, read_store, vggsound_avel_workdir


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(avel_cmd(*args), env=cli_env(), capture_output=True, text=True, timeout=120)


def test_llp_export_then_import_through_the_cli(tmp_path, shared_data):
    wd = llp_workdir(tmp_path / "w", shared_data, limit=4)
    stored = fill_store(wd, "vggish", (10, 128), seed=0)
    done = run("export", "--workdir", str(wd), "--format", "llp", "--out", str(tmp_path / "out"))
    # only vggish was extracted: the export names what it cannot write and writes nothing
    assert done.returncode == 2
    assert "feats/res152" in done.stderr and "feats/r2plus1d_18" in done.stderr
    assert not (tmp_path / "out").exists()
    done = run("export", "--workdir", str(wd), "--format", "llp", "--out", str(tmp_path / "out"),
               "--allow-missing")
    assert done.returncode == 0, done.stderr
    assert "exported 4 clips (llp)" in done.stdout and "NOT written: feats/res152" in done.stdout
    readme = (tmp_path / "out" / "README.txt").read_text()
    assert "feats/res152: from the feature store" not in readme
    assert "NOT written" in readme and "feats/r2plus1d_18" in readme
    fresh = llp_workdir(tmp_path / "w2", shared_data, limit=4)
    done = run("import", "--workdir", str(fresh), "--format", "llp", "--from", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "vggish: 4 clips imported" in done.stdout
    back = read_store(fresh, "vggish")
    for clip, array in stored.items():
        np.testing.assert_array_equal(back[clip], array)


def test_ave_export_picks_up_the_order_files_from_the_config(tmp_path, shared_data):
    from tests.fixtures_export import ave_workdir
    wd = ave_workdir(tmp_path / "w", shared_data, limit=4143)
    done = run("export", "-w", str(wd), "--format", "ave", "--out", str(tmp_path / "out"),
               "--dtype", "float32", "--allow-missing")
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(h5(tmp_path / "out" / "test_order.h5", "order"),
                                  h5(shared_data / "ave" / "test_order.h5", "order"))


def test_pickle_import_without_flag_exits_2_with_the_reason(tmp_path):
    wd = vggsound_avel_workdir(tmp_path / "w", n=3)
    fill_store(wd, "vggish", (10, 128), seed=0)
    assert run("export", "-w", str(wd), "--format", "vggsound-avel", "--out",
               str(tmp_path / "out")).returncode == 0
    fresh = vggsound_avel_workdir(tmp_path / "w2", n=3)
    done = run("import", "-w", str(fresh), "--format", "vggsound-avel", "--from", str(tmp_path / "out"))
    assert done.returncode == 2
    assert "--trust-pickles" in done.stderr and "run any code" in done.stderr
    done = run("import", "-w", str(fresh), "--format", "vggsound-avel", "--from", str(tmp_path / "out"),
               "--trust-pickles")
    assert done.returncode == 0, done.stderr
    assert "vggish: 3 clips imported" in done.stdout


def test_bad_file_exits_2_naming_it(tmp_path, shared_data):
    wd = llp_workdir(tmp_path / "w", shared_data, limit=2)
    from pipeline.datasets.manifest import load_manifest
    clip = load_manifest(wd)["clip_id"][0]
    (tmp_path / "src" / "feats" / "res152").mkdir(parents=True)
    bad = tmp_path / "src" / "feats" / "res152" / f"{clip[:11]}.npy"
    np.save(bad, np.zeros((80, 1024), np.float32))
    done = run("import", "-w", str(wd), "--format", "llp", "--from", str(tmp_path / "src"))
    assert done.returncode == 2
    assert str(bad) in done.stderr and "[80, 1024]" in done.stderr
