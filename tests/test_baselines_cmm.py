"""CMM cross-modality localization: the exact-start metric of ECCV18's cmm_test.py on hand-built
cases and on the real test_order_match labels, the contrastive loss, and loading the Keras
weight layout of the released `cmm_model_weights.h5`."""

from __future__ import annotations

import h5py
import numpy as np
import torch

from models.baselines.cmm import CMMNet, contrastive_loss, load_keras_weights
from models.metrics.cmm import best_start, cross_modal_localization


def identity_distances(n_videos: int) -> np.ndarray:
    """Distance 0 between visual i and audio i, 1 elsewhere: an oracle for both directions."""
    return np.broadcast_to(1.0 - np.eye(10), (n_videos, 10, 10)).copy()


def test_oracle_distances_hit_every_video():
    match = np.zeros((2, 10))
    match[0, 3:6] = 1
    match[1, 0:2] = 1
    res = cross_modal_localization(identity_distances(2), match)
    assert (res.a2v, res.v2a, res.videos) == (100.0, 100.0, 2)


def test_all_positive_and_all_negative_videos_are_skipped():
    match = np.zeros((3, 10))
    match[0] = 1  # all positive: skipped by the original
    match[2, 4:7] = 1
    res = cross_modal_localization(identity_distances(3), match)
    assert res.videos == 1 and res.a2v == 100.0


def test_a2v_and_v2a_search_different_axes():
    """Event at segments 2..3. dist[i, j] (visual i, audio j) is small only at (7, 2) and
    (8, 3): the audio query finds visual start 7 (miss); the visual query, which slides
    over audio, sees dist[2, s], dist[3, s+1] = 1 everywhere and takes start 0 (miss too).
    Make dist[2, 2] and dist[3, 3] small as well and V2A hits while A2V still prefers 7."""
    dist = np.ones((10, 10))
    dist[7, 2] = dist[8, 3] = 0.0
    seg = np.array([2, 3])
    assert best_start(dist, seg, query_is_audio=True) == 7
    assert best_start(dist, seg, query_is_audio=False) == 0
    dist[2, 2] = dist[3, 3] = 0.1
    assert best_start(dist, seg, query_is_audio=False) == 2
    match = np.zeros((1, 10))
    match[0, 2:4] = 1
    res = cross_modal_localization(dist[None], match)
    assert (res.a2v, res.v2a) == (0.0, 100.0)
    assert res.original_print_order() == (100.0, 0.0)  # the original prints V2A first


def test_ties_take_the_first_start_as_numpy_argmin():
    dist = np.zeros((10, 10))
    assert best_start(dist, np.array([5, 6, 7]), query_is_audio=True) == 0


def test_real_test_order_match_has_402_scorable_videos(shared_data):
    """The spec: in test_order_match every video has 2..9 contiguous positive segments."""
    with h5py.File(shared_data / "ave" / "labels_closs.h5") as f:
        closs = f["avadataset"][()]
    with h5py.File(shared_data / "ave" / "test_order_match.h5") as f:
        order = f["order"][()]
    res = cross_modal_localization(identity_distances(len(order)), closs[order])
    assert res.videos == 402 and res.a2v == 100.0 and res.v2a == 100.0


def test_contrastive_loss_by_hand():
    d = torch.tensor([0.5, 1.5, 3.0])
    y = torch.tensor([1.0, 0.0, 0.0])
    # 0.25 (positive: d^2) + (2-1.5)^2 = 0.25 (negative within margin) + 0 (beyond margin), mean of 3
    assert torch.isclose(contrastive_loss(d, y, margin=2.0), torch.tensor(0.5 / 3))


def test_distance_is_floored_like_keras():
    model = CMMNet()
    for p in model.parameters():
        torch.nn.init.zeros_(p)
    d = model(torch.randn(3, 512), torch.randn(3, 128))
    assert torch.allclose(d, torch.full((3,), 1e-7 ** 0.5))


def test_keras_weight_layout_loads_and_matches_a_numpy_forward(tmp_path):
    """Same group/dataset names and [in, out] kernels as the released cmm_model_weights.h5."""
    rng = np.random.default_rng(0)
    shapes = {"dense_1": (512, 128), "dense_2": (128, 64), "dense_3": (128, 128), "dense_4": (128, 64)}
    weights = {n: (rng.normal(size=s) * 0.1, rng.normal(size=s[1]) * 0.1) for n, s in shapes.items()}
    path = tmp_path / "cmm_model_weights.h5"
    with h5py.File(path, "w") as f:
        for name, (k, b) in weights.items():
            g = f.create_group(name).create_group(name)
            g["kernel:0"], g["bias:0"] = k.astype(np.float32), b.astype(np.float32)
    model = load_keras_weights(CMMNet(), path).double()
    v, a = rng.normal(size=(4, 512)), rng.normal(size=(4, 128))

    def leaky(x):
        return np.where(x > 0, x, 0.3 * x)

    w = weights
    fv = leaky(v @ w["dense_1"][0] + w["dense_1"][1]) @ w["dense_2"][0] + w["dense_2"][1]
    fa = leaky(a @ w["dense_3"][0] + w["dense_3"][1]) @ w["dense_4"][0] + w["dense_4"][1]
    expected = np.sqrt(((fv - fa) ** 2).sum(1))
    got = model(torch.from_numpy(v), torch.from_numpy(a)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
