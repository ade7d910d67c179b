"""Host ceiling of the extract runner: the real runner (`run_extract_many`) with the network
replaced by a no-op, one loader worker, on the CPU; frames per CPU-second for each recipe and
decode mode, and where the CPU time goes. Device-side work the CPU stand-in does on the host
(decode + resize with decode=device, in the decode threads or the main thread; gathering a
batch from several clips' items; normalise; joining a clip's outputs; fold and the cast to the
store dtype; stacking a flush's rows) is timed apart (CPU time of the thread doing it) and not
counted as host work. Until 2026-11-30 the join, the cast and the stack were counted as host
work (copies of whole output tensors on the stand-in, one kernel launch each on a GPU); each
row also prints its main-process figure counted that way ("counted as before").

Baseline (measured in the same run): decode=cpu, today's path — the worker decodes and
resizes every frame with PIL and ships the pixels. Ours: decode=device — the worker ships
the JPEG bytes and the device decodes them.

    python -m bench.bench_host_ceiling               # < 2 min on a laptop core
Per-frame costs come from the difference of two runs (N and 2N clips), so fixed per-run
costs drop out; CPU times (getrusage), not wall times, so a busy machine does not skew them.
Prints per recipe and mode: worker µs/frame, main-process µs/frame (without device decode),
host frames/s per core (worker + main), the main process's own ceiling, and the ratio. The
main process's time is split (µs/frame, all its threads): `loader` taking items from the
workers, `flush` writing store parts (HDF5 part, row checksums, ledger), `consolidate` folding
the parts into the shard file and the index, `other` the rest (the runner's loops, per-clip
tensor bookkeeping, the ledger's attempt counts, decode threads' own Python, freeing memory).
"""

from __future__ import annotations

import argparse
import collections
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from torch.utils.data.dataloader import _BaseDataLoaderIter  # noqa: E402

from bench.gpu_extract import build_store, fresh_workdir, with_noop_net  # noqa: E402
from extractors import catalog  # noqa: E402
from pipeline.core.config import load_config  # noqa: E402
from pipeline.core.ledger import Ledger  # noqa: E402
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


#: device-side steps: what a GPU node runs on the device, which the CPU stand-in runs on a
#: host core (decode + resize, gathering a batch, normalise + the no-op network, joining a
#: clip's outputs, fold + cast to the store dtype, stacking a flush's rows: copies of whole
#: output tensors here, one kernel each on a GPU)
DEVICE_STEPS = [(decode_ahead, "decode_batch"), (stage.BatchPacker, "gather"),
                (stage.BatchPacker, "join"), (stage, "fold_for_store"), (stage, "rows_to_host")]
#: of those, the ones the earlier version of this benchmark counted as host work ("old")
NEWLY_DEVICE = ("join", "fold_for_store", "rows_to_host")
#: host steps reported apart (the rest of the main process's CPU time is "other")
HOST_STEPS = {
    "loader": [(_BaseDataLoaderIter, "__next__")],  # taking an item from the workers
    "flush": [(stage.store, "write_part"), (stage, "row_checksum"), (Ledger, "done_many")],
    "consolidate": [(stage.store, "consolidate"), (stage, "index_when_complete")],
}


class SectionClock:
    """CPU time of the thread running each timed step, exclusive of steps timed inside it,
    summed over all threads (decode threads, the reader thread and the main thread)."""

    def __init__(self) -> None:
        self.seconds: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        self.local = threading.local()
        self.patched: list[tuple[object, str, object]] = []

    def timed(self, label: str, fn):  # type: ignore[no-untyped-def]
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            stack = self.local.__dict__.setdefault("stack", [])
            stack.append(0.0)
            t0 = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.thread_time() - t0
                inner = stack.pop()
                if stack:
                    stack[-1] += spent
                with self.lock:
                    self.seconds[label] += spent - inner

        return wrapper

    def patch(self, owner: object, name: str, label: str) -> None:
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        fn = original.__func__ if isinstance(original, staticmethod) else original
        timed = self.timed(label, fn)
        setattr(owner, name, staticmethod(timed) if isinstance(original, staticmethod) else timed)
        self.patched.append((owner, name, original))

    def restore(self) -> None:
        for owner, name, original in reversed(self.patched):
            setattr(owner, name, original)
        self.patched = []

    def device_s(self) -> float:
        return sum(v for k, v in self.seconds.items() if k.startswith("device:"))


def run_once(name: str, mode: str, clips: int, scratch: Path) -> dict[str, float]:
    """frames, main (CPU s of the main process without the device side), worker CPU s,
    device-side CPU s, and each host section's CPU s."""
    size, frames = RECIPES[name]
    store = build_store(scratch / f"{name}-{clips}-store", size, frames, clips, 1)
    extractor = with_noop_net(catalog.create(name, weights="random"))
    clock = SectionClock()
    for method in ("items_on_device", "forward", "fold"):  # what a GPU node runs on the device
        setattr(extractor, method, clock.timed(f"device:{method}", getattr(extractor, method)))
    for owner, attr in DEVICE_STEPS:
        clock.patch(owner, attr, f"device:{attr}")
    for label, steps in HOST_STEPS.items():
        for owner, attr in steps:
            clock.patch(owner, attr, label)
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
        clock.restore()
    device = clock.device_s()
    out = {"frames": summary["done"] * frames, "main": main - device, "worker": worker,
           "device": device, "old": sum(clock.seconds[f"device:{k}"] for k in NEWLY_DEVICE)}
    out.update({label: clock.seconds[label] for label in HOST_STEPS})
    return out


def measure(name: str, mode: str, clips: int, scratch: Path) -> dict[str, float]:
    """Per-frame costs from the difference of a run of `clips` and one of 2 x `clips`, so
    the fixed per-run costs (ledger, consolidate, index, worker start) drop out."""
    small = run_once(name, mode, clips, scratch)
    large = run_once(name, mode, 2 * clips, scratch)
    n = large["frames"] - small["frames"]
    return {"frames": n, **{f"{k}_us": 1e6 * (large[k] - small[k]) / n for k in large if k != "frames"}}


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
                other = r["main_us"] - sum(r[f"{label}_us"] for label in HOST_STEPS)
                split = ", ".join(f"{label} {r[f'{label}_us']:.1f}" for label in HOST_STEPS)
                print(
                    f"{name} decode={mode}: {r['frames']} frames | worker {r['worker_us']:.0f} µs/frame"
                    f" | main {r['main_us']:.0f} µs/frame"
                    f" (main-process ceiling {1e6 / r['main_us']:,.0f} frames/s; {split}, other"
                    f" {other:.1f}; counted as before {r['main_us'] + r['old_us']:.0f}) | "
                    f"device-side work on the CPU stand-in {r['device_us']:.0f} µs/frame | "
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
