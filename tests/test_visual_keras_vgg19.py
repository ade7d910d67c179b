"""The faithful AVE path: a seeded random Keras VGG-19 (tf.keras, weights=None) converted by
our converter gives, through our preprocessing and torch, the same pool5 maps as Keras'
own pipeline (`load_img(target_size=(224, 224))` → `preprocess_input` → `block5_pool`)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from extractors.base import ClipInput
from extractors.tensorflow_import import import_tf
from extractors.vgg19 import VGG19Pool5
from extractors.vgg19_keras_convert import KERAS_TO_TORCH, convert
from tests.conftest import avel_cmd, cli_env
from tests.fixtures_visual import jpeg_frames

pytest.importorskip("tensorflow")
import_tf()  # Triton before TensorFlow, or the process can crash later
tf_keras = pytest.importorskip("tf_keras")

pytestmark = [pytest.mark.tf, pytest.mark.slow]


def _keras(lib: str):
    """tf_keras writes Keras 2's layout (what the published file has); Keras 3 (tf.keras in
    TensorFlow >= 2.16) writes `.weights.h5` with its layers named by class."""
    return tf_keras if lib == "tf_keras" else pytest.importorskip("keras")


def _keras_vgg19(weights_file: Path, lib: str = "tf_keras") -> object:
    keras = _keras(lib)
    keras.utils.set_random_seed(7)
    model = keras.applications.VGG19(weights=None, include_top=False, input_shape=(224, 224, 3))
    rng = np.random.default_rng(7)
    for layer in model.layers:
        if layer.name in KERAS_TO_TORCH:  # non-zero biases so the bias mapping is tested too
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.05, bias.shape).astype(np.float32)])
    model.save_weights(str(weights_file))
    return model


@pytest.mark.parametrize("lib, name", [("tf_keras", "vgg19_random.h5"),
                                       ("keras3", "vgg19_random.weights.h5")])
def test_converted_keras_vgg19_matches_keras_pool5(tmp_path: Path, lib: str, name: str):
    keras_file = tmp_path / name
    model = _keras_vgg19(keras_file, lib)
    keras = _keras(lib)
    jpegs = jpeg_frames(2, seed=11, size=(96, 72))  # not square: the resize is exercised
    paths = []
    for i, data in enumerate(jpegs):
        paths.append(tmp_path / f"{i:06d}.jpg")
        paths[-1].write_bytes(data)
    batch = np.stack([keras.utils.img_to_array(keras.utils.load_img(str(p), target_size=(224, 224)))
                      for p in paths])
    expected = np.asarray(model.predict(keras.applications.vgg19.preprocess_input(batch), verbose=0))
    assert expected.shape == (2, 7, 7, 512)

    converted = tmp_path / "vgg19_keras.pt"
    convert(keras_file, converted)
    ours = VGG19Pool5(weights=str(converted), segments=2, frames_per_segment=1)
    with torch.inference_mode():
        got = ours.assemble(ours.forward(ours.preprocess(ClipInput(frames=jpegs))))
    assert got.shape == (2, 7, 7, 512)
    scale = np.abs(expected).max()
    assert scale > 0
    assert np.abs(got - expected).max() <= 1e-3 * scale


def test_convert_command_writes_the_cache_file_the_recipe_loads(tmp_path: Path):
    keras_file = tmp_path / "vgg19_random.h5"
    _keras_vgg19(keras_file)
    env = {**cli_env(), "AVEL_HOME": str(tmp_path / "cache")}
    (tmp_path / "cache").mkdir()
    killed = tmp_path / "cache" / ".vgg19_keras_imagenet.pt.k1ll3d.part"  # a conversion killed 1 h ago
    live = tmp_path / "cache" / ".vgg19_keras_imagenet.pt.l1ve00.part"  # another node's, writing now
    for part in (killed, live):
        part.write_bytes(b"\0" * 1024)
    an_hour_ago = time.time() - 3600
    os.utime(killed, (an_hour_ago, an_hour_ago))
    done = subprocess.run(avel_cmd("weights", "convert-vgg19-keras", str(keras_file)), env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    target = tmp_path / "cache" / "vgg19_keras_imagenet.pt"
    assert done.stdout.startswith(str(target))
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # readable by a shared cache's users
    assert (killed.exists(), live.exists()) == (False, True)
    state = torch.load(target, weights_only=True)
    assert len(state) == 32 and state["0.weight"].shape == (64, 3, 3, 3)
