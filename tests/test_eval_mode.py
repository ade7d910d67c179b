"""Evaluation runs the nets in eval mode: dropout off, so the scores are the deterministic
function of the weights that the paper's numbers come from.

Each family's evaluation (Trainer.evaluate, which `avel eval` and the per-epoch validation
call) is handed a net left in training mode, as it is right after a training epoch. Every
forward it makes is recorded; each must have run with `training` off and give what a
forward after an explicit `model.eval()` gives on the same inputs. All these nets have
dropout (PSP block p=0.1, HAN's encoders), so a forward in training mode would differ.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from models.training.presets import get_preset, with_overrides
from models.training.trainer import Trainer, make_family


def _ave_dataset():
    from models.training.ave_data import ArrayAVEDataset
    from tests.fixtures_psp import separable_features
    rows, audio, video = separable_features(4, 2, seed=3)
    labels = np.zeros((4, 10, 3), np.float32)
    for i, (_, _, s, e) in enumerate(rows):
        labels[i, :, 2] = 1
        labels[i, s:e, 2] = 0
        labels[i, s:e, i % 2] = 1
    return ArrayAVEDataset(audio, video, labels), 2


def _avvp_dataset():
    from models.training.avvp_data import AvvpFeatures, DenseAnnotations, label_vector
    rng = np.random.default_rng(0)
    names = [f"v{i:010d}_0_10" for i in range(4)]
    labels = [["Dog"] if i % 2 else ["Speech"] for i in range(4)]
    feats = {n[:11]: (rng.standard_normal((10, 128)), rng.standard_normal((80, 2048)),
                      rng.standard_normal((10, 512))) for n in names}
    weak = pd.DataFrame({"filename": names, "target": [label_vector(x) for x in labels]})
    annotations = DenseAnnotations(
        audio={n: [{"label": lab[0], "onset": 0, "offset": 10}] for n, lab in zip(names, labels)},
        visual={})
    return AvvpFeatures(weak, feats.__getitem__, annotations=annotations), 25


CASES = [("ave-fully", "psp-cvpr21"), ("ave-weakly", "psp-cvpr21"), ("ave-fully", "cpsp"),
         ("ave-weakly", "cpsp"), ("avvp", "psp"), ("avvp", "cpsp"), ("avvp", "han")]


@pytest.mark.parametrize("task,model", CASES)
def test_evaluation_forwards_run_in_eval_mode_and_equal_an_explicit_eval_forward(task, model):
    dataset, num_classes = (_avvp_dataset if task == "avvp" else _ave_dataset)()
    preset = with_overrides(get_preset(task, model), {"batch_size": 4, "drop_last": False})
    trainer = Trainer(make_family(preset, num_classes), preset, ".", device="cpu", progress=False)
    torch.manual_seed(0)
    net = trainer._model()
    assert any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in net.modules())
    net.train()  # as a training epoch leaves it
    calls: list[tuple[bool, tuple, tuple]] = []

    def record(module, args, output):
        outputs = output if isinstance(output, tuple) else (output,)
        calls.append((module.training, tuple(a.detach().clone() for a in args if torch.is_tensor(a)),
                      tuple(o.detach().clone() for o in outputs)))

    handle = net.register_forward_hook(record)
    trainer.evaluate(net, dataset)
    handle.remove()
    assert calls, "evaluation made no forward"
    assert [training for training, _, _ in calls] == [False] * len(calls)
    net.eval()
    with torch.no_grad():
        for _, args, outputs in calls:
            extra = (preset.threshold,) if model == "psp-cvpr21" else ()  # PSP repo: (a, v, thr)
            again = net(*args, *extra)
            again = again if isinstance(again, tuple) else (again,)
            assert len(again) == len(outputs)
            for got, want in zip(outputs, again):
                torch.testing.assert_close(got, want, rtol=0, atol=0)
