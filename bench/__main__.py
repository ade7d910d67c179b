"""`make bench` / `python -m bench [NAME ...]`: every benchmark with its default, CPU-sized
settings, one after another. Each prints its own ratios against a baseline measured in the
same run; run a single one with `python -m bench.bench_cut --help` for its options."""

from __future__ import annotations

import importlib
import sys
import time
import traceback

BENCHES = ["bench_download", "bench_pacing", "bench_cut", "bench_vggish", "bench_extract",
           "bench_host_ceiling", "bench_export", "bench_train", "bench_baselines", "bench_avvp_eval",
           "bench_scale"]


def main(names: list[str]) -> int:
    failed = []
    for name in names or BENCHES:
        print(f"\n=== {name} ===", flush=True)
        started = time.perf_counter()
        module = importlib.import_module(f"bench.{name}")
        try:
            if name == "bench_avvp_eval":
                module.main()
            else:
                module.main([])
        except Exception:  # one broken benchmark should not hide the others' numbers
            traceback.print_exc()
            failed.append(name)
        print(f"--- {name}: {time.perf_counter() - started:.1f} s", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
