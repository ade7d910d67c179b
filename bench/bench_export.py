"""Export/import throughput against the floor of writing the same bytes directly.

For each format: store → export and export → import of N synthetic clips, compared with
a baseline measured in the same run (one h5py write of the whole array for AVE; plain
np.save / pickle-in-zip per clip for LLP and VGGSound-AVEL). Ratios near 1 mean the
store reads, validation and atomic writes cost little on top of the I/O itself.

    python bench/bench_export.py [--clips 200]
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TQDM_DISABLE", "1")

from pipeline.core.sharding import Shard  # noqa: E402
from pipeline.core.workdir import Workdir  # noqa: E402
from pipeline.export import ave as export_ave  # noqa: E402
from pipeline.export import llp as export_llp
from pipeline.export import vggsound_avel as export_vggsound_avel
from pipeline.store import features as store


def manifest(root: Path, n: int) -> list[str]:
    ids = [f"v{i:010d}_0_10" for i in range(n)]
    pd.DataFrame({"clip_id": ids, "video_id": [c[:11] for c in ids], "category": ["Bark"] * n,
                  "class_id": [0] * n, "event_start": [2] * n, "event_end": [7] * n,
                  "row": list(range(n)), "labels": [["Speech"]] * n,
                  "split": (["train", "val", "test"] * n)[:n]}).to_parquet(root / "manifest.parquet")
    return ids


def fill(root: Path, name: str, ids: list[str], shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    shard_file = Workdir(root).features_file(name, Shard(0, 1))
    store.write_part(shard_file, ids, rng.standard_normal((len(ids), *shape)).astype("float32"),
                     {"weights": "random"})
    store.consolidate(shard_file, order=ids)
    store.build_index(shard_file.parent, order=ids)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=200)
    n = parser.parse_args(argv).clips
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ids = manifest(root, n)
        for name, shape in (("vggish", (10, 128)), ("vgg19", (10, 7, 7, 512)),
                            ("resnet152", (80, 2048)), ("r2plus1d_18", (10, 512)),
                            ("resnet_layer3", (10, 1024, 7, 7))):
            fill(root, name, ids, shape)
        rows = []

        # AVE: baseline = one h5py write of the visual array read from the store in one go
        def ave_base() -> None:
            with h5py.File(Workdir(root).features_file("vgg19", Shard(0, 1)), "r") as fh:
                data = fh["features"][()].astype("float64")
            with h5py.File(root / "base_visual.h5", "w") as fh:
                fh.create_dataset("avadataset", data=data)
        # allow_missing: the bench has no background videos (weakly *_noisy.h5)
        rows.append(("ave export", timed(ave_base),
                     timed(lambda: export_ave.export(root, root / "ave", allow_missing=True)),
                     "visual float64 write"))
        rows.append(("ave import", None, timed(lambda: export_ave.import_(root / "ave", root)), ""))

        def llp_base() -> None:
            for name in ("vggish", "resnet152", "r2plus1d_18"):
                out = root / "llp_base" / name
                out.mkdir(parents=True)
                with h5py.File(Workdir(root).features_file(name, Shard(0, 1)), "r") as fh:
                    for i, c in enumerate(ids):
                        np.save(out / f"{c[:11]}.npy", fh["features"][i])
        rows.append(("llp export", timed(llp_base),
                     timed(lambda: export_llp.export(root, root / "llp", allow_missing=True)),
                     "plain np.save, 3 kinds"))
        rows.append(("llp import", None, timed(lambda: export_llp.import_(root / "llp", root)), ""))

        def vav_base() -> None:
            for name in ("vggish", "resnet_layer3"):
                out = root / "vav_base" / name
                out.mkdir(parents=True)
                with h5py.File(Workdir(root).features_file(name, Shard(0, 1)), "r") as fh:
                    for i, c in enumerate(ids):
                        with zipfile.ZipFile(out / f"{c}.zip", "w") as zf:
                            zf.writestr(f"{c}.pkl", pickle.dumps(fh["features"][i], protocol=2))
        rows.append(("vggsound-avel export", timed(vav_base),
                     timed(lambda: export_vggsound_avel.export(root, root / "vav")),
                     "plain zip+pickle, audio+maps"))
        rows.append(("vggsound-avel import", None, timed(lambda: export_vggsound_avel.import_(
            root / "vav", root, trust_pickles=True)), ""))
        print(f"{n} clips")
        print(f"{'step':24s} {'baseline s':>10s} {'avel s':>8s} {'ratio':>6s}  baseline")
        for step, base, ours, what in rows:
            ratio = f"{ours / base:6.2f}" if base else "     -"
            print(f"{step:24s} {base if base else float('nan'):10.2f} {ours:8.2f} {ratio}  {what}")


if __name__ == "__main__":
    main()
