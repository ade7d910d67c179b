"""Numbers in avel.yaml that no setting can mean: NaN and infinities, zero or negative
durations and counts (-0.0 included, which passes a `< 0` check), and values so long that an
error quoting them whole would be megabytes. Each is refused naming the file and the key."""

from __future__ import annotations

import math

import pytest
import yaml

from pipeline.core.config import load_config
from pipeline.core.errors import InputError


def write(tmp_path, section: str, key: str, value: object) -> None:
    data: dict = {"dataset": {"name": "ave"}}
    data.setdefault(section, {})[key] = value
    (tmp_path / "avel.yaml").write_text(yaml.safe_dump(data))


@pytest.mark.parametrize("section,key,value", [
    ("cut", "timeout_s", -0.0),  # the case: accepted before, ffmpeg then timed out at once
    ("cut", "timeout_s", 0),
    ("cut", "max_pad_s", float("nan")),
    ("cut", "max_pixels", 0),
    ("download", "pad_s", float("inf")),
    ("download", "socket_timeout_s", -0.0),
    ("dataset", "clip_seconds", 0.0),
    ("extract", "cpu_threads", 0),
    ("extract", "ray_gpus_per_actor", -1.0),
])
def test_meaningless_number_is_refused_naming_the_key(tmp_path, section, key, value):
    write(tmp_path, section, key, value)
    with pytest.raises(InputError) as exc:
        load_config(tmp_path)
    assert str(tmp_path / "avel.yaml") in str(exc.value)
    assert f"field '{section}.{key}'" in str(exc.value)


def test_negative_zero_reads_as_zero_where_zero_is_allowed(tmp_path):
    write(tmp_path, "download", "pad_s", -0.0)
    pad = load_config(tmp_path).download.pad_s
    assert pad == 0.0 and math.copysign(1.0, pad) == 1.0


def test_a_megabyte_value_is_quoted_by_its_first_80_characters(tmp_path):
    write(tmp_path, "cut", "workers", "x" * 1_000_000)
    with pytest.raises(InputError) as exc:
        load_config(tmp_path)
    message = str(exc.value)
    assert len(message) < 300 and "(1000002 chars)" in message  # repr adds the two quotes
    assert "field 'cut.workers'" in message


def test_a_megabyte_key_is_named_by_its_first_80_characters(tmp_path):
    write(tmp_path, "cut", "k" * 1_000_000, 1)
    with pytest.raises(InputError) as exc:
        load_config(tmp_path)
    assert len(str(exc.value)) < 600 and "unknown key" in str(exc.value)
