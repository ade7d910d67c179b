"""TF-slim VGGish (the release's graph) vs our PyTorch port through our converter.

TensorFlow import is slow, so everything that needs it lives in this one module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from extractors.tensorflow_import import import_tf  # noqa: E402

try:  # through import_tf: TensorFlow before Triton would crash later torchvision imports
    import_tf()
except ImportError:
    pytest.skip("needs the tf extra", allow_module_level=True)
pytestmark = [pytest.mark.tf, pytest.mark.slow]

from extractors.vggish import VGGish, load_weights  # noqa: E402
from extractors.vggish_convert import LAYERS, convert_checkpoint  # noqa: E402
from extractors.vggish_tf import VGGishTF  # noqa: E402


@pytest.fixture(scope="module")
def tf_model_and_ckpt(tmp_path_factory):
    """A seeded random TF-slim VGGish with 1/sqrt(fan_in)-scaled weights (the release's 0.01
    init makes embeddings ~1e-9, which would pass any tolerance), saved as a TF checkpoint."""
    model = VGGishTF(None, fc2_relu=False, seed=5)
    rng = np.random.default_rng(5)
    values = {}
    for name, value in model.variables().items():
        fan_in = int(np.prod(value.shape[:-1])) if name.endswith("weights") else 1
        scale = np.sqrt(1.0 / fan_in) if name.endswith("weights") else 0.1
        values[name] = (rng.standard_normal(value.shape) * scale).astype(np.float32)
    model.assign(values)
    prefix = model.save(tmp_path_factory.mktemp("ckpt") / "vggish_model.ckpt", version=1)
    assert Path(prefix).is_file()  # one file, like the released checkpoint
    return model, prefix


@pytest.fixture(scope="module")
def converted(tf_model_and_ckpt, tmp_path_factory):
    """The checkpoint converted once by our converter (a 290 MB file: write it once)."""
    out = tmp_path_factory.mktemp("pt") / "vggish.pt"
    state = convert_checkpoint(tf_model_and_ckpt[1], out)
    return out, state


@pytest.fixture(scope="module")
def examples():
    rng = np.random.default_rng(9)
    return rng.uniform(-4.6, 3.0, size=(6, 96, 64)).astype(np.float32)


def test_converted_torch_matches_tf_slim(tf_model_and_ckpt, converted, examples):
    tf_model, _ = tf_model_and_ckpt
    out, state = converted
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


def test_fc2_relu_variant_restores_same_checkpoint(tf_model_and_ckpt, converted, examples):
    tf_model, prefix = tf_model_and_ckpt
    released_2017 = VGGishTF(prefix, fc2_relu=True)
    assert released_2017.weights_id != "random"
    relu = released_2017.embed(examples)
    np.testing.assert_allclose(relu, np.maximum(tf_model.embed(examples), 0), atol=1e-6)
    net = VGGish(fc2_relu=True).eval()
    net.load_state_dict(converted[1])
    with torch.no_grad():
        assert np.abs(net(torch.from_numpy(examples)).numpy() - relu).max() <= 1e-4


def test_cli_convert_vggish_writes_the_converted_state_dict(tf_model_and_ckpt, converted, tmp_path):
    from click.testing import CliRunner

    from pipeline.cli import app

    _, prefix = tf_model_and_ckpt
    out = tmp_path / "out" / "vggish.pt"
    result = CliRunner().invoke(app, ["weights", "convert-vggish", prefix, str(out)])
    assert result.exit_code == 0, result.output
    assert "18 tensors" in result.output
    written = torch.load(out, weights_only=True)
    assert written.keys() == converted[1].keys()
    assert all(torch.equal(written[k], converted[1][k]) for k in written)
    missing = CliRunner().invoke(app, ["weights", "convert-vggish", str(tmp_path / "nope.ckpt"),
                                       str(tmp_path / "x.pt")])
    assert missing.exit_code == 2 and "nope.ckpt" in missing.output


def test_tf_backend_extractor_matches_torch_backend(tf_model_and_ckpt, converted):
    from extractors.base import ClipInput
    from extractors.vggish import VGGishExtractor

    _, prefix = tf_model_and_ckpt
    torch_path = converted[0]
    rng = np.random.default_rng(2)
    clip = ClipInput(audio=(rng.standard_normal(16000 * 3) * 3000).astype(np.int16), sample_rate=16000)
    tf_ex = VGGishExtractor("ave", prefix, backend="tf", seconds=3)
    torch_ex = VGGishExtractor("ave", torch_path, seconds=3)
    items = torch_ex.preprocess(clip)
    assert np.abs(tf_ex.forward(items).numpy() - torch_ex.forward(items).numpy()).max() <= 1e-4
