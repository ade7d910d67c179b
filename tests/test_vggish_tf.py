"""TF-slim VGGish (the release's graph) vs our PyTorch port through our converter.

TensorFlow import is slow, so everything that needs it lives in this one module.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("tf_slim")
pytestmark = [pytest.mark.tf, pytest.mark.slow]

from extractors.vggish import VGGish, load_weights  # noqa: E402
from extractors.vggish_convert import LAYERS, convert_checkpoint  # noqa: E402
from extractors.vggish_tf import VGGishTF  # noqa: E402


@pytest.fixture(scope="module")
def tf_model_and_ckpt(tmp_path_factory):
    """A seeded random TF-slim VGGish with He-scaled weights (the release's 0.01 init makes
    embeddings ~1e-9, which would pass any tolerance), saved as a TF checkpoint."""
    model = VGGishTF(None, fc2_relu=False, seed=5)
    rng = np.random.default_rng(5)
    values = {}
    for name, value in model.variables().items():
        fan_in = int(np.prod(value.shape[:-1])) if name.endswith("weights") else 1
        scale = np.sqrt(2.0 / fan_in) if name.endswith("weights") else 0.1
        values[name] = (rng.standard_normal(value.shape) * scale).astype(np.float32)
    model.assign(values)
    prefix = model.save(tmp_path_factory.mktemp("ckpt") / "vggish_model.ckpt")
    return model, prefix


@pytest.fixture(scope="module")
def examples():
    rng = np.random.default_rng(9)
    return rng.uniform(-4.6, 3.0, size=(6, 96, 64)).astype(np.float32)


def test_converted_torch_matches_tf_slim(tf_model_and_ckpt, examples, tmp_path):
    tf_model, prefix = tf_model_and_ckpt
    out = tmp_path / "vggish.pt"
    state = convert_checkpoint(prefix, out)
    assert len(state) == 2 * len(LAYERS)
    net = VGGish(fc2_relu=False).eval()
    assert load_weights(net, out)
    expected = tf_model.embed(examples)
    with torch.no_grad():
        ours = net(torch.from_numpy(examples)).numpy()
    assert np.abs(expected).max() > 0.1  # a meaningful scale, not near-zero outputs
    assert (expected < 0).any()  # upstream graph: no ReLU after fc2
    print("max abs diff torch vs tf-slim:", np.abs(ours - expected).max(), "scale", np.abs(expected).max())
    assert np.abs(ours - expected).max() <= 1e-4


def test_fc2_relu_variant_restores_same_checkpoint(tf_model_and_ckpt, examples, tmp_path):
    tf_model, prefix = tf_model_and_ckpt
    released_2017 = VGGishTF(prefix, fc2_relu=True)
    assert released_2017.weights_id != "random"
    relu = released_2017.embed(examples)
    np.testing.assert_allclose(relu, np.maximum(tf_model.embed(examples), 0), atol=1e-6)
    net = VGGish(fc2_relu=True).eval()
    net.load_state_dict(convert_checkpoint(prefix, tmp_path / "v.pt"))
    with torch.no_grad():
        assert np.abs(net(torch.from_numpy(examples)).numpy() - relu).max() <= 1e-4
