"""How long download pacing really takes, on the wall clock (the tests pin only the counts).

Three measurements, each against what the configuration asks for in the same run:
- the shared token bucket: 4 threads draw tokens at R per second; achieved rate / R;
- the throttle gate: one pause, then `wait()`; time blocked / the pause it announced;
- `run_download` on a loopback host where 2 of 4 clips answer 429 forever (Retry-After 1 s,
  backoff_max_s 0.3, throttle_limit 3): time to stop against a clean run of the same 2 healthy
  clips; the difference is what the pauses cost, at most 2 x 0.3 s of pauses plus 3 requests.

    python -m bench.bench_pacing [--rate 20] [--tokens 41]
"""

from __future__ import annotations

import argparse
import logging
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_download import make_workdir, serve_dir  # noqa: E402
from pipeline.core.config import load_config  # noqa: E402
from pipeline.core.errors import StageStopped  # noqa: E402
from pipeline.core.sharding import Shard  # noqa: E402
from pipeline.demo.loopback_server import serve  # noqa: E402
from pipeline.download.pacing import ThrottleGate, TokenBucket  # noqa: E402
from pipeline.download.stage import run_download  # noqa: E402

BACKOFF_MAX_S = 0.3


def bucket_rate(rate: float, tokens: int, threads: int = 4) -> float:
    """Tokens per second 4 threads actually get (the first token is the saved burst)."""
    bucket = TokenBucket(rate=rate, burst=1)
    share = [tokens // threads + (1 if i < tokens % threads else 0) for i in range(threads)]
    last: list[float] = []

    def draw(n: int) -> None:
        for _ in range(n):
            bucket.acquire()
        last.append(time.perf_counter())

    workers = [threading.Thread(target=draw, args=(n,)) for n in share]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return (tokens - 1) / (max(last) - start)


def gate_block(pause_s: float) -> tuple[float, float]:
    """(announced pause, seconds `wait()` blocked)."""
    gate = ThrottleGate(limit=5, base_s=pause_s, max_s=pause_s, rng=random.Random(0))
    announced = gate.throttled("bench", ticket=gate.ticket())
    start = time.perf_counter()
    gate.wait()
    return announced, time.perf_counter() - start


def download_workdir(root: Path, url: str, names: list[str]) -> Path:
    """A fresh one-worker work directory with short, capped backoff."""
    shutil.rmtree(root / "wd", ignore_errors=True)
    return make_workdir(root, url, names, 1, name="wd", throttle_limit=3,
                        backoff_base_s=0.05, backoff_max_s=BACKOFF_MAX_S)


def timed_download(wd: Path) -> float:
    start = time.perf_counter()
    try:
        run_download(wd, load_config(wd), Shard(0, 1), progress=False)
    except StageStopped:
        pass
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--tokens", type=int, default=41)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)

    got = bucket_rate(args.rate, args.tokens)
    print(f"token bucket, 4 threads : asked {args.rate:6.1f}/s  got {got:6.1f}/s  "
          f"ratio {got / args.rate:5.3f} (<= 1: never faster than asked)")
    for pause in (0.2, 1.2):
        announced, blocked = gate_block(pause)
        print(f"throttle gate           : pause {announced:5.3f} s  blocked {blocked:5.3f} s  "
              f"ratio {blocked / announced:5.3f} (>= 1)")

    root = Path(tempfile.mkdtemp(prefix="bench-pacing-"))
    try:
        names = serve_dir(root, 4)
        with serve(root / "served") as server:
            server.retry_after = 1
            timed_download(download_workdir(root, server.url, names[:2]))  # warm yt-dlp up
            clean = timed_download(download_workdir(root, server.url, names[:2]))
            for name in names[2:]:
                server.inject(f"/{name}.mp4", "429*")
            throttled = timed_download(download_workdir(root, server.url, names))
        print(f"2 clips, clean          : {clean:6.2f} s")
        print(f"+ 2 clips answering 429 : {throttled:6.2f} s  ratio {throttled / clean:5.2f}  "
              f"extra {throttled - clean:5.2f} s (pauses capped at {BACKOFF_MAX_S} s each)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
