"""The `vggish` extractor: items, batching, recipes, bad audio, weights identity."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from extractors import vggish
from extractors.base import ClipInput, ClipRejected
from extractors.vggish import VGGish, VGGishExtractor


@pytest.fixture(scope="module")
def extractor() -> VGGishExtractor:
    return VGGishExtractor("ave", weights="random", seed=1)


@pytest.fixture(scope="module")
def real_clip(shared_data) -> ClipInput:
    audio, rate = sf.read(shared_data / "vggsound" / "FwVYUHKoLtQ_000034.wav", dtype="int16")
    return ClipInput(audio=audio, sample_rate=rate)


def _reference_embeddings(net: VGGish, clip: ClipInput, recipe: str) -> np.ndarray:
    """The release's path: float64 examples from the public function, one clip through the net."""
    examples = vggish.waveform_to_examples(clip.audio / 32768.0, clip.sample_rate, recipe=recipe)
    with torch.no_grad():
        return net(torch.from_numpy(examples).float()).numpy()


def test_items_are_fixed_size_and_recipe_is_recorded(extractor, real_clip):
    items = extractor.preprocess(real_clip)
    assert items.shape == (10, 15600) and items.dtype == torch.float32
    recipe = extractor.recipe()
    assert recipe["recipe"] == "ave" and recipe["fc2_relu"] is True
    assert recipe["example_start_s"] == [float(s) for s in range(10)]
    assert extractor.weights_id == "random" and extractor.output_shape() == (10, 128)


@pytest.mark.parametrize("recipe", ["ave", "whole-clip"])
def test_batched_forward_matches_reference_path(extractor, real_clip, recipe):
    extractor.recipe_name = recipe
    try:
        items = extractor.preprocess(real_clip)
        batched = extractor.forward(torch.cat([items, items.flip(-1)]))
    finally:
        extractor.recipe_name = "ave"
    ref = _reference_embeddings(extractor.net, real_clip, recipe)
    assert ref.shape == (10, 128)
    assert np.abs(extractor.assemble(batched[:10]) - ref).max() <= 1e-3 * max(1.0, np.abs(ref).max())
    assert (batched >= 0).all()  # fc2 ReLU on by default, as the AVE release


def test_recipes_differ_after_first_second(extractor, real_clip):
    ave = _reference_embeddings(extractor.net, real_clip, "ave")
    whole = _reference_embeddings(extractor.net, real_clip, "whole-clip")
    np.testing.assert_allclose(ave[0], whole[0], atol=1e-5)  # both start at 0 s
    assert np.abs(ave[5] - whole[5]).max() > 1e-3  # 5 s vs 4.8 s


def test_ave_missing_seconds_are_zero_rows(extractor, real_clip):
    short = ClipInput(audio=real_clip.audio[:16000 * 7 + 9000], sample_rate=16000)
    features = extractor.assemble(extractor.forward(extractor.preprocess(short)))
    assert (features[7:] == 0).all() and (features[:7] != 0).any(axis=1).all()


def test_whole_clip_pads_by_repeating_last_example(real_clip):
    ex = VGGishExtractor("whole-clip", weights="random", seed=1)
    short = ClipInput(audio=real_clip.audio[:16000 * 5], sample_rate=16000)  # 5 examples
    items = ex.preprocess(short)
    for row in range(5, 10):
        assert torch.equal(items[row], items[4])
    features = ex.assemble(ex.forward(items))
    for row in range(5, 10):  # equal up to batched-GEMM rounding
        np.testing.assert_allclose(features[row], features[4], atol=1e-4)
    assert ex.recipe()["example_start_s"][9] == pytest.approx(8.64)


@pytest.mark.parametrize("audio, rate, reason", [
    (None, 16000, "no_audio"),
    (np.zeros(0, np.int16), 16000, "no_audio"),
    (np.zeros(8000, np.int16), 16000, "audio_too_short"),
    (np.array([0.0, np.nan] * 16000, np.float32), 16000, "audio_not_finite"),
    (np.array([0.0, np.inf] * 16000, np.float32), 16000, "audio_not_finite"),
    (np.zeros(32000, np.int16), 0, "bad_sample_rate"),
    (np.zeros((32000, 2, 2), np.int16), 16000, "bad_audio_shape"),
])
def test_bad_audio_is_rejected_with_a_reason(extractor, audio, rate, reason):
    with pytest.raises(ClipRejected) as info:
        extractor.preprocess(ClipInput(audio=audio, sample_rate=rate))
    assert info.value.reason == reason


def test_8bit_96k_and_6_channels_are_accepted(extractor):
    rng = np.random.default_rng(0)
    eight_bit = rng.integers(0, 256, size=16000 * 2, dtype=np.uint8)
    items = extractor.preprocess(ClipInput(audio=eight_bit, sample_rate=16000))
    assert torch.isfinite(items[:2]).all() and items[:2].abs().max() <= 1.0
    six_96k = rng.integers(-3000, 3000, size=(96000 * 2, 6), dtype=np.int16)
    items = extractor.preprocess(ClipInput(audio=six_96k, sample_rate=96000))
    assert torch.isfinite(items[:2]).all() and torch.isnan(items[2:, 0]).all()


def test_random_weights_are_seeded():
    a, _ = vggish.vggish("random", seed=3)
    b, ident = vggish.vggish("random", seed=3)
    assert ident == "random"
    assert torch.equal(a.features[0].weight, b.features[0].weight)


def test_default_weights_missing_names_file_and_command(tmp_path, monkeypatch):
    monkeypatch.setenv("AVEL_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError) as info:
        VGGishExtractor("ave")
    assert "vggish.pt" in str(info.value) and "avel weights fetch vggish" in str(info.value)


def test_torchvggish_style_state_dict_loads(tmp_path):
    net = VGGishExtractor("ave", weights="random", seed=4).net
    path = tmp_path / "vggish-port.pth"
    torch.save(net.state_dict(), path)  # torchvggish's key names: features.N / embeddings.N
    assert sorted(net.state_dict())[:2] == ["embeddings.0.bias", "embeddings.0.weight"]
    other = VGGish()
    assert len(vggish.load_weights(other, path)) == 64
    assert torch.equal(other.embeddings[4].weight, net.embeddings[4].weight)
    torch.save({"junk.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="bad.pth"):
        vggish.load_weights(other, tmp_path / "bad.pth")


def test_log_mel_ignores_autocast_and_bf16_net_stays_close(extractor, real_clip):
    items = extractor.preprocess(real_clip)[:4]
    plain, _ = extractor.examples(items)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast, _ = extractor.examples(items)
        low = extractor.forward(items)
    assert under_autocast.dtype == torch.float32 and torch.equal(plain, under_autocast)
    full = extractor.forward(items)
    assert low.dtype == torch.float32
    assert (low - full).abs().max() <= 0.05 * full.abs().max()  # bf16 has 8 mantissa bits


def test_pretrained_is_an_alias_of_the_cached_file(tmp_path, monkeypatch, extractor):
    monkeypatch.setenv("AVEL_HOME", str(tmp_path))
    torch.save(extractor.net.state_dict(), tmp_path / "vggish.pt")
    net, ident = vggish.vggish("pretrained")
    assert len(ident) == 64 and torch.equal(net.features[0].weight, extractor.net.features[0].weight)


def test_default_recipe_has_the_form_of_released_ave_features(shared_data, extractor, real_clip):
    """Released AVE audio features are raw fc2 outputs after a ReLU (min 0, most entries
    exactly 0, max far below PCA's 0..255): our defaults (fc2 ReLU, no PCA) give that form."""
    import h5py

    with h5py.File(shared_data / "ave" / "audio_feature_noisy.h5", "r") as fh:
        released = fh["avadataset"][:]
    assert released.shape[1:] == (10, 128) and released.min() == 0.0
    assert (released == 0).mean() > 0.5 and released.max() < 10
    import inspect

    params = inspect.signature(VGGishExtractor).parameters
    assert params["recipe"].default == "ave" and params["fc2_relu"].default is True
    assert params["pca"].default is None
    ours = extractor.forward(extractor.preprocess(real_clip))
    assert ours.min() == 0.0 and (ours == 0).float().mean() > 0.2
    assert extractor.recipe()["postprocess"] == "none"
