"""AVE export writes each clip to its Annotations.txt row, whatever order the manifest lists
clips in and whichever clips it leaves out.

The AVE/PSP/CPSP loaders index the feature and label arrays by the order files, whose
entries are Annotations.txt line numbers; a file written in manifest order would hand every
clip another clip's features. The reference row of each clip is read straight from
Annotations.txt here (line number of its `Category&VideoID&Quality&start&end` line).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.datasets.manifest import load_manifest
from pipeline.export import ave as export_ave
from tests.fixtures_export import ave_workdir, fill_store, h5

N = 20


def _annotation_lines(shared_data: Path) -> list[list[str]]:
    lines = (shared_data / "ave" / "Annotations.txt").read_text(encoding="utf-8").splitlines()
    return [line.split("&") for line in lines[:N]]


def test_shuffled_manifest_with_gaps_exports_rows_in_annotations_order(tmp_path, shared_data):
    fields = _annotation_lines(shared_data)
    line_of = {f[1]: i for i, f in enumerate(fields)}
    assert len(line_of) == N  # one line per video in this slice
    wd = ave_workdir(tmp_path / "w", shared_data, limit=N)
    manifest = load_manifest(wd)
    rng = np.random.default_rng(4)
    dropped = {manifest["clip_id"][i] for i in (2, 7, 8, 13)}  # gaps, the last row kept
    kept = manifest[~manifest["clip_id"].isin(dropped)]
    shuffled = kept.iloc[rng.permutation(len(kept))].reset_index(drop=True)
    assert list(shuffled["clip_id"]) != sorted(shuffled["clip_id"], key=lambda c: line_of[c])
    shuffled.to_parquet(Path(wd) / "manifest.parquet", index=False)

    audio = fill_store(wd, "vggish", (10, 128), seed=11)
    visual = fill_store(wd, "vgg19", (10, 7, 7, 512), seed=12)
    out = tmp_path / "out"
    export_ave.export(wd, out, allow_missing=True)

    feats, maps, labels = (h5(out / "audio_feature.h5"), h5(out / "visual_feature.h5"),
                           h5(out / "right_labels.h5"))
    assert feats.shape[0] == maps.shape[0] == labels.shape[0] == N
    for clip in shuffled["clip_id"]:
        row = line_of[clip]
        np.testing.assert_array_equal(feats[row], audio[clip])
        np.testing.assert_array_equal(maps[row], visual[clip])
        # the per-second labels of that row are the clip's own Annotations event span
        start, end = int(fields[row][3]), int(fields[row][4])
        event = np.zeros(10, bool)
        event[start:end] = True
        np.testing.assert_array_equal(labels[row][:, -1] == 1, ~event)
    for clip in dropped:
        row = line_of[clip]
        assert not feats[row].any() and not maps[row].any() and not labels[row].any()
    # the order files list Annotations rows of the manifest's clips only
    written = np.concatenate([h5(out / f"{s}_order.h5", "order") for s in ("train", "val", "test")])
    assert sorted(written.tolist()) == sorted(line_of[c] for c in shuffled["clip_id"])
