"""The per-shard SQLite ledger under concurrency and kills."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from pipeline.core.ledger import Ledger


def test_lifecycle_and_todo(tmp_path):
    with Ledger(tmp_path / "l.sqlite") as ledger:
        assert ledger.ensure(["a", "b", "c", "d"]) == 4
        assert ledger.ensure(["a", "e"]) == 1  # known clips keep their state
        ledger.start("a")
        ledger.done("a", checksum="abc", info={"file": "raw/a.mp4"})
        ledger.start("b")
        ledger.failed("b", "http-404", permanent=True)
        ledger.start("c")
        ledger.failed("c", "timeout", permanent=False)
        assert ledger.todo(max_attempts=3) == ["c", "d", "e"]
        ledger.start("c")
        ledger.start("c")
        assert ledger.todo(max_attempts=3) == ["d", "e"]  # c used its 3 attempts
        assert ledger.get("a").info == {"file": "raw/a.mp4"}
        assert ledger.counts() == {"pending": 2, "done": 1, "failed": 2,
                                   "reasons": {"http-404": 1, "timeout": 1}}
        assert ledger.requeue("http-404") == 1
        assert ledger.get("b").status == "pending" and ledger.get("b").attempts == 0


def test_done_many_records_what_done_records_clip_by_clip(tmp_path):
    """A store flush marks its clips done in one transaction; each row must read as if
    `done` had marked it (status, checksum, cleared reason and detail, empty info)."""
    rows = {}
    marks = [("a", "00ff"), ("c", None)]
    for name, mark in (("one", lambda ledger: [ledger.done(c, checksum=k) for c, k in marks]),
                       ("many", lambda ledger: ledger.done_many(marks))):
        with Ledger(tmp_path / f"{name}.sqlite") as ledger:
            ledger.ensure(["a", "b", "c"])
            ledger.start("a")
            ledger.failed("c", "timeout", permanent=False, detail="slow")
            mark(ledger)
            rows[name] = [(e.clip_id, e.status, e.reason, e.permanent, e.attempts, e.checksum,
                           e.detail, e.info) for e in ledger.entries()]
    assert rows["many"] == rows["one"]
    assert rows["many"][0] == ("a", "done", None, False, 1, "00ff", None, {})
    assert rows["many"][2][:3] == ("c", "done", None)


def _writer(path: str, n: int) -> None:
    with Ledger(path) as ledger:
        ids = [f"{Path(path).stem}-{i}" for i in range(n)]
        ledger.ensure(ids)
        for i, c in enumerate(ids):
            ledger.start(c)
            if i % 3:
                ledger.done(c, checksum=str(i))
            else:
                ledger.failed(c, "transient", permanent=False)


def test_four_processes_on_four_shards(tmp_path):
    paths = [str(tmp_path / "state" / "cut" / f"0000{i}-of-00004.sqlite") for i in range(4)]
    procs = [mp.get_context("spawn").Process(target=_writer, args=(p, 200)) for p in paths]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    from pipeline.run.status import collect
    report = collect(tmp_path)
    cut = report["stages"]["cut"]
    assert cut["done"] + cut["failed"] == 800 and cut["pending"] == 0
    assert cut["failed"] == 4 * len(range(0, 200, 3))


KILL_LOOP = """
import sys
from pipeline.core.ledger import Ledger
ledger = Ledger(sys.argv[1])
ledger.ensure([f"c{i}" for i in range(100000)])
print("ready", flush=True)
i = 0
while True:
    c = f"c{i % 100000}"
    ledger.start(c)
    ledger.done(c, checksum=str(i), info={"i": i})
    i += 1
"""


def test_sigkill_mid_write_leaves_a_consistent_ledger(tmp_path):
    path = tmp_path / "l.sqlite"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for delay in (0.05, 0.3, 0.7):
        proc = subprocess.Popen([sys.executable, "-c", KILL_LOOP, str(path)], stdout=subprocess.PIPE,
                                env=env, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
        with Ledger(path) as ledger:
            counts = ledger.counts()
            assert counts["pending"] + counts["done"] == 100000
            for e in ledger.entries()[:50]:
                assert (e.status == "done") == (e.checksum is not None)
