"""Host ceiling of the extract runner: the real runner (`run_extract_many`) with the network
replaced by a no-op, one loader worker, on the CPU; frames per CPU-second for each recipe and
decode mode, and where the CPU time goes. Device-side work the CPU stand-in does on the host
(decode + resize with decode=device, in the decode threads or the main thread; gathering a
batch from several clips' items; normalise; fold) is timed apart (CPU time of the thread
doing it) and not counted as host work.

Baseline (measured in the same run): decode=cpu, today's path — the worker decodes and
resizes every frame with PIL and ships the pixels. Ours: decode=device — the worker ships
the JPEG bytes and the device decodes them.

    python -m bench.bench_host_ceiling               # < 2 min on a laptop core
Per-frame costs come from the difference of two runs (N and 2N clips), so fixed per-run
costs drop out; CPU times (getrusage), not wall times, so a busy machine does not skew them.
Prints per recipe and mode: worker µs/frame, main-process µs/frame (without device decode),
host frames/s per core (worker + main), the main process's own ceiling, and the ratio.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gpu_extract import build_store, fresh_workdir, with_noop_net  # noqa: E402
from extractors import catalog  # noqa: E402
from pipeline.core.config import load_config  # noqa: E402
from pipeline.core.sharding import Shard  # noqa: E402
from pipeline.extract import decode_ahead, stage  # noqa: E402
from pipeline.extract.stage import run_extract_many  # noqa: E402

#: decode modes: cpu (today's reference: PIL in the worker), device with the decode ahead in
#: two threads (the default), device clip by clip in the main thread (decode_threads 0)
MODES = ("cpu", "device:2", "device:0")

RECIPES = {  # name → (frame size, frames per clip), as the papers' cut clips hold them
    "vgg19": ((320, 240), 160),
    "resnet152": ((480, 360), 80),
}


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


class DeviceSideClock:
    """Main-thread CPU time spent in device-side work on the CPU stand-in: decode + resize,
    normalise + (no-op) network, fold. A GPU node runs these on the device, not on a host
    core, so they are reported apart from the host's share."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.lock = threading.Lock()  # decode threads and the main thread add to it
        self.decode_batch = decode_ahead.decode_batch
        self.gather = stage.BatchPacker.gather

    def timed(self, fn):  # type: ignore[no-untyped-def]
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            t0 = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.thread_time() - t0
                with self.lock:
                    self.seconds += spent

        return wrapper


def run_once(name: str, mode: str, clips: int, scratch: Path) -> tuple[int, float, float, float]:
    """(frames, main CPU s without the device side, worker CPU s, device-side CPU s)."""
    size, frames = RECIPES[name]
    store = build_store(scratch / f"{name}-{clips}-store", size, frames, clips, 1)
    extractor = with_noop_net(catalog.create(name, weights="random"))
    clock = DeviceSideClock()
    for method in ("items_on_device", "forward", "fold"):  # what a GPU node runs on the device
        setattr(extractor, method, clock.timed(getattr(extractor, method)))
    decode_ahead.decode_batch = clock.timed(clock.decode_batch)
    stage.BatchPacker.gather = staticmethod(clock.timed(clock.gather))  # type: ignore[method-assign]
    decode, _, threads = mode.partition(":")
    wd = fresh_workdir(store, scratch / f"{name}-{decode}{threads}-{clips}")
    config = load_config(wd)
    try:
        self0, kids0 = cpu_seconds(resource.RUSAGE_SELF), cpu_seconds(resource.RUSAGE_CHILDREN)
        (summary,) = run_extract_many(
            wd,
            [name],
            Shard(0, 1),
            config,
            progress=False,
            extractors={name: extractor},
            device="cpu",
            decode=decode,
            decode_threads=int(threads or 0),
            num_workers=1,
            batch_size=256,
            cpu_threads=1,
        )
        main = cpu_seconds(resource.RUSAGE_SELF) - self0
        worker = cpu_seconds(resource.RUSAGE_CHILDREN) - kids0
    finally:
        decode_ahead.decode_batch = clock.decode_batch
        stage.BatchPacker.gather = staticmethod(clock.gather)  # type: ignore[method-assign]
    return summary["done"] * frames, main - clock.seconds, worker, clock.seconds


def measure(name: str, mode: str, clips: int, scratch: Path) -> dict[str, float]:
    """Per-frame costs from the difference of a run of `clips` and one of 2 x `clips`, so
    the fixed per-run costs (ledger, consolidate, index, worker start) drop out."""
    small = run_once(name, mode, clips, scratch)
    large = run_once(name, mode, 2 * clips, scratch)
    n = large[0] - small[0]
    main_s, worker_s, device_s = (large[i] - small[i] for i in (1, 2, 3))
    return {
        "frames": n,
        "worker_us": 1e6 * worker_s / n,
        "main_us": 1e6 * main_s / n,
        "device_decode_us": 1e6 * device_s / n,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=int, default=4, help="clips of the small run (the large one: twice)")
    parser.add_argument("--recipe", choices=list(RECIPES), action="append",
                        help="only these recipes (repeatable; default: all)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.recipe or list(RECIPES):
            rows = {mode: measure(name, mode, args.clips, Path(tmp)) for mode in MODES}
            per_core = {}
            for mode, r in rows.items():
                per_core[mode] = 1e6 / (r["worker_us"] + r["main_us"])
                print(
                    f"{name} decode={mode}: {r['frames']} frames | worker {r['worker_us']:.0f} µs/frame"
                    f" | main {r['main_us']:.0f} µs/frame"
                    f" (main-process ceiling {1e6 / r['main_us']:,.0f} frames/s) | "
                    f"device-side work on the CPU stand-in {r['device_decode_us']:.0f} µs/frame | "
                    f"host {per_core[mode]:,.0f} frames/s per core",
                    flush=True,
                )
            print(
                f"{name}: host ceiling per core, device decode / cpu decode: "
                f"x{per_core['device:2'] / per_core['cpu']:.2f} decoded ahead (2 threads), "
                f"x{per_core['device:0'] / per_core['cpu']:.2f} clip by clip (0 threads)",
                flush=True,
            )


if __name__ == "__main__":
    main()
