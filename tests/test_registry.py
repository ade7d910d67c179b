"""The name tables (models, checkpoint loaders, trainer families, presets, extractors, CLI
commands): every entry resolves, unknown names list the known ones, and the tables agree
with each other, so a typo in one "module:attribute" string fails here, not in a user's run."""

from __future__ import annotations

import re
import subprocess
import sys

import click
import pytest

from extractors import catalog
from models.registry import MODELS, LazyTable, build
from models.training.baseline_hparams import get_baseline_hparams
from models.training.presets import PRESET_COLLECTIONS, get_preset, preset_keys
from models.training.trainer import FAMILIES
from models.weights.checkpoints import LOADERS
from pipeline.cli import COMMANDS, SUMMARIES

TABLES = {"model": MODELS, "arch": LOADERS, "trainer family": FAMILIES,
          "preset collection": PRESET_COLLECTIONS, "command": COMMANDS}


@pytest.mark.parametrize("kind", sorted(TABLES))
def test_every_entry_resolves(kind):
    table = TABLES[kind]
    for name in table:
        obj = table[name]
        if kind == "preset collection":
            assert obj and all(hasattr(p, "task") for p in obj), name
        elif kind == "command":
            assert isinstance(obj, click.Command) and obj.name == name
        else:
            assert callable(obj), name


def test_every_extractor_resolves():
    for name in catalog.names():
        assert callable(catalog.extractor_class(name)), name


@pytest.mark.parametrize("kind", sorted(TABLES))
def test_an_unknown_name_lists_the_known_ones(kind):
    table = TABLES[kind]
    with pytest.raises(KeyError) as err:
        table["no-such-name"]
    message = str(err.value)
    assert f"unknown {kind} 'no-such-name'" in message
    assert all(name in message for name in table)


def test_an_unknown_extractor_lists_the_known_ones():
    with pytest.raises(KeyError, match="unknown extractor 'nope'; known: r2plus1d_18, resnet152"):
        catalog.extractor_class("nope")


def test_bound_arguments_make_the_variants_of_one_builder():
    table = LazyTable("thing", {"a": ("builtins:dict", {"x": 1}), "b": "builtins:dict"})
    assert table["a"](y=2) == {"x": 1, "y": 2}
    assert table["b"]() == {}
    assert table.names() == ["a", "b"] and len(table) == 2 and "a" in table and "c" not in table


def test_cpsp_names_build_the_variant_they_name():
    net = build("sspsp-weakly-vggsound")
    assert type(net).__name__ == "ResNetCPSPWeakly" and net.flag == "sspsp"
    assert type(build("cpsp-fully-ave")).__name__ == "CPSPFully"


def test_presets_name_a_known_network_and_trainer_family():
    for task, model in preset_keys():
        preset = get_preset(task, model)
        assert (preset.task, preset.model) == (task, model)
        assert preset.arch in MODELS, (task, model, preset.arch)
        assert preset.family in FAMILIES, (task, model, preset.family)


def test_get_preset_and_the_baseline_hparams_take_task_then_model():
    assert get_preset("ave-fully", "cmbs").task == "ave-fully"
    assert get_baseline_hparams("ave-fully", "cmbs").task == "ave-fully"
    with pytest.raises(KeyError, match="no preset for task 'cmbs' with model 'ave-fully'"):
        get_preset("cmbs", "ave-fully")


def test_every_loader_arch_builds_a_network_from_an_empty_checkpoint():
    """Loaders size the network from the checkpoint and fall back to the published class
    counts when a key is absent; each must at least build."""
    for arch in LOADERS:
        assert hasattr(LOADERS[arch]({}), "state_dict"), arch


def _first_sentence(text: str) -> str:
    paragraph = " ".join(text.split("\n\n")[0].split())
    match = re.match(r"(.+?\.)(\s|$)", paragraph)
    return match.group(1) if match else paragraph


def test_cli_summaries_are_each_commands_first_sentence():
    assert sorted(SUMMARIES) == COMMANDS.names()
    for name in COMMANDS:
        assert SUMMARIES[name] == _first_sentence(COMMANDS[name].help), name


def test_help_lists_every_command_without_importing_torch():
    code = ("import sys; from pipeline.cli import app\n"
            "try:\n    app(['--help'], prog_name='avel')\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    listed = [line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.strip()][:-1]
    assert listed == COMMANDS.names()
    assert out.strip().endswith("NO-TORCH")
