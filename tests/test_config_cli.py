"""Config validation, `avel init`, `avel status` and the CLI surface."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml
from click.testing import CliRunner

from pipeline.cli import app
from pipeline.core.config import load_config
from pipeline.core.errors import InputError
from pipeline.core.ledger import Ledger
from pipeline.core.sharding import Shard
from pipeline.core.workdir import Workdir
from tests.conftest import avel_cmd, cli_env


def write(tmp_path, data):
    (tmp_path / "avel.yaml").write_text(yaml.safe_dump(data))


def test_unknown_key_names_file_and_key(tmp_path):
    write(tmp_path, {"dataset": {"name": "ave"}, "cut": {"fps": 8}})
    with pytest.raises(InputError) as exc:
        load_config(tmp_path)
    assert str(tmp_path / "avel.yaml") in str(exc.value)
    assert "field 'cut.fps'" in str(exc.value) and "unknown key" in str(exc.value)


def test_ill_typed_key_names_the_expected_type(tmp_path):
    write(tmp_path, {"dataset": {"name": "ave"}, "extract": {"batch_size": "big"}})
    with pytest.raises(InputError, match=r"field 'extract.batch_size': expected int, got str"):
        load_config(tmp_path)


def test_literal_values_are_checked(tmp_path):
    write(tmp_path, {"dataset": {"name": "ave"}, "extract": {"precision": "fp8"}})
    with pytest.raises(InputError, match="'fp32' | 'tf32' | 'bf16' | 'fp16'"):
        load_config(tmp_path)


def test_missing_required_key(tmp_path):
    write(tmp_path, {"sharding": {"num_shards": 2}})
    with pytest.raises(InputError, match="field 'dataset': required key is missing"):
        load_config(tmp_path)


def test_invalid_yaml_names_the_line(tmp_path):
    (tmp_path / "avel.yaml").write_text("dataset:\n  name: ave\n  files: [unclosed\n")
    with pytest.raises(InputError, match="line"):
        load_config(tmp_path)


def test_config_hash_changes_with_settings(tmp_path):
    write(tmp_path, {"dataset": {"name": "ave"}})
    a = load_config(tmp_path).hash()
    write(tmp_path, {"dataset": {"name": "ave"}, "extract": {"batch_size": 8}})
    assert load_config(tmp_path).hash() != a


@pytest.mark.parametrize("dataset", ["ave", "llp", "vggsound", "vggsound-avel", "vggsound-avel50k"])
def test_init_writes_a_loadable_config(tmp_path, dataset):
    result = CliRunner().invoke(app, ["init", "--dataset", dataset, "--workdir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert load_config(tmp_path).dataset.name == dataset


def test_init_refuses_to_overwrite(tmp_path):
    runner = CliRunner()
    assert runner.invoke(app, ["init", "--dataset", "ave", "-w", str(tmp_path)]).exit_code == 0
    result = runner.invoke(app, ["init", "--dataset", "llp", "-w", str(tmp_path)])
    assert result.exit_code == 2 and "--force" in result.output
    assert load_config(tmp_path).dataset.name == "ave"


def test_status_json_sums_ledgers_by_stage_shard_and_reason(tmp_path):
    wd = Workdir(tmp_path)
    for index, (done, failed) in enumerate([(3, ["http-404"]), (1, ["http-404", "private"])]):
        with Ledger(wd.ledger("download", Shard(index, 2))) as ledger:
            ids = [f"s{index}c{i}" for i in range(done + len(failed) + 1)]
            ledger.ensure(ids)
            for c in ids[:done]:
                ledger.done(c)
            for c, reason in zip(ids[done:], failed):
                ledger.failed(c, reason, permanent=True)
    result = CliRunner().invoke(app, ["status", "--json", "-w", str(tmp_path)])
    report = json.loads(result.output)
    download = report["stages"]["download"]
    assert (download["done"], download["failed"], download["pending"]) == (4, 3, 2)
    assert download["reasons"] == {"http-404": 2, "private": 1}
    assert download["shards"]["00001-of-00002"]["reasons"] == {"http-404": 1, "private": 1}
    text = CliRunner().invoke(app, ["status", "-v", "-w", str(tmp_path)]).output
    assert "http-404: 2, private: 1" in text and "00001-of-00002" in text


def test_every_command_has_help():
    result = subprocess.run(avel_cmd("--help"), capture_output=True, text=True, env=cli_env())
    assert result.returncode == 0
    commands = [line.split()[0] for line in result.stdout.split("Commands:")[1].splitlines()
                if line.strip()]
    assert {"init", "manifest", "status"} <= set(commands)
    for name in commands:
        sub = CliRunner().invoke(app, [name, "--help"])
        assert sub.exit_code == 0 and "Usage:" in sub.output, name
