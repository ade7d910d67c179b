"""One failure vocabulary: every reason the download and cut stages can give is in
pipeline/core/reasons.py, the README's table is that dict, and one defective file gets one
reason whether it is downloaded (full or section mode) or cut."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from pipeline.core import reasons
from pipeline.core.media_probe import MediaError, probe
from pipeline.core.reasons import ALLOWABLE
from pipeline.download.failures import MESSAGE_RULES, PERMANENT, THROTTLED, TRANSIENT
from tests.bad_media_corpus import good_clip


def test_readme_table_is_the_vocabulary(repo_root):
    readme = (Path(repo_root) / "README.md").read_text(encoding="utf-8")
    assert reasons.markdown_table() in readme


def test_every_download_message_rule_and_cut_condition_has_an_entry_with_its_kind():
    for _, kind, reason in MESSAGE_RULES:
        assert reasons.REASONS[reason].download == kind, reason
    for reason in ALLOWABLE:
        assert reasons.REASONS[reason].cut == reasons.PERMANENT
    assert {PERMANENT, TRANSIENT, THROTTLED} == {reasons.PERMANENT, reasons.TRANSIENT,
                                               reasons.THROTTLED}


def test_cut_and_download_source_only_name_reasons_in_the_vocabulary(repo_root):
    """Scan the stages' literal reason strings (MediaError / DecodeError / CutResult)."""
    names = set()
    for path in [*Path(repo_root, "pipeline", "cut").glob("*.py"),
                 *Path(repo_root, "pipeline", "download").glob("*.py"),
                 Path(repo_root, "pipeline", "core", "media_probe.py")]:
        text = path.read_text(encoding="utf-8")
        names |= set(re.findall(r'MediaError\("([a-z0-9-]+)"', text))
        names |= set(re.findall(r'reason="([a-z0-9-]+)"', text))
        names |= set(re.findall(r'Failure\((?:PERMANENT|TRANSIENT|THROTTLED), "([a-z0-9-]+)"',
                                text))
        names |= set(re.findall(r'DecodeError\([^()]*?, "([a-z0-9-]+)"\)', text))
    names.discard("frame-count-mismatch")  # handled inside the cut (falls back), never recorded
    assert names and not names - set(reasons.REASONS), names - set(reasons.REASONS)


def test_download_failed_reasons_map_to_the_cut_entry():
    assert reasons.kind("download-failed:http-404", "cut") == reasons.TRANSIENT
    assert reasons.kind("http-418", "download") == reasons.TRANSIENT


@pytest.fixture(scope="module")
def defective(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("defective")
    good = good_clip(out / "good.mp4", seconds=3.0)
    data = good.read_bytes()
    (out / "truncated.mp4").write_bytes(data[: len(data) * 6 // 10])
    (out / "empty.mp4").write_bytes(b"")
    (out / "corrupt.mp4").write_bytes(bytes(range(256)) * 64)
    return {"truncated": out / "truncated.mp4", "empty-file": out / "empty.mp4",
            "not-media": out / "corrupt.mp4"}


def test_same_defective_file_same_reason_in_probe_download_and_cut(tmp_path, defective):
    import yaml

    from pipeline.core.config import load_config
    from pipeline.core.ledger import Ledger
    from pipeline.core.sharding import Shard
    from pipeline.core.workdir import Workdir
    from pipeline.cut.stage import run_cut
    from pipeline.datasets.manifest import build_manifest
    from pipeline.demo.loopback_server import serve
    from pipeline.download.stage import run_download
    from tests.fixtures_download import FAST

    for expected, path in defective.items():
        with pytest.raises(MediaError) as caught:
            probe(path)
        assert caught.value.reason == expected
    served = tmp_path / "served"
    served.mkdir()
    for path in defective.values():
        shutil.copy(path, served / path.name)
    names = sorted(defective.values())
    got: dict[str, dict[str, str]] = {}
    with serve(served) as server:
        for mode in ("full", "section", "local"):
            root = tmp_path / mode
            root.mkdir()
            (root / "list.csv").write_text("".join(f"{p.stem},1,x,train\n" for p in names))
            source = ({"source": "local", "videos_dir": str(served)} if mode == "local" else
                      {"source": "url", "url_template": server.url + "/{video_id}.mp4"})
            config = {"dataset": {"name": "vggsound", **source,
                                  "files": {"csv": str(root / "list.csv")}},
                      "download": {"mode": "section" if mode == "section" else "full",
                                   **FAST, "max_attempts": 1}}
            (root / "avel.yaml").write_text(yaml.safe_dump(config))
            cfg = load_config(root)
            build_manifest(root, cfg)
            run_download(root, cfg, Shard(0, 1), progress=False)
            with Ledger(Workdir(root).ledger("download", Shard(0, 1))) as ledger:
                got[mode] = {e.clip_id.rsplit("_", 1)[0]: e.reason for e in ledger.entries()}
    by_file = {p.stem: reason for reason, p in defective.items()}
    for mode, found in got.items():
        assert found == by_file, mode
    # the cut, reading the local files directly (no download ledger), names them alike
    root = tmp_path / "cut"
    root.mkdir()
    (root / "list.csv").write_text("".join(f"{p.stem},1,x,train\n" for p in names))
    config = {"dataset": {"name": "vggsound", "source": "local", "videos_dir": str(served),
                          "files": {"csv": str(root / "list.csv")}},
              "cut": {"workers": 1}}
    (root / "avel.yaml").write_text(yaml.safe_dump(config))
    cfg = load_config(root)
    build_manifest(root, cfg)
    run_cut(root, cfg, Shard(0, 1), progress=False)
    with Ledger(Workdir(root).ledger("cut", Shard(0, 1))) as ledger:
        cut = {e.clip_id.rsplit("_", 1)[0]: e.reason for e in ledger.entries()}
    assert cut == by_file
