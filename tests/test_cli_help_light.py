"""`avel --help` and every command's `--help` load no heavy library (torch, pandas, h5py, ...):
a command module imports the code it runs inside its command function (pipeline/cli.py).
Not timed: a help that imports torch takes 10-30 s and 1 GB, and the modules say so exactly.
"""

from __future__ import annotations

import json
import subprocess
import sys

from pipeline.cli import COMMANDS
from tests.conftest import cli_env

#: libraries a help must not load: each costs seconds to import (torch, its vision and audio
#: stacks, TensorFlow, Ray, the data-frame and HDF5 stacks, plotting, the downloader)
HEAVY = ("torch", "torchvision", "torchaudio", "tensorflow", "tf_keras", "ray", "pandas",
         "pyarrow", "h5py", "matplotlib", "PIL", "scipy", "yt_dlp", "moviepy")
WEIGHTS_COMMANDS = ("convert-vggish", "fetch", "convert-vgg19-keras", "fetch-torchvision")

_PROBE = """
import json, sys
from click.testing import CliRunner
from pipeline.cli import app
heavy, loaded = json.loads(sys.argv[1]), {}
for args in json.loads(sys.argv[2]):
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, (args, result.output, result.exception)
    assert "Usage: " in result.output, (args, result.output)
    loaded[" ".join(args) or "avel"] = sorted(m for m in heavy if m in sys.modules)
print(json.dumps(loaded))
"""


def _helps(commands: list[list[str]]) -> dict[str, list[str]]:
    """In one fresh interpreter, each command's --help in turn; the heavy modules loaded
    after each (so the first command that loads one is the one named)."""
    out = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(HEAVY), json.dumps(commands)],
                         env=cli_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def test_every_commands_help_loads_no_heavy_library():
    commands = [[]] + [[name] for name in COMMANDS.names()]
    commands += [["weights", sub] for sub in WEIGHTS_COMMANDS]
    loaded = _helps(commands)
    assert set(loaded) == {" ".join(c) or "avel" for c in commands}
    assert {name: mods for name, mods in loaded.items() if mods} == {}


def test_the_weights_sub_commands_listed_here_are_all_of_them():
    from pipeline.commands.weights import weights_group
    assert set(weights_group.commands) == set(WEIGHTS_COMMANDS)

