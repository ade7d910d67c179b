"""Bad list files fail at once: exit code 2, a message naming file, line and field, and
no manifest written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from pipeline.cli import app

LLP_HEADER = "filename\tevent_labels\n"


def run_manifest(workdir: Path, dataset: dict):
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "avel.yaml").write_text(yaml.safe_dump({"dataset": dataset}))
    return CliRunner().invoke(app, ["manifest", "--workdir", str(workdir)])


def llp_files(tmp_path: Path, train: bytes | str) -> dict:
    good = LLP_HEADER + "abcdefghijk_0_10\tSpeech\n"
    files = {}
    for split, text in [("train", train), ("val", good.replace("abc", "val")),
                        ("test", good.replace("abc", "tst"))]:
        path = tmp_path / f"{split}.csv"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        files[split] = str(path)
    return {"name": "llp", "files": files}


def vggsound_files(tmp_path: Path, text: bytes | str) -> dict:
    path = tmp_path / "vggsound.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return {"name": "vggsound", "files": {"csv": str(path)}}


CASES = {
    # name: (dataset builder, file content, expected line, expected field or None, words)
    "missing column": (llp_files, "filename\tlabels\nabcdefghijk_0_10\tSpeech\n", 1, "event_labels",
                       "missing column"),
    "non-numeric start": (vggsound_files, "abcdefghijk,12,dog,train\nxyzabcdefgh,ten,cat,test\n", 2,
                          "start", "not a number"),
    "end not after start": (llp_files, LLP_HEADER + "abcdefghijk_20_10\tSpeech\n", 2, "filename",
                            "not after"),
    "duplicate clip id": (llp_files, LLP_HEADER + "abcdefghijk_0_10\tSpeech\nabcdefghijk_0_10\tDog\n",
                          3, "clip_id", "duplicate"),
    "slash in id": (vggsound_files, "ab/cdefghij,1,dog,train\n", 1, "clip_id", "separator"),
    "dot-dot id": (vggsound_files, "..,1,dog,train\n", 1, "clip_id", "'.'"),
    "NUL byte": (vggsound_files, b"abc\x00defghij,1,dog,train\n", 1, None, "NUL"),
    "empty file": (llp_files, "", None, None, "empty"),
    "wrong separator": (llp_files, "filename,event_labels\nabcdefghijk_0_10,Speech\n", 1,
                        "filename", "separator"),
    "non-UTF-8": (llp_files, LLP_HEADER.encode() + b"abcdefghijk_0_10\tCaf\xe9\n", 2, None, "UTF-8"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_exits_2_naming_file_line_and_field(tmp_path, case):
    builder, content, line, field, words = CASES[case]
    workdir = tmp_path / "w"
    dataset = builder(tmp_path, content)
    result = run_manifest(workdir, dataset)
    assert result.exit_code == 2, result.output
    message = result.output
    bad_file = dataset["files"]["train"] if "train" in dataset["files"] else dataset["files"]["csv"]
    assert bad_file in message
    if line is not None:
        assert f"line {line}" in message
    if field is not None:
        assert f"field '{field}'" in message
    assert words in message
    assert not (workdir / "manifest.parquet").exists()


def test_a_failed_rebuild_keeps_the_previous_manifest(tmp_path):
    workdir = tmp_path / "w"
    good = vggsound_files(tmp_path, "abcdefghijk,12,dog,train\n")
    assert run_manifest(workdir, good).exit_code == 0
    before = (workdir / "manifest.parquet").read_bytes()
    (tmp_path / "vggsound.csv").write_text("abcdefghijk,x,dog,train\n")
    assert run_manifest(workdir, good).exit_code == 2
    assert (workdir / "manifest.parquet").read_bytes() == before
    assert not list(workdir.glob(".*.tmp"))


def test_clip_paths_never_leave_the_workdir(tmp_path):
    from pipeline.core.workdir import Workdir
    wd = Workdir(tmp_path)
    want = (tmp_path / "raw" / "abc_000001.mp4").resolve()
    assert wd.clip_path(tmp_path / "raw", "abc_000001", ".mp4") == want
    for bad in ["../x", "..", "a/b", "a\x00b", ".hidden", "a\\b", "x y"]:
        with pytest.raises(ValueError):
            wd.clip_path(tmp_path / "raw", bad)
    with pytest.raises(ValueError, match="leaves the work directory"):
        wd.clip_path(tmp_path.parent, "abc")
