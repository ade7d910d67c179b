"""Each visual extractor's full recipe: items, output shape and dtype, segment folding, frame
selection and preprocessing checked against independent references (torchvision's own
transforms on the official LLP frames, numpy means), and weights handling."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from extractors import catalog
from extractors.base import ClipInput, ClipRejected
from extractors.frames import normalise
from tests.fixtures_visual import jpeg_frames


@pytest.fixture(scope="module")
def llp_frames(shared_data: Path) -> list[bytes]:
    """The 82 official 8 fps frames of LLP clip BjCEufrlXm4 (320x240), in name order."""
    paths = sorted((shared_data / "llp" / "reference_frames_BjCEufrlXm4").glob("*.jpg"))
    assert len(paths) == 82
    return [p.read_bytes() for p in paths]


@pytest.fixture(scope="module")
def resnet152():
    return catalog.create("resnet152", weights="random", seed=1)


def test_resnet152_takes_80_of_82_frames_like_the_llp_script(resnet152, llp_frames):
    # AVVP scripts: np.round(np.linspace(0, n - 1, 80)) over the sorted jpgs. For n = 82 the
    # step is 81/79 and no i * 81/79 is a half-integer (so rounding mode cannot matter):
    # frame i is the nearest integer to i * 81/79, worked out exactly with fractions.
    from fractions import Fraction
    chosen = resnet152.select(len(llp_frames)).tolist()
    assert chosen == [int(Fraction(i * 81, 79) + Fraction(1, 2)) for i in range(80)]
    assert sorted(set(range(82)) - set(chosen)) == [20, 61]  # the two frames left out


def test_resnet152_preprocessing_equals_torchvision_transforms_on_official_frames(resnet152, llp_frames):
    items = resnet152.preprocess(ClipInput(frames=llp_frames))
    assert items.shape == (80, 3, 224, 224) and items.dtype == torch.uint8
    reference = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                                    transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    for k in (0, 41, 79):
        frame = llp_frames[int(resnet152.select(82)[k])]
        want = reference(Image.open(io.BytesIO(frame)).convert("RGB"))
        got = normalise(items[k:k + 1], resnet152.image)[0]
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_resnet152_pooled_features_are_2048_per_frame(resnet152, llp_frames):
    items = resnet152.preprocess(ClipInput(frames=llp_frames))
    with torch.inference_mode():
        out = resnet152.forward(items[:2])
    assert out.shape == (2, 2048)
    assert resnet152.output_shape() == (80, 2048)
    full = resnet152.assemble(torch.arange(80 * 2048, dtype=torch.float32).reshape(80, 2048))
    assert full.shape == (80, 2048) and full.dtype == np.float32


def test_vgg19_full_recipe_items_maps_and_segment_mean():
    vgg = catalog.create("vgg19", weights="random")
    frames = jpeg_frames(160, seed=2, size=(64, 48))
    items = vgg.preprocess(ClipInput(frames=frames))
    assert items.shape == (160, 3, 224, 224) and items.dtype == torch.uint8
    with torch.inference_mode():
        maps = vgg.forward(items[:2])
    assert maps.shape == (2, 512, 7, 7)
    outputs = torch.randn(160, 512, 7, 7)
    folded = vgg.assemble(outputs)
    assert folded.shape == vgg.output_shape() == (10, 7, 7, 512) and folded.dtype == np.float32
    # segment 3 = frames 48..63; layout [h, w, channel] like the Keras maps
    want = outputs.numpy()[48:64].mean(0).transpose(1, 2, 0)
    np.testing.assert_allclose(folded[3], want, rtol=1e-6, atol=1e-6)


def test_vgg19_keras_recipe_is_caffe_style():
    vgg = catalog.create("vgg19", weights="random", image_size=32, segments=1, frames_per_segment=1)
    pixel = torch.tensor([10, 20, 30], dtype=torch.uint8).view(1, 3, 1, 1)  # R, G, B
    got = normalise(pixel, vgg.image).flatten().tolist()
    # BGR order, caffe means subtracted, no scaling, no std
    assert got == pytest.approx([30 - 103.939, 20 - 116.779, 10 - 123.68], abs=1e-4)
    assert vgg.recipe()["recipe"] == "keras-imagenet"


def test_vgg19_rejects_a_clip_with_fewer_than_160_frames():
    vgg = catalog.create("vgg19", weights="random", image_size=32)
    with pytest.raises(ClipRejected) as err:
        vgg.preprocess(ClipInput(frames=jpeg_frames(159, seed=0, size=(16, 16))))
    assert err.value.reason == "too_few_frames"


def test_r2plus1d_18_full_recipe_gives_10_by_512(llp_frames):
    net = catalog.create("r2plus1d_18", weights="random")
    items = net.preprocess(ClipInput(frames=llp_frames))
    assert items.shape == (10, 3, 8, 112, 112) and items.dtype == torch.uint8
    # clip 2 = selected frames 16..23, resized to 112x112 without crop
    frame = Image.open(io.BytesIO(llp_frames[int(net.select(82)[16])])).convert("RGB")
    want = torch.from_numpy(np.array(frame.resize((112, 112), Image.BILINEAR))).permute(2, 0, 1)
    assert torch.equal(items[2, :, 0], want)
    with torch.inference_mode():
        feats = net.assemble(net.forward(items))
    assert feats.shape == (10, 512) and feats.dtype == np.float32
    assert np.isfinite(feats).all()


def test_resnet_layer3_maps_are_1024_by_7_by_7():
    net = catalog.create("resnet_layer3", weights="random")
    items = net.preprocess(ClipInput(frames=jpeg_frames(160, seed=4, size=(64, 48))))
    with torch.inference_mode():
        maps = net.forward(items[:2])
    assert maps.shape == (2, 1024, 7, 7)
    outputs = torch.randn(160, 1024, 7, 7, generator=torch.Generator().manual_seed(0))
    folded = net.assemble(outputs)
    assert folded.shape == net.output_shape() == (10, 1024, 7, 7)
    # segment 3 = frames 48..63, averaged (not summed) over its 16 frames
    want = outputs.numpy()[48:64].astype(np.float64).sum(0) / 16
    np.testing.assert_allclose(folded[3], want, rtol=1e-5, atol=1e-5)


def test_random_weights_are_seeded_and_recorded():
    a = catalog.create("vgg19", weights="random", seed=4, image_size=32, segments=1, frames_per_segment=1)
    b = catalog.create("vgg19", weights="random", seed=4, image_size=32, segments=1, frames_per_segment=1)
    c = catalog.create("vgg19", weights="random", seed=5, image_size=32, segments=1, frames_per_segment=1)
    assert a.weights_id == "random" and a.recipe()["seed"] == 4
    assert torch.equal(a.net[0].weight, b.net[0].weight)
    assert not torch.equal(a.net[0].weight, c.net[0].weight)


def test_weights_from_a_file_are_identified_by_sha256(tmp_path: Path):
    source = catalog.create("r2plus1d_18", weights="random", seed=9, image_size=16, clip_len=1)
    path = tmp_path / "r21d.pt"
    torch.save({f"{k}": v for k, v in source.net.state_dict().items()}, path)
    loaded = catalog.create("r2plus1d_18", weights=str(path), image_size=16, clip_len=1)
    assert loaded.weights_id == hashlib.sha256(path.read_bytes()).hexdigest()
    for key, value in source.net.state_dict().items():
        assert torch.equal(loaded.net.state_dict()[key], value)


def test_missing_pretrained_file_names_the_fetch_command(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("AVEL_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="avel weights fetch-torchvision resnet152"):
        catalog.create("resnet152")
