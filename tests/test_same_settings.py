"""One check for "this shard file was made with other settings", used by cut and extract."""

from __future__ import annotations

import h5py

from pipeline.store.same_settings import differing_settings


def _h5(path, **attrs):
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as fh:
        fh.attrs.update(attrs)
    return path


def test_nothing_stored_yet_agrees(tmp_path):
    assert differing_settings(tmp_path / "s.h5", tmp_path / "s.parts", {"recipe": "a"}) is None


def test_the_shard_file_is_compared_as_text_on_the_keys_it_records(tmp_path):
    shard = _h5(tmp_path / "s.h5", recipe="a", jpeg_quality=2)
    assert differing_settings(shard, tmp_path / "s.parts", {"recipe": "a", "jpeg_quality": "2",
                                                            "scale": "new key, not recorded"}) is None
    assert differing_settings(shard, tmp_path / "s.parts", {"jpeg_quality": 3, "recipe": "b"}) == (
        shard, {"jpeg_quality": ("2", "3"), "recipe": ("a", "b")})


def test_before_consolidation_the_first_part_speaks_for_the_shard(tmp_path):
    parts = tmp_path / "s.parts"
    first = _h5(parts / "part-000001.h5", weights="random")
    _h5(parts / "part-000002.h5", weights="sha256:x")
    assert differing_settings(tmp_path / "s.h5", parts, {"weights": "sha256:x"}) == (
        first, {"weights": ("random", "sha256:x")})
