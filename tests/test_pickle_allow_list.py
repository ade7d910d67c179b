"""The `--trust-pickles` loader's allow-list, pinned name by name.

README ("Official checkpoints load with ..."): whole pickled modules give only their tensors;
the authors' classes become inert shells, torch.nn layers and avel's nets load as themselves,
and the pre-1.6 unzipped format goes through an unpickler that resolves only those, the tensor
rebuilders and plain containers. Any name added to these lists widens what a planted
checkpoint can call, so the lists are compared for equality, not for containment.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.weights import checkpoints
from models.weights.checkpoints import read_state_dict

#: the authors' modules: PSP repo (fully_model, weakly_model, its scripts' __main__), CPSP
#: (model.psp_family / psp_family), AVE-ECCV18 (models, models_fusion, models_weakly)
AUTHORS_MODULES = {"fully_model", "weakly_model", "__main__", "model.psp_family", "psp_family",
                   "models", "models_fusion", "models_weakly"}
#: plain containers and the parameter rebuilder an old torch.save of a module names
LEGACY_PLAIN = {"collections.OrderedDict", "torch.nn.parameter.Parameter", "builtins.set",
                "builtins.dict", "builtins.list", "builtins.tuple", "torch.Size"}


def test_allow_list_is_exactly_the_documented_names():
    assert set(checkpoints.PICKLE_MODULES) == AUTHORS_MODULES
    assert len(checkpoints.PICKLE_MODULES) == len(AUTHORS_MODULES)
    assert checkpoints._LEGACY_PLAIN == LEGACY_PLAIN
    assert set(checkpoints.LAYER_MODULES) == {"torch.nn.modules.", "models."}
    assert checkpoints._THNN_BACKEND == "torch.nn.backends.thnn._get_thnn_function_backend"


@pytest.mark.parametrize("qualname", ["builtins.eval", "builtins.exec", "builtins.open",
                                      "builtins.getattr", "builtins.__import__", "os.system",
                                      "posix.system", "subprocess.Popen", "torch.load",
                                      "models.weights.checkpoints.read_state_dict",
                                      "torch.nn.modules.module.register_module_forward_hook"])
def test_callables_are_not_admitted(qualname):
    assert checkpoints._ModulePickleRules().admitted(qualname) is None


class _EvalOnLoad:
    """Unpickles as `eval(source)`: the pickle names the global builtins.eval."""

    def __init__(self, marker: Path) -> None:
        self.source = f"open({str(marker)!r}, 'w').close()"

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (eval, (self.source,))


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_module_pickle_calling_builtins_eval_is_refused_and_evaluates_nothing(tmp_path, zipped):
    marker = tmp_path / "EVALUATED"
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    model.payload = _EvalOnLoad(marker)
    torch.save(model, tmp_path / "m.pt", _use_new_zipfile_serialization=zipped)
    with pytest.raises(ValueError, match=r"\beval\b") as err:
        read_state_dict(tmp_path / "m.pt", trust_pickles=True)
    assert str(tmp_path / "m.pt") in str(err.value)
    assert not marker.exists()
