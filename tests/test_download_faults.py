"""Faults a real host produces, served on loopback through yt-dlp's generic extractor:
every recoverable clip ends done, every permanent one failed with its reason, and no
clip is fetched again once it is done."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pipeline.core.config import load_config
from pipeline.core.sharding import Shard
from pipeline.demo.loopback_server import serve
from pipeline.download.stage import run_download
from pipeline.run.status import collect
from tests.fixtures_download import ledger_entries, make_workdir, served_copy, synthetic_data

SHARD = Shard(0, 1)

# clip index → faults queued on its path. yt-dlp's generic extractor GETs a URL once to
# sniff it, then downloads it: "ok" lets the sniff through so the next fault hits the body.
FAULTS = {
    0: ["429"],            # throttled once (Retry-After), then fine
    1: ["500", "500"],     # two server errors, done on the third attempt (max_attempts 3)
    2: ["404*"],           # gone for good
    3: ["ok", "truncate"],  # body cut short mid-download
    4: ["stall"],          # no answer within socket_timeout
    5: ["html*"],          # an HTML page where the video was
    6: ["wrong-type"],     # right bytes, wrong Content-Type: still a video
    7: [],                 # the served file is not media (replaced below)
    8: ["410*"],
    9: ["reset"],          # connection closed without an answer
}
EXPECTED_FAILED = {2: "http-404", 5: "unsupported-url", 7: "not-media", 8: "http-410"}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory):
    data = synthetic_data(tmp_path_factory)
    root = tmp_path_factory.mktemp("faults")
    served = served_copy(data, root)
    ids = sorted(p.stem for p in served.glob("*.mp4"))
    (served / f"{ids[7]}.mp4").write_bytes(b"\x00not a video at all\x01" * 500)
    with serve(served) as server:
        server.stall_s = 2.5
        for i, faults in FAULTS.items():
            if faults:
                server.inject(f"/{ids[i]}.mp4", *faults)
        wd = make_workdir(root / "w", data, server.url, workers=3)
        summary = run_download(wd, load_config(wd), SHARD, progress=False)
        hits_after_first = dict(server.hits)
        again = run_download(wd, load_config(wd), SHARD, progress=False)
        hits_after_second = dict(server.hits)
        yield {"wd": wd, "ids": ids, "served": served, "data": data, "server": server,
               "summary": summary, "again": again, "hits1": hits_after_first,
               "hits2": hits_after_second}


def test_recoverable_clips_end_done_with_the_served_bytes(faulty_run):
    entries = ledger_entries(faulty_run["wd"])
    for i, clip_id in enumerate(faulty_run["ids"]):
        if i in EXPECTED_FAILED:
            continue
        entry = entries[clip_id]
        assert entry.status == "done", (i, entry)
        out = faulty_run["wd"] / entry.info["file"]
        assert sha(out) == sha(faulty_run["data"] / "videos" / f"{clip_id}.mp4")
        assert entry.checksum == f"sha256:{sha(out)}"


def test_permanent_clips_end_failed_with_their_reason(faulty_run):
    entries = ledger_entries(faulty_run["wd"])
    for i, reason in EXPECTED_FAILED.items():
        entry = entries[faulty_run["ids"][i]]
        assert (entry.status, entry.reason, entry.permanent) == ("failed", reason, True), entry
        assert not list((faulty_run["wd"] / "raw").rglob(f"{faulty_run['ids'][i]}.*"))


def test_each_done_clip_was_downloaded_once_after_its_faults(faulty_run):
    # per path: one request per queued fault, then the sniff and the download (2)
    ids, hits = faulty_run["ids"], faulty_run["hits1"]
    assert hits[f"/{ids[0]}.mp4"] == 1 + 2
    assert hits[f"/{ids[1]}.mp4"] == 2 + 2
    assert hits[f"/{ids[3]}.mp4"] == 2 + 2  # sniff ok + truncated body, then 2
    assert hits[f"/{ids[4]}.mp4"] == 1 + 2
    assert hits[f"/{ids[6]}.mp4"] == 2  # the wrong type is on the sniff, which still passes
    assert hits[f"/{ids[9]}.mp4"] == 1 + 2
    assert hits[f"/{ids[2]}.mp4"] == 1  # a permanent failure is not retried


def test_rerun_fetches_nothing(faulty_run):
    assert faulty_run["hits2"] == faulty_run["hits1"]
    assert faulty_run["again"]["this_run"]["todo"] == 0


def test_summary_and_status_count_failures_by_reason(faulty_run):
    summary = faulty_run["summary"]
    assert summary["done"] == 6 and summary["failed"] == 4 and summary["pending"] == 0
    assert summary["failed_by_reason"] == {r: 1 for r in EXPECTED_FAILED.values()}
    assert summary["this_run"]["throttled"] == 1
    status = collect(faulty_run["wd"])["stages"]["download"]
    assert status["reasons"] == {r: 1 for r in EXPECTED_FAILED.values()}


def test_retry_failed_with_a_reason_requeues_only_that_reason(faulty_run):
    server, ids, wd = faulty_run["server"], faulty_run["ids"], faulty_run["wd"]
    server.faults.clear()  # the host has the 404 file back now
    before = dict(server.hits)
    run_download(wd, load_config(wd), SHARD, retry_failed="http-404", progress=False)
    entries = ledger_entries(wd)
    assert entries[ids[2]].status == "done"
    assert entries[ids[8]].reason == "http-410"  # not asked for: untouched
    changed = {p for p in server.hits if server.hits[p] != before.get(p)}
    assert changed == {f"/{ids[2]}.mp4"}


def test_no_temp_or_part_files_are_left(faulty_run):
    raw = faulty_run["wd"] / "raw"
    leftovers = [p for p in raw.rglob("*")
                 if p.name.startswith(".") or p.suffix in (".part", ".ytdl", ".tmp")]
    assert leftovers == []
