"""An identity pool for long download campaigns (`download.identities`): a host that throttles
one identity slows only that one, the others take its clips, the stage stops (exit 3) only
when every identity is throttled past `throttle_limit`, the ledger names who fetched what,
and `avel status` shows each identity's counts and the time left at the recent pace.

The end-to-end tests run real yt-dlp through two real forward proxies on 127.0.0.1
(tests/fixtures_download.ForwardProxy); the loopback server answers 429 to every request that
arrives through proxy A (its `Via` header), as a host that blocked one address would.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import subprocess
from pathlib import Path

import pytest

from pipeline.core.config import DownloadConfig, load_config
from pipeline.core.config_schema import build
from pipeline.core.errors import InputError
from pipeline.core.ledger import Entry, Ledger
from pipeline.core.sharding import Shard
from pipeline.core.workdir import Workdir
from pipeline.demo.loopback_server import serve
from pipeline.download.identities import (
    Identity,
    IdentityPool,
    Lease,
    record_attempt,
    resolve_identities,
    tally,
    with_identity,
)
from pipeline.download.stage import run_download
from pipeline.download.ytdlp_options import build_options
from pipeline.run.status import collect, render
from tests.conftest import avel_cmd, cli_env
from tests.fixtures_download import ForwardProxy, ledger_entries, make_workdir, synthetic_data


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pool(names: list[str], limit: int = 3, clock: FakeClock | None = None) -> IdentityPool:
    dl = DownloadConfig(throttle_limit=limit, backoff_base_s=1.0, backoff_max_s=1.0,
                        requests_per_s=0.0)
    return IdentityPool([Identity(n, None, None) for n in names], dl, random.Random(0),
                        clock=clock or FakeClock())


# -- the pool on its own --------------------------------------------------------------------
def test_pool_takes_turns_while_every_identity_is_healthy():
    pool = _pool(["A", "B", "C"])
    got = [pool.try_lease() for _ in range(6)]
    assert [g.identity.name for g in got] == ["A", "B", "C", "A", "B", "C"]  # type: ignore[union-attr]


def test_a_throttled_identity_pauses_alone_and_comes_back_after_its_pause():
    clock = FakeClock()
    pool = _pool(["A", "B"], clock=clock)
    lease_a = pool.try_lease()
    assert lease_a.identity.name == "A"  # type: ignore[union-attr]
    pause = pool.throttled(lease_a, "http-429", None)  # type: ignore[arg-type]
    assert 0.5 <= pause <= 1.0  # backoff step 1 s, equal jitter
    # while A pauses every lease is B's
    assert {pool.try_lease().identity.name for _ in range(5)} == {"B"}  # type: ignore[union-attr]
    clock.t += pause
    assert "A" in {pool.try_lease().identity.name for _ in range(2)}  # type: ignore[union-attr]


def test_pool_is_exhausted_only_when_every_identity_tripped():
    pool = _pool(["A", "B"], limit=2)
    for _ in range(2):
        pool.throttled(_lease(pool, "A"), "bot-check", None)
    assert pool.tripped() == ["A"] and not pool.all_tripped()
    assert pool.try_lease().identity.name == "B"  # type: ignore[union-attr]
    pool.throttled(_lease(pool, "B"), "bot-check", None)
    assert not pool.all_tripped()  # one throttle of B is not B's limit
    pool.throttled(_lease(pool, "B"), "bot-check", None)
    assert pool.all_tripped()
    assert pool.try_lease() is None and pool.lease() is None


def _lease(pool: IdentityPool, name: str) -> Lease:
    return Lease(Identity(name, None, None), pool.gate(name).ticket())


def test_all_workers_of_a_single_identity_still_pause_together():
    # without download.identities the pool holds one identity: the old shared gate
    clock = FakeClock()
    pool = _pool(["default"], clock=clock)
    pause = pool.throttled(pool.try_lease(), "http-429", 5.0)  # type: ignore[arg-type]
    assert pause == 1.0  # Retry-After 5 s capped at backoff_max_s (1 s)
    assert pool.try_lease() == pytest.approx(1.0)  # nobody may go: seconds to wait


# -- what the ledger keeps ---------------------------------------------------------------
def _entry(info: dict) -> Entry:
    return Entry("c", "failed", "http-429", False, 1, 0.0, 0.0, None, None, info)


def test_a_clip_done_by_b_keeps_the_throttles_a_got():
    after_a = record_attempt(None, "A", None, throttled=True)
    after_a2 = record_attempt(_entry(after_a), "A", None, throttled=True)
    done = record_attempt(_entry(after_a2), "B", {"file": "raw/x.mp4"})
    assert done == {"file": "raw/x.mp4", "identity": "B", "throttled_by": {"A": 2}}
    counts = tally([Entry("c", "done", None, False, 3, 0.0, 0.0, None, None, done)])
    assert counts == {"A": {"done": 0, "failed": 0, "throttled": 2},
                      "B": {"done": 1, "failed": 0, "throttled": 0}}


def test_tally_skips_info_that_is_not_ours():
    odd = [Entry("a", "done", None, False, 1, 0.0, 0.0, None, None, {"identity": 3}),
           Entry("b", "done", None, False, 1, 0.0, 0.0, None, None,
                 {"throttled_by": {"A": "many", "B": -1, "C": True}}),
           Entry("c", "done", None, False, 1, 0.0, 0.0, None, None, {"throttled_by": [1]})]
    assert tally(odd) == {}


# -- config -------------------------------------------------------------------------------
@pytest.mark.parametrize("identities, field, says", [
    ([{"proxy": "http://127.0.0.1:1"}, {"proxy": "127.0.0.1:8080"}],
     "download.identities[1].proxy", "proxy must be a URL"),
    ([{"proxy": "http://127.0.0.1:70000"}], "download.identities[0].proxy", "bad port"),
    ([{"name": "A"}, {"name": "A"}], "download", "identities[1].name 'A'"),
    ([{"name": " "}], "download.identities[0].name", "name must not be empty"),
    ([{"proxi": "http://127.0.0.1:1"}], "download.identities[0].proxi", "unknown key"),
])
def test_bad_identities_are_refused_naming_the_index(identities, field, says):
    with pytest.raises(InputError) as err:
        build(DownloadConfig, {"identities": identities}, file="avel.yaml", prefix="download")
    assert err.value.field == field and says in str(err.value)


def test_missing_cookies_file_of_an_identity_exits_2_naming_it(tmp_path_factory):
    data = synthetic_data(tmp_path_factory)
    root = tmp_path_factory.mktemp("id-cookies")
    wd = make_workdir(root / "w", data, "http://127.0.0.1:9", identities=[
        {"name": "A"}, {"name": "B", "cookies_file": "nope.txt"}])
    run = subprocess.run(avel_cmd("download", "--workdir", str(wd), "--no-progress"),
                         env=cli_env(), capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert "download.identities[1].cookies_file" in run.stderr and "nope.txt" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (wd / "state").exists() and not (wd / "raw").exists()  # nothing written


# -- end to end: real yt-dlp through two real proxies ---------------------------------------
def _workdir_with_two_routes(tmp_path_factory, server_url: str, a: ForwardProxy,
                             b: ForwardProxy, name: str) -> Path:
    data = synthetic_data(tmp_path_factory)
    root = tmp_path_factory.mktemp(name)
    return make_workdir(root / "w", data, server_url, workers=2, throttle_limit=3,
                        backoff_base_s=0.05, backoff_max_s=0.2,
                        identities=[{"name": "A", "proxy": a.url}, {"name": "B", "proxy": b.url}])


def test_work_moves_off_a_throttled_identity_and_every_clip_gets_done(tmp_path_factory):
    data = synthetic_data(tmp_path_factory)
    ids = sorted(p.stem for p in (data / "videos").glob("*.mp4"))
    with serve(data / "videos") as server, ForwardProxy("proxy-a") as a, \
            ForwardProxy("proxy-b") as b:
        server.throttle_via = {"proxy-a"}  # the host has blocked route A
        wd = _workdir_with_two_routes(tmp_path_factory, server.url, a, b, "id-move")
        summary = run_download(wd, load_config(wd), Shard(0, 1), progress=False)

        assert summary["done"] == len(ids) and summary["pending"] == 0 and summary["failed"] == 0
        entries = ledger_entries(wd)
        for clip_id in ids:
            entry = entries[clip_id]
            assert entry.status == "done" and entry.info["identity"] == "B"
            # full mode through the proxy: the served file, byte for byte
            assert sha(wd / entry.info["file"]) == sha(data / "videos" / f"{clip_id}.mp4")
        # route A got only 429s, as many as the proxy counted (the independent tally); how
        # many depends on the race with B (B may finish every clip before A is refused
        # throttle_limit times: seen once, 2 of 3), so at least one, and no exit 3
        assert set(a.answers) == {429}
        a_refusals = a.answers[429]
        assert a_refusals >= 1 and server.hits_via["1.1 proxy-a"] == a_refusals
        assert set(b.answers) == {200} and b.answers[200] >= len(ids)
        assert server.hits_via.get("", 0) == 0  # no request bypassed the proxies

        report = collect(wd)
        assert report["stages"]["download"]["identities"] == {
            "A": {"done": 0, "failed": 0, "throttled": a_refusals},
            "B": {"done": len(ids), "failed": 0, "throttled": 0}}
        assert summary["this_run"]["identities"]["A"]["throttled"] == a_refusals
        text = render(report)
        assert f"identity A: done 0, failed 0, throttled {a_refusals}" in text
        assert f"identity B: done {len(ids)}, failed 0, throttled 0" in text

        status = subprocess.run(avel_cmd("status", "--workdir", str(wd), "--json"),
                                env=cli_env(), capture_output=True, text=True, timeout=120)
        assert status.returncode == 0, status.stderr
        shown = json.loads(status.stdout)["stages"]["download"]["identities"]
        assert shown["B"]["done"] == len(ids) and shown["A"]["throttled"] == a_refusals


def test_the_stage_stops_with_exit_3_only_when_every_identity_is_throttled(tmp_path_factory):
    data = synthetic_data(tmp_path_factory)
    with serve(data / "videos") as server, ForwardProxy("proxy-a") as a, \
            ForwardProxy("proxy-b") as b:
        server.throttle_via = {"proxy-a", "proxy-b"}
        wd = _workdir_with_two_routes(tmp_path_factory, server.url, a, b, "id-all")
        run = subprocess.run(avel_cmd("download", "--workdir", str(wd), "--no-progress"),
                             env=cli_env(), capture_output=True, text=True, timeout=120)
        assert run.returncode == 3, run.stderr
        assert "throttled every identity" in run.stderr
        assert "A: http-429 3 times in a row" in run.stderr
        assert "B: http-429 3 times in a row" in run.stderr
        assert set(a.answers) == {429} and set(b.answers) == {429}
        assert a.answers[429] >= 3 and b.answers[429] >= 3
        entries = ledger_entries(wd)
        assert not any(e.status == "done" for e in entries.values())
        counts = collect(wd)["stages"]["download"]["identities"]
        assert counts["A"]["throttled"] == a.answers[429]
        assert counts["B"]["throttled"] == b.answers[429]


# -- status: pace and ETA -------------------------------------------------------------------
def test_status_eta_is_pending_over_the_recent_pace(tmp_path):
    # shard 0: 10 clips done 36 s apart (9 intervals in 324 s: 100 clips/h); shard 1: one more
    # clip done 36 s after the last of shard 0 and 30 pending; shard 0 has 20 pending.
    # Over both: 11 clips, 10 intervals in 360 s = 100 clips/h; 50 pending -> 0.5 h.
    # A clip done two hours earlier lies outside the one-hour window and must not count.
    wd = Workdir(tmp_path)
    t0 = 1_800_000_000.0
    plan = {Shard(0, 2): ([t0 + 36 * i for i in range(10)] + [t0 - 7200], 20),
            Shard(1, 2): ([t0 + 360], 30)}
    for shard, (times, pending) in plan.items():
        path = wd.ledger("download", shard)
        done = [f"{shard.index}-d{i}" for i in range(len(times))]
        with Ledger(path) as ledger:
            ledger.ensure(done + [f"{shard.index}-p{i}" for i in range(pending)])
            for clip_id in done:
                ledger.done(clip_id)
        db = sqlite3.connect(path)
        db.executemany("UPDATE clips SET updated_at=? WHERE clip_id=?", zip(times, done))
        db.commit()
        db.close()
    download = collect(tmp_path)["stages"]["download"]
    assert download["pending"] == 50
    assert download["pace"]["clips_in_window"] == 11
    assert download["pace"]["clips_per_hour"] == pytest.approx(100.0)
    assert download["pace"]["eta_hours"] == pytest.approx(0.5)
    assert "pace 100.0 clips/h" in render(collect(tmp_path)) and "ETA 30 min" in render(
        collect(tmp_path))


def test_status_has_no_eta_before_two_clips_are_done(tmp_path):
    with Ledger(Workdir(tmp_path).ledger("download", Shard(0, 1))) as ledger:
        ledger.ensure(["a", "b"])
        ledger.done("a")
    download = collect(tmp_path)["stages"]["download"]
    assert download["pace"]["clips_per_hour"] is None and download["pace"]["eta_hours"] is None
    assert "ETA" not in render(collect(tmp_path))
    assert "identities" not in download  # a ledger without identity info: none shown


def test_each_identity_reaches_ytdlp_with_its_own_cookies_and_proxy(tmp_path):
    dl = DownloadConfig(cookies_file="/top.txt", proxy="http://127.0.0.1:3128")
    lab = build_options(with_identity(dl, Identity("lab", "/lab.txt", "socks5://127.0.0.1:1")),
                        tmp_path)
    assert (lab["cookiefile"], lab["proxy"]) == ("/lab.txt", "socks5://127.0.0.1:1")
    # "" is yt-dlp's "no proxy": a direct connection, not the environment's proxy
    home = build_options(with_identity(dl, Identity("home", None, "")), tmp_path)
    assert home["proxy"] == "" and "cookiefile" not in home


def test_identities_get_default_names_and_inherit_the_top_level_settings(tmp_path_factory):
    data = synthetic_data(tmp_path_factory)
    root = tmp_path_factory.mktemp("id-yaml")
    wd = make_workdir(root / "w", data, "http://127.0.0.1:9", cookies_file="c.txt",
                      proxy="http://127.0.0.1:3128", identities=[
                          {"name": "home", "proxy": ""}, {"proxy": "socks5h://127.0.0.1:1080"},
                          {"cookies_file": "/abs/other.txt"}])
    (wd / "c.txt").write_text("# Netscape HTTP Cookie File\n")
    dl = load_config(wd).download
    with pytest.raises(InputError) as err:  # the third's own cookies file is not there
        resolve_identities(wd, dl, wd / "avel.yaml")
    assert err.value.field == "download.identities[2].cookies_file"
    dl.identities.pop()
    got = resolve_identities(wd, dl, wd / "avel.yaml")
    cookies = str(wd / "c.txt")
    assert got == [Identity("home", cookies, ""),  # "" = direct, not the top-level proxy
                   Identity("identity-1", cookies, "socks5h://127.0.0.1:1080")]
