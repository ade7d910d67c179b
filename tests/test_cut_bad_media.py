"""Every file of the generated bad-media corpus gets its own ledger reason, the stage never
crashes on them, and the good clips of the same shard all finish."""

from __future__ import annotations

import json
import subprocess

import pytest

from pipeline.core.config import load_config
from pipeline.core.ledger import Ledger
from pipeline.core.sharding import Shard
from pipeline.core.workdir import Workdir
from pipeline.cut.stage import run_cut
from pipeline.run.status import collect
from pipeline.store import clips as clip_store
from tests.bad_media_corpus import write_corpus
from tests.conftest import avel_cmd, cli_env
from tests.fixtures_cut import make_workdir

SHARD = Shard(0, 1)
# conditions that are cut anyway (with a note) under the default cut.allow
ALLOWED_BY_DEFAULT = {"rotated", "unusual-pixel-format", "non-ascii-name"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    cases = write_corpus(tmp_path_factory.mktemp("corpus"))
    return cases


def _clips(corpus, extra=()):
    return [(c.name, c.file, c.start_s, c.end_s) for c in corpus] + list(extra)


def test_corpus_has_at_least_12_bad_files_with_distinct_defects(corpus):
    bad = [c for c in corpus if c.reason]
    assert len(bad) >= 12
    assert len({c.reason for c in bad}) >= 12
    assert any(not c.file.name.isascii() for c in corpus)


def test_strict_run_gives_each_file_its_reason(tmp_path, corpus):
    missing = ("missing", tmp_path / "not-there.mp4", 0.0, 10.0)
    strict = ["-rotated", "-unusual-pixel-format", "-non-ascii-name"]  # no default accepted
    wd = make_workdir(tmp_path / "wd", _clips(corpus, [missing]), {"allow": strict, "workers": 2})
    summary = run_cut(wd, load_config(wd), SHARD, progress=False)
    with Ledger(Workdir(wd).ledger("cut", SHARD)) as ledger:
        got = {e.clip_id: (e.status, e.reason) for e in ledger.entries()}
    expected = {c.name: ("done", None) if c.reason is None else ("failed", c.reason) for c in corpus}
    expected["missing"] = ("failed", "missing-file")
    assert got == expected
    assert summary.done == 2 and summary.failed == len(expected) - 2
    stored = clip_store.stored_clip_ids(Workdir(wd).clips_file(SHARD))
    assert stored == {"good_a", "good_b"}
    # `avel status` counts the failures by reason
    cut = collect(wd)["stages"]["cut"]
    assert cut["done"] == 2 and cut["failed"] == len(expected) - 2
    assert cut["reasons"]["truncated"] == 2 and cut["reasons"]["not-media"] == 1


def test_default_allow_cuts_harmless_oddities_with_a_note(tmp_path, corpus):
    keep = [c for c in corpus if c.reason in ALLOWED_BY_DEFAULT or c.reason is None]
    wd = make_workdir(tmp_path / "wd", _clips(keep))
    summary = run_cut(wd, load_config(wd), SHARD, progress=False)
    assert summary.failed == 0 and summary.done == len(keep)
    shard_file = Workdir(wd).clips_file(SHARD)
    for case in keep:
        media = clip_store.read_clip(shard_file, case.name)
        assert json.loads(media.attrs["notes"]) == ([case.reason] if case.reason else [])
        assert media.audio.shape == (160000,)
    # ffmpeg applies the display rotation, as the original commands did: 64x48 becomes 48x64
    import io

    from PIL import Image
    rotated = clip_store.read_clip(shard_file, "rotated").frames[0]
    assert Image.open(io.BytesIO(rotated)).size == (48, 64)
    assert Image.open(io.BytesIO(clip_store.read_clip(shard_file, "good_a").frames[0])).size == (64, 48)


def test_cli_reports_failures_and_exits_one(tmp_path, corpus):
    keep = [c for c in corpus if c.name in ("good_a", "corrupt", "empty")]
    wd = make_workdir(tmp_path / "wd", _clips(keep))
    proc = subprocess.run(avel_cmd("cut", "--workdir", str(wd)), env=cli_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr  # README "Exit codes": 1 some clips failed
    assert "1 cut, 2 failed (empty-file: 1, not-media: 1)" in proc.stdout
    status = subprocess.run(avel_cmd("status", "--workdir", str(wd)), env=cli_env(),
                            capture_output=True, text=True, timeout=60)
    assert "empty-file: 1" in status.stdout and "not-media: 1" in status.stdout
